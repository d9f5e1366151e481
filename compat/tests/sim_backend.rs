//! The simulator backend's byte order and log lines, through a real mount:
//! * `--host big|little` makes the simulated kernel accept one byte order, as a real kernel
//!   does (issue 14 point 17); without it, both;
//! * with `--backend sysfs`, a `--host` other than this machine's byte order is refused;
//! * the shared start sequence logs under the backend that runs it: no simulator line under
//!   `vpe::remoteproc::sysfs`.

mod support;

use support::*;

fn field<'a>(st: &'a str, key: &str) -> Option<&'a str> {
    st.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

#[test]
fn host_big_refuses_little_endian_images_with_the_kernels_message() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--host", "big"]);
    write_file(&d.path("vpe1"), &fixture_bytes("hello.le.o")).unwrap();
    let st = d.wait_loads(1);
    assert_eq!(field(&st, "loads_failed"), Some("1"), "{st}");
    let err = field(&st, "last_error").unwrap_or_default();
    assert!(
        err.starts_with("Unsupported firmware endianness"),
        "{st}\n{}",
        d.log()
    );
    write_file(&d.path("vpe1"), &fixture_bytes("hello.be.o")).unwrap();
    let st = d.wait_loads(2);
    assert_eq!(field(&st, "loads_ok"), Some("1"), "{st}");
    assert_eq!(field(&st, "state"), Some("running"), "{st}");
    drop(d);

    // The default simulator takes both, and --host little the other one only.
    let d = Daemon::start(&[]);
    for (n, f) in [(1, "hello.le.o"), (2, "hello.be.o")] {
        write_file(&d.path("vpe1"), &fixture_bytes(f)).unwrap();
        let st = d.wait_loads(n);
        assert_eq!(field(&st, "loads_ok"), Some(n.to_string().as_str()), "{st}");
    }
    drop(d);
    let d = Daemon::start(&["--host", "little"]);
    write_file(&d.path("vpe1"), &fixture_bytes("hello.be.o")).unwrap();
    let st = d.wait_loads(1);
    assert!(
        field(&st, "last_error")
            .unwrap_or_default()
            .starts_with("Unsupported firmware endianness"),
        "{st}"
    );
}

#[test]
fn simulator_lines_are_logged_under_the_simulator() {
    if !can_mount() {
        return;
    }
    // The simulator's kernel lines are at debug level (rate-limited daemon log).
    let debug = [("RUST_LOG", "debug")];
    let d = Daemon::start_env(&["--sim-fail-start"], &debug);
    write_file(&d.path("vpe1"), &fixture_bytes("hello.le.o")).unwrap();
    d.wait_loads(1);
    let d2 = Daemon::start_env(&[], &debug);
    write_file(&d2.path("vpe1"), &fixture_bytes("hello.le.o")).unwrap();
    d2.wait_loads(1);
    for log in [d.log(), d2.log()] {
        assert!(
            log.contains(" vpe::remoteproc::sim]"),
            "no simulator line at all:\n{log}"
        );
        assert!(!log.contains("vpe::remoteproc::sysfs"), "{log}");
    }
    assert!(d2.log().contains("is running"), "{}", d2.log());
}

/// With the real remoteproc the kernel's byte order is this machine's: a `--host` that
/// contradicts it is refused at start-up, before anything is touched.
#[test]
fn host_contradicting_this_machine_is_refused_with_the_sysfs_backend() {
    if !can_mount() {
        return;
    }
    let other = if cfg!(target_endian = "big") {
        "little"
    } else {
        "big"
    };
    let dir = tempfile::tempdir().unwrap();
    // A usage error: clap's format, exit 2.
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_vpe-compat"))
        .arg("--mount")
        .arg(dir.path())
        .args([
            "--backend",
            "sysfs",
            "--host",
            other,
            "--sysfs-root",
            "/nonexistent",
        ])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(
        err.contains(&format!("--host {other} with --backend sysfs"))
            && err.contains("refuses firmware of the other byte order"),
        "{err}"
    );
    assert!(!mounted(dir.path()));
}
