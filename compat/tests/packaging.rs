//! The packages' service glue, run for real: the OpenWrt init script's `start_service`
//! (under stand-ins for UCI and procd) turns the shipped UCI config into a command line
//! that this daemon accepts.

use std::path::Path;
use std::process::Command;

mod support;

use support::*;

/// The arguments the init script gives the daemon for `config` (a UCI file).
fn init_command(config: &Path) -> Vec<String> {
    let pkg = root().join("packaging/openwrt");
    let o = Command::new("sh")
        .arg("-c")
        .arg(". \"$1\"; . \"$2\"; start_service")
        .arg("sh")
        .arg(pkg.join("test/procd-stubs.sh"))
        .arg(pkg.join("vpe-compat/files/vpe-compat.init"))
        .env("UCI_CONFIG", config)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout).into_owned();
    assert!(
        out.starts_with("instance\n") && out.ends_with("end\n"),
        "{out}"
    );
    assert!(out.contains("param env RUST_LOG=info\n"), "{out}");
    out.lines()
        .filter_map(|l| l.strip_prefix("arg "))
        .map(str::to_string)
        .collect()
}

#[test]
fn openwrt_init_script_turns_the_uci_config_into_valid_flags() {
    let shipped = root().join("packaging/openwrt/vpe-compat/files/vpe-compat.config");
    let args = init_command(&shipped);
    assert_eq!(
        args.join(" "),
        "/usr/bin/vpe-compat --mount /var/run/vpe --backend sysfs --rproc mips-cpu1 \
         --recovery disabled --max-image 262144 --max-tcs 8 --ntcs 1 --kernel mainline \
         --bring-up --bind-dev /dev/vpe1"
    );

    // A Lantiq board's settings, and every optional flag.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("vpe-compat");
    let text = std::fs::read_to_string(&shipped).unwrap();
    let text = text
        .replace("option kernel 'mainline'", "option kernel 'lantiq'")
        .replace("#option vpe1_load_addr", "option vpe1_load_addr")
        .replace("#option vpe1_mem", "option vpe1_mem")
        .replace("#option group 'vpe'", "option group 'root'")
        .replace("option bring_up '1'", "option bring_up '0'")
        .replace(
            "option bind_dev '/dev/vpe1'",
            "#option bind_dev '/dev/vpe1'",
        );
    std::fs::write(&cfg, text).unwrap();
    let args = init_command(&cfg);
    assert_eq!(
        args.join(" "),
        "/usr/bin/vpe-compat --mount /var/run/vpe --backend sysfs --rproc mips-cpu1 \
         --recovery disabled --max-image 262144 --max-tcs 8 --ntcs 1 --kernel lantiq \
         --vpe1-load-addr 0x83e00000 --vpe1-mem 2M --group root"
    );

    // The daemon parses both command lines: with `--ntcs 0` every flag gets past clap's parser
    // (an unknown flag or bad value would be named instead) and the daemon's own range check
    // refuses the value, a usage error too (status 2, naming --ntcs).
    for args in [init_command(&shipped), args] {
        let mnt = dir.path().join("mnt");
        let mut a: Vec<String> = args[1..].to_vec();
        a[1] = mnt.to_string_lossy().into_owned();
        a.retain(|x| x != "--bind-dev" && x != "/dev/vpe1");
        // The sysfs backend would look for the instance first: use the simulator.
        let i = a.iter().position(|x| x == "--backend").unwrap();
        a[i + 1] = "sim".into();
        let i = a.iter().position(|x| x == "--ntcs").unwrap();
        a[i + 1] = "0".into();
        let o = Command::new(BIN).args(&a).output().unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{a:?}: {err}");
        assert!(
            err.starts_with("error: --ntcs 0 must be in 1..=8"),
            "{a:?}: {err}"
        );
    }
}

/// The .deb files `scripts/package-deb` built (`VPE_DEBS`, set by `scripts/test`: host and
/// mipsel), listed with `dpkg-deb -c`: each binary, man page, completion and the systemd unit
/// where Debian puts them, and the binary of the package's architecture.
#[test]
fn debian_packages_hold_everything_where_debian_puts_it() {
    let Some(list) = std::env::var_os("VPE_DEBS") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but VPE_DEBS is not: scripts/test must build the packages"
        );
        eprintln!("skipped: VPE_DEBS unset (scripts/test sets it)");
        return;
    };
    let debs: Vec<std::path::PathBuf> = list
        .to_string_lossy()
        .split(':')
        .filter(|s| !s.is_empty())
        .map(Into::into)
        .collect();
    let field = |deb: &Path, f: &str| {
        let o = Command::new("dpkg-deb")
            .arg("-f")
            .arg(deb)
            .arg(f)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        String::from_utf8_lossy(&o.stdout).trim().to_string()
    };
    let mut seen = Vec::new();
    for deb in &debs {
        let (pkg, arch) = (field(deb, "Package"), field(deb, "Architecture"));
        let o = Command::new("dpkg-deb")
            .arg("-c")
            .arg(deb)
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let listing = String::from_utf8_lossy(&o.stdout).into_owned();
        let files: Vec<&str> = listing
            .lines()
            .filter_map(|l| l.split_whitespace().nth(5))
            .collect();
        let want: &[&str] = match pkg.as_str() {
            "vpe-migrate" => &[
                "./usr/bin/vpe-migrate",
                "./usr/share/man/man1/vpe-migrate.1.gz",
                "./usr/share/bash-completion/completions/vpe-migrate",
                "./usr/share/zsh/vendor-completions/_vpe-migrate",
                "./usr/share/fish/vendor_completions.d/vpe-migrate.fish",
                "./usr/share/doc/vpe-migrate/copyright",
            ],
            "vpe-compat" => &[
                "./usr/bin/vpe-compat",
                "./usr/share/man/man8/vpe-compat.8.gz",
                "./usr/share/doc/vpe-compat/copyright",
                "./usr/share/doc/vpe-compat/SEMANTICS.md",
            ],
            p => panic!("unexpected package {p} in {}", deb.display()),
        };
        for w in want {
            assert!(files.contains(w), "{pkg} ({arch}) lacks {w}:\n{listing}");
        }
        if pkg == "vpe-compat" {
            assert!(
                files
                    .iter()
                    .any(|f| f.ends_with("lib/systemd/system/vpe-compat.service")),
                "no systemd unit:\n{listing}"
            );
        }
        // The binary inside is of the package's architecture (ELF e_machine, EI_DATA).
        let x = tempfile::tempdir().unwrap();
        let o = Command::new("dpkg-deb")
            .arg("-x")
            .arg(deb)
            .arg(x.path())
            .output()
            .unwrap();
        assert!(o.status.success(), "{o:?}");
        let elf = std::fs::read(x.path().join("usr/bin").join(&pkg)).unwrap();
        let machine = u16::from_le_bytes([elf[18], elf[19]]);
        match arch.as_str() {
            "amd64" => assert_eq!((elf[5], machine), (1, 62), "{pkg} amd64"),
            "mipsel" => assert_eq!((elf[5], machine), (1, 8), "{pkg} mipsel"),
            a => panic!("unexpected architecture {a}"),
        }
        seen.push(format!("{pkg} {arch}"));
    }
    seen.sort();
    assert_eq!(
        seen,
        [
            "vpe-compat amd64",
            "vpe-compat mipsel",
            "vpe-migrate amd64",
            "vpe-migrate mipsel"
        ]
    );
}
