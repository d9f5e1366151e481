//! KUSEG re-base hazards: legacy SP code ran in KSEG0 and commonly takes `KSEG1ADDR(&buf)`,
//! `KSEG0ADDR(&buf)` or `CPHYSADDR(&buf)` of its own data (to share an uncached buffer, or to
//! hand a physical address to a device). Re-based to a KUSEG address such as 0x10000000 the
//! same arithmetic yields the KSEG alias of *physical* 0x10000000 + offset: other memory. The
//! relocation result is still what the legacy loader would have written, so `verify` calls
//! it equivalent; this scan says where the code would then go astray.
//!
//! Pattern (what GCC emits for those macros): within a few instructions of an `R_MIPS_HI16`
//! against an own symbol, a `lui` of 0xa000 (KSEG1), 0x8000 (KSEG0) or 0x1fff (the
//! 0x1fffffff mask), an `ext rt, rs, 0, 29` (mask, MIPS32r2) or an `ins rt, $0, 29, 3`.

use std::collections::BTreeSet;

use super::reloc::RelSec;
use super::symbols::Symtab;
use super::Input;
use crate::elf::{R_MIPS_HI16, SHF_EXECINSTR, SHN_ABS, SHN_COMMON, SHN_MIPS_SCOMMON, SHN_UNDEF};
use crate::image::Warning;

/// Instructions looked at before and after each HI16 (compilers schedule the mask around it).
const BEFORE: u32 = 8;
const AFTER: u32 = 16;

/// The prefix of every hazard warning (the batch report looks for it).
pub const HAZARD: &str = "KUSEG re-base hazard";

/// What an instruction does to an address, if it is one of the tell-tale forms.
fn classify(insn: u32) -> Option<(String, &'static str)> {
    let op = insn >> 26;
    let rs = (insn >> 21) & 31;
    let rt = (insn >> 16) & 31;
    let imm = insn & 0xffff;
    let (f5a, f5b, func) = ((insn >> 11) & 31, (insn >> 6) & 31, insn & 63);
    match (op, imm) {
        (0x0f, 0xa000) if rs == 0 => Some((format!("lui ${rt}, 0xa000"), "KSEG1ADDR()")),
        (0x0f, 0x8000) if rs == 0 => Some((format!("lui ${rt}, 0x8000"), "KSEG0ADDR()")),
        (0x0f, 0x1fff) if rs == 0 => Some((
            format!("lui ${rt}, 0x1fff"),
            "a 0x1fffffff mask (CPHYSADDR())",
        )),
        // SPECIAL3 EXT: msbd (size - 1) in 15:11, lsb in 10:6.
        (0x1f, _) if func == 0 && f5a == 28 && f5b == 0 => Some((
            format!("ext ${rt}, ${rs}, 0, 29"),
            "a 0x1fffffff mask (CPHYSADDR())",
        )),
        // SPECIAL3 INS from $zero: msb in 15:11, lsb in 10:6.
        (0x1f, _) if func == 4 && rs == 0 && f5a == 31 && f5b == 29 => Some((
            format!("ins ${rt}, $0, 29, 3"),
            "a 0x1fffffff mask (CPHYSADDR())",
        )),
        _ => None,
    }
}

/// Scan the executable sections of the relocated `image` (placed at `base`) for the patterns
/// near every HI16 of an own symbol. Only meaningful for a KUSEG base.
pub(crate) fn scan(
    inp: &Input,
    tab: &Symtab,
    rels: &[RelSec],
    offsets: &[Option<u32>],
    image: &[u8],
    base: u32,
) -> Vec<Warning> {
    let mut out = Vec::new();
    if base >= 0x8000_0000 {
        return out;
    }
    let e = inp.eh.endian;
    let word = |off: u32| -> Option<u32> {
        let o = off as usize;
        let b = image.get(o..o.checked_add(4)?)?;
        Some(e.read_u32([b[0], b[1], b[2], b[3]]))
    };
    let mut flagged = BTreeSet::new();
    for rs in rels {
        if rs.rela || inp.shdrs[rs.target].sh_flags & SHF_EXECINSTR == 0 {
            continue;
        }
        let Some(toff) = offsets[rs.target] else {
            continue;
        };
        let size = inp.shdrs[rs.target].sh_size;
        for site in rs.sites() {
            if site.r_type() != R_MIPS_HI16 {
                continue;
            }
            let Some(ent) = tab.entries.get(site.sym()) else {
                continue;
            };
            let shndx = ent.sym.st_shndx;
            let own = !matches!(shndx, SHN_UNDEF | SHN_ABS | SHN_COMMON | SHN_MIPS_SCOMMON)
                && offsets.get(usize::from(shndx)).copied().flatten().is_some();
            if !own {
                continue;
            }
            let from = site.r_offset.saturating_sub(4 * BEFORE);
            let to = site.r_offset.saturating_add(4 * AFTER).min(size & !3);
            for at in (from..to).step_by(4) {
                let Some((insn, what)) = word(toff + at).and_then(classify) else {
                    continue;
                };
                if !flagged.insert(toff + at) {
                    continue;
                }
                let sym = tab.display_name(inp, site.sym());
                out.push(Warning::new(format!(
                    "{HAZARD}: {}+{at:#x} ({:#010x}) `{insn}` next to R_MIPS_HI16 of own symbol \"{sym}\" at {}+{:#x}: looks like {what} of the program's own data. Under vpe.c it ran in KSEG0; at the KUSEG base {base:#010x} that arithmetic gives the KSEG alias of physical memory at the same low address, not this program's buffer (verify's equivalence covers the image bytes, not these accesses): fix the code or convert with --profile fixed at its KSEG0 address",
                    rs.target_name,
                    base.wrapping_add(toff + at),
                    rs.target_name,
                    site.r_offset,
                )));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::classify;

    #[test]
    fn the_tell_tale_instructions_and_only_those() {
        assert!(classify(0x3c03_a000).is_some()); // lui v1, 0xa000
        assert!(classify(0x3c02_8000).is_some()); // lui v0, 0x8000
        assert!(classify(0x3c03_1fff).is_some()); // lui v1, 0x1fff
        assert!(classify(0x7c42_e000).is_some()); // ext v0, v0, 0, 29
        assert!(classify(0x7c02_ff44).is_some()); // ins v0, zero, 29, 3
        assert!(classify(0x3c02_0000).is_none()); // lui v0, 0
        assert!(classify(0x3c02_1000).is_none()); // lui v0, 0x1000
        assert!(classify(0x7c42_3800).is_none()); // ext v0, v0, 0, 8
        assert!(classify(0x2442_1018).is_none()); // addiu
    }
}
