//! The `/dev/vpe1` state machine, without FUSE: what `arch/mips/kernel/vpe.c` did on open,
//! write, release and the sysfs `kill`/`ntcs` attributes, on top of a remoteproc [`Backend`].
//!
//! Every file operation of the mount is one method here taking and returning plain values
//! (`Errno` for failures), so the whole behaviour is unit-tested without `/dev/fuse`.
//! Deliberate differences from the legacy driver are listed in `docs/SEMANTICS.md`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{debug, error, info, warn};
use vpe::convert::{self, Options as ConvertOptions};
use vpe::image::RelocSemantics;
use vpe::remoteproc::Backend;

use crate::loglimit::LogLimit;
use crate::status::{hex, LastError, Phase, Status};

/// `P_SIZE` of vpe.c: the buffer a loader may fill (exactly this many bytes are allowed).
pub const P_SIZE: usize = 262_144;

/// vpe_write() when the image does not fit (new-kernel spelling).
pub const MSG_TOO_BIG: &str = "VPE loader: elf size too big. Perhaps strip unneeded symbols";
/// vpe_release() when the buffer does not start with `\177ELF`.
pub const MSG_NOT_ELF: &str = "VPE loader: only elf files are supported";
/// vpe_release() when vpe_elfload() failed.
pub const MSG_LOAD_FAILED: &str = "VPE loader: ELF load failed.";

/// A failure of a file operation, as the errno the caller sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Errno(pub i32);

impl std::fmt::Display for Errno {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", std::io::Error::from_raw_os_error(self.0))
    }
}

/// The files of the mount (the root directory aside).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Node {
    /// The device: write an ELF, close to load it.
    Vpe1,
    /// `/sys/class/vpe/vpe1/kill`: any write stops the program.
    Kill,
    /// `/sys/class/vpe/vpe1/ntcs`: `$a2` of the next start.
    Ntcs,
    /// Human-readable status.
    Status,
    /// The same as JSON.
    StatusJson,
    /// The running program's hosted output (sim backend).
    Console,
    /// Trace buffer N of the running firmware, as debugfs `remoteprocM/traceN` reads it.
    Trace(u8),
}

/// `simple_read_from_buffer`: `size` bytes of `b` from `offset`, none past its end.
fn slice_at(b: &[u8], offset: u64, size: u32) -> Vec<u8> {
    let start = usize::try_from(offset).unwrap_or(usize::MAX).min(b.len());
    let end = start.saturating_add(size as usize).min(b.len());
    b[start..end].to_vec()
}

/// Trace files the mount offers (`trace0` ..); a firmware with fewer gives ENOENT.
pub const TRACES: u8 = 4;
const TRACE_NAMES: [&str; TRACES as usize] = ["trace0", "trace1", "trace2", "trace3"];

impl Node {
    pub const ALL: [Node; 10] = [
        Node::Vpe1,
        Node::Kill,
        Node::Ntcs,
        Node::Status,
        Node::StatusJson,
        Node::Console,
        Node::Trace(0),
        Node::Trace(1),
        Node::Trace(2),
        Node::Trace(3),
    ];

    pub fn name(self) -> &'static str {
        match self {
            Node::Vpe1 => "vpe1",
            Node::Kill => "kill",
            Node::Ntcs => "ntcs",
            Node::Status => "status",
            Node::StatusJson => "status.json",
            Node::Console => "console",
            Node::Trace(n) => TRACE_NAMES.get(usize::from(n)).copied().unwrap_or("trace?"),
        }
    }

    pub fn from_name(name: &[u8]) -> Option<Node> {
        Node::ALL.into_iter().find(|n| n.name().as_bytes() == name)
    }

    /// Permission bits: `vpe1` 0600 (0660 with a group), `kill` 0200 and `ntcs` 0644 as the
    /// sysfs attributes (vpe.c `DEVICE_ATTR`s), status files 0444.
    pub fn perm(self, group_writable: bool) -> u16 {
        match self {
            Node::Vpe1 if group_writable => 0o660,
            Node::Vpe1 => 0o600,
            Node::Kill => 0o200,
            Node::Ntcs => 0o644,
            Node::Status | Node::StatusJson | Node::Console | Node::Trace(_) => 0o444,
        }
    }
}

/// The answer to `touch`/`mkdir`/`ln`/`rm`/`mv` in the mount, whose names are fixed like
/// those of `/sys/class/vpe/vpe1`: an existing name cannot be removed, renamed or linked
/// (EPERM); a new name does not exist and cannot be made (ENOENT, as for any other name).
pub fn name_change(name: &[u8]) -> Errno {
    match Node::from_name(name) {
        Some(_) => Errno(libc::EPERM),
        None => Errno(libc::ENOENT),
    }
}

/// Daemon settings that shape the device.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cumulative image limit per open (`P_SIZE`).
    pub max_image: usize,
    /// Bytes all open `vpe1` buffers may hold together (their allocated capacity); a write
    /// that would need more is refused with ENOMEM like one past `max_image`.
    pub max_buffered: usize,
    /// Largest value `ntcs` accepts (`hw_tcs - tclimit` in vpe.c).
    pub max_tcs: u32,
    /// Initial `ntcs`.
    pub ntcs: u32,
    /// `flush` (i.e. `close()`) loads and reports the result as an errno.
    pub errors_on_close: bool,
    /// Install an image that already is remoteproc firmware unchanged (if the kernel's rules
    /// accept it) instead of refusing it.
    pub passthrough: bool,
    /// Open files at once ([`MAX_OPEN`]).
    pub max_open: usize,
    /// Conversion options; `ntcs` is replaced by the current `ntcs` at each load.
    pub convert: ConvertOptions,
}

/// Default of [`Config::max_buffered`]: this many full images at once.
pub const BUFFERED_IMAGES: usize = 4;

/// Open files of the mount at once (any user can open `status`); past it ENFILE. Each costs
/// the daemon ~200 bytes (the kernel's own struct file costs as much again).
pub const MAX_OPEN: usize = 65_536;

impl Default for Config {
    fn default() -> Self {
        Config {
            max_image: P_SIZE,
            max_buffered: BUFFERED_IMAGES * P_SIZE,
            max_tcs: 8,
            ntcs: 1,
            errors_on_close: false,
            passthrough: true,
            max_open: MAX_OPEN,
            // The device reproduces the old loader, so relocations mean what vpe.c made them
            // mean, bit for bit.
            convert: ConvertOptions {
                semantics: RelocSemantics::Legacy,
                ..Default::default()
            },
        }
    }
}

impl Config {
    /// The Lantiq-patched loader (`--kernel lantiq`, spec §3.3/§3.6/§6.2): the `/dev/vpe1`
    /// buffer is `vpe1_mem` (P_SIZE when 0), relocatable images go to `vpe1_load_addr`, a
    /// missing `__start`/`vpe_shared` starts at `KSEG1(vpe1_load_addr)`, and the firmware
    /// keeps those addresses (fixed profile).
    pub fn lantiq(mut self, vpe1_load_addr: u32, vpe1_mem: u32, entry_override: bool) -> Config {
        let limit = if vpe1_mem == 0 {
            P_SIZE as u32
        } else {
            vpe1_mem
        };
        self.max_image = limit as usize;
        self.max_buffered = self.max_image.saturating_mul(BUFFERED_IMAGES);
        self.convert.lantiq = Some(vpe::lantiq::LantiqLoader {
            vpe1_load_addr,
            vpe1_mem: limit,
            entry_override,
        });
        self.convert.profile = vpe::rproc::firmware::Profile::Fixed;
        self.convert.base = None;
        self
    }
}

/// Why a write to an open was refused; once one is, that open loads nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Refusal {
    /// Bytes of the refused write (one FUSE request: at most 1 MiB of a larger `write(2)`).
    size: usize,
    /// Bytes this open held then.
    held: usize,
    /// `true`: all opens together were at `max_buffered`; `false`: past `max_image`.
    budget: bool,
}

/// One writable `vpe1` open: its own buffer (vpe.c shared one `pbuffer` between all openers).
#[derive(Debug, Default)]
struct Upload {
    buf: Vec<u8>,
    /// Bytes of `buf` a load has taken out meanwhile (they still count against the limit).
    taken: usize,
    first_write: Option<Instant>,
    last_write: Option<Instant>,
    /// Written to since the last load attempt.
    dirty: bool,
    /// Result of the last load attempt of this buffer.
    result: Option<Result<(), Errno>>,
    /// The first refused write, if any.
    refused: Option<Refusal>,
    /// Processes (thread groups) that wrote to it, with `--errors-on-close`: only their
    /// closes load and report, not that of a child that inherited the descriptor and wrote
    /// nothing (a shell's own copy of a redirection is one such close).
    writers: Vec<u32>,
    /// Thread of the last write, so a run of writes resolves its process once.
    last_writer: Option<u32>,
}

/// Writer processes remembered per open; a descriptor shared by more is unusual.
const MAX_WRITERS: usize = 16;

#[derive(Debug, Clone, Copy)]
struct UploadState {
    dirty: bool,
    result: Option<Result<(), Errno>>,
    refused: bool,
    /// Whether the closing process is one of the writers (always true without
    /// `--errors-on-close`, where it does not matter).
    closer_wrote: bool,
}

#[derive(Debug)]
enum Handle {
    Vpe1(Upload),
    /// `vpe1` opened read-only: nothing can be written, so nothing is stopped or loaded.
    Vpe1ReadOnly,
    Kill,
    /// `ntcs` and status files: content snapshotted at open so partial reads are consistent.
    /// Status snapshots are shared between opens while the status does not change.
    Text(Arc<[u8]>),
    /// `traceN`: read from the buffer at every read, as debugfs `rproc_trace_read` does.
    Trace(u8),
}

struct Handles {
    next: u64,
    map: HashMap<u64, Handle>,
    /// Capacity of all `vpe1` buffers together (bounded by `max_buffered`).
    buffered: usize,
    /// Highest `buffered` since memory was last given back.
    high_water: usize,
    /// Refusals because of `max_buffered` in the current burst (logged once, summed at its end).
    budget_refusals: u64,
}

/// The last rendering of the status files, shared by every open that sees the same status.
struct Rendered {
    status: Status,
    text: Option<Arc<[u8]>>,
    json: Option<Arc<[u8]>>,
}

struct Rproc {
    backend: Box<dyn Backend>,
    status: Status,
    rendered: Option<Rendered>,
}

impl Rproc {
    /// The status with the backend's state read now.
    fn refresh(&mut self) {
        self.status.state = match self.backend.state_text() {
            Ok(s) => s,
            Err(e) => format!("unknown ({e})"),
        };
        self.status.cpu = self.backend.cpu();
    }
}

/// The emulated device. Shared between FUSE request tasks (`Sync`); blocking calls (every
/// method that may talk to the backend) should run off the async executor.
pub struct Device {
    cfg: Config,
    handles: Mutex<Handles>,
    /// Held for the whole of a load, so loads (and stops) are serialised.
    rproc: Mutex<Rproc>,
    ntcs: AtomicU32,
    limit: LogLimit,
}

/// Lock, ignoring poisoning: the protected data stays consistent between statements, and a
/// daemon that stops answering after one panic would be worse.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The thread group (process) of thread `tid`: FUSE requests carry the calling thread's id,
/// and a loader may open on one thread and close on another. `tid` itself if `/proc` does
/// not say (the thread is gone).
fn thread_group(tid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{tid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(tid)
}

impl Device {
    pub fn new(cfg: Config, backend: Box<dyn Backend>) -> Device {
        let status = Status {
            backend: backend.kind().to_string(),
            ntcs: cfg.ntcs,
            ..Default::default()
        };
        Device {
            ntcs: AtomicU32::new(cfg.ntcs),
            cfg,
            handles: Mutex::new(Handles {
                next: 1,
                map: HashMap::new(),
                buffered: 0,
                high_water: 0,
                budget_refusals: 0,
            }),
            rproc: Mutex::new(Rproc {
                backend,
                status,
                rendered: None,
            }),
            limit: LogLimit::default(),
        }
    }

    /// `open(2)` of `node`; `flags` are the open flags (only the access mode matters).
    ///
    /// `vpe1` for writing: any access mode is accepted and never EBUSY; the running program is
    /// stopped first (vpe_open: "tc in use dumping regs", notifiers' stop, release_progmem).
    /// `vpe1` read-only stops nothing (vpe.c stopped the program for any opener).
    pub fn open(&self, node: Node, flags: i32) -> Result<u64, Errno> {
        if lock(&self.handles).map.len() >= self.cfg.max_open {
            if self.limit.allow("too many open files") {
                warn!(
                    "{} files of the mount are open: open of {} refused (ENFILE)",
                    self.cfg.max_open,
                    node.name()
                );
            }
            return Err(Errno(libc::ENFILE));
        }
        let acc = flags & libc::O_ACCMODE;
        let reads = acc == libc::O_RDONLY || acc == libc::O_RDWR;
        let writes = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        let handle = match node {
            // A reader (grep -r, md5sum, a backup) can do nothing with vpe1 (read is EINVAL);
            // on a mount of regular files it must not stop the program.
            Node::Vpe1 if !writes => Handle::Vpe1ReadOnly,
            Node::Vpe1 => {
                self.stop_for_open();
                Handle::Vpe1(Upload::default())
            }
            // kernfs refuses to open an attribute for an operation it has no method for,
            // even for root (fs/kernfs/file.c kernfs_fop_open: -EACCES).
            Node::Kill if reads => return Err(Errno(libc::EACCES)),
            Node::Kill => Handle::Kill,
            Node::Ntcs => Handle::Text(Arc::from(self.ntcs_text().into_bytes())),
            Node::Status | Node::StatusJson if writes => return Err(Errno(libc::EACCES)),
            Node::Status | Node::StatusJson => Handle::Text(self.rendering(node)),
            Node::Console | Node::Trace(_) if writes => return Err(Errno(libc::EACCES)),
            Node::Console => Handle::Text(Arc::from(self.console())),
            Node::Trace(n) => {
                self.trace(n)?; // ENOENT at open when there is no such buffer
                Handle::Trace(n)
            }
        };
        let mut h = lock(&self.handles);
        let fh = h.next;
        h.next = h.next.wrapping_add(1).max(1);
        h.map.insert(fh, handle);
        Ok(fh)
    }

    /// `read(2)`. `vpe1` has no read method (EINVAL); text files read their snapshot.
    pub fn read(&self, fh: u64, offset: u64, size: u32) -> Result<Vec<u8>, Errno> {
        let h = lock(&self.handles);
        let t = match h.map.get(&fh) {
            None => return Err(Errno(libc::EBADF)),
            Some(Handle::Vpe1(_) | Handle::Vpe1ReadOnly | Handle::Kill) => {
                return Err(Errno(libc::EINVAL))
            }
            Some(Handle::Text(t)) => return Ok(slice_at(t, offset, size)),
            Some(Handle::Trace(n)) => *n,
        };
        // Not under the handles lock: the backend lock is taken after it elsewhere.
        drop(h);
        match self.trace(t) {
            Ok(b) => Ok(slice_at(&b, offset, size)),
            // The firmware stopped: debugfs removed traceN, and an open one reads EIO.
            Err(Errno(libc::ENOENT)) => Err(Errno(libc::EIO)),
            Err(e) => Err(e),
        }
    }

    /// `write(2)` by thread `pid`. The offset is ignored everywhere: `vpe1` appends
    /// (vpe_write ignores `*ppos`), attributes parse each write on its own (sysfs store).
    pub fn write(&self, fh: u64, data: &[u8], pid: u32) -> Result<usize, Errno> {
        let mut h = lock(&self.handles);
        let Handles {
            map,
            buffered,
            high_water,
            budget_refusals,
            ..
        } = &mut *h;
        match map.get_mut(&fh) {
            None => Err(Errno(libc::EBADF)),
            Some(Handle::Vpe1(up)) => {
                let len = up.taken + up.buf.len();
                let refuse = |up: &mut Upload, budget: bool| {
                    up.refused.get_or_insert(Refusal {
                        size: data.len(),
                        held: len,
                        budget,
                    });
                    Err(Errno(libc::ENOMEM))
                };
                // vpe_write: `if ((count + v->len) > v->plen)` → -ENOMEM, nothing copied.
                let need = match len.checked_add(data.len()) {
                    Some(n) if n <= self.cfg.max_image => n,
                    _ => {
                        if self.limit.allow("elf size too big") {
                            warn!("{MSG_TOO_BIG}");
                            debug!(
                                "write of {} bytes refused: {len} already buffered, limit {}",
                                data.len(),
                                self.cfg.max_image
                            );
                        }
                        return refuse(up, false);
                    }
                };
                let need = need - up.taken;
                let cap = up.buf.capacity();
                if need > cap {
                    // Grow geometrically (many small writes stay linear) but never past the
                    // per-open limit, and only within the budget of all opens together.
                    let want = need.max(cap.saturating_mul(2)).min(self.cfg.max_image);
                    let over = buffered
                        .checked_add(want - cap)
                        .is_none_or(|t| t > self.cfg.max_buffered);
                    if over || up.buf.try_reserve_exact(want - up.buf.len()).is_err() {
                        *budget_refusals += 1;
                        if *budget_refusals == 1 {
                            warn!(
                                "vpe1: all open vpe1 files hold {} bytes, the limit is {} \
                                 (--max-buffered): writes are refused (ENOMEM) until some \
                                 are closed",
                                *buffered, self.cfg.max_buffered
                            );
                        }
                        return refuse(up, true);
                    }
                    *buffered += up.buf.capacity() - cap;
                    *high_water = (*high_water).max(*buffered);
                }
                if self.cfg.errors_on_close && up.last_writer != Some(pid) {
                    up.last_writer = Some(pid);
                    let tgid = thread_group(pid);
                    if !up.writers.contains(&tgid) && up.writers.len() < MAX_WRITERS {
                        up.writers.push(tgid);
                    }
                }
                let now = Instant::now();
                up.first_write.get_or_insert(now);
                up.last_write = Some(now);
                up.buf.extend_from_slice(data);
                up.dirty = true;
                Ok(data.len())
            }
            // The kernel refuses writes on a read-only descriptor before they reach us.
            Some(Handle::Vpe1ReadOnly | Handle::Trace(_)) => Err(Errno(libc::EBADF)),
            Some(Handle::Kill) => {
                drop(h);
                self.kill();
                Ok(data.len())
            }
            Some(Handle::Text(_)) => {
                drop(h);
                // Only `ntcs` is a writable text file (status files refuse write opens).
                self.set_ntcs(data)?;
                Ok(data.len())
            }
        }
    }

    /// `truncate`/`O_TRUNC` (FUSE setattr with a size). A character device ignores
    /// `O_TRUNC`; only size 0 is accepted so that `>` redirections work.
    pub fn truncate(&self, node: Node, size: u64) -> Result<(), Errno> {
        match (node, size) {
            (Node::Status | Node::StatusJson, _) => Err(Errno(libc::EACCES)),
            (_, 0) => Ok(()),
            _ => Err(Errno(libc::EINVAL)),
        }
    }

    /// `close(2)` of one descriptor by thread `pid` (FUSE flush). Returns the load's result
    /// only with `--errors-on-close`, and only for the close of a process that wrote to this
    /// open: a forked child closing its inherited copy, or the shell closing its own copy of
    /// a redirection (the empty flush after `dup2`, or dash's parent after the fork), loads
    /// nothing; the release still loads whatever was written.
    pub fn flush(&self, fh: u64, pid: u32) -> Result<(), Errno> {
        if !self.cfg.errors_on_close {
            return Ok(());
        }
        match self.upload_state(fh, Some(pid)) {
            Some(u) if !u.closer_wrote => Ok(()),
            Some(u) if u.refused => Err(Errno(libc::ENOMEM)),
            Some(u) if u.dirty => self.load_handle(fh),
            // Nothing written yet (or loaded already): nothing to report but an earlier result.
            Some(u) => u.result.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }

    /// `fsync(2)` on `vpe1`: load now and report (ENOEXEC rejected image, EIO failed start,
    /// ENOMEM when a write was refused: nothing is loaded then).
    pub fn fsync(&self, fh: u64) -> Result<(), Errno> {
        match self.upload_state(fh, None) {
            Some(u) if u.refused => Err(Errno(libc::ENOMEM)),
            Some(u) if u.dirty || u.result.is_none() => self.load_handle(fh),
            Some(u) => u.result.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }

    /// Last close of an open (FUSE release): load what this open wrote, like vpe_release,
    /// unless one of its writes was refused. The result is logged and shown in `status`
    /// only; the VFS drops it anyway.
    pub fn release(&self, fh: u64) {
        match self.upload_state(fh, None) {
            Some(u) if u.refused => self.record_refused(fh),
            Some(u) if u.dirty || u.result.is_none() => {
                let _ = self.load_handle(fh);
            }
            _ => {}
        }
        let give_back = {
            let mut h = lock(&self.handles);
            if let Some(Handle::Vpe1(up)) = h.map.remove(&fh) {
                h.buffered = h.buffered.saturating_sub(up.buf.capacity());
            }
            if h.budget_refusals > 0 && h.buffered <= self.cfg.max_buffered / 2 {
                warn!(
                    "vpe1: {} writes were refused (ENOMEM) while all open vpe1 files were at \
                     the --max-buffered limit",
                    h.budget_refusals
                );
                h.budget_refusals = 0;
            }
            // After a burst of concurrent uploads, give the memory back; a single load's worth
            // stays for reuse (vpe::memory::reuse_freed_memory).
            let burst = h.buffered == 0 && h.high_water > 2 * self.cfg.max_image;
            if burst {
                h.high_water = 0;
            }
            burst
        };
        self.limit.flush();
        if give_back {
            vpe::memory::give_back_freed_memory();
        }
    }

    /// Report the log lines suppressed in windows that are over (the daemon's timer).
    pub fn flush_log(&self) {
        self.limit.flush();
    }

    /// A write to `kill`: stop the program; never fails (vpe.c store_kill returns len).
    /// `vpe_shared` is kept, as vpe.c kept `shared_ptr`.
    pub fn kill(&self) {
        let mut rp = lock(&self.rproc);
        if self.limit.allow("kill") {
            info!("kill: stopping the program");
        }
        if let Err(e) = rp.backend.stop() {
            if self.limit.allow("stop failed") {
                error!("kill: stop failed: {e}");
            }
            record_error(&mut rp.status, Phase::Stop, &e.to_string(), None, e.errno());
        }
    }

    /// `ntcs` as read: `"%d\n"`.
    pub fn ntcs_text(&self) -> String {
        format!("{}\n", self.ntcs.load(Ordering::SeqCst))
    }

    /// A write to `ntcs`: `kstrtoul(buf, 0, &new)`, then 0 or more than `max_tcs` is EINVAL
    /// (vpe.c store_ntcs maps every failure to -EINVAL).
    pub fn set_ntcs(&self, data: &[u8]) -> Result<(), Errno> {
        let v = kstrtoul(data).map_err(|_| Errno(libc::EINVAL))?;
        if v == 0 || v > u64::from(self.cfg.max_tcs) {
            if self.limit.allow("ntcs refused") {
                info!("ntcs: {v} refused (allowed 1..={})", self.cfg.max_tcs);
            }
            return Err(Errno(libc::EINVAL));
        }
        let v = u32::try_from(v).map_err(|_| Errno(libc::EINVAL))?;
        self.ntcs.store(v, Ordering::SeqCst);
        lock(&self.rproc).status.ntcs = v;
        if self.limit.allow("ntcs set") {
            info!("ntcs set to {v} ($a2 at the next start)");
        }
        Ok(())
    }

    /// Wait for a load (or stop) in progress to finish.
    pub fn wait_idle(&self) {
        drop(lock(&self.rproc));
    }

    /// The cumulative write limit of one open (`P_SIZE`, or `vpe1_mem` in Lantiq mode).
    pub fn max_image(&self) -> usize {
        self.cfg.max_image
    }

    /// The limit of all open `vpe1` buffers together.
    pub fn max_buffered(&self) -> usize {
        self.cfg.max_buffered
    }

    /// Current status, with the backend's state read now.
    pub fn status(&self) -> Status {
        let mut rp = lock(&self.rproc);
        rp.refresh();
        rp.status.clone()
    }

    /// The content of `status` or `status.json` now: the last rendering when nothing changed
    /// since (any number of opens then share one copy).
    fn rendering(&self, node: Node) -> Arc<[u8]> {
        let mut rp = lock(&self.rproc);
        rp.refresh();
        let rp = &mut *rp;
        let r = match &mut rp.rendered {
            Some(r) if r.status == rp.status => r,
            slot => slot.insert(Rendered {
                status: rp.status.clone(),
                text: None,
                json: None,
            }),
        };
        let (cell, render): (_, fn(&Status) -> String) = if node == Node::StatusJson {
            (&mut r.json, Status::to_json)
        } else {
            (&mut r.text, Status::to_text)
        };
        cell.get_or_insert_with(|| Arc::from(render(&r.status).into_bytes()))
            .clone()
    }

    /// The `console` file: the program's hosted output so far (empty if none).
    fn console(&self) -> Vec<u8> {
        lock(&self.rproc).backend.console().unwrap_or_default()
    }

    /// The `traceN` file: ENOENT if the firmware has no such buffer, EIO if unreadable.
    fn trace(&self, n: u8) -> Result<Vec<u8>, Errno> {
        match lock(&self.rproc).backend.read_trace(usize::from(n)) {
            Some(Ok(b)) => Ok(b),
            Some(Err(e)) => {
                warn!("trace{n}: {e}");
                Err(Errno(libc::EIO))
            }
            None => {
                info!("trace{n}: the running firmware has no trace buffer {n} (or nothing runs)");
                Err(Errno(libc::ENOENT))
            }
        }
    }

    /// Bytes all open `vpe1` buffers hold (their capacity).
    #[cfg(test)]
    fn buffered(&self) -> usize {
        lock(&self.handles).buffered
    }

    /// Dirty flag, last result and refusal of a `vpe1` handle, and whether thread `closer`
    /// belongs to one of its writers (`None` for other handles).
    fn upload_state(&self, fh: u64, closer: Option<u32>) -> Option<UploadState> {
        let closer = closer.map(thread_group);
        match lock(&self.handles).map.get(&fh) {
            Some(Handle::Vpe1(up)) => Some(UploadState {
                dirty: up.dirty,
                result: up.result,
                refused: up.refused.is_some(),
                closer_wrote: closer.is_none_or(|c| up.writers.contains(&c)),
            }),
            _ => None,
        }
    }

    /// The release of an open with a refused write: nothing is loaded, the attempt is a
    /// failure with the legacy message (the program stopped at open stays stopped, as it
    /// would have after vpe.c loaded the truncated buffer and failed).
    fn record_refused(&self, fh: u64) {
        let (r, size) = match lock(&self.handles).map.get(&fh) {
            Some(Handle::Vpe1(Upload {
                refused: Some(r),
                buf,
                ..
            })) => (*r, buf.len()),
            _ => return,
        };
        let why = if r.budget {
            format!(
                "all open vpe1 files together were at the --max-buffered limit of {} bytes",
                self.cfg.max_buffered
            )
        } else {
            format!(
                "{} bytes already written, limit {}",
                r.held, self.cfg.max_image
            )
        };
        let msg = format!(
            "{MSG_TOO_BIG} (a write of {} bytes was refused: {why}); nothing was loaded from \
             this open ({size} bytes received)",
            r.size
        );
        if self.limit.allow("nothing loaded") {
            warn!("{msg}");
        }
        let mut rp = lock(&self.rproc);
        let st = &mut rp.status;
        st.last_attempt_size = Some(size as u64);
        st.last_attempt_sha256 = None;
        st.warnings.clear();
        record_error(st, Phase::Write, &msg, Some(MSG_TOO_BIG), libc::ENOMEM);
    }

    /// Load the buffer of `fh` and remember the result on the handle.
    fn load_handle(&self, fh: u64) -> Result<(), Errno> {
        let (buf, receive) = {
            let mut h = lock(&self.handles);
            let Some(Handle::Vpe1(up)) = h.map.get_mut(&fh) else {
                return Err(Errno(libc::EBADF));
            };
            up.dirty = false;
            let receive = match (up.first_write, up.last_write) {
                (Some(a), Some(b)) => b.saturating_duration_since(a),
                _ => Duration::ZERO,
            };
            // Taken, not copied (it stays counted in `buffered` and against the limit), and
            // put back below for a later fsync or release.
            up.taken = up.buf.len();
            (std::mem::take(&mut up.buf), receive)
        };
        let result = self.load(&buf, receive);
        let mut h = lock(&self.handles);
        let Handles { map, buffered, .. } = &mut *h;
        if let Some(Handle::Vpe1(up)) = map.get_mut(&fh) {
            // Bytes written meanwhile (another thread on the same descriptor) follow.
            let later = std::mem::replace(&mut up.buf, buf);
            let counted = up.buf.capacity() + later.capacity();
            up.buf.extend_from_slice(&later);
            *buffered = (*buffered + up.buf.capacity()).saturating_sub(counted);
            up.taken = 0;
            up.result = Some(result);
        }
        result
    }

    /// vpe_release's load: check the magic, convert with the legacy model, install, start.
    ///
    /// `status` keeps describing what runs (firmware, entry, vpe_shared, sha256, image_size)
    /// until a load replaces it or a failed start leaves nothing running; the attempt itself
    /// is `last_attempt_*`, `last_result`, `last_error*` (cleared by a successful load; a
    /// failed stop after it sets them too), the warnings and the timings.
    fn load(&self, buf: &[u8], receive: Duration) -> Result<(), Errno> {
        let mut rp = lock(&self.rproc);
        let rp = &mut *rp;
        let st = &mut rp.status;
        st.timings = crate::status::Timings {
            receive_us: micros(receive),
            stop_us: st.timings.stop_us,
            ..Default::default()
        };
        st.warnings.clear();
        st.rollback = None;
        st.last_attempt_size = Some(buf.len() as u64);
        st.last_attempt_sha256 = None;
        // Asked only when a load fails: a success must not use up the failures' burst.
        let fail = || self.limit.allow("load failed");

        if !buf.starts_with(vpe::elf::ELFMAG) {
            if fail() {
                warn!("{MSG_NOT_ELF}");
            }
            let first: Vec<String> = buf.iter().take(4).map(|b| format!("{b:02x}")).collect();
            let msg = format!(
                "{MSG_NOT_ELF} (received {} bytes starting with [{}], not \\x7fELF)",
                buf.len(),
                first.join(" ")
            );
            st.last_attempt_sha256 = Some(convert::sha256_hex(buf));
            record_error(st, Phase::Check, &msg, Some(MSG_NOT_ELF), libc::ENOEXEC);
            return Err(Errno(libc::ENOEXEC));
        }

        let opts = ConvertOptions {
            ntcs: self.ntcs.load(Ordering::SeqCst),
            ..self.cfg.convert.clone()
        };
        let t = Instant::now();
        let conv = if self.cfg.passthrough {
            convert::convert_or_pass_through(buf, &opts)
        } else {
            convert::convert(buf, &opts)
        };
        st.timings.convert_us = micros(t.elapsed());
        let conv = match conv {
            Ok(c) => {
                st.last_attempt_sha256 = Some(c.input_sha256.clone());
                c
            }
            Err(e) => {
                st.last_attempt_sha256 = Some(convert::sha256_hex(buf));
                if fail() {
                    for line in e.to_string().lines() {
                        warn!("{line}");
                    }
                    warn!("{MSG_LOAD_FAILED}");
                }
                record_error(
                    st,
                    Phase::Convert,
                    &e.to_string(),
                    Some(MSG_LOAD_FAILED),
                    libc::ENOEXEC,
                );
                return Err(Errno(libc::ENOEXEC));
            }
        };
        st.warnings = conv.warnings();
        if self.limit.allow("load warnings") {
            for w in &st.warnings {
                warn!("{w}");
            }
        }
        if conv.passthrough && self.limit.allow("passthrough") {
            info!(
                "the image is remoteproc firmware that passes the kernel's rules: installing it unchanged (passthrough; ntcs does not apply)"
            );
        }

        let t = Instant::now();
        // The backend names the file after the firmware's own hash (it verifies it).
        let fw_sha = convert::sha256_hex(&conv.firmware);
        let installed = rp.backend.install(&conv.firmware, &fw_sha);
        st.timings.install_us = micros(t.elapsed());
        let name = match installed {
            Ok(name) => name,
            Err(e) => {
                let log = fail();
                if log {
                    error!("{e}");
                }
                record_error(st, Phase::Install, &e.to_string(), None, libc::EIO);
                // The open stopped the program, but its firmware is still installed.
                match rp.backend.restart_last_good(&e.to_string()) {
                    Ok(Some(r)) => {
                        if log {
                            warn!(
                                "restored {} (state {})",
                                r.restored_firmware,
                                r.restored_state.as_str()
                            );
                        }
                        st.firmware = Some(r.restored_firmware.clone());
                        st.rollback = Some(r);
                    }
                    Ok(None) => {}
                    Err(e2) if log => {
                        error!("restarting the previous firmware failed too: {e2}")
                    }
                    Err(_) => {}
                }
                return Err(Errno(libc::EIO));
            }
        };
        let t = Instant::now();
        let started = rp.backend.start(&name);
        st.timings.start_us = micros(t.elapsed());
        match started {
            Ok(out) if out.rolled_back.is_none() => {
                if self.limit.allow("started") {
                    info!(
                        "started {} (entry {}, sha256 {}), state {}",
                        out.firmware,
                        hex(conv.legacy.entry),
                        conv.input_sha256,
                        out.state.as_str()
                    );
                }
                st.firmware = Some(out.firmware);
                st.entry = Some(hex(conv.legacy.entry));
                st.vpe_shared = conv.legacy.shared.map(hex);
                st.sha256 = Some(conv.input_sha256.clone());
                st.image_size = Some(buf.len() as u64);
                st.passthrough = conv.passthrough;
                st.loads_ok += 1;
                st.last_result = Some("ok".into());
                // `last_error*` describe the last attempt: an older failure next to
                // `last_result: ok` read as this load's.
                st.last_error = None;
                Ok(())
            }
            Ok(out) => {
                // Checked above: rolled_back is Some here.
                let rb = out.rolled_back.clone();
                let failed = rb
                    .as_ref()
                    .map_or(String::new(), |r| r.failed_error.clone());
                let log = fail();
                if log {
                    error!("start of {} failed: {failed}", conv.input_sha256);
                }
                if let Some(r) = &rb {
                    if log {
                        warn!(
                            "rolled back to {} (state {})",
                            r.restored_firmware,
                            r.restored_state.as_str()
                        );
                    }
                    // The restored program is the one `status` described only if it was ours.
                    if st.firmware.as_deref() != Some(r.restored_firmware.as_str()) {
                        clear_running(st);
                    }
                    st.firmware = Some(r.restored_firmware.clone());
                }
                st.rollback = rb;
                record_error(st, Phase::Start, &failed, None, libc::EIO);
                Err(Errno(libc::EIO))
            }
            Err(e) => {
                if fail() {
                    error!("start failed: {e}");
                }
                // The start stopped what ran: nothing runs now.
                clear_running(st);
                st.firmware = rp.backend.firmware_name();
                record_error(st, Phase::Start, &e.to_string(), None, libc::EIO);
                Err(Errno(libc::EIO))
            }
        }
    }

    /// vpe_open's teardown of the previous program. Failures are logged and shown in
    /// `status`; the open itself still succeeds, as it always did.
    fn stop_for_open(&self) {
        let mut rp = lock(&self.rproc);
        let t = Instant::now();
        let r = rp.backend.stop();
        rp.status.timings.stop_us = micros(t.elapsed());
        rp.status.vpe_shared = None;
        match r {
            Ok(()) => debug!("VPE loader: tc in use dumping regs (open stopped the program)"),
            Err(e) => {
                if self.limit.allow("stop failed") {
                    error!("open: stopping the running program failed: {e}");
                }
                record_error(&mut rp.status, Phase::Stop, &e.to_string(), None, e.errno());
            }
        }
    }
}

/// Nothing of ours runs (a failed start without rollback): forget the program's facts.
fn clear_running(st: &mut Status) {
    st.entry = None;
    st.vpe_shared = None;
    st.sha256 = None;
    st.image_size = None;
    st.passthrough = false;
}

fn record_error(st: &mut Status, phase: Phase, msg: &str, legacy: Option<&str>, errno: i32) {
    if phase != Phase::Stop {
        st.loads_failed += 1;
        st.last_result = Some("failed".into());
    }
    st.last_error = Some(LastError {
        phase,
        errno,
        message: msg.to_string(),
        legacy_message: legacy.map(str::to_string),
        at: now_secs(),
    });
}

/// Why a number was refused by [`kstrtoul`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParseError {
    /// -EINVAL: no digits, or something after the number (other than one `\n`).
    Invalid,
    /// -ERANGE: does not fit an `unsigned long` (32 bits on MIPS32).
    Range,
}

/// `kstrtoul(s, 0, &res)` of lib/kstrtox.c on a 32-bit kernel: optional `+`, radix from
/// the prefix (`0x` with a hex digit after it → 16, leading `0` → 8, else 10), at least
/// one digit, then at most one trailing newline.
pub fn kstrtoul(s: &[u8]) -> Result<u64, ParseError> {
    let mut s = s.strip_prefix(b"+").unwrap_or(s);
    // _parse_integer_fixup_radix
    let radix: u64 = match s {
        [b'0', x, h, ..] if x.eq_ignore_ascii_case(&b'x') && h.is_ascii_hexdigit() => {
            s = &s[2..];
            16
        }
        [b'0', ..] => 8,
        _ => 10,
    };
    let mut value: u64 = 0;
    let mut digits = 0usize;
    for &c in s {
        let d = match c {
            b'0'..=b'9' => u64::from(c - b'0'),
            b'a'..=b'f' => u64::from(c - b'a' + 10),
            b'A'..=b'F' => u64::from(c - b'A' + 10),
            _ => break,
        };
        if d >= radix {
            break;
        }
        value = value
            .checked_mul(radix)
            .and_then(|v| v.checked_add(d))
            .ok_or(ParseError::Range)?;
        digits += 1;
    }
    if digits == 0 {
        return Err(ParseError::Invalid);
    }
    let rest = &s[digits..];
    let rest = rest.strip_prefix(b"\n").unwrap_or(rest);
    if !rest.is_empty() {
        return Err(ParseError::Invalid);
    }
    // kstrtoul: `if (tmp != (unsigned long)tmp) return -ERANGE;`
    if value > u64::from(u32::MAX) {
        return Err(ParseError::Range);
    }
    Ok(value)
}

#[cfg(test)]
mod tests;
