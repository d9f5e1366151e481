//! Symbols: reading the symbol table the way `vpe_elfload` finds it, `simplify_symbols`
//! (COMMON, ABS, UNDEF, `_gp` prefix rule) and `find_vpe_symbols` (arch/mips/kernel/vpe.c).

use super::Input;
use crate::elf::read::Sym;
use crate::elf::{
    SHN_ABS, SHN_COMMON, SHN_MIPS_SCOMMON, SHN_UNDEF, SHT_SYMTAB, STT_FILE, STT_SECTION, SYM32_SIZE,
};
use crate::error::{Error, Result};
use crate::image::{RelocSemantics, Symbol, Warning};

/// One symbol table entry with its name and its final value under both semantics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SymEntry {
    pub sym: Sym,
    /// Name as the kernel saw it (`strtab + st_name`; empty for section symbols).
    pub name: String,
}

/// The symbol table `vpe_elfload` uses: the last `SHT_SYMTAB`, names from its `sh_link`.
#[derive(Debug, Clone, Default)]
pub(crate) struct Symtab {
    /// All entries including the null symbol at 0 (`sh_size / 16` of them).
    pub entries: Vec<SymEntry>,
}

impl Symtab {
    /// How a symbol is shown in messages: its name, or for a section symbol (no name, as gas
    /// emits for static data) the name of its section.
    pub fn display_name(&self, inp: &Input, i: usize) -> String {
        let Some(e) = self.entries.get(i) else {
            return String::new();
        };
        if e.name.is_empty() && e.sym.typ() == STT_SECTION {
            if let Some(n) = inp.names.get(usize::from(e.sym.st_shndx)) {
                return n.clone();
            }
        }
        e.name.clone()
    }

    /// `[index] name` of the section a section symbol stands for (`None` for other symbols).
    pub fn section_of(&self, inp: &Input, i: usize) -> Option<String> {
        let e = self.entries.get(i)?;
        if e.sym.typ() != STT_SECTION {
            return None;
        }
        let k = usize::from(e.sym.st_shndx);
        Some(format!(
            "[{k}] {}",
            inp.names.get(k).map(String::as_str).unwrap_or("?")
        ))
    }
}

/// Read the last `SHT_SYMTAB` (the kernel's loop overwrites `symindex` each time) and its
/// string table. `check_shndx`: reject `st_shndx` values the kernel would have used to index
/// past the section header table (ET_REL only; ET_EXEC never looks at them).
pub(crate) fn read_symtab(inp: &Input, check_shndx: bool) -> Result<Symtab> {
    let shnum = inp.shdrs.len();
    let Some(symindex) = (1..shnum)
        .rev()
        .find(|&i| inp.shdrs[i].sh_type == SHT_SYMTAB)
    else {
        return Ok(Symtab::default());
    };
    let symsh = inp.shdrs[symindex];
    let symname = inp.names[symindex].clone();
    inp.section_bytes(symindex, "symbol table")?;
    let strindex = symsh.sh_link as usize;
    if strindex == 0 || strindex >= shnum {
        return Err(Error::Malformed {
            what: format!(
                "symbol table [{symindex}] {symname}: sh_link {} is not a string table section (e_shnum {shnum})",
                symsh.sh_link
            ),
            at: inp.shdr_offset(symindex) + 24,
        });
    }
    inp.section_bytes(strindex, "symbol string table")?;
    let strsh = inp.shdrs[strindex];
    let n = symsh.sh_size as usize / SYM32_SIZE;
    let mut entries = Vec::with_capacity(n);
    for i in 0..n {
        let sym = inp.r.sym(symsh.sh_offset, i)?;
        let name = if i == 0 {
            String::new()
        } else {
            inp.r
                .str_in_with(strsh.sh_offset, strsh.sh_size, sym.st_name, || {
                    format!("symbol #{i} in [{symindex}] {symname}")
                })?
        };
        let special = matches!(
            sym.st_shndx,
            SHN_UNDEF | SHN_ABS | SHN_COMMON | SHN_MIPS_SCOMMON
        );
        if check_shndx && i >= 1 && !special && usize::from(sym.st_shndx) >= shnum {
            return Err(Error::Malformed {
                what: format!(
                    "symbol #{i} \"{name}\" in [{symindex}] {symname}: st_shndx {:#06x} is not a section index (e_shnum {shnum}); the legacy kernel would read past the section header table",
                    sym.st_shndx
                ),
                at: u64::from(symsh.sh_offset) + (i * SYM32_SIZE) as u64 + 14,
            });
        }
        entries.push(SymEntry { sym, name });
    }
    Ok(Symtab { entries })
}

/// Result of `simplify_symbols` under both semantics.
#[derive(Debug, Clone, Default)]
pub(crate) struct Simplified {
    /// Final value per symbol index as `vpe.c` computed it.
    pub legacy: Vec<u32>,
    /// Final value per symbol index under the MIPS ELF ABI (COMMON allocated properly).
    pub elf: Vec<u32>,
    /// `(gp_addr, gp_offs)` of the last `save_gp_address` call of this load, if any.
    pub gp_save: Option<(u32, u32)>,
    /// Value of the last symbol named exactly `_gp` (ELF semantics), if defined.
    pub elf_gp: Option<u32>,
    /// End of memory under ELF semantics (after the COMMON block).
    pub elf_end: u32,
    /// Indices of COMMON / SCOMMON symbols.
    pub commons: Vec<usize>,
    /// Section header index of the first `.bss*` section, where legacy COMMONs land.
    pub bss_section: Option<usize>,
}

/// `save_gp_address(secbase, rel)` of vpe.c: `gp_addr = secbase + rel`,
/// `gp_offs = gp_addr - (secbase & 0xffff0000)`.
pub(crate) fn save_gp_address(secbase: u32, rel: u32) -> (u32, u32) {
    let gp_addr = secbase.wrapping_add(rel);
    (gp_addr, gp_addr.wrapping_sub(secbase & 0xffff_0000))
}

/// `simplify_symbols` of vpe.c plus the ELF ABI values. `sec_addr` is the final address of
/// each ALLOC section. `image_end` is where the legacy image ends (ELF COMMONs go after it).
/// A COMMON no linker can allocate (alignment not a power of two) is accepted only under
/// `Legacy`, which never needs the ELF value.
pub(crate) fn simplify_symbols(
    inp: &Input,
    tab: &Symtab,
    sec_addr: &[Option<u32>],
    image_end: u32,
    semantics: RelocSemantics,
    warnings: &mut Vec<Warning>,
) -> Result<Simplified> {
    let n = tab.entries.len();
    let mut out = Simplified {
        legacy: vec![0; n],
        elf: vec![0; n],
        elf_end: image_end,
        ..Simplified::default()
    };
    // "find the .bss section for COMMON symbols": first header whose name starts with ".bss"
    // (strncmp 4), any flags.
    out.bss_section = inp.names.iter().position(|name| name.starts_with(".bss"));
    let mut bssbase = out.bss_section.and_then(|i| sec_addr[i]).unwrap_or(0);
    for (i, e) in tab.entries.iter().enumerate().skip(1) {
        let s = e.sym;
        let (legacy, elf) = match s.st_shndx {
            SHN_COMMON | SHN_MIPS_SCOMMON => {
                // ELF: st_value is the alignment, st_size the size (a linker allocates it).
                let elf = super::layout::kernel_align(out.elf_end, s.st_value)
                    .filter(|_| s.st_value == 0 || s.st_value.is_power_of_two())
                    .and_then(|a| a.checked_add(s.st_size).map(|end| (a, end)));
                let (elf, end) = match elf {
                    Some(x) => x,
                    // vpe.c never allocated COMMONs (the value is only a stride), so the
                    // kernel loaded this; the ELF value is meaningless and unused.
                    None if semantics == RelocSemantics::Legacy => {
                        warnings.push(Warning::new(format!(
                            "COMMON symbol #{i} \"{}\": alignment {:#x} is not a power of two, so no linker would allocate it; the legacy loader did not care (loaded as it did)",
                            e.name, s.st_value
                        )));
                        (0, out.elf_end)
                    }
                    None => {
                        return Err(Error::Malformed {
                            what: format!(
                                "COMMON symbol #{i} \"{}\": alignment {:#x} / size {:#x} cannot be allocated after {:#010x} (the legacy loader accepted it: --relocs legacy loads it as it did)",
                                e.name, s.st_value, s.st_size, out.elf_end
                            ),
                            at: 0,
                        });
                    }
                };
                out.elf_end = end;
                out.commons.push(i);
                let legacy = if s.st_shndx == SHN_COMMON {
                    // "st_value is currently size": it is the alignment, so the stride is
                    // the alignment and no space is reserved.
                    let v = bssbase;
                    bssbase = bssbase.wrapping_add(s.st_value);
                    warnings.push(Warning::new(format!(
                        "COMMON symbol \"{}\" (size {:#x}, align {:#x}): the legacy loader put it at {v:#010x} ({}, stride = alignment, overlapping .bss); a linker allocates {:#010x}; build with -fno-common",
                        e.name,
                        s.st_size,
                        s.st_value,
                        match out.bss_section {
                            Some(b) => format!("start of [{b}] {}", inp.names[b]),
                            None => "no .bss section: address 0".to_string(),
                        },
                        elf
                    )));
                    v
                } else {
                    warnings.push(Warning::new(format!(
                        "simplify_symbols: ignoring SHN_MIPS_SCOMMON symbol <{}> st_shndx {}: the legacy loader left its value {:#x} (its alignment) unrelocated; a linker allocates {elf:#010x}",
                        e.name, s.st_shndx, s.st_value
                    )));
                    s.st_value
                };
                (legacy, elf)
            }
            SHN_ABS | SHN_UNDEF => (s.st_value, s.st_value),
            shndx => {
                // Non-ALLOC sections only have an address in the kernel's temporary buffer;
                // 0 here; a relocation using it is refused under strict/legacy (reloc.rs).
                let secbase = sec_addr
                    .get(usize::from(shndx))
                    .copied()
                    .flatten()
                    .unwrap_or(0);
                if e.name.starts_with("_gp") {
                    out.gp_save = Some(save_gp_address(secbase, s.st_value));
                }
                let v = s.st_value.wrapping_add(secbase);
                (v, v)
            }
        };
        out.legacy[i] = legacy;
        out.elf[i] = elf;
        if e.name == "_gp" && s.st_shndx != SHN_UNDEF {
            out.elf_gp = Some(elf);
        }
    }
    Ok(out)
}

/// `find_vpe_symbols`: full-name match over symbols 1.., last match wins. Returns the values
/// of `__start` and `vpe_shared` (0 when missing, as the kernel's fields).
pub(crate) fn find_vpe_symbols(tab: &Symtab, values: &[u32]) -> (u32, u32) {
    let mut start = 0;
    let mut shared = 0;
    for (i, e) in tab.entries.iter().enumerate().skip(1) {
        let v = values.get(i).copied().unwrap_or(e.sym.st_value);
        if e.name == "__start" {
            start = v;
        }
        if e.name == "vpe_shared" {
            shared = v;
        }
    }
    (start, shared)
}

/// The symbols worth keeping in an [`crate::image::Image`]: defined, not section/file
/// symbols, not in non-ALLOC sections. `image_index` maps a section header index to its index
/// in `Image::sections`; `common_section` is where COMMON symbols live (None = outside any).
pub(crate) fn image_symbols(
    tab: &Symtab,
    values: &[u32],
    image_index: &[Option<usize>],
    common_section: Option<usize>,
    keep_scommon: bool,
) -> Vec<Symbol> {
    let mut out = Vec::new();
    for (i, e) in tab.entries.iter().enumerate().skip(1) {
        let s = e.sym;
        if matches!(s.typ(), STT_SECTION | STT_FILE) {
            continue;
        }
        let section = match s.st_shndx {
            SHN_UNDEF => continue,
            SHN_ABS => None,
            SHN_COMMON => common_section,
            SHN_MIPS_SCOMMON if keep_scommon => None,
            SHN_MIPS_SCOMMON => continue,
            shndx => match image_index.get(usize::from(shndx)).copied().flatten() {
                Some(k) => Some(k),
                None => continue,
            },
        };
        out.push(Symbol {
            name: e.name.clone(),
            value: values.get(i).copied().unwrap_or(s.st_value),
            size: s.st_size,
            info: s.st_info,
            section,
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn save_gp_address_is_the_kernel_arithmetic() {
        // gp_addr = secbase + rel; gp_offs = gp_addr - (secbase & 0xffff0000)
        assert_eq!(save_gp_address(0x1000_0020, 0x7ff0), (0x1000_8010, 0x8010));
        assert_eq!(save_gp_address(0x8012_3450, 0x10), (0x8012_3460, 0x3460));
        assert_eq!(save_gp_address(0, 0), (0, 0));
    }
}
