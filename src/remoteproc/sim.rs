//! A simulated remote processor that applies the kernel's rules exactly (the default backend
//! of `vpe-compat`, so it runs on any Linux box).
//!
//! Two levels:
//! - the sysfs level ([`Sim::write_state`], [`Sim::write_firmware`], [`Sim::read_state`]),
//!   which returns what the kernel's attribute stores return (drivers/remoteproc/
//!   remoteproc_sysfs.c, 4.10–6.x behaviour: a second `start` is EBUSY) and logs the kernel's
//!   lines (remoteproc_core.c `rproc_boot`);
//! - the [`Backend`] level, which drives the sysfs level with the same sequence as the real
//!   sysfs backend (read state, stop if needed, firmware, start, read state, rollback).
//!
//! "Booting" a firmware runs [`crate::rproc::check::check`] and keeps the [`Image`] it loads.
//! Built with the `emulate` feature the sim then executes it on the emulated MIPS core
//! ([`crate::emu`], hosted by default, [`Exec::Bare`] as on the board): a fault is a crash
//! (`state` reads `crashed`, "crash detected in ..."), after which `recovery` enabled
//! restarts the firmware like `rproc_trigger_recovery`. The sim notices a crash the next
//! time it is asked anything (a state read, status, a write), which is what an observer of
//! the kernel's asynchronous crash handler sees too. The firmware directory is a map of
//! name → bytes.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use log::debug;

use super::sysfs::{
    check_content, is_installed_name, start_sequence, stop_if_needed, Attrs, EBUSY, EINVAL, ENOENT,
};
use super::{Backend, CpuStatus, RprocState, StartOutcome};
use crate::elf::Endian;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::rproc::check;
use crate::rproc::firmware::Profile;

/// The simulated rproc's `name`.
pub const SIM_RPROC_NAME: &str = "vpe1-sim";

/// Subdirectory of the simulated firmware directory the backend installs into.
pub const SIM_SUBDIR: &str = "vpe-compat";

/// Messages of `rproc_elf_sanity_check()` (remoteproc_elf_loader.c): these fail before
/// "Booting fw image" is logged; every other check failure comes after it.
const SANITY_MESSAGES: &[&str] = &[
    "failed to load",
    "Image is too small",
    "Image is corrupted (bad magic)",
    "Unsupported class",
    "elf64 header is too small",
    "Unsupported firmware endianness",
    "No loadable segments",
    "Firmware size is too small",
];

/// Whether and how the sim executes what it boots (builds with the `emulate` feature; a
/// build without it only checks).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Exec {
    /// Check and load only; nothing runs.
    Off,
    /// Run hosted: o32 write/exit served, output to the console.
    #[default]
    Hosted,
    /// Run as on the board: a syscall is a fault.
    Bare,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// Byte order of the simulated kernel; `None` = accept the firmware's.
    pub host: Option<Endian>,
    /// Target profile rules applied by the check; `None` = generic remoteproc only.
    pub profile: Option<Profile>,
    /// Test hook: the driver's start op fails with -EBUSY ("can't start rproc").
    pub fail_start: bool,
    /// Execute what boots.
    pub exec: Exec,
    /// Percent of a host core the emulated core may take (`None`: the emulator's default).
    pub cpu_share: Option<u32>,
    /// The `recovery` attribute: restart a crashed firmware (the kernel's default is
    /// enabled; vpe-compat writes `disabled` unless told otherwise).
    pub recovery: bool,
}

/// Bytes of hosted output the console keeps (the newest).
#[cfg_attr(not(feature = "emulate"), allow(dead_code))]
const CONSOLE_KEEP: usize = 64 * 1024;

/// The hosted program's output, bounded.
#[derive(Debug, Default)]
struct Console {
    bytes: Vec<u8>,
}

impl Console {
    #[cfg_attr(not(feature = "emulate"), allow(dead_code))]
    fn push(&mut self, b: &[u8]) {
        self.bytes.extend_from_slice(b);
        if self.bytes.len() > CONSOLE_KEEP {
            let cut = self.bytes.len() - CONSOLE_KEEP;
            self.bytes.drain(..cut);
        }
    }
}

/// Log lines [`Sim::log`] keeps at least (at most twice as many).
const LOG_KEEP: usize = 512;

/// A simulated remoteproc instance.
#[derive(Debug)]
pub struct Sim {
    opts: SimOptions,
    rollback: bool,
    name: String,
    state: RprocState,
    firmware: String,
    files: BTreeMap<String, Vec<u8>>,
    loaded: Option<Image>,
    log: Vec<String>,
    last_good: Option<String>,
    console: Arc<Mutex<Console>>,
    /// The processor as last seen (kept after a halt or crash).
    cpu: Option<CpuStatus>,
    #[cfg(feature = "emulate")]
    core: Option<crate::emu::Emu>,
}

fn kernel(message: impl Into<String>, errno: i32) -> Error {
    Error::Kernel {
        message: message.into(),
        errno,
        detail: String::new(),
    }
}

/// `sysfs_streq`: equal, ignoring one trailing newline on either side.
fn sysfs_streq(a: &str, b: &str) -> bool {
    a.strip_suffix('\n').unwrap_or(a) == b.strip_suffix('\n').unwrap_or(b)
}

impl Sim {
    pub fn new(opts: SimOptions) -> Sim {
        Sim {
            opts,
            rollback: true,
            name: SIM_RPROC_NAME.to_string(),
            state: RprocState::Offline,
            // rproc_alloc() default when the driver passes no name.
            firmware: format!("rproc-{SIM_RPROC_NAME}-fw"),
            files: BTreeMap::new(),
            loaded: None,
            log: Vec::new(),
            last_good: None,
            console: Arc::new(Mutex::new(Console::default())),
            cpu: None,
            #[cfg(feature = "emulate")]
            core: None,
        }
    }

    /// Enable or disable rollback to the previous good firmware (on by default).
    pub fn with_rollback(mut self, rollback: bool) -> Sim {
        self.rollback = rollback;
        self
    }

    /// Change the test hook after creation (e.g. fail only the second start).
    pub fn set_fail_start(&mut self, fail: bool) {
        self.opts.fail_start = fail;
    }

    /// The rproc's `name` attribute.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// What the running firmware's segments put into the carveouts, while running.
    pub fn loaded(&self) -> Option<&Image> {
        self.loaded.as_ref()
    }

    /// Kernel-style log lines, oldest first.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Names in the simulated firmware directory.
    pub fn firmware_files(&self) -> Vec<String> {
        self.files.keys().cloned().collect()
    }

    /// Put a file into the simulated firmware directory (`/lib/firmware/<name>`).
    pub fn put_firmware_file(&mut self, name: &str, bytes: Vec<u8>) {
        self.files.insert(name.to_string(), bytes);
    }

    /// Remove a file from the simulated firmware directory.
    pub fn remove_firmware_file(&mut self, name: &str) -> bool {
        self.files.remove(name).is_some()
    }

    /// sysfs `state` read.
    pub fn read_state(&mut self) -> RprocState {
        self.refresh();
        self.state
    }

    /// sysfs `recovery` store: `enabled`, `disabled`, or `recover` (restart a crashed
    /// processor now; remoteproc_sysfs.c `recovery_store`).
    pub fn write_recovery(&mut self, value: &str) -> Result<()> {
        self.refresh();
        if sysfs_streq(value, "enabled") {
            self.opts.recovery = true;
            if self.state == RprocState::Crashed {
                self.recover();
            }
            Ok(())
        } else if sysfs_streq(value, "disabled") {
            self.opts.recovery = false;
            Ok(())
        } else if sysfs_streq(value, "recover") {
            if self.state == RprocState::Crashed {
                self.recover();
            }
            Ok(())
        } else {
            Err(kernel(
                format!("Unrecognised option: {}", value.trim_end()),
                EINVAL,
            ))
        }
    }

    /// The hosted program's output kept so far (the newest 64 KiB).
    pub fn console_bytes(&self) -> Vec<u8> {
        self.console
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .bytes
            .clone()
    }

    /// What the core is doing (None before the first execution or without `emulate`).
    pub fn cpu_status(&mut self) -> Option<CpuStatus> {
        self.refresh();
        #[cfg(feature = "emulate")]
        if let Some(core) = &self.core {
            if self.state == RprocState::Running {
                self.cpu = Some(cpu_status(&core.state()));
            }
        }
        self.cpu.clone()
    }

    /// Trace buffer `n` of the running (or crashed) firmware, as debugfs reads it.
    pub fn trace(&mut self, n: usize) -> Option<Result<Vec<u8>>> {
        self.refresh();
        #[cfg(feature = "emulate")]
        if let Some(core) = &self.core {
            return core.read_trace(n);
        }
        let _ = n;
        None
    }

    /// SP memory of the running firmware (emulated carveouts), for RTLX and tests.
    #[cfg(feature = "emulate")]
    pub fn memory(&self) -> Option<Arc<crate::emu::Memory>> {
        self.core.as_ref().map(|c| c.memory())
    }

    /// Notice a crash of the emulated core (the kernel's rproc_report_crash +
    /// rproc_crash_handler_work), and recover if enabled.
    fn refresh(&mut self) {
        #[cfg(feature = "emulate")]
        {
            use crate::emu::CpuState;
            let Some(core) = &self.core else { return };
            let st = core.state();
            if self.state != RprocState::Running {
                return;
            }
            if let CpuState::Faulted { fault } = &st {
                self.cpu = Some(cpu_status(&st));
                let rproc = self.name.clone();
                self.say_loud(format!("fault: {}", fault.summary()));
                self.say_loud(format!("crash detected in {rproc}: type fatal error"));
                self.state = RprocState::Crashed;
                if self.opts.recovery {
                    self.recover();
                }
            }
        }
    }

    /// `rproc_trigger_recovery`: stop, load the same firmware again, start.
    fn recover(&mut self) {
        let rproc = self.name.clone();
        self.say_loud(format!("recovering {rproc}"));
        self.shutdown();
        if let Err(e) = self.boot() {
            let errno = e.errno();
            self.say_loud(format!("Failed to recover {rproc}: -{errno}"));
        }
    }

    /// sysfs `firmware` read (without the newline).
    pub fn read_firmware(&self) -> &str {
        &self.firmware
    }

    /// A crash or a recovery: rare, and what an administrator must see (the kernel's
    /// dev_err/dev_info), so at warn level, unlike the per-load lines.
    fn say_loud(&mut self, line: String) {
        log::warn!("sim: {line}");
        self.keep(line);
    }

    fn say(&mut self, line: String) {
        // One line per simulated kernel message: per load, so debug (RUST_LOG=debug shows it).
        debug!("sim: {line}");
        self.keep(line);
    }

    fn keep(&mut self, line: String) {
        // Bounded (a daemon runs for months): keep the newest lines, like the kernel's ring.
        if self.log.len() >= 2 * LOG_KEEP {
            self.log.drain(..LOG_KEEP);
        }
        self.log.push(line);
    }

    /// sysfs `firmware` store (remoteproc_sysfs.c `firmware_store`, `rproc_set_firmware`).
    pub fn write_firmware(&mut self, value: &str) -> Result<()> {
        if self.state != RprocState::Offline {
            self.say("can't change firmware while running".into());
            return Err(kernel("can't change firmware while running", EBUSY));
        }
        // The name is truncated at the first newline.
        let name = value.split('\n').next().unwrap_or("");
        if name.is_empty() {
            self.say("can't provide empty string for firmware name".into());
            return Err(kernel(
                "can't provide empty string for firmware name",
                EINVAL,
            ));
        }
        self.firmware = name.to_string();
        Ok(())
    }

    /// sysfs `state` store (remoteproc_sysfs.c `state_store`).
    pub fn write_state(&mut self, value: &str) -> Result<()> {
        if sysfs_streq(value, "start") {
            // 4.10–6.x: a running rproc refuses a second start.
            if self.state == RprocState::Running {
                return Err(kernel("rproc is already running", EBUSY));
            }
            if let Err(e) = self.boot() {
                let errno = e.errno();
                self.say(format!("Boot failed: -{errno}"));
                return Err(e);
            }
            Ok(())
        } else if sysfs_streq(value, "stop") {
            if self.state != RprocState::Running {
                return Err(kernel("stop: the processor is not running", EINVAL));
            }
            self.shutdown();
            Ok(())
        } else if sysfs_streq(value, "detach") {
            // Only an attached rproc can detach; the simulation never attaches.
            Err(kernel("detach: the processor is not attached", EINVAL))
        } else {
            let word = value.strip_suffix('\n').unwrap_or(value).to_string();
            self.say(format!("Unrecognised option: {word}"));
            Err(kernel(format!("Unrecognised option: {word}"), EINVAL))
        }
    }

    /// `rproc_boot` → `request_firmware` → `rproc_fw_boot` → `rproc_start`.
    fn boot(&mut self) -> Result<()> {
        let rproc = self.name.clone();
        let fw_name = self.firmware.clone();
        self.say(format!("powering up {rproc}"));

        // drivers/base/firmware_loader/main.c: empty or '..' names are EINVAL.
        let fw = if fw_name.split('/').any(|c| c == "..") {
            self.say(format!(
                "Firmware load for '{fw_name}' refused, path contains '..' component"
            ));
            Err(EINVAL)
        } else {
            match self.files.get(&fw_name) {
                Some(b) => Ok(b.clone()),
                None => {
                    self.say(format!(
                        "Direct firmware load for {fw_name} failed with error -{ENOENT}"
                    ));
                    Err(ENOENT)
                }
            }
        };
        let fw = match fw {
            Ok(fw) => fw,
            Err(errno) => {
                self.say(format!("request_firmware failed: -{errno}"));
                return Err(kernel(format!("request_firmware failed: -{errno}"), errno));
            }
        };

        let opts = check::Options {
            host: self.opts.host,
            profile: self.opts.profile,
            ..Default::default()
        };
        let loaded = match check::check(&fw, &opts) {
            Ok(l) => l,
            Err(e) => {
                let (message, err) = match e {
                    Error::Kernel { ref message, .. } => (message.clone(), e.clone()),
                    // Rules beyond the generic core (silent failures, profile geometry): the
                    // real target would not run it; report it as the driver refusing.
                    other => {
                        let m = other.to_string();
                        let err = kernel(m.clone(), EINVAL);
                        (m, err)
                    }
                };
                if !SANITY_MESSAGES.iter().any(|p| message.starts_with(p)) {
                    self.say(format!("Booting fw image {fw_name}, size {}", fw.len()));
                }
                self.say(message);
                return Err(err);
            }
        };
        self.say(format!("Booting fw image {fw_name}, size {}", fw.len()));
        for w in &loaded.warnings {
            self.say(w.clone());
        }
        if self.opts.fail_start {
            // rproc_start(): ops->start failed; carveouts are freed again.
            self.say(format!("can't start rproc {rproc}: -{EBUSY}"));
            return Err(kernel(
                format!("can't start rproc {rproc}: -{EBUSY}"),
                EBUSY,
            ));
        }
        #[cfg(feature = "emulate")]
        if self.opts.exec != Exec::Off {
            match self.execute(&loaded) {
                Ok(core) => self.core = Some(core),
                Err(e) => {
                    self.say(format!("can't start rproc {rproc}: {e}"));
                    return Err(kernel(format!("can't start rproc {rproc}: {e}"), EINVAL));
                }
            }
        }
        self.loaded = Some(loaded.image);
        self.state = RprocState::Running;
        self.say(format!("remote processor {rproc} is now up"));
        Ok(())
    }

    /// The driver's start op: enter the firmware on a fresh emulated core.
    #[cfg(feature = "emulate")]
    fn execute(&mut self, loaded: &check::Loaded) -> Result<crate::emu::Emu> {
        use crate::emu::{Config, Emu, Mode};
        let console = self.console.clone();
        let output: crate::emu::Output = Arc::new(move |_fd, b: &[u8]| {
            let text = String::from_utf8_lossy(b);
            for line in text.lines().filter(|l| !l.is_empty()) {
                log::info!("console: {line}");
            }
            console.lock().unwrap_or_else(|e| e.into_inner()).push(b);
        });
        let mode = if self.opts.exec == Exec::Bare {
            Mode::Bare
        } else {
            Mode::Hosted
        };
        let mut config = Config::new(mode, output);
        if let Some(share) = self.opts.cpu_share {
            config.cpu_share = share;
        }
        let core = Emu::start(loaded, config)?;
        self.cpu = Some(cpu_status(&core.state()));
        Ok(core)
    }

    /// `rproc_shutdown`: the core stopped, carveouts freed, state offline.
    fn shutdown(&mut self) {
        #[cfg(feature = "emulate")]
        {
            // Dropping the core stops its thread (within one slice).
            self.core = None;
        }
        self.loaded = None;
        self.state = RprocState::Offline;
        let rproc = self.name.clone();
        self.say(format!("stopped remote processor {rproc}"));
    }

    fn remove_superseded(&mut self, keep: &str) {
        let prefix = format!("{SIM_SUBDIR}/");
        self.files.retain(|name, _| {
            name == keep || !name.strip_prefix(&prefix).is_some_and(is_installed_name)
        });
    }
}

#[cfg(feature = "emulate")]
fn cpu_status(st: &crate::emu::CpuState) -> CpuStatus {
    use crate::emu::{CpuState, REG_NAMES};
    let (fault, registers) = match st {
        CpuState::Faulted { fault } => {
            let r = &fault.regs;
            let mut m: BTreeMap<String, String> = REG_NAMES
                .iter()
                .zip(r.gpr.iter())
                .map(|(n, v)| (n.to_string(), format!("{v:#010x}")))
                .collect();
            m.insert("pc".into(), format!("{:#010x}", r.pc));
            m.insert("hi".into(), format!("{:#010x}", r.hi));
            m.insert("lo".into(), format!("{:#010x}", r.lo));
            (Some(fault.summary()), Some(m))
        }
        _ => (None, None),
    };
    CpuStatus {
        cpu: st.label(),
        fault,
        registers,
    }
}

impl Attrs for Sim {
    fn read_state(&mut self) -> Result<RprocState> {
        Ok(Sim::read_state(self))
    }
    fn state_text(&mut self) -> String {
        self.state.as_str().to_string()
    }
    fn log_target(&self) -> &'static str {
        module_path!()
    }
    fn write_state(&mut self, word: &str) -> Result<()> {
        Sim::write_state(self, word)
    }
    fn write_firmware(&mut self, name: &str) -> Result<()> {
        Sim::write_firmware(self, name)
    }
    fn firmware_present(&self, name: &str) -> bool {
        self.files.contains_key(name)
    }
}

impl Backend for Sim {
    fn kind(&self) -> &'static str {
        "sim"
    }

    fn state(&mut self) -> Result<RprocState> {
        Ok(Sim::read_state(self))
    }

    fn stop(&mut self) -> Result<()> {
        self.shutdown_if_crashed();
        stop_if_needed(self)
    }

    fn install(&mut self, firmware: &[u8], sha256: &str) -> Result<String> {
        check_content(firmware, sha256)?;
        let name = format!("{SIM_SUBDIR}/{sha256}.elf");
        self.files.insert(name.clone(), firmware.to_vec());
        Ok(name)
    }

    fn start(&mut self, name: &str) -> Result<StartOutcome> {
        self.shutdown_if_crashed();
        let previous = self.last_good.clone();
        let outcome = start_sequence(self, name, previous.as_deref(), self.rollback)?;
        let running = match &outcome.rolled_back {
            Some(r) => r.restored_firmware.clone(),
            None => outcome.firmware.clone(),
        };
        self.remove_superseded(&running);
        self.last_good = Some(running);
        Ok(outcome)
    }

    fn firmware_name(&mut self) -> Option<String> {
        Some(self.firmware.clone())
    }

    fn cpu(&mut self) -> Option<CpuStatus> {
        self.cpu_status()
    }

    fn console(&mut self) -> Option<Vec<u8>> {
        Some(self.console_bytes())
    }

    fn read_trace(&mut self, n: usize) -> Option<Result<Vec<u8>>> {
        self.trace(n)
    }
}

impl Sim {
    /// A crashed rproc refuses `stop` (state_store wants `running`). On a kernel a shim
    /// writes `recover` and then `stop`, which races with a firmware that crashes again at
    /// once; the sim's backend shuts the crashed processor down directly instead.
    fn shutdown_if_crashed(&mut self) {
        if Sim::read_state(self) == RprocState::Crashed {
            self.shutdown();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::remoteproc::sysfs::sha256_hex;

    /// A valid firmware converted from the committed fixture (`None` only if the fixture is
    /// missing; a conversion failure fails the test).
    fn firmware() -> Option<Vec<u8>> {
        let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bin/hello.be.o");
        let bytes = std::fs::read(p).ok()?;
        // Which relocation semantics does not matter here; legacy always converts.
        let opts = crate::convert::Options {
            semantics: crate::image::RelocSemantics::Legacy,
            ..Default::default()
        };
        match crate::convert::convert(&bytes, &opts) {
            Ok(c) => Some(c.firmware),
            Err(e) => panic!("converting {p}: {e}"),
        }
    }

    fn errno(r: Result<()>) -> i32 {
        r.err().map(|e| e.errno()).unwrap_or(0)
    }

    #[test]
    fn sysfs_rules_without_a_firmware() {
        let mut s = Sim::new(SimOptions::default());
        assert_eq!(s.read_state(), RprocState::Offline);
        assert_eq!(s.read_firmware(), "rproc-vpe1-sim-fw");
        // 42: stop when offline.
        assert_eq!(errno(s.write_state("stop")), EINVAL);
        // 40: unknown word.
        assert_eq!(errno(s.write_state("bogus\n")), EINVAL);
        assert_eq!(
            s.log().last().map(String::as_str),
            Some("Unrecognised option: bogus")
        );
        // 39: empty firmware (a lone newline is empty too).
        assert_eq!(errno(s.write_firmware("")), EINVAL);
        assert_eq!(errno(s.write_firmware("\n")), EINVAL);
        // 41: missing file.
        s.write_firmware("nope.elf\n").unwrap();
        assert_eq!(s.read_firmware(), "nope.elf");
        assert_eq!(errno(s.write_state("start")), ENOENT);
        assert_eq!(s.log().last().map(String::as_str), Some("Boot failed: -2"));
        let n = s.log().len();
        assert_eq!(
            s.log()[n - 4..],
            [
                "powering up vpe1-sim",
                "Direct firmware load for nope.elf failed with error -2",
                "request_firmware failed: -2",
                "Boot failed: -2",
            ]
        );
        // 44: '..' is refused by the firmware loader even if the file exists.
        s.put_firmware_file("../x.elf", vec![0; 64]);
        s.write_firmware("../x.elf").unwrap();
        assert_eq!(errno(s.write_state("start")), EINVAL);
        assert!(s
            .log()
            .iter()
            .any(|l| l.contains("path contains '..' component")));
        assert_eq!(s.read_state(), RprocState::Offline);
        // Backend::stop is a no-op when offline.
        assert!(Backend::stop(&mut s).is_ok());
        // Garbage bytes: the sanity check refuses, "Booting" is never logged.
        s.put_firmware_file("junk.elf", vec![0; 10]);
        s.write_firmware("junk.elf").unwrap();
        assert_eq!(errno(s.write_state("start")), EINVAL);
        assert!(!s.log().iter().any(|l| l.starts_with("Booting fw image")));
        assert!(s.loaded().is_none());
    }

    #[test]
    fn sha_mismatch_is_refused_before_anything_runs() {
        let mut s = Sim::new(SimOptions::default());
        let r = s.install_and_start(b"abc", &sha256_hex(b"abd"));
        assert!(r.is_err());
        assert!(s.firmware_files().is_empty());
        assert!(s.log().is_empty());
    }

    #[test]
    fn boots_a_converted_firmware_and_follows_the_kernel_rules() {
        let Some(fw) = firmware() else {
            eprintln!("fixture missing; skipping");
            return;
        };
        let sha = sha256_hex(&fw);
        let mut s = Sim::new(SimOptions::default());
        let out = s.install_and_start(&fw, &sha).unwrap();
        assert_eq!(out.firmware, format!("vpe-compat/{sha}.elf"));
        assert_eq!(out.state, RprocState::Running);
        assert!(out.rolled_back.is_none());
        let img = s.loaded().expect("loaded image while running");
        assert!(!img.segments.is_empty());
        let log = s.log().to_vec();
        assert_eq!(log[0], "powering up vpe1-sim");
        assert_eq!(
            log[1],
            format!("Booting fw image vpe-compat/{sha}.elf, size {}", fw.len())
        );
        assert_eq!(log.last().unwrap(), "remote processor vpe1-sim is now up");
        // 38 and 43 (4.10–6.x).
        assert_eq!(errno(s.write_firmware("x")), EBUSY);
        assert_eq!(errno(s.write_state("start")), EBUSY);
        // Installing the same firmware again stops it first.
        let again = s.install_and_start(&fw, &sha).unwrap();
        assert_eq!(again.state, RprocState::Running);
        assert!(s
            .log()
            .iter()
            .any(|l| l == "stopped remote processor vpe1-sim"));
        Backend::stop(&mut s).unwrap();
        assert!(s.loaded().is_none());
        assert_eq!(s.read_state(), RprocState::Offline);
        // The file stays after stop (recovery and rollback re-read it).
        assert_eq!(s.firmware_files(), vec![format!("vpe-compat/{sha}.elf")]);
    }

    #[test]
    fn failed_start_rolls_back_or_not() {
        let Some(fw) = firmware() else {
            eprintln!("fixture missing; skipping");
            return;
        };
        let sha = sha256_hex(&fw);
        // A different, invalid firmware: check refuses it (EINVAL).
        let mut bad = fw.clone();
        bad[4] = 9; // EI_CLASS
        let bad_sha = sha256_hex(&bad);

        let mut s = Sim::new(SimOptions::default());
        s.install_and_start(&fw, &sha).unwrap();
        let out = s.install_and_start(&bad, &bad_sha).unwrap();
        let rb = out.rolled_back.expect("rolled back");
        assert_eq!(out.firmware, format!("vpe-compat/{bad_sha}.elf"));
        assert_eq!(out.state, RprocState::Offline);
        assert!(
            rb.failed_error.contains("Unsupported class: 9"),
            "{}",
            rb.failed_error
        );
        assert_eq!(rb.restored_firmware, format!("vpe-compat/{sha}.elf"));
        assert_eq!(rb.restored_state, RprocState::Running);
        assert_eq!(s.read_firmware(), rb.restored_firmware);
        // The failed file is gone, the good one stays.
        assert_eq!(s.firmware_files(), vec![rb.restored_firmware.clone()]);
        assert!(s.log().iter().any(|l| l == "Boot failed: -22"));

        // Driver start op failing, rollback disabled: offline with the error.
        let mut s = Sim::new(SimOptions::default()).with_rollback(false);
        s.install_and_start(&fw, &sha).unwrap();
        s.set_fail_start(true);
        let mut other = fw.clone();
        other.push(0);
        let e = s
            .install_and_start(&other, &sha256_hex(&other))
            .unwrap_err();
        assert_eq!(e.errno(), EBUSY);
        assert_eq!(s.read_state(), RprocState::Offline);
        assert!(s.loaded().is_none());
        assert!(s
            .log()
            .iter()
            .any(|l| l == "can't start rproc vpe1-sim: -16"));
        assert!(s.log().iter().any(|l| l == "Boot failed: -16"));
    }
}

/// The sim executing what it boots (emulated core).
#[cfg(all(test, feature = "emulate"))]
mod exec_tests {
    use std::time::{Duration, Instant};

    use super::*;
    use crate::spmem::SpMemory;

    fn fixture(name: &str) -> Vec<u8> {
        let p = format!("{}/tests/fixtures/bin/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
    }

    fn boot(name: &str, exec: Exec, recovery: bool) -> Sim {
        let mut s = Sim::new(SimOptions {
            exec,
            recovery,
            ..Default::default()
        });
        s.put_firmware_file("fw.elf", fixture(name));
        s.write_firmware("fw.elf").unwrap();
        s.write_state("start").unwrap();
        s
    }

    /// Poll `f` until it holds, at most 20 s (a loaded machine is slow, never this slow).
    fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let t = Instant::now();
        while !f() {
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_spinning_bare_firmware_writes_its_trace_and_stops_promptly() {
        for tag in ["be", "le"] {
            let mut s = boot(&format!("rproc_spin.{tag}.fw"), Exec::Bare, false);
            let greeting = b"rproc_fw: hello from the SP\na0 0xfffffffd\n";
            wait_for("the trace", || {
                s.trace(0)
                    .and_then(|r| r.ok())
                    .is_some_and(|t| t.starts_with(greeting))
            });
            assert!(s.trace(1).is_none());
            // The polling loop is running: its counter moves, read through SpMemory.
            let mem = s.memory().expect("memory while running");
            let counter = |m: &dyn SpMemory| {
                let mut b = [0u8; 4];
                // spin_count (mips-linux-gnu-nm rproc_spin.*.fw).
                m.read(SPIN_COUNT, &mut b).unwrap();
                b
            };
            let first = counter(&*mem);
            wait_for("the counter to move", || counter(&*mem) != first);
            assert_eq!(s.cpu_status().unwrap().cpu, "running");
            assert_eq!(s.read_state(), RprocState::Running);
            let t = Instant::now();
            Backend::stop(&mut s).unwrap();
            assert!(
                t.elapsed() < Duration::from_secs(1),
                "stop took {:?}",
                t.elapsed()
            );
            assert_eq!(s.read_state(), RprocState::Offline);
            assert!(s.trace(0).is_none());
        }
    }

    /// `spin_count`'s address in both rproc_spin builds (nm: same layout for BE and LE).
    const SPIN_COUNT: u32 = 0x1000_0ab0;

    #[test]
    fn a_fault_is_a_crash_and_recovery_restarts_it() {
        let mut s = boot("rproc_fault.be.fw", Exec::Bare, false);
        wait_for("the crash", || s.read_state() == RprocState::Crashed);
        let cpu = s.cpu_status().unwrap();
        assert_eq!(cpu.cpu, "faulted");
        let fault = cpu.fault.unwrap();
        assert!(fault.starts_with("TLBS ("), "{fault}");
        assert!(fault.ends_with("bad address 0x20000000"), "{fault}");
        let regs = cpu.registers.unwrap();
        assert_eq!(regs["v1"], "0x20000000");
        assert_eq!(regs.len(), 35);
        assert!(s
            .log()
            .iter()
            .any(|l| l == "crash detected in vpe1-sim: type fatal error"));
        // The trace written before the fault stays readable while crashed.
        let t = s.trace(0).unwrap().unwrap();
        assert!(t.ends_with(b"rproc_fw: storing to 0x20000000\n"));
        // A crashed rproc refuses `stop`; the backend shuts it down.
        assert_eq!(errno(s.write_state("stop")), EINVAL);
        Backend::stop(&mut s).unwrap();
        assert_eq!(s.read_state(), RprocState::Offline);

        // recovery enabled: rproc_trigger_recovery boots the same firmware again.
        let mut s = boot("rproc_fault.le.fw", Exec::Bare, true);
        wait_for("a recovery", || {
            let _ = s.read_state();
            s.log().iter().any(|l| l == "recovering vpe1-sim")
        });
        let ups = s
            .log()
            .iter()
            .filter(|l| *l == "remote processor vpe1-sim is now up")
            .count();
        assert!(ups >= 2, "{:?}", s.log());
    }

    fn errno(r: Result<()>) -> i32 {
        r.err().map(|e| e.errno()).unwrap_or(0)
    }

    #[test]
    fn hosted_output_goes_to_the_console_and_exit_halts_the_cpu() {
        let opts = crate::convert::Options {
            semantics: crate::image::RelocSemantics::Legacy,
            ..Default::default()
        };
        let fw = crate::convert::convert(&fixture("hello.le.o"), &opts)
            .unwrap()
            .firmware;
        let mut s = Sim::new(SimOptions::default());
        s.install_and_start(&fw, &crate::remoteproc::sysfs::sha256_hex(&fw))
            .unwrap();
        wait_for("the exit", || {
            s.cpu_status().is_some_and(|c| c.cpu == "halted (exit 17)")
        });
        // The kernel cannot see a halted core: remoteproc still says running.
        assert_eq!(s.read_state(), RprocState::Running);
        let out = String::from_utf8(s.console_bytes()).unwrap();
        assert!(out.starts_with("hello from the SP\n"), "{out}");
        assert!(out.ends_with("bye\n"), "{out}");
    }
}
