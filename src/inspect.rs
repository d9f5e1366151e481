//! `inspect`: a readable dump of a legacy input (what `/dev/vpe1` would have done with it) or
//! of a firmware (headers, segments, sections, decoded resource table, trampoline, note).
//!
//! The text form is what the snapshot tests record: hex addresses, decoded tables and a
//! sha256 of the bytes, never raw byte arrays. The JSON form carries the same facts.

use std::fmt::Write as _;

use serde::Serialize;

use crate::convert::{self, sha256_hex, Format};
use crate::elf::read::{Ehdr, Reader};
use crate::elf::*;
use crate::error::{Error, Result};
use crate::image::{Image, RelocSemantics};
use crate::rproc::check::{self, Loaded};
use crate::rproc::table::Resource;
use crate::voice::{self, CrcCheck, Voice, VoiceFormat};

/// Options for inspecting a legacy input.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Base an ET_REL is placed at.
    pub base: u32,
    pub semantics: RelocSemantics,
    /// Read a non-ELF input as an old-format Lantiq voice image (no magic).
    pub lantiq_voice: bool,
    /// Byte order of a voice image's footer; `None` = detect by the magic (big if neither).
    pub voice_endian: Option<Endian>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            base: convert::DEFAULT_BASE,
            semantics: RelocSemantics::Strict,
            lantiq_voice: false,
            voice_endian: None,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct Header {
    pub class: u8,
    pub endian: Endian,
    pub e_type: u16,
    pub e_machine: u16,
    pub e_flags: u32,
    pub e_flags_decoded: String,
    pub e_entry: u32,
    pub e_phnum: u16,
    pub e_shnum: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct ProgramHeader {
    pub p_type: String,
    pub offset: u32,
    pub vaddr: u32,
    pub paddr: u32,
    pub filesz: u32,
    pub memsz: u32,
    pub flags: String,
    pub align: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct SectionHeader {
    pub index: usize,
    pub name: String,
    pub sh_type: String,
    pub addr: u32,
    pub offset: u32,
    pub size: u32,
    pub flags: String,
    pub align: u32,
}

/// Everything `inspect` knows about a file.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "format", rename_all = "snake_case")]
pub enum Inspection {
    Legacy {
        sha256: String,
        size: usize,
        header: Header,
        /// What the legacy loader would do, or its error message (JSON: the image itself, or
        /// `{"error": "..."}`; a symbol's `section` is the ELF section index).
        #[serde(serialize_with = "ser_load")]
        load: std::result::Result<Image, String>,
        /// sha256 of the memory image bytes (every segment, zero-filled to its size).
        image_sha256: Option<String>,
    },
    Firmware {
        sha256: String,
        size: usize,
        header: Header,
        program_headers: Vec<ProgramHeader>,
        sections: Vec<SectionHeader>,
        /// What the kernel would load, or its message (JSON as `load` above).
        #[serde(serialize_with = "ser_check")]
        check: std::result::Result<Box<Loaded>, String>,
    },
    /// A Lantiq VMMC voice firmware image (raw code + 28-byte footer).
    Voice {
        sha256: String,
        size: usize,
        /// The footer as the voice driver reads it.
        voice: Box<Voice>,
        /// sha256 of the bytes the driver copies to the base.
        copied_sha256: String,
    },
}

/// The image with each symbol's `section` turned from an index into `Image::sections` into
/// the ELF section header index (what a reader of the JSON can look up).
fn with_elf_section_indices(img: &Image) -> Image {
    let mut img = img.clone();
    let elf_index: Vec<usize> = img.sections.iter().map(|s| s.index).collect();
    for s in &mut img.symbols {
        s.section = s.section.and_then(|k| elf_index.get(k).copied());
    }
    img
}

#[derive(Serialize)]
struct JsonError<'a> {
    error: &'a str,
}

fn ser_load<S: serde::Serializer>(
    r: &std::result::Result<Image, String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match r {
        Ok(img) => with_elf_section_indices(img).serialize(s),
        Err(e) => JsonError { error: e }.serialize(s),
    }
}

fn ser_check<S: serde::Serializer>(
    r: &std::result::Result<Box<Loaded>, String>,
    s: S,
) -> std::result::Result<S::Ok, S::Error> {
    match r {
        Ok(l) => {
            let mut l = (**l).clone();
            l.image = with_elf_section_indices(&l.image);
            l.serialize(s)
        }
        Err(e) => JsonError { error: e }.serialize(s),
    }
}

/// Inspect any file `vpe-migrate` understands.
pub fn inspect(bytes: &[u8], opts: &Options) -> Result<Inspection> {
    let format = convert::sniff(bytes);
    if format == Format::Voice || (format == Format::Unknown && opts.lantiq_voice) {
        let voice = voice::parse_voice(bytes, opts.voice_endian, opts.lantiq_voice)?;
        let copied = bytes.get(..voice.copy_len as usize).unwrap_or(bytes);
        return Ok(Inspection::Voice {
            sha256: sha256_hex(bytes),
            size: bytes.len(),
            copied_sha256: sha256_hex(copied),
            voice: Box::new(voice),
        });
    }
    if format == Format::Unknown {
        // Say exactly what the legacy loader would have said.
        return Err(convert::load_legacy(bytes, opts.base, opts.semantics)
            .err()
            .unwrap_or_else(|| Error::NotElf {
                detail: "unrecognized input".into(),
            }));
    }
    let h = Ehdr::parse(bytes)?;
    let header = Header {
        class: h.class,
        endian: h.endian,
        e_type: h.e_type,
        e_machine: h.e_machine,
        e_flags: h.e_flags,
        e_flags_decoded: decode_e_flags(h.e_flags),
        e_entry: h.e_entry,
        e_phnum: h.e_phnum,
        e_shnum: h.e_shnum,
    };
    let sha256 = sha256_hex(bytes);
    if format == Format::Firmware {
        let check = check::check(bytes, &check::Options::default())
            .map(Box::new)
            .map_err(|e| e.to_string());
        return Ok(Inspection::Firmware {
            sha256,
            size: bytes.len(),
            header,
            program_headers: program_headers(bytes, &h),
            sections: section_headers(bytes, &h),
            check,
        });
    }
    let load = match convert::load_legacy(bytes, opts.base, opts.semantics) {
        // The legacy loader accepts it; only the MIPS ELF ABI reads some sites differently.
        Err(e @ Error::SemanticsDiffer { .. }) if opts.semantics == RelocSemantics::Strict => {
            convert::load_legacy(bytes, opts.base, RelocSemantics::Legacy).map(|mut img| {
                img.warnings.push(crate::image::Warning::new(format!(
                    "the legacy loader accepts it (loaded above as --relocs legacy would); the MIPS ELF ABI differs: {e}"
                )));
                img
            })
        }
        r => r,
    }
    .map_err(|e| e.to_string());
    let image_sha256 = load.as_ref().ok().map(image_sha256);
    Ok(Inspection::Legacy {
        sha256,
        size: bytes.len(),
        header,
        load,
        image_sha256,
    })
}

/// sha256 over the loaded bytes of every segment in address order, each zero-filled to its
/// memory size, with each segment's address and size mixed in.
///
/// Streamed (never a buffer of the image's size) and refused above [`MAX_HASHED`] bytes of
/// memory: a 3 KB file with a 2 GiB `.bss` must not cost gigabytes or minutes to inspect.
pub fn image_sha256(img: &Image) -> String {
    use sha2::{Digest, Sha256};
    let total: u64 = img.segments.iter().map(|s| u64::from(s.mem_size)).sum();
    if total > MAX_HASHED {
        return format!("not computed ({total:#x} bytes of memory, more than {MAX_HASHED:#x})");
    }
    let mut h = Sha256::new();
    let zeros = [0u8; 4096];
    for s in &img.segments {
        h.update(s.addr.to_be_bytes());
        h.update(s.mem_size.to_be_bytes());
        h.update(&s.data);
        let mut fill = u64::from(s.mem_size).saturating_sub(s.data.len() as u64);
        while fill > 0 {
            let n = fill.min(zeros.len() as u64);
            h.update(&zeros[..n as usize]);
            fill -= n;
        }
    }
    h.finalize().iter().map(|b| format!("{b:02x}")).collect()
}

/// Largest memory image [`image_sha256`] hashes (32 times the legacy `P_SIZE_TOM` buffer).
pub const MAX_HASHED: u64 = 64 << 20;

fn program_headers(bytes: &[u8], h: &Ehdr) -> Vec<ProgramHeader> {
    let r = Reader::new(bytes, h.endian);
    (0..usize::from(h.e_phnum))
        .map_while(|i| r.phdr(h.e_phoff, i).ok())
        .map(|p| ProgramHeader {
            p_type: p_type_name(p.p_type),
            offset: p.p_offset,
            vaddr: p.p_vaddr,
            paddr: p.p_paddr,
            filesz: p.p_filesz,
            memsz: p.p_memsz,
            flags: format!(
                "{}{}{}",
                if p.p_flags & PF_R != 0 { 'R' } else { '-' },
                if p.p_flags & PF_W != 0 { 'W' } else { '-' },
                if p.p_flags & PF_X != 0 { 'X' } else { '-' }
            ),
            align: p.p_align,
        })
        .collect()
}

fn section_headers(bytes: &[u8], h: &Ehdr) -> Vec<SectionHeader> {
    let r = Reader::new(bytes, h.endian);
    let names = convert::section_names(bytes);
    (0..usize::from(h.e_shnum))
        .map_while(|i| r.shdr(h.e_shoff, i).ok().map(|s| (i, s)))
        .skip(1)
        .map(|(i, s)| SectionHeader {
            index: i,
            name: names.get(i).cloned().unwrap_or_default(),
            sh_type: sh_type_name(s.sh_type),
            addr: s.sh_addr,
            offset: s.sh_offset,
            size: s.sh_size,
            flags: format!(
                "{}{}{}",
                if s.sh_flags & SHF_WRITE != 0 { "W" } else { "" },
                if s.sh_flags & SHF_ALLOC != 0 { "A" } else { "" },
                if s.sh_flags & SHF_EXECINSTR != 0 {
                    "X"
                } else {
                    ""
                }
            ),
            align: s.sh_addralign,
        })
        .collect()
}

/// Program header types by their readelf names (generic, GNU and MIPS ones); others in hex.
fn p_type_name(t: u32) -> String {
    let n = match t {
        PT_NULL => "NULL",
        PT_LOAD => "LOAD",
        2 => "DYNAMIC",
        3 => "INTERP",
        PT_NOTE => "NOTE",
        5 => "SHLIB",
        6 => "PHDR",
        7 => "TLS",
        0x6474_e550 => "GNU_EH_FRAME",
        0x6474_e551 => "GNU_STACK",
        0x6474_e552 => "GNU_RELRO",
        0x6474_e553 => "GNU_PROPERTY",
        PT_MIPS_REGINFO => "MIPS_REGINFO",
        0x7000_0001 => "MIPS_RTPROC",
        0x7000_0002 => "MIPS_OPTIONS",
        PT_MIPS_ABIFLAGS => "MIPS_ABIFLAGS",
        t => return format!("{t:#010x}"),
    };
    n.into()
}

/// Section types by their readelf names (generic, GNU, LLVM and MIPS ones); others in hex.
fn sh_type_name(t: u32) -> String {
    let n = match t {
        SHT_NULL => "NULL",
        SHT_PROGBITS => "PROGBITS",
        SHT_SYMTAB => "SYMTAB",
        SHT_STRTAB => "STRTAB",
        SHT_RELA => "RELA",
        5 => "HASH",
        6 => "DYNAMIC",
        SHT_NOTE => "NOTE",
        SHT_NOBITS => "NOBITS",
        SHT_REL => "REL",
        10 => "SHLIB",
        11 => "DYNSYM",
        14 => "INIT_ARRAY",
        15 => "FINI_ARRAY",
        16 => "PREINIT_ARRAY",
        17 => "GROUP",
        18 => "SYMTAB_SHNDX",
        0x6fff_4c03 => "LLVM_ADDRSIG",
        0x6fff_fff5 => "GNU_ATTRIBUTES",
        0x6fff_fff6 => "GNU_HASH",
        0x6fff_fffd => "GNU_verdef",
        0x6fff_fffe => "GNU_verneed",
        0x6fff_ffff => "GNU_versym",
        SHT_MIPS_REGINFO => "MIPS_REGINFO",
        0x7000_000d => "MIPS_OPTIONS",
        0x7000_001e => "MIPS_DWARF",
        SHT_MIPS_ABIFLAGS => "MIPS_ABIFLAGS",
        t => return format!("{t:#010x}"),
    };
    n.into()
}

/// `e_flags` in words: ABI, architecture, PIC/abicalls, noreorder.
pub fn decode_e_flags(f: u32) -> String {
    let mut parts = Vec::new();
    parts.push(match f & EF_MIPS_ABI {
        0 => "no ABI field".to_string(),
        EF_MIPS_ABI_O32 => "o32".to_string(),
        a => format!("ABI {a:#x}"),
    });
    let arch = match (f & EF_MIPS_ARCH) >> 28 {
        0 => "mips1",
        1 => "mips2",
        2 => "mips3",
        3 => "mips4",
        4 => "mips5",
        5 => "mips32",
        6 => "mips64",
        7 => "mips32r2",
        8 => "mips64r2",
        9 => "mips32r6",
        10 => "mips64r6",
        _ => "unknown arch",
    };
    parts.push(arch.to_string());
    for (bit, name) in [
        (EF_MIPS_NOREORDER, "noreorder"),
        (EF_MIPS_PIC, "pic"),
        (EF_MIPS_CPIC, "cpic"),
        (EF_MIPS_ABI2, "abi2"),
        (EF_MIPS_FP64, "fp64"),
        (EF_MIPS_NAN2008, "nan2008"),
    ] {
        if f & bit != 0 {
            parts.push(name.to_string());
        }
    }
    parts.join(", ")
}

fn sym_kind(info: u8) -> &'static str {
    match info & 0xf {
        STT_NOTYPE => "NOTYPE",
        STT_OBJECT => "OBJECT",
        STT_FUNC => "FUNC",
        STT_SECTION => "SECTION",
        STT_FILE => "FILE",
        _ => "OTHER",
    }
}

fn sym_bind(info: u8) -> &'static str {
    match info >> 4 {
        STB_LOCAL => "LOCAL",
        STB_GLOBAL => "GLOBAL",
        STB_WEAK => "WEAK",
        _ => "OTHER",
    }
}

fn opt_addr(a: Option<u32>) -> String {
    a.map_or_else(|| "none".to_string(), |a| format!("{a:#010x}"))
}

fn render_header(out: &mut String, header: &Header) {
    let kind = match header.e_type {
        ET_REL => "ET_REL (relocatable)".to_string(),
        ET_EXEC => "ET_EXEC (executable)".to_string(),
        t => format!("e_type {t}"),
    };
    let _ = writeln!(
        out,
        "ELF{} {}-endian {}, e_machine {}, e_flags {:#010x} ({})",
        if header.class == ELFCLASS64 { 64 } else { 32 },
        header.endian.name(),
        kind,
        header.e_machine,
        header.e_flags,
        header.e_flags_decoded
    );
    let _ = writeln!(
        out,
        "e_entry {:#010x}, {} program headers, {} section headers",
        header.e_entry, header.e_phnum, header.e_shnum
    );
}

fn render_image(out: &mut String, img: &Image, with_symbols: bool) {
    let _ = writeln!(out, "segments:");
    for s in &img.segments {
        let _ = writeln!(
            out,
            "  {:#010x}..{:#010x} file {:#x} mem {:#x}",
            s.addr,
            s.end(),
            s.data.len(),
            s.mem_size
        );
    }
    if !img.sections.is_empty() {
        let _ = writeln!(out, "sections:");
        let _ = writeln!(
            out,
            "  {:<4} {:<20} {:>10} {:>10} {:>10} {:>6} {:<5} type",
            "idx", "name", "offset", "addr", "size", "align", "flags"
        );
        for s in &img.sections {
            let _ = writeln!(
                out,
                "  [{:>2}] {:<20} {:#010x} {:#010x} {:#010x} {:>6} {:<5} {}",
                s.index,
                s.name,
                s.offset,
                s.addr,
                s.size,
                s.align,
                format!(
                    "{}{}{}",
                    if s.flags & SHF_WRITE != 0 { "W" } else { "" },
                    if s.flags & SHF_ALLOC != 0 { "A" } else { "" },
                    if s.flags & SHF_EXECINSTR != 0 {
                        "X"
                    } else {
                        ""
                    }
                ),
                sh_type_name(s.sh_type)
            );
        }
    }
    let _ = writeln!(out, "entry: {:#010x}", img.entry);
    let _ = writeln!(out, "vpe_shared: {}", opt_addr(img.shared));
    let _ = writeln!(out, "_gp: {}", opt_addr(img.gp));
    if with_symbols && !img.symbols.is_empty() {
        let _ = writeln!(out, "symbols:");
        for s in &img.symbols {
            let _ = writeln!(
                out,
                "  {:#010x} {:>6} {:<7} {:<6} {}",
                s.value,
                format!("{:#x}", s.size),
                sym_kind(s.info),
                sym_bind(s.info),
                s.name
            );
        }
    }
}

/// The text form.
pub fn render_text(ins: &Inspection) -> String {
    let mut out = String::new();
    match ins {
        Inspection::Legacy {
            sha256,
            size,
            header,
            load,
            image_sha256,
        } => {
            let _ = writeln!(out, "legacy VPE program: {size} bytes, sha256 {sha256}");
            render_header(&mut out, header);
            match load {
                Ok(img) => {
                    let _ = writeln!(
                        out,
                        "what /dev/vpe1 (arch/mips/kernel/vpe.c) would load, base {:#010x}:",
                        img.base
                    );
                    render_image(&mut out, img, true);
                    if let Some(h) = image_sha256 {
                        let _ = writeln!(out, "memory image sha256: {h}");
                    }
                    render_warnings(&mut out, img.warnings.iter().map(|w| w.message.as_str()));
                }
                Err(e) => {
                    let _ = writeln!(out, "the legacy loader rejects it:\n  {e}");
                }
            }
        }
        Inspection::Firmware {
            sha256,
            size,
            header,
            program_headers,
            sections,
            check,
        } => {
            let _ = writeln!(out, "remoteproc firmware: {size} bytes, sha256 {sha256}");
            render_header(&mut out, header);
            let _ = writeln!(out, "program headers:");
            for p in program_headers {
                let _ = writeln!(
                    out,
                    "  {:<13} off {:#08x} vaddr {:#010x} paddr {:#010x} filesz {:#08x} memsz {:#08x} {} align {:#x}",
                    p.p_type, p.offset, p.vaddr, p.paddr, p.filesz, p.memsz, p.flags, p.align
                );
            }
            let _ = writeln!(out, "section headers:");
            for s in sections {
                let _ = writeln!(
                    out,
                    "  [{:>2}] {:<20} {:<13} addr {:#010x} off {:#08x} size {:#08x} {:<3} align {}",
                    s.index, s.name, s.sh_type, s.addr, s.offset, s.size, s.flags, s.align
                );
            }
            match check {
                Ok(l) => render_loaded(&mut out, l),
                Err(e) => {
                    let _ = writeln!(out, "the kernel's rules reject it:\n  {e}");
                }
            }
        }
        Inspection::Voice {
            sha256,
            size,
            voice,
            copied_sha256,
        } => render_voice(&mut out, *size, sha256, voice, copied_sha256),
    }
    out
}

fn render_voice(out: &mut String, size: usize, sha256: &str, v: &Voice, copied_sha256: &str) {
    let f = &v.footer;
    let _ = writeln!(
        out,
        "Lantiq voice firmware image ({} format, {}-endian footer): {size} bytes, sha256 {sha256}",
        match v.format {
            VoiceFormat::New => "new",
            VoiceFormat::Old => "old",
        },
        v.endian.name()
    );
    let _ = writeln!(out, "footer at {:#x}:", v.footer_offset);
    if v.format == VoiceFormat::Old {
        let _ = writeln!(
            out,
            "  (old format: the driver uses only the last word, mem; the 24 bytes before it are image data)"
        );
    } else {
        let _ = writeln!(out, "  crc32       {:#010x}", f.crc32);
        let _ = writeln!(out, "  st_addr_crc {:#010x}", f.st_addr_crc);
        let _ = writeln!(out, "  en_addr_crc {:#010x}", f.en_addr_crc);
        let _ = writeln!(
            out,
            "  fw_vers     {:#010x} (platform nibble {}: {})",
            f.fw_vers,
            f.platform_nibble(),
            v.platform.map_or("unknown", voice::Platform::name)
        );
        let _ = writeln!(
            out,
            "  enc         {:#010x} (encrypted {}, mailbox layout {})",
            f.enc,
            if v.encrypted { "yes" } else { "no" },
            if v.mbox_layout2 { 2 } else { 1 }
        );
        let _ = writeln!(out, "  magic       {:#010x} (new format)", f.magic);
    }
    let _ = writeln!(
        out,
        "  mem         {:#010x} (check byte {:#04x}, expected {:#04x}: {})",
        f.mem,
        f.mem >> 24,
        voice::mem_check_byte(f.mem),
        if v.mem_valid {
            format!("requirement {:#x} bytes", v.mem)
        } else {
            "invalid, the driver assumes 1 MiB".to_string()
        }
    );
    let _ = writeln!(out, "what the voice driver (drv_mps_vmmc) does with it:");
    let _ = writeln!(
        out,
        "  copies {:#x} bytes to KSEG1(vpe1_load_addr) (sha256 {copied_sha256})",
        v.copy_len
    );
    let _ = writeln!(
        out,
        "  encrypted: {}",
        if v.encrypted {
            format!(
                "yes: the on-chip ROM decrypts {:#x} bytes in place before the start",
                voice::decrypt_len(v)
            )
        } else {
            "no".to_string()
        }
    );
    let _ = writeln!(
        out,
        "  CRC coverage [0x0, 0x8) + [{:#x}, {:#x}) (ifx_mps_fw_crc32: reset vector, then the range)",
        v.crc_start, v.crc_end
    );
    let crc = match &v.crc {
        CrcCheck::Match { variant, value } => format!(
            "{value:#010x} matches the footer as {} (one of {} readings of ifx_mps_calc_crc32, whose body is not public)",
            variant.name(),
            voice::CrcVariant::ALL.len()
        ),
        CrcCheck::Mismatch { stored, computed } => {
            let all: Vec<String> = computed
                .iter()
                .map(|c| format!("{} {:#010x}", c.variant.name(), c.value))
                .collect();
            format!(
                "MISMATCH: the footer says {stored:#010x}, no reading matches ({})",
                all.join(", ")
            )
        }
        CrcCheck::NotComputed { reason } => format!("not computed: {reason}"),
    };
    let _ = writeln!(out, "  checksum: {crc}");
    let _ = writeln!(
        out,
        "  starts it with vpe1_sw_start(KSEG1(base), 0, 0): entry = the first byte, uncached"
    );
    render_warnings(out, voice_warnings(v).iter().map(String::as_str));
}

/// The parser's warnings plus what the rendering above says a conversion would warn about or
/// refuse (so "warnings: none" never sits under such a line).
fn voice_warnings(v: &Voice) -> Vec<String> {
    let mut w = v.warnings.clone();
    if let CrcCheck::NotComputed { reason } = &v.crc {
        if reason.contains("outside") {
            w.push(format!(
                "the converter refuses this image: {reason} (the driver would checksum memory past the image)"
            ));
        }
    }
    if v.encrypted {
        w.push(format!(
            "the payload is encrypted: a platform driver must run the on-chip ROM decrypt routine over {:#x} bytes before starting it (docs/CONVERSION.md §7)",
            voice::decrypt_len(v)
        ));
    }
    w
}

fn render_warnings<'a>(out: &mut String, ws: impl Iterator<Item = &'a str>) {
    let ws: Vec<&str> = ws.collect();
    if ws.is_empty() {
        let _ = writeln!(out, "warnings: none");
    } else {
        let _ = writeln!(out, "warnings:");
        for w in ws {
            for line in w.lines() {
                let _ = writeln!(out, "  {line}");
            }
        }
    }
}

fn render_loaded(out: &mut String, l: &Loaded) {
    let _ = writeln!(
        out,
        "resource table at {:#010x}: ver {}, {} entries",
        l.table_addr,
        l.table.ver,
        l.table.entries.len()
    );
    for (i, r) in l.table.entries.iter().enumerate() {
        let _ = writeln!(out, "  [{i}] {}", describe_resource(r));
    }
    match &l.trampoline {
        Some(t) => {
            let _ = writeln!(
                out,
                "trampoline at {:#010x}: saves $a0-$a3 at {:#010x} (vpe_boot_args), $a2 = {:#x} (ntcs), $a3 = {:#x} (memsize), jumps to {:#010x}",
                l.image.entry, t.boot_args, t.ntcs, t.memsize, t.target
            );
        }
        None => {
            let _ = writeln!(
                out,
                "trampoline: none (e_entry {:#010x} is entered directly)",
                l.image.entry
            );
        }
    }
    match &l.provenance {
        Some(p) => {
            let _ = writeln!(out, "provenance note:");
            let _ = writeln!(out, "  input {} {}", p.input_kind, p.input_sha256);
            let _ = writeln!(
                out,
                "  base {:#010x}, profile {}, relocs {}, ntcs {}, memsize {:#x}, trampoline {}, {}",
                p.base, p.profile, p.relocs, p.ntcs, p.memsize, p.trampoline, p.tool
            );
            for (k, v) in &p.extra {
                let _ = writeln!(out, "  {k} = {v}");
            }
        }
        None => {
            let _ = writeln!(out, "provenance note: none");
        }
    }
    let _ = writeln!(out, "what remoteproc loads:");
    render_image(out, &l.image, false);
    let _ = writeln!(out, "loaded image sha256: {}", image_sha256(&l.image));
    render_warnings(out, l.warnings.iter().map(String::as_str));
}

/// One line per resource entry.
pub fn describe_resource(r: &Resource) -> String {
    match r {
        Resource::Carveout(c) => format!(
            "CARVEOUT da {:#010x} pa {:#010x} len {:#x} flags {:#x} name \"{}\"",
            c.da, c.pa, c.len, c.flags, c.name
        ),
        Resource::Devmem(c) => format!(
            "DEVMEM da {:#010x} pa {:#010x} len {:#x} flags {:#x} name \"{}\"",
            c.da, c.pa, c.len, c.flags, c.name
        ),
        Resource::Trace { da, len, name, .. } => {
            format!("TRACE da {da:#010x} len {len:#x} name \"{name}\"")
        }
        Resource::Vdev {
            id,
            notifyid,
            num_of_vrings,
            vrings,
            config_len,
            ..
        } => {
            let mut s = format!(
                "VDEV id {id} notifyid {notifyid} vrings {num_of_vrings} config_len {config_len}"
            );
            for (i, v) in vrings.iter().enumerate() {
                let _ = write!(
                    s,
                    "; vring{i} da {:#010x} align {:#x} num {} notifyid {}",
                    v.da, v.align, v.num, v.notifyid
                );
            }
            s
        }
        Resource::Other { rtype, body } => format!("type {rtype} ({} bytes)", body.len()),
    }
}

/// The JSON form.
pub fn render_json(ins: &Inspection) -> String {
    serde_json::to_string_pretty(ins).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_types_are_named() {
        assert_eq!(p_type_name(0x6474_e551), "GNU_STACK");
        assert_eq!(p_type_name(0x7000_0003), "MIPS_ABIFLAGS");
        assert_eq!(p_type_name(6), "PHDR");
        assert_eq!(p_type_name(0x6abc_0000), "0x6abc0000");
        assert_eq!(sh_type_name(0x7000_001e), "MIPS_DWARF");
        assert_eq!(sh_type_name(0x6fff_fff5), "GNU_ATTRIBUTES");
        assert_eq!(sh_type_name(14), "INIT_ARRAY");
        assert_eq!(sh_type_name(0x7fff_0000), "0x7fff0000");
    }
}
