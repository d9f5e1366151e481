//! Faults with the sysfs backend (host byte order: little-endian inputs) against a fake sysfs tree in a temp dir (regular files:
//! `class/remoteproc/remoteproc0/{name,state,firmware}`; nothing flips `state` to running, so
//! these tests look at what the install leaves behind, not at a start):
//! * `kill -9` in the middle of an install (a test-only pause keeps the temp file written but
//!   not renamed), then a restart: no partial firmware under its final name, the stale temp
//!   file removed, the stale FUSE mount detached and mounted again;
//! * planted symlinks (at the final name, at the temp names, as the subdirectory) redirect no
//!   write;
//! * a full firmware file system (a 64 KiB tmpfs): a clear ENOSPC error in `status`, the
//!   previous firmware and the `firmware` attribute untouched, no temp file left.
//!
//! Failing sysfs writes (errnos, which regular files cannot return) and rollback are tested
//! through a real mount in `compat/tests/rollback.rs`, against a fake sysfs served over FUSE
//! (`support/fakesys.rs`); the library-level cases are in `tests/sysfs_backend.rs`.

mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use support::*;

struct Tree {
    _dir: tempfile::TempDir,
    sys: PathBuf,
    dev: PathBuf,
    fw: PathBuf,
}

fn tree() -> Tree {
    let dir = tempfile::tempdir().unwrap();
    let sys = dir.path().join("sys");
    let dev = sys.join("class/remoteproc/remoteproc0");
    std::fs::create_dir_all(&dev).unwrap();
    std::fs::write(dev.join("name"), "mips-cpu1\n").unwrap();
    std::fs::write(dev.join("state"), "offline\n").unwrap();
    std::fs::write(dev.join("firmware"), "rproc-mips-cpu1-fw\n").unwrap();
    let fw = dir.path().join("fw");
    std::fs::create_dir(&fw).unwrap();
    Tree {
        _dir: dir,
        sys,
        dev,
        fw,
    }
}

fn sysfs_args(t: &Tree) -> Vec<String> {
    vec![
        "--backend".into(),
        "sysfs".into(),
        "--rproc".into(),
        "mips-cpu1".into(),
        "--sysfs-root".into(),
        t.sys.display().to_string(),
        "--firmware-dir".into(),
        t.fw.display().to_string(),
    ]
}

fn names(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n != vpe::remoteproc::sysfs::LOCK_FILE)
        .collect();
    v.sort();
    v
}

#[test]
fn kill_9_during_an_install_leaves_nothing_partial_and_a_restart_cleans_up() {
    if !can_mount() {
        return;
    }
    let t = tree();
    let args = sysfs_args(&t);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Daemon::start_env(&args, &[("VPE_TEST_INSTALL_PAUSE_MS", "20000")]);
    let sub = t.fw.join("vpe-compat/mips-cpu1");
    write_file(&d.path("vpe1"), &fixture_bytes("hello.le.o")).unwrap();

    // Wait until the install has its temp file written (and is paused before the rename).
    let start = Instant::now();
    while !names(&sub).iter().any(|n| n.ends_with(".tmp")) {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "no temp file appeared: {:?}\n{}",
            names(&sub),
            d.log()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    d.kill9();
    let left = names(&sub);
    assert_eq!(left.len(), 1, "{left:?}");
    assert!(
        left[0].starts_with('.') && left[0].ends_with(".tmp"),
        "{left:?}"
    );
    assert!(
        !left.iter().any(|n| n.ends_with(".elf")),
        "partial firmware visible: {left:?}"
    );
    assert_eq!(
        std::fs::read_to_string(t.dev.join("firmware")).unwrap(),
        "rproc-mips-cpu1-fw\n",
        "the firmware attribute must not name anything of the interrupted install"
    );
    let e = std::fs::metadata(d.path("status")).unwrap_err();
    assert_eq!(e.raw_os_error(), Some(libc::ENOTCONN), "{e}");

    // Restart: the stale mount is detached, the stale temp file removed.
    d.spawn(&args, &[]);
    assert!(d.alive());
    assert!(names(&sub).is_empty(), "{:?}", names(&sub));
    let st = d.status();
    assert!(st.contains("backend: sysfs"), "{st}");
    let log = d.log();
    assert!(log.contains("stale FUSE mount"), "{log}");
    assert!(log.contains("stale temp file"), "{log}");
}

fn mount_tmpfs(at: &Path, size: &str) -> bool {
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
    if !o.status.success() {
        eprintln!("mount tmpfs: {o:?}");
    }
    o.status.success()
}

struct Umount(PathBuf);
impl Drop for Umount {
    fn drop(&mut self) {
        let _ = nix::mount::umount2(self.0.as_path(), nix::mount::MntFlags::MNT_DETACH);
    }
}

#[test]
fn a_full_firmware_filesystem_is_a_clear_error_and_keeps_the_previous_firmware() {
    if !can_mount() {
        return;
    }
    let t = tree();
    assert!(
        mount_tmpfs(&t.fw, "64k"),
        "cannot mount a tmpfs (root only)"
    );
    let _guard = Umount(t.fw.clone());
    let sub = t.fw.join("vpe-compat/mips-cpu1");
    std::fs::create_dir_all(&sub).unwrap();
    // The previous firmware, named by the attribute.
    let prev = vec![0x5au8; 4096];
    let prev_name = format!("{}.elf", "ab".repeat(32));
    std::fs::write(sub.join(&prev_name), &prev).unwrap();
    std::fs::write(
        t.dev.join("firmware"),
        format!("vpe-compat/mips-cpu1/{prev_name}\n"),
    )
    .unwrap();
    // Fill the rest of the file system.
    let filler = t.fw.join("filler");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&filler).unwrap();
        let chunk = [0u8; 4096];
        while f.write_all(&chunk).and_then(|_| f.sync_all()).is_ok() {}
    }

    let args = sysfs_args(&t);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut d = Daemon::start(&args);
    write_file(&d.path("vpe1"), &fixture_bytes("features.le.o")).unwrap();
    let st = d.wait_loads(1);
    assert!(d.alive());
    assert!(st.contains("loads_failed: 1\n"), "{st}");
    assert!(st.contains("last_error_phase: install\n"), "{st}");
    let last = st
        .lines()
        .find(|l| l.starts_with("last_error: "))
        .unwrap_or_default();
    assert!(
        last.contains("installing firmware") && last.contains("No space left on device"),
        "{st}"
    );
    assert_eq!(std::fs::read(sub.join(&prev_name)).unwrap(), prev);
    assert_eq!(
        names(&sub),
        vec![prev_name.clone()],
        "temp file left behind"
    );
    assert_eq!(
        std::fs::read_to_string(t.dev.join("firmware")).unwrap(),
        format!("vpe-compat/mips-cpu1/{prev_name}\n")
    );
}

#[test]
fn planted_symlinks_in_the_firmware_directory_redirect_nothing() {
    if !can_mount() {
        return;
    }
    let t = tree();
    let args = sysfs_args(&t);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start(&args);
    let sub = t.fw.join("vpe-compat/mips-cpu1");
    let image = fixture_bytes("hello.le.o");
    // A first load tells the file name (the fake tree never runs it: `state` stays a file).
    write_file(&d.path("vpe1"), &image).unwrap();
    let st = d.wait_loads(1);
    let file = names(&sub)
        .into_iter()
        .find(|n| n.ends_with(".elf"))
        .unwrap_or_else(|| panic!("no firmware installed: {:?}\n{st}", names(&sub)));
    let fw_bytes = std::fs::read(sub.join(&file)).unwrap();
    std::fs::remove_file(sub.join(&file)).unwrap();

    // Plant symlinks to a victim at the final name and at the first temp names.
    let victim = t.sys.parent().unwrap().join("victim");
    std::fs::write(&victim, "precious\n").unwrap();
    let pid = d.pid();
    std::os::unix::fs::symlink(&victim, sub.join(&file)).unwrap();
    for n in 0..3 {
        std::os::unix::fs::symlink(&victim, sub.join(format!(".{file}.{pid}.{n}.tmp"))).unwrap();
    }
    write_file(&d.path("vpe1"), &image).unwrap();
    d.wait_loads(2);
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious\n");
    let meta = std::fs::symlink_metadata(sub.join(&file)).unwrap();
    assert!(
        meta.file_type().is_file(),
        "the final name is a regular file"
    );
    assert_eq!(std::fs::read(sub.join(&file)).unwrap(), fw_bytes);
    // The planted temp names were left alone (never followed, never written through).
    for n in 0..3 {
        let p = sub.join(format!(".{file}.{pid}.{n}.tmp"));
        assert!(std::fs::symlink_metadata(&p)
            .unwrap()
            .file_type()
            .is_symlink());
    }
    // A symlinked subdirectory is refused outright.
    drop(d);
    std::fs::remove_dir_all(&sub).unwrap();
    let elsewhere = t.sys.parent().unwrap().join("elsewhere");
    std::fs::create_dir(&elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &sub).unwrap();
    let err = start_refused(t.sys.parent().unwrap(), &args);
    assert!(
        err.contains("is a symlink; refusing to install firmware through it"),
        "{err}"
    );
    assert!(names(&elsewhere).is_empty());
}

/// A `state` that reads no remoteproc word was shown as "invalid" (remoteproc's own word for
/// an out-of-range state): `status` and the error now show the text as read, escaped. In this
/// plain-file tree, writing `start` over `offline\n` leaves `startne\n`.
#[test]
fn a_state_that_is_no_remoteproc_word_is_shown_as_read() {
    if !can_mount() {
        return;
    }
    let t = tree();
    let args = sysfs_args(&t);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let d = Daemon::start(&args);
    write_file(&d.path("vpe1"), &fixture_bytes("hello.le.o")).unwrap();
    let st = d.wait_loads(1);
    assert!(st.contains("state: unknown (\"startne\")\n"), "{st}");
    assert!(
        st.contains("returned success but state reads unknown (\"startne\")"),
        "{st}"
    );
    // Control characters are escaped, not passed to status readers.
    std::fs::write(t.dev.join("state"), "weird\x1b[2J\n").unwrap();
    let st = d.status();
    assert!(st.contains("state: unknown (\"weird\\x1b[2J\")\n"), "{st}");
}
