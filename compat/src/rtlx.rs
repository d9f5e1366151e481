//! The `/dev/rtlx0..7` state machine, without FUSE: what `arch/mips/kernel/rtlx.c` did on
//! open, read, write, poll and release, over the SP's memory ([`SpMemory`]) and the library's
//! RTLX model (`vpe::rtlx`).
//!
//! No interrupt reaches userspace, so nothing here sleeps: an operation that would block in
//! the kernel returns a "wait" outcome ([`Open::Wait`], [`Read::Wait`], [`Write::Wait`]) and
//! the adapter retries it after a [`Backoff`] delay ([`wait_for`] does that on a blocking
//! thread). Every SP-published pointer and index is checked before use (`vpe::rtlx::ring`),
//! so a hostile SP gets EIO and a message naming the channel, never an access outside its
//! carveouts. Differences from the legacy driver are listed in `docs/SEMANTICS.md`.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use log::{debug, error, warn};
use serde::Serialize;
use vpe::elf::Endian;
use vpe::rtlx::layout::{self, Choice, Info, Published};
use vpe::rtlx::{State, RTLX_CHANNELS, RTLX_CHANNEL_SYSIO};
use vpe::spmem::{Carveouts, SpMemory};

use crate::device::Errno;

pub mod kspd;

/// The running SP program as RTLX needs to see it.
#[derive(Clone)]
pub struct SpView {
    /// Changes with every start: handles opened before it see EOF.
    pub generation: u64,
    pub memory: Arc<dyn SpMemory + Send + Sync>,
    pub carveouts: Carveouts,
    /// SP address of the program's `vpe_shared` variable (`None`: it has none, and a blocking
    /// open waits forever, as `vpe_get_shared` returned NULL).
    pub shared: Option<u32>,
    /// The firmware's byte order (`EI_DATA`).
    pub endian: Endian,
    /// Apply the legacy `*p >= KSEG0` test too (only meaningful for the `fixed` profile; the
    /// `mips-rproc` profile runs the SP at KUSEG addresses).
    pub kseg0_rule: bool,
}

/// Daemon settings of the channels.
#[derive(Debug, Clone, Copy)]
pub struct Config {
    /// `--rtlx-layout`.
    pub layout: Choice,
    /// `--kspd`: the daemon holds channel 2 ([`Rtlx::kspd_step`]); AP opens of it are EBUSY.
    pub kspd: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            layout: Choice::Auto,
            kspd: false,
        }
    }
}

/// What one [`Rtlx::kspd_step`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum KspdStep {
    /// No running SP with a published `rtlx_info`: nothing to serve yet.
    Idle,
    /// Requests served (possibly none); events for the daemon.
    Served(Vec<kspd::Event>),
}

/// Result of [`Rtlx::open`].
pub enum Open {
    /// The file handle.
    Opened(u64),
    /// Blocking open with no valid `rtlx_info` published yet: wait, then [`Rtlx::resume`].
    /// While this is held the channel is "in open" (a second open gets EBUSY, as
    /// `channel_wqs[index].in_open` made it); dropping it gives up (a signal).
    Wait(Pending),
}

/// A blocking open waiting for the SP.
pub struct Pending {
    rtlx: Arc<Rtlx>,
    channel: usize,
}

impl Drop for Pending {
    fn drop(&mut self) {
        self.rtlx.lock().in_open[self.channel] = false;
    }
}

/// Result of [`Rtlx::read`].
#[derive(Debug, PartialEq, Eq)]
pub enum Read {
    /// The bytes; empty for a non-blocking read with no data (the legacy `return 0`).
    Data(Vec<u8>),
    /// The SP stopped (or was replaced): end of file.
    Eof,
    /// Blocking read, no data yet: wait and retry.
    Wait,
}

/// Result of [`Rtlx::write`].
#[derive(Debug, PartialEq, Eq)]
pub enum Write {
    /// Bytes accepted; fewer than offered when the ring is nearly full.
    Wrote(usize),
    /// Blocking write, ring full: wait and retry.
    Wait,
}

// poll(2) bits (asm-generic/poll.h; the same on every Linux architecture but MIPS/SPARC for
// the *WR* variants, and this is the host's side: use libc's).
pub const POLLIN: u32 = libc::POLLIN as u32;
pub const POLLRDNORM: u32 = libc::POLLRDNORM as u32;
pub const POLLOUT: u32 = libc::POLLOUT as u32;
pub const POLLWRNORM: u32 = libc::POLLWRNORM as u32;
pub const POLLERR: u32 = libc::POLLERR as u32;
pub const POLLHUP: u32 = libc::POLLHUP as u32;

/// Legacy messages (rtlx.c), kept verbatim.
pub const MSG_NONBLOCK_NO_SP: &str = "No SP program loaded, and device opened with O_NONBLOCK";
pub const MSG_SHARED_NULL: &str = " *vpe_get_shared is NULL. Has an SP program been loaded?";
pub const MSG_RELEASE_NULL: &str = "rtlx_release() with null rtlx";

struct HandleState {
    channel: usize,
    generation: u64,
    /// SP → AP bytes taken out of the ring when the SP stopped, still to be read.
    drained: VecDeque<u8>,
}

/// The SP side as last reported: which program, running or not.
struct Sp {
    view: SpView,
    running: bool,
    /// The kernel's `rtlx` pointer: found by the first successful open after a start.
    info: Option<Info>,
}

/// The SP a handle may still touch with its `rtlx_info`, if any.
type Live<'a> = Option<(&'a Sp, Info)>;

struct Inner {
    sp: Option<Sp>,
    /// Generation whose channel 2 kspd has opened (`KSPD: SP channel opened`).
    kspd_opened: Option<u64>,
    /// Generation kspd gave up on (`KSPD: unable to open sp channel`) until the next start.
    kspd_gave_up: Option<u64>,
    in_open: [bool; RTLX_CHANNELS],
    handles: HashMap<u64, HandleState>,
    next_fh: u64,
}

/// The eight channels. Shared by the FUSE request tasks behind an `Arc`.
pub struct Rtlx {
    cfg: Config,
    inner: Mutex<Inner>,
}

/// What `status` shows about RTLX.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RtlxStatus {
    /// Address of the `rtlx_info` in use, once an open found it.
    pub rtlx_info: Option<String>,
    /// `296` or `300`.
    pub layout: Option<&'static str>,
    /// How the layout was chosen (`--rtlx-layout ...` or what `auto` saw).
    pub layout_decided: Option<&'static str>,
    /// Channels with an AP handle open.
    pub open_channels: Vec<usize>,
}

fn errno(e: &vpe::Error) -> Errno {
    Errno(e.errno())
}

impl Rtlx {
    pub fn new(cfg: Config) -> Arc<Rtlx> {
        Arc::new(Rtlx {
            cfg,
            inner: Mutex::new(Inner {
                sp: None,
                kspd_opened: None,
                kspd_gave_up: None,
                in_open: [false; RTLX_CHANNELS],
                handles: HashMap::new(),
                next_fh: 1,
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // Consistent between statements; a panic in one request must not stop the others.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The start notifier (`rtlx_starting`): a new program runs; the `rtlx_info` is looked up
    /// again at the next open.
    pub fn sp_started(&self, view: SpView) {
        self.lock().sp = Some(Sp {
            view,
            running: true,
            info: None,
        });
    }

    /// The stop notifier (`rtlx_stopping`), called before the program's memory goes away
    /// (kill, reload, crash): what the SP already wrote for open channels is kept for their
    /// readers, then blocked and later reads see EOF and the memory is not touched again.
    pub fn sp_stopping(&self) {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let Some(sp) = inner.sp.as_mut() else {
            return;
        };
        if !sp.running {
            return;
        }
        sp.running = false;
        let Some(info) = sp.info else {
            return;
        };
        for h in inner.handles.values_mut() {
            if h.generation != sp.view.generation {
                continue;
            }
            let site = info.site(h.channel);
            match site.take(
                sp.view.memory.as_ref(),
                &sp.view.carveouts,
                usize::MAX,
                sp.view.endian,
            ) {
                Ok(bytes) => h.drained.extend(bytes),
                Err(e) => warn!("rtlx: channel {} not drained at stop: {e}", h.channel),
            }
        }
    }

    /// `open(2)` of `/dev/rtlx<channel>`.
    pub fn open(self: &Arc<Self>, channel: usize, nonblock: bool) -> Result<Open, Errno> {
        if channel >= RTLX_CHANNELS {
            debug!("rtlx_open index out of range");
            return Err(Errno(libc::ENOSYS));
        }
        let mut inner = self.lock();
        if inner.in_open[channel] || (self.cfg.kspd && channel == RTLX_CHANNEL_SYSIO) {
            debug!("rtlx_open channel {channel} already opened");
            return Err(Errno(libc::EBUSY));
        }
        inner.in_open[channel] = true;
        let pending = Pending {
            rtlx: Arc::clone(self),
            channel,
        };
        drop(inner);
        self.attempt(pending, nonblock)
    }

    /// Try a waiting blocking open again.
    pub fn resume(self: &Arc<Self>, pending: Pending) -> Result<Open, Errno> {
        self.attempt(pending, false)
    }

    fn attempt(&self, pending: Pending, nonblock: bool) -> Result<Open, Errno> {
        let channel = pending.channel;
        let mut guard = self.lock();
        let inner = &mut *guard;
        let info = match self.find_info(inner, nonblock) {
            Ok(Some(info)) => info,
            Ok(None) => {
                drop(guard);
                return Ok(Open::Wait(pending));
            }
            Err(e) => {
                // in_open is cleared by dropping `pending` (the kernel from 3.13 on leaked
                // it after an id failure, leaving the channel EBUSY for good).
                drop(guard);
                return Err(e);
            }
        };
        let sp = inner.sp.as_ref().expect("find_info found an SP");
        let (mem, e) = (sp.view.memory.as_ref(), sp.view.endian);
        let site = info.site(channel);
        let ch = site.load(mem, e).map_err(|err| {
            error!("rtlx: channel {channel}: {err}");
            errno(&err)
        })?;
        if ch.lx_state == State::Opened as u32 {
            return Err(Errno(libc::EBUSY));
        }
        site.set_lx_state(mem, State::Opened as u32, e)
            .map_err(|err| {
                error!("rtlx: channel {channel}: {err}");
                errno(&err)
            })?;
        let fh = inner.next_fh;
        inner.next_fh += 1;
        let generation = sp.view.generation;
        inner.handles.insert(
            fh,
            HandleState {
                channel,
                generation,
                drained: VecDeque::new(),
            },
        );
        drop(guard);
        drop(pending);
        Ok(Open::Opened(fh))
    }

    /// The kernel's `rtlx == NULL` branch of `rtlx_open`: `Ok(None)` = not published yet
    /// (wait), errors carry the legacy message and errno.
    fn find_info(&self, inner: &mut Inner, nonblock: bool) -> Result<Option<Info>, Errno> {
        let not_yet = |msg: &str| {
            if nonblock {
                debug!("{msg}");
                Err(Errno(libc::ENOSYS))
            } else {
                Ok(None)
            }
        };
        let Some(sp) = inner.sp.as_mut().filter(|sp| sp.running) else {
            return not_yet(MSG_NONBLOCK_NO_SP);
        };
        if let Some(info) = sp.info {
            return Ok(Some(info));
        }
        let Some(shared) = sp.view.shared else {
            return not_yet(MSG_NONBLOCK_NO_SP);
        };
        let (mem, e) = (sp.view.memory.as_ref(), sp.view.endian);
        let fail = |err: vpe::Error| {
            error!("{err}");
            Err(errno(&err))
        };
        let p = match layout::published(mem, shared, e) {
            Ok(Published::Null) => {
                if nonblock {
                    error!("{MSG_SHARED_NULL}");
                    return Err(Errno(libc::ENOSYS));
                }
                return Ok(None);
            }
            Ok(Published::At(p)) => p,
            Err(err) => return fail(err),
        };
        let min = match self.cfg.layout {
            Choice::Fixed(l) => l.size(),
            Choice::Auto => layout::Layout::L296.size(),
        };
        if let Err(err) = layout::check_pointer(p, min, &sp.view.carveouts, sp.view.kseg0_rule) {
            return fail(err);
        }
        if let Err(err) = layout::check_id(mem, p, e) {
            return fail(err);
        }
        let info = match layout::decide(mem, p, self.cfg.layout, &sp.view.carveouts, e) {
            Ok(info) => info,
            Err(err) => return fail(err),
        };
        debug!(
            "rtlx: rtlx_info at {p:#010x}, {}-byte layout ({})",
            info.layout.name(),
            info.decided
        );
        sp.info = Some(info);
        Ok(Some(info))
    }

    /// The handle, and the SP it may still touch (`None` once that SP stopped or was
    /// replaced).
    fn handle_sp(inner: &mut Inner, fh: u64) -> Result<(&mut HandleState, Live<'_>), Errno> {
        let h = inner.handles.get_mut(&fh).ok_or(Errno(libc::EBADF))?;
        let live = inner
            .sp
            .as_ref()
            .filter(|sp| sp.running && sp.view.generation == h.generation)
            .and_then(|sp| sp.info.map(|info| (sp, info)));
        Ok((h, live))
    }

    /// `read(2)`: up to `count` bytes of the SP → AP ring.
    pub fn read(&self, fh: u64, count: usize, nonblock: bool) -> Result<Read, Errno> {
        let mut guard = self.lock();
        let (h, live) = Self::handle_sp(&mut guard, fh)?;
        if !h.drained.is_empty() {
            let n = count.min(h.drained.len());
            return Ok(Read::Data(h.drained.drain(..n).collect()));
        }
        let Some((sp, info)) = live else {
            return Ok(Read::Eof);
        };
        let site = info.site(h.channel);
        let bytes = site
            .take(
                sp.view.memory.as_ref(),
                &sp.view.carveouts,
                count,
                sp.view.endian,
            )
            .map_err(|err| {
                error!("{err}");
                errno(&err)
            })?;
        if bytes.is_empty() && !nonblock && count > 0 {
            return Ok(Read::Wait);
        }
        Ok(Read::Data(bytes))
    }

    /// `write(2)` into the AP → SP ring; short when it is nearly full.
    pub fn write(&self, fh: u64, data: &[u8], nonblock: bool) -> Result<Write, Errno> {
        let mut guard = self.lock();
        let (h, live) = Self::handle_sp(&mut guard, fh)?;
        let Some((sp, info)) = live else {
            // The legacy driver oopsed here after a reload (rtlx NULL) or filled a dead
            // ring after a kill; there is no reader any more.
            return Err(Errno(libc::EPIPE));
        };
        let site = info.site(h.channel);
        let (mem, cv, e) = (sp.view.memory.as_ref(), &sp.view.carveouts, sp.view.endian);
        let fail = |err: vpe::Error| {
            error!("{err}");
            errno(&err)
        };
        // Only the AP -> SP ring matters to a write (rtlx_write_poll, rtlx_write).
        match site.put(mem, cv, data, e).map_err(fail)? {
            0 if !data.is_empty() && nonblock => Err(Errno(libc::EAGAIN)),
            0 if !data.is_empty() => Ok(Write::Wait),
            n => Ok(Write::Wrote(n)),
        }
    }

    /// `poll(2)` mask: POLLIN|POLLRDNORM with data, POLLOUT|POLLWRNORM with space (as
    /// `file_poll`); POLLIN|POLLHUP once the SP stopped (a read returns EOF), POLLERR for a
    /// channel the SP corrupted.
    pub fn poll(&self, fh: u64) -> Result<u32, Errno> {
        let mut guard = self.lock();
        let (h, live) = Self::handle_sp(&mut guard, fh)?;
        if !h.drained.is_empty() {
            return Ok(POLLIN | POLLRDNORM);
        }
        let Some((sp, info)) = live else {
            return Ok(POLLIN | POLLRDNORM | POLLHUP);
        };
        let site = info.site(h.channel);
        match site.poll(sp.view.memory.as_ref(), &sp.view.carveouts, sp.view.endian) {
            Ok((avail, free)) => {
                let mut mask = 0;
                if avail > 0 {
                    mask |= POLLIN | POLLRDNORM;
                }
                if free > 0 {
                    mask |= POLLOUT | POLLWRNORM;
                }
                Ok(mask)
            }
            Err(err) => {
                warn!("{err}");
                Ok(POLLERR)
            }
        }
    }

    /// `release`: `lx_state = RTLX_STATE_UNUSED` in the SP's memory, while that SP runs.
    pub fn release(&self, fh: u64) {
        let mut guard = self.lock();
        let Ok((h, live)) = Self::handle_sp(&mut guard, fh) else {
            return;
        };
        let channel = h.channel;
        match live {
            Some((sp, info)) => {
                if let Err(err) = info.site(channel).set_lx_state(
                    sp.view.memory.as_ref(),
                    State::Unused as u32,
                    sp.view.endian,
                ) {
                    error!("rtlx: channel {channel}: {err}");
                }
            }
            None => debug!("{MSG_RELEASE_NULL} (channel {channel}: its SP is gone)"),
        }
        guard.handles.remove(&fh);
    }

    /// One pass of kspd on channel 2 (`sp_work`): once the SP has published its struct, open
    /// the channel as kspd did (`lx_state = OPENED`), then serve what the SP sent. The caller
    /// runs it on a thread of its own (credentials are per thread) and calls
    /// [`kspd::Kspd::sp_stopped`] after [`Rtlx::sp_stopping`].
    pub fn kspd_step(&self, k: &mut kspd::Kspd) -> Result<KspdStep, Errno> {
        let mut guard = self.lock();
        let inner = &mut *guard;
        let generation = inner.sp.as_ref().map(|sp| sp.view.generation);
        if generation.is_some() && inner.kspd_gave_up == generation {
            return Ok(KspdStep::Idle);
        }
        let info = match self.find_info(inner, false) {
            Ok(Some(info)) => info,
            Ok(None) => return Ok(KspdStep::Idle),
            Err(e) => {
                // As kspd.c: one failed open and it waits for the next program.
                error!("KSPD: unable to open sp channel");
                inner.kspd_gave_up = generation;
                return Err(e);
            }
        };
        let sp = inner.sp.as_ref().expect("find_info found an SP");
        let (mem, cv, e) = (sp.view.memory.as_ref(), &sp.view.carveouts, sp.view.endian);
        let site = info.site(RTLX_CHANNEL_SYSIO);
        let fail = |err: vpe::Error| {
            error!("{err}");
            errno(&err)
        };
        if inner.kspd_opened != Some(sp.view.generation) {
            site.set_lx_state(mem, State::Opened as u32, e)
                .map_err(fail)?;
            inner.kspd_opened = Some(sp.view.generation);
            debug!("KSPD: SP channel opened");
        }
        k.pump(&site, mem, cv, e)
            .map(KspdStep::Served)
            .map_err(fail)
    }

    pub fn status(&self) -> RtlxStatus {
        let inner = self.lock();
        let info = inner.sp.as_ref().and_then(|sp| sp.info);
        let mut open: Vec<usize> = inner.handles.values().map(|h| h.channel).collect();
        open.sort_unstable();
        open.dedup();
        RtlxStatus {
            rtlx_info: info.map(|i| format!("{:#010x}", i.addr)),
            layout: info.map(|i| i.layout.name()),
            layout_decided: info.map(|i| i.decided),
            open_channels: open,
        }
    }
}

/// Delays between retries of a waiting operation: a few immediate retries, then sleeps
/// doubling from 20 µs to 5 ms; [`Backoff::reset`] after progress. Small first steps keep
/// an echo round trip short, the cap bounds the CPU a waiting reader costs.
#[derive(Debug, Clone)]
pub struct Backoff {
    step: u32,
}

impl Backoff {
    const SPINS: u32 = 3;
    const FIRST: Duration = Duration::from_micros(20);
    const MAX: Duration = Duration::from_millis(5);

    pub fn new() -> Backoff {
        Backoff { step: 0 }
    }

    pub fn reset(&mut self) {
        self.step = 0;
    }

    /// The next delay.
    pub fn next_delay(&mut self) -> Duration {
        let s = self.step;
        self.step = self.step.saturating_add(1);
        if s < Self::SPINS {
            return Duration::ZERO;
        }
        let shift = (s - Self::SPINS).min(16);
        (Self::FIRST * (1u32 << shift)).min(Self::MAX)
    }
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff::new()
    }
}

/// Retry `attempt` until it yields a value, sleeping per [`Backoff`] between tries; gives up
/// with EINTR when `interrupted` says so (the FUSE request was interrupted). Runs on a
/// blocking thread (`spawn_blocking`), so no other mount operation waits for it.
pub fn wait_for<T>(
    mut attempt: impl FnMut() -> Result<Option<T>, Errno>,
    interrupted: impl Fn() -> bool,
) -> Result<T, Errno> {
    let mut backoff = Backoff::new();
    loop {
        if let Some(v) = attempt()? {
            return Ok(v);
        }
        if interrupted() {
            return Err(Errno(libc::EINTR));
        }
        let d = backoff.next_delay();
        if d.is_zero() {
            std::thread::yield_now();
        } else {
            std::thread::sleep(d);
        }
    }
}

#[cfg(test)]
mod tests;
