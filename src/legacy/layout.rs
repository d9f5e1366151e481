//! `layout_sections` of arch/mips/kernel/vpe.c (a copy of the old module loader's): where each
//! ALLOC section of an ET_REL lands, relative to the start of the image.

use crate::elf::read::Shdr;
use crate::elf::{SHF_ALLOC, SHF_EXECINSTR, SHF_WRITE, SHT_NOBITS};
use crate::error::{Error, Result};
use crate::image::Warning;

/// The image layout: the offset of every placed section (`sh_entsize` in the kernel) and the
/// total size (`mod->core_size` / `mod->mem[MOD_TEXT].size`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Layout {
    /// Offset in the image per section header index; `None` if not ALLOC.
    pub offsets: Vec<Option<u32>>,
    /// Total image size, no page rounding.
    pub size: u32,
    /// One past the last byte of a non-NOBITS section (what must be copied from the file).
    pub data_end: u32,
}

/// The four passes of `layout_sections`: `(must have, must not have)`. `ARCH_SHF_SMALL` is 0
/// on MIPS, so pass 4 is "any ALLOC section not placed yet".
const MASKS: [(u32, u32); 4] = [
    (SHF_EXECINSTR | SHF_ALLOC, 0),
    (SHF_ALLOC, SHF_WRITE),
    (SHF_WRITE | SHF_ALLOC, 0),
    (SHF_ALLOC, 0),
];

/// The kernel's `ALIGN(x, a)`: `(x + a - 1) & ~(a - 1)`, which only means "round up" for a
/// power of two; other values are reproduced bit for bit. `None` if it would wrap.
pub(crate) fn kernel_align(x: u32, a: u32) -> Option<u32> {
    let a = if a == 0 { 1 } else { a };
    Some(x.checked_add(a - 1)? & !(a - 1))
}

/// Lay out the sections in four passes, header order inside a pass; `off = ALIGN(size,
/// sh_addralign ?: 1)`, `size = off + sh_size` (`get_offset`). `.reginfo` and
/// `.MIPS.abiflags` are ALLOC and placed like any other read-only section, as the kernel did.
///
/// `max_mem` bounds the image size: the section that takes it past the limit is refused
/// (before anything is allocated for the image).
pub(crate) fn layout_sections(
    shdrs: &[Shdr],
    names: &[String],
    base: u32,
    max_mem: u32,
    warnings: &mut Vec<Warning>,
) -> Result<Layout> {
    let mut offsets: Vec<Option<u32>> = vec![None; shdrs.len()];
    let mut size: u32 = 0;
    let mut data_end: u32 = 0;
    for (must, must_not) in MASKS {
        for (i, s) in shdrs.iter().enumerate() {
            if s.sh_flags & must != must || s.sh_flags & must_not != 0 || offsets[i].is_some() {
                continue;
            }
            let name = names.get(i).map(String::as_str).unwrap_or("?");
            let overflow = || {
                Error::Malformed {
                what: format!(
                    "section [{i}] {name}: image size {size:#x} + alignment {:#x} + size {:#x} overflows 32 bits",
                    s.sh_addralign, s.sh_size
                ),
                at: 0,
            }
            };
            let off = kernel_align(size, s.sh_addralign).ok_or_else(overflow)?;
            let padded = off > size;
            size = off.checked_add(s.sh_size).ok_or_else(overflow)?;
            if size > max_mem {
                let at = if padded {
                    format!(" at offset {off:#x} (sh_addralign {:#x})", s.sh_addralign)
                } else {
                    String::new()
                };
                return Err(Error::MemoryLimit {
                    what: format!("section [{i}] {name}{at}"),
                    size: u64::from(s.sh_size),
                    total: u64::from(size),
                    limit: max_mem,
                });
            }
            if s.sh_type != SHT_NOBITS {
                data_end = data_end.max(size);
            }
            let align = s.sh_addralign;
            if align > 1 && !align.is_power_of_two() {
                warnings.push(Warning::new(format!(
                    "section [{i}] {name}: sh_addralign {align:#x} is not a power of two; placed at offset {off:#x} by the kernel's ALIGN() bit mask"
                )));
            } else if align > 1 && base % align != 0 {
                // The legacy loader aligned only relative to the start of its buffer.
                warnings.push(Warning::new(format!(
                    "section [{i}] {name}: needs {align}-byte alignment but lands at {:#010x} (base {base:#010x} is not {align}-aligned; the legacy loader aligned only within the image)",
                    base.wrapping_add(off)
                )));
            }
            offsets[i] = Some(off);
        }
    }
    Ok(Layout {
        offsets,
        size,
        data_end,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::{SHT_PROGBITS, SHT_SYMTAB};

    fn sh(sh_type: u32, flags: u32, align: u32, size: u32) -> Shdr {
        Shdr {
            sh_name: 0,
            sh_type,
            sh_flags: flags,
            sh_addr: 0,
            sh_offset: 0,
            sh_size: size,
            sh_link: 0,
            sh_info: 0,
            sh_addralign: align,
            sh_entsize: 0,
        }
    }

    fn names(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("s{i}")).collect()
    }

    #[test]
    fn kernel_align_matches_the_macro() {
        assert_eq!(kernel_align(0x11, 8), Some(0x18));
        assert_eq!(kernel_align(0x10, 0), Some(0x10));
        assert_eq!(kernel_align(0x10, 1), Some(0x10));
        // (5 + 2) & ~2 = 7 & ~2 = 5: not a round-up, but what the kernel computes.
        assert_eq!(kernel_align(5, 3), Some(5));
        assert_eq!(kernel_align(u32::MAX, 4), None);
    }

    #[test]
    fn four_passes_in_header_order() {
        // Header order: data, text, rodata, bss, text2 (align 32), non-alloc symtab.
        let shdrs = vec![
            sh(0, 0, 0, 0),
            sh(SHT_PROGBITS, SHF_ALLOC | SHF_WRITE, 16, 4), // 1 .data
            sh(SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 4, 0x10), // 2 .text
            sh(SHT_PROGBITS, SHF_ALLOC, 8, 5),              // 3 .rodata
            sh(SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 4, 8),    // 4 .bss
            sh(SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 32, 4), // 5 .text2
            sh(SHT_SYMTAB, 0, 4, 0x40),                     // 6 .symtab
        ];
        let mut w = Vec::new();
        let l = layout_sections(&shdrs, &names(7), 0x1000_0000, u32::MAX, &mut w).unwrap();
        // text 0..0x10, text2 ALIGN(0x10,32)=0x20..0x24, rodata ALIGN(0x24,8)=0x28..0x2d,
        // data ALIGN(0x2d,16)=0x30..0x34, bss ALIGN(0x34,4)=0x34..0x3c.
        assert_eq!(
            l.offsets,
            vec![
                None,
                Some(0x30),
                Some(0),
                Some(0x28),
                Some(0x34),
                Some(0x20),
                None
            ]
        );
        assert_eq!(l.size, 0x3c);
        assert_eq!(l.data_end, 0x34);
        assert!(w.is_empty());
    }

    #[test]
    fn exec_write_section_goes_in_pass_one_and_overflow_is_an_error() {
        let shdrs = vec![
            sh(0, 0, 0, 0),
            sh(
                SHT_PROGBITS,
                SHF_ALLOC | SHF_WRITE | SHF_EXECINSTR,
                4,
                0xffff_fff0,
            ),
            sh(SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 4, 0x20),
        ];
        let mut w = Vec::new();
        let e = layout_sections(&shdrs, &names(3), 0, u32::MAX, &mut w).unwrap_err();
        assert!(matches!(e, Error::Malformed { .. }), "{e}");
    }

    #[test]
    fn misaligned_base_and_odd_alignment_warn() {
        let shdrs = vec![
            sh(0, 0, 0, 0),
            sh(SHT_PROGBITS, SHF_ALLOC | SHF_EXECINSTR, 32, 4),
            sh(SHT_PROGBITS, SHF_ALLOC, 3, 4),
        ];
        let mut w = Vec::new();
        let l = layout_sections(&shdrs, &names(3), 0x1000_0008, u32::MAX, &mut w).unwrap();
        assert_eq!(l.offsets[2], Some(4)); // (4 + 2) & ~2 = 4
        assert_eq!(w.len(), 2, "{w:?}");
    }
}
