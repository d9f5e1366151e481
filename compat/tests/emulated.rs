//! The sim backend executes what it boots, seen through a real FUSE mount with ordinary
//! programs: the `console` file, the `cpu:`/`fault:` status lines, a crash of a bare
//! program, recovery, `trace0` of a program without a trace buffer, and remoteproc firmware
//! (`rproc_spin`/`rproc_fault`) passed through unchanged: its `trace0`, status, fault line.
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

/// `cat PATH` through the mount: (success, stdout bytes, stderr).
fn cat(p: &std::path::Path) -> (bool, Vec<u8>, String) {
    let o = Command::new("cat").arg(p).output().expect("cat");
    (
        o.status.success(),
        o.stdout,
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// What debugfs `traceN` shows for a buffer (`rproc_trace_read`): the bytes up to the first
/// NUL (`strnlen(va, trace->len)`), handed out by `simple_read_from_buffer`.
fn debugfs_trace_view(buf: &[u8]) -> &[u8] {
    &buf[..buf.iter().position(|&b| b == 0).unwrap_or(buf.len())]
}

/// Poll `trace0` until it starts with `GREETING` and ends with `last` (the firmware writes
/// its buffer while we read: a cap, never a timing assumption).
fn wait_trace(d: &Daemon, last: &[u8]) -> Vec<u8> {
    let want = GREETING;
    let t = Instant::now();
    loop {
        let (ok, out, _) = cat(&d.path("trace0"));
        if ok && out.starts_with(want) && out.ends_with(last) {
            return out;
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "waiting for {:?} in trace0, have {:?}:\n{}",
            String::from_utf8_lossy(want),
            String::from_utf8_lossy(&out),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The greeting `rproc_fw.c` writes first, with `$a0` as the driver enters it (-3).
const GREETING: &[u8] = b"rproc_fw: hello from the SP\na0 0xfffffffd\n";

#[test]
fn remoteproc_firmware_written_to_vpe1_runs_and_trace0_reads_as_debugfs_does() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--bare"]);
    for tag in ["be", "le"] {
        let fx = fixture(&format!("rproc_spin.{tag}.fw"));
        let o = sh(&format!("cat {} > {}", q(&fx), q(&d.path("vpe1"))));
        assert!(o.status.success(), "{tag}: {o:?}\n{}", d.log());
        // The last line it writes: then it spins, and the buffer no longer changes.
        let out = wait_trace(&d, b"a3 0x00000000\n");
        // The file is the buffer up to its first NUL, as rproc_trace_read hands it out.
        let text = String::from_utf8(out.clone()).expect("text");
        assert_eq!(text.lines().count(), 5, "{tag}: {text}");
        let (ok, again, _) = cat(&d.path("trace0"));
        assert!(ok);
        assert_eq!(again, out, "{tag}: a second read");
        assert!(!out.contains(&0), "{tag}: no NUL in trace0");
        // Same bytes as the kernel's view of the whole buffer, read with small reads
        // (simple_read_from_buffer at successive offsets) by dd.
        let o = sh(&format!("dd if={} bs=7 status=none", q(&d.path("trace0"))));
        assert!(o.status.success(), "{o:?}");
        assert_eq!(debugfs_trace_view(&o.stdout), &out[..], "{tag}: dd bs=7");
        assert_eq!(o.stdout, out, "{tag}: dd bs=7");
        // One trace resource: trace1 does not exist.
        let (ok, _, err) = cat(&d.path("trace1"));
        assert!(!ok);
        assert!(err.contains("No such file or directory"), "{tag}: {err}");
        let st = d.status();
        assert!(st.contains("cpu: running\n"), "{tag}: {st}");
        assert!(st.contains("state: running\n"), "{tag}: {st}");
        assert!(d.log().contains("passthrough"), "{tag}: {}", d.log());
        // kill stops it, and the trace goes with it (debugfs removes traceN on stop).
        let o = sh(&format!("echo 1 > {}", q(&d.path("kill"))));
        assert!(o.status.success(), "{tag}: {o:?}");
        wait_status(&d, "state: offline\n");
        let (ok, _, err) = cat(&d.path("trace0"));
        assert!(!ok, "{tag}: trace0 after kill");
        assert!(err.contains("No such file or directory"), "{tag}: {err}");
    }
}

#[test]
fn remoteproc_firmware_that_faults_is_crashed_with_its_fault_line() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--bare"]);
    for tag in ["be", "le"] {
        let fx = fixture(&format!("rproc_fault.{tag}.fw"));
        let o = sh(&format!("cat {} > {}", q(&fx), q(&d.path("vpe1"))));
        assert!(o.status.success(), "{tag}: {o:?}\n{}", d.log());
        let st = wait_status(&d, "state: crashed\n");
        assert!(st.contains("cpu: faulted\n"), "{tag}: {st}");
        let fault = st
            .lines()
            .find(|l| l.starts_with("fault: "))
            .expect("a fault line");
        // fault_here: 0x100001ec in both builds (mips-linux-gnu-nm rproc_fault.*.fw).
        assert!(fault.contains(" at pc 0x100001ec"), "{tag}: {fault}");
        assert!(fault.ends_with("bad address 0x20000000"), "{tag}: {fault}");
        // The trace written before the fault stays readable while crashed.
        let out = wait_trace(&d, b"rproc_fw: storing to 0x20000000\n");
        assert_eq!(String::from_utf8_lossy(&out).lines().count(), 6, "{tag}");
        let o = sh(&format!("echo 1 > {}", q(&d.path("kill"))));
        assert!(o.status.success(), "{tag}: {o:?}");
        wait_status(&d, "state: offline\n");
    }
}

/// debugfs reads the trace buffer at every `read(2)` (`rproc_trace_read` calls
/// `rproc_da_to_va` and `strnlen` each time), so a reader that keeps `trace0` open sees it
/// as it is now; once the firmware is stopped the file is removed and an open one reads EIO
/// (`debugfs_file_get` fails).
#[test]
fn an_open_trace0_reads_the_buffer_live_and_eio_after_kill() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--bare"]);
    let fx = fixture("rproc_spin.be.fw");
    let o = sh(&format!("cat {} > {}", q(&fx), q(&d.path("vpe1"))));
    assert!(o.status.success(), "{o:?}\n{}", d.log());
    let full = wait_trace(&d, b"a3 0x00000000\n");
    let o = py(
        &d.path("trace0"),
        &format!(
            r#"
import errno, os, subprocess, sys
fd = os.open(sys.argv[1], os.O_RDONLY)
assert os.pread(fd, 4096, 0) == {full:?}.encode()
subprocess.run(["sh", "-c", "echo 1 > {kill}"], check=True)
try:
    got = os.pread(fd, 4096, 0)
    print("read after kill:", got)
    sys.exit(1)
except OSError as e:
    assert e.errno == errno.EIO, e
print("ok")
"#,
            full = String::from_utf8(full).unwrap(),
            kill = d.path("kill").display()
        ),
    );
    assert!(o.status.success(), "{o:?}\n{}", d.log());
    assert_eq!(stdout(&o).trim(), "ok");
}
