//! `vpe-migrate batch IN_DIR OUT_DIR`: convert a vendor's catalogue of legacy images in
//! parallel, never stopping at the first failure, and write a migration report that says per
//! image what it was, what happened, and what needs a human decision.

use std::collections::HashMap;
use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use serde::Serialize;
use vpe::convert::{self, Conversion, Format};
use vpe::lantiq::{CrcCheck, VoiceFormat};
use vpe::rproc::firmware::Profile;

use crate::cli::BatchArgs;
use crate::{files, CliError};

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
    /// The name in IN_DIR, escaped ([`escape_name`]).
    pub file: String,
    /// Where the symbolic link `file` points (escaped), when it is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub symlink_to: Option<String>,
    /// `ET_REL`, `ET_EXEC`, `Lantiq ELF (ET_REL)`, `Lantiq ELF (ET_EXEC)`, `voice image`,
    /// `voice image (old format)`, `remoteproc firmware`, `unrecognized`.
    pub kind: String,
    pub outcome: Outcome,
    pub input_sha256: String,
    /// The firmware's file name in OUT_DIR (escaped).
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
                e.file.replace('|', "\\|"),
                e.kind,
                e.outcome.text(),
                e.decisions.len(),
                e.output_sha256.as_deref().unwrap_or("-")
            );
        }
        for e in &self.images {
            let _ = writeln!(o, "\n## {}\n", e.file);
            let _ = writeln!(o, "- kind: {}", e.kind);
            if let Some(t) = &e.symlink_to {
                let _ = writeln!(o, "- symbolic link to `{t}`");
            }
            if !e.input_sha256.is_empty() {
                let _ = writeln!(o, "- input sha256: {}", e.input_sha256);
            }
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

/// One entry of IN_DIR.
struct Listed {
    /// The raw name (never made lossy: it names the input and, with `.fw`, the output).
    name: OsString,
    path: PathBuf,
    /// `Some(target)` for a symbolic link.
    link: Option<PathBuf>,
    /// Why it is not read (not a regular file, nor a link to one); `None` = an input.
    not_read: Option<(String, String)>,
}

/// List IN_DIR: regular files and symbolic links to regular files are inputs (the kernel's
/// limit on nested links, ELOOP, stops a loop); everything else is listed with why it is not
/// read, so the report accounts for every entry.
fn list(in_dir: &Path) -> Result<Vec<Listed>, CliError> {
    let rerr = |source| CliError::Read {
        path: in_dir.to_owned(),
        source,
    };
    let mut v = Vec::new();
    for e in std::fs::read_dir(in_dir).map_err(rerr)? {
        let e = e.map_err(rerr)?;
        let path = e.path();
        let t = e.file_type().map_err(rerr)?;
        let mut l = Listed {
            name: e.file_name(),
            path,
            link: None,
            not_read: None,
        };
        if t.is_symlink() {
            let target = std::fs::read_link(&l.path).unwrap_or_default();
            let shown = escape_name(target.as_os_str());
            l.not_read = match std::fs::metadata(&l.path) {
                Ok(m) if m.is_file() => None,
                Ok(m) => Some((
                    format!("symbolic link to {}", files::kind(m.file_type())),
                    format!(
                        "a symbolic link to {} (`{shown}`): only regular files are read",
                        files::kind(m.file_type())
                    ),
                )),
                Err(err) if err.raw_os_error() == Some(libc::ELOOP) => Some((
                    "symbolic link loop".into(),
                    format!("a symbolic link that loops (`{shown}`, too many levels of links): not followed"),
                )),
                Err(err) if err.kind() == std::io::ErrorKind::NotFound => Some((
                    "dangling symbolic link".into(),
                    format!("a symbolic link to `{shown}`, which does not exist"),
                )),
                Err(err) => Some((
                    "symbolic link".into(),
                    format!("a symbolic link to `{shown}` that cannot be followed: {err}"),
                )),
            };
            l.link = Some(target);
        } else if !t.is_file() {
            let k = files::kind(t);
            l.not_read = Some((
                k.trim_start_matches("a ").into(),
                format!("{k}: only regular files are read (IN_DIR is not searched recursively)"),
            ));
        }
        v.push(l);
    }
    // By raw name: the order does not depend on how names are shown.
    v.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(v)
}

/// A file name as the report shows it: UTF-8 kept, except `\\` for a backslash, `\xNN` for
/// each byte that is not UTF-8 and for ASCII control characters, `\u{NNNN}` for other
/// characters that are not printable on one line (`vpe::elf::read::is_unprintable`).
/// Distinct names stay distinct.
pub fn escape_name(name: &OsStr) -> String {
    let mut o = String::with_capacity(name.len());
    for chunk in name.as_bytes().utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '\\' {
                o.push_str("\\\\");
            } else if !vpe::elf::read::is_unprintable(c) {
                o.push(c);
            } else if c.is_ascii() {
                let _ = write!(o, "\\x{:02x}", c as u32);
            } else {
                let _ = write!(o, "\\u{{{:04x}}}", c as u32);
            }
        }
        for b in chunk.invalid() {
            let _ = write!(o, "\\x{b:02x}");
        }
    }
    o
}

/// `NAME.fw` for the input `NAME`, from the raw name.
fn output_name(name: &OsStr) -> OsString {
    let mut n = name.to_owned();
    n.push(".fw");
    n
}

/// Refuse a `--report` path that could destroy data, before anything is converted: it must
/// not be an input (also through a link) nor lie inside IN_DIR, must not be where a firmware
/// goes, must not be given twice, must be a regular file or new, and its directory must exist
/// (or be OUT_DIR, created next).
fn check_reports(args: &BatchArgs, listed: &[Listed]) -> Result<(), CliError> {
    let bad = |path: &Path, why: String| CliError::BadReport {
        path: path.to_owned(),
        why,
    };
    let canon_in = std::fs::canonicalize(&args.in_dir).map_err(|source| CliError::Read {
        path: args.in_dir.clone(),
        source,
    })?;
    let canon_out = std::fs::canonicalize(&args.out_dir).ok();
    let mut seen: Vec<PathBuf> = Vec::new();
    for r in &args.report {
        let Some(fname) = r.file_name() else {
            return Err(CliError::OutputIsDir { path: r.clone() });
        };
        let dir = match r.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
            _ => PathBuf::from("."),
        };
        let in_out_dir = match (std::fs::canonicalize(&dir), &canon_out) {
            (Ok(d), Some(o)) => d == *o,
            // OUT_DIR not created yet: the report goes into it only if named through it.
            (Err(_), None) => dir == args.out_dir,
            _ => false,
        };
        match files::check_output(r) {
            Err(CliError::OutputNoDir { .. }) if in_out_dir => {}
            other => {
                other?;
            }
        }
        let canon_dir = std::fs::canonicalize(&dir).unwrap_or(dir.clone());
        if canon_dir.starts_with(&canon_in) {
            return Err(bad(
                r,
                format!(
                    "it is inside IN_DIR {} (write the report somewhere else)",
                    args.in_dir.display()
                ),
            ));
        }
        if let Some(l) = listed
            .iter()
            .find(|l| l.not_read.is_none() && files::same_file(&l.path, r))
        {
            return Err(bad(
                r,
                format!("it is the input {}", escape_name(l.name.as_os_str())),
            ));
        }
        if let Some(l) = listed.iter().find(|l| {
            l.not_read.is_none()
                && ((in_out_dir && output_name(&l.name) == fname)
                    || files::same_file(&args.out_dir.join(output_name(&l.name)), r))
        }) {
            return Err(bad(
                r,
                format!(
                    "it is where the firmware of {} goes",
                    escape_name(l.name.as_os_str())
                ),
            ));
        }
        let key = canon_dir.join(fname);
        if seen.contains(&key) {
            return Err(bad(r, "it is given twice".into()));
        }
        seen.push(key);
    }
    Ok(())
}

/// Outputs this run wrote, by inode: a file system that folds two names into one (case,
/// Unicode normalization) would otherwise let one image's firmware replace another's.
type Written = Mutex<HashMap<(u64, u64), String>>;

/// Convert everything in `args.in_dir`; write the firmware and the reports.
pub fn run(args: &BatchArgs, opts: &convert::Options) -> Result<Report, CliError> {
    for dir in [&args.in_dir, &args.out_dir] {
        if let Ok(m) = std::fs::metadata(dir) {
            if !m.is_dir() {
                return Err(CliError::NotADirectory {
                    path: dir.clone(),
                    kind: files::kind(m.file_type()),
                });
            }
        }
    }
    let listed = list(&args.in_dir)?;
    check_reports(args, &listed)?;
    let inputs: Vec<PathBuf> = listed
        .iter()
        .filter(|l| l.not_read.is_none())
        .map(|l| l.path.clone())
        .collect();
    std::fs::create_dir_all(&args.out_dir).map_err(|source| CliError::Write {
        path: args.out_dir.clone(),
        source,
    })?;
    let jobs = args
        .jobs
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, listed.len().max(1));

    let bar = progress::Bar::new(listed.len());
    let next = AtomicUsize::new(0);
    let written = Written::default();
    let results: Mutex<Vec<Option<Entry>>> = Mutex::new(vec![None; listed.len()]);
    std::thread::scope(|s| {
        for _ in 0..jobs {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some(l) = listed.get(i) else { break };
                let e = process(l, &inputs, &args.out_dir, opts, &written);
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
        crate::files::write_atomic(path, text.as_bytes(), None)?;
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

fn process(
    l: &Listed,
    inputs: &[PathBuf],
    out_dir: &Path,
    opts: &convert::Options,
    written: &Written,
) -> Entry {
    let file = escape_name(&l.name);
    let mut e = Entry {
        file: file.clone(),
        symlink_to: l.link.as_ref().map(|t| escape_name(t.as_os_str())),
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
    if let Some((kind, why)) = &l.not_read {
        e.kind = kind.clone();
        e.outcome = Outcome::Skipped;
        e.error = Some(why.clone());
        return e;
    }
    let path = l.path.as_path();
    let bytes = match files::read_input(path) {
        Ok(b) => b,
        Err(err) => {
            e.kind = "unreadable".into();
            e.error = Some(err.to_string());
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
    let out_name = output_name(&l.name);
    let out = out_dir.join(&out_name);
    if inputs
        .iter()
        .any(|i| i == &out || files::same_file(i, &out))
    {
        e.error = Some(format!(
            "the output {} would overwrite an input; use another OUT_DIR",
            escape_name(out_name.as_os_str())
        ));
        return e;
    }
    match convert::convert(&bytes, opts) {
        Ok(conv) => {
            e.warnings = conv.warnings();
            e.decisions = decisions_for(&conv, opts);
            if let Err(err) = write_claimed(&out, &conv.firmware, path, &file, written) {
                e.error = Some(err.to_string());
                return e;
            }
            e.outcome = Outcome::Converted;
            e.output = Some(escape_name(&out_name));
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

/// Write one firmware, refusing to replace a file this run already wrote for another image
/// (the rename and the check under one lock; the conversions and writes stay parallel).
fn write_claimed(
    out: &Path,
    data: &[u8],
    input: &Path,
    file: &str,
    written: &Written,
) -> Result<(), CliError> {
    let staged = files::stage(out, data, Some(input))?;
    let mut w = written.lock().unwrap_or_else(|p| p.into_inner());
    let id = |m: std::fs::Metadata| (m.dev(), m.ino());
    if let Some(other) = std::fs::symlink_metadata(out)
        .ok()
        .and_then(|m| w.get(&id(m)))
    {
        return Err(CliError::OutputCollision {
            path: out.to_owned(),
            other: other.clone(),
        });
    }
    staged.commit()?;
    if let Ok(m) = std::fs::symlink_metadata(out) {
        w.insert(id(m), file.to_owned());
    }
    Ok(())
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
    let hazards = conv
        .warnings()
        .iter()
        .filter(|w| w.starts_with(vpe::legacy::HAZARD))
        .count();
    if hazards > 0 {
        d.push(format!(
            "KUSEG re-base hazard at {hazards} site(s): the code takes KSEG0/KSEG1/physical aliases of its own data, which at the KUSEG base point at other memory (see the warnings); fix the code or use --profile fixed"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_folded_onto_an_output_of_this_run_is_refused() {
        // What a case-folding file system does with `A.o.fw` and `a.o.fw`: both names reach
        // one file. Modelled by writing the same path for a second image.
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("in.o");
        std::fs::write(&input, b"input").unwrap();
        let out = dir.path().join("a.o.fw");
        let written = Written::default();
        write_claimed(&out, b"first", &input, "A.o", &written).unwrap();
        let err = write_claimed(&out, b"second", &input, "a.o", &written).unwrap_err();
        assert!(
            err.to_string()
                .contains("this run already wrote the firmware of A.o there"),
            "{err}"
        );
        assert_eq!(std::fs::read(&out).unwrap(), b"first");
        // Only the output itself is left (no temp file).
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 2);
    }

    #[test]
    fn escaped_names_stay_distinct() {
        use std::os::unix::ffi::OsStrExt as _;
        let e = |b: &[u8]| escape_name(OsStr::from_bytes(b));
        assert_eq!(e(b"plain.o"), "plain.o");
        assert_eq!(e(b"x\xff"), "x\\xff");
        assert_eq!(e(b"x\\xff"), "x\\\\xff");
        assert_eq!(e("x\u{85}".as_bytes()), "x\\u{0085}");
        assert_eq!(e(b"x\x85"), "x\\x85");
        assert_eq!(e(b"a\nb"), "a\\x0ab");
        assert_eq!(e("café".as_bytes()), "café");
        assert_eq!(e("a\u{202e}b\u{2028}".as_bytes()), "a\\u{202e}b\\u{2028}");
    }
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
