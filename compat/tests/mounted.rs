//! The real daemon on a real FUSE mount, driven by ordinary programs (sh, cat, dd, python3,
//! setpriv). Needs root and /dev/fuse (CI runs as root); skipped with a message otherwise.
//!
//! Every daemon gets its own mount point; a Drop guard terminates it and detaches the mount
//! so a failing test leaves nothing behind (`support/mod.rs`).

use std::process::{Command, Output};
use std::time::Duration;

use nix::sys::signal::Signal;

mod support;

use support::*;

/// `cat fixture > DIR/vpe1`, as a legacy loader does it.
fn cat_to_vpe1(d: &Daemon, fixture_name: &str) -> Output {
    sh(&format!(
        "cat {} > {}",
        q(&fixture(fixture_name)),
        q(&d.path("vpe1"))
    ))
}

fn expected_entry(bytes: &[u8]) -> String {
    let opts = vpe::convert::Options {
        semantics: vpe::image::RelocSemantics::Legacy,
        ..Default::default()
    };
    let c = vpe::convert::convert(bytes, &opts).expect("fixture converts");
    format!("{:#010x}", c.legacy.entry)
}

#[test]
fn cat_starts_the_program_and_status_shows_it() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    assert!(d.status().contains("state: offline\n"), "{}", d.status());
    let fx = fixture("hello.be.o");
    let o = sh(&format!("cat {} > {}", q(&fx), q(&d.path("vpe1"))));
    assert!(o.status.success(), "{o:?}");
    let bytes = fixture_bytes("hello.be.o");
    let st = d.wait_loads(1);
    assert!(st.contains("state: running\n"), "{st}\n{}", d.log());
    assert!(
        st.contains(&format!("sha256: {}\n", vpe::convert::sha256_hex(&bytes))),
        "{st}"
    );
    assert!(
        st.contains(&format!("entry: {}\n", expected_entry(&bytes))),
        "{st}"
    );
    let j = d.status_json();
    assert_eq!(j["state"], "running");
    assert_eq!(j["backend"], "sim");
    assert_eq!(j["image_size"], bytes.len() as u64);
    assert!(j["vpe_shared"].is_string(), "{j}");
}

#[test]
fn dd_with_small_blocks_works_the_same() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let o = sh(&format!(
        "dd if={} of={} bs=512 2>&1",
        q(&fixture("hello.le.o")),
        q(&d.path("vpe1"))
    ));
    assert!(o.status.success(), "{o:?}");
    let bytes = fixture_bytes("hello.le.o");
    let st = d.wait_loads(1);
    assert!(st.contains("state: running\n"), "{st}\n{}", d.log());
    assert!(st.contains(&vpe::convert::sha256_hex(&bytes)), "{st}");
}

#[test]
fn over_the_limit_is_enomem_and_logged() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    // One write of P_SIZE + 1 bytes: refused whole.
    let o = py(
        &d.path("vpe1"),
        "fd = os.open(P, os.O_WRONLY)\ntry:\n    os.write(fd, b'\\0' * 262145)\n    print('ok')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n\
         print(os.write(fd, b'\\0' * 262144))\ntry:\n    os.write(fd, b'x')\n    print('ok')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\nos.close(fd)",
    );
    assert_eq!(stdout(&o), "ENOMEM\n262144\nENOMEM\n", "{o:?}");
    // The shell sees the failure too.
    let o = sh(&format!(
        "head -c 300000 /dev/zero > {}",
        q(&d.path("vpe1"))
    ));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Cannot allocate memory"),
        "{o:?}"
    );
    assert!(d
        .log()
        .contains("VPE loader: elf size too big. Perhaps strip unneeded symbols"));
}

#[test]
fn garbage_and_bad_elves_leave_the_daemon_running_with_the_legacy_message() {
    if !can_mount() {
        return;
    }
    let mut d = Daemon::start(&[]);
    let o = sh(&format!("echo hello > {}", q(&d.path("vpe1"))));
    assert!(
        o.status.success(),
        "close() returns 0 as in the old kernel: {o:?}"
    );
    assert!(d.alive());
    let st = d.wait_loads(1);
    assert!(
        st.contains("last_error: VPE loader: only elf files are supported"),
        "{st}"
    );
    assert!(d.log().contains("VPE loader: only elf files are supported"));

    let o = cat_to_vpe1(&d, "no_start.be.o");
    assert!(o.status.success(), "{o:?}");
    assert!(d.alive());
    let st = d.wait_loads(2);
    assert!(
        st.contains("VPE loader: program does not contain a __start symbol"),
        "{st}"
    );
    assert!(
        st.contains("last_error_legacy: VPE loader: ELF load failed.\n"),
        "{st}"
    );
    assert!(st.contains("state: offline\n"), "{st}");
    assert!(d.log().contains("VPE loader: ELF load failed."));
}

#[test]
fn fsync_reports_enoexec_for_a_bad_image_and_eio_for_a_failed_start() {
    if !can_mount() {
        return;
    }
    let code = "fd = os.open(P, os.O_WRONLY)\nos.write(fd, open(sys.argv[2], 'rb').read())\ntry:\n    os.fsync(fd)\n    print('ok')\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\nos.close(fd)";
    let run = |d: &Daemon, fx: &str| {
        let script = format!("import os, sys, errno\nP = sys.argv[1]\n{code}\n");
        let o = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(d.path("vpe1"))
            .arg(fixture(fx))
            .output()
            .unwrap();
        stdout(&o)
    };
    let d = Daemon::start(&[]);
    assert_eq!(run(&d, "no_start.be.o"), "ENOEXEC\n");
    assert_eq!(run(&d, "hello.be.o"), "ok\n");
    assert!(d.status().contains("state: running\n"));
    // A wrong second load would happen at RELEASE, just after close(): give it time.
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        d.status().contains("loads_ok: 1\n"),
        "release did not load again"
    );
    drop(d);
    let d = Daemon::start(&["--sim-fail-start"]);
    assert_eq!(run(&d, "hello.be.o"), "EIO\n");
}

#[test]
fn errors_on_close_makes_cat_fail() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--errors-on-close"]);
    let o = cat_to_vpe1(&d, "no_start.be.o");
    assert!(!o.status.success(), "{o:?}");
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Exec format error"),
        "{o:?}"
    );
    let o = cat_to_vpe1(&d, "hello.be.o");
    assert!(o.status.success(), "{o:?}\n{}", d.log());
    let st = d.status();
    assert!(st.contains("state: running\n"), "{st}");
    assert!(
        st.contains("loads_ok: 1\n") && st.contains("loads_failed: 1\n"),
        "{st}"
    );
}

#[test]
fn reopening_stops_the_program_and_the_device_is_a_vpe1() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let o = cat_to_vpe1(&d, "hello.be.o");
    assert!(o.status.success());
    assert!(d.wait_loads(1).contains("state: running\n"));
    // Open for reading and writing: the program stops while the file is still open; read is
    // EINVAL, ioctl ENOTTY.
    let status = d.path("status");
    let o = py(
        &d.path("vpe1"),
        &format!(
            "fd = os.open(P, os.O_RDWR)\n\
             print([l for l in open({:?}).read().splitlines() if l.startswith('state:')][0])\n\
             try:\n    os.read(fd, 1)\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n\
             try:\n    fcntl.ioctl(fd, 0x5401, b'\\0' * 64)\nexcept OSError as e:\n    print(errno.errorcode[e.errno])\n\
             os.close(fd)",
            status.display().to_string()
        ),
    );
    assert_eq!(stdout(&o), "state: offline\nEINVAL\nENOTTY\n", "{o:?}");
}

#[test]
fn lseek_between_writes_has_no_effect() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let bytes = fixture_bytes("hello.be.o");
    let o = Command::new("python3")
        .arg("-c")
        .arg(
            "import os, sys\nb = open(sys.argv[2], 'rb').read()\nfd = os.open(sys.argv[1], os.O_WRONLY | os.O_TRUNC)\n\
             os.write(fd, b[:100])\nos.lseek(fd, 0, os.SEEK_SET)\nos.write(fd, b[100:])\nos.close(fd)",
        )
        .arg(d.path("vpe1"))
        .arg(fixture("hello.be.o"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let st = d.wait_loads(1);
    assert!(st.contains(&vpe::convert::sha256_hex(&bytes)), "{st}");
    assert!(st.contains("state: running\n"), "{st}");
}

#[test]
fn kill_stops_the_program() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    cat_to_vpe1(&d, "hello.be.o");
    assert!(d.wait_loads(1).contains("state: running\n"));
    let o = sh(&format!("echo 1 > {}", q(&d.path("kill"))));
    assert!(o.status.success(), "{o:?}");
    let st = d.status();
    assert!(st.contains("state: offline\n"), "{st}");
    assert!(
        !st.contains("vpe_shared: -\n"),
        "kill keeps vpe_shared as vpe.c did: {st}"
    );
    let o = sh(&format!("echo 1 > {}", q(&d.path("kill"))));
    assert!(o.status.success(), "kill never fails");
}

#[test]
fn ntcs_parses_like_kstrtoul() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--max-tcs", "4"]);
    let ntcs = d.path("ntcs");
    assert_eq!(std::fs::read_to_string(&ntcs).unwrap(), "1\n");
    for (input, ok, after) in [
        ("/bin/echo 0x2", true, "2\n"),
        ("/bin/echo 0", false, "2\n"),
        ("/bin/echo 5", false, "2\n"),
        ("/bin/echo abc", false, "2\n"),
        ("/usr/bin/printf '3\\n\\n'", false, "2\n"),
        ("/usr/bin/printf 04", true, "4\n"),
        ("/bin/echo 3", true, "3\n"),
    ] {
        let o = sh(&format!("{input} > {}", q(&ntcs)));
        assert_eq!(o.status.success(), ok, "{input}: {o:?}");
        if !ok {
            assert!(
                String::from_utf8_lossy(&o.stderr).contains("Invalid argument"),
                "{o:?}"
            );
        }
        assert_eq!(std::fs::read_to_string(&ntcs).unwrap(), after, "{input}");
    }
    assert!(d.status().contains("ntcs: 3\n"));
}

#[test]
fn two_concurrent_writers_do_not_share_a_buffer() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let bytes = fixture_bytes("hello.be.o");
    let o = Command::new("python3")
        .arg("-c")
        .arg(
            "import os, sys\nb = open(sys.argv[2], 'rb').read()\n\
             a = os.open(sys.argv[1], os.O_WRONLY)\nc = os.open(sys.argv[1], os.O_WRONLY)\n\
             for i in range(0, len(b), 64):\n    os.write(a, b[i:i+64])\n    os.write(c, b'junk')\n\
             os.close(a)\nimport time\nfor _ in range(1000):\n    s = open(sys.argv[3]).read()\n\
             \x20   if 'loads_ok: 1' in s or 'loads_failed: 1' in s:\n        break\n    time.sleep(0.01)\n\
             print(s)\nos.close(c)",
        )
        .arg(d.path("vpe1"))
        .arg(fixture("hello.be.o"))
        .arg(d.path("status"))
        .output()
        .unwrap();
    let first = stdout(&o);
    assert!(
        first.contains("state: running\n"),
        "{first}\n{o:?}\n{}",
        d.log()
    );
    assert!(first.contains(&vpe::convert::sha256_hex(&bytes)), "{first}");
    let st = d.wait_loads(2);
    assert!(
        st.contains("loads_ok: 1\n") && st.contains("loads_failed: 1\n"),
        "{st}"
    );
    assert!(st.contains("only elf files are supported"), "{st}");
}

#[test]
fn two_concurrent_cats_both_load_one_after_the_other() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let fx = q(&fixture("hello.be.o"));
    let dev = q(&d.path("vpe1"));
    let o = sh(&format!("cat {fx} > {dev} & cat {fx} > {dev} & wait"));
    assert!(o.status.success(), "{o:?}");
    let st = d.wait_loads(2);
    assert!(st.contains("loads_ok: 2\n"), "{st}");
    assert!(st.contains("state: running\n"), "{st}");
}

#[test]
fn a_non_root_user_is_refused() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let as_nobody = |cmd: &str| {
        Command::new("setpriv")
            .args([
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "sh",
                "-c",
                cmd,
            ])
            .output()
            .expect("setpriv")
    };
    // allow_other: the user reaches the mount; default_permissions: the modes apply.
    let o = as_nobody(&format!("cat {}", q(&d.path("status"))));
    assert!(o.status.success(), "status is world-readable: {o:?}");
    let o = as_nobody(&format!(
        "cat {} > {}",
        q(&fixture("hello.be.o")),
        q(&d.path("vpe1"))
    ));
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("Permission denied"),
        "{o:?}"
    );
    let o = as_nobody(&format!("echo 1 > {}", q(&d.path("kill"))));
    assert!(!o.status.success(), "{o:?}");
    assert!(d.status().contains("loads_ok: 0\n"));
    let o = sh(&format!("ls -l {}", q(&d.mnt)));
    let ls = stdout(&o);
    assert!(o.status.success(), "{o:?}");
    assert!(
        ls.lines()
            .any(|l| l.starts_with("-rw------- ") && l.ends_with(" vpe1")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with("--w------- ") && l.ends_with(" kill")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with("-r--r--r-- ") && l.ends_with(" status.json")),
        "{ls}"
    );
}

#[test]
fn sigterm_unmounts_and_a_stale_mount_is_cleaned_at_start() {
    if !can_mount() {
        return;
    }
    let mut d = Daemon::start(&[]);
    let st = d.terminate().expect("exits on SIGTERM");
    assert!(st.success(), "{st:?}\n{}", d.log());
    assert!(!mounted(&d.mnt), "mount left behind");

    // SIGKILL leaves a dead mount ("Transport endpoint is not connected"); a new daemon
    // detaches it and mounts again.
    d.spawn(&[], &[]);
    d.signal(Signal::SIGKILL);
    if let Some(mut c) = d.child.take() {
        let _ = c.wait();
    }
    let e = std::fs::metadata(d.path("status")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN), "{e}");
    d.spawn(&[], &[]);
    assert!(d.status().contains("backend: sim\n"));
    assert!(d.log().contains("stale FUSE mount"));
}

#[test]
fn bind_dev_makes_a_plain_path_the_device() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let devpath = dir.path().join("vpe1");
    let mut d = Daemon::start(&["--bind-dev", devpath.to_str().unwrap()]);
    d.extra_mounts.push(devpath.clone());
    assert!(mounted(&devpath));
    let o = sh(&format!(
        "cat {} > {}",
        q(&fixture("hello.be.o")),
        q(&devpath)
    ));
    assert!(o.status.success(), "{o:?}\n{}", d.log());
    let st = d.wait_loads(1);
    assert!(st.contains("state: running\n"), "{st}");
    let st = d.terminate().expect("exits");
    assert!(st.success());
    assert!(!mounted(&devpath) && !mounted(&d.mnt));
}

#[test]
fn group_makes_vpe1_writable_by_that_group_only() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--group", "nogroup"]);
    let meta = std::fs::metadata(d.path("vpe1")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.mode() & 0o777, meta.gid()), (0o660, 65534));
    let run = |gid: &str| {
        Command::new("setpriv")
            .args(["--reuid=65534", gid, "--clear-groups", "sh", "-c"])
            .arg(format!(
                "cat {} > {}",
                q(&fixture("hello.be.o")),
                q(&d.path("vpe1"))
            ))
            .output()
            .expect("setpriv")
    };
    let o = run("--regid=1");
    assert!(!o.status.success(), "another group is refused: {o:?}");
    let o = run("--regid=65534");
    assert!(o.status.success(), "{o:?}");
    assert!(d.wait_loads(1).contains("state: running\n"));
    // kill stays root-only (0200 root).
    let o = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "sh",
            "-c",
        ])
        .arg(format!("echo 1 > {}", q(&d.path("kill"))))
        .output()
        .unwrap();
    assert!(!o.status.success(), "{o:?}");
}

#[test]
fn a_missing_remoteproc_fails_cleanly_without_a_mount() {
    if !can_mount() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    std::fs::create_dir_all(dir.path().join("sys/class/remoteproc")).unwrap();
    let sys = dir.path().join("sys");
    let fw = dir.path().join("fw");
    let err = start_refused(
        &mnt,
        [
            "--backend".as_ref(),
            "sysfs".as_ref(),
            "--rproc".as_ref(),
            "mips-cpu1".as_ref(),
            "--sysfs-root".as_ref(),
            sys.as_os_str(),
            "--firmware-dir".as_ref(),
            fw.as_os_str(),
        ],
    );
    assert!(err.contains("mips-cpu1"), "{err}");
    assert!(!mounted(&mnt));
}

/// The benchmark floor of scripts/bench-fuse: with the hidden `--bench-noop`, writes to vpe1
/// succeed and vanish (nothing loads), while status still answers. Without this the floor
/// the FUSE figures are compared against could silently be doing our work.
#[test]
fn bench_noop_swallows_vpe1_writes_and_loads_nothing() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--bench-noop"]);
    let o = cat_to_vpe1(&d, "hello.be.o");
    assert!(o.status.success(), "{o:?}");
    let o = sh(&format!("echo junk > {}", q(&d.path("vpe1"))));
    assert!(o.status.success(), "{o:?}");
    let st = d.status();
    assert!(st.contains("state: offline\n"), "{st}");
    assert_eq!(Daemon::loads(&st), 0, "{st}");
}
