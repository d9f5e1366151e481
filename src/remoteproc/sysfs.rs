//! The real remote processor, driven through `/sys/class/remoteproc/remoteprocN/`
//! (drivers/remoteproc/remoteproc_sysfs.c; spec `remoteproc.md` §3, §6.3).
//!
//! - The instance is found by reading every `class/remoteproc/*/name`, never by its number
//!   (N comes from an IDA and is not stable).
//! - Firmware goes to `<firmware_dir>/<subdir>/<rproc name>/<sha256>.elf`: one directory per
//!   remote processor, so daemons driving different instances never touch each other's files.
//!   That directory is opened once (`O_DIRECTORY|O_NOFOLLOW` for every component below
//!   `firmware_dir`) and every later step is relative to that descriptor: `openat` of a temp
//!   file with `O_CREAT|O_EXCL|O_NOFOLLOW`, write, `fsync`, `fstatat`, `renameat`, directory
//!   `fsync`, `unlinkat`; a directory swapped for a symlink afterwards redirects nothing.
//!   `firmware_class.path` is never touched. The file stays after start because crash recovery
//!   re-reads it (`request_firmware` again).
//! - One daemon per instance: an exclusive `flock` on `.lock` in that directory, held for the
//!   backend's life (the holder's pid is written into it for the refusal message).
//! - Start: read `state`; `stop` if not offline; write `firmware`; write `start`; read `state`
//!   back. Each attribute write is one `write(2)` of the whole value: sysfs takes the first
//!   write of an open file as the whole value.
//! - If the start fails and a previous good firmware exists, it is configured and started
//!   again (unless rollback is disabled), and both outcomes are reported.
//!
//! Attribute I/O goes through [`AttrIo`] so tests can put a fake kernel behind it (regular
//! files cannot return errnos); [`RealAttrIo`] is the default.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};
use std::time::{Duration, Instant};

use log::{debug, info, warn};
use nix::errno::Errno;
use nix::fcntl::{openat, renameat, Flock, FlockArg, OFlag};
use nix::sys::stat::{fstat, fstatat, mkdirat, Mode, SFlag};
use nix::unistd::{unlinkat, UnlinkatFlags};
use sha2::{Digest, Sha256};

use super::{Backend, Rollback, RprocState, StartOutcome};
use crate::elf::read::printable_name;
use crate::error::{Error, Result};

// errno values (include/uapi/asm-generic/errno-base.h; the same on every Linux architecture,
// MIPS included, for numbers below 35).
pub const EPERM: i32 = 1;
pub const ENOENT: i32 = 2;
pub const EIO: i32 = 5;
pub const ENOMEM: i32 = 12;
pub const EACCES: i32 = 13;
pub const EBUSY: i32 = 16;
pub const EEXIST: i32 = 17;
pub const ENODEV: i32 = 19;
pub const EINVAL: i32 = 22;

/// Name of an errno for messages (`EBUSY`), or `errno N`.
pub fn errno_name(errno: i32) -> String {
    match errno {
        EPERM => "EPERM".into(),
        ENOENT => "ENOENT".into(),
        EIO => "EIO".into(),
        ENOMEM => "ENOMEM".into(),
        EACCES => "EACCES".into(),
        EBUSY => "EBUSY".into(),
        EEXIST => "EEXIST".into(),
        ENODEV => "ENODEV".into(),
        EINVAL => "EINVAL".into(),
        n => format!("errno {n}"),
    }
}

/// Reads and writes of sysfs attributes. The real one is [`RealAttrIo`]; tests put a fake
/// kernel behind it that applies the kernel's rules and returns its errnos.
pub trait AttrIo: Send {
    /// The attribute's whole value (with its trailing newline, as sysfs gives it).
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Write `value` with exactly one `write(2)`; the kernel's errno comes back as the error.
    fn write(&self, path: &Path, value: &str) -> io::Result<()>;
}

/// Attribute I/O on the real file system.
#[derive(Debug, Default, Clone, Copy)]
pub struct RealAttrIo;

impl AttrIo for RealAttrIo {
    fn read(&self, path: &Path) -> io::Result<String> {
        fs::read_to_string(path)
    }

    fn write(&self, path: &Path, value: &str) -> io::Result<()> {
        let mut f = OpenOptions::new().write(true).open(path)?;
        // One write(2), no BufWriter and no write_all loop: a sysfs store sees exactly this
        // buffer, and a second write would be taken as a second, separate value.
        let n = f.write(value.as_bytes())?;
        if n != value.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write: {n} of {} bytes accepted", value.len()),
            ));
        }
        Ok(())
    }
}

/// How to reach the remote processor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SysfsOptions {
    /// Mount point of sysfs (`/sys`).
    pub sysfs_root: PathBuf,
    /// A directory of the kernel's firmware search path (`/lib/firmware`).
    pub firmware_dir: PathBuf,
    /// The rproc's `name` attribute (e.g. `mips-cpu1`).
    pub rproc_name: String,
    /// Our own subdirectory of `firmware_dir` (`vpe-compat`); relative, no `..`. Firmware of
    /// this instance goes to its own `<subdir>/<rproc_name>/`.
    pub subdir: String,
    /// Start the previous good firmware again when a start fails.
    pub rollback: bool,
    /// What to write to the `recovery` attribute at start-up; `None` leaves it as it is.
    pub recovery: Option<Recovery>,
    /// If no instance is named `mips-cpuN` yet, hand CPU N to the MIPS remoteproc driver
    /// first ([`bring_up_mips_cpu`]).
    pub bring_up: bool,
    /// How long to wait for `mips-cpuN` to register after the bring-up.
    pub bring_up_timeout: Duration,
}

/// remoteproc's crash-recovery policy (the `recovery` attribute, sysfs since ~5.10).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// A crashed processor stays crashed, as with the legacy loader (it had no recovery).
    Disabled,
    /// The kernel reboots a crashed processor with the same firmware file.
    Enabled,
}

impl Recovery {
    pub fn as_str(self) -> &'static str {
        match self {
            Recovery::Disabled => "disabled",
            Recovery::Enabled => "enabled",
        }
    }
}

impl SysfsOptions {
    /// Defaults: `/sys`, `/lib/firmware`, subdirectory `vpe-compat`, rollback on, recovery
    /// disabled (the legacy behaviour).
    pub fn new(rproc_name: impl Into<String>) -> Self {
        SysfsOptions {
            sysfs_root: PathBuf::from("/sys"),
            firmware_dir: PathBuf::from("/lib/firmware"),
            rproc_name: rproc_name.into(),
            subdir: "vpe-compat".into(),
            rollback: true,
            recovery: Some(Recovery::Disabled),
            bring_up: false,
            bring_up_timeout: Duration::from_secs(5),
        }
    }
}

/// A remoteproc instance driven through sysfs.
pub struct Sysfs {
    opts: SysfsOptions,
    /// `<root>/class/remoteproc/remoteprocN`.
    dev: PathBuf,
    io: Box<dyn AttrIo>,
    /// The last firmware (name relative to `firmware_dir`) that reached `running`.
    last_good: Option<String>,
    /// `<firmware_dir>/<subdir>/<rproc_name>`, opened at start-up: every file operation is
    /// relative to it, never to its path.
    dir: OwnedFd,
    /// The exclusive lock on `.lock` in `dir`, held while this backend lives.
    _lock: Flock<File>,
}

/// The instance lock's file name inside the instance directory.
pub const LOCK_FILE: &str = ".lock";

impl std::fmt::Debug for Sysfs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sysfs")
            .field("opts", &self.opts)
            .field("dev", &self.dev)
            .field("last_good", &self.last_good)
            .finish_non_exhaustive()
    }
}

fn backend(message: impl Into<String>, errno: i32) -> Error {
    Error::Backend {
        message: message.into(),
        errno,
    }
}

fn io_errno(e: &io::Error) -> i32 {
    e.raw_os_error().unwrap_or(0)
}

/// Refuse a firmware name the kernel would refuse or that could leave the firmware
/// directory: empty, absolute, or with a `..` component (drivers/base/firmware_loader/main.c
/// `name_contains_dotdot`: "Firmware load for '%s' refused, path contains '..' component").
pub fn check_firmware_name(name: &str) -> Result<()> {
    if name.is_empty() {
        return Err(backend(
            "firmware name is empty (the kernel refuses it with EINVAL)",
            EINVAL,
        ));
    }
    if name.starts_with('/') {
        return Err(backend(
            format!("firmware name \"{name}\" refused: absolute paths are not under the firmware directory"),
            EINVAL,
        ));
    }
    if name.split('/').any(|c| c == "..") {
        return Err(backend(
            format!(
                "Firmware load for '{name}' refused, path contains '..' component (the kernel's firmware loader returns EINVAL)"
            ),
            EINVAL,
        ));
    }
    Ok(())
}

/// A sha256 as 64 lowercase hex digits (it becomes a file name, so nothing else passes).
pub fn check_sha256(sha: &str) -> Result<()> {
    if sha.len() == 64 && sha.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        Ok(())
    } else {
        Err(backend(
            format!("\"{sha}\" is not a sha256 (64 lowercase hex digits)"),
            EINVAL,
        ))
    }
}

/// Lowercase hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `bytes` must hash to `sha` (the file name promises its content).
pub(crate) fn check_content(bytes: &[u8], sha: &str) -> Result<()> {
    check_sha256(sha)?;
    let actual = sha256_hex(bytes);
    if actual != sha {
        return Err(backend(
            format!("firmware bytes have sha256 {actual}, not the {sha} given"),
            EINVAL,
        ));
    }
    Ok(())
}

/// File names this backend installs: `<64 hex>.elf`.
pub(crate) fn is_installed_name(file: &str) -> bool {
    file.strip_suffix(".elf")
        .is_some_and(|h| check_sha256(h).is_ok())
}

/// Check `subdir` is a relative path of plain components.
fn check_subdir(subdir: &str) -> Result<()> {
    let p = Path::new(subdir);
    if subdir.is_empty() || !p.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(backend(
            format!(
                "firmware subdirectory \"{subdir}\" refused: it must be a relative path without '.' or '..' components"
            ),
            EINVAL,
        ));
    }
    check_firmware_name(subdir)
}

/// The rproc name becomes one directory name below the subdirectory: a single plain
/// component (the kernel's names, `mips-cpu1`, always are).
fn check_rproc_dir_name(rproc_name: &str) -> Result<()> {
    let bad = rproc_name.is_empty()
        || rproc_name == "."
        || rproc_name == ".."
        || rproc_name.len() > 255
        || rproc_name
            .chars()
            .any(|c| c == '/' || c == '\0' || c.is_control());
    if bad {
        return Err(backend(
            format!(
                "remoteproc name \"{}\" refused: its firmware directory is named after it, so it must be one plain path component (no '/', not '.' or '..', printable, at most 255 bytes)",
                printable_name(rproc_name.as_bytes())
            ),
            EINVAL,
        ));
    }
    Ok(())
}

fn nix_errno(e: Errno) -> i32 {
    e as i32
}

/// Create (mode 0755) and open `<firmware_dir>/<subdir>/<rproc_name>`. `firmware_dir` is the
/// administrator's and may be reached through symlinks (`/lib` often is one); below it no
/// component may be a symlink: it would redirect where the firmware goes.
fn open_instance_dir(opts: &SysfsOptions) -> Result<OwnedFd> {
    let root = &opts.firmware_dir;
    let mut fd: OwnedFd = nix::fcntl::open(
        root.as_path(),
        OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        backend(
            format!("cannot open firmware directory {}: {e}", root.display()),
            nix_errno(e),
        )
    })?;
    let mut path = root.clone();
    let comps = Path::new(&opts.subdir)
        .components()
        .map(|c| c.as_os_str())
        .chain([OsStr::new(&opts.rproc_name)]);
    for comp in comps {
        path.push(comp);
        match mkdirat(&fd, comp, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => {
                return Err(backend(
                    format!("cannot create {}: {e}", path.display()),
                    nix_errno(e),
                ))
            }
        }
        let next = openat(
            &fd,
            comp,
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::empty(),
        );
        fd = match next {
            Ok(next) => next,
            Err(e) => {
                let kind = fstatat(&fd, comp, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                    .map(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT);
                let msg = match kind {
                    Ok(SFlag::S_IFLNK) => format!(
                        "{} is a symlink; refusing to install firmware through it",
                        path.display()
                    ),
                    Ok(k) if k != SFlag::S_IFDIR => {
                        format!("{} exists and is not a directory", path.display())
                    }
                    _ => format!("cannot open firmware directory {}: {e}", path.display()),
                };
                return Err(backend(msg, nix_errno(e)));
            }
        };
    }
    Ok(fd)
}

/// Take the instance lock (`flock(LOCK_EX|LOCK_NB)` on `.lock` in the instance directory) and
/// write our pid into it. A second daemon for the same instance is refused, naming the holder.
fn lock_instance(dir: &OwnedFd, dir_path: &Path) -> Result<Flock<File>> {
    let path = dir_path.join(LOCK_FILE);
    let fd = openat(
        dir,
        LOCK_FILE,
        OFlag::O_RDWR | OFlag::O_CREAT | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::from_bits_truncate(0o600),
    )
    .map_err(|e| {
        backend(
            format!("cannot open the instance lock {}: {e}", path.display()),
            nix_errno(e),
        )
    })?;
    let file = File::from(fd);
    // 0600 even if it existed: flock needs only read access, so a file others can open would
    // let any user hold the lock and keep the daemon from starting.
    file.set_permissions(fs::Permissions::from_mode(0o600))
        .map_err(|e| {
            backend(
                format!("cannot make {} private: {e}", path.display()),
                io_errno(&e),
            )
        })?;
    match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(mut lock) => {
            let pid = std::process::id();
            // Who holds it, for the message a second daemon prints; the lock is what counts.
            if let Err(e) = lock
                .set_len(0)
                .and_then(|()| lock.write_all(format!("{pid}\n").as_bytes()))
            {
                warn!("cannot write our pid into {}: {e}", path.display());
            }
            Ok(lock)
        }
        Err((mut f, Errno::EWOULDBLOCK)) => {
            let mut text = String::new();
            let holder = match f
                .read_to_string(&mut text)
                .map(|_| text.trim().parse::<u32>())
            {
                Ok(Ok(pid)) => {
                    // Its name too, when it can be read (the pid alone may be stale text).
                    let comm = fs::read_to_string(format!("/proc/{pid}/comm"))
                        .map(|c| format!(" ({})", printable_name(c.trim_end().as_bytes())))
                        .unwrap_or_default();
                    format!("process {pid}{comm}")
                }
                _ => "another process".to_string(),
            };
            Err(backend(
                format!(
                    "{holder} already drives this instance (it holds the lock {}); one vpe-compat per remote processor: stop that one first",
                    path.display()
                ),
                EBUSY,
            ))
        }
        Err((_, e)) => Err(backend(
            format!("cannot lock {}: {e}", path.display()),
            nix_errno(e),
        )),
    }
}

/// Find `remoteprocN` under `<sysfs_root>/class/remoteproc` whose `name` reads `rproc_name`.
/// The error lists the names found.
pub fn find_instance(sysfs_root: &Path, rproc_name: &str, io: &dyn AttrIo) -> Result<PathBuf> {
    let class = sysfs_root.join("class/remoteproc");
    let entries = fs::read_dir(&class).map_err(|e| {
        backend(
            format!(
                "no remoteproc class at {}: {e} (is CONFIG_REMOTEPROC enabled and the driver loaded?)",
                class.display()
            ),
            io_errno(&e),
        )
    })?;
    let mut devs: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    devs.sort();
    let mut found = Vec::new();
    let mut matches = Vec::new();
    for dev in devs {
        let dev_name = dev
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // Pre-5.4 kernels have no `name`; such an instance cannot be identified.
        let Ok(name) = io.read(&dev.join("name")) else {
            found.push(format!("{dev_name} (no name attribute)"));
            continue;
        };
        let name = name.trim_end_matches('\n').to_string();
        found.push(format!("{dev_name}: {name}"));
        if name == rproc_name {
            matches.push(dev);
        }
    }
    match matches.len() {
        1 => Ok(matches.remove(0)),
        0 => Err(backend(
            format!(
                "no remoteproc instance named \"{rproc_name}\" in {}; found: {}",
                class.display(),
                if found.is_empty() {
                    "none".to_string()
                } else {
                    found.join(", ")
                }
            ),
            ENODEV,
        )),
        _ => Err(backend(
            format!(
                "several remoteproc instances are named \"{rproc_name}\" in {}: {}",
                class.display(),
                matches
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            EINVAL,
        )),
    }
}

/// N of an instance name `mips-cpuN` (the MIPS remoteproc driver's naming, `mips-cpu%u`).
pub fn mips_cpu_number(rproc_name: &str) -> Option<u32> {
    let n = rproc_name.strip_prefix("mips-cpu")?;
    // `%u`: decimal digits only, no sign, no leading zeros (except "0" itself).
    if n.is_empty() || !n.bytes().all(|b| b.is_ascii_digit()) || (n.len() > 1 && n.starts_with('0'))
    {
        return None;
    }
    n.parse().ok()
}

/// A CPU list as the kernel's `cpulist_parse` reads it (`1-3,5`; an empty or blank value is
/// the empty set). `None` if it is not one.
pub fn parse_cpulist(s: &str) -> Option<Vec<u32>> {
    let s = s.trim();
    let mut cpus = Vec::new();
    if s.is_empty() {
        return Some(cpus);
    }
    for part in s.split(',') {
        let (a, b) = match part.split_once('-') {
            Some((a, b)) => (a.parse::<u32>().ok()?, b.parse::<u32>().ok()?),
            None => {
                let a = part.parse::<u32>().ok()?;
                (a, a)
            }
        };
        // A range wider than any NR_CPUS is not a CPU list the kernel printed.
        if a > b || b - a > 4096 {
            return None;
        }
        cpus.extend(a..=b);
    }
    cpus.sort_unstable();
    cpus.dedup();
    Some(cpus)
}

/// `cpus` as a CPU list, ranges folded (`1-3,5`), as the kernel prints it (`%*pbl`).
pub fn format_cpulist(cpus: &[u32]) -> String {
    let mut v = cpus.to_vec();
    v.sort_unstable();
    v.dedup();
    let mut out: Vec<String> = Vec::new();
    let mut i = 0;
    while i < v.len() {
        let mut j = i;
        while j + 1 < v.len() && v[j + 1] == v[j] + 1 {
            j += 1;
        }
        out.push(if i == j {
            v[i].to_string()
        } else {
            format!("{}-{}", v[i], v[j])
        });
        i = j + 1;
    }
    out.join(",")
}

/// `<root>/devices/mips-rproc/cpus` (the MIPS remoteproc driver v4–v6; spec §4.2).
fn mips_rproc_cpus(sysfs_root: &Path) -> PathBuf {
    sysfs_root.join("devices/mips-rproc/cpus")
}

/// Hand CPU `cpu` to the MIPS remoteproc driver (spec `remoteproc.md` §4.2, §6.3 "Profile M
/// bring-up"): take it offline through CPU hotplug (`devices/system/cpu/cpuN/online` ← `0`),
/// then add it to `devices/mips-rproc/cpus`, keeping the CPUs already there. The driver then
/// registers an instance named `mips-cpuN` (and tries to boot its default firmware
/// `rproc-mips-cpuN-fw`, harmless if absent). Each step that is already done is skipped.
pub fn bring_up_mips_cpu(sysfs_root: &Path, cpu: u32, io: &dyn AttrIo) -> Result<()> {
    let cpus_path = mips_rproc_cpus(sysfs_root);
    let mask = io.read(&cpus_path).map_err(|e| {
        backend(
            format!(
                "cannot bring up CPU {cpu}: {} cannot be read ({e}); it belongs to the out-of-tree MIPS remoteproc driver (CONFIG_MIPS_REMOTEPROC), which this kernel does not seem to have",
                cpus_path.display()
            ),
            io_errno(&e),
        )
    })?;
    let mut cpus = parse_cpulist(&mask).ok_or_else(|| {
        backend(
            format!(
                "{} reads {:?}, which is not a CPU list",
                cpus_path.display(),
                mask.trim_end()
            ),
            EINVAL,
        )
    })?;
    let online = sysfs_root.join(format!("devices/system/cpu/cpu{cpu}/online"));
    match io.read(&online) {
        Ok(v) if v.trim() == "0" => info!("CPU {cpu} is already offline"),
        Ok(_) => {
            info!("taking CPU {cpu} offline ({})", online.display());
            io.write(&online, "0").map_err(|e| {
                let errno = io_errno(&e);
                let why = match errno {
                    EBUSY => "the kernel refused (EBUSY: it is the last online CPU, or its core holds a VPE another driver has taken)",
                    EPERM | EACCES => "the daemon lacks privilege",
                    _ => "see dmesg",
                };
                backend(
                    format!("cannot take CPU {cpu} offline: writing 0 to {}: {e}; {why}", online.display()),
                    errno,
                )
            })?;
        }
        Err(e) => {
            return Err(backend(
                format!(
                    "cannot take CPU {cpu} offline: {} cannot be read ({e}); the CPU does not exist or cannot be hot-unplugged",
                    online.display()
                ),
                io_errno(&e),
            ))
        }
    }
    if cpus.contains(&cpu) {
        info!("CPU {cpu} is already in {}", cpus_path.display());
    } else {
        cpus.push(cpu);
        let value = format_cpulist(&cpus);
        info!("writing {value} to {}", cpus_path.display());
        io.write(&cpus_path, &value).map_err(|e| {
            backend(
                format!(
                    "handing CPU {cpu} to the MIPS remoteproc driver: writing {value} to {}: {e}; see dmesg",
                    cpus_path.display()
                ),
                io_errno(&e),
            )
        })?;
    }
    Ok(())
}

/// Poll for the instance after a bring-up: the driver registers it from a CPU hotplug
/// callback and boots it asynchronously.
fn wait_for_instance(opts: &SysfsOptions, io: &dyn AttrIo) -> Result<PathBuf> {
    let deadline = Instant::now() + opts.bring_up_timeout;
    loop {
        match find_instance(&opts.sysfs_root, &opts.rproc_name, io) {
            Ok(dev) => return Ok(dev),
            Err(e) if Instant::now() >= deadline => {
                return Err(backend(
                    format!(
                        "CPU handed to the MIPS remoteproc driver, but after {} ms: {e}",
                        opts.bring_up_timeout.as_millis()
                    ),
                    ENODEV,
                ))
            }
            Err(_) => std::thread::sleep(Duration::from_millis(10)),
        }
    }
}

/// A missing `mips-cpuN` on a kernel with the MIPS remoteproc driver: say how to get it.
fn with_bring_up_hint(e: Error, opts: &SysfsOptions, io: &dyn AttrIo) -> Error {
    let (Some(cpu), Error::Backend { message, errno }) = (mips_cpu_number(&opts.rproc_name), &e)
    else {
        return e;
    };
    if *errno != ENODEV || io.read(&mips_rproc_cpus(&opts.sysfs_root)).is_err() {
        return e;
    }
    backend(
        format!(
            "{message}. The MIPS remoteproc driver registers mips-cpu{cpu} only for an offline CPU listed in {}: pass --bring-up, or run: echo 0 > {}; echo {cpu} > {} (keeping the CPUs already listed)",
            mips_rproc_cpus(&opts.sysfs_root).display(),
            opts.sysfs_root
                .join(format!("devices/system/cpu/cpu{cpu}/online"))
                .display(),
            mips_rproc_cpus(&opts.sysfs_root).display()
        ),
        *errno,
    )
}

/// What an errno means for a given attribute write (remoteproc_sysfs.c, remoteproc_core.c).
fn explain(attr: &str, value: &str, errno: i32, fw: Option<&str>) -> String {
    let word = value.trim_end_matches('\n');
    match (attr, word, errno) {
        ("firmware", _, EBUSY) => {
            "can't change firmware while running: the processor is not offline".into()
        }
        ("firmware", _, EINVAL) => {
            "can't provide empty string for firmware name, or the rproc lock was interrupted".into()
        }
        ("firmware", _, ENOMEM) => "the kernel could not allocate the name".into(),
        ("state", "start", EBUSY) => {
            "the processor is already running, or the driver's start op failed: Boot failed: -16"
                .into()
        }
        ("state", "start", ENOENT) => format!(
            "Boot failed: -2: request_firmware found no file {} in the kernel's firmware search path",
            fw.unwrap_or("(unknown)")
        ),
        ("state", "start", EINVAL) => {
            "Boot failed: -22: the kernel rejected the firmware (ELF sanity check, resource table, segment load, or a '..' in its name); see dmesg".into()
        }
        ("state", "start", ENOMEM) => {
            "Boot failed: -12: the carveouts could not be allocated".into()
        }
        ("state", "start", ENODEV) => "can't boot deleted rproc".into(),
        ("state", "stop", EINVAL) => "the processor is not running".into(),
        ("state", _, EINVAL) => format!("Unrecognised option: {word}"),
        (_, _, EACCES | EPERM) => {
            "the attribute is read-only (the driver sets sysfs_read_only) or the daemon lacks privilege".into()
        }
        _ => "see dmesg".into(),
    }
}

impl Sysfs {
    /// Find the instance by name on the real sysfs and prepare the firmware subdirectory;
    /// stale temp files in it are removed.
    pub fn open(opts: SysfsOptions) -> Result<Sysfs> {
        Sysfs::open_with_io(opts, Box::new(RealAttrIo))
    }

    /// As [`Sysfs::open`] with another attribute I/O (tests: a fake kernel).
    pub fn open_with_io(opts: SysfsOptions, io: Box<dyn AttrIo>) -> Result<Sysfs> {
        check_subdir(&opts.subdir)?;
        check_rproc_dir_name(&opts.rproc_name)?;
        // The directory and the lock first: a second daemon for this instance must change
        // nothing (no bring-up, no recovery write, no cleanup of the first one's temp files).
        let dir = open_instance_dir(&opts)?;
        let dir_path = opts.firmware_dir.join(&opts.subdir).join(&opts.rproc_name);
        // Its message does not name the instance: the daemon prefixes every open error with it.
        let lock = lock_instance(&dir, &dir_path)?;
        let dev = match find_instance(&opts.sysfs_root, &opts.rproc_name, io.as_ref()) {
            Ok(dev) => dev,
            Err(e) if opts.bring_up => {
                let cpu = mips_cpu_number(&opts.rproc_name).ok_or_else(|| {
                    backend(
                        format!(
                            "--bring-up hands CPU N to the MIPS remoteproc driver, which names its instance mips-cpuN; \"{}\" is not such a name",
                            opts.rproc_name
                        ),
                        EINVAL,
                    )
                })?;
                info!("{e}; bringing up CPU {cpu} for the MIPS remoteproc driver");
                bring_up_mips_cpu(&opts.sysfs_root, cpu, io.as_ref())?;
                wait_for_instance(&opts, io.as_ref())?
            }
            Err(e) => return Err(with_bring_up_hint(e, &opts, io.as_ref())),
        };
        let mut s = Sysfs {
            opts,
            dev,
            io,
            last_good: None,
            dir,
            _lock: lock,
        };
        s.apply_recovery_policy()?;
        let removed = s.cleanup_stale_temp_files()?;
        if removed > 0 {
            info!(
                "removed {removed} stale temp file(s) from {}",
                s.subdir_path().display()
            );
        }
        // What already runs from our directory is the rollback target until something else
        // runs.
        if s.read_state().ok() == Some(RprocState::Running) {
            if let Some(fw) = s.configured_firmware() {
                if s.is_ours(&fw) && s.firmware_present(&fw) {
                    s.last_good = Some(fw);
                }
            }
        }
        info!(
            "remoteproc {}: using {} (state {}, firmware {:?}), firmware directory {}",
            s.opts.rproc_name,
            s.dev.display(),
            s.state_text()
                .unwrap_or_else(|e| format!("unreadable ({e})")),
            s.configured_firmware(),
            s.subdir_path().display()
        );
        Ok(s)
    }

    /// `<root>/class/remoteproc/remoteprocN` of the instance.
    pub fn device_dir(&self) -> &Path {
        &self.dev
    }

    /// `<firmware_dir>/<subdir>/<rproc_name>`: this instance's firmware directory.
    pub fn subdir_path(&self) -> PathBuf {
        self.opts
            .firmware_dir
            .join(&self.opts.subdir)
            .join(&self.opts.rproc_name)
    }

    /// `<subdir>/<rproc_name>`: how firmware names written to `firmware` begin.
    fn name_prefix(&self) -> String {
        format!("{}/{}", self.opts.subdir, self.opts.rproc_name)
    }

    /// The file name in our directory of `name` (relative to `firmware_dir`), if it is one
    /// of ours.
    fn own_file<'a>(&self, name: &'a str) -> Option<&'a str> {
        name.strip_prefix(&self.name_prefix())
            .and_then(|r| r.strip_prefix('/'))
            .filter(|f| is_installed_name(f))
    }

    /// The options this instance was opened with.
    pub fn options(&self) -> &SysfsOptions {
        &self.opts
    }

    /// The firmware (relative name) that last reached `running`: the rollback target.
    pub fn last_good(&self) -> Option<&str> {
        self.last_good.as_deref()
    }

    fn is_ours(&self, name: &str) -> bool {
        self.own_file(name).is_some()
    }

    fn firmware_present(&self, name: &str) -> bool {
        if check_firmware_name(name).is_err() {
            return false;
        }
        match self.own_file(name) {
            Some(file) => fstatat(&self.dir, file, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
                .is_ok_and(|st| {
                    SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFREG
                }),
            None => fs::symlink_metadata(self.opts.firmware_dir.join(name))
                .is_ok_and(|m| m.file_type().is_file()),
        }
    }

    /// Read an attribute of the instance (without the trailing newline).
    pub fn read_attr(&self, attr: &str) -> Result<String> {
        let path = self.dev.join(attr);
        self.io
            .read(&path)
            .map(|s| s.trim_end_matches('\n').to_string())
            .map_err(|e| self.read_failed(attr, &e))
    }

    /// The error for a failed read of `attr`. Not logged here: the caller reports it (once;
    /// `status` reads `state` on every open of the status files).
    fn read_failed(&self, attr: &str, e: &io::Error) -> Error {
        let msg = format!(
            "remoteproc {}: reading {attr} failed: {e}",
            self.opts.rproc_name
        );
        backend(msg, io_errno(e))
    }

    /// Write `value` to an attribute in one `write(2)`; the errno is explained in the error,
    /// which the caller reports (it was logged here too, and then again by the daemon).
    pub fn write_attr(&self, attr: &str, value: &str) -> Result<()> {
        let path = self.dev.join(attr);
        self.io.write(&path, value).map_err(|e| {
            let errno = io_errno(&e);
            let why = if errno == 0 {
                e.to_string()
            } else {
                let fw = if attr == "state" {
                    self.configured_firmware()
                } else {
                    None
                };
                format!(
                    "{} ({})",
                    errno_name(errno),
                    explain(attr, value, errno, fw.as_deref())
                )
            };
            let msg = format!(
                "remoteproc {}: writing \"{value}\" to {attr} failed: {why}",
                self.opts.rproc_name
            );
            backend(msg, errno)
        })
    }

    /// Write the configured recovery policy if the attribute exists and differs. Kernels
    /// before ~5.10 have no such attribute (the policy lived in debugfs): said once, not an
    /// error. A refused write is an error: the daemon must not run with another policy than
    /// the one it was given.
    fn apply_recovery_policy(&self) -> Result<()> {
        let Some(want) = self.opts.recovery else {
            return Ok(());
        };
        let current = match self.io.read(&self.dev.join("recovery")) {
            Ok(v) => v.trim_end_matches('\n').to_string(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                info!(
                    "remoteproc {}: no recovery attribute (a kernel before 5.10 keeps it in debugfs); recovery {} not applied",
                    self.opts.rproc_name,
                    want.as_str()
                );
                return Ok(());
            }
            Err(e) => return Err(self.read_failed("recovery", &e)),
        };
        if current == want.as_str() {
            return Ok(());
        }
        self.write_attr("recovery", want.as_str())?;
        info!(
            "remoteproc {}: recovery {current} -> {}",
            self.opts.rproc_name,
            want.as_str()
        );
        Ok(())
    }

    /// `state`, parsed (a word that is no remoteproc state is `Invalid`).
    pub fn read_state(&self) -> Result<RprocState> {
        self.read_attr("state").map(|s| RprocState::parse(&s))
    }

    /// `state` for people: the word if it is one of remoteproc's, else `unknown ("<text>")`
    /// with the text as read, escaped.
    pub fn state_text(&self) -> Result<String> {
        self.read_attr("state").map(|raw| show_state(&raw))
    }

    /// `firmware`, or `None` if unreadable or `unknown` (attached processors).
    pub fn configured_firmware(&self) -> Option<String> {
        self.read_attr("firmware")
            .ok()
            .filter(|s| !s.is_empty() && s != "unknown")
    }

    /// Names in our directory (`.` and `..` aside).
    fn list_dir(&self) -> io::Result<Vec<String>> {
        let mut d = nix::dir::Dir::openat(
            &self.dir,
            ".",
            OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?;
        let mut names = Vec::new();
        for entry in d.iter() {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name != "." && name != ".." {
                names.push(name);
            }
        }
        Ok(names)
    }

    /// Whether `file` in our directory is a directory (never following a symlink).
    fn is_dir_entry(&self, file: &str) -> bool {
        fstatat(&self.dir, file, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)
            .is_ok_and(|st| SFlag::from_bits_truncate(st.st_mode) & SFlag::S_IFMT == SFlag::S_IFDIR)
    }

    /// Remove `*.tmp` entries (left by an interrupted install) from our directory. Returns
    /// how many were removed. A symlink is removed, never followed.
    pub fn cleanup_stale_temp_files(&self) -> Result<usize> {
        let names = self.list_dir().map_err(|e| {
            backend(
                format!("cannot list {}: {e}", self.subdir_path().display()),
                io_errno(&e),
            )
        })?;
        let mut removed = 0;
        for name in names.iter().filter(|n| n.ends_with(".tmp")) {
            if self.is_dir_entry(name) {
                continue;
            }
            match unlinkat(&self.dir, name.as_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) => removed += 1,
                Err(e) => warn!(
                    "cannot remove stale temp file {}: {e}",
                    self.subdir_path().join(name).display()
                ),
            }
        }
        Ok(removed)
    }

    /// The path of our directory must still lead to the directory we opened, or the kernel
    /// (which resolves the path) would look for the firmware somewhere else.
    fn check_dir_in_place(&self) -> io::Result<()> {
        let ours = fstat(&self.dir)?;
        let there = fs::metadata(self.subdir_path())?;
        if there.dev() != ours.st_dev as u64 || there.ino() != ours.st_ino as u64 {
            return Err(io::Error::other(format!(
                "{} is no longer the directory this daemon opened at start-up (replaced or moved); the kernel would not find the firmware: restart the daemon",
                self.subdir_path().display()
            )));
        }
        Ok(())
    }

    /// Install `bytes` as `<subdir>/<rproc_name>/<sha>.elf` atomically; returns that name
    /// (what is written to `firmware`). A file of that name already there is replaced
    /// (`renameat` never follows a symlink at the target). Every step is relative to the
    /// directory descriptor opened at start-up.
    pub fn install_firmware(&self, bytes: &[u8], sha: &str) -> Result<String> {
        check_content(bytes, sha)?;
        let file = format!("{sha}.elf");
        let name = format!("{}/{file}", self.name_prefix());
        check_firmware_name(&name)?;
        let dir = self.subdir_path();
        let pid = std::process::id();

        // O_CREAT|O_EXCL|O_NOFOLLOW: a symlink or file planted at the temp name makes the open
        // fail (never followed), and we try the next name.
        let mut created = None;
        for n in 0..64u32 {
            let tmp = format!(".{file}.{pid}.{n}.tmp");
            match openat(
                &self.dir,
                tmp.as_str(),
                OFlag::O_WRONLY
                    | OFlag::O_CREAT
                    | OFlag::O_EXCL
                    | OFlag::O_NOFOLLOW
                    | OFlag::O_CLOEXEC,
                Mode::from_bits_truncate(0o644),
            ) {
                Ok(fd) => {
                    created = Some((tmp, File::from(fd)));
                    break;
                }
                Err(Errno::EEXIST) => {
                    warn!(
                        "{} already exists; not touching it",
                        dir.join(&tmp).display()
                    );
                }
                Err(e) => {
                    return Err(backend(
                        format!(
                            "installing firmware {} failed: cannot create temp file {}: {e}",
                            dir.join(&file).display(),
                            dir.join(&tmp).display()
                        ),
                        nix_errno(e),
                    ))
                }
            }
        }
        let Some((tmp, mut f)) = created else {
            return Err(backend(
                format!(
                    "cannot create a temp file in {}: every candidate name exists",
                    dir.display()
                ),
                EEXIST,
            ));
        };

        let mut write = || -> io::Result<()> {
            // Mode exactly 0644 whatever the umask: the kernel reads it with its own
            // credentials, people inspecting the directory expect a readable file.
            f.set_permissions(fs::Permissions::from_mode(0o644))?;
            f.write_all(bytes)?;
            test_pause_in_install();
            f.sync_all()?;
            // The name must still be the file we wrote (nobody swapped it).
            let ours = fstat(&f)?;
            let there = fstatat(
                &self.dir,
                tmp.as_str(),
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )?;
            if SFlag::from_bits_truncate(there.st_mode) & SFlag::S_IFMT != SFlag::S_IFREG
                || there.st_ino != ours.st_ino
                || there.st_dev != ours.st_dev
            {
                return Err(io::Error::other(
                    "temp file was replaced while being written",
                ));
            }
            renameat(&self.dir, tmp.as_str(), &self.dir, file.as_str())?;
            nix::unistd::fsync(&self.dir)?;
            Ok(())
        };
        if let Err(e) = write() {
            let _ = unlinkat(&self.dir, tmp.as_str(), UnlinkatFlags::NoRemoveDir);
            // The caller logs it (once).
            return Err(backend(
                format!(
                    "installing firmware {} failed: {e}",
                    dir.join(&file).display()
                ),
                io_errno(&e),
            ));
        }
        if let Err(e) = self.check_dir_in_place() {
            return Err(backend(
                format!(
                    "installing firmware {} failed: {e}",
                    dir.join(&file).display()
                ),
                io_errno(&e),
            ));
        }
        // Per load: at debug, the daemon's own (rate-limited) line tells the outcome.
        debug!(
            "installed {} ({} bytes)",
            dir.join(&file).display(),
            bytes.len()
        );
        Ok(name)
    }

    /// Delete installed firmware files of ours other than those named in `keep` (names
    /// relative to `firmware_dir`: the configured one, the rollback target).
    fn remove_superseded(&self, keep: &[&str]) {
        let keep: Vec<&str> = keep.iter().filter_map(|k| self.own_file(k)).collect();
        let Ok(names) = self.list_dir() else {
            return;
        };
        for name in names {
            if keep.contains(&name.as_str()) || !is_installed_name(&name) {
                continue;
            }
            let path = self.subdir_path().join(&name);
            match unlinkat(&self.dir, name.as_str(), UnlinkatFlags::NoRemoveDir) {
                Ok(()) => debug!("removed superseded firmware {}", path.display()),
                Err(e) => warn!("cannot remove superseded firmware {}: {e}", path.display()),
            }
        }
    }
}

/// Test-only fault window: with `VPE_TEST_INSTALL_PAUSE_MS` set (by `compat/tests/faults.rs`),
/// an install sleeps that long with the temp file written but not yet renamed, so a test can
/// `kill -9` the daemon in the middle of an install. It only ever delays.
fn test_pause_in_install() {
    if let Some(ms) = std::env::var_os("VPE_TEST_INSTALL_PAUSE_MS")
        .and_then(|v| v.to_str().and_then(|v| v.parse::<u64>().ok()))
    {
        std::thread::sleep(std::time::Duration::from_millis(ms.min(60_000)));
    }
}

/// `state` as read, for messages: the word if it is one of remoteproc's, else
/// `unknown ("<text>")` with the text escaped (a kernel or fake we do not know).
pub(crate) fn show_state(raw: &str) -> String {
    let raw = raw.strip_suffix('\n').unwrap_or(raw);
    match RprocState::from_word(raw) {
        Some(st) => st.as_str().to_string(),
        None => format!(
            "unknown (\"{}\")",
            printable_name(raw.as_bytes()).replace('"', "\\\"")
        ),
    }
}

/// The sysfs view of a remote processor that the start sequence needs; implemented by the
/// real sysfs backend and by the simulator, so both follow exactly the same sequence.
pub(crate) trait Attrs {
    fn read_state(&mut self) -> Result<RprocState>;
    /// `state` for messages (see [`show_state`]); read again, only on failure paths.
    fn state_text(&mut self) -> String;
    fn write_state(&mut self, word: &str) -> Result<()>;
    fn write_firmware(&mut self, name: &str) -> Result<()>;
    fn firmware_present(&self, name: &str) -> bool;
    /// The log target of the backend's lines (`vpe::remoteproc::sim` or `...::sysfs`): the
    /// shared sequence logs under the backend that runs it.
    fn log_target(&self) -> &'static str;
}

/// Stop unless offline (no-op then: `stop` on an offline rproc is EINVAL in sysfs).
pub(crate) fn stop_if_needed<A: Attrs + ?Sized>(a: &mut A) -> Result<()> {
    let st = a.read_state()?;
    if st == RprocState::Offline {
        return Ok(());
    }
    a.write_state("stop")?;
    let after = a.read_state()?;
    if after != RprocState::Offline {
        // `stop` only drops a power reference when others hold one (remoteproc_core.c).
        return Err(backend(
            format!(
                "state reads {} after stop (was {}); another user may hold the processor",
                a.state_text(),
                st.as_str()
            ),
            EBUSY,
        ));
    }
    Ok(())
}

/// read state → stop if not offline → write firmware → write start → read state.
fn start_one<A: Attrs + ?Sized>(a: &mut A, name: &str) -> Result<RprocState> {
    stop_if_needed(a)?;
    configure_and_start(a, name)
}

/// With the processor stopped: write firmware → write start → read state.
fn configure_and_start<A: Attrs + ?Sized>(a: &mut A, name: &str) -> Result<RprocState> {
    match a.write_firmware(name) {
        // Someone started it between our read and write: stop once more and retry.
        Err(e) if e.errno() == EBUSY => {
            warn!(target: a.log_target(), "{e}; stopping and retrying");
            stop_if_needed(a)?;
            a.write_firmware(name)?;
        }
        r => r?,
    }
    // State is offline here, so `start` cannot double-start (on the newest kernels a second
    // start succeeds and only bumps the power refcount).
    a.write_state("start")?;
    let st = a.read_state()?;
    if st != RprocState::Running {
        return Err(backend(
            format!(
                "start of {name} returned success but state reads {}",
                a.state_text()
            ),
            EIO,
        ));
    }
    Ok(st)
}

/// The whole start with rollback. `firmware` of the outcome is `name`; on rollback `state` is
/// what was read after the failed start and `rolled_back` holds the restored one.
pub(crate) fn start_sequence<A: Attrs + ?Sized>(
    a: &mut A,
    name: &str,
    previous: Option<&str>,
    rollback: bool,
) -> Result<StartOutcome> {
    // A stop that fails changes nothing: the previous firmware stays configured (and running),
    // so there is nothing to roll back; report the stop failure alone.
    stop_if_needed(a)?;
    let target = a.log_target();
    let err = match configure_and_start(a, name) {
        Ok(state) => {
            // Per load, like the rollback lines below: at debug; the caller reports the
            // outcome once, rate-limited.
            debug!(target: target, "{name} is running");
            return Ok(StartOutcome {
                firmware: name.to_string(),
                state,
                rolled_back: None,
            });
        }
        Err(e) => e,
    };
    let candidate = previous.filter(|p| *p != name && a.firmware_present(p));
    let Some(prev) = candidate.filter(|_| rollback) else {
        if let (Some(p), false) = (candidate, rollback) {
            // In the error, which the caller logs (rate-limited) and shows in `status`.
            return Err(backend(
                format!("{err}; not rolling back to {p} (rollback disabled)"),
                err.errno(),
            ));
        }
        return Err(err);
    };
    // The failure itself is the caller's to report, with the outcome of the rollback.
    debug!(target: target, "start of {name} failed; rolling back to {prev}");
    let failed_state = a.read_state().unwrap_or(RprocState::Invalid);
    match start_one(a, prev) {
        Ok(restored_state) => {
            debug!(target: target, "rolled back: {prev} is running again");
            Ok(StartOutcome {
                firmware: name.to_string(),
                state: failed_state,
                rolled_back: Some(Rollback {
                    failed_error: err.to_string(),
                    restored_firmware: prev.to_string(),
                    restored_state,
                }),
            })
        }
        Err(e2) => Err(backend(
            format!("{err}; rollback to {prev} also failed: {e2}"),
            err.errno(),
        )),
    }
}

/// After a load failed before its start (the install ran out of space, say): the open of
/// `vpe1` stopped the program, but its firmware is still there. Start `previous` again if
/// rollback is on, it is still installed and nothing runs; `Ok(None)` when there is nothing
/// to do.
pub(crate) fn restart_previous<A: Attrs + ?Sized>(
    a: &mut A,
    previous: Option<&str>,
    rollback: bool,
    failed_error: &str,
) -> Result<Option<Rollback>> {
    let Some(prev) = previous.filter(|p| rollback && a.firmware_present(p)) else {
        return Ok(None);
    };
    if a.read_state()? != RprocState::Offline {
        return Ok(None);
    }
    let target = a.log_target();
    // The failure itself is the caller's to report (once).
    debug!(target: target, "the load failed before its start; starting {prev} again");
    let restored_state = configure_and_start(a, prev)?;
    debug!(target: target, "restored: {prev} is running again");
    Ok(Some(Rollback {
        failed_error: failed_error.to_string(),
        restored_firmware: prev.to_string(),
        restored_state,
    }))
}

impl Attrs for Sysfs {
    fn read_state(&mut self) -> Result<RprocState> {
        Sysfs::read_state(self)
    }
    fn state_text(&mut self) -> String {
        Sysfs::state_text(self).unwrap_or_else(|e| format!("unreadable ({e})"))
    }
    fn log_target(&self) -> &'static str {
        module_path!()
    }
    fn write_state(&mut self, word: &str) -> Result<()> {
        self.write_attr("state", word)
    }
    fn write_firmware(&mut self, name: &str) -> Result<()> {
        check_firmware_name(name)?;
        self.write_attr("firmware", name)
    }
    fn firmware_present(&self, name: &str) -> bool {
        Sysfs::firmware_present(self, name)
    }
}

impl Backend for Sysfs {
    fn kind(&self) -> &'static str {
        "sysfs"
    }

    fn state(&mut self) -> Result<RprocState> {
        Sysfs::read_state(self)
    }

    fn stop(&mut self) -> Result<()> {
        // The firmware file stays: the next install's rollback may need it.
        stop_if_needed(self)
    }

    fn install(&mut self, firmware: &[u8], sha256: &str) -> Result<String> {
        self.install_firmware(firmware, sha256)
    }

    fn start(&mut self, name: &str) -> Result<StartOutcome> {
        let previous = self.last_good.clone();
        let rollback = self.opts.rollback;
        let outcome = match start_sequence(self, name, previous.as_deref(), rollback) {
            Ok(o) => o,
            Err(e) => {
                // Keep what is configured (recovery and the next start read it) and the
                // rollback target; a failed image that is neither would pile up otherwise
                // (every failed start whose rollback failed too left one). If `firmware`
                // cannot be read, remove nothing.
                if let Ok(configured) = self.read_attr("firmware") {
                    let keep = [Some(configured.as_str()), previous.as_deref()];
                    self.remove_superseded(&keep.into_iter().flatten().collect::<Vec<_>>());
                }
                return Err(e);
            }
        };
        let running = match &outcome.rolled_back {
            Some(r) => r.restored_firmware.clone(),
            None => outcome.firmware.clone(),
        };
        self.remove_superseded(&[&running]);
        self.last_good = Some(running);
        Ok(outcome)
    }

    fn restart_last_good(&mut self, failed_error: &str) -> Result<Option<Rollback>> {
        let previous = self.last_good.clone();
        let rollback = self.opts.rollback;
        restart_previous(self, previous.as_deref(), rollback, failed_error)
    }

    fn state_text(&mut self) -> Result<String> {
        Sysfs::state_text(self)
    }

    fn firmware_name(&mut self) -> Option<String> {
        self.configured_firmware()
    }

    /// debugfs `remoteproc/remoteprocN/traceN` (under `<sysfs root>/kernel/debug`): the
    /// kernel's own view of the trace buffer. Not mounted, or no such buffer: `None` (the
    /// file reads ENOENT) with a log line saying which.
    fn read_trace(&mut self, n: usize) -> Option<Result<Vec<u8>>> {
        let debugfs = self.opts.sysfs_root.join("kernel/debug/remoteproc");
        if !debugfs.is_dir() {
            warn!(
                "trace{n}: debugfs is not mounted ({} missing; mount -t debugfs none /sys/kernel/debug)",
                debugfs.display()
            );
            return None;
        }
        let path = debugfs
            .join(self.dev.file_name()?)
            .join(format!("trace{n}"));
        match std::fs::read(&path) {
            Ok(b) => Some(Ok(b)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                info!(
                    "trace{n}: {} does not exist (the firmware has no trace buffer {n})",
                    path.display()
                );
                None
            }
            Err(e) => Some(Err(backend(
                format!("trace{n}: cannot read {}: {e}", path.display()),
                e.raw_os_error().unwrap_or(0),
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotdot_and_absolute_names_are_refused() {
        assert!(check_firmware_name("vpe-compat/../../etc/shadow").is_err());
        assert!(check_firmware_name("..").is_err());
        assert!(check_firmware_name("a/..").is_err());
        assert!(check_firmware_name("/etc/passwd").is_err());
        assert!(check_firmware_name("").is_err());
        assert_eq!(
            check_firmware_name("..a/b..").map_err(|e| e.to_string()),
            Ok(())
        );
        assert!(check_subdir("vpe-compat").is_ok());
        assert!(check_subdir("a/b").is_ok());
        assert!(check_subdir("./a").is_err());
        assert!(check_subdir("a/../b").is_err());
        assert!(check_subdir("/abs").is_err());
        assert!(check_subdir("").is_err());
    }

    #[test]
    fn rproc_names_are_one_plain_component_and_states_are_shown_as_read() {
        assert!(check_rproc_dir_name("mips-cpu1").is_ok());
        for bad in ["", ".", "..", "a/b", "../x", "a\nb", &"x".repeat(256)] {
            assert_eq!(
                check_rproc_dir_name(bad).map_err(|e| e.errno()),
                Err(EINVAL),
                "{bad:?}"
            );
        }
        assert_eq!(show_state("running\n"), "running");
        assert_eq!(show_state("invalid"), "invalid");
        assert_eq!(show_state("startne\n"), r#"unknown ("startne")"#);
        assert_eq!(show_state("a\"b\x07"), r#"unknown ("a\"b\x07")"#);
    }

    #[test]
    fn sha_must_be_64_lowercase_hex_and_match() {
        // sha256("") from FIPS 180-2 examples.
        let empty = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
        assert_eq!(sha256_hex(b""), empty);
        assert!(check_content(b"", empty).is_ok());
        assert!(check_content(b"x", empty).is_err());
        assert!(check_sha256(&empty.to_uppercase()).is_err());
        assert!(check_sha256("../x").is_err());
        assert!(is_installed_name(&format!("{empty}.elf")));
        assert!(!is_installed_name(&format!("{empty}.elf.tmp")));
    }

    #[test]
    fn errno_explanations_name_the_kernel_rule() {
        assert!(
            explain("firmware", "x", EBUSY, None).contains("can't change firmware while running")
        );
        assert!(explain("state", "bogus", EINVAL, None).contains("Unrecognised option: bogus"));
        assert!(explain("state", "start\n", ENOENT, Some("a/b.elf")).contains("a/b.elf"));
        assert!(explain("state", "stop", EINVAL, None).contains("not running"));
        assert_eq!(errno_name(EBUSY), "EBUSY");
        assert_eq!(errno_name(99), "errno 99");
    }

    #[test]
    fn real_attr_io_writes_the_value_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state");
        fs::write(&p, "offline\n").unwrap();
        RealAttrIo.write(&p, "start").unwrap();
        // No truncation (sysfs ignores it); the value lands at offset 0 in one piece.
        assert_eq!(fs::read_to_string(&p).unwrap(), "startne\n");
        assert_eq!(RealAttrIo.read(&p).unwrap(), "startne\n");
    }
}
