//! A fake sysfs on a real FUSE mount, so the daemon's `--backend sysfs` can be driven through
//! real `open`/`read`/`write(2)` calls that fail with the kernel's errnos (regular files, as in
//! `faults.rs`, cannot return errnos).
//!
//! It serves `class/remoteproc/remoteproc0/{name,state,firmware}` with the rules of
//! remoteproc_sysfs.c (spec `remoteproc.md` §3; 4.10–6.x behaviour):
//! * `state` reads `offline\n` or `running\n`; writing `start` when running is EBUSY, `stop`
//!   when not running is EINVAL, any other word EINVAL (`sysfs_streq`: one trailing `\n` OK);
//! * `firmware` reads the name + `\n`; writing it is EBUSY unless offline, EINVAL if empty; the
//!   value is cut at the first `\n`;
//! * `recovery` (sysfs since ~5.10) reads `enabled`/`disabled`, takes those and `recover`, else
//!   EINVAL; [`FakeSys::mount_with`] can leave it out, as an older kernel does;
//! * `name` is read-only (an open for write is EACCES, as kernfs does for root too);
//! * [`FakeSys::mount_mips`] plays the MIPS remoteproc driver (spec §4.2) instead: CPU 1 has
//!   `devices/system/cpu/cpu1/online`, the driver `devices/mips-rproc/cpus` (a CPU list), and
//!   `remoteproc0` (`mips-cpu1`) exists only while CPU 1 is offline and listed;
//! * `start` boots the file `firmware` names in the firmware directory: a `..` component or an
//!   empty name is EINVAL, a missing file ENOENT, an image remoteproc would refuse
//!   (`vpe::rproc::check`) that check's errno; on failure the state stays `offline`.
//!
//! Each `write(2)` is one whole value (sysfs store), every open is direct I/O so each write
//! reaches us and an errno reply fails the writer's `write(2)`. `remoteproc0` is a directory
//! here, not the class symlink of real sysfs: the daemon only joins paths below it.
//!
//! The test injects [`Fault`]s and reads the ordered log of attribute writes ([`AttrWrite`]).
//! The server runs in its own thread and tokio runtime; dropping [`FakeSys`] unmounts it.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::io;
use std::num::NonZeroU32;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fuse3::raw::prelude::*;
use fuse3::raw::{MountHandle, Session};
use fuse3::{Errno, MountOptions, Result};
use futures_util::stream::{self, Stream};
use vpe::remoteproc::RprocState;

/// `FOPEN_DIRECT_IO` (include/uapi/linux/fuse.h; fuse3 does not export it).
const FOPEN_DIRECT_IO: u32 = 1 << 0;
const TTL: Duration = Duration::from_secs(1);

const ROOT: u64 = 1;
const CLASS: u64 = 2;
const REMOTEPROC: u64 = 3;
const DEV: u64 = 4;
const NAME: u64 = 5;
const STATE: u64 = 6;
const FIRMWARE: u64 = 7;
const RECOVERY: u64 = 8;
const DEVICES: u64 = 9;
const MIPS_RPROC: u64 = 10;
const CPUS: u64 = 11;
const SYSTEM: u64 = 12;
const CPU: u64 = 13;
const CPU1: u64 = 14;
const ONLINE: u64 = 15;

/// (inode, parent, name, is a directory)
const NODES: [(u64, u64, &str, bool); 15] = [
    (ROOT, ROOT, "", true),
    (CLASS, ROOT, "class", true),
    (REMOTEPROC, CLASS, "remoteproc", true),
    (DEV, REMOTEPROC, "remoteproc0", true),
    (NAME, DEV, "name", false),
    (STATE, DEV, "state", false),
    (FIRMWARE, DEV, "firmware", false),
    (RECOVERY, DEV, "recovery", false),
    (DEVICES, ROOT, "devices", true),
    (MIPS_RPROC, DEVICES, "mips-rproc", true),
    (CPUS, MIPS_RPROC, "cpus", false),
    (SYSTEM, DEVICES, "system", true),
    (CPU, SYSTEM, "cpu", true),
    (CPU1, CPU, "cpu1", true),
    (ONLINE, CPU1, "online", false),
];

/// The attribute writes a fault can hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    /// `start` to `state` (after the kernel's own checks and `request_firmware`).
    Start,
    /// `stop` to `state` (after the not-running check; the processor keeps running).
    Stop,
    /// A write to `firmware` (after the not-offline check; the name is not changed).
    Firmware,
    /// A write to `recovery` (the policy is not changed; `firmware` is unused).
    Recovery,
}

/// Which firmware a fault applies to: for `start`/`stop` the configured one, for a
/// `firmware` write the name being written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Which {
    Any,
    Is(String),
    /// Every firmware but this one ("refuse anything new, keep booting the old one").
    Not(String),
}

impl Which {
    fn matches(&self, fw: &str) -> bool {
        match self {
            Which::Any => true,
            Which::Is(n) => n == fw,
            Which::Not(n) => n != fw,
        }
    }
}

/// Make matching writes fail with `errno`, `times` times (`None`: every time).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub op: Op,
    pub firmware: Which,
    pub errno: i32,
    pub times: Option<u32>,
}

/// One `write(2)` to an attribute, in order: the value as written and the errno returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrWrite {
    pub attr: String,
    pub value: String,
    pub errno: Option<i32>,
}

impl AttrWrite {
    pub fn ok(attr: &str, value: &str) -> AttrWrite {
        AttrWrite {
            attr: attr.into(),
            value: value.into(),
            errno: None,
        }
    }

    pub fn failed(attr: &str, value: &str, errno: i32) -> AttrWrite {
        AttrWrite {
            errno: Some(errno),
            ..AttrWrite::ok(attr, value)
        }
    }
}

/// The fake kernel's view of the one remote processor.
#[derive(Debug)]
struct Kernel {
    rproc_name: String,
    firmware_dir: PathBuf,
    state: RprocState,
    firmware: String,
    /// The `recovery` attribute: `Some(enabled)`, or `None` for a kernel without it (< 5.10).
    recovery: Option<bool>,
    faults: Vec<Fault>,
    writes: Vec<AttrWrite>,
    /// Firmware names `start` booted successfully, in order.
    boots: Vec<String>,
    /// The MIPS remoteproc driver, if this kernel plays it.
    mips: Option<MipsDriver>,
}

/// CPU 1's hotplug state and the driver's CPU list.
#[derive(Debug, Default)]
struct MipsDriver {
    cpu1_online: bool,
    cpus: Vec<u32>,
}

impl Kernel {
    /// `remoteproc0` exists: always without the MIPS driver; with it, while CPU 1 is offline
    /// and listed (the driver registers and deletes it from CPU hotplug callbacks).
    fn registered(&self) -> bool {
        self.mips
            .as_ref()
            .is_none_or(|m| !m.cpu1_online && m.cpus.contains(&1))
    }

    fn read(&self, ino: u64) -> String {
        match ino {
            NAME => format!("{}\n", self.rproc_name),
            STATE => format!("{}\n", self.state.as_str()),
            FIRMWARE => format!("{}\n", self.firmware),
            RECOVERY => match self.recovery {
                Some(true) => "enabled\n".into(),
                _ => "disabled\n".into(),
            },
            CPUS => format!(
                "{}\n",
                vpe::remoteproc::sysfs::format_cpulist(
                    self.mips.as_ref().map_or(&[][..], |m| &m.cpus)
                )
            ),
            ONLINE => match &self.mips {
                Some(m) if m.cpu1_online => "1\n".into(),
                _ => "0\n".into(),
            },
            _ => String::new(),
        }
    }

    /// The errno of the first armed fault for `op` on `fw`, consuming one of its `times`.
    fn fault(&mut self, op: Op, fw: &str) -> std::result::Result<(), i32> {
        let Some(i) = self
            .faults
            .iter()
            .position(|f| f.op == op && f.firmware.matches(fw) && f.times != Some(0))
        else {
            return Ok(());
        };
        let f = &mut self.faults[i];
        if let Some(n) = &mut f.times {
            *n -= 1;
        }
        Err(f.errno)
    }

    /// `rproc_boot` as far as a fake goes: request_firmware, the ELF/table checks, then the
    /// driver's start (where injected faults hit).
    fn boot(&mut self) -> std::result::Result<(), i32> {
        let fw = self.firmware.clone();
        // firmware_loader/main.c: an empty name or a `..` component is refused.
        if fw.is_empty() || fw.split('/').any(|c| c == "..") {
            return Err(libc::EINVAL);
        }
        let bytes = std::fs::read(self.firmware_dir.join(&fw))
            .map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        vpe::rproc::check::check(&bytes, &vpe::rproc::check::Options::default())
            .map_err(|e| e.errno())?;
        self.fault(Op::Start, &fw)?;
        self.boots.push(fw);
        Ok(())
    }

    /// The store of attribute `ino` for one `write(2)`.
    fn store(&mut self, ino: u64, value: &str) -> std::result::Result<(), i32> {
        match ino {
            STATE => {
                // sysfs_streq: equal but for one trailing newline.
                let word = value.strip_suffix('\n').unwrap_or(value);
                match word {
                    "start" if self.state == RprocState::Running => Err(libc::EBUSY),
                    "start" => {
                        self.boot()?;
                        self.state = RprocState::Running;
                        Ok(())
                    }
                    "stop" if self.state != RprocState::Running => Err(libc::EINVAL),
                    "stop" => {
                        let fw = self.firmware.clone();
                        self.fault(Op::Stop, &fw)?;
                        self.state = RprocState::Offline;
                        Ok(())
                    }
                    _ => Err(libc::EINVAL),
                }
            }
            FIRMWARE => {
                if self.state != RprocState::Offline {
                    return Err(libc::EBUSY);
                }
                // rproc_set_firmware: strcspn(name, "\n"), empty refused.
                let name = value.split('\n').next().unwrap_or("");
                if name.is_empty() {
                    return Err(libc::EINVAL);
                }
                self.fault(Op::Firmware, name)?;
                self.firmware = name.to_string();
                Ok(())
            }
            // recovery_store: sysfs_streq against the three words; "recover" re-runs a
            // crashed processor (none is crashed here).
            RECOVERY => {
                self.fault(Op::Recovery, "")?;
                match value.strip_suffix('\n').unwrap_or(value) {
                    "enabled" => {
                        self.recovery = Some(true);
                        Ok(())
                    }
                    "disabled" => {
                        self.recovery = Some(false);
                        Ok(())
                    }
                    "recover" => Ok(()),
                    _ => Err(libc::EINVAL),
                }
            }
            // cpu_subsys online store (kstrtobool); onlining CPU 1 deletes its rproc.
            ONLINE => {
                let m = self.mips.as_mut().ok_or(libc::ENOENT)?;
                match value.trim_end() {
                    "0" => m.cpu1_online = false,
                    "1" => m.cpu1_online = true,
                    _ => return Err(libc::EINVAL),
                }
                if !self.registered() {
                    self.state = RprocState::Offline;
                }
                Ok(())
            }
            // The driver's cpus store: cpulist_parse.
            CPUS => {
                let m = self.mips.as_mut().ok_or(libc::ENOENT)?;
                m.cpus = vpe::remoteproc::sysfs::parse_cpulist(value).ok_or(libc::EINVAL)?;
                Ok(())
            }
            _ => Err(libc::EACCES),
        }
    }

    /// Whether node `ino` exists on this kernel.
    fn has(&self, ino: u64) -> bool {
        match ino {
            DEV | NAME | STATE | FIRMWARE => self.registered(),
            RECOVERY => self.registered() && self.recovery.is_some(),
            DEVICES | MIPS_RPROC | CPUS | SYSTEM | CPU | CPU1 | ONLINE => self.mips.is_some(),
            _ => true,
        }
    }
}

fn lock(k: &Mutex<Kernel>) -> MutexGuard<'_, Kernel> {
    k.lock().unwrap_or_else(|p| p.into_inner())
}

struct FakeSysFs {
    kernel: Arc<Mutex<Kernel>>,
    /// Per open file: the content snapshot reads are served from (kernfs renders an
    /// attribute once per read from offset 0; one snapshot per open is the same for us).
    handles: Mutex<HashMap<u64, Vec<u8>>>,
    next_fh: AtomicU64,
    mtime: SystemTime,
}

fn node(ino: u64) -> Result<(u64, u64, &'static str, bool)> {
    NODES
        .iter()
        .copied()
        .find(|n| n.0 == ino)
        .ok_or_else(|| Errno::from(libc::ENOENT))
}

impl FakeSysFs {
    fn attr(&self, ino: u64) -> Result<FileAttr> {
        let (_, _, _, dir) = node(ino)?;
        let (kind, perm, nlink, size) = match (dir, ino) {
            (true, _) => (FileType::Directory, 0o755, 2, 0),
            // sysfs reports every attribute as 4096 bytes; `name` is 0444, the others 0644.
            (false, NAME) => (FileType::RegularFile, 0o444, 1, 4096),
            (false, _) => (FileType::RegularFile, 0o644, 1, 4096),
        };
        let t = self.mtime.into();
        Ok(FileAttr {
            ino,
            size,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            kind,
            perm,
            nlink,
            uid: 0,
            gid: 0,
            rdev: 0,
            blksize: 4096,
        })
    }

    /// `.`, `..` and the children of directory `ino`.
    fn entries(&self, ino: u64) -> Result<Vec<(u64, FileType, OsString)>> {
        let (_, parent, _, dir) = node(ino)?;
        if !dir {
            return Err(libc::ENOTDIR.into());
        }
        let mut v = vec![
            (ino, FileType::Directory, OsString::from(".")),
            (parent, FileType::Directory, OsString::from("..")),
        ];
        let k = lock(&self.kernel);
        for (i, p, name, d) in NODES {
            if p == ino && i != ROOT && k.has(i) {
                let kind = if d {
                    FileType::Directory
                } else {
                    FileType::RegularFile
                };
                v.push((i, kind, OsString::from(name)));
            }
        }
        Ok(v)
    }
}

impl Filesystem for FakeSysFs {
    async fn init(&self, _req: Request) -> Result<ReplyInit> {
        Ok(ReplyInit::new(
            NonZeroU32::new(4096).unwrap_or(NonZeroU32::MIN),
        ))
    }

    async fn destroy(&self, _req: Request) {}

    async fn lookup(&self, _req: Request, parent: u64, name: &OsStr) -> Result<ReplyEntry> {
        let ino = NODES
            .iter()
            .find(|n| n.1 == parent && n.0 != ROOT && OsStr::new(n.2) == name)
            .map(|n| n.0)
            .filter(|&i| lock(&self.kernel).has(i))
            .ok_or_else(|| Errno::from(libc::ENOENT))?;
        Ok(ReplyEntry {
            ttl: TTL,
            attr: self.attr(ino)?,
            generation: 0,
        })
    }

    async fn getattr(
        &self,
        _req: Request,
        inode: u64,
        _fh: Option<u64>,
        _flags: u32,
    ) -> Result<ReplyAttr> {
        Ok(ReplyAttr {
            ttl: TTL,
            attr: self.attr(inode)?,
        })
    }

    async fn setattr(
        &self,
        _req: Request,
        inode: u64,
        _fh: Option<u64>,
        set: SetAttr,
    ) -> Result<ReplyAttr> {
        if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
            return Err(libc::EPERM.into());
        }
        // A size (O_TRUNC of `echo start > state`) is ignored, as sysfs ignores it.
        Ok(ReplyAttr {
            ttl: TTL,
            attr: self.attr(inode)?,
        })
    }

    async fn open(&self, _req: Request, inode: u64, flags: u32) -> Result<ReplyOpen> {
        let (_, _, _, dir) = node(inode)?;
        if dir {
            return Err(libc::EISDIR.into());
        }
        let writes = (flags as i32 & libc::O_ACCMODE) != libc::O_RDONLY;
        // kernfs_fop_open: no store method → EACCES, whoever opens.
        if writes && inode == NAME {
            return Err(libc::EACCES.into());
        }
        let snapshot = lock(&self.kernel).read(inode).into_bytes();
        let fh = self.next_fh.fetch_add(1, Ordering::SeqCst);
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(fh, snapshot);
        Ok(ReplyOpen {
            fh,
            flags: FOPEN_DIRECT_IO,
        })
    }

    async fn read(
        &self,
        _req: Request,
        _inode: u64,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> Result<ReplyData> {
        let h = self.handles.lock().unwrap_or_else(|p| p.into_inner());
        let t = h.get(&fh).ok_or_else(|| Errno::from(libc::EBADF))?;
        let start = usize::try_from(offset).unwrap_or(usize::MAX).min(t.len());
        let end = start.saturating_add(size as usize).min(t.len());
        Ok(ReplyData {
            data: Bytes::copy_from_slice(&t[start..end]),
        })
    }

    async fn write(
        &self,
        _req: Request,
        inode: u64,
        _fh: u64,
        _offset: u64,
        data: &[u8],
        _write_flags: u32,
        _flags: u32,
    ) -> Result<ReplyWrite> {
        let value = String::from_utf8_lossy(data).into_owned();
        let mut k = lock(&self.kernel);
        let r = match std::str::from_utf8(data) {
            Ok(v) => k.store(inode, v),
            Err(_) => Err(libc::EINVAL),
        };
        let attr = node(inode).map_or("?", |n| n.2);
        k.writes.push(AttrWrite {
            attr: attr.to_string(),
            value,
            errno: r.err(),
        });
        r.map_err(Errno::from)?;
        Ok(ReplyWrite {
            written: u32::try_from(data.len()).unwrap_or(u32::MAX),
        })
    }

    async fn flush(&self, _req: Request, _inode: u64, _fh: u64, _lock_owner: u64) -> Result<()> {
        Ok(())
    }

    async fn release(
        &self,
        _req: Request,
        _inode: u64,
        fh: u64,
        _flags: u32,
        _lock_owner: u64,
        _flush: bool,
    ) -> Result<()> {
        self.handles
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&fh);
        Ok(())
    }

    async fn opendir(&self, _req: Request, inode: u64, _flags: u32) -> Result<ReplyOpen> {
        self.entries(inode)?;
        Ok(ReplyOpen { fh: 0, flags: 0 })
    }

    async fn readdir<'a>(
        &'a self,
        _req: Request,
        parent: u64,
        _fh: u64,
        offset: i64,
    ) -> Result<ReplyDirectory<impl Stream<Item = Result<DirectoryEntry>> + Send + 'a>> {
        let skip = usize::try_from(offset).unwrap_or(0);
        let v: Vec<_> = (1i64..)
            .zip(self.entries(parent)?)
            .skip(skip)
            .map(|(off, (inode, kind, name))| {
                Ok(DirectoryEntry {
                    inode,
                    kind,
                    name,
                    offset: off,
                })
            })
            .collect();
        Ok(ReplyDirectory {
            entries: stream::iter(v),
        })
    }

    async fn readdirplus<'a>(
        &'a self,
        _req: Request,
        parent: u64,
        _fh: u64,
        offset: u64,
        _lock_owner: u64,
    ) -> Result<ReplyDirectoryPlus<impl Stream<Item = Result<DirectoryEntryPlus>> + Send + 'a>>
    {
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let mut v = Vec::new();
        for (off, (inode, kind, name)) in (1i64..).zip(self.entries(parent)?).skip(skip) {
            v.push(Ok(DirectoryEntryPlus {
                inode,
                generation: 0,
                kind,
                name,
                offset: off,
                attr: self.attr(inode)?,
                entry_ttl: TTL,
                attr_ttl: TTL,
            }));
        }
        Ok(ReplyDirectoryPlus {
            entries: stream::iter(v),
        })
    }

    async fn releasedir(&self, _req: Request, _inode: u64, _fh: u64, _flags: u32) -> Result<()> {
        Ok(())
    }
}

/// The mounted fake sysfs; the mount point is the `--sysfs-root`.
pub struct FakeSys {
    kernel: Arc<Mutex<Kernel>>,
    /// Holds the mount point; removed after the unmount in `drop`.
    _dir: tempfile::TempDir,
    mnt: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl FakeSys {
    /// Mount a fake sysfs with one offline rproc named `rproc_name` (firmware
    /// `rproc-<name>-fw`, the kernel's default) whose `start` loads from `firmware_dir`.
    pub fn mount(rproc_name: &str, firmware_dir: &Path) -> FakeSys {
        FakeSys::mount_with(rproc_name, firmware_dir, true)
    }

    /// [`FakeSys::mount`]; `recovery_attr` false plays a kernel before 5.10 (no `recovery`
    /// attribute). With it, recovery starts `enabled`, the kernel's default.
    pub fn mount_with(rproc_name: &str, firmware_dir: &Path, recovery_attr: bool) -> FakeSys {
        FakeSys::mount_kernel(rproc_name, firmware_dir, recovery_attr, None)
    }

    /// A kernel with the MIPS remoteproc driver and CPU 1 online and not listed: no
    /// remoteproc instance until CPU 1 is taken offline and written to `cpus`; it is then
    /// `remoteproc0`, named `rproc_name` (the driver's `mips-cpu1`).
    pub fn mount_mips(rproc_name: &str, firmware_dir: &Path) -> FakeSys {
        let driver = MipsDriver {
            cpu1_online: true,
            cpus: Vec::new(),
        };
        FakeSys::mount_kernel(rproc_name, firmware_dir, true, Some(driver))
    }

    fn mount_kernel(
        rproc_name: &str,
        firmware_dir: &Path,
        recovery_attr: bool,
        mips: Option<MipsDriver>,
    ) -> FakeSys {
        let dir = tempfile::tempdir().expect("fakesys: temp dir");
        let mnt = dir.path().join("sys");
        std::fs::create_dir(&mnt).expect("fakesys: mount point");
        let kernel = Arc::new(Mutex::new(Kernel {
            rproc_name: rproc_name.to_string(),
            firmware_dir: firmware_dir.to_path_buf(),
            state: RprocState::Offline,
            firmware: format!("rproc-{rproc_name}-fw"),
            recovery: recovery_attr.then_some(true),
            faults: Vec::new(),
            writes: Vec::new(),
            boots: Vec::new(),
            mips,
        }));
        let fs = FakeSysFs {
            kernel: kernel.clone(),
            handles: Mutex::new(HashMap::new()),
            next_fh: AtomicU64::new(1),
            mtime: SystemTime::now(),
        };
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<io::Result<()>>();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let at = mnt.clone();
        let thread = std::thread::Builder::new()
            .name("fakesys".into())
            .spawn(move || serve(fs, at, ready_tx, stop_rx))
            .expect("fakesys: thread");
        let ready = ready_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| Err(io::Error::other(format!("no answer from the server: {e}"))));
        if let Err(e) = ready {
            let _ = thread.join();
            panic!("fakesys: mounting on {}: {e}", mnt.display());
        }
        FakeSys {
            kernel,
            _dir: dir,
            mnt,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    /// The `--sysfs-root` to give the daemon.
    pub fn root(&self) -> &Path {
        &self.mnt
    }

    /// `class/remoteproc/remoteproc0` on the mount.
    pub fn dev_dir(&self) -> PathBuf {
        self.mnt.join("class/remoteproc/remoteproc0")
    }

    pub fn state(&self) -> RprocState {
        lock(&self.kernel).state
    }

    /// What `firmware` reads, without the newline.
    pub fn firmware(&self) -> String {
        lock(&self.kernel).firmware.clone()
    }

    /// Every attribute write so far, in order.
    pub fn writes(&self) -> Vec<AttrWrite> {
        lock(&self.kernel).writes.clone()
    }

    /// The writes so far, clearing the log.
    pub fn take_writes(&self) -> Vec<AttrWrite> {
        std::mem::take(&mut lock(&self.kernel).writes)
    }

    /// Firmware names booted successfully, in order.
    /// The `recovery` attribute: `Some(enabled)`, `None` if this kernel has none.
    pub fn recovery(&self) -> Option<bool> {
        lock(&self.kernel).recovery
    }

    pub fn boots(&self) -> Vec<String> {
        lock(&self.kernel).boots.clone()
    }

    pub fn inject(&self, f: Fault) {
        lock(&self.kernel).faults.push(f);
    }

    pub fn clear_faults(&self) {
        lock(&self.kernel).faults.clear();
    }

    /// [`FakeSys::mount_mips`]: whether CPU 1 is online, and the driver's CPU list.
    pub fn mips_cpus(&self) -> Option<(bool, Vec<u32>)> {
        let k = lock(&self.kernel);
        k.mips.as_ref().map(|m| (m.cpu1_online, m.cpus.clone()))
    }
}

/// The server thread: mount, report, serve until told to stop (or unmounted from outside).
fn serve(
    fs: FakeSysFs,
    at: PathBuf,
    ready: std::sync::mpsc::Sender<io::Result<()>>,
    stop: tokio::sync::oneshot::Receiver<()>,
) {
    // Multi-threaded: a current-thread runtime deadlocks on FUSE (spec rust-crates.md).
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    rt.block_on(async move {
        let mut opts = MountOptions::default();
        opts.fs_name("fakesys").default_permissions(true);
        let mut handle: MountHandle = match Session::new(opts).mount(fs, &at).await {
            Ok(h) => h,
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        let _ = ready.send(Ok(()));
        let ended = tokio::select! {
            _ = stop => false,
            r = &mut handle => {
                eprintln!("fakesys: {} was unmounted from outside ({r:?})", at.display());
                true
            }
        };
        if !ended {
            // Explicitly: a dropped handle unmounts from a task the closing runtime may never
            // run. Busy (someone still has a file open): detach instead.
            if let Err(e) = handle.unmount().await {
                eprintln!("fakesys: unmount {}: {e}; detaching", at.display());
                let _ = nix::mount::umount2(&at, nix::mount::MntFlags::MNT_DETACH);
            }
        }
    });
}

impl Drop for FakeSys {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        if super::mounted(&self.mnt) {
            let _ = nix::mount::umount2(self.mnt.as_path(), nix::mount::MntFlags::MNT_DETACH);
        }
    }
}
