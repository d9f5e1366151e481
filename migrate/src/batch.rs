//! `vpe-migrate batch IN_DIR OUT_DIR`: convert a vendor's catalogue of legacy images in
//! parallel, never stopping at the first failure, and write a migration report that says per
//! image what it was, what happened, and what needs a human decision.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use vpe::convert::{self, Conversion, Format};
use vpe::lantiq::{CrcCheck, VoiceFormat};
use vpe::rproc::firmware::Profile;

use crate::cli::BatchArgs;
use crate::CliError;

/// What happened to one image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Firmware written.
    Converted,
    /// Not converted until someone chooses (relocation semantics, profile).
    NeedsDecision,
    /// Refused (the legacy loader's or the driver's message says why).
    Failed,
    /// Not a legacy image (already firmware, or unrecognized).
    Skipped,
}

impl Outcome {
    fn text(self) -> &'static str {
        match self {
            Outcome::Converted => "converted",
            Outcome::NeedsDecision => "needs a decision",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

/// One input file.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub file: String,
    /// `ET_REL`, `ET_EXEC`, `Lantiq ELF (ET_REL)`, `Lantiq ELF (ET_EXEC)`, `voice image`,
    /// `voice image (old format)`, `remoteproc firmware`, `unrecognized`.
    pub kind: String,
    pub outcome: Outcome,
    pub input_sha256: String,
    /// The firmware's file name in OUT_DIR.
    pub output: Option<String>,
    pub output_sha256: Option<String>,
    pub entry: Option<String>,
    pub error: Option<String>,
    pub warnings: Vec<String>,
    /// What a person has to decide or do before this image can be used as migrated.
    pub decisions: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Totals {
    pub images: usize,
    pub converted: usize,
    pub needs_decision: usize,
    pub failed: usize,
    pub skipped: usize,
}

/// The migration report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub tool: String,
    pub in_dir: String,
    pub out_dir: String,
    /// The options every image was converted with.
    pub options: String,
    pub totals: Totals,
    /// Sorted by file name.
    pub images: Vec<Entry>,
}

impl Report {
    /// True if every recognized image was converted.
    pub fn all_converted(&self) -> bool {
        self.totals.failed == 0 && self.totals.needs_decision == 0
    }

    pub fn summary(&self) -> String {
        let t = &self.totals;
        format!(
            "{} converted, {} need a decision, {} failed, {} skipped (of {} files)",
            t.converted, t.needs_decision, t.failed, t.skipped, t.images
        )
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default() + "\n"
    }

    pub fn to_markdown(&self) -> String {
        let mut o = String::new();
        let _ = writeln!(o, "# vpe-migrate batch report\n");
        let _ = writeln!(o, "- tool: {}", self.tool);
        let _ = writeln!(o, "- input: `{}`", self.in_dir);
        let _ = writeln!(o, "- output: `{}`", self.out_dir);
        let _ = writeln!(o, "- options: {}", self.options);
        let _ = writeln!(o, "- result: {}\n", self.summary());
        let _ = writeln!(o, "| file | kind | outcome | decisions | output sha256 |");
        let _ = writeln!(o, "|---|---|---|---|---|");
        for e in &self.images {
            let _ = writeln!(
                o,
                "| {} | {} | {} | {} | {} |",
                e.file,
                e.kind,
                e.outcome.text(),
                e.decisions.len(),
                e.output_sha256.as_deref().unwrap_or("-")
            );
        }
        for e in &self.images {
            let _ = writeln!(o, "\n## {}\n", e.file);
            let _ = writeln!(o, "- kind: {}", e.kind);
            let _ = writeln!(o, "- input sha256: {}", e.input_sha256);
            match (&e.output, &e.output_sha256) {
                (Some(out), Some(sha)) => {
                    let _ = writeln!(
                        o,
                        "- outcome: {} → `{out}` (sha256 {sha}), entry {}",
                        e.outcome.text(),
                        e.entry.as_deref().unwrap_or("-")
                    );
                }
                _ => {
                    let _ = writeln!(o, "- outcome: {}", e.outcome.text());
                }
            }
            if let Some(err) = &e.error {
                let _ = writeln!(o, "- error:");
                for line in err.lines() {
                    let _ = writeln!(o, "  > {line}");
                }
            }
            if !e.warnings.is_empty() {
                let _ = writeln!(o, "- warnings:");
                for w in &e.warnings {
                    let _ = writeln!(o, "  - {}", w.replace('\n', " "));
                }
            }
            if !e.decisions.is_empty() {
                let _ = writeln!(o, "- needs a human decision:");
                for d in &e.decisions {
                    let _ = writeln!(o, "  - {}", d.replace('\n', " "));
                }
            }
        }
        o
    }
}

fn describe_options(opts: &convert::Options) -> String {
    let mut s = format!(
        "profile {}, relocs {}, ntcs {}, memsize {:#x}, trampoline {}",
        opts.profile.name(),
        opts.semantics.as_str(),
        opts.ntcs,
        opts.memsize,
        if opts.trampoline { "yes" } else { "no" }
    );
    match &opts.lantiq {
        Some(l) => {
            let _ = write!(
                s,
                ", kernel lantiq (vpe1_load_addr {:#010x}, vpe1_mem {:#x}{})",
                l.vpe1_load_addr,
                l.vpe1_mem,
                if l.entry_override {
                    ""
                } else {
                    ", --entry __start"
                }
            );
        }
        None => s.push_str(", kernel mainline"),
    }
    if let Some(v) = convert::voice_options(opts) {
        let _ = write!(s, ", voice load address {:#010x}", v.load_addr);
    }
    s
}

/// Convert everything in `args.in_dir`; write the firmware and the reports.
pub fn run(args: &BatchArgs, opts: &convert::Options) -> Result<Report, CliError> {
    let rerr = |source| CliError::Read {
        path: args.in_dir.clone(),
        source,
    };
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(&args.in_dir)
        .map_err(rerr)?
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    inputs.sort();
    std::fs::create_dir_all(&args.out_dir).map_err(|source| CliError::Write {
        path: args.out_dir.clone(),
        source,
    })?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, inputs.len().max(1));

    let bar = progress::Bar::new(inputs.len());
    let next = AtomicUsize::new(0);
    let results: Mutex<Vec<Option<Entry>>> = Mutex::new(vec![None; inputs.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(path) = inputs.get(i) else { break };
                let e = process(path, &inputs, &args.out_dir, opts);
                bar.set_message(e.file.clone());
                bar.inc(1);
                results.lock().unwrap_or_else(|p| p.into_inner())[i] = Some(e);
            });
        }
    });
    bar.finish_and_clear();
    let images: Vec<Entry> = results
        .into_inner()
        .unwrap_or_else(|p| p.into_inner())
        .into_iter()
        .flatten()
        .collect();
    let mut totals = Totals {
        images: images.len(),
        ..Totals::default()
    };
    for e in &images {
        match e.outcome {
            Outcome::Converted => totals.converted += 1,
            Outcome::NeedsDecision => totals.needs_decision += 1,
            Outcome::Failed => totals.failed += 1,
            Outcome::Skipped => totals.skipped += 1,
        }
    }
    let report = Report {
        tool: format!("vpe-migrate {}", env!("CARGO_PKG_VERSION")),
        in_dir: args.in_dir.display().to_string(),
        out_dir: args.out_dir.display().to_string(),
        options: describe_options(opts),
        totals,
        images,
    };
    for path in &args.report {
        let text = if path.extension().is_some_and(|x| x == "json") {
            report.to_json()
        } else {
            report.to_markdown()
        };
        crate::write_atomic(path, text.as_bytes(), None)?;
    }
    eprintln!("{}", report.summary());
    Ok(report)
}

fn kind_of(format: Format, opts: &convert::Options) -> &'static str {
    let lantiq = opts.lantiq.is_some();
    match format {
        Format::LegacyRel if lantiq => "Lantiq ELF (ET_REL)",
        Format::LegacyRel => "ET_REL",
        Format::LegacyExec if lantiq => "Lantiq ELF (ET_EXEC)",
        Format::LegacyExec => "ET_EXEC",
        Format::Voice => "voice image",
        Format::Firmware => "remoteproc firmware",
        Format::Unknown => "unrecognized",
    }
}

fn process(path: &Path, inputs: &[PathBuf], out_dir: &Path, opts: &convert::Options) -> Entry {
    let file = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mut e = Entry {
        file: file.clone(),
        kind: String::new(),
        outcome: Outcome::Failed,
        input_sha256: String::new(),
        output: None,
        output_sha256: None,
        entry: None,
        error: None,
        warnings: Vec::new(),
        decisions: Vec::new(),
    };
    let bytes = match crate::read_input(path) {
        Ok(b) => b,
        Err(err) => {
            e.kind = "unreadable".into();
            e.error = Some(format!("cannot read: {err}"));
            return e;
        }
    };
    e.input_sha256 = convert::sha256_hex(&bytes);
    let format = convert::sniff(&bytes);
    let old_voice =
        format == Format::Unknown && convert::voice_options(opts).is_some_and(|v| v.old_format);
    e.kind = if old_voice {
        "voice image (old format)".into()
    } else {
        kind_of(format, opts).into()
    };
    match format {
        Format::Firmware => {
            e.outcome = Outcome::Skipped;
            e.error = Some("already remoteproc firmware (has a .resource_table)".into());
            return e;
        }
        Format::Unknown if !old_voice => {
            e.outcome = Outcome::Skipped;
            e.error = Some(
                "not an ELF and not a Lantiq voice image (no footer magic 0xcc123456; old-format images need --lantiq-voice)"
                    .into(),
            );
            return e;
        }
        _ => {}
    }
    let out_name = format!("{file}.fw");
    let out = out_dir.join(&out_name);
    if inputs
        .iter()
        .any(|i| i == &out || crate::same_file(i, &out))
    {
        e.error = Some(format!(
            "the output {} would overwrite an input; use another OUT_DIR",
            out.display()
        ));
        return e;
    }
    match convert::convert(&bytes, opts) {
        Ok(conv) => {
            e.warnings = conv.warnings();
            e.decisions = decisions_for(&conv, opts);
            if let Err(err) = crate::write_atomic(&out, &conv.firmware, Some(path)) {
                e.error = Some(err.to_string());
                return e;
            }
            e.outcome = Outcome::Converted;
            e.output = Some(out_name);
            e.output_sha256 = Some(convert::sha256_hex(&conv.firmware));
            e.entry = Some(format!("{:#010x}", conv.loaded.image.entry));
        }
        Err(err) => {
            let (outcome, decisions) = classify_error(&err);
            e.outcome = outcome;
            e.decisions = decisions;
            e.error = Some(err.to_string());
        }
    }
    e
}

/// Which refusals are a choice for a person rather than a broken input.
fn classify_error(err: &vpe::Error) -> (Outcome, Vec<String>) {
    match err {
        vpe::Error::SemanticsDiffer { sites } => {
            let mut d = vec![format!(
                "relocation semantics: the legacy loader and the MIPS ELF ABI disagree at {} site(s); convert with --relocs legacy (bit-for-bit the old kernel, bugs included) or --relocs elf (what the author meant) — see docs/MIGRATION.md",
                sites.len()
            )];
            let commons: Vec<&String> = sites.iter().filter(|s| s.contains("COMMON")).collect();
            if !commons.is_empty() {
                d.push(format!(
                    "COMMON symbols ({}): the legacy loader overlapped them with .bss; rebuild with -fno-common, or pick --relocs elf to give them their own space",
                    commons.len()
                ));
            }
            (Outcome::NeedsDecision, d)
        }
        vpe::Error::Convert { message } if message.contains("outside KUSEG") => (
            Outcome::NeedsDecision,
            vec![
                "KSEG0/KSEG1 addresses: the program is linked where the mips-rproc profile cannot map it; convert with --profile fixed for a platform driver with fixed memory (carveout pa = address & 0x1fffffff)".into(),
            ],
        ),
        _ => (Outcome::Failed, Vec::new()),
    }
}

/// What a converted image still needs someone to look at.
fn decisions_for(conv: &Conversion, opts: &convert::Options) -> Vec<String> {
    let mut d = Vec::new();
    let img = &conv.legacy;
    if let Some(shared) = img.shared {
        d.push(format!(
            "vpe_shared at {shared:#010x}: the program uses the AP/SP (RTLX) channel; remoteproc has no RTLX, so keep the Linux side on the vpe-compat shim or port it to rpmsg"
        ));
    }
    if img.segments.iter().any(|s| s.addr >= 0x8000_0000) && opts.profile == Profile::Fixed {
        d.push(format!(
            "KSEG0/KSEG1 addresses ({:#010x}): needs the fixed profile, i.e. a platform driver that owns the memory at physical {:#010x}",
            img.base,
            vpe::lantiq::physical(img.base)
        ));
    }
    for w in conv.warnings() {
        if w.starts_with("LANTIQ LOADER QUIRK") {
            d.push(
                "entry: the Lantiq loader's fallback decides where the program starts (KSEG1(vpe1_load_addr)); confirm, or convert with --entry __start".into(),
            );
        }
        if w.starts_with("COMMON symbol") {
            d.push(format!(
                "COMMON symbols converted with --relocs {}: confirm that is what the program needs (or rebuild with -fno-common)",
                opts.semantics.as_str()
            ));
            break;
        }
    }
    if let Some(v) = &conv.voice {
        if v.encrypted {
            d.push(
                "encrypted voice payload: the platform driver must run the SoC ROM decrypt routine over the image before starting VPE1 (docs/CONVERSION.md §7)".into(),
            );
        }
        if let CrcCheck::Mismatch { .. } = v.crc {
            d.push("voice CRC mismatch: the image may be damaged".into());
        }
        if v.format == VoiceFormat::Old {
            d.push("old-format voice image: no platform or version information to check".into());
        }
    }
    d.dedup();
    d
}

/// The progress bar on a terminal; none on the board, where it is not worth its size.
#[cfg(not(target_arch = "mips"))]
mod progress {
    use std::io::IsTerminal as _;

    pub struct Bar(indicatif::ProgressBar);

    impl Bar {
        pub fn new(len: usize) -> Bar {
            if !std::io::stderr().is_terminal() {
                return Bar(indicatif::ProgressBar::hidden());
            }
            let b = indicatif::ProgressBar::new(len as u64);
            if let Ok(style) =
                indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} [{elapsed}]")
            {
                b.set_style(style);
            }
            Bar(b)
        }
        pub fn set_message(&self, m: String) {
            self.0.set_message(m);
        }
        pub fn inc(&self, n: u64) {
            self.0.inc(n);
        }
        pub fn finish_and_clear(&self) {
            self.0.finish_and_clear();
        }
    }
}

#[cfg(target_arch = "mips")]
mod progress {
    pub struct Bar;

    impl Bar {
        pub fn new(_len: usize) -> Bar {
            Bar
        }
        pub fn set_message(&self, _m: String) {}
        pub fn inc(&self, _n: u64) {}
        pub fn finish_and_clear(&self) {}
    }
}
