//! Relocations of an ET_REL: the seven REL types `vpe.c` handles, computed twice, once with
//! the legacy kernel's arithmetic (arch/mips/kernel/vpe.c `apply_r_mips_*`) and once with the
//! MIPS ELF ABI's (what GNU ld produces), and the list of sites where the two disagree.

use std::collections::{BTreeSet, HashMap};

use super::symbols::{Simplified, Symtab};
use super::{Input, PendingHi16, State};
use crate::elf::{
    Endian, REL32_SIZE, R_MIPS_26, R_MIPS_32, R_MIPS_GPREL16, R_MIPS_HI16, R_MIPS_LO16,
    R_MIPS_NONE, R_MIPS_PC16, SHF_ALLOC, SHN_ABS, SHN_COMMON, SHN_MIPS_SCOMMON, SHN_UNDEF,
    SHT_NOBITS, SHT_REL, SHT_RELA, STT_SECTION,
};
use crate::error::{Error, RelocationSite, Result};
use crate::image::Warning;

/// One relocation entry, validated: its word lies inside its (non-NOBITS) target section.
/// Decoded from the input when needed ([`RelSec::site`], [`RelSec::sites`]) rather than kept:
/// inputs can have millions. Its index is its position in the section and its address is
/// [`RelSec::location`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Site {
    pub r_offset: u32,
    /// `r_info` as in the file: symbol index << 8 | type.
    pub info: u32,
    /// Offset of the word in the image (meaningless for R_MIPS_NONE, which touches nothing).
    pub img_off: u32,
}

impl Site {
    /// Symbol table index.
    pub fn sym(&self) -> usize {
        (self.info >> 8) as usize
    }
    pub fn r_type(&self) -> u8 {
        (self.info & 0xff) as u8
    }
}

/// [`RelSec::hi16_partners`]: no partner.
pub(crate) const NO_PARTNER: u32 = u32::MAX;

/// A relocation section the kernel would process (REL or RELA, `sh_info` in range, target
/// ALLOC), in section header order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RelSec<'b> {
    pub index: usize,
    pub name: String,
    pub rela: bool,
    pub target: usize,
    pub target_name: String,
    /// The validated REL entries: `8 * n` bytes of the input (empty for RELA).
    entries: &'b [u8],
    /// The target section's bytes in the input (empty for NOBITS, which only R_MIPS_NONE may
    /// name): the unrelocated words the ELF pass reads, at `r_offset`.
    orig: &'b [u8],
    /// Some entry is R_MIPS_GPREL16.
    pub has_gprel: bool,
    endian: Endian,
    /// Offset of the target section in the image.
    toff: u32,
    /// The image base (to give each site its address).
    pub base: u32,
}

impl RelSec<'_> {
    fn decode(&self, b: &[u8]) -> Site {
        let r_offset = self.endian.read_u32([b[0], b[1], b[2], b[3]]);
        Site {
            r_offset,
            info: self.endian.read_u32([b[4], b[5], b[6], b[7]]),
            img_off: self.toff.wrapping_add(r_offset),
        }
    }

    /// Entry `k` (`k` below the number of entries).
    pub fn site(&self, k: usize) -> Site {
        self.decode(&self.entries[k * REL32_SIZE..(k + 1) * REL32_SIZE])
    }

    /// All entries, in order.
    pub fn sites(&self) -> impl Iterator<Item = Site> + '_ {
        self.sites_from(0)
    }

    /// The entries from `k` on, in order (none if `k` is past the end).
    pub fn sites_from(&self, k: usize) -> impl Iterator<Item = Site> + '_ {
        self.entries
            .get(k.saturating_mul(REL32_SIZE)..)
            .unwrap_or(&[])
            .chunks_exact(REL32_SIZE)
            .map(move |b| self.decode(b))
    }

    /// For every entry index, the entry index of the next R_MIPS_LO16 against the same symbol
    /// if the entry is an R_MIPS_HI16 (GNU ld's pairing), else [`NO_PARTNER`]. Compilers put
    /// the LO16 right after its HI16s, so a short look ahead finds almost every partner; the
    /// rest come from one backward scan (a forward search per HI16 would be quadratic on
    /// hostile input: many HI16s, no LO16).
    pub fn hi16_partners(&self) -> Vec<u32> {
        const LOOK_AHEAD: usize = 8;
        let n = self.entries.len() / REL32_SIZE;
        let mut out = vec![NO_PARTNER; n];
        let mut unresolved = false;
        for (k, slot) in out.iter_mut().enumerate() {
            let s = self.site(k);
            if s.r_type() != R_MIPS_HI16 {
                continue;
            }
            let hit = (k + 1..n.min(k + 1 + LOOK_AHEAD))
                .map(|j| (j, self.site(j)))
                .find(|(_, t)| t.r_type() == R_MIPS_LO16 && t.sym() == s.sym());
            match hit {
                // The window is searched in order from k + 1: its first match is the first
                // match overall.
                Some((j, _)) => *slot = j as u32,
                None => unresolved = true,
            }
        }
        if unresolved {
            let mut next_lo: HashMap<usize, usize> = HashMap::new();
            for k in (0..n).rev() {
                let s = self.site(k);
                match s.r_type() {
                    R_MIPS_LO16 => {
                        next_lo.insert(s.sym(), k);
                    }
                    R_MIPS_HI16 if out[k] == NO_PARTNER => {
                        if let Some(&lo) = next_lo.get(&s.sym()) {
                            out[k] = lo as u32;
                        }
                    }
                    _ => {}
                }
            }
        }
        out
    }

    /// Final address of a site's word (`sechdrs[sh_info].sh_addr + r_offset`).
    pub fn location(&self, site: &Site) -> u32 {
        self.base.wrapping_add(site.img_off)
    }
}

/// The kernel's `rstrs[]` (vpe.c): names printed in "relocation type %s ... failed".
pub(crate) fn legacy_type_name(t: u8) -> &'static str {
    match t {
        R_MIPS_NONE => "MIPS_NONE",
        R_MIPS_32 => "MIPS_32",
        R_MIPS_26 => "MIPS_26",
        R_MIPS_HI16 => "MIPS_HI16",
        R_MIPS_LO16 => "MIPS_LO16",
        R_MIPS_GPREL16 => "MIPS_GPREL16",
        R_MIPS_PC16 => "MIPS_PC16",
        _ => "UNKNOWN",
    }
}

/// The ABI name of a relocation type (for messages).
pub(crate) fn abi_type_name(t: u8) -> String {
    let n = match t {
        0 => "R_MIPS_NONE",
        1 => "R_MIPS_16",
        2 => "R_MIPS_32",
        3 => "R_MIPS_REL32",
        4 => "R_MIPS_26",
        5 => "R_MIPS_HI16",
        6 => "R_MIPS_LO16",
        7 => "R_MIPS_GPREL16",
        8 => "R_MIPS_LITERAL",
        9 => "R_MIPS_GOT16",
        10 => "R_MIPS_PC16",
        11 => "R_MIPS_CALL16",
        12 => "R_MIPS_GPREL32",
        37 => "R_MIPS_JALR",
        _ => return format!("relocation type {t}"),
    };
    n.to_string()
}

/// Find and validate every relocation `vpe_elfload` would apply. Everything the kernel did not
/// check (symbol index, `r_offset` inside the target) is a `Malformed` error here. Also
/// returns, per symbol, whether it is defined in a section that is not placed (non-ALLOC).
pub(crate) fn collect<'b>(
    inp: &Input<'b>,
    tab: &Symtab,
    offsets: &[Option<u32>],
    base: u32,
    warnings: &mut Vec<Warning>,
) -> Result<(Vec<RelSec<'b>>, Vec<bool>)> {
    let shnum = inp.shdrs.len();
    let nsyms = tab.entries.len();
    let mut out = Vec::new();
    let mut warned_nonalloc = BTreeSet::new();
    // Per symbol (computed once: relocations outnumber symbols and hit them at random): is it
    // defined in a section that is not placed?
    let nonalloc: Vec<bool> = tab
        .entries
        .iter()
        .map(|e| {
            let special = matches!(
                e.sym.st_shndx,
                SHN_UNDEF | SHN_ABS | SHN_COMMON | SHN_MIPS_SCOMMON
            );
            !special
                && offsets
                    .get(usize::from(e.sym.st_shndx))
                    .copied()
                    .flatten()
                    .is_none()
        })
        .collect();
    for (i, sh) in inp.shdrs.iter().enumerate().skip(1) {
        if sh.sh_type != SHT_REL && sh.sh_type != SHT_RELA {
            continue;
        }
        // "Not a valid relocation section?" / "Don't bother with non-allocated sections"
        let target = sh.sh_info as usize;
        if target >= shnum {
            // Skipped silently by the kernel; a linker never writes this, so say so.
            warnings.push(Warning::new(format!(
                "relocation section {} (section {i}) applies to section {target}, which does not exist ({shnum} sections): the legacy loader skipped it, and so does the conversion",
                inp.names[i]
            )));
            continue;
        }
        if inp.shdrs[target].sh_flags & SHF_ALLOC == 0 {
            continue;
        }
        let name = inp.names[i].clone();
        let target_name = inp.names[target].clone();
        let mut rs = RelSec {
            index: i,
            name: name.clone(),
            rela: sh.sh_type == SHT_RELA,
            target,
            target_name: target_name.clone(),
            entries: &[],
            orig: &[],
            has_gprel: false,
            endian: inp.eh.endian,
            toff: 0,
            base,
        };
        if rs.rela {
            // The kernel stops at this section; nothing in it is read.
            out.push(rs);
            continue;
        }
        let n = sh.sh_size as usize / REL32_SIZE;
        let entries = &inp.section_bytes(i, "relocation section")?[..n * REL32_SIZE];
        let tsh = inp.shdrs[target];
        let toff = offsets[target].unwrap_or(0);
        let e = inp.eh.endian;
        let mut has_gprel = false;
        for (k, b) in entries.chunks_exact(REL32_SIZE).enumerate() {
            let r_offset = e.read_u32([b[0], b[1], b[2], b[3]]);
            let r_info = e.read_u32([b[4], b[5], b[6], b[7]]);
            let at = || u64::from(sh.sh_offset) + (k * REL32_SIZE) as u64;
            let sym = (r_info >> 8) as usize;
            let r_type = (r_info & 0xff) as u8;
            if sym >= nsyms {
                return Err(Error::Malformed {
                    what: format!(
                        "relocation #{k} in [{i}] {name}: symbol index {sym} is outside the symbol table ({nsyms} entries)"
                    ),
                    at: at(),
                });
            }
            if r_type != R_MIPS_NONE {
                if tsh.sh_type == SHT_NOBITS {
                    return Err(Error::Malformed {
                        what: format!(
                            "relocation #{k} in [{i}] {name} patches NOBITS section [{target}] {target_name}, which has no contents"
                        ),
                        at: at(),
                    });
                }
                if u64::from(r_offset) + 4 > u64::from(tsh.sh_size) {
                    return Err(Error::Malformed {
                        what: format!(
                            "relocation #{k} in [{i}] {name}: r_offset {r_offset:#x} + 4 lies outside [{target}] {target_name} ({:#x} bytes)",
                            tsh.sh_size
                        ),
                        at: at(),
                    });
                }
                has_gprel |= r_type == R_MIPS_GPREL16;
            }
            if nonalloc[sym] && r_type != R_MIPS_NONE && warned_nonalloc.insert(sym) {
                let s = tab.entries[sym].sym;
                let sec = usize::from(s.st_shndx);
                warnings.push(Warning::new(format!(
                    "relocation #{k} in [{i}] {name} uses symbol \"{}\" of non-ALLOC section [{sec}] {}: the legacy loader used its address in its temporary buffer, which nobody can know; --relocs elf uses the section's address 0 as a linker does",
                    tab.display_name(inp, sym),
                    inp.names.get(sec).map(String::as_str).unwrap_or("?")
                )));
            }
        }
        rs.entries = entries;
        if tsh.sh_type != SHT_NOBITS {
            // The image copy read the same bytes, so this cannot fail here.
            rs.orig = inp.section_bytes(target, "section")?;
        }
        rs.has_gprel = has_gprel;
        rs.toff = toff;
        out.push(rs);
    }
    Ok((out, nonalloc))
}

/// What every pass reads: the input, its symbols (both semantics) and its relocations.
pub(crate) struct Ctx<'a, 'b> {
    pub inp: &'a Input<'b>,
    pub tab: &'a Symtab,
    pub simp: &'a Simplified,
    pub rels: &'a [RelSec<'b>],
    /// Per symbol: defined in a non-ALLOC section (its legacy value is unknowable).
    pub nonalloc: &'a [bool],
}

/// Both relocated images and where they differ.
#[derive(Debug)]
pub(crate) struct Outcome {
    /// Image bytes relocated the legacy way (up to the first legacy failure).
    pub legacy: Vec<u8>,
    /// The legacy kernel's failure, if it had one (the load would have aborted there).
    pub legacy_err: Option<Error>,
    /// Image bytes relocated the MIPS ELF ABI way.
    pub elf: Vec<u8>,
    /// ELF failures (sites left unpatched), in stream order.
    pub elf_errs: Vec<Error>,
    /// One line per differing site (format of `Error::SemanticsDiffer`).
    pub diffs: Vec<String>,
    /// The first site whose legacy result cannot be known (a symbol of a non-ALLOC section:
    /// the kernel used its address in the temporary buffer).
    pub unknowable: Option<Error>,
}

fn rd(buf: &[u8], off: u32, e: Endian) -> u32 {
    let o = off as usize;
    e.read_u32([buf[o], buf[o + 1], buf[o + 2], buf[o + 3]])
}

fn wr(buf: &mut [u8], off: u32, e: Endian, v: u32) {
    let o = off as usize;
    buf[o..o + 4].copy_from_slice(&e.u32_bytes(v));
}

fn sext16(v: u32) -> u32 {
    v as u16 as i16 as i32 as u32
}

/// The error for entry `entry` (`site`) of `rs`.
fn error(
    inp: &Input,
    tab: &Symtab,
    rs: &RelSec,
    entry: usize,
    site: &Site,
    reason: String,
) -> Error {
    Error::Relocation {
        site: Box::new(RelocationSite {
            index: entry,
            section: rs.name.clone(),
            target: rs.target_name.clone(),
            r_offset: site.r_offset,
            location: rs.location(site),
            r_type: site.r_type(),
            type_name: legacy_type_name(site.r_type()).to_string(),
            // The kernel printed `strtab + sym->st_name`: "" for a section symbol.
            symbol: tab
                .entries
                .get(site.sym())
                .map(|e| e.name.clone())
                .unwrap_or_default(),
            symbol_section: tab.section_of(inp, site.sym()),
        }),
        reason,
    }
}

fn no_handler(t: u8) -> String {
    let pic = matches!(t, 9 | 11 | 37 | 29 | 30 | 20..=23);
    format!(
        "the legacy kernel has no handler for {} (reloc_handlers[{t}] is empty or past the end of the table) and would have oopsed{}",
        abi_type_name(t),
        if pic { "; build without PIC: -mno-abicalls -fno-pic" } else { "" }
    )
}

/// Below this many entries a second thread costs about what it saves.
const PARALLEL_MIN_ENTRIES: usize = 16 * 1024;

#[cfg(test)]
thread_local! {
    /// Tests: make the ELF pass read the unrelocated image instead of the input, sequentially
    /// (the reference the input-reading pass is compared with).
    pub(crate) static READ_ORIG_FROM_IMAGE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn read_orig_from_image() -> bool {
    #[cfg(test)]
    if READ_ORIG_FROM_IMAGE.with(|c| c.get()) {
        return true;
    }
    false
}

/// Where the ELF pass reads unrelocated words.
#[derive(Clone, Copy)]
enum Orig<'a> {
    /// The target section's bytes in the input ([`RelSec`]'s `orig`, at `r_offset`).
    Input,
    /// The unrelocated image (at the site's image offset).
    Image(&'a [u8]),
}

impl Orig<'_> {
    #[inline]
    fn word(self, rs: &RelSec, site: &Site, e: Endian) -> u32 {
        match self {
            Orig::Input => rd(rs.orig, site.r_offset, e),
            Orig::Image(img) => rd(img, site.img_off, e),
        }
    }
}

/// Apply all relocations both ways. `image` and `elf` each hold the laid-out, unrelocated
/// bytes (every site is inside them). `st` evolves exactly as vpe.c's file-static `gp_addr`/`mips_hi16_list`
/// (the caller has already applied this load's `save_gp_address`).
pub(crate) fn apply(
    cx: &Ctx,
    image: Vec<u8>,
    mut elf: Vec<u8>,
    base: u32,
    st: &mut State,
    warnings: &mut Vec<Warning>,
) -> Outcome {
    let Ctx {
        inp,
        tab,
        simp,
        rels,
        nonalloc,
    } = *cx;
    let e = inp.eh.endian;
    let has_gprel = rels.iter().any(|r| r.has_gprel);
    if has_gprel && simp.gp_save.is_none() {
        warnings.push(Warning::new(format!(
            "R_MIPS_GPREL16 relocations but no _gp symbol: the legacy loader used gp_addr {:#010x} left by the previous load (0 after boot)",
            st.gp_addr
        )));
    }
    // `image` and `elf` start as identical unrelocated bytes. The ELF pass reads unrelocated
    // words and writes `elf`; the legacy pass relocates `image` in place (two image-sized
    // buffers, not three). The ELF pass's warnings are kept apart and come after the legacy
    // pass's, as always.
    //
    // Placed sections never overlap (each offset is the kernel's ALIGN(size, a) >= size), so a
    // target section's unrelocated words are its bytes in the input: the ELF pass reads those,
    // and on large inputs runs on a second thread while the legacy pass relocates `image`.
    let entries: usize = rels.iter().map(|r| r.entries.len() / REL32_SIZE).sum();
    let mut legacy = image;
    let (elf_fail, mut elf_warnings, legacy_err) =
        if entries >= PARALLEL_MIN_ENTRIES && !read_orig_from_image() {
            std::thread::scope(|sc| {
                let elf_side = sc.spawn(|| {
                    let mut w = Vec::new();
                    let fails = elf_pass(cx, Orig::Input, &mut elf, &mut w);
                    (fails, w)
                });
                let legacy_err = legacy_pass(cx, &mut legacy, base, st, warnings).err();
                let (fails, w) = elf_side
                    .join()
                    .unwrap_or_else(|p| std::panic::resume_unwind(p));
                (fails, w, legacy_err)
            })
        } else {
            let orig = if read_orig_from_image() {
                Orig::Image(&legacy)
            } else {
                Orig::Input
            };
            let mut w = Vec::new();
            let fails = elf_pass(cx, orig, &mut elf, &mut w);
            let legacy_err = legacy_pass(cx, &mut legacy, base, st, warnings).err();
            (fails, w, legacy_err)
        };
    debug_assert!(elf_fail
        .windows(2)
        .all(|w| (w[0].0, w[0].1) < (w[1].0, w[1].1)));
    if legacy_err.is_none() {
        for p in st
            .hi16
            .iter()
            .rev()
            .filter(|p| p.generation == st.generation)
        {
            warnings.push(Warning::new(format!(
                "orphan R_MIPS_HI16 at {:#010x} (symbol value {:#010x}): no R_MIPS_LO16 followed, so the legacy loader left it unpatched and keeps it pending into the next load",
                p.location, p.value
            )));
        }
    }
    warnings.append(&mut elf_warnings);

    let mut diffs = Vec::new();
    let mut unknowable = None;
    // Words already compared (every non-NONE site lies inside the image): one bit per byte
    // offset, first site of a word wins.
    let mut seen = vec![0u64; legacy.len().div_ceil(64)];
    for (ri, rs) in rels.iter().enumerate() {
        for (si, site) in rs.sites().enumerate() {
            let site = &site;
            if site.r_type() == R_MIPS_NONE {
                continue;
            }
            let (word, bit) = (site.img_off as usize / 64, 1u64 << (site.img_off % 64));
            if seen[word] & bit != 0 {
                continue;
            }
            seen[word] |= bit;
            if nonalloc[site.sym()] {
                let sec = usize::from(tab.entries[site.sym()].sym.st_shndx);
                let why = format!(
                    "its symbol is in non-ALLOC section [{sec}] {}, which the legacy loader left in its temporary buffer: the address it used there cannot be known, so its result cannot be reproduced (--relocs elf uses the section's address 0, as a linker does)",
                    inp.names.get(sec).map(String::as_str).unwrap_or("?")
                );
                diffs.push(format!(
                    "{}+{:#x} ({:#010x}) {} symbol \"{}\": legacy unknowable ({why})",
                    rs.target_name,
                    site.r_offset,
                    rs.location(site),
                    abi_type_name(site.r_type()),
                    tab.display_name(inp, site.sym())
                ));
                if unknowable.is_none() {
                    unknowable = Some(error(inp, tab, rs, si, site, why));
                }
                continue;
            }
            let lw = rd(&legacy, site.img_off, e);
            let prefix = || {
                format!(
                    "{}+{:#x} ({:#010x}) {} symbol \"{}\"",
                    rs.target_name,
                    site.r_offset,
                    rs.location(site),
                    abi_type_name(site.r_type()),
                    tab.display_name(inp, site.sym())
                )
            };
            // `elf_fail` is in (section, site) order: a binary search keeps this linear even
            // when every site fails (a hostile object with a million GPREL16 and no _gp).
            if let Some((_, _, reason)) = elf_fail
                .binary_search_by(|(r, s, _)| (*r, *s).cmp(&(ri, si)))
                .ok()
                .map(|k| &elf_fail[k])
            {
                diffs.push(format!(
                    "{}: legacy {lw:#010x} elf error ({reason})",
                    prefix()
                ));
                continue;
            }
            let ew = rd(&elf, site.img_off, e);
            if lw != ew {
                diffs.push(format!("{}: legacy {lw:#010x} elf {ew:#010x}", prefix()));
            }
        }
    }
    for &i in &simp.commons {
        if simp.legacy[i] != simp.elf[i] {
            diffs.push(format!(
                "COMMON symbol \"{}\": legacy {:#010x} elf {:#010x}",
                tab.entries[i].name, simp.legacy[i], simp.elf[i]
            ));
        }
    }
    let elf_errs = elf_fail
        .into_iter()
        .map(|(ri, si, reason)| error(inp, tab, &rels[ri], si, &rels[ri].site(si), reason))
        .collect();
    Outcome {
        legacy,
        legacy_err,
        elf,
        elf_errs,
        diffs,
        unknowable,
    }
}

/// `apply_relocations` of vpe.c with the seven `apply_r_mips_*` handlers; stops at the first
/// failure like the kernel.
fn legacy_pass(
    cx: &Ctx,
    buf: &mut [u8],
    base: u32,
    st: &mut State,
    warnings: &mut Vec<Warning>,
) -> Result<()> {
    let Ctx {
        inp,
        tab,
        simp,
        rels,
        ..
    } = *cx;
    let e = inp.eh.endian;
    let mut warned_zero = BTreeSet::new();
    for rs in rels {
        if rs.rela {
            // include/linux/moduleloader.h stub apply_relocate_add().
            return Err(Error::Rela {
                index: rs.index,
                section: rs.name.clone(),
            });
        }
        for (entry, site) in rs.sites().enumerate() {
            let site = &site;
            let v = simp.legacy[site.sym()];
            if v == 0 && warned_zero.insert(site.sym()) {
                warnings.push(Warning::new(format!(
                    "VPE loader: undefined weak symbol {} (value 0, relocation #{} in {} resolved against 0)",
                    tab.display_name(inp, site.sym()),
                    entry,
                    rs.name
                )));
            }
            let fail = |reason: String| error(inp, tab, rs, entry, site, reason);
            let off = site.img_off;
            match site.r_type() {
                R_MIPS_NONE => {}
                R_MIPS_32 => wr(buf, off, e, rd(buf, off, e).wrapping_add(v)),
                R_MIPS_26 => {
                    if v % 4 != 0 {
                        return Err(fail(
                            "VPE loader: apply_r_mips_26: unaligned relocation".into(),
                        ));
                    }
                    // field = (field + v/4) mod 2^26; the region check is commented out.
                    let insn = rd(buf, off, e);
                    wr(
                        buf,
                        off,
                        e,
                        (insn & !0x03ff_ffff) | (insn.wrapping_add(v >> 2) & 0x03ff_ffff),
                    );
                }
                R_MIPS_HI16 => st.hi16.push(PendingHi16 {
                    location: rs.location(site),
                    value: v,
                    generation: st.generation,
                }),
                R_MIPS_LO16 => {
                    let insnlo = rd(buf, off, e);
                    let vallo = sext16(insnlo & 0xffff);
                    // mips_hi16_list is LIFO: the most recent HI16 first.
                    while let Some(hi) = st.hi16.pop() {
                        if hi.value != v {
                            st.hi16.clear();
                            return Err(fail(
                                "VPE loader: apply_r_mips_lo16/hi16: inconsistent value information"
                                    .into(),
                            ));
                        }
                        if hi.generation != st.generation {
                            warnings.push(Warning::new(format!(
                                "R_MIPS_LO16 relocation #{} in {} consumed an R_MIPS_HI16 left pending by a previous load: the legacy loader patched {:#010x} in the previous program's (freed) memory",
                                entry, rs.name, hi.location
                            )));
                            continue;
                        }
                        let hoff = hi.location.wrapping_sub(base);
                        let insn = rd(buf, hoff, e);
                        let val = ((insn & 0xffff) << 16).wrapping_add(vallo).wrapping_add(v);
                        let val = ((val >> 16) + u32::from(val & 0x8000 != 0)) & 0xffff;
                        wr(buf, hoff, e, (insn & !0xffff) | val);
                    }
                    let val = v.wrapping_add(vallo);
                    wr(buf, off, e, (insnlo & !0xffff) | (val & 0xffff));
                }
                R_MIPS_GPREL16 => {
                    let insn = rd(buf, off, e);
                    let rel: i32 = if insn & 0xffff == 0 {
                        v.wrapping_sub(st.gp_addr) as i32
                    } else {
                        // "kludge!": .sbss + gp(relative) + offset
                        v.wrapping_add(st.gp_offs)
                            .wrapping_add(sext16(insn & 0xffff))
                            .wrapping_sub(st.gp_addr) as u16 as i16 as i32
                    };
                    if !(-32768..=32768).contains(&rel) {
                        return Err(fail(format!(
                            "VPE loader: apply_r_mips_gprel16: relative address {:#x} out of range of gp register",
                            rel as u32
                        )));
                    }
                    wr(buf, off, e, (insn & 0xffff_0000) | (rel as u32 & 0xffff));
                }
                R_MIPS_PC16 => {
                    let insn = rd(buf, off, e);
                    // Instructions, not bytes, minus the delay slot; the addend is discarded.
                    let rel = ((v.wrapping_sub(rs.location(site)) as i32) >> 2).wrapping_sub(1);
                    if !(-32768..=32768).contains(&rel) {
                        return Err(fail(format!(
                            "VPE loader: apply_r_mips_pc16: relative address out of range {:#x}",
                            rel as u32
                        )));
                    }
                    wr(buf, off, e, (insn & 0xffff_0000) | (rel as u32 & 0xffff));
                }
                t => return Err(fail(no_handler(t))),
            }
        }
    }
    Ok(())
}

/// The MIPS ELF ABI (o32, REL) values, as GNU ld computes them; continues past failures and
/// returns them as `(relsec, site, reason)`.
fn elf_pass(
    cx: &Ctx,
    orig: Orig,
    buf: &mut [u8],
    warnings: &mut Vec<Warning>,
) -> Vec<(usize, usize, String)> {
    let Ctx {
        inp,
        tab,
        simp,
        rels,
        ..
    } = *cx;
    let e = inp.eh.endian;
    let mut fails = Vec::new();
    // Per symbol, computed once (relocations hit symbols at random): bit 0 undefined,
    // bit 1 STT_SECTION.
    const UNDEF: u8 = 1;
    const SECTION: u8 = 2;
    let meta: Vec<u8> = tab
        .entries
        .iter()
        .map(|x| {
            let undef = if x.sym.st_shndx == SHN_UNDEF {
                UNDEF
            } else {
                0
            };
            let section = if x.sym.typ() == STT_SECTION {
                SECTION
            } else {
                0
            };
            undef | section
        })
        .collect();
    for (ri, rs) in rels.iter().enumerate() {
        if rs.rela {
            continue;
        }
        let partners = rs.hi16_partners();
        for (si, site) in rs.sites().enumerate() {
            let site = &site;
            let s = simp.elf[site.sym()];
            let m = meta[site.sym()];
            let weak_undef = m & UNDEF != 0;
            let p = rs.location(site);
            let off = site.img_off;
            let r_type = site.r_type();
            let name = || abi_type_name(r_type);
            let trunc = |what: String| {
                format!(
                    "MIPS ELF ABI: relocation truncated to fit: {} ({what})",
                    name()
                )
            };
            let result: std::result::Result<Option<u32>, String> = match r_type {
                R_MIPS_NONE => Ok(None),
                R_MIPS_32 => Ok(Some(s.wrapping_add(orig.word(rs, site, e)))),
                R_MIPS_26 => {
                    let insn = orig.word(rs, site, e);
                    let a = (insn & 0x03ff_ffff) << 2;
                    // GNU ld (elfxx-mips.c): section symbols take A << 2 unsigned, others
                    // sign-extended from 28 bits; then + S. The ABI text's
                    // `((A << 2) | (P & 0xf0000000)) + S` has the same low 28 bits, but S
                    // already carries the region here, so the region check uses A + S.
                    let value = if m & SECTION != 0 {
                        a.wrapping_add(s)
                    } else {
                        (((a << 4) as i32 >> 4) as u32).wrapping_add(s)
                    };
                    if !weak_undef && value & 3 != 0 {
                        Err(format!(
                            "MIPS ELF ABI: {} target {value:#010x} is not word-aligned",
                            name()
                        ))
                    } else if !weak_undef && value >> 28 != p.wrapping_add(4) >> 28 {
                        Err(trunc(format!(
                            "target {value:#010x} outside the 256 MiB region of {:#010x}",
                            p.wrapping_add(4)
                        )))
                    } else {
                        Ok(Some((insn & 0xfc00_0000) | ((value >> 2) & 0x03ff_ffff)))
                    }
                }
                R_MIPS_HI16 => {
                    let insn = orig.word(rs, site, e);
                    // GNU ld: the next LO16 against the same symbol in the same section.
                    let lo = partners
                        .get(si)
                        .filter(|&&k| k != NO_PARTNER)
                        .map(|&k| rs.site(k as usize));
                    let alo = match lo {
                        Some(lo) => sext16(orig.word(rs, &lo, e) & 0xffff),
                        None => {
                            warnings.push(Warning::new(format!(
                                "MIPS ELF ABI: can't find matching LO16 reloc against `{}' for R_MIPS_HI16 at {:#x} in section `{}' (relocation #{} in {}); low half taken as 0",
                                tab.display_name(inp, site.sym()),
                                site.r_offset,
                                rs.target_name,
                                si,
                                rs.name
                            )));
                            0
                        }
                    };
                    let ahl = ((insn & 0xffff) << 16).wrapping_add(alo);
                    let hi = (ahl.wrapping_add(s).wrapping_add(0x8000) >> 16) & 0xffff;
                    Ok(Some((insn & 0xffff_0000) | hi))
                }
                R_MIPS_LO16 => {
                    let insn = orig.word(rs, site, e);
                    let lo = s.wrapping_add(sext16(insn & 0xffff)) & 0xffff;
                    Ok(Some((insn & 0xffff_0000) | lo))
                }
                R_MIPS_GPREL16 => {
                    let insn = orig.word(rs, site, e);
                    match simp.elf_gp {
                        None => Err(format!(
                            "MIPS ELF ABI: {} needs _gp, which this object does not define (GNU ld would define it when linking)",
                            name()
                        )),
                        Some(gp) => {
                            let val = i64::from(s) + i64::from(sext16(insn & 0xffff) as i32)
                                - i64::from(gp);
                            if (-32768..=32767).contains(&val) {
                                Ok(Some((insn & 0xffff_0000) | (val as u32 & 0xffff)))
                            } else {
                                Err(trunc(format!("S + A - GP = {val:#x}")))
                            }
                        }
                    }
                }
                R_MIPS_PC16 => {
                    let insn = orig.word(rs, site, e);
                    let a = i64::from(sext16(insn & 0xffff) as i32) << 2;
                    let target = i64::from(s) + a;
                    let val = target - i64::from(p);
                    if !weak_undef && target & 3 != 0 {
                        Err(format!(
                            "MIPS ELF ABI: {} target {target:#x} is not word-aligned",
                            name()
                        ))
                    } else if !weak_undef && !(-0x20000..0x20000).contains(&val) {
                        Err(trunc(format!("S + A - P = {val:#x}")))
                    } else {
                        Ok(Some((insn & 0xffff_0000) | ((val >> 2) as u32 & 0xffff)))
                    }
                }
                t => Err(no_handler(t)),
            };
            match result {
                Ok(Some(w)) => wr(buf, off, e, w),
                Ok(None) => {}
                Err(reason) => fails.push((ri, si, reason)),
            }
        }
    }
    fails
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A REL section of `(type, symbol)` entries.
    fn rel_entries(sites: &[(u8, u32)]) -> Vec<u8> {
        let mut b = Vec::new();
        for (k, &(t, sym)) in sites.iter().enumerate() {
            b.extend_from_slice(&(4 * k as u32).to_be_bytes());
            b.extend_from_slice(&((sym << 8) | u32::from(t)).to_be_bytes());
        }
        b
    }

    fn partners_of(sites: &[(u8, u32)]) -> Vec<u32> {
        let entries = rel_entries(sites);
        RelSec {
            index: 1,
            name: ".rel.text".into(),
            rela: false,
            target: 2,
            target_name: ".text".into(),
            entries: &entries,
            orig: &[],
            has_gprel: false,
            endian: Endian::Big,
            toff: 0,
            base: 0,
        }
        .hi16_partners()
    }

    /// GNU ld's rule, written the obvious (quadratic) way.
    fn partners_reference(sites: &[(u8, u32)]) -> Vec<u32> {
        (0..sites.len())
            .map(|k| match sites[k] {
                (R_MIPS_HI16, sym) => (k + 1..sites.len())
                    .find(|&j| sites[j] == (R_MIPS_LO16, sym))
                    .map_or(NO_PARTNER, |j| j as u32),
                _ => NO_PARTNER,
            })
            .collect()
    }

    #[test]
    fn hi16_partners_near_far_and_missing() {
        let mut sites = vec![(R_MIPS_HI16, 1)];
        sites.extend([(R_MIPS_32, 2); 9]); // past the look-ahead window
        sites.extend([
            (R_MIPS_LO16, 2),
            (R_MIPS_LO16, 1), // 11: partner of 0 (found by the backward scan)
            (R_MIPS_HI16, 3),
            (R_MIPS_HI16, 3),
            (R_MIPS_LO16, 1),
            (R_MIPS_LO16, 3), // 15: partner of 12 and 13 (look ahead)
            (R_MIPS_HI16, 4), // 16: none
        ]);
        let got = partners_of(&sites);
        assert_eq!(got[0], 11);
        assert_eq!((got[12], got[13]), (15, 15));
        assert_eq!(got[16], NO_PARTNER);
        assert_eq!(got, partners_reference(&sites));
        // Pseudo-random mixes of types and a few symbols, long and short distances.
        let mut x = 0x2545_f491_u32;
        for len in [0, 1, 5, 40, 300] {
            let sites: Vec<(u8, u32)> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    let t = [R_MIPS_HI16, R_MIPS_LO16, R_MIPS_32, R_MIPS_26][(x % 4) as usize];
                    (t, (x >> 8) % 5)
                })
                .collect();
            assert_eq!(partners_of(&sites), partners_reference(&sites), "{sites:?}");
        }
    }

    #[test]
    fn type_names_follow_rstrs() {
        assert_eq!(legacy_type_name(4), "MIPS_26");
        assert_eq!(legacy_type_name(1), "UNKNOWN");
        assert_eq!(legacy_type_name(37), "UNKNOWN");
        assert_eq!(abi_type_name(37), "R_MIPS_JALR");
        assert_eq!(abi_type_name(200), "relocation type 200");
    }

    #[test]
    fn sext16_sign_extends() {
        assert_eq!(sext16(0xfff0), 0xffff_fff0);
        assert_eq!(sext16(0x7ff0), 0x7ff0);
        assert_eq!(sext16(0x1_8000), 0xffff_8000);
    }
}
