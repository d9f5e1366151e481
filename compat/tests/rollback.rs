//! Failing sysfs writes through a real mount: the daemon (`--backend sysfs`) drives a fake
//! sysfs served over FUSE by this test ([`support::fakesys`]), which applies remoteproc's
//! sysfs rules and returns errnos from `write(2)` where the test arms a fault. Loads go through
//! `<mount>/vpe1` as a legacy loader's would (host byte order: little-endian fixtures).
//!
//! * a refused start rolls back to the previous firmware, which runs again; `status` reports
//!   both; the write sequence is exactly stop / firmware=B / start (fails) / firmware=A / start;
//! * with `--no-rollback` the processor stays offline with B configured, and `status` says so;
//! * a failing `stop` is a clear error in `status` and changes no firmware.
//! * the fake itself answers with the kernel's errnos (so the above rest on its rules);
//! * `--bring-up` hands CPU 1 to the MIPS remoteproc driver before the instance exists.

mod support;

use std::path::{Path, PathBuf};

use support::fakesys::{AttrWrite, FakeSys, Fault, Op, Which};
use support::*;
use vpe::remoteproc::sysfs::{sha256_hex, LOCK_FILE};
use vpe::remoteproc::RprocState;

const RPROC: &str = "mips-cpu1";
/// Where the daemon installs firmware for it, relative to the firmware directory.
const PREFIX: &str = "vpe-compat/mips-cpu1";

/// Fields drop in declaration order: the daemon goes before the fake sysfs it uses.
struct World {
    d: Daemon,
    sys: FakeSys,
    fw: tempfile::TempDir,
    /// The attribute writes the daemon made while starting (its recovery policy).
    startup_writes: Vec<AttrWrite>,
}

fn world(extra: &[&str]) -> World {
    world_on(FakeSys::mount, extra)
}

fn world_on(mount: fn(&str, &Path) -> FakeSys, extra: &[&str]) -> World {
    let fw = tempfile::tempdir().unwrap();
    let sys = mount(RPROC, fw.path());
    let root = sys.root().display().to_string();
    let fwdir = fw.path().display().to_string();
    let mut args = vec![
        "--backend",
        "sysfs",
        "--rproc",
        RPROC,
        "--sysfs-root",
        &root,
        "--firmware-dir",
        &fwdir,
    ];
    args.extend_from_slice(extra);
    let d = Daemon::start(&args);
    let startup_writes = sys.take_writes();
    World {
        d,
        sys,
        fw,
        startup_writes,
    }
}

impl World {
    /// The firmware directory of `mips-cpu1`.
    fn subdir(&self) -> PathBuf {
        self.fw.path().join(PREFIX)
    }

    /// Files in the firmware directory of `mips-cpu1` (the instance lock aside), sorted.
    fn installed(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(self.subdir())
            .map(|d| {
                d.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .filter(|n| n != LOCK_FILE)
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// Load `fixture` through `vpe1` and wait until the daemon has finished the `n`th load.
    fn load(&self, fixture: &str, n: u64) -> String {
        write_file(&self.d.path("vpe1"), &fixture_bytes(fixture)).unwrap();
        self.d.wait_loads(n)
    }

    /// Load A with no fault armed and check it runs; returns its firmware name.
    fn load_a(&self) -> String {
        let st = self.load("hello.le.o", 1);
        assert!(st.contains("loads_ok: 1\n"), "{st}\n{}", self.d.log());
        let a = self.sys.firmware();
        assert_eq!(self.sys.state(), RprocState::Running, "{st}");
        assert_eq!(self.sys.boots(), vec![a.clone()]);
        // Offline at first: no stop, just firmware then start.
        assert_eq!(
            self.sys.take_writes(),
            vec![
                AttrWrite::ok("firmware", &a),
                AttrWrite::ok("state", "start")
            ]
        );
        assert_eq!(field(&st, "firmware"), Some(a.as_str()), "{st}");
        check_installed_name(&self.fw.path().join(&a), &a);
        a
    }
}

/// `vpe-compat/mips-cpu1/<sha256 of the content>.elf`, as sysfs.rs installs it.
fn check_installed_name(path: &Path, name: &str) {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert_eq!(name, format!("{PREFIX}/{}.elf", sha256_hex(&bytes)));
}

fn file_of(name: &str) -> String {
    name.strip_prefix(&format!("{PREFIX}/"))
        .unwrap_or_else(|| panic!("{name} is not in {PREFIX}/"))
        .to_string()
}

/// The value of `key: value` in the status text.
fn field<'a>(st: &'a str, key: &str) -> Option<&'a str> {
    st.lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(": "))
}

/// Make the fake kernel refuse the start of every firmware but `a` with `errno`, load
/// `features.le.o` (load number 2); returns its status, the attribute writes it caused and
/// the name it was installed under (B).
fn refuse_all_but(w: &mut World, a: &str, errno: i32) -> (String, Vec<AttrWrite>, String) {
    w.sys.inject(Fault {
        op: Op::Start,
        firmware: Which::Not(a.to_string()),
        errno,
        times: None,
    });
    let st = w.load("features.le.o", 2);
    assert!(w.d.alive(), "{}", w.d.log());
    let writes = w.sys.take_writes();
    let b = writes
        .iter()
        .find(|x| x.attr == "firmware")
        .map(|x| x.value.clone())
        .unwrap_or_else(|| panic!("no firmware write: {writes:?}"));
    assert_ne!(b, a);
    (st, writes, b)
}

#[test]
fn a_refused_start_rolls_back_to_the_previous_firmware_through_a_real_mount() {
    if !can_mount() {
        return;
    }
    let mut w = world(&[]);
    let a = w.load_a();
    let a_bytes = std::fs::read(w.fw.path().join(&a)).unwrap();

    // The kernel refuses every image but A (as it would an image its ELF checks reject).
    let (st, writes, b) = refuse_all_but(&mut w, &a, libc::EINVAL);
    assert_eq!(
        writes,
        vec![
            // The open of vpe1 stops A (vpe_open), then the load configures and starts B.
            AttrWrite::ok("state", "stop"),
            AttrWrite::ok("firmware", &b),
            AttrWrite::failed("state", "start", libc::EINVAL),
            AttrWrite::ok("firmware", &a),
            AttrWrite::ok("state", "start"),
        ]
    );
    // The fake kernel runs A again.
    assert_eq!(w.sys.state(), RprocState::Running);
    assert_eq!(w.sys.firmware(), a);
    assert_eq!(w.sys.boots(), vec![a.clone(), a.clone()]);
    assert_eq!(
        std::fs::read_to_string(w.sys.dev_dir().join("firmware")).unwrap(),
        format!("{a}\n")
    );

    // status: the load failed, the failure and the rollback are both reported.
    let get = |k| field(&st, k).unwrap_or_else(|| panic!("no {k} in:\n{st}"));
    assert_eq!(get("loads_ok"), "1", "{st}");
    assert_eq!(get("loads_failed"), "1", "{st}");
    assert_eq!(get("last_result"), "failed", "{st}");
    assert_eq!(get("last_error_phase"), "start", "{st}");
    assert_eq!(get("last_error_errno"), libc::EIO.to_string(), "{st}");
    let failed = get("rollback_failed_error");
    assert!(
        failed.contains(r#"writing "start" to state failed: EINVAL (Boot failed: -22"#),
        "{st}"
    );
    assert_eq!(get("last_error"), failed, "{st}");
    assert_eq!(get("rollback_restored_firmware"), a, "{st}");
    assert_eq!(get("rollback_restored_state"), "running", "{st}");
    assert_eq!(get("firmware"), a, "{st}");
    assert_eq!(get("state"), "running", "{st}");
    let js = w.d.status_json();
    assert_eq!(js["rollback"]["restored_firmware"], a.as_str(), "{js}");
    assert_eq!(js["rollback"]["restored_state"], "running", "{js}");

    // The failure is logged once (the backend, its start sequence and the daemon each
    // logged it before).
    let log = w.d.log();
    assert_eq!(
        log.matches(r#"writing "start" to state failed: EINVAL"#)
            .count(),
        1,
        "{log}"
    );
    // A is kept (it runs, and recovery re-reads it); B, which never ran, is removed.
    assert_eq!(w.installed(), vec![file_of(&a)]);
    assert_eq!(std::fs::read(w.fw.path().join(&a)).unwrap(), a_bytes);

    // The daemon goes on: once the kernel accepts B, B runs and the rollback is gone.
    w.sys.clear_faults();
    let st = w.load("features.le.o", 3);
    assert_eq!(field(&st, "loads_ok"), Some("2"), "{st}");
    assert_eq!(field(&st, "firmware"), Some(b.as_str()), "{st}");
    assert_eq!(field(&st, "rollback_restored_firmware"), None, "{st}");
    assert_eq!(w.sys.state(), RprocState::Running);
    assert_eq!(w.sys.firmware(), b);
    assert_eq!(
        w.sys.take_writes(),
        vec![
            AttrWrite::ok("state", "stop"),
            AttrWrite::ok("firmware", &b),
            AttrWrite::ok("state", "start"),
        ]
    );
    assert_eq!(w.installed(), vec![file_of(&b)]);
    check_installed_name(&w.fw.path().join(&b), &b);
    assert!(w.d.alive());
}

#[test]
fn with_no_rollback_a_refused_start_leaves_the_processor_offline_with_the_new_firmware() {
    if !can_mount() {
        return;
    }
    let mut w = world(&["--no-rollback"]);
    let a = w.load_a();
    let (st, writes, b) = refuse_all_but(&mut w, &a, libc::EIO);
    assert_eq!(
        writes,
        vec![
            AttrWrite::ok("state", "stop"),
            AttrWrite::ok("firmware", &b),
            AttrWrite::failed("state", "start", libc::EIO),
        ]
    );
    assert_eq!(w.sys.state(), RprocState::Offline);
    assert_eq!(w.sys.firmware(), b);
    assert_eq!(w.sys.boots(), vec![a.clone()]);

    let get = |k| field(&st, k).unwrap_or_else(|| panic!("no {k} in:\n{st}"));
    assert_eq!(get("loads_failed"), "1", "{st}");
    assert_eq!(get("last_error_phase"), "start", "{st}");
    assert!(
        get("last_error").contains(r#"writing "start" to state failed: EIO"#),
        "{st}"
    );
    assert_eq!(get("state"), "offline", "{st}");
    // status's `firmware` is what remoteproc is configured with (status.rs): here B.
    assert_eq!(get("firmware"), b, "{st}");
    assert!(
        !st.lines().any(|l| l.starts_with("rollback_")),
        "no rollback happened, status claims one:\n{st}"
    );
    assert!(w.d.status_json()["rollback"].is_null());
    let log = w.d.log();
    assert!(
        log.contains(&format!("not rolling back to {a} (rollback disabled)")),
        "{log}"
    );
    // Nothing is deleted on a failed start: B is configured, A stays for a later rollback.
    assert_eq!(w.installed(), {
        let mut v = vec![file_of(&a), file_of(&b)];
        v.sort();
        v
    });
}

#[test]
fn a_failing_stop_is_a_clear_error_and_changes_no_firmware() {
    if !can_mount() {
        return;
    }
    let mut w = world(&[]);
    let a = w.load_a();
    w.sys.inject(Fault {
        op: Op::Stop,
        firmware: Which::Any,
        errno: libc::EIO,
        times: None,
    });

    // `kill` (vpe.c store_kill) stops the program: the write succeeds, status has the error.
    write_file(&w.d.path("kill"), b"1\n").unwrap();
    let st = w.d.status();
    let get = |st: &str, k: &str| {
        field(st, k)
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {k} in:\n{st}"))
    };
    assert_eq!(get(&st, "last_error_phase"), "stop", "{st}");
    assert!(
        get(&st, "last_error")
            .contains(r#"remoteproc mips-cpu1: writing "stop" to state failed: EIO"#),
        "{st}"
    );
    assert_eq!(get(&st, "last_error_errno"), libc::EIO.to_string(), "{st}");
    assert_eq!(get(&st, "loads_failed"), "0", "a stop is not a load:\n{st}");
    assert_eq!(get(&st, "state"), "running", "{st}");
    assert_eq!(
        w.sys.take_writes(),
        vec![AttrWrite::failed("state", "stop", libc::EIO)]
    );

    // A load while stop keeps failing: the open's stop and the load's stop fail; with
    // nothing changed there is no rollback to try, no firmware write, A keeps running.
    let st = w.load("features.le.o", 2);
    assert!(w.d.alive(), "{}", w.d.log());
    assert_eq!(
        w.sys.take_writes(),
        vec![AttrWrite::failed("state", "stop", libc::EIO); 2]
    );
    assert_eq!(w.sys.state(), RprocState::Running);
    assert_eq!(w.sys.firmware(), a);
    assert_eq!(w.sys.boots(), vec![a.clone()]);
    assert_eq!(get(&st, "loads_failed"), "1", "{st}");
    assert_eq!(get(&st, "last_error_phase"), "start", "{st}");
    let err = get(&st, "last_error");
    assert!(
        err.contains(r#"writing "stop" to state failed: EIO"#),
        "{st}"
    );
    assert!(!err.contains("rollback"), "nothing was rolled back:\n{st}");
    assert_eq!(get(&st, "firmware"), a, "{st}");
    assert_eq!(get(&st, "state"), "running", "{st}");
    assert!(!st.lines().any(|l| l.starts_with("rollback_")), "{st}");
    // A is still installed (it runs); B was installed but never configured.
    assert!(w.installed().contains(&file_of(&a)), "{:?}", w.installed());
}

/// The fake itself, through the same `write(2)` path the daemon uses: the kernel's errnos
/// reach the writer, and the log records every write in order.
#[test]
fn the_fake_sysfs_returns_the_kernels_errnos() {
    use vpe::remoteproc::sysfs::{AttrIo, RealAttrIo};
    if !can_mount() {
        return;
    }
    let fw = tempfile::tempdir().unwrap();
    let sys = FakeSys::mount(RPROC, fw.path());
    let dev = sys.dev_dir();
    let read = |a: &str| RealAttrIo.read(&dev.join(a)).unwrap();
    let write = |a: &str, v: &str| {
        RealAttrIo
            .write(&dev.join(a), v)
            .map_err(|e| e.raw_os_error())
    };
    let mut names: Vec<String> = std::fs::read_dir(sys.root().join("class/remoteproc"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names, vec!["remoteproc0"]);
    assert_eq!(read("name"), "mips-cpu1\n");
    assert_eq!(read("state"), "offline\n");
    assert_eq!(read("firmware"), "rproc-mips-cpu1-fw\n");
    let e = std::fs::OpenOptions::new()
        .write(true)
        .open(dev.join("name"))
        .unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::EACCES));

    let conv = vpe::convert::convert(
        &fixture_bytes("hello.le.o"),
        &vpe::convert::Options::default(),
    )
    .unwrap();
    std::fs::write(fw.path().join("good.elf"), &conv.firmware).unwrap();
    std::fs::write(fw.path().join("bad.elf"), b"not an ELF").unwrap();

    assert_eq!(write("state", "stop"), Err(Some(libc::EINVAL)));
    assert_eq!(write("state", "bogus"), Err(Some(libc::EINVAL)));
    // The default name is not in the firmware directory.
    assert_eq!(write("state", "start"), Err(Some(libc::ENOENT)));
    assert_eq!(write("firmware", "\n"), Err(Some(libc::EINVAL)));
    assert_eq!(write("firmware", "../good.elf"), Ok(()));
    assert_eq!(write("state", "start"), Err(Some(libc::EINVAL)));
    assert_eq!(write("firmware", "bad.elf"), Ok(()));
    // vpe::rproc::check refuses it, as rproc_elf_sanity_check would.
    assert_eq!(write("state", "start"), Err(Some(libc::EINVAL)));
    assert_eq!(read("state"), "offline\n");
    // Trailing newlines are tolerated, the name is cut at the first one.
    assert_eq!(write("firmware", "good.elf\n"), Ok(()));
    assert_eq!(read("firmware"), "good.elf\n");
    sys.inject(Fault {
        op: Op::Start,
        firmware: Which::Is("good.elf".into()),
        errno: libc::EIO,
        times: Some(1),
    });
    assert_eq!(write("state", "start"), Err(Some(libc::EIO)));
    assert_eq!(read("state"), "offline\n");
    assert_eq!(write("state", "start\n"), Ok(()));
    assert_eq!(read("state"), "running\n");
    assert_eq!(write("state", "start"), Err(Some(libc::EBUSY)));
    assert_eq!(write("firmware", "bad.elf"), Err(Some(libc::EBUSY)));
    assert_eq!(read("firmware"), "good.elf\n");
    assert_eq!(write("state", "stop"), Ok(()));
    assert_eq!(sys.state(), RprocState::Offline);
    assert_eq!(sys.boots(), vec!["good.elf".to_string()]);
    let ok = AttrWrite::ok;
    let failed = AttrWrite::failed;
    assert_eq!(
        sys.writes(),
        vec![
            failed("state", "stop", libc::EINVAL),
            failed("state", "bogus", libc::EINVAL),
            failed("state", "start", libc::ENOENT),
            failed("firmware", "\n", libc::EINVAL),
            ok("firmware", "../good.elf"),
            failed("state", "start", libc::EINVAL),
            ok("firmware", "bad.elf"),
            failed("state", "start", libc::EINVAL),
            ok("firmware", "good.elf\n"),
            failed("state", "start", libc::EIO),
            ok("state", "start\n"),
            failed("state", "start", libc::EBUSY),
            failed("firmware", "bad.elf", libc::EBUSY),
            ok("state", "stop"),
        ]
    );
}

/// The legacy loader had no crash recovery, so by default the daemon writes `disabled` to
/// remoteproc's `recovery` at start-up (once, only if it differs); `--recovery keep` leaves it
/// and `--recovery enabled` asks for the kernel's reboot-on-crash; a kernel without the
/// attribute (before 5.10) is not an error.
#[test]
fn the_recovery_policy_is_applied_at_start_up() {
    if !can_mount() {
        return;
    }
    let w = world(&[]);
    assert_eq!(
        w.startup_writes,
        vec![AttrWrite::ok("recovery", "disabled")]
    );
    assert_eq!(w.sys.recovery(), Some(false));
    // It stays disabled across loads: nothing else writes it.
    w.load_a();
    assert_eq!(w.sys.recovery(), Some(false));
    drop(w);

    let w = world(&["--recovery", "keep"]);
    assert_eq!(w.startup_writes, vec![]);
    assert_eq!(w.sys.recovery(), Some(true), "the kernel's default is kept");
    drop(w);

    // Already enabled: nothing to write.
    let w = world(&["--recovery", "enabled"]);
    assert_eq!(w.startup_writes, vec![]);
    assert_eq!(w.sys.recovery(), Some(true));
    drop(w);

    let w = world_on(|n, d| FakeSys::mount_with(n, d, false), &[]);
    assert_eq!(w.startup_writes, vec![]);
    assert!(
        w.d.status().contains("state: offline\n"),
        "{}",
        w.d.status()
    );
    let log = w.d.log();
    assert!(
        log.contains("no recovery attribute") && log.contains("recovery disabled not applied"),
        "{log}"
    );
    w.load_a();
}

/// A refused `recovery` write stops the start-up, and the message names the instance once:
/// the daemon prefixed every open error with `remoteproc <name>:` although the attribute
/// errors already start that way ("remoteproc mips-cpu1: remoteproc mips-cpu1: writing ...").
#[test]
fn a_refused_recovery_write_names_the_instance_once() {
    if !can_mount() {
        return;
    }
    let fw = tempfile::tempdir().unwrap();
    let sys = FakeSys::mount(RPROC, fw.path());
    sys.inject(Fault {
        op: Op::Recovery,
        firmware: Which::Any,
        errno: libc::EACCES,
        times: None,
    });
    let mnt = tempfile::tempdir().unwrap();
    let err = start_refused(
        mnt.path(),
        [
            "--backend".as_ref(),
            "sysfs".as_ref(),
            "--rproc".as_ref(),
            RPROC.as_ref(),
            "--sysfs-root".as_ref(),
            sys.root().as_os_str(),
            "--firmware-dir".as_ref(),
            fw.path().as_os_str(),
        ],
    );
    assert!(
        err.contains("remoteproc mips-cpu1: writing \"disabled\" to recovery failed: EACCES"),
        "{err}"
    );
    assert_eq!(err.matches("remoteproc mips-cpu1:").count(), 1, "{err}");
    assert_eq!(err.lines().count(), 1, "one line: {err}");
    assert!(!mounted(mnt.path()));
}

/// `--bring-up` on a kernel with the MIPS remoteproc driver (spec §4.2, §6.3): `mips-cpu1`
/// does not exist until CPU 1 is offline and listed in `devices/mips-rproc/cpus`. The daemon
/// takes it offline, lists it, finds the instance the driver registers, and loads go there.
/// Without `--bring-up` it refuses to start and says what to do, changing nothing.
#[test]
fn bring_up_hands_cpu1_to_the_mips_remoteproc_driver() {
    if !can_mount() {
        return;
    }
    let w = world_on(FakeSys::mount_mips, &["--bring-up"]);
    assert_eq!(
        w.startup_writes,
        vec![
            AttrWrite::ok("online", "0"),
            AttrWrite::ok("cpus", "1"),
            AttrWrite::ok("recovery", "disabled"),
        ]
    );
    assert_eq!(w.sys.mips_cpus(), Some((false, vec![1])));
    w.load_a();
    drop(w);

    let fw = tempfile::tempdir().unwrap();
    let sys = FakeSys::mount_mips(RPROC, fw.path());
    let mnt = tempfile::tempdir().unwrap();
    let err = start_refused(
        mnt.path(),
        [
            "--backend".as_ref(),
            "sysfs".as_ref(),
            "--rproc".as_ref(),
            RPROC.as_ref(),
            "--sysfs-root".as_ref(),
            sys.root().as_os_str(),
            "--firmware-dir".as_ref(),
            fw.path().as_os_str(),
        ],
    );
    assert!(
        err.contains("no remoteproc instance named \"mips-cpu1\"")
            && err.contains("pass --bring-up")
            && err.contains("devices/system/cpu/cpu1/online"),
        "{err}"
    );
    assert_eq!(sys.writes(), vec![], "nothing changed without --bring-up");
    assert_eq!(sys.mips_cpus(), Some((true, vec![])));
    assert!(!mounted(mnt.path()));
}

fn mount_tmpfs(at: &Path, size: &str) {
    let o = std::process::Command::new("mount")
        .args([
            "-t",
            "tmpfs",
            "-o",
            &format!("size={size},mode=0755"),
            "tmpfs",
        ])
        .arg(at)
        .output()
        .expect("mount");
    assert!(o.status.success(), "mount tmpfs: {o:?}");
}

struct Umount(PathBuf);
impl Drop for Umount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.0.as_path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

/// A load whose install runs out of space (the firmware directory is a small tmpfs) used to
/// leave the processor offline: the open of `vpe1` had stopped A, and A's firmware was still
/// there. Now A is started again, `status` says so, and the failure is logged once.
#[test]
fn a_failed_install_restarts_the_last_good_firmware() {
    if !can_mount() {
        return;
    }
    let fw = tempfile::tempdir().unwrap();
    mount_tmpfs(fw.path(), "256k");
    let _umount = Umount(fw.path().to_path_buf());
    let sys = FakeSys::mount(RPROC, fw.path());
    let root = sys.root().display().to_string();
    let fwdir = fw.path().display().to_string();
    let d = Daemon::start(&[
        "--backend",
        "sysfs",
        "--rproc",
        RPROC,
        "--sysfs-root",
        &root,
        "--firmware-dir",
        &fwdir,
    ]);
    let w = World {
        d,
        sys,
        fw,
        startup_writes: Vec::new(),
    };
    w.sys.take_writes();
    let a = w.load_a();
    // Fill the file system.
    {
        use std::io::Write;
        let mut f = std::fs::File::create(w.fw.path().join("filler")).unwrap();
        while f.write_all(&[0u8; 4096]).and_then(|_| f.sync_all()).is_ok() {}
    }
    let st = w.load("features.le.o", 2);
    let get = |k| field(&st, k).unwrap_or_else(|| panic!("no {k} in:\n{st}"));
    assert_eq!(get("last_error_phase"), "install", "{st}");
    assert!(
        get("last_error").contains("No space left on device"),
        "{st}"
    );
    assert_eq!(get("loads_failed"), "1", "{st}");
    // A runs again: the open stopped it, the failed load started it again.
    assert_eq!(
        w.sys.take_writes(),
        vec![
            AttrWrite::ok("state", "stop"),
            AttrWrite::ok("firmware", &a),
            AttrWrite::ok("state", "start"),
        ]
    );
    assert_eq!(w.sys.state(), RprocState::Running);
    assert_eq!(w.sys.boots(), vec![a.clone(), a.clone()]);
    assert_eq!(get("state"), "running", "{st}");
    assert_eq!(get("firmware"), a, "{st}");
    assert_eq!(get("rollback_restored_firmware"), a, "{st}");
    assert_eq!(get("rollback_failed_error"), get("last_error"), "{st}");
    assert_eq!(w.installed(), vec![file_of(&a)], "no temp file left");
    // Said once, not "installing the firmware failed: installing firmware ... failed".
    let log = w.d.log();
    assert_eq!(log.matches("No space left on device").count(), 1, "{log}");
    assert!(!log.contains("installing the firmware failed"), "{log}");
}

/// Two daemons for one remote processor: the second refuses to start, naming the first
/// (its pid, from the instance lock), and changes nothing.
#[test]
fn a_second_daemon_for_the_same_instance_refuses_to_start() {
    if !can_mount() {
        return;
    }
    let w = world(&[]);
    let a = w.load_a();
    let mnt = tempfile::tempdir().unwrap();
    let err = start_refused(
        mnt.path(),
        [
            "--backend".as_ref(),
            "sysfs".as_ref(),
            "--rproc".as_ref(),
            RPROC.as_ref(),
            "--sysfs-root".as_ref(),
            w.sys.root().as_os_str(),
            "--firmware-dir".as_ref(),
            w.fw.path().as_os_str(),
        ],
    );
    assert!(
        err.contains(&format!(
            "remoteproc mips-cpu1: process {} (vpe-compat) already drives this instance",
            w.d.pid()
        )) && err.contains("vpe-compat/mips-cpu1/.lock"),
        "{err}"
    );
    assert_eq!(
        w.sys.take_writes(),
        vec![],
        "the second daemon wrote to sysfs"
    );
    assert!(!mounted(mnt.path()));
    assert_eq!(w.sys.state(), RprocState::Running);
    assert_eq!(w.installed(), vec![file_of(&a)]);
}

/// Issue 14 point 16: a file that already is remoteproc firmware, written to `vpe1`, is
/// installed and started unchanged when it passes the kernel's rules for this host's byte
/// order and the profile; `status` and the log say so. `--no-passthrough` refuses it, and so
/// does the check for the other byte order.
#[test]
fn remoteproc_firmware_written_to_vpe1_is_installed_unchanged() {
    if !can_mount() {
        return;
    }
    let convert = |fixture: &str| {
        vpe::convert::convert(&fixture_bytes(fixture), &vpe::convert::Options::default()).unwrap()
    };
    let conv = convert("hello.le.o");
    let w = world(&[]);
    write_file(&w.d.path("vpe1"), &conv.firmware).unwrap();
    let st = w.d.wait_loads(1);
    let get = |st: &str, k: &str| {
        field(st, k)
            .map(str::to_string)
            .unwrap_or_else(|| panic!("no {k} in:\n{st}"))
    };
    assert_eq!(get(&st, "loads_ok"), "1", "{st}\n{}", w.d.log());
    assert_eq!(
        get(&st, "passthrough"),
        "yes (remoteproc firmware installed unchanged)",
        "{st}"
    );
    let name = w.sys.firmware();
    assert_eq!(w.sys.boots(), vec![name.clone()]);
    assert_eq!(
        std::fs::read(w.fw.path().join(&name)).unwrap(),
        conv.firmware,
        "installed byte for byte"
    );
    assert_eq!(get(&st, "sha256"), sha256_hex(&conv.firmware), "{st}");
    // `entry` is __start, where the firmware's trampoline jumps.
    assert_eq!(
        get(&st, "entry"),
        format!("{:#010x}", conv.legacy.entry),
        "{st}"
    );
    assert!(
        w.d.log().contains("installing it unchanged (passthrough"),
        "{}",
        w.d.log()
    );

    // The other byte order: the kernel's message, nothing installed or started.
    let be = convert("hello.be.o");
    write_file(&w.d.path("vpe1"), &be.firmware).unwrap();
    let st = w.d.wait_loads(2);
    assert_eq!(get(&st, "loads_failed"), "1", "{st}");
    assert!(
        get(&st, "last_error").contains("Unsupported firmware endianness"),
        "{st}"
    );
    // `firmware`..`passthrough` still describe the last firmware that started; the refused
    // attempt is only in the last_attempt*/last_error* lines.
    assert!(field(&st, "passthrough").is_some(), "{st}");
    assert_eq!(
        get(&st, "last_attempt_sha256"),
        sha256_hex(&be.firmware),
        "{st}"
    );
    assert_eq!(w.sys.boots(), vec![name.clone()]);
    drop(w);

    let w = world(&["--no-passthrough"]);
    write_file(&w.d.path("vpe1"), &conv.firmware).unwrap();
    let st = w.d.wait_loads(1);
    assert_eq!(get(&st, "loads_failed"), "1", "{st}");
    assert!(
        get(&st, "last_error").contains("input already has a .resource_table"),
        "{st}"
    );
    assert_eq!(w.sys.boots(), Vec::<String>::new());
}

/// A loader looping loads logged three backend lines per good load (installed, running,
/// superseded firmware removed) and the rollback story of every failed one on top of the
/// daemon's own line, none rate-limited. The backend's per-load lines are at debug now;
/// the daemon's own lines (one per load, rate-limited) tell the outcome.
#[test]
fn a_loop_of_loads_logs_a_bounded_number_of_lines() {
    if !can_mount() {
        return;
    }
    let w = world(&[]);
    let a = w.load_a();
    let t = std::time::Instant::now();
    let n = 30;
    for i in 0..n {
        let fixture = if i % 2 == 0 {
            "features.le.o"
        } else {
            "hello.le.o"
        };
        let st = w.load(fixture, i + 2);
        assert_eq!(field(&st, "last_result"), Some("ok"), "{st}");
    }
    // Every start but A's fails now: each load is rolled back to A.
    w.sys.inject(Fault {
        op: Op::Start,
        firmware: Which::Not(a.clone()),
        errno: libc::EIO,
        times: None,
    });
    w.load("hello.le.o", n + 2);
    for i in 0..n {
        let st = w.load("features.le.o", n + 3 + i);
        assert_eq!(
            field(&st, "rollback_restored_firmware"),
            Some(a.as_str()),
            "{st}"
        );
    }
    let log = w.d.log();
    let windows = t.elapsed().as_secs() / 5 + 1;
    // Log records (a multi-line warning is one): the start-up lines, then per 5 s window at
    // most 10 of each kind (started, conversion warnings, failed loads with their rollback
    // line) and their summaries. Before: ~4 per load.
    let lines = log.lines().filter(|l| l.starts_with('[')).count() as u64;
    let rolled = log.lines().filter(|l| l.contains("rolled back")).count() as u64;
    assert!(rolled <= 10 * windows, "{rolled}:\n{log}");
    assert!(
        lines <= 6 + 48 * windows,
        "{lines} lines for {} loads in {:?}:\n{log}",
        2 * n + 2,
        t.elapsed()
    );
    assert!(!log.contains("] installed "), "{log}");
}
