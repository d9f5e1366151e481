//! The conversion pipeline: sniff → legacy model → firmware writer → kernel-rule check →
//! verify. Used by `vpe-migrate` (and later by the `vpe-compat` daemon on close).
//!
//! The converter never writes a firmware it has not checked with the kernel's own rules and
//! proven equivalent to what the legacy loader would have put in memory.

use std::borrow::Cow;

use sha2::{Digest, Sha256};

use crate::elf::{
    read::{Ehdr, Reader},
    Endian, ELFMAG, ET_EXEC, ET_REL,
};
use crate::error::{Error, Result};
use crate::image::{Image, InputKind, RelocSemantics};
use crate::legacy;
use crate::legacy::lantiq::LantiqLoader;
use crate::rproc::check::{self, Loaded};
use crate::rproc::firmware::{self, Profile};
use crate::rproc::note::Provenance;
use crate::rproc::verify::{self, EntryPath, Report};
use crate::voice::{self, Voice, VoiceOptions};

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
    /// A Lantiq VMMC voice firmware image (new-format footer magic `0xCC123456`).
    Voice,
    /// Anything else.
    Unknown,
}

/// Decide what `bytes` are. Never fails: malformed files are `Unknown` or whatever their
/// header claims, and the stage that reads them reports the problem.
pub fn sniff(bytes: &[u8]) -> Format {
    if bytes.len() < 4 || &bytes[..4] != ELFMAG {
        if voice::is_voice(bytes) {
            return Format::Voice;
        }
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
    /// The Lantiq-patched loader (`--kernel lantiq`): ELF images placed at `vpe1_load_addr`,
    /// its missing-symbol fallback; needs the `fixed` profile.
    pub lantiq: Option<LantiqLoader>,
    /// How the voice driver would load a voice image (`--load-addr` ...); `None` takes the
    /// load address and `vpe1_mem` from `lantiq`, else voice images are refused.
    pub voice: Option<VoiceOptions>,
    /// Loaded-memory limit (`--max-mem`); `None` = `vpe1_mem` with `lantiq`, else
    /// [`legacy::DEFAULT_MAX_MEM`] (see [`legacy::Options::max_mem`]).
    pub max_mem: Option<u32>,
    /// The target kernel's `CONFIG_CMA_ALIGNMENT` (`--cma-align`; mips-rproc profile).
    pub cma_align: u8,
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
            lantiq: None,
            voice: None,
            max_mem: None,
            cma_align: crate::rproc::mips_tlb::DEFAULT_CMA_ALIGN,
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
    /// For a Lantiq voice image: its footer and the driver's view of it.
    pub voice: Option<Voice>,
    /// The input was remoteproc firmware, passed through unchanged (`firmware` is the input;
    /// `legacy` is what remoteproc loads from it, with `entry` the trampoline's target if it
    /// has one, else `e_entry`).
    pub passthrough: bool,
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

/// Load a legacy input the way `/dev/vpe1` would have (for `inspect` and `verify`). No
/// loaded-memory limit: it is a conversion policy, and these only describe and compare (the
/// model never allocates `.bss`).
pub fn load_legacy(bytes: &[u8], base: u32, semantics: RelocSemantics) -> Result<Image> {
    let opts = legacy::Options {
        base,
        semantics,
        max_mem: Some(u32::MAX),
        ..legacy::Options::default()
    };
    legacy::load(bytes, &opts)
}

/// The voice options in force: explicit ones, else the Lantiq loader's address and memory.
pub fn voice_options(opts: &Options) -> Option<VoiceOptions> {
    opts.voice.or_else(|| {
        opts.lantiq.map(|l| VoiceOptions {
            crc: Default::default(),
            load_addr: l.vpe1_load_addr,
            vpe1_mem: Some(l.vpe1_mem),
            platform: None,
            endian: None,
            old_format: false,
        })
    })
}

fn tool() -> String {
    format!("vpe-migrate {}", env!("CARGO_PKG_VERSION"))
}

/// The note lines that say how the Lantiq loader was modelled.
pub fn lantiq_note(l: &LantiqLoader) -> Vec<(String, String)> {
    vec![
        ("kernel".into(), "lantiq".into()),
        (
            "vpe1_load_addr".into(),
            format!("{:#010x}", l.vpe1_load_addr),
        ),
        ("vpe1_mem".into(), format!("{:#x}", l.vpe1_mem)),
        ("entry_override".into(), l.entry_override.to_string()),
    ]
}

/// The Lantiq loader a firmware was converted with, from its provenance note.
pub fn lantiq_from_note(p: &Provenance) -> Option<LantiqLoader> {
    let get = |k: &str| {
        p.extra
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let num = |k: &str| {
        get(k).and_then(|v| match v.strip_prefix("0x") {
            Some(h) => u32::from_str_radix(h, 16).ok(),
            None => v.parse().ok(),
        })
    };
    (get("kernel") == Some("lantiq")).then_some(())?;
    Some(LantiqLoader {
        vpe1_load_addr: num("vpe1_load_addr")?,
        vpe1_mem: num("vpe1_mem")?,
        entry_override: get("entry_override") != Some("false"),
    })
}

/// Check with the kernel's rules and prove equivalence (a failure is a bug in the writer).
fn check_and_verify(fw: &[u8], legacy: &Image, opts: &Options) -> Result<(Loaded, Report)> {
    let check_opts = check::Options {
        host: opts.host,
        profile: Some(opts.profile),
        cma_align: Some(opts.cma_align),
        ..Default::default()
    };
    let loaded = check::check(fw, &check_opts).map_err(|e| Error::Convert {
        message: format!("internal error: the generated firmware fails the kernel's rules: {e}"),
    })?;
    let report = verify::verify(legacy, &loaded);
    if !report.equivalent || !report.entry_ok {
        return Err(Error::Convert {
            message: format!(
                "internal error: the generated firmware is not equivalent to the legacy image: {}",
                report_summary(&report)
            ),
        });
    }
    Ok((loaded, report))
}

/// Convert a Lantiq voice image: the bytes the driver copied, one PT_LOAD at the physical
/// base, entry KSEG1(base) without a trampoline (`vpe1_sw_start(addr, 0, 0)`), the `fixed`
/// profile, carveout `vpe1` sized to the footer's memory requirement, every footer field in
/// the note.
pub fn convert_voice(bytes: &[u8], opts: &Options) -> Result<Conversion> {
    let Some(vo) = voice_options(opts) else {
        return Err(Error::Convert {
            message: "this is a Lantiq voice firmware image (footer magic 0xcc123456): pass --load-addr ADDR (the board's vpe1_load_addr) to convert it".into(),
        });
    };
    let (voice, legacy) = voice::load_voice(bytes, &vo)?;
    if let Some(host) = opts.host {
        if voice.endian != host {
            return Err(Error::Kernel {
                message: "Unsupported firmware endianness".into(),
                errno: 22,
                detail: format!(
                    "the voice image's footer is {}-endian and the target host is {}-endian",
                    voice.endian.name(),
                    host.name()
                ),
            });
        }
    }
    let opts = Options {
        profile: Profile::Fixed,
        trampoline: false,
        ..opts.clone()
    };
    let input_sha256 = sha256_hex(bytes);
    let mut extra = voice::note_fields(&voice, vo.load_addr);
    if let Some(l) = &opts.lantiq {
        extra.extend(lantiq_note(l));
    }
    let provenance = Provenance {
        input_sha256: input_sha256.clone(),
        input_kind: "voice".into(),
        base: legacy.base,
        profile: Profile::Fixed.name().into(),
        relocs: "none".into(),
        ntcs: opts.ntcs,
        memsize: opts.memsize,
        trampoline: false,
        tool: tool(),
        extra,
    };
    let build = |extra_mem: u32| {
        firmware::build(
            &legacy,
            &firmware::Options {
                profile: Profile::Fixed,
                ntcs: opts.ntcs,
                memsize: opts.memsize,
                extra_mem,
                trace: opts.trace,
                trampoline: false,
                provenance: provenance.clone(),
                cma_align: opts.cma_align,
            },
        )
    };
    // First without headroom to learn the carveout the image and its table need, then with
    // enough zeroed memory that the carveout covers the footer's requirement (4 KiB pages).
    let probe = build(0)?;
    let (probe_loaded, _) = check_and_verify(&probe, &legacy, &opts)?;
    let used = probe_loaded
        .table
        .entries
        .iter()
        .find_map(|r| match r {
            crate::rproc::table::Resource::Carveout(c) => Some(u64::from(c.len)),
            _ => None,
        })
        .unwrap_or(0);
    let want = u64::from(voice.mem).div_ceil(0x1000) * 0x1000;
    let headroom = u32::try_from(want.saturating_sub(used)).unwrap_or(u32::MAX);
    let fw = build(headroom.saturating_add(opts.extra_mem))?;
    let (loaded, report) = check_and_verify(&fw, &legacy, &opts)?;
    Ok(Conversion {
        firmware: fw,
        legacy,
        loaded,
        report,
        input_sha256,
        voice: Some(voice),
        passthrough: false,
    })
}

/// Convert a legacy SP ELF (or, by sniffing, a Lantiq voice image) into remoteproc firmware.
pub fn convert(bytes: &[u8], opts: &Options) -> Result<Conversion> {
    convert_input(Cow::Borrowed(bytes), opts)
}

/// [`convert`], taking the input by value: it is freed as soon as the legacy model has read
/// it, before the firmware is built and checked. For a large input that is the largest buffer
/// of the conversion (64 MiB of a 64 MiB object's ~200 MiB peak).
pub fn convert_owned(bytes: Vec<u8>, opts: &Options) -> Result<Conversion> {
    convert_input(Cow::Owned(bytes), opts)
}

fn convert_input(input: Cow<'_, [u8]>, opts: &Options) -> Result<Conversion> {
    let bytes: &[u8] = &input;
    let format = sniff(bytes);
    if format == Format::Voice
        || (format == Format::Unknown && voice_options(opts).is_some_and(|v| v.old_format))
    {
        return convert_voice(bytes, opts);
    }
    if let Some(l) = &opts.lantiq {
        if opts.profile != Profile::Fixed {
            return Err(Error::Convert {
                message: format!(
                    "--kernel lantiq: the Lantiq loader ran images at vpe1_load_addr {:#010x} (KSEG0) and may start them at its KSEG1 alias; only the fixed profile keeps those addresses (use --profile fixed)",
                    l.vpe1_load_addr
                ),
            });
        }
        if let Some(b) = opts.base.filter(|&b| b != l.vpe1_load_addr) {
            return Err(Error::Convert {
                message: format!(
                    "--base {b:#010x} contradicts --vpe1-load-addr {:#010x}: the Lantiq loader placed relocatable images at vpe1_load_addr",
                    l.vpe1_load_addr
                ),
            });
        }
    }
    if format == Format::Firmware {
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
    let needs_base = format == Format::LegacyRel;
    let base = if let Some(l) = &opts.lantiq {
        l.vpe1_load_addr
    } else if needs_base {
        effective_base(opts)?
    } else {
        opts.base.unwrap_or(0)
    };
    let lopts = legacy::Options {
        base,
        semantics: opts.semantics,
        capacity: None,
        lantiq: opts.lantiq,
        max_mem: opts.max_mem,
    };
    // Large inputs: hash on a second thread while the legacy model runs (both only read
    // `bytes`); below 1 MiB the thread costs about what it saves.
    let (legacy, input_sha256) = if bytes.len() >= 1 << 20 {
        std::thread::scope(|s| {
            let hash = s.spawn(|| sha256_hex(bytes));
            let legacy = legacy::load(bytes, &lopts);
            // The hash cannot panic; if the thread could not run it, hash here.
            let sha = hash.join().unwrap_or_else(|_| sha256_hex(bytes));
            (legacy, sha)
        })
    } else {
        (legacy::load(bytes, &lopts), sha256_hex(bytes))
    };
    let legacy = legacy?;
    // Everything from here on works from the legacy image.
    drop(input);
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
        tool: tool(),
        extra: opts.lantiq.as_ref().map(lantiq_note).unwrap_or_default(),
    };
    let fw_opts = firmware::Options {
        profile: opts.profile,
        ntcs: opts.ntcs,
        memsize: opts.memsize,
        extra_mem: opts.extra_mem,
        trace: opts.trace,
        trampoline: opts.trampoline,
        provenance,
        cma_align: opts.cma_align,
    };
    let fw = firmware::build(&legacy, &fw_opts)?;
    // Our own output must pass the kernel's rules and the profile's geometry; a failure here
    // is a bug in the writer, reported as such rather than written out.
    let (loaded, report) = check_and_verify(&fw, &legacy, opts)?;
    Ok(Conversion {
        firmware: fw,
        legacy,
        loaded,
        report,
        input_sha256,
        voice: None,
        passthrough: false,
    })
}

/// [`convert`], except that an input that already is remoteproc firmware (it has a
/// `.resource_table`) is passed through unchanged if it passes [`check::check`] for
/// `opts.host` and `opts.profile`, as the kernel would check it at `start` (the daemon's
/// default; `vpe-migrate` refuses such inputs).
pub fn convert_or_pass_through(bytes: &[u8], opts: &Options) -> Result<Conversion> {
    if sniff(bytes) == Format::Firmware {
        passthrough(bytes, opts)
    } else {
        convert(bytes, opts)
    }
}

/// An input that already is remoteproc firmware, unchanged: it must pass the kernel's rules
/// for the target's byte order and profile, as the kernel would apply them at `start`.
fn passthrough(bytes: &[u8], opts: &Options) -> Result<Conversion> {
    let check_opts = check::Options {
        host: opts.host,
        profile: Some(opts.profile),
        ..Default::default()
    };
    let loaded = check::check(bytes, &check_opts).map_err(|e| Error::Convert {
        message: format!(
            "this is remoteproc firmware (it has a .resource_table), to be installed unchanged, and the kernel would refuse it: {e}"
        ),
    })?;
    let mut image = loaded.image.clone();
    let e_entry = image.entry;
    let entry = match &loaded.trampoline {
        Some(t) => {
            image.entry = t.target;
            verify::EntryPath::Trampoline {
                target: t.target,
                ntcs: t.ntcs,
                memsize: t.memsize,
            }
        }
        None => verify::EntryPath::Direct { e_entry },
    };
    Ok(Conversion {
        firmware: bytes.to_vec(),
        legacy: image,
        loaded,
        // Nothing was converted: the image is compared with itself.
        report: Report {
            equivalent: true,
            first_difference: None,
            entry,
            entry_ok: true,
            compared_bytes: 0,
            extra_bytes: 0,
            to_image_only: false,
        },
        input_sha256: sha256_hex(bytes),
        voice: None,
        passthrough: true,
    })
}

/// One line saying how a verification came out.
pub fn report_summary(r: &Report) -> String {
    match (&r.first_difference, r.entry_ok) {
        (None, true) => format!(
            "equivalent{} ({} legacy bytes compared, {} bytes added by the firmware)",
            if r.to_image_only {
                " to the image (an ET_EXEC at KUSEG addresses, which no legacy loader ran)"
            } else {
                ""
            },
            r.compared_bytes,
            r.extra_bytes
        ),
        (Some(d), _) => format!(
            "first difference at {:#010x}: legacy {} firmware {}",
            d.addr,
            d.legacy
                .map_or("unloaded".to_string(), |b| format!("{b:#04x}")),
            d.firmware
                .map_or("unloaded".to_string(), |b| format!("{b:#04x}"))
        ),
        (None, false) => match r.entry {
            EntryPath::Direct { e_entry } => format!(
                "entry path does not reach __start (e_entry {e_entry:#010x} is entered directly)"
            ),
            EntryPath::Trampoline {
                target,
                ntcs,
                memsize,
            } => format!(
                "entry path does not reach __start (the trampoline at e_entry jumps to {target:#010x} with $a2 = {ntcs}, $a3 = {memsize:#x})"
            ),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_path_that_misses_start_is_said_in_words() {
        let r = |entry| Report {
            equivalent: true,
            first_difference: None,
            entry,
            entry_ok: false,
            compared_bytes: 16,
            extra_bytes: 0,
            to_image_only: false,
        };
        assert_eq!(
            report_summary(&r(EntryPath::Trampoline {
                target: 0x1000_0000,
                ntcs: 1,
                memsize: 0
            })),
            "entry path does not reach __start (the trampoline at e_entry jumps to 0x10000000 with $a2 = 1, $a3 = 0x0)"
        );
        assert_eq!(
            report_summary(&r(EntryPath::Direct {
                e_entry: 0x1000_0010
            })),
            "entry path does not reach __start (e_entry 0x10000010 is entered directly)"
        );
    }
}
