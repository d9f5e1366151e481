//! The conversion pipeline: sniff → legacy model → firmware writer → kernel-rule check →
//! verify. Used by `vpe-migrate` (and later by the `vpe-compat` daemon on close).
//!
//! The converter never writes a firmware it has not checked with the kernel's own rules and
//! proven equivalent to what the legacy loader would have put in memory.

use sha2::{Digest, Sha256};

use crate::elf::{
    read::{Ehdr, Reader},
    Endian, ELFMAG, ET_EXEC, ET_REL,
};
use crate::error::{Error, Result};
use crate::image::{Image, InputKind, RelocSemantics};
use crate::legacy;
use crate::rproc::check::{self, Loaded};
use crate::rproc::firmware::{self, Profile};
use crate::rproc::note::Provenance;
use crate::rproc::verify::{self, Report};

/// Default image base for the `mips-rproc` profile: KUSEG, as the MIPS remoteproc example.
pub const DEFAULT_BASE: u32 = 0x1000_0000;

/// What a file looks like, by sniffing (probe-rs style: one place decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// ELF relocatable: what `/dev/vpe1` loaders usually wrote.
    LegacyRel,
    /// ELF executable without a `.resource_table`.
    LegacyExec,
    /// An ELF that already has a `.resource_table` section.
    Firmware,
    /// Anything else.
    Unknown,
}

/// Decide what `bytes` are. Never fails: malformed files are `Unknown` or whatever their
/// header claims, and the stage that reads them reports the problem.
pub fn sniff(bytes: &[u8]) -> Format {
    if bytes.len() < 4 || &bytes[..4] != ELFMAG {
        return Format::Unknown;
    }
    let Ok(h) = Ehdr::parse(bytes) else {
        return Format::Unknown;
    };
    match h.e_type {
        ET_REL => Format::LegacyRel,
        ET_EXEC if has_resource_table(bytes) => Format::Firmware,
        ET_EXEC => Format::LegacyExec,
        _ => Format::Unknown,
    }
}

/// True if the section header table names a `.resource_table` (lenient, never fails).
pub fn has_resource_table(bytes: &[u8]) -> bool {
    section_names(bytes).iter().any(|n| n == ".resource_table")
}

/// Names of all sections, or an empty list if the section header table cannot be read.
pub fn section_names(bytes: &[u8]) -> Vec<String> {
    let Ok(h) = Ehdr::parse(bytes) else {
        return Vec::new();
    };
    let r = Reader::new(bytes, h.endian);
    let Ok(strtab) = r.shdr(h.e_shoff, usize::from(h.e_shstrndx)) else {
        return Vec::new();
    };
    (0..usize::from(h.e_shnum))
        .map_while(|i| r.shdr(h.e_shoff, i).ok())
        .map(|s| {
            r.str_in(strtab.sh_offset, strtab.sh_size, s.sh_name, "section name")
                .unwrap_or_default()
        })
        .collect()
}

/// Conversion options (the CLI's flags, without I/O).
#[derive(Debug, Clone)]
pub struct Options {
    /// Where an ET_REL image is placed; `None` = [`DEFAULT_BASE`] for `mips-rproc`.
    pub base: Option<u32>,
    pub profile: Profile,
    pub semantics: RelocSemantics,
    /// `$a2` the trampoline passes (the legacy `ntcs`).
    pub ntcs: u32,
    /// `$a3` the trampoline passes (legacy `physical_memsize`; 0 since 2023 kernels).
    pub memsize: u32,
    pub extra_mem: u32,
    pub trace: Option<u32>,
    pub trampoline: bool,
    /// Byte order the target kernel runs in; `None` = accept the input's.
    pub host: Option<Endian>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            base: None,
            profile: Profile::MipsRproc,
            semantics: RelocSemantics::Strict,
            ntcs: 1,
            memsize: 0,
            extra_mem: 0,
            trace: None,
            trampoline: true,
            host: None,
        }
    }
}

/// Everything a conversion produced.
#[derive(Debug, Clone)]
pub struct Conversion {
    /// The firmware file's bytes.
    pub firmware: Vec<u8>,
    /// What the legacy loader would have put in memory.
    pub legacy: Image,
    /// What remoteproc will load from `firmware` (checked with the kernel's rules).
    pub loaded: Loaded,
    /// Proof of equivalence.
    pub report: Report,
    /// sha256 of the input, lowercase hex.
    pub input_sha256: String,
}

impl Conversion {
    /// Warnings from every stage, legacy loader first.
    pub fn warnings(&self) -> Vec<String> {
        let mut w: Vec<String> = self
            .legacy
            .warnings
            .iter()
            .map(|w| w.message.clone())
            .collect();
        w.extend(self.loaded.warnings.iter().cloned());
        w
    }
}

/// Lowercase hex sha256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    let d = Sha256::digest(bytes);
    d.iter().map(|b| format!("{b:02x}")).collect()
}

/// The base an ET_REL is placed at under these options.
pub fn effective_base(opts: &Options) -> Result<u32> {
    match (opts.base, opts.profile) {
        (Some(b), _) => Ok(b),
        (None, Profile::MipsRproc) => Ok(DEFAULT_BASE),
        (None, Profile::Fixed) => Err(Error::Convert {
            message: "profile fixed needs --base ADDR for a relocatable input (the address the \
                      platform driver's fixed memory is at, e.g. vpe1_load_addr)"
                .into(),
        }),
    }
}

/// Load a legacy input the way `/dev/vpe1` would have (for `inspect` and `verify`).
pub fn load_legacy(bytes: &[u8], base: u32, semantics: RelocSemantics) -> Result<Image> {
    let opts = legacy::Options {
        base,
        semantics,
        capacity: None,
    };
    legacy::load(bytes, &opts)
}

/// Convert a legacy SP ELF into remoteproc firmware.
pub fn convert(bytes: &[u8], opts: &Options) -> Result<Conversion> {
    if sniff(bytes) == Format::Firmware {
        return Err(Error::Convert {
            message: "input already has a .resource_table: it is remoteproc firmware, not a \
                      legacy VPE program (use `vpe-migrate check` or `inspect`)"
                .into(),
        });
    }
    if let (Some(host), Ok(h)) = (opts.host, Ehdr::parse(bytes)) {
        if h.endian != host {
            return Err(Error::Kernel {
                message: "Unsupported firmware endianness".into(),
                errno: 22,
                detail: format!(
                    "the input is {}-endian and the target host is {}-endian; the kernel \
                     requires EI_DATA to match and this tool never byte-swaps",
                    h.endian.name(),
                    host.name()
                ),
            });
        }
    }
    let needs_base = sniff(bytes) == Format::LegacyRel;
    let base = if needs_base {
        effective_base(opts)?
    } else {
        opts.base.unwrap_or(0)
    };
    let legacy = load_legacy(bytes, base, opts.semantics)?;
    let input_sha256 = sha256_hex(bytes);
    let provenance = Provenance {
        input_sha256: input_sha256.clone(),
        input_kind: match legacy.kind {
            InputKind::Rel => "ET_REL",
            InputKind::Exec => "ET_EXEC",
            InputKind::Firmware => "firmware",
        }
        .into(),
        base: legacy.base,
        profile: opts.profile.name().into(),
        relocs: opts.semantics.as_str().into(),
        ntcs: opts.ntcs,
        memsize: opts.memsize,
        trampoline: opts.trampoline,
        tool: format!("vpe-migrate {}", env!("CARGO_PKG_VERSION")),
    };
    let fw_opts = firmware::Options {
        profile: opts.profile,
        ntcs: opts.ntcs,
        memsize: opts.memsize,
        extra_mem: opts.extra_mem,
        trace: opts.trace,
        trampoline: opts.trampoline,
        provenance,
    };
    let fw = firmware::build(&legacy, &fw_opts)?;
    // Our own output must pass the kernel's rules and the profile's geometry; a failure here
    // is a bug in the writer, reported as such rather than written out.
    let check_opts = check::Options {
        host: opts.host,
        profile: Some(opts.profile),
        ..Default::default()
    };
    let loaded = check::check(&fw, &check_opts).map_err(|e| Error::Convert {
        message: format!("internal error: the generated firmware fails the kernel's rules: {e}"),
    })?;
    let report = verify::verify(&legacy, &loaded);
    if !report.equivalent || !report.entry_ok {
        return Err(Error::Convert {
            message: format!(
                "internal error: the generated firmware is not equivalent to the legacy image: {}",
                report_summary(&report)
            ),
        });
    }
    Ok(Conversion {
        firmware: fw,
        legacy,
        loaded,
        report,
        input_sha256,
    })
}

/// One line saying how a verification came out.
pub fn report_summary(r: &Report) -> String {
    match (&r.first_difference, r.entry_ok) {
        (None, true) => format!(
            "equivalent ({} legacy bytes compared, {} bytes added by the firmware)",
            r.compared_bytes, r.extra_bytes
        ),
        (Some(d), _) => format!(
            "first difference at {:#010x}: legacy {} firmware {}",
            d.addr,
            d.legacy
                .map_or("unloaded".to_string(), |b| format!("{b:#04x}")),
            d.firmware
                .map_or("unloaded".to_string(), |b| format!("{b:#04x}"))
        ),
        (None, false) => format!("entry path does not reach __start ({:?})", r.entry),
    }
}
