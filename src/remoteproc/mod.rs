//! Driving a remote processor: the real one through sysfs, or a simulated one that applies
//! the kernel's rules exactly (the default of `vpe-compat`, so it runs on any Linux box).

pub mod devmem;
pub mod sim;
pub mod sysfs;

use serde::Serialize;

use crate::error::Result;

/// `rproc_state_string[]` (drivers/remoteproc/remoteproc_sysfs.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RprocState {
    Offline,
    Suspended,
    Running,
    Crashed,
    Deleted,
    Attached,
    Detached,
    Invalid,
}

impl RprocState {
    /// The word sysfs `state` reads (without the newline).
    pub fn as_str(self) -> &'static str {
        match self {
            RprocState::Offline => "offline",
            RprocState::Suspended => "suspended",
            RprocState::Running => "running",
            RprocState::Crashed => "crashed",
            RprocState::Deleted => "deleted",
            RprocState::Attached => "attached",
            RprocState::Detached => "detached",
            RprocState::Invalid => "invalid",
        }
    }

    /// Parse what sysfs `state` reads (a trailing newline is accepted); any other text is
    /// `Invalid` (say what was read with [`RprocState::from_word`] failing).
    pub fn parse(s: &str) -> RprocState {
        RprocState::from_word(s.trim_end_matches('\n')).unwrap_or(RprocState::Invalid)
    }

    /// One of `rproc_state_string[]` exactly, or `None`.
    pub fn from_word(s: &str) -> Option<RprocState> {
        Some(match s {
            "offline" => RprocState::Offline,
            "suspended" => RprocState::Suspended,
            "running" => RprocState::Running,
            "crashed" => RprocState::Crashed,
            "deleted" => RprocState::Deleted,
            "attached" => RprocState::Attached,
            "detached" => RprocState::Detached,
            "invalid" => RprocState::Invalid,
            _ => return None,
        })
    }
}

/// What happened when a firmware was started.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StartOutcome {
    /// Name written to `firmware` (relative to the firmware directory).
    pub firmware: String,
    /// State read back after `start`. After a rollback: the state read after the failed
    /// start (normally `offline`); the state of the restored firmware is in `rolled_back`.
    pub state: RprocState,
    /// If the start failed and the previous good firmware was started again: its name and
    /// the error of the failed start.
    pub rolled_back: Option<Rollback>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rollback {
    pub failed_error: String,
    pub restored_firmware: String,
    pub restored_state: RprocState,
}

/// What the processor itself is doing, where the backend can see it (the sim's emulated
/// core; the kernel cannot see a halted core, so `state` stays remoteproc's view).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CpuStatus {
    /// `running`, `halted (exit N)` or `faulted`.
    pub cpu: String,
    /// The fault: cause, pc and bad address on one line.
    pub fault: Option<String>,
    /// Registers when the core stopped on a fault (`zero`..`ra`, `pc`, `hi`, `lo`: hex).
    pub registers: Option<std::collections::BTreeMap<String, String>>,
}

/// A remote processor the shim can stop and (re)start.
///
/// All methods are synchronous, like sysfs writes: `start` returns when the kernel has
/// booted the firmware or refused it.
pub trait Backend: Send {
    /// `"sim"` or `"sysfs"`.
    fn kind(&self) -> &'static str;
    /// Current state.
    fn state(&mut self) -> Result<RprocState>;
    /// Current state for people (`status`): the word, or for text that is no remoteproc
    /// state, `unknown ("<text as read, escaped>")`.
    fn state_text(&mut self) -> Result<String> {
        self.state().map(|s| s.as_str().to_string())
    }
    /// Stop the running program; no-op (Ok) when already offline.
    fn stop(&mut self) -> Result<()>;
    /// Put `firmware` (sha256 `sha256`, lowercase hex, verified against the bytes) where the
    /// kernel's firmware loader finds it, atomically; returns the name to write to
    /// `firmware`. Nothing is stopped or started.
    fn install(&mut self, firmware: &[u8], sha256: &str) -> Result<String>;
    /// Stop whatever runs, point the rproc at the installed firmware `name` and start it. On
    /// failure, roll back to the previous good firmware if enabled, and report both
    /// outcomes: a failed start that was rolled back is
    /// `Ok(StartOutcome { rolled_back: Some(..), .. })` (the caller reports the failure), a
    /// failed start without rollback is `Err` with the kernel's message and errno.
    fn start(&mut self, name: &str) -> Result<StartOutcome>;
    /// [`Backend::install`] then [`Backend::start`].
    fn install_and_start(&mut self, firmware: &[u8], sha256: &str) -> Result<StartOutcome> {
        let name = self.install(firmware, sha256)?;
        self.start(&name)
    }
    /// Name of the firmware currently configured, if any.
    fn firmware_name(&mut self) -> Option<String>;
    /// A load failed before its start (e.g. installing the firmware ran out of space) after
    /// the open of `vpe1` had stopped the program: start the last good firmware again if
    /// rollback is on, it is still installed and nothing runs. `Ok(None)`: nothing to do
    /// (the simulator's install cannot fail, so it keeps this default).
    fn restart_last_good(&mut self, failed_error: &str) -> Result<Option<Rollback>> {
        let _ = failed_error;
        Ok(None)
    }
    /// What the processor is doing, if this backend can see it.
    fn cpu(&mut self) -> Option<CpuStatus> {
        None
    }
    /// The program's hosted output (fd 1 and 2), oldest kept byte first, if this backend
    /// captures it.
    fn console(&mut self) -> Option<Vec<u8>> {
        None
    }
    /// Trace buffer `n` (RSC_TRACE, in table order) as debugfs `traceN` reads it; `None` if
    /// the running firmware has no such buffer.
    fn read_trace(&mut self, n: usize) -> Option<Result<Vec<u8>>> {
        let _ = n;
        None
    }
}
