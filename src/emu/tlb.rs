//! The wired TLB entries the MIPS remoteproc driver writes before it enters the firmware
//! (`mips_rproc_map` in the 4.x patches, remoteproc.md §4.4), and the boot stub that writes
//! them on the emulated CPU with the same CP0 instructions.

use super::memory::Region;
use crate::elf::Endian;

/// One TLB entry: EntryHi (VPN2, ASID 0), EntryLo0/1 (PFN, CCA, D, V, G), PageMask.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlbEntry {
    pub entry_hi: u32,
    pub entry_lo0: u32,
    pub entry_lo1: u32,
    pub page_mask: u32,
}

/// CONF_CM_CACHABLE_COW: what the driver maps carveouts with.
const CCA_COHERENT: u32 = 5;
/// Page sizes MIPS32r2 TLBs offer (4 KiB to 16 MiB, powers of four).
const PAGE_SIZES: [u32; 7] = [
    0x1000, 0x4000, 0x1_0000, 0x4_0000, 0x10_0000, 0x40_0000, 0x100_0000,
];
/// TLB entries of the emulated 74Kf (QEMU: Config1.MMUSize = 15).
pub const TLB_ENTRIES: usize = 16;

fn entry_lo(pa: u32) -> u32 {
    ((pa >> 12) << 6) | (CCA_COHERENT << 3) | 0b111 // D, V, G
}

/// The entries mapping `r.da → r.pa`: page size from the alignment of the physical address
/// and the length left (as the driver chooses it), each entry an even/odd pair.
pub fn entries_for(r: &Region) -> Vec<TlbEntry> {
    let mut out = Vec::new();
    let (mut va, mut pa, mut left) = (r.da, r.pa, r.len);
    while left > 0 {
        let page = PAGE_SIZES
            .iter()
            .rev()
            .copied()
            .find(|&p| pa % (2 * p) == 0 && 2 * p <= left)
            .unwrap_or(0x1000);
        let lo1 = if left >= 2 * page {
            entry_lo(pa + page)
        } else {
            0
        };
        out.push(TlbEntry {
            entry_hi: va & !(2 * page - 1),
            entry_lo0: entry_lo(pa),
            entry_lo1: lo1,
            page_mask: (page / 0x1000 - 1) << 13,
        });
        let step = (2 * page).min(left);
        va = va.wrapping_add(step);
        pa = pa.wrapping_add(step);
        left -= step;
    }
    out
}

// MIPS32 encodings used by the stub.
const T0: u32 = 8;
const T1: u32 = 9;
fn lui(rt: u32, imm: u32) -> u32 {
    0x3c00_0000 | (rt << 16) | (imm & 0xffff)
}
fn ori(rt: u32, rs: u32, imm: u32) -> u32 {
    0x3400_0000 | (rs << 21) | (rt << 16) | (imm & 0xffff)
}
fn mtc0(rt: u32, rd: u32) -> u32 {
    0x4080_0000 | (rt << 16) | (rd << 11)
}
pub(crate) fn mfc0(rt: u32, rd: u32) -> u32 {
    0x4000_0000 | (rt << 16) | (rd << 11)
}
fn and(rd: u32, rs: u32, rt: u32) -> u32 {
    (rs << 21) | (rt << 16) | (rd << 11) | 0x24
}
const EHB: u32 = 0x0000_00c0;
const TLBWI: u32 = 0x4200_0002;
const CP0_INDEX: u32 = 0;
const CP0_ENTRYLO0: u32 = 2;
const CP0_ENTRYLO1: u32 = 3;
const CP0_PAGEMASK: u32 = 5;
const CP0_WIRED: u32 = 6;
pub(crate) const CP0_BADVADDR: u32 = 8;
const CP0_ENTRYHI: u32 = 10;
const CP0_STATUS: u32 = 12;

fn li(out: &mut Vec<u32>, rt: u32, v: u32) {
    out.push(lui(rt, v >> 16));
    out.push(ori(rt, rt, v));
}

/// The boot stub: Wired = 0, one `tlbwi` per entry at indexes 0.., Wired = n, EntryHi =
/// ASID 0, then Status.ERL and EXL cleared (KUSEG is mapped through the TLB from here on).
/// Runs from KSEG1 with ERL set; ends at its last word.
pub fn boot_stub(entries: &[TlbEntry]) -> Vec<u32> {
    let mut w = vec![mtc0(0, CP0_WIRED)];
    for (i, e) in entries.iter().enumerate() {
        li(&mut w, T0, i as u32);
        w.push(mtc0(T0, CP0_INDEX));
        li(&mut w, T0, e.page_mask);
        w.push(mtc0(T0, CP0_PAGEMASK));
        li(&mut w, T0, e.entry_hi);
        w.push(mtc0(T0, CP0_ENTRYHI));
        li(&mut w, T0, e.entry_lo0);
        w.push(mtc0(T0, CP0_ENTRYLO0));
        li(&mut w, T0, e.entry_lo1);
        w.push(mtc0(T0, CP0_ENTRYLO1));
        w.push(EHB);
        w.push(TLBWI);
    }
    li(&mut w, T0, entries.len() as u32);
    w.push(mtc0(T0, CP0_WIRED));
    w.push(mtc0(0, CP0_ENTRYHI));
    w.push(mtc0(0, CP0_PAGEMASK));
    w.push(mfc0(T0, CP0_STATUS));
    li(&mut w, T1, !0b110); // ~(ERL | EXL)
    w.push(and(T0, T0, T1));
    w.push(mtc0(T0, CP0_STATUS));
    w.push(EHB);
    w.push(0); // the `until` address: never executed
    w
}

/// Words as bytes in the firmware's byte order.
pub fn to_bytes(words: &[u32], endian: Endian) -> Vec<u8> {
    words.iter().flat_map(|&w| endian.u32_bytes(w)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodings_match_the_assembler() {
        // mips-linux-gnu-as: mtc0 t0,c0_wired = 40883000; mfc0 k0,c0_badvaddr = 401a4000;
        // lui t0,0x1234 = 3c081234; ori t0,t0,0x5678 = 35085678; and t0,t0,t1 = 01094024.
        assert_eq!(mtc0(T0, CP0_WIRED), 0x4088_3000);
        assert_eq!(mfc0(26, CP0_BADVADDR), 0x401a_4000);
        assert_eq!(lui(T0, 0x1234), 0x3c08_1234);
        assert_eq!(ori(T0, T0, 0x5678), 0x3508_5678);
        assert_eq!(and(T0, T0, T1), 0x0109_4024);
    }

    #[test]
    fn page_sizes_follow_the_physical_alignment() {
        let r = |da, pa, len| Region::test(da, pa, len);
        // 64 KiB at a 64 KiB-aligned pa: two 32 KiB pairs of 16 KiB pages.
        let e = entries_for(&r(0x1000_0000, 0x0401_0000, 0x1_0000));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].page_mask, 0x6000);
        assert_eq!(e[1].entry_hi, 0x1000_8000);
        // 1 MiB at a 1 MiB-aligned pa: two pairs of 256 KiB pages.
        let e = entries_for(&r(0x1000_0000, 0x0410_0000, 0x10_0000));
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].page_mask, 0x7_e000);
        assert_eq!(e[0].entry_lo0, (0x0410_0000 >> 12 << 6) | 0x2f);
        // 8 KiB: one pair of 4 KiB pages.
        let e = entries_for(&r(0x1000_0000, 0x0400_2000, 0x2000));
        assert_eq!(e.len(), 1);
        assert_eq!(e[0].page_mask, 0);
        assert_eq!(e[0].entry_lo1, ((0x0400_3000 >> 12) << 6) | 0x2f);
    }
}
