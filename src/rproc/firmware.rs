//! [`Image`] → remoteproc firmware ELF bytes.
//!
//! Layout (spec §1.3, §2, §4.4, §6.2):
//! - the image's segments, merged into *regions* where their 4 KiB page ranges touch (the gap
//!   is zero);
//! - after the last region (ALIGN 16) a file-backed tail: the trampoline, `vpe_boot_args`
//!   (16 bytes) and `.resource_table`; then, memory-only, the trace buffer and `extra_mem`;
//! - only the *stored extents* of a region's file part go into the file: runs of at least
//!   [`MIN_ZERO_RUN`] zero bytes of whole pages (`.bss`, gaps) are left to the loader's
//!   zero-fill;
//! - carveouts covering every region, and one RWX PT_LOAD per (region ∩ carveout), split
//!   again where a stored extent starts, because `rproc_da_to_va` needs each segment inside
//!   ONE carveout (remoteproc_core.c) and a PT_LOAD's file bytes are contiguous;
//! - section headers (the kernel finds the table by name only, remoteproc_elf_loader.c),
//!   the provenance note and a symbol table.
//!
//! Everything is computed from the inputs alone, so the output is byte-for-byte deterministic.

use std::borrow::Cow;
use std::str::FromStr;

use serde::Serialize;

use super::mips_tlb;
use super::note::{self, Provenance};
use super::table::{Carveout, Resource, ResourceTable};
use super::trampoline;
use crate::elf::read::{Ehdr, Phdr, Shdr, Sym};
use crate::elf::write::{align_up, StringTable, Writer};
use crate::elf::*;
use crate::error::{Error, Result};
use crate::image::{Image, Segment};

/// Granule of the page-range merge and of `p_align`.
pub const PAGE: u64 = 0x1000;
/// Zero runs of whole pages at least this long (16 pages) are not stored in the file: the
/// `PT_LOAD` before one ends its `p_filesz` where the run starts (the loader zero-fills the
/// rest of its `p_memsz`) and the next starts page-aligned where it ends. 16 pages bound the
/// `PT_LOAD` count by the loaded memory (one split per 64 KiB at most), while a shorter run is
/// stored as at most 64 KiB of zeros (docs/CONVERSION.md §3).
pub const MIN_ZERO_RUN: u64 = 16 * PAGE;
/// Profile M: carveouts are mapped by wired TLB entry *pairs* of 4 KiB pages, so `da` and
/// `len` must be multiples of 8 KiB (Redfearn's `mips_rproc_map`, spec §4.4).
pub const MIPS_CARVEOUT_ALIGN: u64 = 0x2000;
/// Profile M: CMA aligns an allocation to at most `CONFIG_CMA_ALIGNMENT` pages (1 MiB with
/// the default 8 and 4 KiB pages); larger carveouts may be mapped with pages their `da` is not
/// aligned to (`mips_tlb`). The largest carveout under the default; see
/// [`Options::cma_align`].
pub const MIPS_CARVEOUT_MAX: u64 = 0x10_0000;
/// End of KUSEG: Profile M `da` values are TLB-mapped user-segment addresses.
pub const KUSEG_END: u64 = 0x8000_0000;
/// `vpe_boot_args`: the incoming `$a0..$a3`.
pub const BOOT_ARGS_SIZE: u64 = 16;
/// Base name of the carveouts (`vpe1`, `vpe1.1`, ...): the legacy device was `/dev/vpe1`.
pub const CARVEOUT_NAME: &str = "vpe1";
/// Name of the trace resource.
pub const TRACE_NAME: &str = "trace";
/// Section names of the parts the converter adds.
pub const TRAMPOLINE_SECTION: &str = ".vpe.trampoline";
pub const BOOT_ARGS_SECTION: &str = ".vpe.boot_args";
pub const TABLE_SECTION: &str = ".resource_table";
pub const TRACE_SECTION: &str = ".vpe.trace";
pub const NOTE_SECTION: &str = ".note.vpe-migrate";
/// Symbols the converter adds.
pub const BOOT_ARGS_SYMBOL: &str = "vpe_boot_args";
pub const TRAMPOLINE_SYMBOL: &str = "vpe_trampoline";

/// Refuse to build files this large: the legacy loader took at most a few hundred KiB, so a
/// bigger result means a wild address gap or size, not a real program.
const MAX_FILE: u64 = 256 << 20;

/// Which kind of remoteproc driver the firmware is for (spec §6.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Profile {
    /// Redfearn's MIPS remoteproc driver: KUSEG `da`s mapped by wired TLB entries.
    #[serde(rename = "mips-rproc")]
    MipsRproc,
    /// A platform driver with fixed memory: addresses stay as linked (e.g. KSEG0).
    #[serde(rename = "fixed")]
    Fixed,
}

impl Profile {
    pub fn name(self) -> &'static str {
        match self {
            Profile::MipsRproc => "mips-rproc",
            Profile::Fixed => "fixed",
        }
    }
}

impl FromStr for Profile {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "mips-rproc" => Ok(Profile::MipsRproc),
            "fixed" => Ok(Profile::Fixed),
            _ => Err(format!("unknown profile `{s}` (mips-rproc, fixed)")),
        }
    }
}

/// How to build the firmware.
#[derive(Debug, Clone)]
pub struct Options {
    pub profile: Profile,
    /// `$a2` the trampoline passes (legacy `ntcs`).
    pub ntcs: u32,
    /// `$a3` the trampoline passes (legacy `physical_memsize`).
    pub memsize: u32,
    /// Bytes of zeroed headroom after everything else (memory only).
    pub extra_mem: u32,
    /// Size of a trace buffer to declare (`RSC_TRACE`), if any.
    pub trace: Option<u32>,
    /// Enter through the trampoline (`e_entry` = trampoline) or directly at `image.entry`.
    pub trampoline: bool,
    pub provenance: Provenance,
    /// Profile M: the target kernel's `CONFIG_CMA_ALIGNMENT` (an order of 4 KiB pages,
    /// [`mips_tlb::DEFAULT_CMA_ALIGN`] = 8): carveouts are at most `4 KiB << cma_align` and
    /// naturally aligned, so the driver maps them correctly whatever address CMA returns.
    pub cma_align: u8,
}

/// Range of `CONFIG_CMA_ALIGNMENT` (mm/Kconfig: `range 2 12`).
pub const CMA_ALIGN_RANGE: std::ops::RangeInclusive<u8> = 2..=12;

impl Options {
    /// The largest mips-rproc carveout (`4 KiB << cma_align`).
    fn carveout_max(&self) -> Result<u64> {
        if !CMA_ALIGN_RANGE.contains(&self.cma_align) {
            return Err(convert_err(format!(
                "--cma-align {} is outside CONFIG_CMA_ALIGNMENT's range {}..={}",
                self.cma_align,
                CMA_ALIGN_RANGE.start(),
                CMA_ALIGN_RANGE.end()
            )));
        }
        Ok(mips_tlb::KERNEL_PAGE << self.cma_align)
    }
}

fn convert_err(message: String) -> Error {
    Error::Convert { message }
}

fn up(v: u64, a: u64) -> Result<u64> {
    align_up(v, a).ok_or_else(|| convert_err(format!("address {v:#x} overflows when aligned")))
}

fn down(v: u64, a: u64) -> u64 {
    v & !(a - 1)
}

/// Addresses are 32-bit: anything ending past 4 GiB cannot be described.
fn addr32(v: u64, what: &str) -> Result<u32> {
    u32::try_from(v).map_err(|_| {
        convert_err(format!(
            "{what} at {v:#x} lies beyond the 32-bit address space"
        ))
    })
}

/// Contiguous memory in the output: one or more image segments plus zeroed gaps.
/// The file-backed bytes are kept as pieces borrowed from the image (plus the few bytes the
/// converter adds) and copied once, straight into the output: the gaps between them are never
/// materialized, so they cost nothing until the file is written.
#[derive(Debug, Clone)]
struct Region<'a> {
    start: u32,
    /// File-backed bytes: `(offset from start, bytes)`, non-overlapping; zeros elsewhere.
    parts: Vec<(u64, Cow<'a, [u8]>)>,
    /// Length of the file-backed part from `start`.
    file_len: u64,
    /// Exclusive end in memory (`>= start + file_len`).
    mem_end: u64,
    /// What is stored in the file: sorted, non-overlapping absolute `[lo, hi)` ranges of the
    /// file part, the first starting at `start`; between two of them lies a run of at least
    /// [`MIN_ZERO_RUN`] zero bytes of whole pages, and after the last one only zeros. Filled
    /// in by [`plan`] once the tail is in place.
    extents: Vec<(u64, u64)>,
}

impl Region<'_> {
    fn file_end(&self) -> u64 {
        u64::from(self.start) + self.file_len
    }
}

/// Where the added parts go, after the last region.
#[derive(Debug, Clone, Copy)]
struct Tail {
    trampoline: Option<u32>,
    boot_args: u32,
    table: u32,
    table_size: u32,
    /// File-backed part ends here (end of the table).
    file_end: u64,
    trace: Option<(u32, u32)>,
    mem_end: u64,
}

/// Size of the mips-rproc carveout chunk starting at `lo`: naturally aligned, at most `max`
/// (see [`carveouts`]).
fn chunk_len(lo: u64, max: u64) -> u64 {
    if lo == 0 {
        max
    } else {
        (1u64 << lo.trailing_zeros()).min(max)
    }
}

/// The first carveout boundary above `addr` of a mips-rproc region starting at `start`: the
/// chunks begin at `start` rounded down to 8 KiB and double in size up to 1 MiB, so below
/// 1 MiB alignment the boundaries are closer than 1 MiB (`--base 0x1000e000`: 0x10010000,
/// 0x10020000, 0x10040000, ...).
fn next_boundary(start: u64, addr: u64, max: u64) -> u64 {
    let mut b = down(start, MIPS_CARVEOUT_ALIGN);
    while b <= addr {
        if b % max == 0 {
            // From here on every boundary is a multiple of `max`.
            return (down(addr, max) + max).max(b);
        }
        b += chunk_len(b, max);
    }
    b
}

/// `addr`, or the next carveout boundary(s) up if `[addr, addr + len)` would straddle one:
/// the table must lie in one PT_LOAD's file part and the trace buffer in one carveout.
fn inside_one_chunk(start: u64, addr: u64, len: u64, max: u64, what: &str) -> Result<u64> {
    let mut a = addr;
    // Chunk sizes double at each boundary up to `max`, so a few moves always suffice.
    for _ in 0..24 {
        if len == 0 || a + len <= next_boundary(start, a, max) {
            return Ok(a);
        }
        a = next_boundary(start, a, max);
    }
    Err(convert_err(format!(
        "{what} of {len:#x} bytes does not fit in one mips-rproc carveout (at most {max:#x} bytes with --cma-align)"
    )))
}

/// Size of the table with `n` carveouts (and a trace entry if `trace`).
fn table_size(n: usize, trace: bool) -> Result<u64> {
    let c = Resource::Carveout(Carveout {
        da: 0,
        pa: 0,
        len: 0,
        flags: 0,
        reserved: 0,
        name: String::new(),
    });
    let mut entries = vec![c; n];
    if trace {
        entries.push(Resource::Trace {
            da: 0,
            len: 0,
            reserved: 0,
            name: String::new(),
        });
    }
    Ok(ResourceTable { ver: 1, entries }.encoded_len() as u64)
}

/// The tail after `last_end`, the end of the last region, which starts at `last_start`.
fn tail_layout(last_start: u32, last_end: u64, n_carveouts: usize, opts: &Options) -> Result<Tail> {
    let start = u64::from(last_start);
    let m = opts.profile == Profile::MipsRproc;
    let mut p = up(last_end, 16)?;
    let trampoline = if opts.trampoline {
        let t = p;
        p += trampoline::SIZE as u64;
        Some(addr32(t, "the trampoline")?)
    } else {
        None
    };
    let boot_args = up(p, 4)?;
    p = boot_args + BOOT_ARGS_SIZE;
    let table_size = table_size(n_carveouts, opts.trace.is_some())?;
    let mut table = up(p, 8)?;
    // Profile M splits PT_LOADs at carveout boundaries; the table must stay inside one
    // PT_LOAD's file-backed part (checklist #13), so it never straddles a boundary. (The
    // trampoline and `vpe_boot_args` may: the CPU sees the carveouts as contiguous virtual
    // memory.)
    let max = opts.carveout_max()?;
    if m {
        table = inside_one_chunk(start, table, table_size, max, "the resource table")?;
    }
    p = table + table_size;
    let file_end = p;
    let trace = match opts.trace {
        None => None,
        Some(0) => return Err(convert_err("--trace needs a size greater than 0".into())),
        Some(len) => {
            let len64 = u64::from(len);
            if m && len64 > max {
                return Err(convert_err(format!(
                    "trace buffer of {len:#x} bytes is larger than the largest mips-rproc carveout ({max:#x}, see --cma-align); the kernel needs it inside one carveout"
                )));
            }
            let mut t = up(p, 8)?;
            if m {
                t = inside_one_chunk(start, t, len64, max, "the trace buffer")?;
            }
            p = t + len64;
            Some((addr32(t, "the trace buffer")?, len))
        }
    };
    p += u64::from(opts.extra_mem);
    if p > 1 << 32 {
        return Err(convert_err(format!(
            "the image with its tail ends at {p:#x}, beyond the 32-bit address space"
        )));
    }
    Ok(Tail {
        trampoline,
        boot_args: addr32(boot_args, "vpe_boot_args")?,
        table: addr32(table, "the resource table")?,
        table_size: table_size as u32,
        file_end,
        trace,
        mem_end: p,
    })
}

/// Carveouts covering `[start, end)` of each region, with the region they belong to.
fn carveouts(ranges: &[(u32, u64)], profile: Profile, max: u64) -> Result<Vec<(usize, Carveout)>> {
    let mut out = Vec::new();
    for (ri, &(start, end)) in ranges.iter().enumerate() {
        match profile {
            Profile::MipsRproc => {
                let mut lo = down(u64::from(start), MIPS_CARVEOUT_ALIGN);
                let hi = up(end, MIPS_CARVEOUT_ALIGN)?;
                if hi > KUSEG_END {
                    return Err(kseg_error(start, end));
                }
                // Chunks are at most the CMA alignment and each `da` is aligned to
                // next_pow2(len): CMA aligns the physical address that way and the driver
                // picks TLB page sizes from it, so `da` must be aligned alike (spec §4.4,
                // mips_tlb).
                while lo < hi {
                    let len = chunk_len(lo, max).min(hi - lo);
                    out.push((ri, (lo as u32, len as u32)));
                    lo += len;
                }
            }
            Profile::Fixed => {
                let lo = down(u64::from(start), PAGE);
                let hi = up(end, PAGE)?;
                let len = u32::try_from(hi - lo).map_err(|_| {
                    convert_err(format!(
                        "region [{lo:#x}, {hi:#x}) is too large for one carveout (len is a u32)"
                    ))
                })?;
                out.push((ri, (addr32(lo, "a carveout")?, len)));
            }
        }
    }
    Ok(out
        .into_iter()
        .enumerate()
        .map(|(i, (ri, (da, len)))| {
            let pa = match profile {
                Profile::MipsRproc => da,
                // KSEG0/KSEG1 are unmapped windows onto physical 0..512 MiB.
                Profile::Fixed if (0x8000_0000..0xc000_0000).contains(&da) => da & 0x1fff_ffff,
                Profile::Fixed => da,
            };
            let name = if i == 0 {
                CARVEOUT_NAME.to_string()
            } else {
                format!("{CARVEOUT_NAME}.{i}")
            };
            (
                ri,
                Carveout {
                    da,
                    pa,
                    len,
                    flags: 0,
                    reserved: 0,
                    name,
                },
            )
        })
        .collect())
}

fn kseg_error(start: u32, end: u64) -> Error {
    if u64::from(start) < KUSEG_END {
        return convert_err(format!(
            "memory [{start:#010x}, {end:#010x}) runs past the end of KUSEG (0x80000000) once the trampoline, resource table, trace buffer and extra memory are added; the mips-rproc profile maps only KUSEG (place a relocatable input lower with --base, or reduce --extra-mem/--trace)"
        ));
    }
    convert_err(format!(
        "memory [{start:#010x}, {end:#010x}) is outside KUSEG (>= 0x80000000): the image is linked at KSEG0/KSEG1, which the mips-rproc profile cannot map (its carveouts are KUSEG virtual addresses); use --profile fixed for a platform driver with fixed memory, or convert a relocatable (ET_REL) input with --base in KUSEG"
    ))
}

/// The other addresses of the byte a KSEG0/KSEG1 address reaches without the TLB: its
/// KSEG1/KSEG0 twin and its physical address. Empty for mapped addresses.
pub fn kseg_aliases(addr: u32) -> Vec<u32> {
    if (0x8000_0000..0xc000_0000).contains(&addr) {
        vec![addr ^ 0x2000_0000, addr & 0x1fff_ffff]
    } else {
        Vec::new()
    }
}

/// Merge segments whose 4 KiB page ranges touch or overlap.
fn regions(image: &Image) -> Result<Vec<Region<'_>>> {
    let mut segs: Vec<&Segment> = image.segments.iter().filter(|s| s.mem_size > 0).collect();
    segs.sort_by_key(|s| s.addr);
    if segs.is_empty() {
        return Err(convert_err(
            "the image loads nothing: no segment has a size".into(),
        ));
    }
    let mut out: Vec<Region> = Vec::new();
    let mut prev_end = 0u64;
    for s in segs {
        if s.data.len() as u64 > u64::from(s.mem_size) {
            return Err(convert_err(format!(
                "segment at {:#010x} has {:#x} file bytes but a memory size of {:#x}",
                s.addr,
                s.data.len(),
                s.mem_size
            )));
        }
        if u64::from(s.addr) < prev_end {
            return Err(convert_err(format!(
                "segments overlap at {:#010x} (the previous one ends at {prev_end:#010x})",
                s.addr
            )));
        }
        prev_end = s.end();
        let touches = out.last().is_some_and(|r| {
            down(u64::from(s.addr), PAGE) <= up(r.mem_end, PAGE).unwrap_or(u64::MAX)
        });
        match out.last_mut() {
            Some(r) if touches => {
                let at = (s.addr - r.start) as u64;
                if !s.data.is_empty() {
                    r.parts.push((at, Cow::Borrowed(&s.data)));
                    r.file_len = at + s.data.len() as u64;
                }
                r.mem_end = r.mem_end.max(s.end());
            }
            _ => out.push(Region {
                start: s.addr,
                parts: vec![(0, Cow::Borrowed(&s.data))],
                file_len: s.data.len() as u64,
                mem_end: s.end(),
                extents: Vec::new(),
            }),
        }
    }
    Ok(out)
}

fn too_big(n: u64) -> Error {
    convert_err(format!(
        "the firmware would be {n:#x} bytes (limit {MAX_FILE:#x}): the image holds that much non-zero data"
    ))
}

/// True if every byte is zero; compared 16 bytes at a time (a word-wise scan).
fn is_zero(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(16);
    chunks
        .by_ref()
        .all(|c| u128::from_ne_bytes(c.try_into().unwrap_or([1; 16])) == 0)
        && chunks.remainder().iter().all(|&b| b == 0)
}

/// The stored extents of `r` (see [`Region::extents`]). `protected` are absolute ranges of
/// sections with file contents (PROGBITS): a section header describes one contiguous range of
/// the file, so no zero run is cut out of one (their bytes come from the input file, so they
/// cannot be a memory bomb).
fn stored_extents(r: &Region<'_>, protected: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let s = u64::from(r.start);
    let fe = r.file_end();
    // Pages that must be stored: those holding a non-zero byte or part of a protected
    // section. Only file bytes are scanned; gaps between parts are zero by construction.
    let mut keep: Vec<(u64, u64)> = Vec::new();
    for (o, bytes) in &r.parts {
        let a = s + o;
        let mut i = 0usize;
        while i < bytes.len() {
            let addr = a + i as u64;
            let page_end = down(addr, PAGE) + PAGE;
            let n = ((page_end - addr) as usize).min(bytes.len() - i);
            if !is_zero(&bytes[i..i + n]) {
                keep.push((down(addr, PAGE), page_end));
            }
            i += n;
        }
    }
    for &(lo, hi) in protected {
        if lo < fe && hi > s && lo < hi {
            keep.push((down(lo, PAGE), hi.div_ceil(PAGE) * PAGE));
        }
    }
    keep.sort_unstable();
    let mut extents = Vec::new();
    let (mut cur0, mut cur1) = (s, s);
    for (k0, k1) in keep {
        let (k0, k1) = (k0.max(s), k1.min(fe));
        if k1 <= cur1 {
            continue;
        }
        // k0 is page-aligned (or `s`, and then there is no gap): the next PT_LOAD may start
        // there and still keep p_offset ≡ p_vaddr (mod 4096) with its bytes at the top.
        if k0 >= cur1 + MIN_ZERO_RUN {
            extents.push((cur0, cur1));
            cur0 = k0;
        }
        cur1 = k1;
    }
    extents.push((cur0, cur1));
    extents
}

/// One PT_LOAD: `[start, end)` of region `region`, inside one carveout.
#[derive(Debug, Clone, Copy)]
struct Piece {
    region: usize,
    /// Index into the region's `extents` of the extent holding (or last before) `start`.
    extent: usize,
    start: u32,
    end: u64,
}

/// Everything about the output's memory, before any file offset is chosen.
struct Plan<'a> {
    regions: Vec<Region<'a>>,
    tail: Tail,
    pieces: Vec<Piece>,
    entry: u32,
}

fn plan<'a>(image: &'a Image, opts: &Options) -> Result<Plan<'a>> {
    let mut regions = regions(image)?;
    if opts.profile == Profile::MipsRproc {
        for r in &regions {
            if r.mem_end > KUSEG_END {
                return Err(kseg_error(r.start, r.mem_end));
            }
        }
    }
    // Profile F: the Lantiq loaders start at KSEG1(vpe1_load_addr), an unmapped alias of
    // memory loaded at its KSEG0 or physical address.
    let via_alias = opts.profile == Profile::Fixed
        && kseg_aliases(image.entry)
            .iter()
            .any(|&a| image.byte_at(a).is_some());
    if image.byte_at(image.entry).is_none() && !via_alias {
        return Err(convert_err(format!(
            "the entry point {:#010x} (__start) is not inside any loaded segment",
            image.entry
        )));
    }
    if image.sections.iter().any(|s| s.name == TABLE_SECTION) {
        return Err(convert_err(format!(
            "the input already has a {TABLE_SECTION} section; the kernel uses the first one it finds, so the converter will not add a second"
        )));
    }
    let last = regions.len() - 1;
    let last_end = regions[last].mem_end;
    // The table's size depends on the number of carveouts, which depends on where the tail
    // ends: iterate to a fixpoint (both grow monotonically, so this converges quickly).
    let mut n = 1usize;
    let (tail, cos) = loop {
        let tail = tail_layout(regions[last].start, last_end, n, opts)?;
        let ranges: Vec<(u32, u64)> = regions
            .iter()
            .enumerate()
            .map(|(i, r)| (r.start, if i == last { tail.mem_end } else { r.mem_end }))
            .collect();
        let cos = carveouts(&ranges, opts.profile, opts.carveout_max()?)?;
        if cos.len() == n {
            break (tail, cos);
        }
        if cos.len() < n || n > 4096 {
            return Err(convert_err(format!(
                "internal error: carveout count does not settle ({n} -> {})",
                cos.len()
            )));
        }
        n = cos.len();
    };
    let mut entries: Vec<Resource> = cos
        .iter()
        .map(|(_, c)| Resource::Carveout(c.clone()))
        .collect();
    if let Some((da, len)) = tail.trace {
        entries.push(Resource::Trace {
            da,
            len,
            reserved: 0,
            name: TRACE_NAME.into(),
        });
    }
    let table = ResourceTable { ver: 1, entries };
    let table_bytes = table.encode(image.endian)?;
    if table_bytes.len() as u64 != u64::from(tail.table_size) {
        return Err(convert_err(
            "internal error: resource table size changed".into(),
        ));
    }

    // Extend the last region's file part up to the table; its .bss and gaps are zeros that
    // `stored_extents` leaves out of the file where they span whole pages.
    let entry = tail.trampoline.unwrap_or(image.entry);
    {
        let r = &mut regions[last];
        let start = u64::from(r.start);
        r.file_len = tail.file_end - start;
        let mut put = |addr: u32, bytes: &[u8]| {
            r.parts
                .push((u64::from(addr) - start, Cow::Owned(bytes.to_vec())));
        };
        if let Some(t) = tail.trampoline {
            let code = trampoline::encode(
                tail.boot_args,
                opts.ntcs,
                opts.memsize,
                image.entry,
                image.endian,
            );
            put(t, &code);
        }
        put(tail.table, &table_bytes);
        r.mem_end = tail.mem_end;
    }

    // Sections with file contents, the converter's own included.
    let mut protected: Vec<(u64, u64)> = image
        .sections
        .iter()
        .filter(|s| s.sh_type != SHT_NOBITS && s.size > 0)
        .map(|s| (u64::from(s.addr), u64::from(s.addr) + u64::from(s.size)))
        .collect();
    if let Some(t) = tail.trampoline {
        protected.push((u64::from(t), u64::from(t) + trampoline::SIZE as u64));
    }
    protected.push((
        u64::from(tail.boot_args),
        u64::from(tail.boot_args) + BOOT_ARGS_SIZE,
    ));
    protected.push((
        u64::from(tail.table),
        u64::from(tail.table) + u64::from(tail.table_size),
    ));
    for r in &mut regions {
        r.extents = stored_extents(r, &protected);
    }

    // One PT_LOAD per (region ∩ carveout), split again where a stored extent starts.
    let mut pieces = Vec::new();
    for (ri, c) in &cos {
        let r = &regions[*ri];
        let lo = u64::from(c.da).max(u64::from(r.start));
        let hi = (u64::from(c.da) + u64::from(c.len)).min(r.mem_end);
        if hi <= lo {
            continue;
        }
        let mut at = lo;
        // The extent holding (or last before) `at`; extents[0] starts at r.start <= lo.
        let mut k = r.extents.partition_point(|e| e.0 <= at) - 1;
        loop {
            let next = r.extents.get(k + 1).map_or(hi, |e| e.0.min(hi));
            pieces.push(Piece {
                region: *ri,
                extent: k,
                start: at as u32,
                end: next,
            });
            if next >= hi {
                break;
            }
            at = next;
            k += 1;
        }
    }
    Ok(Plan {
        regions,
        tail,
        pieces,
        entry,
    })
}

/// A section header to write, before names and offsets are resolved.
struct OutSection {
    name: String,
    sh_type: u32,
    flags: u32,
    addr: u32,
    size: u32,
    align: u32,
    /// `Some` = contents at this address in a region; `None` = placed in the file separately.
    in_region: Option<usize>,
    link: u32,
    info: u32,
    entsize: u32,
}

impl OutSection {
    fn alloc(name: &str, sh_type: u32, flags: u32, addr: u32, size: u32, align: u32) -> Self {
        OutSection {
            name: name.into(),
            sh_type,
            flags,
            addr,
            size,
            align,
            in_region: None,
            link: 0,
            info: 0,
            entsize: 0,
        }
    }
}

/// The region holding `[addr, addr+size)` in memory (and in the file part unless NOBITS).
fn region_of(regions: &[Region<'_>], addr: u32, size: u32, nobits: bool) -> Option<usize> {
    let a = u64::from(addr);
    let e = a + u64::from(size);
    regions.iter().position(|r| {
        let limit = if nobits || size == 0 {
            r.mem_end
        } else {
            r.file_end()
        };
        u64::from(r.start) <= a && e <= limit
    })
}

/// Build the firmware ELF for `image`.
pub fn build(image: &Image, opts: &Options) -> Result<Vec<u8>> {
    let endian = image.endian;
    if image.sections.len() > 0xf000 {
        return Err(convert_err(format!(
            "{} sections need extended numbering, which the kernel does not support",
            image.sections.len()
        )));
    }
    let plan = plan(image, opts)?;
    let tail = plan.tail;

    // ---- sections --------------------------------------------------------------------------
    let mut secs: Vec<OutSection> = Vec::new();
    // image.sections index -> output section index.
    let mut sec_map: Vec<Option<u16>> = vec![None; image.sections.len()];
    for (i, s) in image.sections.iter().enumerate() {
        // REGINFO/ABIFLAGS bytes stay in the segment; a header for them would make readers
        // expect the matching (dropped) program headers.
        if s.sh_type == SHT_MIPS_REGINFO || s.sh_type == SHT_MIPS_ABIFLAGS {
            continue;
        }
        // A section we cannot place consistently (not inside loaded memory) gets no header;
        // its symbols become absolute.
        let Some(ri) = region_of(&plan.regions, s.addr, s.size, s.sh_type == SHT_NOBITS) else {
            continue;
        };
        sec_map[i] = Some((secs.len() + 1) as u16);
        let mut o = OutSection::alloc(&s.name, s.sh_type, s.flags, s.addr, s.size, s.align);
        o.in_region = Some(ri);
        secs.push(o);
    }
    let last = plan.regions.len() - 1;
    let add_tail = |secs: &mut Vec<OutSection>, mut o: OutSection| -> u16 {
        o.in_region = Some(last);
        secs.push(o);
        secs.len() as u16
    };
    let tramp_idx = tail.trampoline.map(|t| {
        add_tail(
            &mut secs,
            OutSection::alloc(
                TRAMPOLINE_SECTION,
                SHT_PROGBITS,
                SHF_ALLOC | SHF_EXECINSTR,
                t,
                trampoline::SIZE as u32,
                4,
            ),
        )
    });
    let boot_idx = add_tail(
        &mut secs,
        OutSection::alloc(
            BOOT_ARGS_SECTION,
            SHT_PROGBITS,
            SHF_ALLOC | SHF_WRITE,
            tail.boot_args,
            BOOT_ARGS_SIZE as u32,
            4,
        ),
    );
    add_tail(
        &mut secs,
        OutSection::alloc(
            TABLE_SECTION,
            SHT_PROGBITS,
            SHF_ALLOC | SHF_WRITE,
            tail.table,
            tail.table_size,
            8,
        ),
    );
    if let Some((da, len)) = tail.trace {
        add_tail(
            &mut secs,
            OutSection::alloc(TRACE_SECTION, SHT_NOBITS, SHF_ALLOC | SHF_WRITE, da, len, 8),
        );
    }
    let note_bytes = note::encode(&opts.provenance, endian);
    secs.push(OutSection::alloc(
        NOTE_SECTION,
        SHT_NOTE,
        0,
        0,
        note_bytes.len() as u32,
        4,
    ));
    let note_idx = secs.len();

    // ---- symbols ---------------------------------------------------------------------------
    let mut strtab = StringTable::with_capacity(
        image.symbols.len() + 2,
        image
            .symbols
            .iter()
            .map(|s| s.name.len() + 1)
            .sum::<usize>()
            + 64,
    );
    let mut syms = Vec::with_capacity(image.symbols.len() + 3);
    syms.push(Sym {
        st_name: 0,
        st_value: 0,
        st_size: 0,
        st_info: 0,
        st_other: 0,
        st_shndx: 0,
    });
    let to_sym = |strtab: &mut StringTable, s: &crate::image::Symbol| Sym {
        st_name: strtab.add(&s.name),
        st_value: s.value,
        st_size: s.size,
        st_info: s.info,
        st_other: 0,
        st_shndx: s
            .section
            .and_then(|i| sec_map.get(i).copied().flatten())
            .unwrap_or(SHN_ABS),
    };
    // ELF requires the locals first; sh_info is the index of the first non-local.
    for s in image.symbols.iter().filter(|s| s.info >> 4 == STB_LOCAL) {
        syms.push(to_sym(&mut strtab, s));
    }
    let first_global = syms.len() as u32;
    for s in image.symbols.iter().filter(|s| s.info >> 4 != STB_LOCAL) {
        syms.push(to_sym(&mut strtab, s));
    }
    let taken = |n: &str| image.symbols.iter().any(|s| s.name == n);
    if !taken(BOOT_ARGS_SYMBOL) {
        syms.push(Sym {
            st_name: strtab.add(BOOT_ARGS_SYMBOL),
            st_value: tail.boot_args,
            st_size: BOOT_ARGS_SIZE as u32,
            st_info: (STB_GLOBAL << 4) | STT_OBJECT,
            st_other: 0,
            st_shndx: boot_idx,
        });
    }
    if let (Some(t), Some(idx)) = (tail.trampoline, tramp_idx) {
        if !taken(TRAMPOLINE_SYMBOL) {
            syms.push(Sym {
                st_name: strtab.add(TRAMPOLINE_SYMBOL),
                st_value: t,
                st_size: trampoline::SIZE as u32,
                st_info: (STB_GLOBAL << 4) | STT_FUNC,
                st_other: 0,
                st_shndx: idx,
            });
        }
    }
    let symtab_idx = secs.len() + 1;
    let strtab_idx = symtab_idx + 1;
    let mut symtab_sec = OutSection::alloc(
        ".symtab",
        SHT_SYMTAB,
        0,
        0,
        (syms.len() * SYM32_SIZE) as u32,
        4,
    );
    symtab_sec.link = strtab_idx as u32;
    symtab_sec.info = first_global;
    symtab_sec.entsize = SYM32_SIZE as u32;
    secs.push(symtab_sec);
    secs.push(OutSection::alloc(
        ".strtab",
        SHT_STRTAB,
        0,
        0,
        strtab.bytes().len() as u32,
        1,
    ));
    secs.push(OutSection::alloc(".shstrtab", SHT_STRTAB, 0, 0, 0, 1));
    let shnum = secs.len() + 1;
    if shnum >= usize::from(SHN_LORESERVE) {
        return Err(convert_err(format!(
            "{shnum} sections need extended numbering, which the kernel does not support"
        )));
    }
    let mut shstrtab = StringTable::new();
    let names: Vec<u32> = secs.iter().map(|s| shstrtab.add(&s.name)).collect();
    let shstrtab_len = shstrtab.bytes().len() as u32;
    if let Some(s) = secs.last_mut() {
        s.size = shstrtab_len;
    }

    // ---- reserve ---------------------------------------------------------------------------
    let nph = plan.pieces.len();
    if nph == 0 || nph >= 0xffff {
        return Err(convert_err(format!(
            "{nph} program headers cannot be described"
        )));
    }
    let mut w = Writer::new(endian);
    w.reserve(EHDR32_SIZE as u64, 1)?;
    let phoff = w.reserve((nph * PHDR32_SIZE) as u64, 4)?;
    // File offset of every stored extent, region by region.
    let mut extent_off: Vec<Vec<u64>> = Vec::with_capacity(plan.regions.len());
    for r in &plan.regions {
        let mut offs = Vec::with_capacity(r.extents.len());
        for &(lo, hi) in &r.extents {
            offs.push(w.reserve_congruent(hi - lo, lo as u32, PAGE)?);
        }
        extent_off.push(offs);
    }
    // File offset of `addr` in region `ri`: in the extent holding it, or, past an extent's
    // end (only NOBITS and zero-length sections get there), that extent's end.
    let file_off = |ri: usize, addr: u32| -> u64 {
        let r = &plan.regions[ri];
        let a = u64::from(addr);
        let k = r.extents.partition_point(|e| e.0 <= a).max(1) - 1;
        let (lo, hi) = r.extents[k];
        extent_off[ri][k] + (a.max(lo) - lo).min(hi - lo)
    };
    let note_off = w.reserve(note_bytes.len() as u64, 4)?;
    let symtab_off = w.reserve((syms.len() * SYM32_SIZE) as u64, 4)?;
    let strtab_off = w.reserve(strtab.bytes().len() as u64, 1)?;
    let shstrtab_off = w.reserve(u64::from(shstrtab_len), 1)?;
    let shoff = w.reserve((shnum * SHDR32_SIZE) as u64, 4)?;
    if w.reserved() > MAX_FILE {
        return Err(too_big(w.reserved()));
    }

    // Program headers. A piece with no file bytes still needs p_offset ≡ p_vaddr (mod 4096)
    // and p_offset within the file (checklist #7): take the highest such offset not past the
    // end of its region's file data, padding the file if that is still short.
    let mut phdrs = Vec::with_capacity(nph);
    let mut need = w.reserved();
    for p in &plan.pieces {
        let r = &plan.regions[p.region];
        let (lo, hi) = r.extents[p.extent];
        let rel = u64::from(p.start) - lo;
        let filesz = hi
            .saturating_sub(u64::from(p.start))
            .min(p.end - u64::from(p.start));
        let off0 = extent_off[p.region][p.extent];
        let natural = off0 + rel;
        let p_offset = if filesz > 0 {
            natural
        } else {
            let limit = off0 + (hi - lo);
            let over = natural.saturating_sub(limit);
            natural
                .checked_sub(over.div_ceil(PAGE) * PAGE)
                .unwrap_or(natural - over / PAGE * PAGE)
        };
        need = need.max(p_offset + filesz);
        phdrs.push(Phdr {
            p_type: PT_LOAD,
            p_offset: p_offset as u32,
            p_vaddr: p.start,
            p_paddr: p.start,
            p_filesz: filesz as u32,
            p_memsz: (p.end - u64::from(p.start)) as u32,
            p_flags: PF_R | PF_W | PF_X,
            p_align: PAGE as u32,
        });
    }
    if need > w.reserved() {
        w.reserve(need - w.reserved(), 1)?;
    }

    // Section headers.
    let mut shdrs = vec![Shdr {
        sh_name: 0,
        sh_type: SHT_NULL,
        sh_flags: 0,
        sh_addr: 0,
        sh_offset: 0,
        sh_size: 0,
        sh_link: 0,
        sh_info: 0,
        sh_addralign: 0,
        sh_entsize: 0,
    }];
    let fixed_offsets = [note_off, symtab_off, strtab_off, shstrtab_off];
    let mut next_fixed = fixed_offsets.iter();
    for (k, s) in secs.iter().enumerate() {
        let off = match s.in_region {
            Some(ri) => file_off(ri, s.addr),
            None => *next_fixed.next().unwrap_or(&0),
        };
        shdrs.push(Shdr {
            sh_name: names[k],
            sh_type: s.sh_type,
            sh_flags: s.flags,
            sh_addr: s.addr,
            sh_offset: off as u32,
            sh_size: s.size,
            sh_link: s.link,
            sh_info: s.info,
            sh_addralign: s.align,
            sh_entsize: s.entsize,
        });
    }
    debug_assert_eq!(shdrs[note_idx].sh_offset as u64, note_off);

    // ---- write -----------------------------------------------------------------------------
    let ehdr = Ehdr {
        class: ELFCLASS32,
        data: endian.ei_data(),
        ident_version: EV_CURRENT,
        endian,
        e_type: ET_EXEC,
        e_machine: EM_MIPS,
        e_version: 1,
        e_entry: plan.entry,
        e_phoff: phoff as u32,
        e_shoff: shoff as u32,
        e_flags: image.e_flags,
        e_ehsize: EHDR32_SIZE as u16,
        e_phentsize: PHDR32_SIZE as u16,
        e_phnum: nph as u16,
        e_shentsize: SHDR32_SIZE as u16,
        e_shnum: shnum as u16,
        e_shstrndx: (shnum - 1) as u16,
    };
    w.write_ehdr(&ehdr)?;
    w.write_phdrs(phoff, &phdrs)?;
    // Each part's bytes that fall into stored extents (the rest are zero runs).
    for (r, offs) in plan.regions.iter().zip(&extent_off) {
        let start = u64::from(r.start);
        for (o, bytes) in &r.parts {
            let (a, b) = (start + o, start + o + bytes.len() as u64);
            // Only the extents that meet [a, b): from the last one starting at or before a.
            let first = r.extents.partition_point(|e| e.0 <= a).max(1) - 1;
            for (&(lo, hi), &off) in r.extents[first..].iter().zip(&offs[first..]) {
                if lo >= b {
                    break;
                }
                let (x, y) = (a.max(lo), b.min(hi));
                if x < y {
                    w.write_at(off + (x - lo), &bytes[(x - a) as usize..(y - a) as usize])?;
                }
            }
        }
    }
    w.write_at(note_off, &note_bytes)?;
    w.write_syms(symtab_off, &syms)?;
    w.write_at(strtab_off, strtab.bytes())?;
    w.write_at(shstrtab_off, shstrtab.bytes())?;
    w.write_shdrs(shoff, &shdrs)?;
    Ok(w.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::image::{InputKind, PlacedSection, Symbol};
    use goblin::elf::Elf;

    fn prov() -> Provenance {
        Provenance {
            input_sha256: "00".repeat(32),
            input_kind: "ET_REL".into(),
            base: 0x1000_0000,
            profile: "mips-rproc".into(),
            relocs: "strict".into(),
            ntcs: 1,
            memsize: 0,
            trampoline: true,
            tool: "vpe-migrate 0.1.0".into(),
            extra: Vec::new(),
        }
    }

    fn opts(profile: Profile) -> Options {
        Options {
            profile,
            ntcs: 1,
            memsize: 0,
            extra_mem: 0,
            trace: None,
            trampoline: true,
            provenance: prov(),
            cma_align: 8,
        }
    }

    fn sec(
        index: usize,
        name: &str,
        sh_type: u32,
        flags: u32,
        addr: u32,
        size: u32,
    ) -> PlacedSection {
        PlacedSection {
            index,
            name: name.into(),
            addr,
            size,
            align: 4,
            flags,
            sh_type,
            offset: 0,
        }
    }

    fn sym(name: &str, value: u32, info: u8, section: Option<usize>) -> Symbol {
        Symbol {
            name: name.into(),
            value,
            size: 0,
            info,
            section,
        }
    }

    /// A hand-built image: .text (0x100 bytes), .reginfo (24), .data (0x40) and .bss (0x1000)
    /// in one segment, plus a second segment two pages away.
    fn image(base: u32, endian: Endian) -> Image {
        let text: Vec<u8> = (0..0x100u32).map(|i| (i * 7 + 1) as u8).collect();
        let mut seg0 = text.clone();
        seg0.extend_from_slice(&[0x11; 24]); // .reginfo
        seg0.resize(0x120, 0);
        seg0.extend_from_slice(&[0x22; 0x40]); // .data
        let seg1_addr = base + 0x4000;
        Image {
            kind: InputKind::Rel,
            endian,
            e_flags: 0x5000_1001,
            segments: vec![
                Segment {
                    addr: base,
                    data: seg0,
                    mem_size: 0x160 + 0x1000,
                },
                Segment {
                    addr: seg1_addr,
                    data: vec![0x33; 0x10],
                    mem_size: 0x10,
                },
            ],
            entry: base + 0x20,
            shared: Some(base + 0x120),
            gp: Some(base + 0x7ff0),
            base,
            sections: vec![
                sec(
                    1,
                    ".text",
                    SHT_PROGBITS,
                    SHF_ALLOC | SHF_EXECINSTR,
                    base,
                    0x100,
                ),
                sec(2, ".reginfo", SHT_MIPS_REGINFO, SHF_ALLOC, base + 0x100, 24),
                sec(
                    3,
                    ".data",
                    SHT_PROGBITS,
                    SHF_ALLOC | SHF_WRITE,
                    base + 0x120,
                    0x40,
                ),
                sec(
                    4,
                    ".bss",
                    SHT_NOBITS,
                    SHF_ALLOC | SHF_WRITE,
                    base + 0x160,
                    0x1000,
                ),
                sec(
                    5,
                    ".far",
                    SHT_PROGBITS,
                    SHF_ALLOC | SHF_WRITE,
                    seg1_addr,
                    0x10,
                ),
            ],
            symbols: vec![
                sym(
                    "__start",
                    base + 0x20,
                    (STB_GLOBAL << 4) | STT_FUNC,
                    Some(0),
                ),
                sym("local_thing", base + 0x40, STT_OBJECT, Some(2)),
                sym(
                    "vpe_shared",
                    base + 0x120,
                    (STB_GLOBAL << 4) | STT_OBJECT,
                    Some(2),
                ),
                sym("_gp", base + 0x7ff0, STB_GLOBAL << 4, None),
                sym("in_reginfo", base + 0x100, STT_OBJECT, Some(1)),
            ],
            warnings: vec![],
        }
    }

    fn names(elf: &Elf) -> Vec<String> {
        elf.section_headers
            .iter()
            .map(|s| elf.shdr_strtab.get_at(s.sh_name).unwrap_or("?").to_string())
            .collect()
    }

    fn section<'a>(elf: &'a Elf, name: &str) -> &'a goblin::elf::SectionHeader {
        let n = names(elf);
        let i = n
            .iter()
            .position(|x| x == name)
            .unwrap_or_else(|| panic!("no {name} in {n:?}"));
        &elf.section_headers[i]
    }

    fn sym_value(elf: &Elf, name: &str) -> Option<(u64, usize)> {
        elf.syms
            .iter()
            .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
            .map(|s| (s.st_value, s.st_shndx))
    }

    fn loads<'a>(elf: &'a Elf) -> Vec<&'a goblin::elf::ProgramHeader> {
        elf.program_headers
            .iter()
            .filter(|p| p.p_type == goblin::elf::program_header::PT_LOAD)
            .collect()
    }

    fn table_of(bytes: &[u8], elf: &Elf, endian: Endian) -> ResourceTable {
        let t = section(elf, ".resource_table");
        let b = &bytes[t.sh_offset as usize..(t.sh_offset + t.sh_size) as usize];
        ResourceTable::decode(b, endian).unwrap()
    }

    fn carveouts_of(t: &ResourceTable) -> Vec<Carveout> {
        t.entries
            .iter()
            .filter_map(|r| match r {
                Resource::Carveout(c) => Some(c.clone()),
                _ => None,
            })
            .collect()
    }

    /// The structural checklist of spec §6.2, checked with goblin (an independent reader).
    fn check_structure(bytes: &[u8], endian: Endian, profile: Profile) -> ResourceTable {
        check_structure_max(bytes, endian, profile, 0x10_0000)
    }

    /// [`check_structure`] with mips-rproc carveouts of at most `max` bytes.
    fn check_structure_max(
        bytes: &[u8],
        endian: Endian,
        profile: Profile,
        max: u32,
    ) -> ResourceTable {
        let elf = Elf::parse(bytes).expect("goblin parses the firmware");
        assert!(!elf.is_64);
        assert_eq!(elf.little_endian, endian == Endian::Little);
        assert_eq!(elf.header.e_type, goblin::elf::header::ET_EXEC);
        assert_eq!(elf.header.e_machine, goblin::elf::header::EM_MIPS);
        assert_eq!(elf.header.e_ehsize, 52);
        assert_eq!(elf.header.e_phentsize, 32);
        assert_eq!(elf.header.e_shentsize, 40);
        assert!(elf.header.e_shoff as usize + 40 * elf.header.e_shnum as usize <= bytes.len());
        let ls = loads(&elf);
        assert!(!ls.is_empty());
        assert_eq!(ls.len(), elf.program_headers.len(), "only PT_LOADs");
        for p in &ls {
            assert_eq!(p.p_vaddr, p.p_paddr);
            assert_eq!(p.p_offset % 4096, p.p_vaddr % 4096);
            assert!(p.p_memsz > 0);
            assert!(p.p_filesz <= p.p_memsz);
            assert!(p.p_offset + p.p_filesz <= bytes.len() as u64);
        }
        let entry = elf.header.e_entry;
        assert!(
            ls.iter()
                .any(|p| p.is_executable() && p.p_vaddr <= entry && entry < p.p_vaddr + p.p_memsz),
            "e_entry {entry:#x} in an executable PT_LOAD"
        );
        // .resource_table inside the file-backed part of a writable PT_LOAD.
        let t = section(&elf, ".resource_table");
        assert_eq!(t.sh_type, goblin::elf::section_header::SHT_PROGBITS);
        assert_eq!(t.sh_flags as u32, SHF_ALLOC | SHF_WRITE);
        assert_eq!(t.sh_addralign, 8);
        assert!(ls.iter().any(|p| p.is_write()
            && p.p_vaddr <= t.sh_addr
            && t.sh_addr + t.sh_size <= p.p_vaddr + p.p_filesz
            && t.sh_addr - p.p_vaddr == t.sh_offset - p.p_offset));
        assert_eq!(
            names(&elf)
                .iter()
                .filter(|n| *n == ".resource_table")
                .count(),
            1
        );
        let table = table_of(bytes, &elf, endian);
        assert_eq!(table.ver, 1);
        let cos = carveouts_of(&table);
        // Carveouts first, unique names, no overlaps; each PT_LOAD inside exactly one.
        assert!(matches!(table.entries[0], Resource::Carveout(_)));
        let mut seen = std::collections::BTreeSet::new();
        for c in &cos {
            assert!(seen.insert(c.name.clone()), "duplicate {}", c.name);
            assert!(c.len > 0 && c.flags == 0 && c.reserved == 0);
            if profile == Profile::MipsRproc {
                assert_eq!(c.da % 0x2000, 0);
                assert_eq!(c.len % 0x2000, 0);
                assert!(c.len <= max);
                assert_eq!(c.da / max, (c.da + c.len - 1) / max, "crosses {max:#x}");
                assert_eq!(c.da % c.len.next_power_of_two(), 0);
                assert!(u64::from(c.da) + u64::from(c.len) <= 0x8000_0000);
                assert_eq!(c.pa, c.da);
            }
        }
        for (i, a) in cos.iter().enumerate() {
            for b in &cos[i + 1..] {
                assert!(
                    a.da + a.len <= b.da || b.da + b.len <= a.da,
                    "{a:?} overlaps {b:?}"
                );
            }
        }
        for p in &ls {
            let inside = cos
                .iter()
                .filter(|c| {
                    u64::from(c.da) <= p.p_paddr
                        && p.p_paddr + p.p_memsz <= u64::from(c.da) + u64::from(c.len)
                })
                .count();
            assert_eq!(inside, 1, "PT_LOAD {:#x}+{:#x}", p.p_paddr, p.p_memsz);
        }
        table
    }

    #[test]
    fn small_image_both_orders() {
        for endian in [Endian::Big, Endian::Little] {
            let img = image(0x1000_0000, endian);
            let bytes = build(&img, &opts(Profile::MipsRproc)).unwrap();
            let table = check_structure(&bytes, endian, Profile::MipsRproc);
            let elf = Elf::parse(&bytes).unwrap();
            assert_eq!(elf.header.e_flags, 0x5000_1001);
            // Two regions (the second segment is two pages away): two PT_LOADs, two carveouts.
            assert_eq!(loads(&elf).len(), 2);
            let cos = carveouts_of(&table);
            assert_eq!(cos.len(), 2);
            assert_eq!(cos[0].name, "vpe1");
            assert_eq!(cos[1].name, "vpe1.1");
            assert_eq!(cos[0].da, 0x1000_0000);
            // Section headers: the input's minus .reginfo, plus ours.
            let n = names(&elf);
            assert_eq!(
                n,
                [
                    "",
                    ".text",
                    ".data",
                    ".bss",
                    ".far",
                    ".vpe.trampoline",
                    ".vpe.boot_args",
                    ".resource_table",
                    ".note.vpe-migrate",
                    ".symtab",
                    ".strtab",
                    ".shstrtab"
                ]
            );
            assert_eq!(elf.section_headers.len(), 12);
            // Sections sit at their addresses, with file offsets consistent with the segment.
            let text = section(&elf, ".text");
            assert_eq!(text.sh_addr, 0x1000_0000);
            let off = text.sh_offset as usize;
            assert_eq!(&bytes[off..off + 0x100], &img.segments[0].data[..0x100]);
            let far = section(&elf, ".far");
            assert_eq!(
                &bytes[far.sh_offset as usize..far.sh_offset as usize + 0x10],
                &[0x33; 0x10]
            );
            // .reginfo bytes stay in the segment.
            assert_eq!(&bytes[off + 0x100..off + 0x118], &[0x11; 24]);
            // Trampoline: e_entry, decodes to __start with vpe_boot_args.
            let tr = section(&elf, ".vpe.trampoline");
            assert_eq!(elf.header.e_entry, tr.sh_addr);
            assert_eq!(tr.sh_addr % 16, 0);
            assert!(tr.sh_addr >= 0x1000_4010);
            let code = &bytes[tr.sh_offset as usize..][..trampoline::SIZE];
            let t = trampoline::decode(code, endian).unwrap();
            assert_eq!(t.target, 0x1000_0020);
            let ba = section(&elf, ".vpe.boot_args");
            assert_eq!(t.boot_args as u64, ba.sh_addr);
            assert_eq!((t.ntcs, t.memsize), (1, 0));
            // Symbols survive, locals first.
            assert_eq!(sym_value(&elf, "__start").unwrap().0, 0x1000_0020);
            assert_eq!(sym_value(&elf, "vpe_shared").unwrap().0, 0x1000_0120);
            let (gp, gp_ndx) = sym_value(&elf, "_gp").unwrap();
            assert_eq!((gp, gp_ndx), (0x1000_7ff0, SHN_ABS as usize));
            assert_eq!(sym_value(&elf, "vpe_boot_args").unwrap().0, ba.sh_addr);
            assert_eq!(sym_value(&elf, "vpe_trampoline").unwrap().0, tr.sh_addr);
            assert_eq!(sym_value(&elf, "in_reginfo").unwrap().1, SHN_ABS as usize);
            let data_idx = n.iter().position(|x| x == ".data").unwrap();
            assert_eq!(sym_value(&elf, "vpe_shared").unwrap().1, data_idx);
            let symtab = section(&elf, ".symtab");
            let first_global = symtab.sh_info as usize;
            for (i, s) in elf.syms.iter().enumerate() {
                assert_eq!(
                    s.st_bind() == goblin::elf::sym::STB_LOCAL,
                    i < first_global,
                    "symbol {i}"
                );
            }
            // Provenance note decodes.
            let nt = section(&elf, ".note.vpe-migrate");
            let nb = &bytes[nt.sh_offset as usize..(nt.sh_offset + nt.sh_size) as usize];
            assert_eq!(note::decode(nb, endian).unwrap(), prov());
            // Deterministic.
            assert_eq!(build(&img, &opts(Profile::MipsRproc)).unwrap(), bytes);
        }
    }

    #[test]
    fn without_trampoline_the_entry_is_start() {
        let img = image(0x1000_0000, Endian::Big);
        let mut o = opts(Profile::MipsRproc);
        o.trampoline = false;
        let bytes = build(&img, &o).unwrap();
        check_structure(&bytes, Endian::Big, Profile::MipsRproc);
        let elf = Elf::parse(&bytes).unwrap();
        assert_eq!(elf.header.e_entry, 0x1000_0020);
        assert!(!names(&elf).iter().any(|n| n == ".vpe.trampoline"));
        assert!(sym_value(&elf, "vpe_trampoline").is_none());
    }

    #[test]
    fn three_mib_image_is_split_at_1mib_boundaries() {
        let base = 0x1000_0000;
        let mut img = image(base, Endian::Little);
        img.segments.truncate(1);
        img.sections.truncate(4);
        img.segments[0].mem_size = 3 << 20; // mostly .bss
        img.sections[3].size = (3 << 20) - 0x160;
        let mut o = opts(Profile::MipsRproc);
        o.trace = Some(0x1000);
        o.extra_mem = 0x8000;
        let bytes = build(&img, &o).unwrap();
        let table = check_structure(&bytes, Endian::Little, Profile::MipsRproc);
        let cos = carveouts_of(&table);
        // [base, base+3MiB+tail) -> 1 MiB, 1 MiB, 1 MiB, then a small chunk for the tail.
        assert_eq!(cos.len(), 4);
        for (i, c) in cos.iter().take(3).enumerate() {
            assert_eq!((c.da, c.len), (base + (i as u32) * 0x10_0000, 0x10_0000));
        }
        assert_eq!(cos[3].da, base + 0x30_0000);
        assert_eq!(cos[3].name, "vpe1.3");
        let elf = Elf::parse(&bytes).unwrap();
        assert_eq!(loads(&elf).len(), 4);
        // Trace entry last, inside a carveout, its section NOBITS.
        match table.entries.last().unwrap() {
            Resource::Trace { da, len, name, .. } => {
                assert_eq!((*len, name.as_str()), (0x1000, "trace"));
                assert!(cos.iter().any(|c| c.da <= *da && da + len <= c.da + c.len));
            }
            other => panic!("last entry {other:?}"),
        }
        assert_eq!(
            section(&elf, ".vpe.trace").sh_type,
            goblin::elf::section_header::SHT_NOBITS
        );
        // The memory reaches past the trace by extra_mem.
        let last = loads(&elf).last().copied().unwrap();
        let tr = section(&elf, ".vpe.trace");
        assert_eq!(
            last.p_vaddr + last.p_memsz,
            tr.sh_addr + tr.sh_size + 0x8000
        );
    }

    #[test]
    fn unaligned_start_gets_naturally_aligned_carveouts() {
        let base = 0x1000_2000;
        let img = image(base, Endian::Big);
        let bytes = build(&img, &opts(Profile::MipsRproc)).unwrap();
        let table = check_structure(&bytes, Endian::Big, Profile::MipsRproc);
        let cos = carveouts_of(&table);
        assert_eq!(cos[0].da, 0x1000_2000);
        assert_eq!(cos[0].len, 0x2000);
    }

    #[test]
    fn kseg0_is_rejected_for_mips_rproc_and_kept_for_fixed() {
        let img = image(0x8010_0000, Endian::Big);
        let err = build(&img, &opts(Profile::MipsRproc)).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, Error::Convert { .. }));
        assert!(
            msg.contains("KSEG0") && msg.contains("--profile fixed"),
            "{msg}"
        );
        let bytes = build(&img, &opts(Profile::Fixed)).unwrap();
        let table = check_structure(&bytes, Endian::Big, Profile::Fixed);
        let cos = carveouts_of(&table);
        assert_eq!(cos.len(), 2);
        assert_eq!((cos[0].da, cos[0].pa), (0x8010_0000, 0x0010_0000));
        assert_eq!(cos[1].da, 0x8010_4000);
        assert_eq!(cos[1].da % 0x1000, 0);
        let elf = Elf::parse(&bytes).unwrap();
        assert!(loads(&elf).iter().all(|p| p.p_vaddr >= 0x8010_0000));
    }

    #[test]
    fn bad_inputs_are_errors_not_panics() {
        let mut img = image(0x1000_0000, Endian::Big);
        img.entry = 0x2000_0000;
        assert!(build(&img, &opts(Profile::MipsRproc)).is_err());
        let mut img = image(0x1000_0000, Endian::Big);
        img.segments.clear();
        assert!(build(&img, &opts(Profile::MipsRproc)).is_err());
        let mut img = image(0x7fff_0000, Endian::Big);
        img.segments.truncate(1);
        img.segments[0].mem_size = 0xffff; // tail would cross into KSEG0
        assert!(build(&img, &opts(Profile::MipsRproc)).is_err());
        let mut img = image(0xffff_0000, Endian::Big);
        img.segments.truncate(1);
        img.segments[0].mem_size = 0xfff0; // the tail would pass 4 GiB
        assert!(build(&img, &opts(Profile::Fixed)).is_err());
        let mut img = image(0x1000_0000, Endian::Big);
        img.sections[0].name = ".resource_table".into();
        assert!(build(&img, &opts(Profile::MipsRproc)).is_err());
        let mut o = opts(Profile::MipsRproc);
        o.trace = Some(0);
        assert!(build(&image(0x1000_0000, Endian::Big), &o).is_err());
    }

    #[test]
    fn profile_names_round_trip() {
        for p in [Profile::MipsRproc, Profile::Fixed] {
            assert_eq!(p.name().parse::<Profile>().unwrap(), p);
            assert_eq!(
                serde_json::to_string(&p).unwrap(),
                format!("\"{}\"", p.name())
            );
        }
        assert!("kseg".parse::<Profile>().is_err());
    }

    /// binutils as a second independent reader: no warnings for either byte order.
    #[test]
    fn readelf_has_no_complaints() {
        let tool = "mips-linux-gnu-readelf";
        if std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("{tool} not installed; skipping");
            return;
        }
        for (endian, bss_pieces) in [(Endian::Big, false), (Endian::Little, true)] {
            let mut o = opts(Profile::MipsRproc);
            o.trace = Some(0x2000);
            let img = if bss_pieces {
                big_bss_image()
            } else {
                image(0x1000_0000, endian)
            };
            let bytes = build(&img, &o).unwrap();
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("fw.elf");
            std::fs::write(&path, &bytes).unwrap();
            let out = std::process::Command::new(tool)
                .arg("-hlSsW")
                .arg(&path)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{stderr}");
            assert!(stderr.trim().is_empty(), "readelf stderr: {stderr}");
            assert!(!stdout.to_lowercase().contains("warning"), "{stdout}");
            assert!(stdout.contains(".resource_table"));
            assert!(stdout.contains("__start"));
        }
    }

    /// Two regions; the first has 2.5 MiB of .bss, so it is split into 1 MiB carveouts and
    /// two of its PT_LOADs have no file bytes at all.
    fn big_bss_image() -> Image {
        let mut img = image(0x1000_0000, Endian::Little);
        img.segments[0].mem_size = 0x28_0000;
        img.sections[3].size = 0x28_0000 - 0x160;
        img.segments[1].addr = 0x1040_0000;
        img.sections[4].addr = 0x1040_0000;
        img
    }

    #[test]
    fn bss_only_pieces_get_offsets_inside_the_file() {
        let img = big_bss_image();
        let bytes = build(&img, &opts(Profile::MipsRproc)).unwrap();
        check_structure(&bytes, Endian::Little, Profile::MipsRproc);
        let elf = Elf::parse(&bytes).unwrap();
        let ls = loads(&elf);
        let shape: Vec<(u64, u64, u64)> = ls
            .iter()
            .map(|p| (p.p_vaddr, p.p_filesz, p.p_memsz))
            .collect();
        assert_eq!(
            shape[..3],
            [
                (0x1000_0000, 0x160, 0x10_0000),
                (0x1010_0000, 0, 0x10_0000),
                (0x1020_0000, 0, 0x8_0000)
            ]
        );
        assert_eq!(ls[3].p_vaddr, 0x1040_0000);
        // The file does not carry the 2.5 MiB of zeros.
        assert!(bytes.len() < 0x10000, "{:#x}", bytes.len());
    }

    #[test]
    fn table_and_trace_never_straddle_a_mib_boundary() {
        for (end, trace) in [(0x100f_ff00u32, None), (0x100f_f000, Some(0x2000))] {
            let mut img = image(0x1000_0000, Endian::Big);
            img.segments.truncate(1);
            img.sections.truncate(4);
            img.segments[0].mem_size = end - 0x1000_0000;
            img.sections[3].size = end - 0x1000_0160;
            let mut o = opts(Profile::MipsRproc);
            o.trace = trace;
            let bytes = build(&img, &o).unwrap();
            // check_structure asserts the table is inside one PT_LOAD's file part and the
            // trace inside one carveout.
            let table = check_structure(&bytes, Endian::Big, Profile::MipsRproc);
            let elf = Elf::parse(&bytes).unwrap();
            let t = section(&elf, ".resource_table");
            assert_eq!(
                t.sh_addr / 0x10_0000,
                (t.sh_addr + t.sh_size - 1) / 0x10_0000
            );
            if let Some(Resource::Trace { da, len, .. }) = table.entries.last() {
                assert_eq!(da / 0x10_0000, (da + len - 1) / 0x10_0000);
            }
        }
    }

    /// Build, then run every kernel era's `check` with the mips-rproc profile, `verify`, and
    /// the structural checklist; returns the bytes.
    fn build_checked(img: &Image, o: &Options) -> Vec<u8> {
        use crate::rproc::{check, verify};
        let bytes = build(img, o).unwrap();
        check_structure_max(&bytes, img.endian, o.profile, 0x1000 << o.cma_align);
        for kernel in [
            check::KernelEra::Newest,
            check::KernelEra::Pre57,
            check::KernelEra::Old4x,
        ] {
            let copts = check::Options {
                host: Some(img.endian),
                profile: Some(o.profile),
                kernel,
                cma_align: Some(o.cma_align),
            };
            let loaded = check::check(&bytes, &copts).unwrap_or_else(|e| panic!("{kernel:?}: {e}"));
            let r = verify::verify(img, &loaded);
            assert!(r.equivalent && r.entry_ok, "{kernel:?}: {r:?}");
        }
        bytes
    }

    /// One segment: 0x160 bytes of data, then `bss` bytes of .bss.
    fn bss_image(bss: u32) -> Image {
        let mut img = image(0x1000_0000, Endian::Big);
        img.segments.truncate(1);
        img.sections.truncate(4);
        img.segments[0].mem_size = 0x160 + bss;
        img.sections[3].size = bss;
        img
    }

    #[test]
    fn trailing_bss_is_not_stored() {
        let img = bss_image(255 << 20);
        let bytes = build_checked(&img, &opts(Profile::MipsRproc));
        // Headers and the table of 256 carveouts, not 255 MiB of zeros.
        assert!(bytes.len() < 0x10000, "{:#x} bytes", bytes.len());
        let elf = Elf::parse(&bytes).unwrap();
        let ls = loads(&elf);
        // The first PT_LOAD stores the data's page and zero-fills the rest of its 1 MiB.
        assert_eq!((ls[0].p_vaddr, ls[0].p_filesz), (0x1000_0000, 0x1000));
        // The tail's PT_LOAD starts on a page boundary and is the only other one with bytes.
        let tr = section(&elf, ".vpe.trampoline");
        let tail = ls
            .iter()
            .find(|p| p.p_filesz > 0 && p.p_vaddr > 0x1000_0000)
            .unwrap();
        assert_eq!(tail.p_vaddr, tr.sh_addr & !0xfff);
        assert_eq!(ls.iter().filter(|p| p.p_filesz > 0).count(), 2);
        // The tail stays where it was (right after the .bss).
        assert_eq!(tr.sh_addr, 0x1000_0000 + 0x160 + (255 << 20));
        // No two PT_LOADs share a page.
        for w in ls.windows(2) {
            assert!(w[0].p_vaddr + w[0].p_memsz <= w[1].p_vaddr & !0xfff);
        }
    }

    #[test]
    fn bss_shorter_than_the_minimum_run_is_stored_as_before() {
        let img = bss_image(MIN_ZERO_RUN as u32);
        let bytes = build_checked(&img, &opts(Profile::MipsRproc));
        let elf = Elf::parse(&bytes).unwrap();
        // data page + 15 whole zero pages + the tail's page: below the minimum, one PT_LOAD.
        assert_eq!(loads(&elf).len(), 1);
        assert!(bytes.len() > MIN_ZERO_RUN as usize);
        let img = bss_image(MIN_ZERO_RUN as u32 + 0x1000);
        let bytes = build_checked(&img, &opts(Profile::MipsRproc));
        let elf = Elf::parse(&bytes).unwrap();
        assert_eq!(loads(&elf).len(), 2);
        assert!(bytes.len() < 0x4000, "{:#x}", bytes.len());
    }

    #[test]
    fn mid_image_zero_pages_are_split_out_unless_a_section_holds_them() {
        // .data (0x40 bytes of 0x22 at +0x120), then 1 MiB of file zeros that a NOBITS .bss
        // covers, then .sdata (PROGBITS) with bytes: the legacy model's data holds the .bss.
        let base = 0x1000_0000u32;
        let mut img = image(base, Endian::Little);
        img.segments.truncate(1);
        img.sections.truncate(4);
        let sdata_at = 0x160 + 0x10_0000;
        img.segments[0].data.resize(sdata_at as usize, 0);
        img.segments[0].data.extend_from_slice(&[0x44; 0x20]);
        img.segments[0].mem_size = sdata_at + 0x20;
        img.sections[3].size = 0x10_0000;
        img.sections.push(sec(
            5,
            ".sdata",
            SHT_PROGBITS,
            SHF_ALLOC | SHF_WRITE,
            base + sdata_at,
            0x20,
        ));
        let bytes = build_checked(&img, &opts(Profile::MipsRproc));
        assert!(bytes.len() < 0x8000, "{:#x}", bytes.len());
        let elf = Elf::parse(&bytes).unwrap();
        let sd = section(&elf, ".sdata");
        assert_eq!(
            &bytes[sd.sh_offset as usize..][..0x20],
            &[0x44; 0x20],
            "section offsets follow the split"
        );
        // The same zeros inside a PROGBITS section are kept: a section is one file range.
        img.sections[3].sh_type = SHT_PROGBITS;
        let bytes = build_checked(&img, &opts(Profile::MipsRproc));
        assert!(bytes.len() > 0x10_0000, "{:#x}", bytes.len());
    }

    #[test]
    fn zero_gap_between_segments_of_one_region_and_fixed_profile() {
        // ET_EXEC-like: two segments whose pages touch through a 2 MiB .bss of the first.
        let base = 0x8010_0000u32;
        let mut img = image(base, Endian::Big);
        img.segments[0].mem_size = 0x20_0000;
        img.sections[3].size = 0x20_0000 - 0x160;
        img.segments[1].addr = base + 0x20_0000;
        img.sections[4].addr = base + 0x20_0000;
        let bytes = build_checked(&img, &opts(Profile::Fixed));
        assert!(bytes.len() < 0x8000, "{:#x}", bytes.len());
        let elf = Elf::parse(&bytes).unwrap();
        let far = section(&elf, ".far");
        assert_eq!(&bytes[far.sh_offset as usize..][..0x10], &[0x33; 0x10]);
        // One carveout (fixed), three PT_LOADs: data, the .far page (starting a new extent),
        // and nothing else; the tail follows .far in the second one.
        assert_eq!(carveouts_of(&table_of(&bytes, &elf, Endian::Big)).len(), 1);
        assert_eq!(loads(&elf).len(), 2);
    }

    /// A pathological image: `n` pages of data, each followed by exactly one minimum run of
    /// zeros, in one segment (what alternating PROGBITS/NOBITS sections give).
    #[test]
    fn alternating_data_and_zero_runs_bound_the_pt_load_count() {
        let base = 0x1000_0000u32;
        let n = 240u32; // 240 * 68 KiB ~ 16 MiB, the default loaded-memory limit
        let stride = 0x1000 + MIN_ZERO_RUN as u32;
        let mut img = image(base, Endian::Big);
        img.segments.truncate(1);
        img.sections.truncate(1);
        let mut data = vec![0u8; (stride * (n - 1) + 0x1000) as usize];
        for k in 0..n {
            data[(k * stride) as usize..][..0x1000].fill(0x5a);
        }
        img.segments[0].mem_size = data.len() as u32;
        img.segments[0].data = data;
        img.sections[0].size = 0x1000;
        img.entry = base;
        img.symbols.clear();
        let bytes = build_checked(&img, &opts(Profile::MipsRproc));
        let elf = Elf::parse(&bytes).unwrap();
        let cos = carveouts_of(&table_of(&bytes, &elf, Endian::Big)).len();
        // One PT_LOAD per run plus at most one per carveout boundary.
        assert!(
            loads(&elf).len() <= n as usize + cos,
            "{}",
            loads(&elf).len()
        );
        assert!(loads(&elf).len() >= n as usize);
        assert!(
            bytes.len() < (n as usize + 2) * 0x1000 + 0x4000,
            "{:#x}",
            bytes.len()
        );
        eprintln!(
            "alternating: {n} runs, {cos} carveouts, {} PT_LOADs, {:#x} bytes",
            loads(&elf).len(),
            bytes.len()
        );
    }

    #[test]
    fn cma_align_bounds_the_carveouts() {
        // 3 MiB of .bss: 1 MiB carveouts by default, 64 KiB ones under CONFIG_CMA_ALIGNMENT=4,
        // one 4 MiB one under 10; each passes check with the same setting.
        for (order, max) in [(8u8, 0x10_0000u32), (4, 0x1_0000), (10, 0x40_0000)] {
            let img = bss_image(3 << 20);
            let mut o = opts(Profile::MipsRproc);
            o.cma_align = order;
            o.trace = Some(0x1000);
            let bytes = build_checked(&img, &o);
            let elf = Elf::parse(&bytes).unwrap();
            let cos = carveouts_of(&table_of(&bytes, &elf, Endian::Big));
            assert!(cos.iter().all(|c| c.len <= max), "{order}: {cos:?}");
            // Under 10 the whole 3 MiB and its tail fit in one (naturally aligned) carveout.
            let want = if order == 10 {
                1
            } else {
                (3 << 20) / max as usize + 1
            };
            assert_eq!(cos.len(), want, "{order}: {cos:?}");
        }
        let mut o = opts(Profile::MipsRproc);
        o.cma_align = 1;
        let err = build(&bss_image(0), &o).unwrap_err().to_string();
        assert!(
            err.contains("outside CONFIG_CMA_ALIGNMENT's range 2..=12"),
            "{err}"
        );
    }
}
