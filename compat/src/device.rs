//! The `/dev/vpe1` state machine, without FUSE: what `arch/mips/kernel/vpe.c` did on open,
//! write, release and the sysfs `kill`/`ntcs` attributes, on top of a remoteproc [`Backend`].
//!
//! Every file operation of the mount is one method here taking and returning plain values
//! (`Errno` for failures), so the whole behaviour is unit-tested without `/dev/fuse`.
//! Deliberate differences from the legacy driver are listed in `docs/SEMANTICS.md`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use log::{debug, error, info, warn};
use vpe::convert::{self, Options as ConvertOptions};
use vpe::image::RelocSemantics;
use vpe::remoteproc::Backend;

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

/// Daemon settings that shape the device.
#[derive(Debug, Clone)]
pub struct Config {
    /// Cumulative image limit per open (`P_SIZE`).
    pub max_image: usize,
    /// Largest value `ntcs` accepts (`hw_tcs - tclimit` in vpe.c).
    pub max_tcs: u32,
    /// Initial `ntcs`.
    pub ntcs: u32,
    /// `flush` (i.e. `close()`) loads and reports the result as an errno.
    pub errors_on_close: bool,
    /// Conversion options; `ntcs` is replaced by the current `ntcs` at each load.
    pub convert: ConvertOptions,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_image: P_SIZE,
            max_tcs: 8,
            ntcs: 1,
            errors_on_close: false,
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

/// One `vpe1` open: its own buffer (vpe.c shared one `pbuffer` between all openers).
#[derive(Debug, Default)]
struct Upload {
    buf: Vec<u8>,
    first_write: Option<Instant>,
    last_write: Option<Instant>,
    /// Written to since the last load attempt.
    dirty: bool,
    /// Result of the last load attempt of this buffer.
    result: Option<Result<(), Errno>>,
}

#[derive(Debug, Clone, Copy)]
struct UploadState {
    dirty: bool,
    result: Option<Result<(), Errno>>,
}

#[derive(Debug)]
enum Handle {
    Vpe1(Upload),
    Kill,
    /// `ntcs` and status files: content snapshotted at open so partial reads are consistent.
    Text(Vec<u8>),
}

struct Handles {
    next: u64,
    map: HashMap<u64, Handle>,
}

struct Rproc {
    backend: Box<dyn Backend>,
    status: Status,
}

/// The emulated device. Shared between FUSE request tasks (`Sync`); blocking calls (every
/// method that may talk to the backend) should run off the async executor.
pub struct Device {
    cfg: Config,
    handles: Mutex<Handles>,
    /// Held for the whole of a load, so loads (and stops) are serialised.
    rproc: Mutex<Rproc>,
    ntcs: AtomicU32,
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
            }),
            rproc: Mutex::new(Rproc { backend, status }),
        }
    }

    /// `open(2)` of `node`; `flags` are the open flags (only the access mode matters).
    ///
    /// `vpe1`: any access mode is accepted and never EBUSY; the running program is stopped
    /// first (vpe_open: "tc in use dumping regs", notifiers' stop, release_progmem).
    pub fn open(&self, node: Node, flags: i32) -> Result<u64, Errno> {
        let acc = flags & libc::O_ACCMODE;
        let reads = acc == libc::O_RDONLY || acc == libc::O_RDWR;
        let writes = acc == libc::O_WRONLY || acc == libc::O_RDWR;
        let handle = match node {
            Node::Vpe1 => {
                self.stop_for_open();
                Handle::Vpe1(Upload::default())
            }
            // kernfs refuses to open an attribute for an operation it has no method for,
            // even for root (fs/kernfs/file.c kernfs_fop_open: -EACCES).
            Node::Kill if reads => return Err(Errno(libc::EACCES)),
            Node::Kill => Handle::Kill,
            Node::Ntcs => Handle::Text(self.ntcs_text().into_bytes()),
            Node::Status | Node::StatusJson if writes => return Err(Errno(libc::EACCES)),
            Node::Status => Handle::Text(self.status().to_text().into_bytes()),
            Node::StatusJson => Handle::Text(self.status().to_json().into_bytes()),
            Node::Console | Node::Trace(_) if writes => return Err(Errno(libc::EACCES)),
            Node::Console => Handle::Text(self.console()),
            Node::Trace(n) => Handle::Text(self.trace(n)?),
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
        match h.map.get(&fh) {
            None => Err(Errno(libc::EBADF)),
            Some(Handle::Vpe1(_)) | Some(Handle::Kill) => Err(Errno(libc::EINVAL)),
            Some(Handle::Text(t)) => {
                let start = usize::try_from(offset).unwrap_or(usize::MAX).min(t.len());
                let end = start.saturating_add(size as usize).min(t.len());
                Ok(t[start..end].to_vec())
            }
        }
    }

    /// `write(2)`. The offset is ignored everywhere: `vpe1` appends (vpe_write ignores
    /// `*ppos`), attributes parse each write on its own (sysfs store).
    pub fn write(&self, fh: u64, data: &[u8]) -> Result<usize, Errno> {
        let mut h = lock(&self.handles);
        match h.map.get_mut(&fh) {
            None => Err(Errno(libc::EBADF)),
            Some(Handle::Vpe1(up)) => {
                // vpe_write: `if ((count + v->len) > v->plen)` → -ENOMEM, nothing copied.
                let total = up.buf.len().checked_add(data.len());
                if total.is_none_or(|t| t > self.cfg.max_image) {
                    warn!("{MSG_TOO_BIG}");
                    debug!(
                        "write of {} bytes refused: {} already buffered, limit {}",
                        data.len(),
                        up.buf.len(),
                        self.cfg.max_image
                    );
                    return Err(Errno(libc::ENOMEM));
                }
                let now = Instant::now();
                up.first_write.get_or_insert(now);
                up.last_write = Some(now);
                up.buf.extend_from_slice(data);
                up.dirty = true;
                Ok(data.len())
            }
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

    /// `close(2)` of one descriptor (FUSE flush). Returns the load's result only with
    /// `--errors-on-close`; the empty flush a shell sends after `dup2` is ignored.
    pub fn flush(&self, fh: u64) -> Result<(), Errno> {
        if !self.cfg.errors_on_close {
            return Ok(());
        }
        match self.upload_state(fh) {
            Some(u) if u.dirty => self.load_handle(fh),
            // Nothing written yet (or loaded already): nothing to report but an earlier result.
            Some(u) => u.result.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }

    /// `fsync(2)` on `vpe1`: load now and report (ENOEXEC rejected image, EIO failed start).
    pub fn fsync(&self, fh: u64) -> Result<(), Errno> {
        match self.upload_state(fh) {
            Some(u) if u.dirty || u.result.is_none() => self.load_handle(fh),
            Some(u) => u.result.unwrap_or(Ok(())),
            None => Ok(()),
        }
    }

    /// Last close of an open (FUSE release): load what this open wrote, like vpe_release.
    /// The result is logged and shown in `status` only; the VFS drops it anyway.
    pub fn release(&self, fh: u64) {
        if self
            .upload_state(fh)
            .is_some_and(|u| u.dirty || u.result.is_none())
        {
            let _ = self.load_handle(fh);
        }
        lock(&self.handles).map.remove(&fh);
    }

    /// A write to `kill`: stop the program; never fails (vpe.c store_kill returns len).
    /// `vpe_shared` is kept, as vpe.c kept `shared_ptr`.
    pub fn kill(&self) {
        let mut rp = lock(&self.rproc);
        info!("kill: stopping the program");
        if let Err(e) = rp.backend.stop() {
            error!("kill: stop failed: {e}");
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
            info!("ntcs: {v} refused (allowed 1..={})", self.cfg.max_tcs);
            return Err(Errno(libc::EINVAL));
        }
        let v = u32::try_from(v).map_err(|_| Errno(libc::EINVAL))?;
        self.ntcs.store(v, Ordering::SeqCst);
        lock(&self.rproc).status.ntcs = v;
        info!("ntcs set to {v} ($a2 at the next start)");
        Ok(())
    }

    /// The cumulative write limit of one open (`P_SIZE`, or `vpe1_mem` in Lantiq mode).
    pub fn max_image(&self) -> usize {
        self.cfg.max_image
    }

    /// Current status, with the backend's state read now.
    pub fn status(&self) -> Status {
        let mut rp = lock(&self.rproc);
        let state = match rp.backend.state() {
            Ok(s) => s.as_str().to_string(),
            Err(e) => format!("unknown ({e})"),
        };
        rp.status.state = state;
        rp.status.cpu = rp.backend.cpu();
        rp.status.clone()
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

    /// Dirty flag and last result of a `vpe1` handle (`None` for other handles).
    fn upload_state(&self, fh: u64) -> Option<UploadState> {
        match lock(&self.handles).map.get(&fh) {
            Some(Handle::Vpe1(up)) => Some(UploadState {
                dirty: up.dirty,
                result: up.result,
            }),
            _ => None,
        }
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
            (up.buf.clone(), receive)
        };
        let result = self.load(&buf, receive);
        if let Some(Handle::Vpe1(up)) = lock(&self.handles).map.get_mut(&fh) {
            up.result = Some(result);
        }
        result
    }

    /// vpe_release's load: check the magic, convert with the legacy model, install, start.
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
        // The input's sha256: taken from the conversion when there is one (it hashes the
        // input for the provenance note anyway), computed here otherwise.
        st.sha256 = None;
        st.image_size = Some(buf.len() as u64);
        // A failed load leaves nothing running and no shared pointer (vpe_release:
        // "if (ret < 0) v->shared_ptr = NULL").
        st.entry = None;
        st.vpe_shared = None;

        if !buf.starts_with(vpe::elf::ELFMAG) {
            warn!("{MSG_NOT_ELF}");
            let first: Vec<String> = buf.iter().take(4).map(|b| format!("{b:02x}")).collect();
            let msg = format!(
                "{MSG_NOT_ELF} (received {} bytes starting with [{}], not \\x7fELF)",
                buf.len(),
                first.join(" ")
            );
            st.sha256 = Some(convert::sha256_hex(buf));
            record_error(st, Phase::Check, &msg, Some(MSG_NOT_ELF), libc::ENOEXEC);
            return Err(Errno(libc::ENOEXEC));
        }

        let opts = ConvertOptions {
            ntcs: self.ntcs.load(Ordering::SeqCst),
            ..self.cfg.convert.clone()
        };
        let t = Instant::now();
        let conv = convert::convert(buf, &opts);
        st.timings.convert_us = micros(t.elapsed());
        let conv = match conv {
            Ok(c) => {
                st.sha256 = Some(c.input_sha256.clone());
                c
            }
            Err(e) => {
                st.sha256 = Some(convert::sha256_hex(buf));
                for line in e.to_string().lines() {
                    warn!("{line}");
                }
                warn!("{MSG_LOAD_FAILED}");
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
        for w in &st.warnings {
            warn!("{w}");
        }

        let t = Instant::now();
        // The backend names the file after the firmware's own hash (it verifies it).
        let fw_sha = convert::sha256_hex(&conv.firmware);
        let installed = rp.backend.install(&conv.firmware, &fw_sha);
        st.timings.install_us = micros(t.elapsed());
        let name = match installed {
            Ok(name) => name,
            Err(e) => {
                error!("installing the firmware failed: {e}");
                record_error(st, Phase::Install, &e.to_string(), None, libc::EIO);
                return Err(Errno(libc::EIO));
            }
        };
        let t = Instant::now();
        let started = rp.backend.start(&name);
        st.timings.start_us = micros(t.elapsed());
        match started {
            Ok(out) if out.rolled_back.is_none() => {
                info!(
                    "started {} (entry {}, sha256 {}), state {}",
                    out.firmware,
                    hex(conv.legacy.entry),
                    conv.input_sha256,
                    out.state.as_str()
                );
                st.firmware = Some(out.firmware);
                st.entry = Some(hex(conv.legacy.entry));
                st.vpe_shared = conv.legacy.shared.map(hex);
                st.loads_ok += 1;
                st.last_result = Some("ok".into());
                Ok(())
            }
            Ok(out) => {
                // Checked above: rolled_back is Some here.
                let rb = out.rolled_back.clone();
                let failed = rb
                    .as_ref()
                    .map_or(String::new(), |r| r.failed_error.clone());
                error!("start of {} failed: {failed}", conv.input_sha256);
                if let Some(r) = &rb {
                    warn!(
                        "rolled back to {} (state {})",
                        r.restored_firmware,
                        r.restored_state.as_str()
                    );
                    st.firmware = Some(r.restored_firmware.clone());
                }
                st.rollback = rb;
                record_error(st, Phase::Start, &failed, None, libc::EIO);
                Err(Errno(libc::EIO))
            }
            Err(e) => {
                error!("start failed: {e}");
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
                error!("open: stopping the running program failed: {e}");
                record_error(&mut rp.status, Phase::Stop, &e.to_string(), None, e.errno());
            }
        }
    }
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
