//! Issue 13, the daemon half: what an attacker or a careless administrator did to a mounted
//! `vpe-compat`, each through the real daemon and real clients (sh, dd, md5sum, python3).

mod support;

use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use support::*;

fn field<'a>(st: &'a str, key: &str) -> Option<&'a str> {
    st.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

/// 3 000 concurrent opens of vpe1 writing 256 KiB each took the daemon to 777 MB (601 MB kept
/// after close). Now all open buffers together are bounded by --max-buffered (default 4 ×
/// --max-image), writes past it fail with ENOMEM (logged once per burst), and the memory goes
/// back after the burst. 3 000 opens of status.json by an unprivileged user share one
/// rendering.
#[test]
fn a_burst_of_concurrent_opens_is_bounded_and_memory_goes_back() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let pid = d.pid();
    let rss0 = rss_kb(pid);
    let o = py(
        &d.path("vpe1"),
        &format!(
            "import resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (8192, 8192))\n\
             def rss():\n    return [int(l.split()[1]) for l in open('/proc/{pid}/status') if l.startswith('VmRSS:')][0]\n\
             fds = [os.open(P, os.O_WRONLY) for _ in range(3000)]\nok = nomem = 0\n\
             for fd in fds:\n    try:\n        os.write(fd, b'\\x7fELF' + b'\\0' * (262144 - 4))\n        ok += 1\n\
             \x20   except OSError as e:\n        assert e.errno == errno.ENOMEM, e\n        nomem += 1\n\
             peak = rss()\nfor fd in fds:\n    os.close(fd)\nprint(ok, nomem, peak)"
        ),
    );
    assert!(o.status.success(), "{o:?}");
    let out = stdout(&o);
    let v: Vec<u64> = out.split_whitespace().map(|x| x.parse().unwrap()).collect();
    let (ok, nomem, peak) = (v[0], v[1], v[2]);
    assert_eq!((ok, nomem), (4, 2996), "4 × 256 KiB fit the default budget");
    let st = d.wait_loads(3000);
    let rss1 = rss_kb(pid);
    // status.json opened 3 000 times at once by nobody.
    let o = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "/usr/bin/python3", "-c"])
        .arg(format!(
            "import os, resource\nresource.setrlimit(resource.RLIMIT_NOFILE, (4096, 4096))\n\
             fds = [os.open('{}', os.O_RDONLY) for _ in range(3000)]\n\
             print([int(l.split()[1]) for l in open('/proc/{pid}/status') if l.startswith('VmRSS:')][0])\n\
             for fd in fds:\n    os.close(fd)",
            d.path("status.json").display()
        ))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let status_peak: u64 = stdout(&o).trim().parse().unwrap();
    eprintln!(
        "burst: VmRSS {rss0} kB at start, {peak} kB with 3000 vpe1 opens, {rss1} kB after; \
         {status_peak} kB with 3000 status.json opens"
    );
    assert_eq!(Daemon::count(&st, "loads_ok: "), 0, "{st}");
    // Generous bounds: the buffers alone were 750 MB before.
    assert!(peak < rss0 + 48 * 1024, "{rss0} -> {peak} kB");
    assert!(
        rss1 < rss0 + 24 * 1024,
        "{rss0} -> {rss1} kB after the burst"
    );
    assert!(status_peak < rss1 + 16 * 1024, "{rss1} -> {status_peak} kB");
    let log = d.log();
    assert_eq!(
        log.matches("(--max-buffered): writes are refused").count(),
        1,
        "{log}"
    );
    assert!(log.contains("2996 writes were refused (ENOMEM)"), "{log}");
}

/// With --max-image above 1 MiB, one write(2) crossing the limit reaches the daemon as 1 MiB
/// requests; the head was accepted and the truncated image started. Now a refused write
/// means that open loads nothing.
#[test]
fn one_large_write_crossing_the_limit_loads_nothing() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--max-image", "2097152"]);
    let img = d.dir.path().join("big.o");
    let mut bytes = fixture_bytes("hello.be.o");
    bytes.resize(3 << 20, 0);
    std::fs::write(&img, &bytes).unwrap();
    let o = sh(&format!(
        "dd if={} of={} bs=3M count=1",
        q(&img),
        q(&d.path("vpe1"))
    ));
    assert!(!o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Cannot allocate memory"),
        "{o:?}"
    );
    let st = d.wait_loads(1);
    assert_eq!(field(&st, "state"), Some("offline"), "{st}");
    assert_eq!(field(&st, "loads_ok"), Some("0"), "{st}");
    assert_eq!(field(&st, "last_error_phase"), Some("write"), "{st}");
    assert_eq!(field(&st, "last_error_errno"), Some("12"), "{st}");
    // Python's one write: the kernel reports the accepted 2 MiB, the open still loads nothing.
    let o = py(
        &d.path("vpe1"),
        &format!(
            "fd = os.open(P, os.O_WRONLY)\nprint(os.write(fd, open({:?}, 'rb').read()))\nos.close(fd)",
            img.display().to_string()
        ),
    );
    assert!(o.status.success(), "{o:?}");
    let st = d.wait_loads(2);
    assert_eq!(field(&st, "loads_ok"), Some("0"), "{st}");
    assert_eq!(field(&st, "state"), Some("offline"), "{st}");
    // The same image within the limit does start.
    bytes.truncate(2 << 20);
    std::fs::write(&img, &bytes).unwrap();
    let o = sh(&format!(
        "dd if={} of={} bs=3M",
        q(&img),
        q(&d.path("vpe1"))
    ));
    assert!(o.status.success(), "{o:?}");
    let st = d.wait_loads(3);
    assert_eq!(field(&st, "state"), Some("running"), "{st}\n{}", d.log());
}

/// `grep -r` or `md5sum` over the mount opened vpe1 read-only, which stopped the program.
#[test]
fn reading_the_mount_does_not_stop_the_program() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let o = sh(&format!(
        "cat {} > {}",
        q(&fixture("hello.be.o")),
        q(&d.path("vpe1"))
    ));
    assert!(o.status.success(), "{o:?}");
    let st = d.wait_loads(1);
    assert_eq!(field(&st, "state"), Some("running"), "{st}");
    let o = sh(&format!(
        "grep -r no-such-text {m}; md5sum {m}/vpe1; find {m} -type f -exec md5sum {{}} +",
        m = q(&d.mnt)
    ));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Invalid argument"),
        "the first read is still EINVAL: {o:?}"
    );
    let after = d.status();
    assert_eq!(field(&after, "state"), Some("running"), "{after}");
    assert_eq!(Daemon::loads(&after), 1, "no load either: {after}");
    assert!(
        field(&after, "vpe_shared").is_some_and(|v| v != "-"),
        "{after}"
    );
}

/// A failed load from another descriptor left `state: running` with `entry: -`: the facts of
/// what runs are now kept apart from the last attempt.
#[test]
fn a_failed_load_from_another_fd_keeps_what_runs_in_status() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let hello = fixture_bytes("hello.be.o");
    let o = py(
        &d.path("vpe1"),
        &format!(
            "a = os.open(P, os.O_WRONLY)\nb = os.open(P, os.O_WRONLY)\n\
             os.write(a, open({:?}, 'rb').read())\nos.close(a)\nos.write(b, b'junk')\nos.close(b)",
            fixture("hello.be.o").display().to_string()
        ),
    );
    assert!(o.status.success(), "{o:?}");
    let st = d.wait_loads(2);
    let sha = vpe::convert::sha256_hex(&hello);
    let junk = vpe::convert::sha256_hex(b"junk");
    assert_eq!(field(&st, "state"), Some("running"), "{st}");
    assert_eq!(field(&st, "sha256"), Some(sha.as_str()), "{st}");
    assert_ne!(field(&st, "entry"), Some("-"), "{st}");
    assert_ne!(field(&st, "vpe_shared"), Some("-"), "{st}");
    assert_ne!(field(&st, "firmware"), Some("-"), "{st}");
    assert_eq!(field(&st, "last_result"), Some("failed"), "{st}");
    assert_eq!(
        field(&st, "last_attempt_sha256"),
        Some(junk.as_str()),
        "{st}"
    );
    assert_eq!(field(&st, "last_attempt_size"), Some("4"), "{st}");
    let j = d.status_json();
    assert_eq!(j["sha256"], sha.as_str());
    assert_eq!(j["last_attempt_sha256"], junk.as_str());
}

/// Issue 14 point 18: `status` kept `last_error*` after a later successful load, so
/// `last_result: ok` came with the error of an older attempt. `last_error*` now belong to the
/// last attempt (or a failed stop after it) and a successful load clears them, in both files.
#[test]
fn a_successful_load_clears_the_previous_error() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    write_file(&d.path("vpe1"), b"junk").unwrap();
    let st = d.wait_loads(1);
    assert_eq!(field(&st, "last_result"), Some("failed"), "{st}");
    assert_eq!(field(&st, "last_error_phase"), Some("check"), "{st}");
    write_file(&d.path("vpe1"), &fixture_bytes("hello.be.o")).unwrap();
    let st = d.wait_loads(2);
    assert_eq!(field(&st, "last_result"), Some("ok"), "{st}");
    assert_eq!(field(&st, "last_error"), Some("-"), "{st}");
    assert_eq!(field(&st, "last_error_phase"), None, "{st}");
    assert_eq!(
        field(&st, "loads_failed"),
        Some("1"),
        "the counter keeps it: {st}"
    );
    let j = d.status_json();
    assert!(j["last_error"].is_null(), "{j}");
}

/// --errors-on-close: a forked child closing its inherited descriptor loaded the partial
/// image. Only the opener's own close loads and reports now.
#[test]
fn errors_on_close_ignores_a_forked_childs_close() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--errors-on-close"]);
    let o = py(
        &d.path("vpe1"),
        &format!(
            "b = open({:?}, 'rb').read()\nst = {:?}\n\
             def loads():\n    s = open(st).read()\n    return [l for l in s.splitlines() if l.startswith('loads_')]\n\
             fd = os.open(P, os.O_WRONLY)\nos.write(fd, b[:200])\n\
             pid = os.fork()\nif pid == 0:\n    os.close(fd)\n    os._exit(0)\nos.waitpid(pid, 0)\n\
             print(loads())\nos.write(fd, b[200:])\nos.close(fd)\nprint('closed')",
            fixture("hello.be.o").display().to_string(),
            d.path("status").display().to_string()
        ),
    );
    assert_eq!(
        stdout(&o),
        "['loads_ok: 0', 'loads_failed: 0']\nclosed\n",
        "{o:?}\n{}",
        d.log()
    );
    let st = d.wait_loads(1);
    assert_eq!(field(&st, "state"), Some("running"), "{st}");
    // The opener's close still reports a bad image (cat: a builtin's redirection is closed
    // by dup2, which drops close errors).
    let o = sh(&format!(
        "cat {} > {}",
        q(&fixture("no_start.be.o")),
        q(&d.path("vpe1"))
    ));
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Exec format error"),
        "{o:?}"
    );
}

/// A writer looping 1-byte writes past the limit produced one log line per write(2)
/// (~15 000 lines/s); the simulator logged every kernel line of every load at info.
#[test]
fn repeated_log_lines_are_rate_limited() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let t = Instant::now();
    let o = py(
        &d.path("vpe1"),
        "fd = os.open(P, os.O_WRONLY)\nos.write(fd, b'\\0' * 262144)\nn = 0\n\
         for _ in range(20000):\n    try:\n        os.write(fd, b'x')\n    except OSError:\n        n += 1\n\
         os.close(fd)\nprint(n)",
    );
    assert_eq!(stdout(&o), "20000\n", "{o:?}");
    d.wait_loads(1);
    let elapsed = t.elapsed();
    let count = |log: &str| {
        let logged = log
            .lines()
            .filter(|l| l.ends_with("Perhaps strip unneeded symbols"))
            .count() as u64;
        let suppressed: u64 = log
            .lines()
            .filter_map(|l| l.split("suppressed ").nth(1))
            .filter(|l| l.ends_with(" similar messages (elf size too big)"))
            .filter_map(|l| l.split(' ').next()?.parse::<u64>().ok())
            .sum();
        (logged, suppressed)
    };
    // The summary comes when the 5 s window is over.
    let (log, logged) = loop {
        let log = d.log();
        let (logged, suppressed) = count(&log);
        if logged + suppressed >= 20000 {
            assert_eq!(
                logged + suppressed,
                20000,
                "every refusal accounted for:\n{log}"
            );
            break (log, logged);
        }
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{logged} + {suppressed}:\n{log}"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let lines = log.lines().count();
    eprintln!("20000 refused writes in {elapsed:?}: {lines} log lines");
    // At most a burst of 10 per 5 s window, plus the summaries.
    let windows = t.elapsed().as_secs() / 5 + 1;
    assert!(
        logged <= 10 * windows,
        "{logged} in {windows} windows:\n{log}"
    );
    assert!(lines as u64 <= 4 + 12 * windows, "{lines} lines:\n{log}");
    // A successful load says one line at info; the simulator's kernel lines are debug.
    let o = sh(&format!(
        "cat {} > {}",
        q(&fixture("hello.be.o")),
        q(&d.path("vpe1"))
    ));
    assert!(o.status.success(), "{o:?}");
    let st = d.wait_loads(2);
    assert_eq!(field(&st, "state"), Some("running"), "{st}");
    let t = Instant::now();
    while !d.log().contains("started ") {
        assert!(t.elapsed() < Duration::from_secs(10), "{}", d.log());
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(!d.log().contains("sim: "), "{}", d.log());
}

/// A sibling of the 1-byte writer: a loader retrying a load whose start always fails logged
/// "start failed" (and its rollback line) once per load, with no limit. They are limited
/// like the other failed-load lines now, and every failure is still counted in `status`.
#[test]
fn repeated_failed_starts_are_rate_limited() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--sim-fail-start"]);
    let n = 60;
    let t = Instant::now();
    let o = py(
        &d.path("vpe1"),
        &format!(
            "img = open({:?}, 'rb').read()\neio = 0\n\
             for _ in range({n}):\n    fd = os.open(P, os.O_WRONLY)\n    os.write(fd, img)\n\
             \x20   try:\n        os.fsync(fd)\n    except OSError as e:\n        assert e.errno == errno.EIO, e\n        eio += 1\n\
             \x20   os.close(fd)\nprint(eio)",
            fixture("hello.be.o").display().to_string()
        ),
    );
    assert_eq!(stdout(&o), format!("{n}\n"), "{o:?}");
    let elapsed = t.elapsed();
    let st = d.wait_loads(n);
    assert_eq!(
        field(&st, "loads_failed"),
        Some(n.to_string().as_str()),
        "{st}"
    );
    let log = d.log();
    let windows = elapsed.as_secs() / 5 + 1;
    let failed = log.lines().filter(|l| l.contains("start failed")).count() as u64;
    assert!(
        failed <= 10 * windows,
        "{failed} 'start failed' lines for {n} loads in {elapsed:?}:\n{log}"
    );
    assert!(
        log.lines().count() as u64 <= 6 + 24 * windows,
        "{} lines for {n} loads in {elapsed:?}:\n{log}",
        log.lines().count()
    );
}

/// SIGHUP killed the daemon and left a dead mount; QUIT too.
#[test]
fn hup_and_quit_unmount_like_term() {
    if !can_mount() {
        return;
    }
    for sig in [Signal::SIGHUP, Signal::SIGQUIT] {
        let mut d = Daemon::start(&[]);
        let st = d.stop(sig).expect("exits");
        assert_eq!(st.code(), Some(0), "{sig}: {st:?}\n{}", d.log());
        assert!(!mounted(&d.mnt), "{sig}: mount left behind");
    }
}

/// SIGTERM with a file of the mount held open waited for the last close.
#[test]
fn sigterm_with_a_busy_mount_exits_promptly() {
    if !can_mount() {
        return;
    }
    let mut d = Daemon::start(&[]);
    let mut holder = std::process::Command::new("sleep")
        .arg("60")
        .stdin(std::fs::File::open(d.path("status")).unwrap())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let st = d.terminate();
    let _ = holder.kill();
    let _ = holder.wait();
    let st = st.expect("exited before the holder closed its file");
    assert!(st.success(), "{st:?}\n{}", d.log());
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(!mounted(&d.mnt), "{}", d.log());
}

/// --bind-dev left its placeholder after a clean stop (loaders then "succeeded" into a plain
/// file), and followed a dangling symlink, creating its target as root.
#[test]
fn bind_dev_removes_only_its_own_placeholder_and_follows_no_symlink() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Created by us: removed at SIGTERM.
    let dev = dir.path().join("vpe1");
    let mut d = Daemon::start(&["--bind-dev", dev.to_str().unwrap()]);
    d.extra_mounts.push(dev.clone());
    assert!(mounted(&dev));
    assert!(d.terminate().expect("exits").success(), "{}", d.log());
    assert!(!mounted(&dev));
    assert!(
        std::fs::symlink_metadata(&dev).is_err(),
        "placeholder left behind:\n{}",
        d.log()
    );
    // There before us: kept, content and all.
    std::fs::write(&dev, b"keep").unwrap();
    let mut d = Daemon::start(&["--bind-dev", dev.to_str().unwrap()]);
    d.extra_mounts.push(dev.clone());
    assert!(d.terminate().expect("exits").success());
    assert_eq!(std::fs::read(&dev).unwrap(), b"keep");
    std::fs::remove_file(&dev).unwrap();
    // A dangling symlink: refused, its target not created.
    let target = dir.path().join("target");
    std::os::unix::fs::symlink(&target, &dev).unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let (code, err) = run_to_exit(&mnt, ["--bind-dev".as_ref(), dev.as_os_str()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is a symbolic link"), "{err}");
    assert!(!target.exists(), "the symlink was followed");
    assert!(!mounted(&mnt) && !mounted(&dev));
    // A symlink to a real file: refused too (the mount would cover the target).
    std::fs::write(&target, b"other").unwrap();
    let (code, err) = run_to_exit(&mnt, ["--bind-dev".as_ref(), dev.as_os_str()]);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("is a symbolic link"), "{err}");
    assert!(!mounted(&target) && !mounted(&dev));
    assert_eq!(std::fs::read(&target).unwrap(), b"other");
}

/// touch/rm/mkdir/mv in the mount said ENOSYS ("Function not implemented").
#[test]
fn name_changes_in_the_mount_are_enoent_or_eperm() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let o = py(
        &d.mnt,
        "def t(f, *a):\n    try:\n        f(*a)\n        return 'ok'\n    except OSError as e:\n        return errno.errorcode[e.errno]\n\
         j = lambda n: os.path.join(P, n)\n\
         print(t(os.open, j('new'), os.O_CREAT | os.O_WRONLY), t(os.mkdir, j('d')), t(os.mknod, j('n')),\n\
         \x20     t(os.symlink, 'x', j('l')), t(os.unlink, j('vpe1')), t(os.unlink, j('status')),\n\
         \x20     t(os.rename, j('vpe1'), j('x')), t(os.link, j('vpe1'), j('h')), t(os.rmdir, j('kill')))",
    );
    assert_eq!(
        stdout(&o),
        "ENOENT ENOENT ENOENT ENOENT EPERM EPERM EPERM EPERM ENOTDIR\n",
        "{o:?}"
    );
    let o = sh(&format!(
        "touch {m}/new; rm -f {m}/vpe1; mv {m}/kill {m}/k",
        m = q(&d.mnt)
    ));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("Function not implemented"), "{err}");
    assert!(err.contains("No such file or directory"), "{err}");
    assert!(err.contains("Operation not permitted"), "{err}");
}

/// A second daemon on a live mount said "mount point is not empty".
#[test]
fn a_second_daemon_says_the_mount_is_already_a_vpe_compat_mount() {
    if !can_mount() {
        return;
    }
    let mut d = Daemon::start(&[]);
    let (code, err) = run_to_exit(&d.mnt, std::iter::empty::<&str>());
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("already a vpe-compat mount"), "{err}");
    assert!(!err.contains("not empty"), "{err}");
    assert!(d.alive());
    assert!(
        d.status().contains("backend: sim\n"),
        "the first one still serves"
    );
}

/// Usage errors exit 2 in clap's format, blaming the right flag; before, some exited 1 in log
/// format, `--max-tcs 0` blamed `--ntcs`, and `--max-image 0` started a daemon.
#[test]
fn usage_errors_exit_2_in_clap_style_and_blame_the_right_flag() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path();
    for (args, blame) in [
        (&["--max-tcs", "0"][..], "--max-tcs"),
        (&["--max-image", "0"], "--max-image"),
        (&["--max-buffered", "0"], "--max-buffered"),
        (&["--max-buffered", "1000"], "--max-buffered"),
        (&["--ntcs", "9"], "--ntcs 9"),
        (&["--ntcs", "0"], "--ntcs 0"),
        (&["--kernel", "lantiq"], "--vpe1-load-addr"),
        (&["--entry", "__start"], "--kernel lantiq"),
        (&["--entry", "main"], "--entry"),
        (&["--group", "no-such-group-here"], "--group"),
    ] {
        let (code, err) = run_to_exit(mnt, args);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains(blame), "{args:?}: {err}");
        assert!(err.contains("try '--help'"), "{args:?}: {err}");
        if args[0] == "--max-tcs" {
            assert!(!err.contains("--ntcs"), "{err}");
        }
    }
    assert!(!mounted(mnt));
}

/// The Lantiq fallback's warning tells to pass `--entry __start`: vpe-compat now has it.
#[test]
fn entry_start_overrides_the_lantiq_fallback() {
    if !can_mount() {
        return;
    }
    let run = |extra: &[&str]| {
        let mut args = vec!["--kernel", "lantiq", "--vpe1-load-addr", "0x83e00000"];
        args.extend_from_slice(extra);
        let d = Daemon::start(&args);
        let o = sh(&format!(
            "cat {} > {}",
            q(&fixture("no_shared.be.o")),
            q(&d.path("vpe1"))
        ));
        assert!(o.status.success(), "{o:?}");
        d.wait_loads(1)
    };
    let st = run(&[]);
    assert_eq!(field(&st, "entry"), Some("0xa3e00000"), "{st}");
    assert!(st.contains("pass --entry __start"), "{st}");
    let st = run(&["--entry", "__start"]);
    assert_eq!(field(&st, "state"), Some("running"), "{st}");
    let entry = field(&st, "entry").unwrap();
    assert!(entry.starts_with("0x83e"), "__start, not KSEG1: {st}");
}
