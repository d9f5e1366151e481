//! Model of `vpe_elfload` (arch/mips/kernel/vpe.c): what the legacy `/dev/vpe1` loader put
//! into memory for an ELF written to it, and where it started the program.
//!
//! Order of work, as in the kernel: header checks ([`load_with_state`]), section header table
//! length check, then for ET_REL the per-section length check, `layout_sections`
//! ([`layout`]), copy, `simplify_symbols` ([`symbols`]), relocations ([`reloc`]) and
//! `find_vpe_symbols`; for ET_EXEC the PT_LOAD copy and the magic symbols.
//!
//! Deliberate deviations (all make the model *stricter*, never more lenient):
//! * Everything the kernel did not validate and would have crashed on or read out of bounds
//!   with (`e_shstrndx`, `sh_link`, symbol indices, `st_shndx`, string offsets, relocation
//!   offsets, offset + size overflow, program headers) is an [`Error::Malformed`].
//! * The kernel compared offsets against the *buffer capacity* (`plen`, 256 KiB), so a file cut
//!   short by its writer was loaded from stale buffer bytes. We apply the kernel's check
//!   against `Options::capacity` and then the same check against the real length, reporting
//!   both with the legacy message.
//! * Relocation types without a handler (the kernel called a NULL pointer) are a clean
//!   [`Error::Relocation`] with type name `UNKNOWN`.
//! * Relocations patching a NOBITS section are refused (no compiler emits them).
//! * An HI16 left pending by a previous load and consumed now patched the previous program's
//!   freed memory; the model does not patch anything for it and warns.

mod hazards;
pub mod lantiq;
mod layout;
mod reloc;
mod symbols;

pub use hazards::HAZARD;

use crate::elf::read::{Ehdr, Reader, Shdr};
use crate::elf::{
    EF_MIPS_ABI, EF_MIPS_ABI2, EF_MIPS_ABI_O32, EF_MIPS_CPIC, EF_MIPS_FP64, EF_MIPS_PIC,
    ELFCLASS32, ELFMAG, EM_MIPS, ET_EXEC, ET_REL, PHDR32_SIZE, PT_LOAD, SHDR32_SIZE, SHF_ALLOC,
    SHT_MIPS_ABIFLAGS, SHT_MIPS_REGINFO, SHT_NOBITS,
};
use crate::error::{Error, Result};
use crate::image::{Image, InputKind, PlacedSection, RelocSemantics, Segment, Warning};

/// `P_SIZE` of vpe.c: the `/dev/vpe1` buffer (without `CONFIG_MIPS_VPE_LOADER_TOM`).
pub const P_SIZE: u32 = 262_144;
/// `P_SIZE` with `CONFIG_MIPS_VPE_LOADER_TOM`.
pub const P_SIZE_TOM: u32 = 2_097_152;

/// vpe.c `vpe_write()` text when the buffer would overflow.
pub const MSG_TOO_BIG: &str = "VPE loader: elf size too big. Perhaps strip unneeded symbols";
/// vpe.c `vpe_elfload()` warning when `vpe_shared` is missing (two lines, verbatim).
pub const MSG_NO_SHARED: &str =
    "VPE loader: program does not contain vpe_shared symbol.\n Unable to use AMVP (AP/SP) facilities.";

/// Largest span of file-backed bytes an ET_REL image may have (kzalloc could never give
/// more; legitimate inputs are below [`P_SIZE_TOM`]).
const MAX_DATA: u32 = 0x0400_0000;

/// How to load.
#[derive(Debug, Clone)]
pub struct Options {
    /// Where an ET_REL image is placed (the kernel's `load_addr`); ignored for ET_EXEC.
    pub base: u32,
    /// Which relocation arithmetic to apply; `Strict` refuses when the two disagree.
    pub semantics: RelocSemantics,
    /// The buffer capacity (`plen`, [`P_SIZE`] on a stock kernel) the kernel's length checks
    /// used; `None` = file length. The kernel compared offsets with the capacity, not with
    /// the bytes written, and read stale buffer contents past them; this model applies the
    /// kernel's check and then the same check against the real length, so whatever the
    /// capacity, anything past the actual bytes is an error (with the legacy message).
    pub capacity: Option<u32>,
    /// The Lantiq IFX_VPE_EXT patch (spec §3.3, §3.6): `vpe1_mem` is the write limit and a
    /// missing `__start`/`vpe_shared` starts the program at `KSEG1(vpe1_load_addr)`. The
    /// caller places an ET_REL at `vpe1_load_addr` through `base`.
    pub lantiq: Option<lantiq::LantiqLoader>,
    /// Most bytes of memory the image may load (ET_REL: the layout's size, `.bss` included;
    /// ET_EXEC: the sum of the `p_memsz`); `None` = the Lantiq `vpe1_mem` with `lantiq`, else
    /// [`DEFAULT_MAX_MEM`]. Checked before any memory is allocated for the image, so a tiny
    /// file declaring a huge `.bss` costs nothing.
    pub max_mem: Option<u32>,
}

/// Default loaded-memory limit: the boards have 64–256 MiB of RAM; the legacy loader's own
/// buffers (`P_SIZE`, 2 MiB with TOM) were far smaller.
pub const DEFAULT_MAX_MEM: u32 = 16 << 20;

impl Default for Options {
    fn default() -> Self {
        Options {
            base: 0x1000_0000,
            semantics: RelocSemantics::Strict,
            capacity: None,
            lantiq: None,
            max_mem: None,
        }
    }
}

impl Options {
    /// The loaded-memory limit in force (see [`Options::max_mem`]).
    pub fn mem_limit(&self) -> u32 {
        self.max_mem
            .or(self.lantiq.map(|l| l.vpe1_mem))
            .unwrap_or(DEFAULT_MAX_MEM)
    }
}

/// An `R_MIPS_HI16` waiting for its `R_MIPS_LO16` (vpe.c `struct mips_hi16`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingHi16 {
    /// Address of the instruction to patch.
    pub location: u32,
    /// Symbol value it was pushed with (the LO16 must have the same).
    pub value: u32,
    /// Which load pushed it (to tell entries of earlier loads apart).
    generation: u64,
}

/// vpe.c's file-static state that survives from one load to the next: `gp_addr`, `gp_offs`
/// and `mips_hi16_list`. It always follows the legacy kernel (whatever the semantics chosen),
/// including after a load that failed in relocation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct State {
    pub gp_addr: u32,
    pub gp_offs: u32,
    /// Pending HI16s, oldest first (the kernel's list head is the last element).
    hi16: Vec<PendingHi16>,
    /// Number of ET_REL loads that reached symbol simplification.
    generation: u64,
}

impl State {
    pub fn new() -> Self {
        State::default()
    }
    /// HI16 relocations still waiting for a LO16, oldest first.
    pub fn pending_hi16(&self) -> &[PendingHi16] {
        &self.hi16
    }
}

/// Load with a fresh [`State`] (as right after boot).
pub fn load(bytes: &[u8], opts: &Options) -> Result<Image> {
    load_with_state(bytes, opts, &mut State::new())
}

/// Load `bytes` as `vpe_elfload` would, with `st` carrying the file-static state of earlier
/// loads.
pub fn load_with_state(bytes: &[u8], opts: &Options, st: &mut State) -> Result<Image> {
    let eh = check_header(bytes)?;
    let len = opts.capacity.map_or(bytes.len() as u64, u64::from);
    let mut warnings = Vec::new();
    let limit_writes = opts
        .capacity
        .or(opts.lantiq.map(|l| l.vpe1_mem))
        .unwrap_or(P_SIZE);
    if bytes.len() as u64 > u64::from(limit_writes) {
        warnings.push(Warning::new(format!(
            "{MSG_TOO_BIG} (the file is {} bytes; /dev/vpe1 accepted at most {limit_writes})",
            bytes.len()
        )));
    }
    if eh.e_flags & (EF_MIPS_PIC | EF_MIPS_CPIC) != 0 {
        warnings.push(Warning::new(format!(
            "e_flags {:#010x}: PIC/abicalls object (EF_MIPS_PIC/EF_MIPS_CPIC); the VPE loader has no GOT support: build with -mno-abicalls -fno-pic",
            eh.e_flags
        )));
    }

    // "if (len < hdr->e_shoff + hdr->e_shnum * sizeof(Elf_Shdr))" (u32 arithmetic there).
    let table_end = u64::from(eh.e_shoff) + u64::from(eh.e_shnum) * SHDR32_SIZE as u64;
    if table_end > u64::from(u32::MAX) {
        return Err(Error::Malformed {
            what: format!(
                "section header table e_shoff {:#x} + {} x 40 overflows 32 bits",
                eh.e_shoff, eh.e_shnum
            ),
            at: 32,
        });
    }
    for l in [len, bytes.len() as u64] {
        if l < table_end {
            return Err(Error::HeadersTruncated {
                len: l,
                shoff: eh.e_shoff,
                shnum: eh.e_shnum,
            });
        }
    }
    let r = Reader::new(bytes, eh.endian);
    let shdrs = (0..usize::from(eh.e_shnum))
        .map(|i| r.shdr(eh.e_shoff, i))
        .collect::<Result<Vec<_>>>()?;
    let e_type = eh.e_type;
    let mut inp = Input {
        bytes,
        r,
        eh,
        shdrs,
        names: Vec::new(),
        limit: len.min(bytes.len() as u64),
    };

    if e_type == ET_REL {
        // Per-section length check (ET_REL only, i >= 1, not NOBITS).
        for i in 1..inp.shdrs.len() {
            let s = inp.shdrs[i];
            if s.sh_type == SHT_NOBITS {
                continue;
            }
            let end = u64::from(s.sh_offset) + u64::from(s.sh_size);
            if end > u64::from(u32::MAX) {
                return Err(Error::Malformed {
                    what: format!(
                        "section [{i}]: sh_offset {:#x} + sh_size {:#x} overflows 32 bits",
                        s.sh_offset, s.sh_size
                    ),
                    at: inp.shdr_offset(i) + 16,
                });
            }
            for l in [len, bytes.len() as u64] {
                if l < end {
                    return Err(Error::SectionTruncated {
                        len: l,
                        index: i,
                        name: inp.lenient_name(i),
                        offset: s.sh_offset,
                        size: s.sh_size,
                    });
                }
            }
        }
    }
    inp.names = inp.read_names(opts.semantics, &mut warnings)?;
    match e_type {
        ET_REL => load_rel(&inp, opts, st, warnings),
        _ => load_exec(&inp, opts, warnings),
    }
}

/// Magic, `e_type`, `elf_check_arch` (arch/mips/include/asm/elf.h, 32-bit kernel) and
/// `e_shentsize`, in the kernel's order; the detail says which field failed.
fn check_header(bytes: &[u8]) -> Result<Ehdr> {
    if bytes.len() < 4 || bytes[..4] != ELFMAG[..] {
        let head: Vec<String> = bytes.iter().take(4).map(|b| format!("{b:02x}")).collect();
        return Err(Error::NotElf {
            detail: format!(
                "the {}-byte file starts with [{}], not 7f 45 4c 46",
                bytes.len(),
                head.join(" ")
            ),
        });
    }
    let eh = Ehdr::parse(bytes)?;
    let wrong = |detail: String| Err(Error::WrongArch { detail });
    if eh.e_type != ET_REL && eh.e_type != ET_EXEC {
        return wrong(format!(
            "e_type is {}; the VPE loader accepts only ET_REL (1) and ET_EXEC (2)",
            eh.e_type
        ));
    }
    if eh.e_machine != EM_MIPS {
        return wrong(format!("e_machine is {}, not EM_MIPS (8)", eh.e_machine));
    }
    if eh.class != ELFCLASS32 {
        return wrong(format!("EI_CLASS is {}, not ELFCLASS32 (1)", eh.class));
    }
    if eh.e_flags & EF_MIPS_ABI2 != 0 {
        return wrong(format!(
            "e_flags {:#010x} has EF_MIPS_ABI2 (0x20, n32) set",
            eh.e_flags
        ));
    }
    let abi = eh.e_flags & EF_MIPS_ABI;
    if abi != 0 && abi != EF_MIPS_ABI_O32 {
        return wrong(format!(
            "e_flags {:#010x}: ABI field is {abi:#06x}, neither 0 nor EF_MIPS_ABI_O32 (0x1000)",
            eh.e_flags
        ));
    }
    if eh.e_flags & EF_MIPS_FP64 != 0 {
        return wrong(format!(
            "e_flags {:#010x} has EF_MIPS_FP64 (0x200) set (accepted only with CONFIG_MIPS_O32_FP64_SUPPORT)",
            eh.e_flags
        ));
    }
    if usize::from(eh.e_shentsize) != SHDR32_SIZE {
        return wrong(format!("e_shentsize is {}, not 40", eh.e_shentsize));
    }
    Ok(eh)
}

/// The input as the loader sees it: header, section headers and their names.
pub(crate) struct Input<'a> {
    pub bytes: &'a [u8],
    pub r: Reader<'a>,
    pub eh: Ehdr,
    pub shdrs: Vec<Shdr>,
    pub names: Vec<String>,
    /// Bytes the kernel could really see: `min(capacity, file length)`.
    pub limit: u64,
}

impl<'a> Input<'a> {
    /// File offset of section header `i`.
    pub fn shdr_offset(&self, i: usize) -> u64 {
        u64::from(self.eh.e_shoff) + (i * SHDR32_SIZE) as u64
    }

    /// Name of section `i` if it can be read (for messages before names are validated).
    fn lenient_name(&self, i: usize) -> String {
        let idx = usize::from(self.eh.e_shstrndx);
        let (Some(s), Some(t)) = (self.shdrs.get(i), self.shdrs.get(idx)) else {
            return "?".into();
        };
        self.r
            .str_in(t.sh_offset, t.sh_size, s.sh_name, "section name")
            .unwrap_or_else(|_| "?".into())
    }

    /// All section names; `e_shstrndx` and every `sh_name` must be valid (the kernel used
    /// `secstrings` unchecked). `e_shstrndx == 0` under `--relocs legacy`: the kernel's
    /// `secstrings = hdr + sechdrs[0].sh_offset` (the file start, normally), and it loaded.
    fn read_names(
        &self,
        semantics: RelocSemantics,
        warnings: &mut Vec<Warning>,
    ) -> Result<Vec<String>> {
        if self.shdrs.is_empty() {
            return Ok(Vec::new());
        }
        let idx = usize::from(self.eh.e_shstrndx);
        if idx == 0 && semantics == RelocSemantics::Legacy {
            let off = self.shdrs[0].sh_offset;
            let size = u32::try_from(self.limit.saturating_sub(u64::from(off))).unwrap_or(0);
            let names = (0..self.shdrs.len())
                .map(|i| {
                    self.r
                        .str_in_with(off, size, self.shdrs[i].sh_name, || {
                            format!("section [{i}] name (e_shstrndx 0: read from file offset {off:#x}, as the legacy loader did)")
                        })
                })
                .collect::<Result<Vec<_>>>()?;
            warnings.push(Warning::new(format!(
                "e_shstrndx is 0 (no section name table): the legacy loader read section names from file offset {off:#x} (section 0's sh_offset) and loaded the file; the names used here are what it read there"
            )));
            return Ok(names);
        }
        if idx == 0 || idx >= self.shdrs.len() {
            return Err(Error::Malformed {
                what: format!(
                    "e_shstrndx {idx} is not a section index (e_shnum {}){}",
                    self.shdrs.len(),
                    if idx == 0 {
                        "; the legacy loader read names from the file start and loaded it: --relocs legacy does the same"
                    } else {
                        ""
                    }
                ),
                at: 50,
            });
        }
        self.section_bytes(idx, "section name string table")?;
        let t = self.shdrs[idx];
        (0..self.shdrs.len())
            .map(|i| {
                self.r
                    .str_in_with(t.sh_offset, t.sh_size, self.shdrs[i].sh_name, || {
                        format!("section [{i}] name")
                    })
            })
            .collect()
    }

    /// The contents of section `i`, which must not be NOBITS and must lie inside the bytes the
    /// kernel could see.
    pub fn section_bytes(&self, i: usize, what: &str) -> Result<&'a [u8]> {
        let s = self.shdrs[i];
        let name = self
            .names
            .get(i)
            .cloned()
            .unwrap_or_else(|| self.lenient_name(i));
        if s.sh_type == SHT_NOBITS {
            return Err(Error::Malformed {
                what: format!("{what} [{i}] {name} is SHT_NOBITS (no contents)"),
                at: self.shdr_offset(i) + 4,
            });
        }
        let end = u64::from(s.sh_offset) + u64::from(s.sh_size);
        if end > self.limit {
            return Err(Error::Malformed {
                what: format!(
                    "{what} [{i}] {name} at {:#x} size {:#x} ends past the {} bytes the loader had",
                    s.sh_offset, s.sh_size, self.limit
                ),
                at: u64::from(s.sh_offset),
            });
        }
        Ok(&self.bytes[s.sh_offset as usize..end as usize])
    }

    fn placed(&self, i: usize, addr: u32, offset: u32) -> PlacedSection {
        let s = self.shdrs[i];
        PlacedSection {
            index: i,
            name: self.names[i].clone(),
            addr,
            size: s.sh_size,
            align: s.sh_addralign,
            flags: s.sh_flags,
            sh_type: s.sh_type,
            offset,
        }
    }
}

/// ET_REL: layout, copy, symbols, relocations, magic symbols (vpe.c `vpe_elfload`).
fn load_rel(
    inp: &Input,
    opts: &Options,
    st: &mut State,
    mut warnings: Vec<Warning>,
) -> Result<Image> {
    if inp
        .shdrs
        .first()
        .is_some_and(|s| s.sh_flags & SHF_ALLOC != 0)
    {
        return Err(Error::Malformed {
            what: "section [0] (the null section) has SHF_ALLOC set".into(),
            at: inp.shdr_offset(0) + 8,
        });
    }
    let base = opts.base;
    let lay = layout::layout_sections(
        &inp.shdrs,
        &inp.names,
        base,
        opts.mem_limit(),
        &mut warnings,
    )?;
    if lay.data_end > MAX_DATA {
        // Only absurd sh_addralign values get here: the file itself is at most P_SIZE-ish.
        return Err(Error::Malformed {
            what: format!(
                "section contents would span {:#x} bytes of the image (alignment padding); the legacy loader could not have allocated that",
                lay.data_end
            ),
            at: 0,
        });
    }
    let Some(image_end) = base.checked_add(lay.size) else {
        return Err(Error::Convert {
            message: format!(
                "an image of {:#x} bytes at base {base:#010x} would wrap past the end of the 32-bit address space",
                lay.size
            ),
        });
    };
    let sec_addr: Vec<Option<u32>> = lay.offsets.iter().map(|o| o.map(|o| base + o)).collect();

    // The copy loop: non-NOBITS ALLOC sections from the file, the rest stays zero. Done twice:
    // the ELF relocation pass needs its own copy of the unrelocated bytes, and copying the
    // sections again into fresh (lazily zeroed) memory never touches the gaps, which cloning
    // the first buffer would.
    let copy_sections = || -> Result<Vec<u8>> {
        let mut image = vec![0u8; lay.data_end as usize];
        for (i, off) in lay.offsets.iter().enumerate() {
            let Some(off) = *off else { continue };
            if inp.shdrs[i].sh_type == SHT_NOBITS {
                continue;
            }
            let src = inp.section_bytes(i, "section")?;
            image[off as usize..off as usize + src.len()].copy_from_slice(src);
        }
        Ok(image)
    };
    let image = copy_sections()?;
    let elf_image = copy_sections()?;

    let tab = symbols::read_symtab(inp, true)?;
    let simp = symbols::simplify_symbols(
        inp,
        &tab,
        &sec_addr,
        image_end,
        opts.semantics,
        &mut warnings,
    )?;
    let (rels, nonalloc) = reloc::collect(inp, &tab, &lay.offsets, base, &mut warnings)?;

    // From here on the kernel ran to completion or failed cleanly: the state evolves as vpe.c's.
    st.generation = st.generation.wrapping_add(1);
    if let Some((gp_addr, gp_offs)) = simp.gp_save {
        st.gp_addr = gp_addr;
        st.gp_offs = gp_offs;
    }
    let out = reloc::apply(
        &reloc::Ctx {
            inp,
            tab: &tab,
            simp: &simp,
            rels: &rels,
            nonalloc: &nonalloc,
        },
        image,
        elf_image,
        base,
        st,
        &mut warnings,
    );

    let (data, values, mem_end) = match opts.semantics {
        RelocSemantics::Elf => {
            if let Some(e) = out.elf_errs.into_iter().next() {
                return Err(e);
            }
            match out.legacy_err {
                Some(e @ Error::Rela { .. }) => return Err(e),
                Some(e) => warnings.push(Warning::new(format!(
                    "the legacy loader would have refused this file: {e}"
                ))),
                None => {}
            }
            (out.elf, &simp.elf, simp.elf_end)
        }
        RelocSemantics::Legacy | RelocSemantics::Strict => {
            if let Some(e) = out.legacy_err {
                return Err(e);
            }
            // Strict lists it among the differences below.
            if let (RelocSemantics::Legacy, Some(e)) = (opts.semantics, out.unknowable) {
                return Err(e);
            }
            (out.legacy, &simp.legacy, image_end)
        }
    };

    warnings.extend(hazards::scan(inp, &tab, &rels, &lay.offsets, &data, base));
    let (start, shared) = symbols::find_vpe_symbols(&tab, values);
    let mut sym_warnings = Vec::new();
    let entry = lantiq::vpe_entry(opts.lantiq.as_ref(), start, shared, &mut sym_warnings)?;
    if opts.semantics == RelocSemantics::Strict && !out.diffs.is_empty() {
        return Err(Error::SemanticsDiffer { sites: out.diffs });
    }
    warnings.extend(sym_warnings);

    let mut sections = Vec::new();
    let mut image_index = vec![None; inp.shdrs.len()];
    for (i, off) in lay.offsets.iter().enumerate() {
        if let Some(off) = *off {
            image_index[i] = Some(sections.len());
            sections.push(inp.placed(i, base + off, off));
        }
    }
    let elf = opts.semantics == RelocSemantics::Elf;
    let common_section = if elf {
        None
    } else {
        simp.bss_section.and_then(|b| image_index[b])
    };
    let symbols = symbols::image_symbols(&tab, values, &image_index, common_section, elf);
    let gp = if elf {
        simp.elf_gp
    } else {
        simp.gp_save.map(|(a, _)| a)
    };
    let segments = if mem_end > base {
        vec![Segment {
            addr: base,
            data,
            mem_size: mem_end - base,
        }]
    } else {
        Vec::new()
    };
    Ok(Image {
        kind: InputKind::Rel,
        endian: inp.eh.endian,
        e_flags: inp.eh.e_flags,
        segments,
        entry,
        shared: (shared != 0).then_some(shared),
        gp,
        base,
        sections,
        symbols,
        warnings,
    })
}

/// Start of KSEG0: below it an address is a user (KUSEG) address.
const KUSEG_END: u64 = 0x8000_0000;

/// True if the file bytes of PT_LOAD `p` hold sections and all of them are `.reginfo` or
/// `.MIPS.abiflags` (and it has no zero-fill).
fn holds_only_mips_info(inp: &Input, p: &crate::elf::read::Phdr) -> bool {
    let (lo, hi) = (
        u64::from(p.p_offset),
        u64::from(p.p_offset) + u64::from(p.p_filesz),
    );
    let mut inside = inp.shdrs.iter().skip(1).filter(|s| {
        let (so, se) = (
            u64::from(s.sh_offset),
            u64::from(s.sh_offset) + u64::from(s.sh_size),
        );
        s.sh_flags & SHF_ALLOC != 0
            && s.sh_type != SHT_NOBITS
            && s.sh_size > 0
            && so < hi
            && se > lo
    });
    let mut any = false;
    let only = inside.all(|s| {
        any = true;
        s.sh_type == SHT_MIPS_REGINFO || s.sh_type == SHT_MIPS_ABIFLAGS
    });
    any && only && p.p_memsz == p.p_filesz
}

/// ET_EXEC (§4): every PT_LOAD copied to `p_paddr`, no relocation, `__start`/`vpe_shared`
/// from the raw `st_value` of the last symbol table.
fn load_exec(inp: &Input, opts: &Options, mut warnings: Vec<Warning>) -> Result<Image> {
    let eh = &inp.eh;
    if eh.e_phnum > 0 && usize::from(eh.e_phentsize) != PHDR32_SIZE {
        warnings.push(Warning::new(format!(
            "e_phentsize is {}; the legacy loader stepped through program headers 32 bytes at a time regardless",
            eh.e_phentsize
        )));
    }
    let ph_end = u64::from(eh.e_phoff) + u64::from(eh.e_phnum) * PHDR32_SIZE as u64;
    if ph_end > inp.limit {
        return Err(Error::Malformed {
            what: format!(
                "program header table at {:#x} ({} x 32 bytes) ends past the {} bytes the loader had",
                eh.e_phoff, eh.e_phnum, inp.limit
            ),
            at: u64::from(eh.e_phoff),
        });
    }
    // (phdr index, paddr, vaddr, offset, filesz, memsz)
    let mut loads = Vec::new();
    let mut loaded = 0u64;
    for i in 0..usize::from(eh.e_phnum) {
        let p = inp.r.phdr(eh.e_phoff, i)?;
        if p.p_type != PT_LOAD {
            continue;
        }
        let at = u64::from(eh.e_phoff) + (i * PHDR32_SIZE) as u64;
        let bad = |what: String| Error::Malformed {
            what: format!("program header #{i}: {what}"),
            at,
        };
        if p.p_filesz > p.p_memsz {
            return Err(bad(format!(
                "p_filesz {:#x} > p_memsz {:#x} (the kernel's memset length would be negative)",
                p.p_filesz, p.p_memsz
            )));
        }
        if u64::from(p.p_offset) + u64::from(p.p_filesz) > inp.limit {
            return Err(bad(format!(
                "p_offset {:#x} + p_filesz {:#x} ends past the {} bytes the loader had",
                p.p_offset, p.p_filesz, inp.limit
            )));
        }
        if u64::from(p.p_paddr) + u64::from(p.p_memsz) > 1 << 32 {
            return Err(bad(format!(
                "p_paddr {:#010x} + p_memsz {:#x} wraps past the end of the address space",
                p.p_paddr, p.p_memsz
            )));
        }
        if p.p_memsz == 0 {
            continue;
        }
        // Before any segment is copied: the sum of the p_memsz is what the image loads.
        loaded += u64::from(p.p_memsz);
        if loaded > u64::from(opts.mem_limit()) {
            return Err(Error::MemoryLimit {
                what: format!("PT_LOAD program header #{i} at {:#010x}", p.p_paddr),
                size: u64::from(p.p_memsz),
                total: loaded,
                limit: opts.mem_limit(),
            });
        }
        if p.p_vaddr != p.p_paddr {
            warnings.push(Warning::new(format!(
                "program header #{i}: p_vaddr {:#010x} != p_paddr {:#010x}; the legacy loader copied to p_paddr (used as a kernel virtual address)",
                p.p_vaddr, p.p_paddr
            )));
        }
        loads.push((i, p));
    }
    // GNU ld puts .MIPS.abiflags/.reginfo in a PT_LOAD of their own below the program (at
    // 0x00400000 with its default script): nothing reads those bytes at run time, and kept
    // they would become a carveout at that address. Deliberate deviation: dropped, with a
    // warning (docs/CONVERSION.md §2).
    loads.retain(|(i, p)| {
        let drop = holds_only_mips_info(inp, p);
        if drop {
            warnings.push(Warning::new(format!(
                "program header #{i} at {:#010x} holds only .MIPS.abiflags/.reginfo (GNU ld's separate segment for them): not loaded, as nothing reads those bytes at run time",
                p.p_paddr
            )));
        }
        !drop
    });
    for (i, p) in &loads {
        if u64::from(p.p_paddr) < KUSEG_END {
            warnings.push(Warning::new(format!(
                "program header #{i} at {:#010x} is in KUSEG (below 0x80000000): vpe.c copied an ET_EXEC's segments to p_paddr as a kernel virtual address, i.e. into the user memory of the process that closed /dev/vpe1, so no legacy system can have run this image; it is converted as linked (remoteproc can run it) and verify's equivalence is to this image, not to a legacy run",
                p.p_paddr
            )));
        }
    }
    loads.sort_by_key(|(_, p)| p.p_paddr);
    for w in loads.windows(2) {
        let ((i, a), (j, b)) = (w[0], w[1]);
        if u64::from(a.p_paddr) + u64::from(a.p_memsz) > u64::from(b.p_paddr) {
            return Err(Error::Malformed {
                what: format!(
                    "PT_LOAD #{i} [{:#010x}, +{:#x}) overlaps PT_LOAD #{j} at {:#010x}",
                    a.p_paddr, a.p_memsz, b.p_paddr
                ),
                at: u64::from(eh.e_phoff) + (j * PHDR32_SIZE) as u64,
            });
        }
    }
    let segments: Vec<Segment> = loads
        .iter()
        .map(|(_, p)| Segment {
            addr: p.p_paddr,
            // In range: checked above with u64 arithmetic against the real length.
            data: inp.bytes[p.p_offset as usize..][..p.p_filesz as usize].to_vec(),
            mem_size: p.p_memsz,
        })
        .collect();
    let base = segments.first().map_or(0, |s| s.addr);
    if segments.is_empty() {
        warnings.push(Warning::new(
            "no PT_LOAD program header: the legacy loader copied nothing",
        ));
    }

    // ALLOC sections: file-backed ones by file offset, NOBITS ones by virtual address.
    let mut sections = Vec::new();
    let mut image_index = vec![None; inp.shdrs.len()];
    for (i, s) in inp.shdrs.iter().enumerate().skip(1) {
        if s.sh_flags & SHF_ALLOC == 0 {
            continue;
        }
        let (so, ss) = (u64::from(s.sh_offset), u64::from(s.sh_size));
        let by_file = loads.iter().find(|(_, p)| {
            s.sh_type != SHT_NOBITS
                && so >= u64::from(p.p_offset)
                && so + ss <= u64::from(p.p_offset) + u64::from(p.p_filesz)
        });
        let addr = match by_file {
            Some((_, p)) => Some(p.p_paddr + (s.sh_offset - p.p_offset)),
            None => loads
                .iter()
                .find(|(_, p)| {
                    let a = u64::from(s.sh_addr);
                    a >= u64::from(p.p_vaddr)
                        && a + ss <= u64::from(p.p_vaddr) + u64::from(p.p_memsz)
                })
                .map(|(_, p)| p.p_paddr.wrapping_add(s.sh_addr - p.p_vaddr)),
        };
        if let Some(addr) = addr {
            image_index[i] = Some(sections.len());
            sections.push(inp.placed(i, addr, addr.wrapping_sub(base)));
        }
    }

    let tab = symbols::read_symtab(inp, false)?;
    let raw: Vec<u32> = tab.entries.iter().map(|e| e.sym.st_value).collect();
    let (start, shared) = symbols::find_vpe_symbols(&tab, &raw);
    let start = lantiq::vpe_entry(opts.lantiq.as_ref(), start, shared, &mut warnings)?;
    if eh.e_entry != start {
        warnings.push(Warning::new(format!(
            "e_entry {:#010x} is ignored: the legacy loader starts at __start {start:#010x}",
            eh.e_entry
        )));
    }
    let gp = tab
        .entries
        .iter()
        .skip(1)
        .rev()
        .find(|e| e.name == "_gp" && e.sym.st_shndx != 0)
        .map(|e| e.sym.st_value);
    let symbols = symbols::image_symbols(&tab, &raw, &image_index, None, false);
    Ok(Image {
        kind: InputKind::Exec,
        endian: eh.endian,
        e_flags: eh.e_flags,
        segments,
        entry: start,
        shared: (shared != 0).then_some(shared),
        gp,
        base,
        sections,
        symbols,
        warnings,
    })
}

/// A tiny ELF32 assembler for tests, in either byte order.
#[cfg(test)]
pub(crate) mod testelf {
    use crate::elf::*;

    /// A section to emit (indices start at 1 in the order added).
    #[derive(Debug, Clone)]
    pub struct Sec {
        pub name: String,
        pub sh_type: u32,
        pub flags: u32,
        pub align: u32,
        pub data: Vec<u8>,
        /// For NOBITS: the size.
        pub size: u32,
        pub addr: u32,
        pub link: u32,
        pub info: u32,
        pub entsize: u32,
    }

    #[derive(Debug, Clone)]
    struct SymSpec {
        name: String,
        value: u32,
        size: u32,
        info: u8,
        shndx: u16,
    }

    /// Program header referring to a section's file range (`filesz` = its data length).
    #[derive(Debug, Clone)]
    struct Load {
        sec: usize,
        vaddr: u32,
        paddr: u32,
        memsz: u32,
    }

    /// Builder. Layout: header, program headers, section contents (4-aligned, in order),
    /// then section headers. Section order: user sections, `.rel*` (one per target, in
    /// order of first use), `.symtab`, `.strtab`, `.shstrtab`.
    #[derive(Debug, Clone)]
    pub struct Elf {
        pub endian: Endian,
        pub e_type: u16,
        pub e_machine: u16,
        pub class: u8,
        pub e_flags: u32,
        pub e_entry: u32,
        pub secs: Vec<Sec>,
        syms: Vec<SymSpec>,
        rels: Vec<(usize, u32, u32, u8)>,
        rela_targets: Vec<usize>,
        loads: Vec<Load>,
        pub no_symtab: bool,
    }

    impl Elf {
        pub fn new(endian: Endian, e_type: u16) -> Self {
            Elf {
                endian,
                e_type,
                e_machine: EM_MIPS,
                class: ELFCLASS32,
                e_flags: EF_MIPS_ABI_O32 | EF_MIPS_NOREORDER,
                e_entry: 0,
                secs: Vec::new(),
                syms: Vec::new(),
                rels: Vec::new(),
                rela_targets: Vec::new(),
                loads: Vec::new(),
                no_symtab: false,
            }
        }

        /// Add a section with contents; returns its index.
        pub fn progbits(&mut self, name: &str, flags: u32, align: u32, data: Vec<u8>) -> usize {
            self.secs.push(Sec {
                name: name.into(),
                sh_type: SHT_PROGBITS,
                flags,
                align,
                size: data.len() as u32,
                data,
                addr: 0,
                link: 0,
                info: 0,
                entsize: 0,
            });
            self.secs.len()
        }

        pub fn nobits(&mut self, name: &str, flags: u32, align: u32, size: u32) -> usize {
            self.secs.push(Sec {
                name: name.into(),
                sh_type: SHT_NOBITS,
                flags,
                align,
                data: Vec::new(),
                size,
                addr: 0,
                link: 0,
                info: 0,
                entsize: 0,
            });
            self.secs.len()
        }

        /// `.text` from instruction words in this file's byte order.
        pub fn words(&self, ws: &[u32]) -> Vec<u8> {
            ws.iter().flat_map(|w| self.endian.u32_bytes(*w)).collect()
        }

        /// Add a symbol; returns its index (0 is the null symbol).
        pub fn sym(&mut self, name: &str, value: u32, size: u32, info: u8, shndx: u16) -> u32 {
            self.syms.push(SymSpec {
                name: name.into(),
                value,
                size,
                info,
                shndx,
            });
            self.syms.len() as u32
        }

        /// Global NOTYPE symbol.
        pub fn global(&mut self, name: &str, value: u32, shndx: u16) -> u32 {
            self.sym(name, value, 0, STB_GLOBAL << 4, shndx)
        }

        /// Section symbol of section `shndx`.
        pub fn section_sym(&mut self, shndx: u16) -> u32 {
            self.sym("", 0, 0, STT_SECTION, shndx)
        }

        pub fn rel(&mut self, target: usize, r_offset: u32, sym: u32, r_type: u8) {
            self.rels.push((target, r_offset, sym, r_type));
        }

        /// An (empty) SHT_RELA section for `target`.
        pub fn rela(&mut self, target: usize) {
            self.rela_targets.push(target);
        }

        pub fn pt_load(&mut self, sec: usize, vaddr: u32, paddr: u32, memsz: u32) {
            self.loads.push(Load {
                sec,
                vaddr,
                paddr,
                memsz,
            });
        }

        /// Index the `.symtab` section will get.
        pub fn symtab_index(&self) -> usize {
            self.secs.len() + self.rel_targets().len() + self.rela_targets.len() + 1
        }

        fn rel_targets(&self) -> Vec<usize> {
            let mut t = Vec::new();
            for r in &self.rels {
                if !t.contains(&r.0) {
                    t.push(r.0);
                }
            }
            t
        }

        pub fn build(&self) -> Vec<u8> {
            let e = self.endian;
            let mut secs = self.secs.clone();
            for t in self.rel_targets() {
                let data: Vec<u8> = self
                    .rels
                    .iter()
                    .filter(|r| r.0 == t)
                    .flat_map(|r| {
                        let mut v = e.u32_bytes(r.1).to_vec();
                        v.extend(e.u32_bytes((r.2 << 8) | u32::from(r.3)));
                        v
                    })
                    .collect();
                secs.push(Sec {
                    name: format!(".rel{}", self.secs[t - 1].name),
                    sh_type: SHT_REL,
                    flags: 0,
                    align: 4,
                    size: data.len() as u32,
                    data,
                    addr: 0,
                    link: 0, // patched below
                    info: t as u32,
                    entsize: 8,
                });
            }
            for &t in &self.rela_targets {
                secs.push(Sec {
                    name: format!(".rela{}", self.secs[t - 1].name),
                    sh_type: SHT_RELA,
                    flags: 0,
                    align: 4,
                    data: Vec::new(),
                    size: 0,
                    addr: 0,
                    link: 0,
                    info: t as u32,
                    entsize: 12,
                });
            }
            let symtab_idx = secs.len() + 1;
            if !self.no_symtab {
                let mut strtab = vec![0u8];
                let mut symdata = vec![0u8; 16];
                for s in &self.syms {
                    let name_off = if s.name.is_empty() {
                        0
                    } else {
                        let o = strtab.len() as u32;
                        strtab.extend(s.name.as_bytes());
                        strtab.push(0);
                        o
                    };
                    symdata.extend(e.u32_bytes(name_off));
                    symdata.extend(e.u32_bytes(s.value));
                    symdata.extend(e.u32_bytes(s.size));
                    symdata.push(s.info);
                    symdata.push(0);
                    symdata.extend(e.u16_bytes(s.shndx));
                }
                secs.push(Sec {
                    name: ".symtab".into(),
                    sh_type: SHT_SYMTAB,
                    flags: 0,
                    align: 4,
                    size: symdata.len() as u32,
                    data: symdata,
                    addr: 0,
                    link: (symtab_idx + 1) as u32,
                    info: 1,
                    entsize: 16,
                });
                secs.push(Sec {
                    name: ".strtab".into(),
                    sh_type: SHT_STRTAB,
                    flags: 0,
                    align: 1,
                    size: strtab.len() as u32,
                    data: strtab,
                    addr: 0,
                    link: 0,
                    info: 0,
                    entsize: 0,
                });
            }
            for s in secs.iter_mut() {
                if s.sh_type == SHT_REL || s.sh_type == SHT_RELA {
                    s.link = symtab_idx as u32;
                }
            }
            let mut shstr = vec![0u8];
            let mut name_offs = Vec::new();
            for s in &secs {
                name_offs.push(shstr.len() as u32);
                shstr.extend(s.name.as_bytes());
                shstr.push(0);
            }
            name_offs.push(shstr.len() as u32);
            shstr.extend(b".shstrtab\0");
            secs.push(Sec {
                name: ".shstrtab".into(),
                sh_type: SHT_STRTAB,
                flags: 0,
                align: 1,
                size: shstr.len() as u32,
                data: shstr,
                addr: 0,
                link: 0,
                info: 0,
                entsize: 0,
            });

            let phoff = if self.loads.is_empty() {
                0
            } else {
                EHDR32_SIZE as u32
            };
            let mut off = EHDR32_SIZE as u32 + (self.loads.len() * PHDR32_SIZE) as u32;
            let mut offsets = Vec::new();
            for s in &secs {
                off = (off + 3) & !3;
                offsets.push(off);
                off += s.data.len() as u32;
            }
            let shoff = (off + 3) & !3;
            let shnum = secs.len() + 1;
            let mut out = Vec::new();
            out.extend(ELFMAG);
            out.extend([self.class, e.ei_data(), EV_CURRENT, 0]);
            out.extend([0u8; 8]);
            out.extend(e.u16_bytes(self.e_type));
            out.extend(e.u16_bytes(self.e_machine));
            out.extend(e.u32_bytes(1));
            out.extend(e.u32_bytes(self.e_entry));
            out.extend(e.u32_bytes(phoff));
            out.extend(e.u32_bytes(shoff));
            out.extend(e.u32_bytes(self.e_flags));
            out.extend(e.u16_bytes(EHDR32_SIZE as u16));
            out.extend(e.u16_bytes(PHDR32_SIZE as u16));
            out.extend(e.u16_bytes(self.loads.len() as u16));
            out.extend(e.u16_bytes(SHDR32_SIZE as u16));
            out.extend(e.u16_bytes(shnum as u16));
            out.extend(e.u16_bytes((shnum - 1) as u16));
            for l in &self.loads {
                let s = &secs[l.sec - 1];
                for w in [
                    PT_LOAD,
                    offsets[l.sec - 1],
                    l.vaddr,
                    l.paddr,
                    s.data.len() as u32,
                    l.memsz,
                    PF_R | PF_W | PF_X,
                    4,
                ] {
                    out.extend(e.u32_bytes(w));
                }
            }
            for (s, o) in secs.iter().zip(&offsets) {
                out.resize(*o as usize, 0);
                out.extend(&s.data);
            }
            out.resize(shoff as usize, 0);
            out.extend([0u8; SHDR32_SIZE]);
            for (i, s) in secs.iter().enumerate() {
                for w in [
                    name_offs[i],
                    s.sh_type,
                    s.flags,
                    s.addr,
                    offsets[i],
                    s.size,
                    s.link,
                    s.info,
                    s.align,
                    s.entsize,
                ] {
                    out.extend(e.u32_bytes(w));
                }
            }
            out
        }
    }

    /// Overwrite a u32 at `off` in `e`'s byte order.
    pub fn put_u32(b: &mut [u8], off: usize, e: Endian, v: u32) {
        b[off..off + 4].copy_from_slice(&e.u32_bytes(v));
    }
    pub fn put_u16(b: &mut [u8], off: usize, e: Endian, v: u16) {
        b[off..off + 2].copy_from_slice(&e.u16_bytes(v));
    }
}

#[cfg(test)]
mod tests {
    use super::testelf::{put_u16, put_u32, Elf};
    use super::*;
    use crate::elf::*;

    const B: u32 = 0x8010_0000;
    const TEXT: u32 = SHF_ALLOC | SHF_EXECINSTR;
    const DATA: u32 = SHF_ALLOC | SHF_WRITE;
    const ENDIANS: [Endian; 2] = [Endian::Little, Endian::Big];

    fn o(semantics: RelocSemantics) -> Options {
        Options {
            base: B,
            semantics,
            ..Options::default()
        }
    }
    fn strict() -> Options {
        o(RelocSemantics::Strict)
    }
    fn legacy() -> Options {
        o(RelocSemantics::Legacy)
    }
    fn elf() -> Options {
        o(RelocSemantics::Elf)
    }

    fn word(img: &Image, addr: u32) -> u32 {
        let b: Vec<u8> = (0..4)
            .map(|k| img.byte_at(addr + k).expect("loaded byte"))
            .collect();
        img.endian.read_u32([b[0], b[1], b[2], b[3]])
    }

    /// ET_REL with `.text` (index 1) from `words`, `__start` at .text+0 and `vpe_shared` ABS.
    fn obj(e: Endian, words: &[u32]) -> Elf {
        let mut b = Elf::new(e, ET_REL);
        let text = b.words(words);
        b.progbits(".text", TEXT, 4, text);
        b.global("__start", 0, 1);
        b.global("vpe_shared", 0x8000_1000, SHN_ABS);
        b
    }

    fn reloc_err(r: Result<Image>) -> (String, String, u8, String) {
        match r {
            Err(Error::Relocation { site, reason }) => {
                (site.type_name, reason, site.r_type, site.symbol)
            }
            other => panic!("expected a relocation error, got {other:?}"),
        }
    }

    fn has_warning(img: &Image, needle: &str) -> bool {
        img.warnings.iter().any(|w| w.message.contains(needle))
    }

    // ---- §8.3 #8, #9: header checks ------------------------------------------------------

    #[test]
    fn case_8_9_wrong_arch_in_kernel_order() {
        for e in ENDIANS {
            let good = obj(e, &[0]);
            let mut cases: Vec<(Elf, &str)> = Vec::new();
            let mut b = good.clone();
            b.class = ELFCLASS64;
            cases.push((b, "EI_CLASS is 2"));
            let mut b = good.clone();
            b.e_machine = 3;
            cases.push((b, "e_machine is 3"));
            let mut b = good.clone();
            b.e_type = ET_DYN;
            cases.push((b, "e_type is 3"));
            let mut b = good.clone();
            b.e_flags |= EF_MIPS_ABI2;
            cases.push((b, "EF_MIPS_ABI2"));
            let mut b = good.clone();
            b.e_flags = (b.e_flags & !EF_MIPS_ABI) | 0x3000;
            cases.push((b, "ABI field is 0x3000"));
            let mut b = good.clone();
            b.e_flags |= EF_MIPS_FP64;
            cases.push((b, "EF_MIPS_FP64"));
            // e_type is checked before e_machine.
            let mut b = good.clone();
            b.e_type = ET_DYN;
            b.e_machine = 3;
            cases.push((b, "e_type is 3"));
            for (b, detail) in cases {
                let err = load(&b.build(), &strict()).unwrap_err();
                assert!(matches!(err, Error::WrongArch { .. }), "{err:?}");
                let msg = err.to_string();
                assert!(msg.starts_with("VPE loader: program wrong arch or weird elf version"));
                assert!(msg.contains(detail), "{msg} lacks {detail}");
            }
            let mut bytes = good.build();
            put_u16(&mut bytes, 46, e, 64);
            let err = load(&bytes, &strict()).unwrap_err();
            assert!(err.to_string().contains("e_shentsize is 64"), "{err}");
            // ABI field 0 (no ABI flag at all) is accepted.
            let mut b = good.clone();
            b.e_flags &= !EF_MIPS_ABI;
            load(&b.build(), &strict()).unwrap();
        }
    }

    #[test]
    fn not_elf_and_tiny_inputs() {
        let err = load(b"hello", &strict()).unwrap_err();
        assert!(matches!(err, Error::NotElf { .. }));
        assert!(err
            .to_string()
            .starts_with("VPE loader: only elf files are supported"));
        assert!(matches!(load(b"", &strict()), Err(Error::NotElf { .. })));
        assert!(matches!(
            load(b"\x7fELF\x01\x02", &strict()),
            Err(Error::Malformed { .. })
        ));
    }

    // ---- #10, #11: magic symbols ---------------------------------------------------------

    #[test]
    fn case_10_no_start() {
        for e in ENDIANS {
            let mut b = Elf::new(e, ET_REL);
            let t = b.words(&[0, 0]);
            b.progbits(".text", TEXT, 4, t);
            b.global("main", 0, 1);
            let err = load(&b.build(), &strict()).unwrap_err();
            assert_eq!(err, Error::NoStart);
            assert_eq!(
                err.to_string(),
                "VPE loader: program does not contain a __start symbol"
            );
            // An undefined __start has value 0: same.
            b.global("__start", 0, SHN_UNDEF);
            assert_eq!(load(&b.build(), &strict()).unwrap_err(), Error::NoStart);
        }
    }

    #[test]
    fn case_11_start_without_vpe_shared() {
        for e in ENDIANS {
            let mut b = Elf::new(e, ET_REL);
            let t = b.words(&[0, 0, 0, 0]);
            b.progbits(".text", TEXT, 4, t);
            b.global("__start", 8, 1);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(img.entry, B + 8);
            assert_eq!(img.shared, None);
            assert!(img.warnings.iter().any(|w| w.message
                == "VPE loader: program does not contain vpe_shared symbol.\n Unable to use AMVP (AP/SP) facilities."));
            assert_eq!(img.kind, InputKind::Rel);
            assert_eq!(img.endian, e);
            assert_eq!(img.base, B);
        }
    }

    #[test]
    fn magic_symbols_last_match_wins() {
        let mut b = obj(Endian::Big, &[0, 0, 0]);
        b.global("__start", 4, 1);
        b.global("vpe_shared", 8, 1);
        let img = load(&b.build(), &strict()).unwrap();
        assert_eq!(img.entry, B + 4);
        assert_eq!(img.shared, Some(B + 8));
        assert!(!has_warning(&img, "vpe_shared"));
    }

    // ---- #12, #13: layout -----------------------------------------------------------------

    #[test]
    fn case_12_layout_of_the_four_classes() {
        for e in ENDIANS {
            let mut b = Elf::new(e, ET_REL);
            // Header order deliberately mixed: .data, .bss, .rodata, .text.
            b.progbits(".data", DATA, 16, vec![0xd1, 0xd2, 0xd3, 0xd4]);
            b.nobits(".bss", DATA, 4, 8);
            b.progbits(".rodata", SHF_ALLOC, 8, vec![0xa1; 5]);
            let t = b.words(&[0x1111_1111, 0x2222_2222, 0x3333_3333, 0x4444_4444]);
            b.progbits(".text", TEXT, 4, t);
            b.global("__start", 0, 4);
            b.global("vpe_shared", 0, 1);
            let img = load(&b.build(), &strict()).unwrap();
            let off = |n: &str| img.sections.iter().find(|s| s.name == n).unwrap().offset;
            assert_eq!(off(".text"), 0x0);
            assert_eq!(off(".rodata"), 0x10);
            assert_eq!(off(".data"), 0x20);
            assert_eq!(off(".bss"), 0x24);
            assert_eq!(img.segments.len(), 1);
            let seg = &img.segments[0];
            assert_eq!(seg.addr, B);
            assert_eq!(seg.mem_size, 0x2c);
            assert_eq!(seg.data.len(), 0x24);
            assert_eq!(word(&img, B), 0x1111_1111);
            assert_eq!(img.byte_at(B + 0x10), Some(0xa1));
            assert_eq!(img.byte_at(B + 0x15), Some(0)); // padding
            assert_eq!(img.byte_at(B + 0x20), Some(0xd1));
            assert!((0x24..0x2c).all(|k| img.byte_at(B + k) == Some(0)));
            assert_eq!(img.byte_at(B + 0x2c), None);
            assert_eq!(img.shared, Some(B + 0x20));
            // Sections are listed in input order with their final addresses.
            let names: Vec<&str> = img.sections.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, [".data", ".bss", ".rodata", ".text"]);
            assert_eq!(img.sections[0].addr, B + 0x20);
            assert_eq!(img.sections[0].index, 1);
        }
    }

    #[test]
    fn case_13_second_text_section_aligned_32() {
        for e in ENDIANS {
            let mut b = obj(e, &[1, 2, 3, 4, 5]); // 0x14 bytes
            let t2 = b.words(&[0xabcd_ef01]);
            b.progbits(".text.hot", TEXT, 32, t2);
            let img = load(&b.build(), &strict()).unwrap();
            let s = img.sections.iter().find(|s| s.name == ".text.hot").unwrap();
            assert_eq!(s.offset, 0x20); // ALIGN(0x14, 32)
            assert_eq!(word(&img, B + 0x20), 0xabcd_ef01);
            assert_eq!(img.segments[0].mem_size, 0x24);
        }
    }

    #[test]
    fn mips_abiflags_and_reginfo_are_laid_out_like_rodata() {
        let mut b = obj(Endian::Little, &[0]);
        b.progbits(".MIPS.abiflags", SHF_ALLOC, 8, vec![0x11; 24]);
        let img = load(&b.build(), &strict()).unwrap();
        let s = img
            .sections
            .iter()
            .find(|s| s.name == ".MIPS.abiflags")
            .unwrap();
        assert_eq!(s.offset, 8);
        assert_eq!(img.byte_at(B + 8), Some(0x11));
    }

    // ---- where the ELF pass reads unrelocated words ------------------------------------------

    /// Load `bytes` with the ELF pass reading the input (threaded when large), then reading
    /// the unrelocated image (sequential): the same image, warnings and errors, every semantics.
    fn same_outcome_from_input_and_image(what: &str, bytes: &[u8]) {
        for sem in [
            RelocSemantics::Strict,
            RelocSemantics::Legacy,
            RelocSemantics::Elf,
        ] {
            let from_input = load(bytes, &o(sem)).map_err(|e| e.to_string());
            reloc::READ_ORIG_FROM_IMAGE.with(|c| c.set(true));
            let from_image = load(bytes, &o(sem)).map_err(|e| e.to_string());
            reloc::READ_ORIG_FROM_IMAGE.with(|c| c.set(false));
            assert!(from_input == from_image, "{what} {sem:?}: outcomes differ");
        }
    }

    #[test]
    fn the_elf_pass_reads_the_same_words_from_the_input_as_from_the_image() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/bin");
        let mut n = 0;
        for f in std::fs::read_dir(dir).unwrap() {
            let p = f.unwrap().path();
            if p.extension().is_some_and(|x| x == "o") {
                same_outcome_from_input_and_image(
                    &p.display().to_string(),
                    &std::fs::read(&p).unwrap(),
                );
                n += 1;
            }
        }
        assert!(n >= 10, "fixtures missing: {n}");
        // Above the threshold (the ELF pass runs on a second thread), both byte orders; then
        // with _gp renamed away, so that every GPREL16 fails in the ELF pass (errors, diffs).
        for endian in ENDIANS {
            let mut big = crate::synth::generate(&crate::synth::Options {
                size: 1 << 20,
                endian,
                seed: 7,
            });
            same_outcome_from_input_and_image("synth 1 MiB", &big);
            let at = big.windows(5).position(|w| w == b"\0_gp\0").unwrap();
            big[at + 3] = b'q';
            same_outcome_from_input_and_image("synth 1 MiB without _gp", &big);
        }
        // One word relocated twice (the ELF pass reads the unrelocated word both times), and
        // a HI16 whose LO16 partner word was relocated before.
        for e in ENDIANS {
            let mut b = obj(e, &[0x3c04_0000, 0x2484_0010, 0x2484_0020, 0]);
            let d = b.words(&[4]);
            let data = b.progbits(".data", DATA, 4, d);
            let s = b.global("target", 0x4, 1);
            b.rel(data, 0, s, R_MIPS_32);
            b.rel(data, 0, s, R_MIPS_32);
            b.rel(1, 8, s, R_MIPS_LO16);
            b.rel(1, 0, s, R_MIPS_HI16);
            b.rel(1, 8, s, R_MIPS_LO16);
            same_outcome_from_input_and_image("twice-relocated words", &b.build());
        }
    }

    // ---- #14 – #22: relocations -----------------------------------------------------------

    #[test]
    fn case_14_r_mips_32_adds_in_place() {
        for e in ENDIANS {
            let mut b = obj(e, &[0, 0]);
            let d = b.words(&[4]);
            b.progbits(".data", DATA, 4, d); // index 2, offset 8
            let s = b.global("target", 0x4, 1);
            b.rel(2, 0, s, R_MIPS_32);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(word(&img, B + 8), (B + 4) + 4);
        }
    }

    #[test]
    fn r_mips_32_against_a_section_symbol() {
        // gcc: `int *p = &static_var;` → R_MIPS_32 against .data with the offset in place.
        for e in ENDIANS {
            let mut b = obj(e, &[0, 0]);
            let d = b.words(&[0, 0, 0x10]);
            let data = b.progbits(".data", DATA, 16, d); // offset 0x10
            let s = b.section_sym(data as u16);
            b.rel(data, 8, s, R_MIPS_32);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(word(&img, B + 0x18), B + 0x10 + 0x10);
            // Section symbols are not kept.
            assert!(img.symbols.iter().all(|s| !s.name.is_empty()));
        }
    }

    #[test]
    fn case_15_r_mips_26_jal() {
        for e in ENDIANS {
            let mut words = vec![0x0c00_0000];
            words.resize(0x11, 0);
            let mut b = obj(e, &words);
            let f = b.global("f", 0x40, 1);
            b.rel(1, 0, f, R_MIPS_26);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(
                word(&img, B),
                0x0c00_0000 | (((B + 0x40) >> 2) & 0x03ff_ffff)
            );
        }
    }

    #[test]
    fn r_mips_26_section_symbol_and_region_crossing() {
        for e in ENDIANS {
            // gas: `jal static_fn` → R_MIPS_26 against .text with (offset >> 2) in the field.
            let mut words = vec![0x0c00_0010];
            words.resize(0x11, 0);
            let mut b = obj(e, &words);
            let t = b.section_sym(1);
            b.rel(1, 0, t, R_MIPS_26);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(
                word(&img, B),
                0x0c00_0000 | (((B + 0x40) >> 2) & 0x03ff_ffff)
            );
            // A target in another 256 MiB region: legacy wraps silently, the ABI refuses.
            let mut b = obj(e, &[0x0c00_0000, 0]);
            let far_v: u32 = 0x2000_0040;
            let far = b.global("far", far_v, SHN_ABS);
            b.rel(1, 0, far, R_MIPS_26);
            let img = load(&b.build(), &legacy()).unwrap();
            assert_eq!(word(&img, B), 0x0c00_0000 | ((far_v >> 2) & 0x03ff_ffff));
            match load(&b.build(), &strict()) {
                Err(Error::SemanticsDiffer { sites }) => {
                    assert!(
                        sites[0].contains("elf error (MIPS ELF ABI: relocation truncated to fit"),
                        "{sites:?}"
                    )
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn a_failing_section_symbol_is_quoted_as_the_kernel_did() {
        for e in ENDIANS {
            let mut b = obj(e, &[0, 0]);
            let t = b.section_sym(1);
            b.rel(1, 4, t, 1); // R_MIPS_16: no handler
            let msg = load(&b.build(), &legacy()).unwrap_err().to_string();
            // strtab + st_name of a section symbol is "": the kernel's text, then ours.
            assert!(
                msg.starts_with(
                    "VPE loader: .text+0x4 relocation type UNKNOWN for symbol \"\" failed: "
                ),
                "{msg}"
            );
            assert!(
                msg.ends_with(", r_type 1, symbol: the section symbol of [1] .text)"),
                "{msg}"
            );
        }
    }

    #[test]
    fn case_16_r_mips_26_unaligned() {
        for e in ENDIANS {
            let mut b = obj(e, &[0x0c00_0000, 0]);
            let f = b.global("odd", B + 0x42, SHN_ABS);
            b.rel(1, 0, f, R_MIPS_26);
            for opts in [strict(), legacy()] {
                let r = load(&b.build(), &opts);
                let msg = r.as_ref().unwrap_err().to_string();
                let (tn, reason, t, sym) = reloc_err(r);
                assert_eq!(tn, "MIPS_26");
                assert_eq!(reason, "VPE loader: apply_r_mips_26: unaligned relocation");
                assert_eq!((t, sym.as_str()), (R_MIPS_26, "odd"));
                assert!(
                    msg.starts_with(
                        "VPE loader: .text+0x0 relocation type MIPS_26 for symbol \"odd\" failed"
                    ),
                    "{msg}"
                );
            }
            // The ELF ABI refuses it too.
            assert!(matches!(
                load(&b.build(), &elf()),
                Err(Error::Relocation { .. })
            ));
        }
    }

    const LUI_AT: u32 = 0x3c01_0000;
    const ADDIU_AT: u32 = 0x2421_0000;

    #[test]
    fn case_17_hi16_lo16_pair_with_carry() {
        for e in ENDIANS {
            let mut b = obj(e, &[LUI_AT, ADDIU_AT | 0x0010]);
            let s = b.global("x", 0x8001_7ff8, SHN_ABS);
            b.rel(1, 0, s, R_MIPS_HI16);
            b.rel(1, 4, s, R_MIPS_LO16);
            for opts in [strict(), legacy(), elf()] {
                let img = load(&b.build(), &opts).unwrap();
                assert_eq!(word(&img, B), LUI_AT | 0x8002);
                assert_eq!(word(&img, B + 4), ADDIU_AT | 0x8008);
            }
        }
    }

    #[test]
    fn hi16_lo16_against_a_section_symbol_gcc_style() {
        for e in ENDIANS {
            // lui at,%hi(.data+8); lw v0,%lo(.data+8)(at); the LO16 comes first in .rel.text
            // for another (unpaired) LO16 as gas may emit.
            let mut b = obj(e, &[LUI_AT, 0x8c22_0008, 0x8c23_000c]);
            let data = b.progbits(".data", DATA, 16, vec![0; 16]); // offset 0x10
            let s = b.section_sym(data as u16);
            b.rel(1, 8, s, R_MIPS_LO16); // LO16 with no HI16 before it
            b.rel(1, 0, s, R_MIPS_HI16);
            b.rel(1, 4, s, R_MIPS_LO16);
            let img = load(&b.build(), &strict()).unwrap();
            let sv = B + 0x10;
            assert_eq!(word(&img, B), LUI_AT | (((sv + 8 + 0x8000) >> 16) & 0xffff));
            assert_eq!(word(&img, B + 4), 0x8c22_0000 | ((sv + 8) & 0xffff));
            assert_eq!(word(&img, B + 8), 0x8c23_0000 | ((sv + 12) & 0xffff));
        }
    }

    #[test]
    fn case_18_inconsistent_value_information() {
        for e in ENDIANS {
            let mut b = obj(e, &[LUI_AT, ADDIU_AT]);
            let s1 = b.global("s1", 0x1234_8000, SHN_ABS);
            let s2 = b.global("s2", 0x2000, SHN_ABS);
            b.rel(1, 0, s1, R_MIPS_HI16);
            b.rel(1, 4, s2, R_MIPS_LO16);
            for opts in [strict(), legacy()] {
                let mut st = State::new();
                let (tn, reason, _, sym) = reloc_err(load_with_state(&b.build(), &opts, &mut st));
                assert_eq!(tn, "MIPS_LO16");
                assert_eq!(sym, "s2");
                assert_eq!(
                    reason,
                    "VPE loader: apply_r_mips_lo16/hi16: inconsistent value information"
                );
                assert!(st.pending_hi16().is_empty(), "the list is freed on failure");
            }
            // Under ELF rules the HI16 is unpaired (no LO16 against s1) and the LO16 is fine.
            let img = load(&b.build(), &elf()).unwrap();
            assert_eq!(word(&img, B), LUI_AT | ((0x1234_8000u32 + 0x8000) >> 16));
            assert!(has_warning(
                &img,
                "the legacy loader would have refused this file"
            ));
            assert!(has_warning(&img, "can't find matching LO16"));
        }
    }

    #[test]
    fn case_19_two_hi16_one_lo16() {
        for e in ENDIANS {
            let mut b = obj(e, &[LUI_AT, 0x3c02_0000, ADDIU_AT | 0x0010]);
            let s = b.global("x", 0x8001_7ff8, SHN_ABS);
            b.rel(1, 0, s, R_MIPS_HI16);
            b.rel(1, 4, s, R_MIPS_HI16);
            b.rel(1, 8, s, R_MIPS_LO16);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(word(&img, B), LUI_AT | 0x8002);
            assert_eq!(word(&img, B + 4), 0x3c02_0000 | 0x8002);
            assert_eq!(word(&img, B + 8), ADDIU_AT | 0x8008);
        }
    }

    #[test]
    fn case_20_state_persists_across_loads() {
        for e in ENDIANS {
            // Load A: an orphan HI16 against value 0x12340000.
            let mut a = obj(e, &[LUI_AT, 0]);
            let s1 = a.global("s1", 0x1234_0000, SHN_ABS);
            a.rel(1, 0, s1, R_MIPS_HI16);
            let mut st = State::new();
            let img = load_with_state(&a.build(), &legacy(), &mut st).unwrap();
            assert_eq!(
                word(&img, B),
                LUI_AT,
                "legacy leaves an orphan HI16 unpatched"
            );
            assert!(has_warning(&img, "orphan R_MIPS_HI16"));
            assert_eq!(st.pending_hi16().len(), 1);
            assert_eq!(st.pending_hi16()[0].value, 0x1234_0000);
            // ELF semantics patch it with a zero low half; strict refuses.
            let img = load(&a.build(), &elf()).unwrap();
            assert_eq!(word(&img, B), LUI_AT | 0x1234);
            match load(&a.build(), &strict()) {
                Err(Error::SemanticsDiffer { sites }) => {
                    assert_eq!(sites.len(), 1);
                    let want = format!(
                        ".text+0x0 ({B:#010x}) R_MIPS_HI16 symbol \"s1\": legacy {:#010x} elf {:#010x}",
                        LUI_AT,
                        LUI_AT | 0x1234
                    );
                    assert_eq!(sites[0], want);
                }
                other => panic!("{other:?}"),
            }

            // Load B: its first LO16 uses another value → fails because of load A.
            let mut bb = obj(e, &[ADDIU_AT]);
            let s2 = bb.global("s2", 0x5678, SHN_ABS);
            bb.rel(1, 0, s2, R_MIPS_LO16);
            let mut st_b = st.clone();
            let (_, reason, _, _) = reloc_err(load_with_state(&bb.build(), &legacy(), &mut st_b));
            assert!(reason.contains("inconsistent value information"));
            assert!(st_b.pending_hi16().is_empty());
            // The same load B after a boot (fresh state) is fine.
            let img = load(&bb.build(), &legacy()).unwrap();
            assert_eq!(word(&img, B), ADDIU_AT | 0x5678);

            // Load C: LO16 with load A's value consumes the stale HI16, patches nothing here.
            let mut c = obj(e, &[ADDIU_AT | 4]);
            let s = c.global("s1", 0x1234_0000, SHN_ABS);
            c.rel(1, 0, s, R_MIPS_LO16);
            let mut st_c = st.clone();
            let img = load_with_state(&c.build(), &legacy(), &mut st_c).unwrap();
            assert_eq!(word(&img, B), ADDIU_AT | 4);
            assert!(has_warning(&img, "left pending by a previous load"));
            assert!(st_c.pending_hi16().is_empty());
        }
    }

    #[test]
    fn gp_persists_across_loads_and_prefix_rule() {
        for e in ENDIANS {
            // Load A defines `_gpx` (prefix match) in .data at 0x100.
            let mut a = obj(e, &[0]);
            let data = a.progbits(".data", DATA, 4, vec![0; 4]); // offset 4
            a.global("_gpx", 0x100, data as u16);
            let mut st = State::new();
            let img = load_with_state(&a.build(), &strict(), &mut st).unwrap();
            let secbase = B + 4;
            assert_eq!(st.gp_addr, secbase + 0x100);
            assert_eq!(st.gp_offs, secbase + 0x100 - (secbase & 0xffff_0000));
            assert_eq!(img.gp, Some(secbase + 0x100));
            // Load D: GPREL16 (low half 0) without any _gp uses load A's gp_addr.
            let mut d = obj(e, &[0x8f82_0000]);
            let x = d.global("x", st.gp_addr + 0x100, SHN_ABS);
            d.rel(1, 0, x, R_MIPS_GPREL16);
            let img = load_with_state(&d.build(), &legacy(), &mut st.clone()).unwrap();
            assert_eq!(word(&img, B), 0x8f82_0100);
            assert!(has_warning(&img, "no _gp symbol"));
            // After a boot gp_addr is 0: out of range.
            let (_, reason, _, _) = reloc_err(load(&d.build(), &legacy()));
            assert!(reason.contains("out of range of gp register"), "{reason}");
            // ELF semantics have no _gp at all.
            assert!(matches!(
                load(&d.build(), &elf()),
                Err(Error::Relocation { .. })
            ));
        }
    }

    #[test]
    fn case_21_gprel16_range() {
        for e in ENDIANS {
            let build = |delta: u32| {
                let mut b = obj(e, &[0x8f82_0000, 0]);
                let data = b.progbits(".data", DATA, 16, vec![0; 4]); // offset 0x10
                b.global("_gp", 0, data as u16);
                let x = b.global("x", B + 0x10 + delta, SHN_ABS);
                b.rel(1, 0, x, R_MIPS_GPREL16);
                b.build()
            };
            let (tn, reason, _, _) = reloc_err(load(&build(0x9000), &legacy()));
            assert_eq!(tn, "MIPS_GPREL16");
            assert_eq!(
                reason,
                "VPE loader: apply_r_mips_gprel16: relative address 0x9000 out of range of gp register"
            );
            // 0x8000 (32768) is accepted by the kernel's `rel > 32768` test...
            let img = load(&build(0x8000), &legacy()).unwrap();
            assert_eq!(word(&img, B), 0x8f82_8000);
            // ...but not by the ABI (signed 16 bits): strict reports it.
            match load(&build(0x8000), &strict()) {
                Err(Error::SemanticsDiffer { sites }) => {
                    assert_eq!(sites.len(), 1);
                    assert!(
                        sites[0].contains("legacy 0x8f828000 elf error"),
                        "{}",
                        sites[0]
                    );
                }
                other => panic!("{other:?}"),
            }
            let img = load(&build(0x7ff0), &strict()).unwrap();
            assert_eq!(word(&img, B), 0x8f82_7ff0);
            assert_eq!(img.gp, Some(B + 0x10));
            // Below gp.
            let mut b = obj(e, &[0x8f82_0000, 0]);
            let data = b.progbits(".data", DATA, 16, vec![0; 4]);
            b.global("_gp", 0x7ff0, data as u16);
            b.global("y", 0, data as u16);
            b.rel(1, 0, 4, R_MIPS_GPREL16); // symbol #4 = y
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(
                word(&img, B),
                0x8f82_0000 | ((0u32.wrapping_sub(0x7ff0)) & 0xffff)
            );
        }
    }

    #[test]
    fn gprel16_kludge_differs_from_the_abi_when_gp_offs_is_not_zero() {
        for e in ENDIANS {
            let mut b = obj(e, &[0x8f82_0004]); // lw v0, 4(gp) → addend 4 in place
            let sdata = b.progbits(".sdata", DATA, 4, vec![0; 0x20]); // offset 4
            b.global("_gp", 0x7ff0, sdata as u16);
            let x = b.global("x", 0x10, sdata as u16);
            b.rel(1, 0, x, R_MIPS_GPREL16);
            let secbase = B + 4;
            let gp_addr = secbase + 0x7ff0;
            let gp_offs = gp_addr - (secbase & 0xffff_0000);
            assert_ne!(gp_offs, 0);
            let v = secbase + 0x10;
            let legacy_rel = (v
                .wrapping_add(gp_offs)
                .wrapping_add(4)
                .wrapping_sub(gp_addr)) as u16;
            let elf_rel = (i64::from(v) + 4 - i64::from(gp_addr)) as u32 as u16;
            assert_ne!(legacy_rel, elf_rel);
            let lw = 0x8f82_0000 | u32::from(legacy_rel);
            let ew = 0x8f82_0000 | u32::from(elf_rel);
            match load(&b.build(), &strict()) {
                Err(Error::SemanticsDiffer { sites }) => {
                    assert_eq!(
                        sites,
                        vec![format!(
                            ".text+0x0 ({B:#010x}) R_MIPS_GPREL16 symbol \"x\": legacy {lw:#010x} elf {ew:#010x}"
                        )]
                    );
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(word(&load(&b.build(), &legacy()).unwrap(), B), lw);
            assert_eq!(word(&load(&b.build(), &elf()).unwrap(), B), ew);
        }
    }

    #[test]
    fn case_22_pc16_branch_to_self() {
        for e in ENDIANS {
            // Legacy discards the addend: field 0 in place still gives -1.
            let mut b = obj(e, &[0, 0x1000_0000, 0]);
            let here = b.global("here", 4, 1);
            b.rel(1, 4, here, R_MIPS_PC16);
            let img = load(&b.build(), &legacy()).unwrap();
            assert_eq!(word(&img, B + 4), 0x1000_ffff);
            // With gas's in-place addend -1 both semantics agree.
            let mut b = obj(e, &[0, 0x1000_ffff, 0]);
            let here = b.global("here", 4, 1);
            b.rel(1, 4, here, R_MIPS_PC16);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(word(&img, B + 4), 0x1000_ffff);
            // Forward branch to .text+0x10 from 4: ((0x10 - 4) >> 2) - 1 = 2.
            let mut b = obj(e, &[0, 0x1000_ffff, 0, 0, 0]);
            let t = b.global("t", 0x10, 1);
            b.rel(1, 4, t, R_MIPS_PC16);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(word(&img, B + 4), 0x1000_0002);
        }
    }

    #[test]
    fn pc16_addend_zero_differs_in_strict() {
        let mut b = obj(Endian::Little, &[0, 0x1000_0000, 0]);
        let here = b.global("here", 4, 1);
        b.rel(1, 4, here, R_MIPS_PC16);
        assert!(matches!(
            load(&b.build(), &strict()),
            Err(Error::SemanticsDiffer { .. })
        ));
        assert_eq!(word(&load(&b.build(), &elf()).unwrap(), B + 4), 0x1000_0000);
    }

    #[test]
    fn case_23_types_without_a_handler() {
        for e in ENDIANS {
            for t in [1u8, 3, 8, 9, 11, 37] {
                let mut b = obj(e, &[0, 0]);
                let s = b.global("s", 0, 1);
                b.rel(1, 4, s, t);
                for opts in [strict(), legacy(), elf()] {
                    let r = load(&b.build(), &opts);
                    let msg = r.as_ref().unwrap_err().to_string();
                    let (tn, reason, rt, _) = reloc_err(r);
                    assert_eq!((tn.as_str(), rt), ("UNKNOWN", t));
                    assert!(reason.contains("no handler"), "{reason}");
                    assert!(msg.starts_with(
                        "VPE loader: .text+0x4 relocation type UNKNOWN for symbol \"s\" failed"
                    ));
                }
            }
        }
    }

    #[test]
    fn case_24_rela_on_alloc_target() {
        for e in ENDIANS {
            let mut b = obj(e, &[0]);
            b.rela(1);
            for opts in [strict(), legacy(), elf()] {
                let err = load(&b.build(), &opts).unwrap_err();
                assert!(matches!(err, Error::Rela { index: 2, .. }), "{err:?}");
                assert!(err
                    .to_string()
                    .starts_with("module VPE loader: REL relocation unsupported"));
            }
            // RELA for a non-ALLOC section is skipped like any relocation of it.
            let mut b = obj(e, &[0]);
            let c = b.progbits(".comment", 0, 1, vec![0; 4]);
            b.rela(c);
            load(&b.build(), &strict()).unwrap();
        }
    }

    #[test]
    fn case_25_common_symbols() {
        for e in ENDIANS {
            let mut b = obj(e, &[0, 0, 0, 0]); // .text 0x10
            let bss = b.nobits(".bss", DATA, 4, 16); // offset 0x10, image size 0x20
            b.sym("c1", 4, 64, (STB_GLOBAL << 4) | STT_OBJECT, SHN_COMMON);
            b.sym("c2", 8, 4, (STB_GLOBAL << 4) | STT_OBJECT, SHN_COMMON);
            let img = load(&b.build(), &legacy()).unwrap();
            assert_eq!(img.symbol("c1"), Some(B + 0x10), "at the start of .bss");
            assert_eq!(img.symbol("c2"), Some(B + 0x14), "stride = alignment of c1");
            assert_eq!(img.segments[0].mem_size, 0x20, "no space reserved");
            assert!(has_warning(&img, "COMMON symbol \"c1\""));
            let c1 = img.symbols.iter().find(|s| s.name == "c1").unwrap();
            assert_eq!(img.sections[c1.section.unwrap()].index, bss);
            // ELF: allocated after the image, aligned.
            let img = load(&b.build(), &elf()).unwrap();
            let c1 = B + 0x20; // ALIGN(B + 0x20, 4)
            let c2 = (c1 + 64 + 7) & !7;
            assert_eq!(img.symbol("c1"), Some(c1));
            assert_eq!(img.symbol("c2"), Some(c2));
            assert_eq!(img.segments[0].mem_size, c2 + 4 - B);
            match load(&b.build(), &strict()) {
                Err(Error::SemanticsDiffer { sites }) => assert_eq!(
                    sites,
                    vec![
                        format!(
                            "COMMON symbol \"c1\": legacy {:#010x} elf {c1:#010x}",
                            B + 0x10
                        ),
                        format!(
                            "COMMON symbol \"c2\": legacy {:#010x} elf {c2:#010x}",
                            B + 0x14
                        ),
                    ]
                ),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn common_relocation_sites_follow_the_chosen_semantics() {
        let e = Endian::Big;
        let mut b = obj(e, &[0, 0]);
        b.nobits(".bss", DATA, 4, 16); // offset 8, end 0x18
        let c = b.sym("c", 4, 4, (STB_GLOBAL << 4) | STT_OBJECT, SHN_COMMON);
        b.rel(1, 4, c, R_MIPS_32);
        assert_eq!(word(&load(&b.build(), &legacy()).unwrap(), B + 4), B + 8);
        assert_eq!(word(&load(&b.build(), &elf()).unwrap(), B + 4), B + 0x18);
        match load(&b.build(), &strict()) {
            Err(Error::SemanticsDiffer { sites }) => assert_eq!(sites.len(), 2, "{sites:?}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_symbol_of_a_non_alloc_section_is_refused_under_strict_and_legacy() {
        for e in ENDIANS {
            let mut b = obj(e, &[0, 0]);
            let note = b.progbits(".comment", 0, 1, vec![0x41; 8]);
            let n = b.sym("in_comment", 4, 0, STB_LOCAL << 4, note as u16);
            b.rel(1, 4, n, R_MIPS_32);
            let err = load(&b.build(), &legacy()).unwrap_err().to_string();
            assert!(
                err.starts_with(
                    "VPE loader: .text+0x4 relocation type MIPS_32 for symbol \"in_comment\" failed: its symbol is in non-ALLOC section [2] .comment"
                ),
                "{err}"
            );
            match load(&b.build(), &strict()) {
                Err(Error::SemanticsDiffer { sites }) => {
                    assert_eq!(sites.len(), 1, "{sites:?}");
                    assert!(
                        sites[0].starts_with(".text+0x4 ")
                            && sites[0]
                                .contains("R_MIPS_32 symbol \"in_comment\": legacy unknowable"),
                        "{sites:?}"
                    );
                }
                other => panic!("{other:?}"),
            }
            // The ELF ABI: the section's address is 0, as a linker gives it.
            let img = load(&b.build(), &elf()).unwrap();
            assert_eq!(word(&img, B + 4), 4);
            assert!(
                img.warnings
                    .iter()
                    .any(|w| w.message.contains("non-ALLOC section [2] .comment")),
                "{:?}",
                img.warnings
            );
        }
    }

    #[test]
    fn common_with_a_non_power_of_two_alignment_loads_under_legacy() {
        for e in ENDIANS {
            let mut b = obj(e, &[0, 0]);
            b.nobits(".bss", DATA, 4, 16); // offset 8
            let c = b.sym("c", 3, 4, (STB_GLOBAL << 4) | STT_OBJECT, SHN_COMMON);
            b.sym("d", 3, 4, (STB_GLOBAL << 4) | STT_OBJECT, SHN_COMMON);
            b.rel(1, 4, c, R_MIPS_32);
            let img = load(&b.build(), &legacy()).unwrap();
            // The kernel: first COMMON at .bss, the next one stride (value) 3 further.
            assert_eq!(word(&img, B + 4), B + 8);
            let d = img.symbols.iter().find(|s| s.name == "d").unwrap();
            assert_eq!(d.value, B + 8 + 3);
            assert!(
                img.warnings
                    .iter()
                    .any(|w| w.message.contains("not a power of two")),
                "{:?}",
                img.warnings
            );
            for opts in [strict(), elf()] {
                let err = load(&b.build(), &opts).unwrap_err().to_string();
                assert!(err.contains("--relocs legacy loads it as it did"), "{err}");
            }
        }
    }

    #[test]
    fn e_shstrndx_0_loads_under_legacy() {
        for e in ENDIANS {
            let mut b = obj(e, &[0, 0]);
            b.nobits(".bss", DATA, 4, 16);
            let mut bytes = b.build();
            bytes[50..52].copy_from_slice(&e.u16_bytes(0));
            let img = load(&bytes, &legacy()).unwrap();
            assert_eq!(img.entry, B);
            assert_eq!(img.shared, Some(0x8000_1000));
            assert!(
                img.warnings
                    .iter()
                    .any(|w| w.message.contains("e_shstrndx is 0")),
                "{:?}",
                img.warnings
            );
            for opts in [strict(), elf()] {
                let err = load(&bytes, &opts).unwrap_err().to_string();
                assert!(err.contains("e_shstrndx 0 is not a section index"), "{err}");
                assert!(err.contains("--relocs legacy does the same"), "{err}");
            }
        }
    }

    // ---- #26, #27: ET_EXEC ------------------------------------------------------------------

    #[test]
    fn case_26_exec_copied_to_paddr() {
        for e in ENDIANS {
            let mut b = Elf::new(e, ET_EXEC);
            let data: Vec<u8> = (0..0x100u32).map(|i| (i as u8) ^ 0x5a).collect();
            let text = b.progbits(".text", TEXT, 16, data.clone());
            b.secs[text - 1].addr = 0x8020_0000;
            let bss = b.nobits(".bss", DATA, 16, 0x100);
            b.secs[bss - 1].addr = 0x8020_0100;
            b.global("__start", 0x8020_0010, text as u16);
            b.global("vpe_shared", 0x8020_0180, bss as u16);
            b.e_entry = 0x8020_0000;
            b.pt_load(text, 0x8020_0000, 0x8020_0000, 0x200);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(img.kind, InputKind::Exec);
            assert_eq!(img.segments.len(), 1);
            let s = &img.segments[0];
            assert_eq!((s.addr, s.mem_size), (0x8020_0000, 0x200));
            assert_eq!(s.data, data);
            assert_eq!(img.byte_at(0x8020_0100), Some(0));
            assert_eq!(img.byte_at(0x8020_01ff), Some(0));
            assert_eq!(img.byte_at(0x8020_0200), None);
            assert_eq!(img.entry, 0x8020_0010, "__start, not e_entry");
            assert!(has_warning(&img, "e_entry 0x80200000 is ignored"));
            assert_eq!(img.shared, Some(0x8020_0180));
            assert_eq!(img.base, 0x8020_0000);
            let bss_s = img.sections.iter().find(|s| s.name == ".bss").unwrap();
            assert_eq!((bss_s.addr, bss_s.offset), (0x8020_0100, 0x100));
            let text_s = img.sections.iter().find(|s| s.name == ".text").unwrap();
            assert_eq!(text_s.addr, 0x8020_0000);
        }
    }

    #[test]
    fn exec_paddr_differs_from_vaddr_and_segments_sorted() {
        let e = Endian::Little;
        let mut b = Elf::new(e, ET_EXEC);
        let t1 = b.progbits(".text", TEXT, 4, vec![1; 8]);
        b.secs[t1 - 1].addr = 0x8030_0000;
        let t2 = b.progbits(".data", DATA, 4, vec![2; 8]);
        b.secs[t2 - 1].addr = 0x0010_0000;
        b.global("__start", 0x8030_0000, t1 as u16);
        b.pt_load(t1, 0x8030_0000, 0x8030_0000, 8);
        b.pt_load(t2, 0x0010_0000, 0x8000_0000, 8);
        let img = load(&b.build(), &strict()).unwrap();
        let addrs: Vec<u32> = img.segments.iter().map(|s| s.addr).collect();
        assert_eq!(addrs, [0x8000_0000, 0x8030_0000]);
        assert_eq!(img.base, 0x8000_0000);
        assert!(has_warning(
            &img,
            "p_vaddr 0x00100000 != p_paddr 0x80000000"
        ));
        let d = img.sections.iter().find(|s| s.name == ".data").unwrap();
        assert_eq!(d.addr, 0x8000_0000);
    }

    #[test]
    fn loaded_memory_limit_is_checked_before_allocating() {
        // ET_REL: a 255 MiB .bss in a tiny file is refused, naming the section and sizes.
        let e = Endian::Big;
        let mut b = Elf::new(e, ET_REL);
        let t = b.progbits(".text", TEXT, 4, vec![0; 16]);
        b.nobits(".bss", DATA, 16, 255 << 20);
        b.global("__start", 0, t as u16);
        let bytes = b.build();
        assert!(bytes.len() < 4096);
        let err = load(&bytes, &strict()).unwrap_err();
        assert_eq!(
            err,
            Error::MemoryLimit {
                what: "section [2] .bss".into(),
                size: 255 << 20,
                total: 0x10 + (255 << 20),
                limit: DEFAULT_MAX_MEM,
            }
        );
        assert!(
            err.to_string()
                .contains("over the limit of 0x1000000 bytes"),
            "{err}"
        );
        // A raised limit loads it, without materialising the .bss.
        let opts = Options {
            max_mem: Some(256 << 20),
            ..strict()
        };
        let img = load(&bytes, &opts).unwrap();
        assert_eq!(img.segments[0].mem_size, 0x10 + (255 << 20));
        assert_eq!(img.segments[0].data.len(), 0x10);
        // The Lantiq loader's vpe1_mem is the default limit there.
        let lantiq = Options {
            base: 0x83e0_0000,
            lantiq: Some(lantiq::LantiqLoader {
                vpe1_load_addr: 0x83e0_0000,
                vpe1_mem: 0x8,
                entry_override: true,
            }),
            ..strict()
        };
        let err = load(&bytes, &lantiq).unwrap_err();
        assert!(
            matches!(&err, Error::MemoryLimit { what, limit: 8, .. } if what == "section [1] .text"),
            "{err}"
        );
        // ET_EXEC: the p_memsz add up; the segment that goes over is named.
        let mut b = Elf::new(e, ET_EXEC);
        let t1 = b.progbits(".text", TEXT, 4, vec![1; 8]);
        let t2 = b.progbits(".data", DATA, 4, vec![2; 8]);
        b.global("__start", 0x1000_0000, t1 as u16);
        b.pt_load(t1, 0x1000_0000, 0x1000_0000, 0x80_0000);
        b.pt_load(t2, 0x2000_0000, 0x2000_0000, 0x90_0000);
        let err = load(&b.build(), &strict()).unwrap_err();
        assert_eq!(
            err,
            Error::MemoryLimit {
                what: "PT_LOAD program header #1 at 0x20000000".into(),
                size: 0x90_0000,
                total: 0x110_0000,
                limit: DEFAULT_MAX_MEM,
            }
        );
    }

    #[test]
    fn exec_at_kuseg_warns_and_a_mips_info_only_segment_is_dropped() {
        for e in ENDIANS {
            // GNU ld's default layout: .MIPS.abiflags alone in a PT_LOAD at 0x00400000, the
            // program at 0x10000000 (both KUSEG).
            let mut b = Elf::new(e, ET_EXEC);
            let abi = b.progbits(".MIPS.abiflags", SHF_ALLOC, 8, vec![0x11; 24]);
            b.secs[abi - 1].sh_type = SHT_MIPS_ABIFLAGS;
            b.secs[abi - 1].addr = 0x0040_0000;
            let t = b.progbits(".text", TEXT, 4, vec![1; 16]);
            b.secs[t - 1].addr = 0x1000_0000;
            b.global("__start", 0x1000_0000, t as u16);
            b.pt_load(abi, 0x0040_0000, 0x0040_0000, 24);
            b.pt_load(t, 0x1000_0000, 0x1000_0000, 0x20);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(img.segments.len(), 1, "{:?}", img.segments);
            assert_eq!(img.segments[0].addr, 0x1000_0000);
            assert!(has_warning(
                &img,
                "program header #0 at 0x00400000 holds only .MIPS.abiflags/.reginfo"
            ));
            assert!(has_warning(
                &img,
                "program header #1 at 0x10000000 is in KUSEG (below 0x80000000)"
            ));
            assert!(!has_warning(
                &img,
                "program header #0 at 0x00400000 is in KUSEG"
            ));
            // A .reginfo segment that also zero-fills memory (a .bss after it) is kept; KSEG0
            // segments get no KUSEG warning.
            let mut b = Elf::new(e, ET_EXEC);
            let t = b.progbits(".text", TEXT, 4, vec![1; 16]);
            let r = b.progbits(".reginfo", SHF_ALLOC, 4, vec![0x22; 24]);
            b.secs[r - 1].sh_type = SHT_MIPS_REGINFO;
            b.global("__start", 0x8030_0000, t as u16);
            b.pt_load(t, 0x8030_0000, 0x8030_0000, 0x10);
            b.pt_load(r, 0x8030_0010, 0x8030_0010, 0x40);
            let img = load(&b.build(), &strict()).unwrap();
            assert_eq!(img.segments.len(), 2);
            assert!(!has_warning(&img, "KUSEG"));
            assert!(!has_warning(&img, "holds only"));
        }
    }

    #[test]
    fn exec_overlap_and_filesz_errors() {
        let e = Endian::Big;
        let mut b = Elf::new(e, ET_EXEC);
        let t1 = b.progbits(".text", TEXT, 4, vec![1; 8]);
        let t2 = b.progbits(".data", DATA, 4, vec![2; 8]);
        b.global("__start", 0x8030_0000, t1 as u16);
        b.pt_load(t1, 0x8030_0000, 0x8030_0000, 0x10);
        b.pt_load(t2, 0x8030_0008, 0x8030_0008, 8);
        let err = load(&b.build(), &strict()).unwrap_err();
        assert!(
            matches!(&err, Error::Malformed { what, .. } if what.contains("overlaps")),
            "{err}"
        );
        let mut b = Elf::new(e, ET_EXEC);
        let t1 = b.progbits(".text", TEXT, 4, vec![1; 8]);
        b.global("__start", 0x8030_0000, t1 as u16);
        b.pt_load(t1, 0x8030_0000, 0x8030_0000, 4); // memsz < filesz
        let err = load(&b.build(), &strict()).unwrap_err();
        assert!(
            matches!(&err, Error::Malformed { what, .. } if what.contains("p_filesz")),
            "{err}"
        );
    }

    #[test]
    fn case_27_stripped_exec() {
        for e in ENDIANS {
            let mut b = Elf::new(e, ET_EXEC);
            let t = b.progbits(".text", TEXT, 4, vec![0; 16]);
            b.pt_load(t, 0x8020_0000, 0x8020_0000, 16);
            b.e_entry = 0x8020_0000;
            b.no_symtab = true;
            assert_eq!(load(&b.build(), &strict()).unwrap_err(), Error::NoStart);
        }
    }

    // ---- truncation, malformed input ----------------------------------------------------

    #[test]
    fn truncation_uses_capacity_then_real_length() {
        for e in ENDIANS {
            let b = obj(e, &[0; 8]);
            let bytes = b.build();
            // Capacity smaller than the section contents: the kernel's own check fires.
            let opts = Options {
                capacity: Some(0x30),
                ..strict()
            };
            match load(&bytes, &opts).unwrap_err() {
                Error::HeadersTruncated { len, .. } => assert_eq!(len, 0x30),
                other => panic!("{other:?}"),
            }
            // A file cut short: the kernel (capacity 256 KiB) would not notice; we do.
            let eh = Ehdr::parse(&bytes).unwrap();
            let cut = &bytes[..eh.e_shoff as usize + 10];
            let opts = Options {
                capacity: Some(P_SIZE),
                ..strict()
            };
            match load(cut, &opts).unwrap_err() {
                e @ Error::HeadersTruncated { .. } => {
                    assert!(e.to_string().starts_with(&format!(
                        "VPE loader: program length {} truncated",
                        cut.len()
                    )));
                }
                other => panic!("{other:?}"),
            }
            // A section whose contents lie past the end: SectionTruncated (kernel text).
            let mut bad = bytes.clone();
            let text_hdr = eh.e_shoff as usize + SHDR32_SIZE;
            put_u32(&mut bad, text_hdr + 20, e, 0x1000); // .text sh_size
            match load(&bad, &strict()).unwrap_err() {
                err @ Error::SectionTruncated { index: 1, .. } => {
                    assert!(err
                        .to_string()
                        .starts_with(&format!("VPE program length {} truncated", bad.len())));
                }
                other => panic!("{other:?}"),
            }
            let opts = Options {
                capacity: Some(0x100),
                ..strict()
            };
            match load(&bad, &opts).unwrap_err() {
                Error::SectionTruncated { len, .. } | Error::HeadersTruncated { len, .. } => {
                    assert_eq!(len, 0x100)
                }
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn out_of_range_indices_are_malformed() {
        for e in ENDIANS {
            let mut b = obj(e, &[0, 0]);
            let s = b.global("s", 0, 1);
            b.rel(1, 0, s, R_MIPS_32);
            let good = b.build();
            let eh = Ehdr::parse(&good).unwrap();
            let shdr = |i: usize| eh.e_shoff as usize + i * SHDR32_SIZE;
            let symtab = b.symtab_index();
            let sym_off = |i: usize| {
                let off = Reader::new(&good, e)
                    .shdr(eh.e_shoff, symtab)
                    .unwrap()
                    .sh_offset;
                off as usize + i * 16
            };
            let rel_off = Reader::new(&good, e).shdr(eh.e_shoff, 2).unwrap().sh_offset as usize;
            let mut cases: Vec<(Vec<u8>, &str)> = Vec::new();
            let mut x = good.clone();
            put_u16(&mut x, 50, e, 99);
            cases.push((x, "e_shstrndx 99"));
            let mut x = good.clone();
            put_u32(&mut x, shdr(symtab) + 24, e, 77);
            cases.push((x, "sh_link 77"));
            let mut x = good.clone();
            put_u16(&mut x, sym_off(1) + 14, e, 0x4444);
            cases.push((x, "st_shndx 0x4444"));
            let mut x = good.clone();
            put_u32(&mut x, sym_off(2), e, 0xffff);
            cases.push((x, "name offset 0xffff"));
            let mut x = good.clone();
            put_u32(&mut x, rel_off + 4, e, (200 << 8) | 2);
            cases.push((x, "symbol index 200"));
            let mut x = good.clone();
            put_u32(&mut x, rel_off, e, 6);
            cases.push((x, "r_offset 0x6 + 4"));
            let mut x = good.clone();
            put_u32(&mut x, shdr(1) + 16, e, 0xffff_fff0);
            put_u32(&mut x, shdr(1) + 20, e, 0x20);
            cases.push((x, "overflows 32 bits"));
            let mut huge = obj(e, &[0]);
            huge.progbits(".data", DATA, 0x8000_0000, vec![1; 4]);
            cases.push((huge.build(), "alignment padding"));
            // Without a loaded-memory limit (it would refuse the padding case first).
            let unlimited = Options {
                max_mem: Some(u32::MAX),
                ..strict()
            };
            for (bytes, needle) in cases {
                match load(&bytes, &unlimited) {
                    Err(Error::Malformed { what, .. }) => {
                        assert!(what.contains(needle), "{what} lacks {needle}")
                    }
                    other => panic!("{needle}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn no_panic_on_corrupted_inputs() {
        let mut b = obj(
            Endian::Big,
            &[LUI_AT, ADDIU_AT, 0x0c00_0000, 0x1000_ffff, 0x8f82_0000, 4],
        );
        let data = b.progbits(".data", DATA, 16, vec![0; 8]);
        b.nobits(".bss", DATA, 8, 8);
        b.global("_gp", 0x7ff0, data as u16);
        let s = b.global("s", 0, data as u16);
        b.sym("c", 4, 4, STB_GLOBAL << 4, SHN_COMMON);
        b.rel(1, 0, s, R_MIPS_HI16);
        b.rel(1, 4, s, R_MIPS_LO16);
        b.rel(1, 8, 1, R_MIPS_26);
        b.rel(1, 12, 1, R_MIPS_PC16);
        b.rel(1, 16, s, R_MIPS_GPREL16);
        b.rel(1, 20, s, R_MIPS_32);
        let mut x = Elf::new(Endian::Little, ET_EXEC);
        let t = x.progbits(".text", TEXT, 4, vec![7; 16]);
        x.global("__start", 0x8000_0000, t as u16);
        x.pt_load(t, 0x8000_0000, 0x8000_0000, 32);
        for bytes in [b.build(), x.build()] {
            for cut in 0..bytes.len() {
                for opts in [strict(), elf()] {
                    let _ = load(&bytes[..cut], &opts);
                }
            }
            for pos in 0..bytes.len() {
                for v in [0x00, 0xff, 0x80, 0x7f, bytes[pos] ^ 0x01, bytes[pos] ^ 0x10] {
                    let mut m = bytes.clone();
                    m[pos] = v;
                    for opts in [strict(), legacy(), elf()] {
                        let _ = load(&m, &opts);
                    }
                }
            }
        }
        // The intact object loads under legacy semantics.
        load(&b.build(), &legacy()).unwrap();
    }

    // ---- warnings -------------------------------------------------------------------------

    #[test]
    fn warnings_for_size_and_pic() {
        let mut b = obj(Endian::Little, &[0]);
        b.e_flags |= EF_MIPS_PIC | EF_MIPS_CPIC;
        b.progbits(".comment", 0, 1, vec![b'x'; P_SIZE as usize]);
        let img = load(&b.build(), &strict()).unwrap();
        assert!(has_warning(
            &img,
            "VPE loader: elf size too big. Perhaps strip unneeded symbols"
        ));
        assert!(has_warning(&img, "PIC/abicalls"));
    }

    #[test]
    fn symbols_kept_in_the_image() {
        let mut b = obj(Endian::Big, &[0, 0]);
        let c = b.progbits(".comment", 0, 1, vec![0; 4]);
        b.sym("file.c", 0, 0, STT_FILE, SHN_ABS);
        b.section_sym(1);
        b.global("undef", 0, SHN_UNDEF);
        b.global("in_comment", 0, c as u16);
        b.sym("fn", 4, 4, (STB_GLOBAL << 4) | STT_FUNC, 1);
        let img = load(&b.build(), &strict()).unwrap();
        let names: Vec<&str> = img.symbols.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["__start", "vpe_shared", "fn"]);
        let f = &img.symbols[2];
        assert_eq!((f.value, f.size, f.section), (B + 4, 4, Some(0)));
        assert_eq!(img.symbols[1].section, None, "ABS");
    }
}
