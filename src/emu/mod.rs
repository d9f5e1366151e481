//! The emulated VPE (feature `emulate`): a MIPS32r2 core (unicorn, 74Kf) running a firmware
//! the way the MIPS remoteproc driver runs it on a stolen CPU.
//!
//! - Memory: exactly the resource table's carveouts (and devmems), filled from the PT_LOADs
//!   ([`memory`]); KUSEG device addresses through wired TLB entries written by a boot stub
//!   ([`tlb`]), KSEG0/KSEG1 images (the `fixed` profile, voice images) through the unmapped
//!   segments. Nothing else is mapped: any other access faults, as a TLB miss would.
//! - Entry: [`Mode::Bare`] as the driver calls `fw_entry(-3, ipi_to_remote, ipi_from_remote,
//!   0)` in kernel mode; [`Mode::Hosted`] as qemu-user starts a static executable ($sp at
//!   the top of a stack outside the carveouts, the other registers zero) and o32 `write`,
//!   `exit`, `exit_group` are served ([`hosted`]).
//! - It runs on its own thread in slices, throttled to [`Config::cpu_share`] of a host core
//!   (default [`DEFAULT_CPU_SHARE`] %); [`Emu::stop`] ends it promptly.
//! - What it is not: no caches (cache instructions are no-ops), no timer (CP0 Count does
//!   not advance), no interrupts; exceptions are not delivered to the firmware's vectors:
//!   any exception other than a served syscall stops the core with a [`Fault`].

mod core;
pub mod decode;
pub mod hosted;
pub mod memory;
pub mod tlb;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::image::Image;
use crate::rproc::check::Loaded;
use crate::rproc::table::{Resource, ResourceTable};
use crate::spmem::SpMemory;

pub use memory::Memory;

/// Share of one host core a running core may take by default (percent).
pub const DEFAULT_CPU_SHARE: u32 = 20;
/// Length of one run slice.
pub const SLICE: Duration = Duration::from_millis(2);
/// GIC hwirqs the sim passes as `ipi_to_remote` / `ipi_from_remote` (7 local interrupts,
/// then the shared ones the driver would reserve).
pub const IPI_TO_REMOTE: u32 = 7 + 24;
pub const IPI_FROM_REMOTE: u32 = 7 + 25;

/// How the firmware is entered and what a `syscall` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Test programs: registers as qemu-user sets them, o32 write/exit served.
    Hosted,
    /// The board: `fw_entry(-3, ipi_to_remote, ipi_from_remote, 0)`, a syscall faults.
    Bare,
}

/// Where hosted output goes: `(fd, bytes)` for fd 1 and 2.
pub type Output = Arc<dyn Fn(u32, &[u8]) + Send + Sync>;

/// How to run.
#[derive(Clone)]
pub struct Config {
    pub mode: Mode,
    /// Percent of one host core (1..=100).
    pub cpu_share: u32,
    pub output: Output,
    /// Registers at entry override (the legacy `vpe_run` entry of `verify --run`): `(reg
    /// number, value)` written after the mode's own set-up.
    pub entry_regs: Vec<(u32, u32)>,
}

impl Config {
    pub fn new(mode: Mode, output: Output) -> Config {
        Config {
            mode,
            cpu_share: DEFAULT_CPU_SHARE,
            output,
            entry_regs: Vec::new(),
        }
    }
}

/// The registers when the core stopped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Regs {
    pub gpr: [u32; 32],
    pub pc: u32,
    pub hi: u32,
    pub lo: u32,
}

/// o32 register names.
pub const REG_NAMES: [&str; 32] = [
    "zero", "at", "v0", "v1", "a0", "a1", "a2", "a3", "t0", "t1", "t2", "t3", "t4", "t5", "t6",
    "t7", "s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7", "t8", "t9", "k0", "k1", "gp", "sp", "fp",
    "ra",
];

impl Regs {
    /// Four registers a line, `name 0x........`.
    pub fn render(&self) -> String {
        let mut s = String::new();
        for (i, v) in self.gpr.iter().enumerate() {
            s.push_str(&format!("{:>4} {v:#010x}", REG_NAMES[i]));
            s.push(if i % 4 == 3 { '\n' } else { ' ' });
        }
        s.push_str(&format!(
            "  pc {:#010x}   hi {:#010x}   lo {:#010x}\n",
            self.pc, self.hi, self.lo
        ));
        s
    }
}

/// Why the core stopped on its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fault {
    /// Short cause (the MIPS ExcCode name, or `syscall N` in hosted mode).
    pub cause: String,
    /// What it means.
    pub description: String,
    pub pc: u32,
    /// The faulting address, for address and TLB faults.
    pub badvaddr: Option<u32>,
    pub regs: Regs,
}

impl Fault {
    /// One line: `CAUSE (description) at pc 0x........, bad address 0x........`.
    pub fn summary(&self) -> String {
        let bad = match self.badvaddr {
            Some(a) => format!("{a:#010x}"),
            None => "none".into(),
        };
        format!(
            "{} ({}) at pc {:#010x}, bad address {bad}",
            self.cause, self.description, self.pc
        )
    }
}

/// What the core is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "cpu", rename_all = "lowercase")]
pub enum CpuState {
    Running,
    /// Hosted `exit`/`exit_group`.
    Halted {
        code: i32,
    },
    Faulted {
        fault: Box<Fault>,
    },
    /// Ended by [`Emu::stop`].
    Stopped,
}

impl CpuState {
    /// `running`, `halted (exit N)`, `faulted`, `stopped`.
    pub fn label(&self) -> String {
        match self {
            CpuState::Running => "running".into(),
            CpuState::Halted { code } => format!("halted (exit {code})"),
            CpuState::Faulted { .. } => "faulted".into(),
            CpuState::Stopped => "stopped".into(),
        }
    }
}

pub(crate) struct Shared {
    stop: AtomicBool,
    state: Mutex<CpuState>,
    changed: Condvar,
    /// Host CPU time the emulation slices took (for benchmarks and status).
    busy: Mutex<Duration>,
}

impl Shared {
    fn set(&self, s: CpuState) {
        *self.state.lock().unwrap_or_else(|e| e.into_inner()) = s;
        self.changed.notify_all();
    }
}

/// A running emulated core. Dropping it stops it.
pub struct Emu {
    shared: Arc<Shared>,
    memory: Arc<Memory>,
    traces: Vec<(String, u32, u32)>,
    thread: Option<std::thread::JoinHandle<()>>,
    wake: Arc<(Mutex<bool>, Condvar)>,
}

impl std::fmt::Debug for Emu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Emu {{ {} }}", self.state().label())
    }
}

impl Emu {
    /// Map and load `loaded` and start running it. Errors (a segment outside the
    /// carveouts, too many TLB entries, the engine refusing) come back before anything
    /// runs.
    pub fn start(loaded: &Loaded, config: Config) -> Result<Emu> {
        Emu::start_image(&loaded.image, &loaded.table, config)
    }

    /// [`Emu::start`] from an image and table.
    pub fn start_image(image: &Image, table: &ResourceTable, config: Config) -> Result<Emu> {
        let memory = Arc::new(Memory::build(image, table, config.mode == Mode::Hosted)?);
        let traces = table
            .entries
            .iter()
            .filter_map(|r| match r {
                Resource::Trace { da, len, name, .. } => Some((name.clone(), *da, *len)),
                _ => None,
            })
            .collect();
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            state: Mutex::new(CpuState::Running),
            changed: Condvar::new(),
            busy: Mutex::new(Duration::ZERO),
        });
        let wake = Arc::new((Mutex::new(false), Condvar::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let entry = image.entry;
        let endian = image.endian;
        let thread = {
            let shared = shared.clone();
            let memory = memory.clone();
            let wake = wake.clone();
            std::thread::Builder::new()
                .name("vpe-emu".into())
                .spawn(move || core::run(memory, endian, entry, config, shared, wake, tx))
                .map_err(|e| Error::Emulator {
                    message: format!("cannot start the emulation thread: {e}"),
                })?
        };
        match rx.recv() {
            Ok(Ok(())) => Ok(Emu {
                shared,
                memory,
                traces,
                thread: Some(thread),
                wake,
            }),
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(Error::Emulator {
                    message: "the emulation thread ended during boot".into(),
                })
            }
        }
    }

    pub fn state(&self) -> CpuState {
        self.shared
            .state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Wait until the core is no longer running, at most `timeout`; the state then.
    pub fn wait(&self, timeout: Duration) -> CpuState {
        let deadline = Instant::now() + timeout;
        let mut st = self.shared.state.lock().unwrap_or_else(|e| e.into_inner());
        while *st == CpuState::Running {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .shared
                .changed
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        st.clone()
    }

    /// Stop the core and wait for its thread (returns within about one slice).
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        {
            let (lock, cv) = &*self.wake;
            *lock.lock().unwrap_or_else(|e| e.into_inner()) = true;
            cv.notify_all();
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    /// SP memory at device addresses (works while the core runs).
    pub fn memory(&self) -> Arc<Memory> {
        self.memory.clone()
    }

    /// Host CPU time spent emulating so far.
    pub fn busy(&self) -> Duration {
        *self.shared.busy.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The RSC_TRACE buffers: `(name, da, len)` in table order.
    pub fn traces(&self) -> &[(String, u32, u32)] {
        &self.traces
    }

    /// Trace buffer `n` as debugfs `traceN` reads it: the bytes up to the first NUL.
    pub fn read_trace(&self, n: usize) -> Option<Result<Vec<u8>>> {
        let (_, da, len) = self.traces.get(n)?;
        let mut buf = vec![0u8; *len as usize];
        Some(self.memory.read(*da, &mut buf).map(|()| {
            let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
            buf.truncate(end);
            buf
        }))
    }
}

impl Drop for Emu {
    fn drop(&mut self) {
        self.stop();
    }
}
