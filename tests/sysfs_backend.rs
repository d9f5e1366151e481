//! The sysfs backend against a fake sysfs tree and a fake kernel.
//!
//! The tree (`class/remoteproc/remoteprocN/{name,state,firmware}`) is made of regular files in
//! a temp dir. Regular files cannot return errnos, so attribute reads and writes go through
//! [`FakeKernel`], an `AttrIo` that applies the kernel's rules (remoteproc_sysfs.c,
//! remoteproc_core.c, firmware_loader/main.c; spec `remoteproc.md` §3, §6.4 cases 38–44) and
//! mirrors the state into the files. `start` reads the firmware file from the firmware
//! directory and runs `vpe::rproc::check` on it, as `request_firmware` + `rproc_fw_boot` do.

use std::collections::HashMap;
use std::fs;
use std::io;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use vpe::remoteproc::sysfs::{
    check_firmware_name, sha256_hex, AttrIo, Recovery, Sysfs, SysfsOptions, EBUSY, EINVAL, ENOENT,
    LOCK_FILE,
};
use vpe::remoteproc::{Backend, RprocState};

const EBUSY_: i32 = 16;
const EINVAL_: i32 = 22;
const ENOENT_: i32 = 2;

#[derive(Debug)]
struct Dev {
    state: RprocState,
    firmware: String,
}

#[derive(Debug, Default)]
struct Inner {
    devs: HashMap<PathBuf, Dev>,
    /// Every attribute write: (device dir name, attribute, value).
    writes: Vec<(String, String, String)>,
    /// Fail this many coming starts in the driver's start op (-EBUSY).
    fail_starts: u32,
    /// Listing of the firmware subdirectory each time `firmware` was written.
    listings_at_firmware_write: Vec<Vec<String>>,
    /// sha256 of each file `start` booted.
    booted: Vec<String>,
}

/// A fake kernel behind the attribute files.
#[derive(Clone)]
struct FakeKernel {
    firmware_dir: PathBuf,
    subdir: String,
    inner: Arc<Mutex<Inner>>,
}

fn errno(n: i32) -> io::Error {
    io::Error::from_raw_os_error(n)
}

impl FakeKernel {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, dev: &Path, state: RprocState, firmware: &str) {
        fs::write(dev.join("state"), format!("{}\n", state.as_str())).unwrap();
        fs::write(dev.join("firmware"), format!("{firmware}\n")).unwrap();
        self.lock().devs.insert(
            dev.to_path_buf(),
            Dev {
                state,
                firmware: firmware.to_string(),
            },
        );
    }

    fn state(&self, dev: &Path) -> RprocState {
        self.lock().devs[dev].state
    }

    fn firmware(&self, dev: &Path) -> String {
        self.lock().devs[dev].firmware.clone()
    }

    fn writes(&self) -> Vec<(String, String, String)> {
        self.lock().writes.clone()
    }

    fn fail_next_starts(&self, n: u32) {
        self.lock().fail_starts = n;
    }

    /// The firmware directory of `mips-cpu1`, without the instance lock.
    fn listing(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.firmware_dir.join(&self.subdir))
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n != LOCK_FILE)
                    .collect()
            })
            .unwrap_or_default();
        v.sort();
        v
    }

    /// `rproc_boot` as far as the fake goes: request_firmware, the checker, the driver's start.
    fn boot(&self, inner: &mut Inner, fw: &str) -> io::Result<()> {
        // firmware_loader/main.c: empty name or a ".." component → -EINVAL.
        if fw.is_empty() || fw.split('/').any(|c| c == "..") {
            return Err(errno(EINVAL_));
        }
        let bytes = fs::read(self.firmware_dir.join(fw))?;
        let loaded = vpe::rproc::check::check(&bytes, &vpe::rproc::check::Options::default());
        if let Err(e) = loaded {
            return Err(errno(e.errno()));
        }
        if inner.fail_starts > 0 {
            inner.fail_starts -= 1;
            return Err(errno(EBUSY_));
        }
        inner.booted.push(sha256_hex(&bytes));
        Ok(())
    }
}

impl AttrIo for FakeKernel {
    fn read(&self, path: &Path) -> io::Result<String> {
        let (Some(dev), Some(attr)) = (path.parent(), path.file_name()) else {
            return Err(errno(ENOENT_));
        };
        let inner = self.lock();
        match (inner.devs.get(dev), attr.to_str()) {
            (Some(d), Some("state")) => Ok(format!("{}\n", d.state.as_str())),
            (Some(d), Some("firmware")) => Ok(format!("{}\n", d.firmware)),
            _ => fs::read_to_string(path),
        }
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let (Some(dev), Some(attr)) = (path.parent(), path.file_name().and_then(|a| a.to_str()))
        else {
            return Err(errno(ENOENT_));
        };
        let listing = self.listing();
        let mut inner = self.lock();
        let dev_name = dev.file_name().unwrap().to_string_lossy().into_owned();
        inner
            .writes
            .push((dev_name, attr.to_string(), value.to_string()));
        let Some(d) = inner.devs.get(dev) else {
            return Err(errno(ENOENT_));
        };
        let (state, firmware) = (d.state, d.firmware.clone());
        let word = value.strip_suffix('\n').unwrap_or(value);
        let (new_state, new_fw) = match attr {
            "firmware" => {
                inner.listings_at_firmware_write.push(listing);
                if state != RprocState::Offline {
                    return Err(errno(EBUSY_));
                }
                let name = value.split('\n').next().unwrap_or("");
                if name.is_empty() {
                    return Err(errno(EINVAL_));
                }
                (state, name.to_string())
            }
            "state" => match word {
                // 4.10–6.x: start while running is -EBUSY.
                "start" if state == RprocState::Running => return Err(errno(EBUSY_)),
                "start" => {
                    self.boot(&mut inner, &firmware)?;
                    (RprocState::Running, firmware)
                }
                "stop" if state != RprocState::Running => return Err(errno(EINVAL_)),
                "stop" => (RprocState::Offline, firmware),
                _ => return Err(errno(EINVAL_)),
            },
            _ => return Err(errno(13)), // EACCES: read-only attribute
        };
        let d = inner.devs.get_mut(dev).unwrap();
        d.state = new_state;
        d.firmware = new_fw.clone();
        fs::write(dev.join("state"), format!("{}\n", new_state.as_str()))?;
        fs::write(dev.join("firmware"), format!("{new_fw}\n"))?;
        Ok(())
    }
}

struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    fwdir: PathBuf,
    kernel: FakeKernel,
    /// The wanted instance (`mips-cpu1`, which is remoteproc1).
    dev: PathBuf,
    /// Another instance that must never be touched.
    other: PathBuf,
}

impl World {
    fn new() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sys");
        let fwdir = tmp.path().join("lib/firmware");
        fs::create_dir_all(&fwdir).unwrap();
        let kernel = FakeKernel {
            firmware_dir: fwdir.clone(),
            subdir: "vpe-compat/mips-cpu1".into(),
            inner: Arc::default(),
        };
        let class = root.join("class/remoteproc");
        let mut devs = Vec::new();
        for (n, name) in [(0, "other-dsp"), (1, "mips-cpu1")] {
            let dev = class.join(format!("remoteproc{n}"));
            fs::create_dir_all(&dev).unwrap();
            fs::write(dev.join("name"), format!("{name}\n")).unwrap();
            kernel.add(&dev, RprocState::Offline, &format!("rproc-{name}-fw"));
            devs.push(dev);
        }
        World {
            _tmp: tmp,
            root,
            fwdir,
            kernel,
            dev: devs[1].clone(),
            other: devs[0].clone(),
        }
    }

    fn opts(&self) -> SysfsOptions {
        SysfsOptions {
            sysfs_root: self.root.clone(),
            firmware_dir: self.fwdir.clone(),
            rproc_name: "mips-cpu1".into(),
            subdir: "vpe-compat".into(),
            rollback: true,
            // This fake kernel predates the attribute (it reads as ENOENT): nothing written.
            recovery: Some(Recovery::Disabled),
            bring_up: false,
            bring_up_timeout: std::time::Duration::ZERO,
        }
    }

    fn open(&self) -> Sysfs {
        self.open_with(self.opts())
    }

    fn open_with(&self, opts: SysfsOptions) -> Sysfs {
        Sysfs::open_with_io(opts, Box::new(self.kernel.clone())).unwrap()
    }

    /// The firmware directory of `mips-cpu1`.
    fn subdir(&self) -> PathBuf {
        self.fwdir.join("vpe-compat/mips-cpu1")
    }

    fn files(&self) -> Vec<String> {
        self.kernel.listing()
    }
}

/// A valid firmware converted from a committed fixture (which relocation semantics does not
/// matter here; legacy always converts).
fn firmware(fixture: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bin")
        .join(fixture);
    let bytes = fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    vpe::convert::convert(
        &bytes,
        &vpe::convert::Options {
            semantics: vpe::image::RelocSemantics::Legacy,
            ..Default::default()
        },
    )
    .unwrap_or_else(|e| panic!("convert {fixture}: {e}"))
    .firmware
}

fn name_of(sha: &str) -> String {
    format!("vpe-compat/mips-cpu1/{sha}.elf")
}

#[test]
fn instance_is_found_by_name_not_number() {
    let w = World::new();
    let s = w.open();
    assert_eq!(s.device_dir(), w.dev.as_path());

    let mut opts = w.opts();
    opts.rproc_name = "mips-cpu3".into();
    let e = Sysfs::open_with_io(opts, Box::new(w.kernel.clone()))
        .unwrap_err()
        .to_string();
    assert!(e.contains("\"mips-cpu3\""), "{e}");
    assert!(e.contains("remoteproc0: other-dsp"), "{e}");
    assert!(e.contains("remoteproc1: mips-cpu1"), "{e}");

    // Starting drives remoteproc1 only.
    let fw = firmware("hello.be.o");
    let mut s = s;
    s.install_and_start(&fw, &sha256_hex(&fw)).unwrap();
    assert_eq!(w.kernel.state(&w.dev), RprocState::Running);
    assert_eq!(w.kernel.state(&w.other), RprocState::Offline);
    assert!(w.kernel.writes().iter().all(|(d, _, _)| d == "remoteproc1"));
}

#[test]
fn start_sequence_and_result() {
    let w = World::new();
    let mut s = w.open();
    let fw = firmware("hello.be.o");
    let sha = sha256_hex(&fw);
    let out = s.install_and_start(&fw, &sha).unwrap();
    assert_eq!(out.firmware, name_of(&sha));
    assert_eq!(out.state, RprocState::Running);
    assert!(out.rolled_back.is_none());
    // Offline at first: no stop; one write each, no trailing newline needed.
    let writes: Vec<(String, String)> = w
        .kernel
        .writes()
        .into_iter()
        .map(|(_, a, v)| (a, v))
        .collect();
    assert_eq!(
        writes,
        vec![
            ("firmware".to_string(), name_of(&sha)),
            ("state".to_string(), "start".to_string()),
        ]
    );
    assert_eq!(w.kernel.firmware(&w.dev), name_of(&sha));
    assert_eq!(
        fs::read_to_string(w.dev.join("state")).unwrap(),
        "running\n"
    );
    assert_eq!(s.firmware_name(), Some(name_of(&sha)));
    assert_eq!(Backend::state(&mut s).unwrap(), RprocState::Running);
    assert_eq!(w.kernel.lock().booted, vec![sha.clone()]);

    // The file stays after stop (recovery re-reads it while running; rollback needs it).
    Backend::stop(&mut s).unwrap();
    assert_eq!(w.kernel.state(&w.dev), RprocState::Offline);
    assert!(w.subdir().join(format!("{sha}.elf")).is_file());
    // stop when offline is a no-op at the Backend level: nothing is written.
    let n = w.kernel.writes().len();
    Backend::stop(&mut s).unwrap();
    assert_eq!(w.kernel.writes().len(), n);
}

#[test]
fn install_is_atomic_and_complete() {
    let w = World::new();
    let s = w.open();
    // Big enough that a non-atomic write would be seen half done.
    let big: Vec<u8> = (0..8u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let sha = sha256_hex(&big);
    let final_path = w.subdir().join(format!("{sha}.elf"));

    let done = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (done, final_path, dir, len) =
            (done.clone(), final_path.clone(), w.subdir(), big.len());
        std::thread::spawn(move || {
            let (mut partial, mut saw_tmp, mut polls) = (0, false, 0u32);
            while !done.load(Ordering::SeqCst) && polls < 1_000_000 {
                polls += 1;
                if let Ok(m) = fs::symlink_metadata(&final_path) {
                    if m.len() as usize != len {
                        partial += 1;
                    }
                }
                if let Ok(d) = fs::read_dir(&dir) {
                    saw_tmp |= d
                        .flatten()
                        .any(|e| e.file_name().to_string_lossy().ends_with(".tmp"));
                }
            }
            (partial, saw_tmp)
        })
    };
    let name = s.install_firmware(&big, &sha).unwrap();
    done.store(true, Ordering::SeqCst);
    let (partial, saw_tmp) = watcher.join().unwrap();
    assert_eq!(
        partial, 0,
        "the final name was visible before it was complete"
    );
    eprintln!("watcher saw a temp file during the write: {saw_tmp}");

    assert_eq!(name, name_of(&sha));
    assert_eq!(sha256_hex(&fs::read(&final_path).unwrap()), sha);
    let meta = fs::symlink_metadata(&final_path).unwrap();
    assert!(meta.file_type().is_file());
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    assert_eq!(
        w.files(),
        vec![format!("{sha}.elf")],
        "no temp file may remain"
    );

    // Through the whole start: when `firmware` is written the final file is there, no temp.
    let mut s = s;
    let fw = firmware("hello.be.o");
    let fsha = sha256_hex(&fw);
    s.install_and_start(&fw, &fsha).unwrap();
    let listings = w.kernel.lock().listings_at_firmware_write.clone();
    assert_eq!(listings.len(), 1);
    assert!(listings[0].contains(&format!("{fsha}.elf")), "{listings:?}");
    assert!(
        listings[0].iter().all(|f| !f.ends_with(".tmp")),
        "{listings:?}"
    );
    // The unrelated big file was superseded by the successful start.
    assert_eq!(w.files(), vec![format!("{fsha}.elf")]);
}

#[test]
fn running_processor_is_stopped_first() {
    let w = World::new();
    // Something else runs (e.g. the firmware the board booted with).
    w.kernel
        .add(&w.dev, RprocState::Running, "rproc-mips-cpu1-fw");
    let mut s = w.open();

    // Case 38 as the backend reports it.
    let e = s.write_attr("firmware", "x.elf").unwrap_err();
    assert_eq!(e.errno(), EBUSY);
    assert_eq!(
        e.to_string(),
        "remoteproc mips-cpu1: writing \"x.elf\" to firmware failed: EBUSY (can't change firmware while running: the processor is not offline)"
    );
    // Case 43 (4.10–6.x).
    let e = s.write_attr("state", "start").unwrap_err();
    assert!(
        e.to_string()
            .contains("writing \"start\" to state failed: EBUSY (the processor is already running"),
        "{e}"
    );

    let fw = firmware("hello.be.o");
    let sha = sha256_hex(&fw);
    let before = w.kernel.writes().len();
    let out = s.install_and_start(&fw, &sha).unwrap();
    assert_eq!(out.state, RprocState::Running);
    let writes: Vec<(String, String)> = w.kernel.writes()[before..]
        .iter()
        .map(|(_, a, v)| (a.clone(), v.clone()))
        .collect();
    assert_eq!(
        writes,
        vec![
            ("state".to_string(), "stop".to_string()),
            ("firmware".to_string(), name_of(&sha)),
            ("state".to_string(), "start".to_string()),
        ]
    );
    assert_eq!(w.kernel.firmware(&w.dev), name_of(&sha));
}

#[test]
fn errnos_become_clear_messages() {
    let w = World::new();
    let s = w.open();
    // 39
    let e = s.write_attr("firmware", "").unwrap_err();
    assert_eq!(e.errno(), EINVAL);
    assert!(
        e.to_string()
            .contains("EINVAL (can't provide empty string for firmware name"),
        "{e}"
    );
    // 40
    let e = s.write_attr("state", "bogus").unwrap_err();
    assert_eq!(e.errno(), EINVAL);
    assert!(
        e.to_string()
            .ends_with("EINVAL (Unrecognised option: bogus)"),
        "{e}"
    );
    // 42
    let e = s.write_attr("state", "stop").unwrap_err();
    assert_eq!(e.errno(), EINVAL);
    assert!(
        e.to_string()
            .contains("EINVAL (the processor is not running)"),
        "{e}"
    );
    // 41
    s.write_attr("firmware", "vpe-compat/missing.elf").unwrap();
    let e = s.write_attr("state", "start").unwrap_err();
    assert_eq!(e.errno(), ENOENT);
    assert!(e.to_string().contains("ENOENT (Boot failed: -2"), "{e}");
    assert!(e.to_string().contains("vpe-compat/missing.elf"), "{e}");
    // 44: the kernel refuses '..' at start.
    s.write_attr("firmware", "vpe-compat/../x.elf").unwrap();
    let e = s.write_attr("state", "start").unwrap_err();
    assert_eq!(e.errno(), EINVAL);
    assert!(e.to_string().contains("Boot failed: -22"), "{e}");
}

#[test]
fn failed_start_rolls_back_and_reports_both() {
    let w = World::new();
    let mut s = w.open();
    let good = firmware("hello.be.o");
    let good_sha = sha256_hex(&good);
    s.install_and_start(&good, &good_sha).unwrap();

    // The driver's start op fails once for the new firmware.
    let new = firmware("hello.le.o");
    let new_sha = sha256_hex(&new);
    assert_ne!(good_sha, new_sha);
    w.kernel.fail_next_starts(1);
    let out = s.install_and_start(&new, &new_sha).unwrap();
    assert_eq!(out.firmware, name_of(&new_sha));
    assert_eq!(out.state, RprocState::Offline);
    let rb = out.rolled_back.expect("rolled back");
    assert!(
        rb.failed_error
            .contains("writing \"start\" to state failed: EBUSY"),
        "{}",
        rb.failed_error
    );
    assert_eq!(rb.restored_firmware, name_of(&good_sha));
    assert_eq!(rb.restored_state, RprocState::Running);
    assert_eq!(w.kernel.state(&w.dev), RprocState::Running);
    assert_eq!(w.kernel.firmware(&w.dev), name_of(&good_sha));
    assert_eq!(
        w.kernel.lock().booted,
        vec![good_sha.clone(), good_sha.clone()]
    );
    // The failed image is gone; the running one stays (recovery re-reads it).
    assert_eq!(w.files(), vec![format!("{good_sha}.elf")]);
    assert_eq!(s.last_good(), Some(name_of(&good_sha).as_str()));

    // An image the kernel's checker refuses (EINVAL) rolls back too.
    let mut bad = good.clone();
    bad[4] = 9; // EI_CLASS: "Unsupported class: 9"
    let out = s.install_and_start(&bad, &sha256_hex(&bad)).unwrap();
    let rb = out.rolled_back.expect("rolled back");
    assert!(
        rb.failed_error.contains("EINVAL (Boot failed: -22"),
        "{}",
        rb.failed_error
    );
    assert_eq!(rb.restored_firmware, name_of(&good_sha));
    assert_eq!(w.kernel.state(&w.dev), RprocState::Running);

    // If the rollback fails too, the error carries both.
    w.kernel.fail_next_starts(2);
    let e = s.install_and_start(&new, &new_sha).unwrap_err();
    assert_eq!(e.errno(), EBUSY);
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("rollback to {} also failed", name_of(&good_sha))),
        "{msg}"
    );
    assert_eq!(w.kernel.state(&w.dev), RprocState::Offline);
}

#[test]
fn no_rollback_leaves_it_offline_with_the_error() {
    let w = World::new();
    let mut opts = w.opts();
    opts.rollback = false;
    let mut s = w.open_with(opts);
    let good = firmware("hello.be.o");
    let good_sha = sha256_hex(&good);
    s.install_and_start(&good, &good_sha).unwrap();
    let new = firmware("hello.le.o");
    let new_sha = sha256_hex(&new);
    w.kernel.fail_next_starts(1);
    let e = s.install_and_start(&new, &new_sha).unwrap_err();
    assert_eq!(e.errno(), EBUSY);
    assert!(
        e.to_string()
            .contains("writing \"start\" to state failed: EBUSY"),
        "{e}"
    );
    assert_eq!(w.kernel.state(&w.dev), RprocState::Offline);
    assert_eq!(w.kernel.firmware(&w.dev), name_of(&new_sha));
    // The configured (failed) file stays; so does the previous good one.
    assert!(w.subdir().join(format!("{new_sha}.elf")).is_file());
    assert!(w.subdir().join(format!("{good_sha}.elf")).is_file());
}

#[test]
fn running_firmware_found_at_open_is_the_rollback_target() {
    let w = World::new();
    let good = firmware("hello.be.o");
    let good_sha = sha256_hex(&good);
    {
        let mut s = w.open();
        s.install_and_start(&good, &good_sha).unwrap();
    }
    // The daemon restarts while the program runs.
    let mut s = w.open();
    assert_eq!(s.last_good(), Some(name_of(&good_sha).as_str()));
    let new = firmware("hello.le.o");
    w.kernel.fail_next_starts(1);
    let out = s.install_and_start(&new, &sha256_hex(&new)).unwrap();
    assert_eq!(
        out.rolled_back.unwrap().restored_firmware,
        name_of(&good_sha)
    );
}

#[test]
fn planted_symlinks_do_not_redirect_the_write() {
    let w = World::new();
    let s = w.open();
    let fw = firmware("hello.be.o");
    let sha = sha256_hex(&fw);
    let victim = w.fwdir.join("victim");
    let victim2 = w.fwdir.join("victim2");
    fs::write(&victim, "precious").unwrap();
    fs::write(&victim2, "precious too").unwrap();
    // At the final name and at the first temp name the installer tries.
    let final_path = w.subdir().join(format!("{sha}.elf"));
    symlink(&victim, &final_path).unwrap();
    let tmp0 = w
        .subdir()
        .join(format!(".{sha}.elf.{}.0.tmp", std::process::id()));
    symlink(&victim2, &tmp0).unwrap();

    let name = s.install_firmware(&fw, &sha).unwrap();
    assert_eq!(name, name_of(&sha));
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(fs::read_to_string(&victim2).unwrap(), "precious too");
    assert!(fs::symlink_metadata(&final_path)
        .unwrap()
        .file_type()
        .is_file());
    assert_eq!(sha256_hex(&fs::read(&final_path).unwrap()), sha);
    // The planted temp link is left alone now and removed by the next startup cleanup.
    assert!(fs::symlink_metadata(&tmp0)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(s.cleanup_stale_temp_files().unwrap(), 1);
    assert_eq!(fs::read_to_string(&victim2).unwrap(), "precious too");

    // The subdirectory itself a symlink: refused, nothing written where it points.
    let elsewhere = w.fwdir.join("elsewhere");
    fs::create_dir(&elsewhere).unwrap();
    let mut opts = w.opts();
    opts.subdir = "linked".into();
    symlink(&elsewhere, w.fwdir.join("linked")).unwrap();
    let e = Sysfs::open_with_io(opts, Box::new(w.kernel.clone())).unwrap_err();
    assert!(e.to_string().contains("symlink"), "{e}");
    assert_eq!(fs::read_dir(&elsewhere).unwrap().count(), 0);
}

#[test]
fn dotdot_is_refused() {
    let w = World::new();
    for bad in ["../escape", "a/../../b", "/abs", ".", ""] {
        let mut opts = w.opts();
        opts.subdir = bad.into();
        let e = Sysfs::open_with_io(opts, Box::new(w.kernel.clone())).unwrap_err();
        assert_eq!(e.errno(), EINVAL, "{bad}: {e}");
    }
    assert!(!w.fwdir.parent().unwrap().join("escape").exists());
    let e = check_firmware_name("vpe-compat/../../etc/shadow").unwrap_err();
    assert!(
        e.to_string().contains("path contains '..' component"),
        "{e}"
    );
    assert!(check_firmware_name("vpe-compat/ok.elf").is_ok());
    // A sha that is not 64 hex digits never becomes a path.
    let s = w.open();
    assert!(s.install_firmware(b"x", "../../x").is_err());
    assert_eq!(w.files(), Vec::<String>::new());
}

#[test]
fn stale_temp_files_are_cleaned_up_at_open() {
    let w = World::new();
    fs::create_dir_all(w.subdir()).unwrap();
    let victim = w.fwdir.join("victim");
    fs::write(&victim, "precious").unwrap();
    let sha = "ab".repeat(32);
    fs::write(
        w.subdir().join(format!(".{sha}.elf.4242.0.tmp")),
        "half a firm",
    )
    .unwrap();
    symlink(&victim, w.subdir().join("link.tmp")).unwrap();
    fs::write(w.subdir().join(format!("{sha}.elf")), "kept").unwrap();
    fs::create_dir(w.subdir().join("dir.tmp")).unwrap();

    let s = w.open();
    assert_eq!(w.files(), vec![format!("{sha}.elf"), "dir.tmp".to_string()]);
    assert_eq!(fs::read_to_string(&victim).unwrap(), "precious");
    assert_eq!(s.cleanup_stale_temp_files().unwrap(), 0);
}

/// The recovery policy is written at open only when the attribute exists and differs; a
/// refused write is a start-up error naming the attribute (the daemon must not run with
/// another policy than the one it was given).
#[test]
fn a_refused_recovery_write_fails_the_open() {
    let w = World::new();
    // This fake kernel reads a plain `recovery` file and refuses writes to it (EACCES).
    fs::write(w.dev.join("recovery"), "enabled\n").unwrap();
    let e = Sysfs::open_with_io(w.opts(), Box::new(w.kernel.clone())).unwrap_err();
    assert_eq!(e.errno(), 13, "{e}");
    assert!(
        e.to_string()
            .contains(r#"writing "disabled" to recovery failed: EACCES"#),
        "{e}"
    );
    let recovery_writes = |w: &World| {
        w.kernel
            .writes()
            .iter()
            .filter(|(_, a, _)| a == "recovery")
            .count()
    };
    assert_eq!(recovery_writes(&w), 1);
    // Already what is wanted, or left alone: nothing is written and the open succeeds.
    for recovery in [Some(Recovery::Enabled), None] {
        w.open_with(SysfsOptions {
            recovery,
            ..w.opts()
        });
    }
    assert_eq!(recovery_writes(&w), 1);
}

/// The firmware directory swapped for a symlink to another directory, over and over, while
/// installs run: every step of an install is relative to the directory descriptor opened at
/// start-up, so nothing is ever written where the symlink points (path-based steps after an
/// `O_NOFOLLOW` open of the directory wrote temp files there). Bounded: 1 000 installs.
#[test]
fn a_directory_swapped_for_a_symlink_mid_install_gets_nothing_written_through_it() {
    let w = World::new();
    let s = w.open();
    let dir = w.subdir();
    let hidden = w.fwdir.join("hidden");
    let outside = w.fwdir.join("outside");
    fs::create_dir(&outside).unwrap();

    let stop = Arc::new(AtomicBool::new(false));
    // One renameat2(RENAME_EXCHANGE) swaps the directory and a symlink to `outside`
    // atomically, so the directory is never missing (the old installer re-created it).
    std::os::unix::fs::symlink(&outside, &hidden).unwrap();
    let swapper = {
        let (stop, dir, hidden) = (stop.clone(), dir.clone(), hidden.clone());
        std::thread::spawn(move || {
            let exchange = || {
                nix::fcntl::renameat2(
                    nix::fcntl::AT_FDCWD,
                    &dir,
                    nix::fcntl::AT_FDCWD,
                    &hidden,
                    nix::fcntl::RenameFlags::RENAME_EXCHANGE,
                )
                .unwrap()
            };
            let mut swaps = 0u32;
            while !stop.load(Ordering::SeqCst) {
                exchange();
                std::thread::yield_now();
                exchange();
                std::thread::yield_now();
                swaps += 1;
            }
            swaps
        })
    };
    let (mut ok, mut failed) = (0u32, 0u32);
    for i in 0..1000u32 {
        let bytes = i.to_le_bytes().repeat(64);
        match s.install_firmware(&bytes, &sha256_hex(&bytes)) {
            Ok(_) => ok += 1,
            Err(_) => failed += 1,
        }
    }
    stop.store(true, Ordering::SeqCst);
    let swaps = swapper.join().unwrap();
    let written: Vec<_> = fs::read_dir(w.fwdir.join("outside"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        written.is_empty(),
        "{} files written through the symlink ({ok} installs ok, {failed} failed, {swaps} swaps): {written:?}",
        written.len()
    );
    eprintln!("{ok} installs ok, {failed} refused, {swaps} swaps");
    assert!(swaps > 0);
}

/// Two backends (two daemons) sharing one firmware directory, driving two instances: each
/// has its own directory, so neither removes the other's running firmware (with one shared
/// directory, each start removed the other's file as "superseded"). A second backend for the
/// same instance is refused while the first lives, naming it; once it is gone, it opens.
#[test]
fn two_backends_sharing_a_firmware_directory_keep_to_their_own_instance() {
    let w = World::new();
    let mut cpu1 = w.open();
    let mut dsp = w.open_with(SysfsOptions {
        rproc_name: "other-dsp".into(),
        ..w.opts()
    });
    let a = firmware("hello.be.o");
    let b = firmware("features.be.o");
    let out_a = cpu1.install_and_start(&a, &sha256_hex(&a)).unwrap();
    let out_b = dsp.install_and_start(&b, &sha256_hex(&b)).unwrap();
    assert_eq!(out_a.firmware, name_of(&sha256_hex(&a)));
    assert_eq!(
        out_b.firmware,
        format!("vpe-compat/other-dsp/{}.elf", sha256_hex(&b))
    );
    // A new image on cpu1 supersedes only cpu1's old one.
    let a2 = firmware("hello.le.o");
    cpu1.install_and_start(&a2, &sha256_hex(&a2)).unwrap();
    assert_eq!(w.kernel.state(&w.dev), RprocState::Running);
    assert_eq!(w.kernel.state(&w.other), RprocState::Running);
    assert_eq!(w.files(), vec![format!("{}.elf", sha256_hex(&a2))]);
    let dsp_file = w.fwdir.join(&out_b.firmware);
    assert_eq!(
        fs::read(&dsp_file).unwrap(),
        b,
        "the other daemon's firmware"
    );

    // The same instance twice: refused with the holder's pid, nothing written.
    let writes = w.kernel.writes().len();
    let e = Sysfs::open_with_io(w.opts(), Box::new(w.kernel.clone())).unwrap_err();
    let msg = e.to_string();
    assert_eq!(e.errno(), EBUSY, "{msg}");
    assert!(
        msg.starts_with(&format!("process {} (", std::process::id()))
            && msg.contains(") already drives this instance (it holds the lock ")
            && msg.contains("vpe-compat/mips-cpu1/.lock"),
        "{msg}"
    );
    assert_eq!(w.kernel.writes().len(), writes);
    assert_eq!(
        fs::read_to_string(w.subdir().join(LOCK_FILE)).unwrap(),
        format!("{}\n", std::process::id())
    );
    // Private: flock needs only read access, and anyone holding it would block the daemon.
    let lock_meta = fs::metadata(w.subdir().join(LOCK_FILE)).unwrap();
    assert_eq!(lock_meta.permissions().mode() & 0o777, 0o600);
    drop(cpu1);
    let cpu1 = w.open();
    assert_eq!(cpu1.last_good(), Some(name_of(&sha256_hex(&a2)).as_str()));
}

/// Failed starts whose rollback failed too left their firmware behind, one file per attempt;
/// now what is neither configured nor the rollback target is removed. A load that failed
/// before its start (the open had stopped the program) restarts the last good firmware.
#[test]
fn failed_starts_do_not_pile_up_and_the_last_good_one_can_be_restarted() {
    let w = World::new();
    let mut s = w.open();
    let good = firmware("hello.be.o");
    let good_sha = sha256_hex(&good);
    s.install_and_start(&good, &good_sha).unwrap();
    for fixture in ["hello.le.o", "features.le.o", "features.be.o"] {
        let new = firmware(fixture);
        // The new image's start and the rollback's both fail.
        w.kernel.fail_next_starts(2);
        let e = s.install_and_start(&new, &sha256_hex(&new)).unwrap_err();
        assert!(e.to_string().contains("also failed"), "{e}");
        assert_eq!(w.kernel.firmware(&w.dev), name_of(&good_sha));
        assert_eq!(
            w.files(),
            vec![format!("{good_sha}.elf")],
            "after {fixture}"
        );
    }
    assert_eq!(w.kernel.state(&w.dev), RprocState::Offline);
    let restored = s.restart_last_good("installing X failed").unwrap().unwrap();
    assert_eq!(restored.restored_firmware, name_of(&good_sha));
    assert_eq!(restored.restored_state, RprocState::Running);
    assert_eq!(restored.failed_error, "installing X failed");
    assert_eq!(w.kernel.state(&w.dev), RprocState::Running);
    // Something runs: nothing to restore, nothing written.
    let n = w.kernel.writes().len();
    assert_eq!(s.restart_last_good("again").unwrap(), None);
    assert_eq!(w.kernel.writes().len(), n);
}

/// The mount's `traceN` files read debugfs `remoteproc/remoteprocN/traceN` with the sysfs
/// backend; without debugfs, or without that buffer, there is nothing (ENOENT upstairs).
#[test]
fn traces_come_from_debugfs() {
    let w = World::new();
    let mut s = w.open();
    assert!(s.read_trace(0).is_none(), "no debugfs mounted");
    let dir = w.root.join("kernel/debug/remoteproc/remoteproc1");
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("trace0"), b"hello from the SP\n").unwrap();
    // The other instance's buffer must never be read.
    let other = w.root.join("kernel/debug/remoteproc/remoteproc0");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("trace1"), b"not ours").unwrap();
    assert_eq!(s.read_trace(0).unwrap().unwrap(), b"hello from the SP\n");
    assert!(s.read_trace(1).is_none());
}
