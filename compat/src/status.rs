//! What `status` and `status.json` show: the last load and the remote processor's state.
//!
//! The legacy kernel's only feedback was dmesg; this file is the daemon's equivalent, so every
//! failure keeps the legacy message text verbatim next to our detailed one.

use serde::Serialize;
use vpe::remoteproc::{CpuStatus, Rollback};

/// A phase of a load, for errors and timings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Stopping the running program (on `open` of `vpe1` or a write to `kill`).
    Stop,
    /// A write was refused (too big, or all opens at `--max-buffered`): nothing loaded.
    Write,
    /// The buffer did not start with `\x7fELF`.
    Check,
    /// Legacy model, firmware writer, kernel-rule check.
    Convert,
    /// Installing the firmware file.
    Install,
    /// Starting the remote processor.
    Start,
}

/// The last failure, with the message the legacy kernel would have printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LastError {
    pub phase: Phase,
    /// errno `fsync` (or `close` with `--errors-on-close`) reports for it.
    pub errno: i32,
    /// The full message (legacy text first where one exists).
    pub message: String,
    /// The line the legacy kernel printed last for this failure, if it had one.
    pub legacy_message: Option<String>,
    /// Seconds since the Unix epoch.
    pub at: u64,
}

/// Durations of the phases of the last load, in microseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// First write to last write of the image.
    pub receive_us: u64,
    /// Legacy model + firmware writer + kernel-rule check.
    pub convert_us: u64,
    /// Write the firmware file (temp file, fsync, rename).
    pub install_us: u64,
    /// Stop if needed, write `firmware` and `start`, read `state` back (and any rollback).
    pub start_us: u64,
    /// The `stop` done when `vpe1` was opened.
    pub stop_us: u64,
}

/// Everything the status files show.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Status {
    /// `"sim"` or `"sysfs"`.
    pub backend: String,
    /// remoteproc state word (`offline`, `running`, ...); filled in when rendered.
    pub state: String,
    /// The processor itself, where the backend sees it (sim: `cpu`, `fault`, `registers`).
    pub cpu: Option<CpuStatus>,
    /// The firmware remoteproc is configured with, as this daemon left it: the one started by
    /// the last successful load, the restored one after a rollback, or, after a failed start
    /// without rollback, the one that failed (what remoteproc's `firmware` attribute then
    /// reads).
    pub firmware: Option<String>,
    /// `__start` of the program last started (what runs while `state` is `running`), `0x%08x`.
    /// A failed attempt that started nothing keeps it.
    pub entry: Option<String>,
    /// Address of its `vpe_shared` (what `vpe_get_shared()` returned), `0x%08x`; cleared when
    /// an open of `vpe1` stops the program, as vpe.c cleared `shared_ptr`.
    pub vpe_shared: Option<String>,
    /// sha256 of the image that program was loaded from (lowercase hex).
    pub sha256: Option<String>,
    /// Bytes of that image.
    pub image_size: Option<u64>,
    /// That image already was remoteproc firmware and was installed unchanged.
    pub passthrough: bool,
    /// sha256 of the image of the last load attempt, successful or not (`None` when a
    /// refused write meant nothing was loaded).
    pub last_attempt_sha256: Option<String>,
    /// Bytes received by the last load attempt.
    pub last_attempt_size: Option<u64>,
    /// `$a2` the next start passes.
    pub ntcs: u32,
    /// Successful and failed loads since the daemon started.
    pub loads_ok: u64,
    pub loads_failed: u64,
    /// `"ok"` or `"failed"`: the last load attempt; `None` before the first.
    pub last_result: Option<String>,
    /// The failure of the last load attempt, or of a stop (open, `kill`) since; `None` after
    /// a successful load.
    pub last_error: Option<LastError>,
    /// A failed start that was rolled back to the previous firmware.
    pub rollback: Option<Rollback>,
    pub timings: Timings,
    /// Warnings of the last conversion (legacy loader first).
    pub warnings: Vec<String>,
}

impl Status {
    /// The `status` file: `key: value` lines, stable order, one value per line.
    pub fn to_text(&self) -> String {
        fn opt(v: &Option<String>) -> &str {
            v.as_deref().unwrap_or("-")
        }
        let mut s = String::new();
        let mut line = |k: &str, v: &str| {
            s.push_str(k);
            s.push_str(": ");
            s.push_str(v);
            s.push('\n');
        };
        line("backend", &self.backend);
        line("state", &self.state);
        if let Some(c) = &self.cpu {
            line("cpu", &c.cpu);
            if let Some(f) = &c.fault {
                line("fault", f);
            }
        }
        line("firmware", opt(&self.firmware));
        line("entry", opt(&self.entry));
        line("vpe_shared", opt(&self.vpe_shared));
        line("sha256", opt(&self.sha256));
        line(
            "image_size",
            &self.image_size.map_or("-".to_string(), |n| n.to_string()),
        );
        if self.passthrough {
            line(
                "passthrough",
                "yes (remoteproc firmware installed unchanged)",
            );
        }
        line("ntcs", &self.ntcs.to_string());
        line("loads_ok", &self.loads_ok.to_string());
        line("loads_failed", &self.loads_failed.to_string());
        line("last_result", opt(&self.last_result));
        line("last_attempt_sha256", opt(&self.last_attempt_sha256));
        line(
            "last_attempt_size",
            &self
                .last_attempt_size
                .map_or("-".to_string(), |n| n.to_string()),
        );
        match &self.last_error {
            Some(e) => {
                line("last_error", &one_line(&e.message));
                line(
                    "last_error_phase",
                    match e.phase {
                        Phase::Stop => "stop",
                        Phase::Write => "write",
                        Phase::Check => "check",
                        Phase::Convert => "convert",
                        Phase::Install => "install",
                        Phase::Start => "start",
                    },
                );
                line("last_error_errno", &e.errno.to_string());
                line(
                    "last_error_legacy",
                    e.legacy_message.as_deref().unwrap_or("-"),
                );
            }
            None => line("last_error", "-"),
        }
        if let Some(r) = &self.rollback {
            line("rollback_failed_error", &one_line(&r.failed_error));
            line("rollback_restored_firmware", &r.restored_firmware);
            line("rollback_restored_state", r.restored_state.as_str());
        }
        line("receive_us", &self.timings.receive_us.to_string());
        line("convert_us", &self.timings.convert_us.to_string());
        line("install_us", &self.timings.install_us.to_string());
        line("start_us", &self.timings.start_us.to_string());
        line("stop_us", &self.timings.stop_us.to_string());
        for w in &self.warnings {
            line("warning", &one_line(w));
        }
        s
    }

    /// The `status.json` file (pretty, newline-terminated).
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_else(|e| {
            // Serialising plain strings and numbers cannot fail; say so if it ever does.
            format!("{{\"error\": \"status serialisation failed: {e}\"}}")
        });
        s.push('\n');
        s
    }
}

/// Multi-line messages (e.g. relocation disagreements) on one status line.
fn one_line(s: &str) -> String {
    s.replace('\n', " | ")
}

/// `0x%08x`, as the kernel prints addresses.
pub fn hex(v: u32) -> String {
    format!("{v:#010x}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_has_one_key_per_line_and_flattens_messages() {
        let st = Status {
            backend: "sim".into(),
            state: "offline".into(),
            last_error: Some(LastError {
                phase: Phase::Convert,
                errno: 8,
                message: "a\nb".into(),
                legacy_message: Some("VPE loader: ELF load failed.".into()),
                at: 0,
            }),
            ..Default::default()
        };
        let t = st.to_text();
        assert!(t.contains("last_error: a | b\n"), "{t}");
        assert!(t.contains("last_error_legacy: VPE loader: ELF load failed.\n"));
        assert!(t.contains("entry: -\n"));
        for l in t.lines() {
            assert!(l.contains(": "), "{l}");
        }
    }

    #[test]
    fn json_round_trips_through_serde_json() {
        let st = Status {
            backend: "sim".into(),
            entry: Some(hex(0x8000_1000)),
            ..Default::default()
        };
        let v: serde_json::Value = serde_json::from_str(&st.to_json()).unwrap();
        assert_eq!(v["entry"], "0x80001000");
        assert_eq!(v["backend"], "sim");
        assert!(v["last_error"].is_null());
    }
}
