//! Legacy-equivalence: every byte the legacy loader wrote (`arch/mips/kernel/vpe.c`) is the
//! byte remoteproc loads at the same address, and the entry path reaches `__start`.
//!
//! Comparison works on whole slices per overlapping range (images can be tens of MiB), never
//! byte-by-byte lookups.

use serde::Serialize;

use super::check::Loaded;
use super::trampoline;
use crate::image::{Image, InputKind, Segment};

/// The first (lowest) address where the two images differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Difference {
    pub addr: u32,
    /// What the legacy loader left there (always `Some` for differences we report, kept
    /// optional for symmetry).
    pub legacy: Option<u8>,
    /// What the firmware loads there; `None` if no PT_LOAD covers the address.
    pub firmware: Option<u8>,
}

/// How `e_entry` reaches the legacy entry point.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum EntryPath {
    /// `e_entry` is entered directly (no trampoline recognised there).
    Direct { e_entry: u32 },
    /// `e_entry` is a trampoline that jumps to `target` with `$a2 = ntcs`, `$a3 = memsize`.
    Trampoline {
        target: u32,
        ntcs: u32,
        memsize: u32,
    },
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// True if every legacy byte is loaded unchanged by the firmware.
    pub equivalent: bool,
    pub first_difference: Option<Difference>,
    pub entry: EntryPath,
    /// The entry path reaches the legacy `entry` (`__start`); with a trampoline, also its
    /// 16-byte `vpe_boot_args` store lands in loaded memory outside the legacy bytes (it is
    /// written at run time and would otherwise corrupt the program).
    pub entry_ok: bool,
    /// Legacy bytes compared (all of them when equivalent; up to the first difference
    /// otherwise).
    pub compared_bytes: u64,
    /// Bytes the firmware loads that the legacy loader did not write (trampoline, table,
    /// gaps, trace buffer, headroom).
    pub extra_bytes: u64,
    /// The legacy image is an ET_EXEC at KUSEG addresses: `vpe.c` would have copied it into
    /// the closing process's memory, so the equivalence is to the image, not to a legacy run.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub to_image_only: bool,
}

/// Bytes of `seg` in `[from, to)` (inside the segment): the file-backed slice, then how many
/// zero-filled bytes follow it.
fn piece(seg: &Segment, from: u64, to: u64) -> (&[u8], u64) {
    let a = (from - u64::from(seg.addr)) as usize;
    let b = (to - u64::from(seg.addr)) as usize;
    let d = seg.data.len();
    let data = &seg.data[a.min(d)..b.min(d)];
    (data, (b - a - data.len()) as u64)
}

/// True if every byte is zero, compared a page at a time against a zero page (memcmp).
fn all_zero(bytes: &[u8]) -> bool {
    static ZERO: [u8; 4096] = [0; 4096];
    bytes.chunks(ZERO.len()).all(|c| c == &ZERO[..c.len()])
}

/// Offset of the first difference between two ranges of equal length, each given as a
/// slice followed by zeros.
fn first_mismatch(l: (&[u8], u64), f: (&[u8], u64)) -> Option<(u64, u8, u8)> {
    let (ld, fd) = (l.0, f.0);
    let common = ld.len().min(fd.len());
    // Slice equality is a memcmp; the byte-wise search only runs once we know there is a
    // difference (verify compares every loaded byte, so this is most of its time).
    if ld[..common] != fd[..common] {
        let k = ld[..common]
            .iter()
            .zip(&fd[..common])
            .position(|(a, b)| a != b)?;
        return Some((k as u64, ld[k], fd[k]));
    }
    // Past the shorter slice one side is zero-fill.
    let (rest, legacy_has_data) = if ld.len() > common {
        (&ld[common..], true)
    } else {
        (&fd[common..], false)
    };
    if all_zero(rest) {
        return None;
    }
    rest.iter().position(|&b| b != 0).map(|k| {
        let v = rest[k];
        let off = (common + k) as u64;
        if legacy_has_data {
            (off, v, 0)
        } else {
            (off, 0, v)
        }
    })
}

/// Total length of the intersection of two sets of sorted, non-overlapping ranges.
fn overlap(a: &[(u64, u64)], b: &[(u64, u64)]) -> u64 {
    let (mut i, mut j, mut n) = (0, 0, 0u64);
    while i < a.len() && j < b.len() {
        let lo = a[i].0.max(b[j].0);
        let hi = a[i].1.min(b[j].1);
        n += hi.saturating_sub(lo);
        if a[i].1 < b[j].1 {
            i += 1;
        } else {
            j += 1;
        }
    }
    n
}

fn ranges(img: &Image) -> Vec<(u64, u64)> {
    let mut r: Vec<(u64, u64)> = img
        .segments
        .iter()
        .map(|s| (u64::from(s.addr), s.end()))
        .filter(|r| r.0 < r.1)
        .collect();
    r.sort_unstable();
    r
}

fn sorted(img: &Image) -> Vec<&Segment> {
    let mut v: Vec<&Segment> = img.segments.iter().filter(|s| s.mem_size > 0).collect();
    v.sort_by_key(|s| s.addr);
    v
}

/// Compare the legacy image with what the firmware loads, and follow the entry path.
pub fn verify(legacy: &Image, loaded: &Loaded) -> Report {
    let fw = &loaded.image;
    let fsegs = sorted(fw);
    let mut compared = 0u64;
    let mut first = None;
    'outer: for l in sorted(legacy) {
        let (mut at, end) = (u64::from(l.addr), l.end());
        // Firmware segments are sorted and non-overlapping: walk the ones that meet [at, end).
        let mut k = fsegs.partition_point(|f| f.end() <= at);
        while at < end {
            let covering = fsegs.get(k).filter(|f| u64::from(f.addr) <= at);
            let Some(f) = covering else {
                // `at` is not loaded by the firmware at all.
                first = Some(Difference {
                    addr: at as u32,
                    legacy: l.byte_at(at as u32),
                    firmware: None,
                });
                break 'outer;
            };
            let stop = end.min(f.end());
            if let Some((off, lb, fb)) = first_mismatch(piece(l, at, stop), piece(f, at, stop)) {
                compared += off;
                first = Some(Difference {
                    addr: (at + off) as u32,
                    legacy: Some(lb),
                    firmware: Some(fb),
                });
                break 'outer;
            }
            compared += stop - at;
            at = stop;
            k += 1;
        }
    }

    let total_fw: u64 = ranges(fw).iter().map(|r| r.1 - r.0).sum();
    let extra_bytes = total_fw - overlap(&ranges(fw), &ranges(legacy));

    let (entry, entry_ok) = entry_path(legacy, fw);
    let to_image_only =
        legacy.kind == InputKind::Exec && legacy.segments.iter().any(|s| s.addr < 0x8000_0000);
    Report {
        to_image_only,
        equivalent: first.is_none(),
        first_difference: first,
        entry,
        entry_ok,
        compared_bytes: compared,
        extra_bytes,
    }
}

/// `e_entry == __start`, or a trampoline at `e_entry` (decoded from the loaded bytes) that
/// jumps to `__start` and stores its boot arguments outside the legacy bytes.
fn entry_path(legacy: &Image, fw: &Image) -> (EntryPath, bool) {
    if fw.entry == legacy.entry {
        return (EntryPath::Direct { e_entry: fw.entry }, true);
    }
    let code: Option<Vec<u8>> = (0..trampoline::SIZE as u32)
        .map(|k| fw.entry.checked_add(k).and_then(|a| fw.byte_at(a)))
        .collect();
    match code.and_then(|c| trampoline::decode(&c, fw.endian)) {
        Some(t) => {
            let args = (u64::from(t.boot_args), u64::from(t.boot_args) + 16);
            // Contiguous carveouts are mapped contiguously (the MIPS driver maps each at its
            // da), so the store may span two adjacent segments.
            let loaded = overlap(&[args], &ranges(fw)) == args.1 - args.0;
            let clobbers = overlap(&[args], &ranges(legacy)) > 0;
            let ok = t.target == legacy.entry && loaded && !clobbers;
            (
                EntryPath::Trampoline {
                    target: t.target,
                    ntcs: t.ntcs,
                    memsize: t.memsize,
                },
                ok,
            )
        }
        None => (EntryPath::Direct { e_entry: fw.entry }, false),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::Endian;
    use crate::image::InputKind;
    use crate::rproc::check::{self, tests as fw};
    use crate::rproc::table::ResourceTable;

    const BASE: u32 = fw::BASE;

    fn image(kind: InputKind, endian: Endian, entry: u32, segments: Vec<Segment>) -> Image {
        Image {
            kind,
            endian,
            e_flags: 0,
            segments,
            entry,
            shared: None,
            gp: None,
            base: BASE,
            sections: Vec::new(),
            symbols: Vec::new(),
            warnings: Vec::new(),
        }
    }
    fn seg(addr: u32, data: Vec<u8>, mem_size: u32) -> Segment {
        Segment {
            addr,
            data,
            mem_size,
        }
    }
    fn loaded(img: Image) -> Loaded {
        Loaded {
            image: img,
            table: ResourceTable {
                ver: 1,
                entries: Vec::new(),
            },
            table_addr: 0,
            warnings: Vec::new(),
            trampoline: None,
            provenance: None,
        }
    }

    /// The legacy image the test firmware of `check` corresponds to: 0x100 bytes of code at
    /// BASE, then zeros (bss) up to 0x3000.
    fn legacy(e: Endian) -> Image {
        image(
            InputKind::Rel,
            e,
            BASE,
            vec![seg(BASE, fw::code(0x100), 0x3000)],
        )
    }

    #[test]
    fn checked_firmware_is_equivalent() {
        for e in [Endian::Little, Endian::Big] {
            let mut elf = fw::good(e);
            // The legacy bss is zero; the firmware's table sits at +0x100 and must not be
            // part of the legacy bytes, so move the legacy image's bss past it.
            let tlen = elf.segs[0].data.len() as u32 - 0x100;
            elf.segs[0].memsz = 0x4000;
            let b = elf.build().bytes;
            let l = check::check(&b, &check::Options::default()).unwrap();
            let leg = image(
                InputKind::Rel,
                e,
                BASE,
                vec![
                    seg(BASE, fw::code(0x100), 0x100),
                    seg(BASE + 0x100 + tlen, vec![], 0x3000),
                ],
            );
            let r = verify(&leg, &l);
            assert!(r.equivalent, "{r:?}");
            assert_eq!(r.first_difference, None);
            assert_eq!(r.entry, EntryPath::Direct { e_entry: BASE });
            assert!(r.entry_ok);
            assert_eq!(r.compared_bytes, 0x3100);
            // The firmware loads 0x4000 bytes; 0x3100 of them are legacy bytes.
            assert_eq!(r.extra_bytes, 0x4000 - 0x3100);
            // The table overwrote what would be legacy bss: reported at its first non-zero byte,
            // the 1 of `ver` (the low byte comes first only in little-endian).
            let r = verify(&legacy(e), &l);
            assert!(!r.equivalent);
            let d = r.first_difference.unwrap();
            let one = if e == Endian::Little { 0 } else { 3 };
            assert_eq!(
                (d.addr, d.legacy, d.firmware),
                (BASE + 0x100 + one, Some(0), Some(1)),
                "{d:?}"
            );
        }
    }

    #[test]
    fn one_flipped_byte_is_reported_at_its_address() {
        let e = Endian::Big;
        let leg = image(
            InputKind::Exec,
            e,
            BASE,
            vec![
                seg(BASE, fw::code(0x800), 0x1000),
                seg(BASE + 0x2000, vec![7; 16], 16),
            ],
        );
        // The firmware holds the same bytes as one segment with the gap filled.
        let mut data = fw::code(0x800);
        data.resize(0x2000, 0);
        data.extend([7; 16]);
        let same = image(
            InputKind::Firmware,
            e,
            BASE,
            vec![seg(BASE, data.clone(), 0x2010)],
        );
        let r = verify(&leg, &loaded(same));
        assert!(r.equivalent && r.entry_ok, "{r:?}");
        assert_eq!(r.compared_bytes, 0x1010);
        assert_eq!(r.extra_bytes, 0x1000);
        for (k, want) in [
            (0x7ffusize, fw::code(0x800)[0x7ff]),
            (0x900, 0),
            (0x2005, 7),
        ] {
            let mut d = data.clone();
            d[k] ^= 0x40;
            let r = verify(
                &leg,
                &loaded(image(
                    InputKind::Firmware,
                    e,
                    BASE,
                    vec![seg(BASE, d, 0x2010)],
                )),
            );
            assert!(!r.equivalent);
            let diff = r.first_difference.unwrap();
            assert_eq!(diff.addr, BASE + k as u32);
            assert_eq!(
                (diff.legacy, diff.firmware),
                (Some(want), Some(want ^ 0x40))
            );
        }
        // Two differences: the lower one wins, whatever the segment order.
        let mut d = data.clone();
        d[0x2001] ^= 1;
        d[0x10] ^= 1;
        let fwimg = image(InputKind::Firmware, e, BASE, vec![seg(BASE, d, 0x2010)]);
        let mut leg2 = leg.clone();
        leg2.segments.reverse();
        assert_eq!(
            verify(&leg2, &loaded(fwimg)).first_difference.unwrap().addr,
            BASE + 0x10
        );
    }

    #[test]
    fn unloaded_and_zero_fill_differences() {
        let e = Endian::Little;
        let leg = image(
            InputKind::Rel,
            e,
            BASE,
            vec![seg(BASE, vec![1, 2, 3, 4], 0x100)],
        );
        // Firmware misses the last legacy byte.
        let short = image(
            InputKind::Firmware,
            e,
            BASE,
            vec![seg(BASE, vec![1, 2, 3, 4], 0xff)],
        );
        let d = verify(&leg, &loaded(short)).first_difference.unwrap();
        assert_eq!((d.addr, d.legacy, d.firmware), (BASE + 0xff, Some(0), None));
        // Firmware split in two segments with a hole.
        let holed = image(
            InputKind::Firmware,
            e,
            BASE,
            vec![
                seg(BASE + 0x80, vec![], 0x80),
                seg(BASE, vec![1, 2, 3, 4], 0x40),
            ],
        );
        let d = verify(&leg, &loaded(holed)).first_difference.unwrap();
        assert_eq!((d.addr, d.firmware), (BASE + 0x40, None));
        // Legacy data vs firmware zero-fill and vice versa.
        let zeros = image(
            InputKind::Firmware,
            e,
            BASE,
            vec![seg(BASE, vec![1, 2], 0x100)],
        );
        let d = verify(&leg, &loaded(zeros)).first_difference.unwrap();
        assert_eq!((d.addr, d.legacy, d.firmware), (BASE + 2, Some(3), Some(0)));
        let mut more = vec![1, 2, 3, 4, 0, 0];
        more.push(9);
        let extra = image(InputKind::Firmware, e, BASE, vec![seg(BASE, more, 0x100)]);
        let d = verify(&leg, &loaded(extra)).first_difference.unwrap();
        assert_eq!((d.addr, d.legacy, d.firmware), (BASE + 6, Some(0), Some(9)));
    }

    #[test]
    fn an_exec_at_kuseg_is_equivalent_to_the_image_only() {
        let e = Endian::Big;
        let fwimg = image(
            InputKind::Firmware,
            e,
            BASE,
            vec![seg(BASE, fw::code(0x100), 0x100)],
        );
        let exec = image(
            InputKind::Exec,
            e,
            BASE,
            vec![seg(BASE, fw::code(0x100), 0x100)],
        );
        let r = verify(&exec, &loaded(fwimg.clone()));
        assert!(r.equivalent && r.to_image_only);
        assert!(serde_json::to_string(&r)
            .unwrap()
            .contains("\"to_image_only\":true"));
        let rel = image(
            InputKind::Rel,
            e,
            BASE,
            vec![seg(BASE, fw::code(0x100), 0x100)],
        );
        let r = verify(&rel, &loaded(fwimg));
        assert!(r.equivalent && !r.to_image_only);
        assert!(!serde_json::to_string(&r).unwrap().contains("to_image_only"));
    }

    #[test]
    fn entry_paths() {
        for e in [Endian::Little, Endian::Big] {
            let start = BASE + 0x40;
            let leg = image(
                InputKind::Rel,
                e,
                start,
                vec![seg(BASE, fw::code(0x100), 0x100)],
            );
            let mut data = fw::code(0x100);
            data.resize(0x200, 0);
            let tramp =
                |target: u32, args: u32| crate::rproc::trampoline::encode(args, 1, 0, target, e);
            let with_tramp = |t: Vec<u8>| {
                let mut d = data.clone();
                d[0x100..0x100 + t.len()].copy_from_slice(&t);
                loaded(image(
                    InputKind::Firmware,
                    e,
                    BASE + 0x100,
                    vec![seg(BASE, d, 0x200)],
                ))
            };
            let r = verify(&leg, &with_tramp(tramp(start, BASE + 0x1f0)));
            assert!(r.equivalent && r.entry_ok, "{r:?}");
            assert_eq!(
                r.entry,
                EntryPath::Trampoline {
                    target: start,
                    ntcs: 1,
                    memsize: 0
                }
            );
            // Wrong target.
            let r = verify(&leg, &with_tramp(tramp(start + 4, BASE + 0x1f0)));
            assert!(r.equivalent && !r.entry_ok);
            assert_eq!(
                r.entry,
                EntryPath::Trampoline {
                    target: start + 4,
                    ntcs: 1,
                    memsize: 0
                }
            );
            // boot_args on top of the legacy program, or outside loaded memory.
            assert!(!verify(&leg, &with_tramp(tramp(start, BASE + 0x80))).entry_ok);
            assert!(!verify(&leg, &with_tramp(tramp(start, BASE + 0x1f8))).entry_ok);
            // boot_args across two adjacent segments (two carveouts, mapped contiguously):
            // fine; with a hole between them: not loaded.
            let split = |gap: u32| {
                let mut d = data.clone();
                let t = tramp(start, BASE + 0x1f8);
                d[0x100..0x100 + t.len()].copy_from_slice(&t);
                loaded(image(
                    InputKind::Firmware,
                    e,
                    BASE + 0x100,
                    vec![seg(BASE, d, 0x200), seg(BASE + 0x200 + gap, vec![], 0x100)],
                ))
            };
            assert!(verify(&leg, &split(0)).entry_ok);
            assert!(!verify(&leg, &split(4)).entry_ok);
            // No trampoline at e_entry and e_entry != __start.
            let direct = loaded(image(
                InputKind::Firmware,
                e,
                BASE,
                vec![seg(BASE, data.clone(), 0x200)],
            ));
            let r = verify(&leg, &direct);
            assert_eq!(r.entry, EntryPath::Direct { e_entry: BASE });
            assert!(!r.entry_ok);
            // e_entry == __start.
            let direct = loaded(image(
                InputKind::Firmware,
                e,
                start,
                vec![seg(BASE, data.clone(), 0x200)],
            ));
            assert!(verify(&leg, &direct).entry_ok);
        }
    }

    #[test]
    fn large_images_compare_quickly() {
        let e = Endian::Little;
        let big: Vec<u8> = (0..64usize << 20).map(|i| (i >> 12) as u8).collect();
        let leg = image(
            InputKind::Rel,
            e,
            BASE,
            vec![seg(BASE, big.clone(), 64 << 20)],
        );
        let mut other = big;
        let last = other.len() - 1;
        other[last] ^= 1;
        let t = std::time::Instant::now();
        let r = verify(
            &leg,
            &loaded(image(
                InputKind::Firmware,
                e,
                BASE,
                vec![seg(BASE, other, 64 << 20)],
            )),
        );
        assert_eq!(r.first_difference.unwrap().addr, BASE + last as u32);
        assert_eq!(r.compared_bytes, last as u64);
        // Generous even for an unoptimised build; a per-byte lookup would take far longer.
        assert!(t.elapsed().as_secs() < 20, "{:?}", t.elapsed());
    }
}
