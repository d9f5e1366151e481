//! The board builds of `vpe-compat` (`scripts/cross-build`) under qemu-user.
//!
//! * mipsel (glibc and musl) serves a real mount on this host's `/dev/fuse`: the FUSE protocol
//!   is little-endian on both sides. Errno values inside FUSE replies are the target's
//!   numbering, which qemu-user does not translate (MIPS ENOSYS is 89, x86's 38), so this test
//!   asserts no errno: errno-exact assertions are the host tests' (`mounted.rs`, `hostile.rs`).
//! * A big-endian daemon would answer this little-endian kernel in big-endian FUSE headers
//!   (qemu-user passes `/dev/fuse` reads and writes through untranslated), so mips is tested
//!   in what it does before and beside the mount: flags, refusals, the sysfs backend's
//!   start-up checks, against the host build's messages.
//!
//! `VPE_CROSS_BINS` lists the built binaries (what `scripts/cross-build` printed; `scripts/test`
//! sets it). Without it the tests fail under CI and say they did nothing elsewhere.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod support;

use support::*;

/// Board target, qemu-user program, sysroot for glibc builds.
const TARGETS: [(&str, &str, Option<&str>); 4] = [
    (
        "mips-unknown-linux-gnu",
        "qemu-mips",
        Some("/usr/mips-linux-gnu"),
    ),
    (
        "mipsel-unknown-linux-gnu",
        "qemu-mipsel",
        Some("/usr/mipsel-linux-gnu"),
    ),
    ("mips-unknown-linux-musl", "qemu-mips", None),
    ("mipsel-unknown-linux-musl", "qemu-mipsel", None),
];

/// The command that runs the board build of `vpe-compat` for `target` under qemu-user.
fn board_cmd(target: &str) -> Option<Vec<OsString>> {
    let Some(list) = std::env::var_os("VPE_CROSS_BINS") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but VPE_CROSS_BINS is not: scripts/test must build the board binaries"
        );
        eprintln!("skipped: VPE_CROSS_BINS unset (scripts/test sets it)");
        return None;
    };
    let list = list.to_string_lossy().into_owned();
    let bin = list
        .split([':', '\n'])
        .map(PathBuf::from)
        .find(|p| {
            p.file_name().is_some_and(|f| f == "vpe-compat")
                && p.parent()
                    .and_then(Path::parent)
                    .and_then(Path::file_name)
                    .is_some_and(|t| t == target)
        })
        .unwrap_or_else(|| panic!("VPE_CROSS_BINS has no vpe-compat for {target}: {list}"));
    assert!(bin.is_file(), "{} is missing", bin.display());
    let (_, qemu, sysroot) = TARGETS.iter().find(|t| t.0 == target).unwrap();
    let mut cmd: Vec<OsString> = vec![qemu.into()];
    if let Some(s) = sysroot {
        cmd.extend(["-L".into(), s.into()]);
    }
    cmd.push(bin.into());
    Some(cmd)
}

fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// `cat` a fixture into `vpe1`, read `status`, `kill`, SIGTERM: the daemon unmounts and exits 0.
fn serves_a_mount(target: &str) {
    if !can_mount() {
        return;
    }
    let Some(cmd) = board_cmd(target) else {
        return;
    };
    let mut d = Daemon::start_cmd(&cmd, &[], &[]);
    assert!(d.status().contains("state: offline\n"), "{}", d.status());
    let bytes = fixture_bytes("hello.le.o");
    let o = sh(&format!(
        "cat {} > {}",
        q(&fixture("hello.le.o")),
        q(&d.path("vpe1"))
    ));
    assert!(o.status.success(), "{target}: {o:?}\n{}", d.log());
    let st = d.wait_loads(1);
    assert!(
        st.contains("state: running\n"),
        "{target}: {st}\n{}",
        d.log()
    );
    assert!(
        st.contains(&format!("sha256: {}\n", vpe::convert::sha256_hex(&bytes))),
        "{target}: {st}"
    );
    let j = d.status_json();
    assert_eq!(j["state"], "running", "{target}: {j}");
    let o = sh(&format!("echo 1 > {}", q(&d.path("kill"))));
    assert!(o.status.success(), "{target}: {o:?}");
    let t = Instant::now();
    while !d.status().contains("state: offline\n") {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{target}: kill did not stop it: {}",
            d.status()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let status = d.terminate().expect("exits on SIGTERM");
    assert!(status.success(), "{target}: {status:?}\n{}", d.log());
    assert!(!mounted(&d.mnt), "{target}: SIGTERM unmounts");
    assert!(d.log().contains("SIGTERM: unmounting"), "{}", d.log());
}

#[test]
fn mipsel_glibc_daemon_serves_a_real_mount() {
    serves_a_mount("mipsel-unknown-linux-gnu");
}

#[test]
fn mipsel_musl_daemon_serves_a_real_mount() {
    serves_a_mount("mipsel-unknown-linux-musl");
}

/// The message of the daemon's last log line (after env_logger's `[... LEVEL target] `, which
/// has a timestamp on the host and none on the board).
fn message(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    // A usage error: clap's `error: ...` line; a run-time refusal: the last log line's text.
    if let Some(l) = err.lines().find(|l| l.starts_with("error: ")) {
        return l.to_string();
    }
    let last = err.lines().last().unwrap_or_default();
    last.split_once("] ").map_or(last, |(_, m)| m).to_string()
}

/// What the big-endian daemons do without a mount, next to the host build: the same exit
/// status and message for every refusal, and the flags parse alike.
#[test]
fn big_endian_daemons_refuse_and_parse_like_the_host() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let fake_sys = dir.path().join("sys");
    std::fs::create_dir_all(fake_sys.join("class/remoteproc")).unwrap();
    let m = mnt.to_string_lossy().into_owned();
    let s = fake_sys.to_string_lossy().into_owned();
    // (exit status, arguments): 2 for usage errors (clap's format), 1 for run-time refusals.
    let cases: Vec<(i32, Vec<&str>)> = vec![
        (2, vec!["--mount", &m, "--ntcs", "0"]),
        (2, vec!["--mount", &m, "--ntcs", "9"]),
        (2, vec!["--mount", &m, "--kernel", "lantiq"]),
        (
            2,
            vec![
                "--mount",
                &m,
                "--kernel",
                "lantiq",
                "--vpe1-load-addr",
                "0x83e00000",
                "--base",
                "0x80000000",
            ],
        ),
        (
            1,
            vec!["--mount", &m, "--backend", "sysfs", "--sysfs-root", &s],
        ),
        (
            1,
            vec![
                "--mount",
                &m,
                "--backend",
                "sysfs",
                "--sysfs-root",
                &s,
                "--rproc",
                "mips-cpu3",
                "--bring-up",
            ],
        ),
        (2, vec!["--mount", &m, "--group", "no-such-group-here"]),
    ];
    for target in ["mips-unknown-linux-gnu", "mips-unknown-linux-musl"] {
        let Some(cmd) = board_cmd(target) else {
            return;
        };
        let board = || {
            let mut c = Command::new(&cmd[0]);
            c.args(&cmd[1..]);
            c
        };
        let v = board().arg("--version").output().unwrap();
        assert!(v.status.success(), "{target}: {v:?}");
        assert_eq!(
            String::from_utf8_lossy(&v.stdout),
            format!("vpe-compat {}\n", env!("CARGO_PKG_VERSION"))
        );
        let h = board().arg("--help").output().unwrap();
        let help = String::from_utf8_lossy(&h.stdout);
        for flag in [
            "--mount",
            "--backend",
            "--rproc",
            "--bring-up",
            "--bind-dev",
        ] {
            assert!(
                help.contains(flag),
                "{target}: --help lacks {flag}:\n{help}"
            );
        }
        for (code, args) in &cases {
            let want = Command::new(BIN).args(args).output().unwrap();
            let got = board().args(args).output().unwrap();
            assert_eq!(want.status.code(), Some(*code), "host {args:?}: {want:?}");
            assert_eq!(got.status.code(), Some(*code), "{target} {args:?}: {got:?}");
            assert_eq!(message(&got), message(&want), "{target} {args:?}");
            assert!(!mounted(&mnt), "{target} {args:?} mounted");
        }
    }
}
