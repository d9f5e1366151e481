//! The sim backend executes what it boots, seen through a real FUSE mount with ordinary
//! programs: the `console` file, the `cpu:`/`fault:` status lines, a crash of a bare
//! program, recovery, `trace0` of a program without a trace buffer.
#![cfg(feature = "emulate")]

use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod support;

use support::*;

fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

/// Poll the status until it contains `want` (a cap, never a timing assumption).
fn wait_status(d: &Daemon, want: &str) -> String {
    let t = Instant::now();
    loop {
        let st = d.status();
        if st.contains(want) {
            return st;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "waiting for {want:?}:\n{st}\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn cat_hello_then_cat_console_shows_its_greeting() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let hello = root().join("examples/sp/hello.o");
    let vpe1 = d.path("vpe1");
    let o = sh(&format!("cat '{}' > '{}'", hello.display(), vpe1.display()));
    assert!(o.status.success(), "{o:?}");
    // The kernel cannot see a halted core: state stays running, the cpu line says why.
    let st = wait_status(&d, "cpu: halted (exit 17)\n");
    assert!(st.contains("state: running\n"), "{st}");
    let o = sh(&format!("cat '{}'", d.path("console").display()));
    assert!(o.status.success(), "{o:?}");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(
        out.starts_with("hello from the SP\nvpe_shared id 0x12345602\n"),
        "{out}"
    );
    assert!(out.ends_with("bye\n"), "{out}");
    assert!(
        d.log().contains("console: hello from the SP"),
        "{}",
        d.log()
    );
    // No trace buffer in this firmware: ENOENT, and the log says why.
    let o = sh(&format!("cat '{}' 2>&1", d.path("trace0").display()));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("No such file or directory"),
        "{o:?}"
    );
    assert!(d
        .log()
        .contains("trace0: the running firmware has no trace buffer 0"));
    // The files are read-only.
    let o = sh(&format!("echo x > '{}' 2>&1", d.path("console").display()));
    assert!(!o.status.success());
    let j = d.status_json();
    assert_eq!(j["cpu"]["cpu"], "halted (exit 17)");
}

#[test]
fn bare_mode_syscall_is_a_crash_and_status_shows_the_fault() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--bare"]);
    let fx = fixture("hello.be.o");
    let o = sh(&format!(
        "cat '{}' > '{}'",
        fx.display(),
        d.path("vpe1").display()
    ));
    assert!(o.status.success(), "{o:?}");
    let st = wait_status(&d, "state: crashed\n");
    assert!(st.contains("cpu: faulted\n"), "{st}");
    let fault = st
        .lines()
        .find(|l| l.starts_with("fault: "))
        .expect("a fault line");
    assert!(
        fault.starts_with("fault: Sys (syscall without a handler) at pc 0x1"),
        "{fault}"
    );
    assert!(fault.ends_with("bad address none"), "{fault}");
    let j = d.status_json();
    assert_eq!(j["state"], "crashed");
    assert_eq!(j["cpu"]["registers"]["v0"], "0x00000fa4", "{j}"); // 4004: write
    assert!(
        d.log()
            .contains("crash detected in vpe1-sim: type fatal error"),
        "{}",
        d.log()
    );
    // kill stops a crashed program and a reload runs again.
    let o = sh(&format!("echo 1 > '{}'", d.path("kill").display()));
    assert!(o.status.success(), "{o:?}");
    wait_status(&d, "state: offline\n");
    let o = sh(&format!(
        "cat '{}' > '{}'",
        fx.display(),
        d.path("vpe1").display()
    ));
    assert!(o.status.success(), "{o:?}");
    wait_status(&d, "state: crashed\n");
}

#[test]
fn recovery_enabled_restarts_a_crashed_program() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--bare", "--recovery", "enabled"]);
    let fx = fixture("hello.le.o");
    let o = sh(&format!(
        "cat '{}' > '{}'",
        fx.display(),
        d.path("vpe1").display()
    ));
    assert!(o.status.success(), "{o:?}");
    let t = Instant::now();
    while !d.log().contains("recovering vpe1-sim") {
        let _ = d.status(); // the sim notices the crash when asked
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "no recovery:\n{}",
            d.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}
