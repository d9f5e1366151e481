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

    // The daemon parses both command lines: with `--ntcs 0` it gets past clap (status 2
    // would be a usage error) and refuses the value itself (status 1).
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
        assert_eq!(o.status.code(), Some(1), "{a:?}: {err}");
        assert!(err.contains("--ntcs 0 must be in 1..=8"), "{a:?}: {err}");
    }
}
