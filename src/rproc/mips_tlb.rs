//! How the MIPS remoteproc driver maps a carveout with wired TLB entries, modelled from its
//! algorithm (Redfearn/Parratt, Imagination 2016: `mips_rproc_fit_page` and helpers in
//! `drivers/remoteproc/mips_rproc.c` of the linux-mti tree), and what CMA guarantees about
//! the physical address it maps.
//!
//! The driver walks the carveout from its physical address `pa` (the CMA allocation) and
//! device address `da`, emitting one wired entry per EntryLo0/EntryLo1 pair:
//! 1. the largest pair size `pa`'s alignment allows ("largest page mask": the pair size is a
//!    power of four times 8 KiB, at most `pa`'s lowest set bit, one less when that bit's
//!    position is odd), and the next larger one;
//! 2. the distance from `pa` to the next boundary of that larger size, capped by what is left;
//! 3. over that distance, repeatedly the largest supported pair size not above what is left
//!    of the distance (chosen by length only, never by `da`).
//!
//! So page sizes follow the physical alignment only: an entry maps correctly only if its `da`
//! is aligned to the pair size (EntryHi's VPN2 ignores the masked bits) and its `pa` to half
//! of it (each EntryLo maps one page). CMA aligns an allocation of `len` bytes to
//! `PAGE_SIZE << min(get_order(len), CONFIG_CMA_ALIGNMENT)`, and any such address may come
//! back; [`check_carveout`] tries them all (every distinct behaviour, see there).

/// The smallest unit the driver maps: an EntryLo0/EntryLo1 pair of 4 KiB pages.
pub const PAIR_MIN: u64 = 0x2000;
/// The largest pair the architecture defines (two 256 MiB pages, `PM_256M`).
pub const PAIR_MAX: u64 = 0x2000_0000;
/// Kernel page size the CMA alignment is counted in (4 KiB pages).
pub const KERNEL_PAGE: u64 = 0x1000;
/// `CONFIG_CMA_ALIGNMENT`'s default (2^8 pages = 1 MiB with 4 KiB pages).
pub const DEFAULT_CMA_ALIGN: u8 = 8;
/// Wired entries beyond this are warned about: the smaller MIPS cores have 16 TLB entries
/// in all, and the wired ones are taken from them.
pub const WIRED_WARN: usize = 16;

/// One wired entry: `pair` bytes of virtual memory at `da`, the even page at `pa`, the odd
/// page at `pa + pair / 2`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub da: u64,
    pub pa: u64,
    pub pair: u64,
}

impl Entry {
    /// The TLB maps it as intended.
    pub fn maps_correctly(&self) -> bool {
        self.da % self.pair == 0 && self.pa % (self.pair / 2) == 0
    }
}

/// The largest pair size `pa` may be mapped with (the driver's `largest_pm`): the lowest set
/// bit of `pa` (1-based), minus one, minus one more when odd (page sizes are powers of four),
/// capped by the CPU's largest pair. `pa == 0` gives the smallest pair, as in the driver.
fn largest_pair(pa: u64, max_pair: u64) -> u64 {
    if pa == 0 {
        return PAIR_MIN;
    }
    let ffs = u64::from(pa.trailing_zeros()) + 1;
    let shift = if ffs & 1 == 1 {
        ffs.saturating_sub(2)
    } else {
        ffs - 1
    };
    // The page mask is the bits of (max_pair - PAIR_MIN) below `shift`.
    let mask = (max_pair - PAIR_MIN) & ((1u64 << shift) - 1);
    mask + PAIR_MIN
}

/// The next larger pair size (the driver's `next_pm`): four times larger, capped by the CPU's
/// largest; from the smallest pair always the 32 KiB one (the driver does not cap that step).
fn next_pair(pair: u64, max_pair: u64) -> u64 {
    if pair == PAIR_MIN {
        return 4 * PAIR_MIN;
    }
    let mask = ((pair - PAIR_MIN) << 2 | (pair - PAIR_MIN)) & (max_pair - PAIR_MIN);
    mask + PAIR_MIN
}

/// The wired entries the driver emits for `len` bytes at `da` -> `pa` on a CPU whose largest
/// pair is `max_pair`; `None` if `len` is not a multiple of [`PAIR_MIN`] (the driver's
/// unsigned counters would run away).
pub fn map(da: u64, pa: u64, len: u64, max_pair: u64) -> Option<Vec<Entry>> {
    if len % PAIR_MIN != 0 {
        return None;
    }
    let (mut da, mut pa, mut size) = (da, pa, len);
    let mut out = Vec::new();
    while size > 0 {
        let big = largest_pair(pa, max_pair);
        let next = next_pair(big, max_pair);
        // Distance to the next `next`-sized boundary, as the driver computes it (the mask
        // keeps only bits from 8 KiB up).
        let distance = next - (pa & (next - PAIR_MIN));
        let mut target = distance.min(size);
        while target > 0 {
            let mut pair = max_pair;
            while pair > PAIR_MIN && pair > target {
                pair /= 4;
            }
            out.push(Entry { da, pa, pair });
            size = size.checked_sub(pair)?;
            target = target.checked_sub(pair)?;
            da += pair;
            pa += pair;
        }
    }
    Some(out)
}

/// What CMA guarantees about the physical address of a `len`-byte allocation:
/// `PAGE_SIZE << min(get_order(len), cma_align)`.
pub fn cma_alignment(len: u64, cma_align: u8) -> u64 {
    let pages = len.div_ceil(KERNEL_PAGE).max(1);
    let order = u64::from(pages.next_power_of_two().trailing_zeros());
    KERNEL_PAGE << order.min(u64::from(cma_align))
}

/// The CPUs' possible largest pairs: 8 KiB (4 KiB pages only) to 512 MiB (256 MiB pages).
fn cpu_max_pairs() -> impl Iterator<Item = u64> {
    (0..9).map(|k| PAIR_MIN << (2 * k))
}

/// The physical addresses that cover every distinct behaviour of [`map`] for a carveout of
/// `len` bytes aligned to `align`: every non-zero multiple of `align` up to
/// `8 * next_pow2(len)`, and one aligned to the largest pair. Beyond that the driver's
/// choices no longer depend on the address: once `pa`'s alignment exceeds `len`, the
/// distance to the next boundary does too, and pages are chosen by length alone. Physical 0
/// is left out: it holds the exception vectors and the kernel on MIPS boards, CMA never
/// returns it.
fn physical_candidates(len: u64, align: u64) -> impl Iterator<Item = u64> {
    let span = 8 * len.next_power_of_two().max(PAIR_MIN);
    let n = (span / align).max(1);
    (1..=n)
        .map(move |k| k * align)
        .chain(std::iter::once(PAIR_MAX))
}

/// A carveout the driver would map wrongly: the physical address and CPU that show it, and
/// the first wrong entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BadMapping {
    pub pa: u64,
    pub max_pair: u64,
    pub entry: Entry,
}

/// Map `[da, da + len)` for every physical address CMA may return under `cma_align` and every
/// CPU page-size limit: `Ok(entries)` with the most wired entries any of them needs on a CPU
/// with 256 MiB pages, or the first wrong mapping. `len` must be a non-zero multiple of
/// [`PAIR_MIN`] and `da` 8 KiB-aligned (checked before this).
pub fn check_carveout(da: u64, len: u64, cma_align: u8) -> Result<usize, BadMapping> {
    let align = cma_alignment(len, cma_align);
    let mut most = 0;
    for pa in physical_candidates(len, align) {
        for max_pair in cpu_max_pairs() {
            let Some(entries) = map(da, pa, len, max_pair) else {
                continue;
            };
            if let Some(entry) = entries.iter().find(|e| !e.maps_correctly()) {
                return Err(BadMapping {
                    pa,
                    max_pair,
                    entry: *entry,
                });
            }
            if max_pair == PAIR_MAX {
                most = most.max(entries.len());
            }
        }
    }
    Ok(most)
}

/// The most wired entries an identity-mapped (`da == pa`) range of `len` bytes needs, for the
/// addresses CMA may return under `cma_align`, on a CPU with 256 MiB pages (the vrings).
pub fn identity_entries(len: u64, cma_align: u8) -> usize {
    let len = len.next_multiple_of(PAIR_MIN);
    physical_candidates(len, cma_alignment(len, cma_align))
        .filter_map(|pa| map(pa, pa, len, PAIR_MAX))
        .map(|e| e.len())
        .max()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_mask_helpers_follow_the_driver() {
        // 8 KiB- and 16 KiB-aligned addresses get 4 KiB pages, 32 KiB ones 16 KiB pages...
        assert_eq!(largest_pair(0x2000, PAIR_MAX), 0x2000);
        assert_eq!(largest_pair(0x4000, PAIR_MAX), 0x2000);
        assert_eq!(largest_pair(0x8000, PAIR_MAX), 0x8000);
        assert_eq!(largest_pair(0x1_0000, PAIR_MAX), 0x8000);
        assert_eq!(largest_pair(0x2_0000, PAIR_MAX), 0x2_0000);
        assert_eq!(largest_pair(0x10_0000, PAIR_MAX), 0x8_0000);
        assert_eq!(largest_pair(0x20_0000, PAIR_MAX), 0x20_0000);
        assert_eq!(largest_pair(0x4000_0000, PAIR_MAX), PAIR_MAX);
        // ...capped by the CPU, and 0 maps with the smallest.
        assert_eq!(largest_pair(0x20_0000, 0x8000), 0x8000);
        assert_eq!(largest_pair(0, PAIR_MAX), PAIR_MIN);
        assert_eq!(next_pair(0x2000, PAIR_MAX), 0x8000);
        assert_eq!(
            next_pair(0x2000, 0x2000),
            0x8000,
            "not capped from the smallest"
        );
        assert_eq!(next_pair(0x8000, PAIR_MAX), 0x2_0000);
        assert_eq!(next_pair(0x8_0000, 0x8_0000), 0x8_0000);
    }

    #[test]
    fn one_mib_at_one_mib_maps_with_two_512k_pairs() {
        let e = map(0x1000_0000, 0x0460_0000, 0x10_0000, PAIR_MAX).unwrap();
        assert_eq!(e.len(), 2);
        assert!(e.iter().all(|x| x.pair == 0x8_0000 && x.maps_correctly()));
        // 8 KiB unaligned len: the driver's counter would underflow.
        assert_eq!(map(0x1000_0000, 0, 0x3000, PAIR_MAX), None);
    }

    #[test]
    fn a_misaligned_da_is_mapped_wrongly_when_pa_is_well_aligned() {
        // 128 KiB at a da aligned only to 32 KiB: a 128 KiB-aligned pa gets a 128 KiB pair.
        let bad = check_carveout(0x1000_8000, 0x2_0000, DEFAULT_CMA_ALIGN).unwrap_err();
        assert!(!bad.entry.maps_correctly());
        assert_eq!((bad.entry.da, bad.entry.pair), (0x1000_8000, 0x2_0000));
        // The same carveout at a 128 KiB-aligned da always maps; 64 KiB at a 32 KiB-aligned
        // da too (pairs are 8 KiB times a power of four: at most 32 KiB fit in 64 KiB).
        assert!(check_carveout(0x1002_0000, 0x2_0000, DEFAULT_CMA_ALIGN).is_ok());
        assert!(check_carveout(0x1000_8000, 0x1_0000, DEFAULT_CMA_ALIGN).is_ok());
    }

    #[test]
    fn carveouts_up_to_the_cma_alignment_always_map() {
        // Every naturally aligned power-of-two length up to 1 MiB, and odd multiples of 8 KiB
        // at the alignment of their next power of two, under the default CMA alignment.
        let mut len = PAIR_MIN;
        while len <= 0x10_0000 {
            for l in [len, len + PAIR_MIN, 3 * len] {
                if l > 0x10_0000 {
                    continue;
                }
                let da = 0x1000_0000 + l.next_power_of_two();
                assert!(check_carveout(da, l, DEFAULT_CMA_ALIGN).is_ok(), "{l:#x}");
            }
            len *= 2;
        }
        // 1 MiB maps with 2 entries at most; 8 KiB with 1.
        assert_eq!(check_carveout(0x1010_0000, 0x10_0000, 8), Ok(2));
        assert_eq!(check_carveout(0x1000_2000, 0x2000, 8), Ok(1));
    }

    #[test]
    fn larger_than_the_cma_alignment_can_map_wrongly() {
        // 3 MiB at a 4 MiB-aligned da: CMA guarantees only 1 MiB, and at pa = 1 MiB the driver
        // maps 1 MiB with 512 KiB pairs, then a 2 MiB pair at da + 1 MiB.
        let bad = check_carveout(0x1040_0000, 0x30_0000, 8).unwrap_err();
        assert_eq!(bad.entry.pair, 0x20_0000);
        assert_eq!(bad.entry.da, 0x1050_0000);
        // With CONFIG_CMA_ALIGNMENT=10 (4 MiB) the same carveout is fine.
        assert!(check_carveout(0x1040_0000, 0x30_0000, 10).is_ok());
        // The 1 MiB carveout cap is safe only with CONFIG_CMA_ALIGNMENT=8: with 4 (64 KiB) a
        // pa at 64 KiB gets two 32 KiB pairs, then 128 KiB pairs from da + 64 KiB.
        let bad = check_carveout(0x1010_0000, 0x10_0000, 4).unwrap_err();
        assert_eq!(
            (bad.pa, bad.entry.da, bad.entry.pair),
            (0x1_0000, 0x1011_0000, 0x2_0000)
        );
        assert!(check_carveout(0x1010_0000, 0x1_0000, 4).is_ok());
    }

    #[test]
    fn cma_alignment_is_the_order_capped() {
        assert_eq!(cma_alignment(0x2000, 8), 0x2000);
        assert_eq!(cma_alignment(0x6000, 8), 0x8000);
        assert_eq!(cma_alignment(0x10_0000, 8), 0x10_0000);
        assert_eq!(cma_alignment(0x40_0000, 8), 0x10_0000);
        assert_eq!(cma_alignment(0x40_0000, 4), 0x1_0000);
    }
}
