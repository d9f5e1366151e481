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
//! "Booting" a firmware runs [`crate::rproc::check::check`] and keeps the [`Image`] it loads:
//! the simulated carveout memory. The firmware directory is a map of name → bytes.

use std::collections::BTreeMap;

use log::debug;

use super::sysfs::{
    check_content, is_installed_name, start_sequence, stop_if_needed, Attrs, EBUSY, EINVAL, ENOENT,
};
use super::{Backend, RprocState, StartOutcome};
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

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimOptions {
    /// Byte order of the simulated kernel; `None` = accept the firmware's.
    pub host: Option<Endian>,
    /// Target profile rules applied by the check; `None` = generic remoteproc only.
    pub profile: Option<Profile>,
    /// Test hook: the driver's start op fails with -EBUSY ("can't start rproc").
    pub fail_start: bool,
}

/// Log lines [`Sim::log`] keeps at least (at most twice as many).
const LOG_KEEP: usize = 512;

/// A simulated remoteproc instance.
#[derive(Debug, Clone)]
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
    pub fn read_state(&self) -> RprocState {
        self.state
    }

    /// sysfs `firmware` read (without the newline).
    pub fn read_firmware(&self) -> &str {
        &self.firmware
    }

    fn say(&mut self, line: String) {
        // One line per simulated kernel message: per load, so debug (RUST_LOG=debug shows it).
        debug!("sim: {line}");
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
        self.loaded = Some(loaded.image);
        self.state = RprocState::Running;
        self.say(format!("remote processor {rproc} is now up"));
        Ok(())
    }

    /// `rproc_shutdown`: carveouts freed, state offline.
    fn shutdown(&mut self) {
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

impl Attrs for Sim {
    fn read_state(&mut self) -> Result<RprocState> {
        Ok(self.state)
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
        Ok(self.state)
    }

    fn stop(&mut self) -> Result<()> {
        stop_if_needed(self)
    }

    fn install(&mut self, firmware: &[u8], sha256: &str) -> Result<String> {
        check_content(firmware, sha256)?;
        let name = format!("{SIM_SUBDIR}/{sha256}.elf");
        self.files.insert(name.clone(), firmware.to_vec());
        Ok(name)
    }

    fn start(&mut self, name: &str) -> Result<StartOutcome> {
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
