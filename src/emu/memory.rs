//! The emulated SP's memory: exactly what the kernel maps — each carveout (and devmem) of the
//! resource table, filled from the PT_LOADs like `rproc_elf_load_segments` — plus, in hosted
//! mode only, the stack region qemu-user would give a static executable.
//!
//! Every region is one host allocation handed to the engine with `mem_map_ptr`, so the host
//! can read and write it while the guest runs ([`SpMemory`]). Such concurrent accesses are
//! byte copies without ordering, like a second CPU writing uncached memory: a reader may see
//! a word half-written, exactly as on the board without a lock.

use std::ptr::NonNull;

use crate::elf::Endian;
use crate::error::{Error, Result};
use crate::image::Image;
use crate::rproc::table::{Resource, ResourceTable};
use crate::spmem::{out_of_range, SpMemory};

/// Host page size unicorn maps in.
pub const PAGE: u32 = 0x1000;

/// KSEG0/KSEG1: unmapped windows onto physical `addr & 0x1fffffff`.
pub fn is_kseg01(va: u32) -> bool {
    (0x8000_0000..0xc000_0000).contains(&va)
}

/// What a region is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegionKind {
    Carveout,
    Devmem,
    /// Hosted mode's stack (not in the resource table).
    Stack,
}

/// A zeroed, page-aligned host allocation the engine maps with `mem_map_ptr`: an anonymous
/// private mapping, so untouched pages (a large `.bss`, headroom) cost no memory until the
/// guest writes them (`alloc_zeroed` with page alignment wrote every page: a 255 MiB `.bss`
/// took 280 MiB of RSS).
struct Block {
    ptr: NonNull<u8>,
    len: usize,
}

impl Block {
    fn new(len: usize) -> Result<Block> {
        let len = len.max(1);
        let fail = || Error::Emulator {
            message: format!("cannot allocate {len:#x} bytes of SP memory"),
        };
        // SAFETY: a fresh anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            return Err(fail());
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(fail)?;
        Ok(Block { ptr, len })
    }
}

impl Drop for Block {
    fn drop(&mut self) {
        // SAFETY: mapped in Block::new with this length; the engine that used it is closed
        // before the last Arc<Memory> (which owns this) is dropped.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// One mapped region: `len` bytes the guest sees at virtual `da`, held at physical `pa`.
pub struct Region {
    pub name: String,
    pub kind: RegionKind,
    /// Device (virtual) address, as in the resource table.
    pub da: u32,
    /// Physical address the engine maps the block at.
    pub pa: u32,
    /// Bytes, a multiple of [`PAGE`].
    pub len: u32,
    /// Reached through wired TLB entries (KUSEG `da`) rather than KSEG0/KSEG1.
    pub tlb: bool,
    block: Block,
}

impl std::fmt::Debug for Region {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Region {{ {} {:?} da {:#010x} pa {:#010x} len {:#x} }}",
            self.name, self.kind, self.da, self.pa, self.len
        )
    }
}

impl Region {
    pub(crate) fn host_ptr(&self) -> *mut u8 {
        self.block.ptr.as_ptr()
    }

    fn contains(&self, da: u32, len: usize) -> Option<usize> {
        let off = da.checked_sub(self.da)? as usize;
        (off.checked_add(len)? <= self.len as usize).then_some(off)
    }
}

/// All of the SP's memory.
#[derive(Debug)]
pub struct Memory {
    pub endian: Endian,
    pub regions: Vec<Region>,
}

// SAFETY: the blocks are plain bytes owned by Memory; concurrent access from the engine's
// thread and readers is the documented byte-copy semantics above (no references into them
// are ever handed out).
unsafe impl Send for Memory {}
unsafe impl Sync for Memory {}

/// Where carveouts without a fixed physical address are placed: `dma_alloc_coherent` gives
/// the MIPS driver CMA memory at an address unrelated to `da`; the emulator picks its own so
/// that a wrong TLB geometry shows (the firmware would see other bytes than it was loaded
/// with).
const CMA_BASE: u32 = 0x0400_0000;
/// CONFIG_CMA_ALIGNMENT default: allocations aligned to min(size, 2^8 pages).
const CMA_ALIGN_MAX: u32 = 0x10_0000;
/// Hosted mode's stack: 64 KiB ending here (qemu-user's stacks end just below 0x80000000).
pub const STACK_TOP: u32 = 0x7fff_0000;
pub const STACK_SIZE: u32 = 0x1_0000;

fn round_up(v: u64, a: u64) -> u64 {
    v.div_ceil(a) * a
}

impl Memory {
    /// Allocate the table's carveouts and devmems (and a stack if `stack`), then copy the
    /// image's segments like `rproc_elf_load_segments`.
    pub fn build(image: &Image, table: &ResourceTable, stack: bool) -> Result<Memory> {
        let mut wanted: Vec<(String, RegionKind, u32, u32)> = Vec::new();
        for r in &table.entries {
            let (c, kind) = match r {
                Resource::Carveout(c) => (c, RegionKind::Carveout),
                Resource::Devmem(c) => (c, RegionKind::Devmem),
                _ => continue,
            };
            if c.len == 0 {
                continue;
            }
            wanted.push((c.name.clone(), kind, c.da, c.len));
        }
        if stack {
            let mut top = STACK_TOP;
            // Outside every carveout: move it down until it is.
            while wanted.iter().any(|(_, _, da, len)| {
                u64::from(*da) < u64::from(top)
                    && u64::from(*da) + u64::from(*len) > u64::from(top - STACK_SIZE)
            }) {
                top = top
                    .checked_sub(0x100_0000)
                    .filter(|t| *t > STACK_SIZE)
                    .ok_or_else(|| Error::Emulator {
                        message: "no room for a hosted stack outside the carveouts".into(),
                    })?;
            }
            wanted.push((
                "stack".into(),
                RegionKind::Stack,
                top - STACK_SIZE,
                STACK_SIZE,
            ));
        }

        // Physical placement: KSEG0/KSEG1 addresses are their own physical address; KUSEG
        // ones get CMA-like memory above every such fixed range.
        let mut fixed_end: u64 = u64::from(CMA_BASE);
        let mut regions = Vec::new();
        let mut pending = Vec::new();
        for (name, kind, da, len) in wanted {
            let end = u64::from(da) + u64::from(len);
            if da >= 0xc000_0000
                || (da < 0x8000_0000 && end > 0x8000_0000)
                || (is_kseg01(da) && end > 0xc000_0000)
            {
                return Err(Error::Emulator {
                    message: format!(
                        "{name}: carveout {da:#010x} + {len:#x} is neither inside KUSEG nor inside KSEG0/KSEG1"
                    ),
                });
            }
            let plen = round_up(u64::from(len) + u64::from(da % PAGE), u64::from(PAGE)) as u32;
            if is_kseg01(da) {
                let pa = (da & 0x1fff_ffff) & !(PAGE - 1);
                fixed_end = fixed_end.max(u64::from(pa) + u64::from(plen));
                regions.push(Region {
                    name,
                    kind,
                    da: da & !(PAGE - 1),
                    pa,
                    len: plen,
                    tlb: false,
                    block: Block::new(plen as usize)?,
                });
            } else {
                pending.push((name, kind, da, len));
            }
        }
        let mut cursor = fixed_end;
        for (name, kind, da, len) in pending {
            // A TLB pair maps 8 KiB at least; keep the region a whole number of pairs.
            let plen = round_up(u64::from(len) + u64::from(da % 0x2000), 0x2000);
            let align = u64::from(plen.next_power_of_two().min(u64::from(CMA_ALIGN_MAX)) as u32);
            let pa = round_up(cursor, align);
            if pa + plen > 0x2000_0000 {
                return Err(Error::Emulator {
                    message: format!("{name}: no physical room below 512 MiB for {len:#x} bytes"),
                });
            }
            cursor = pa + plen;
            regions.push(Region {
                name,
                kind,
                da: da & !0x1fff,
                pa: pa as u32,
                len: plen as u32,
                tlb: true,
                block: Block::new(plen as usize)?,
            });
        }
        // Overlapping regions would alias on the board (fatal wired entries); refuse.
        for (i, a) in regions.iter().enumerate() {
            for b in &regions[i + 1..] {
                if u64::from(a.da) < u64::from(b.da) + u64::from(b.len)
                    && u64::from(b.da) < u64::from(a.da) + u64::from(a.len)
                {
                    return Err(Error::Emulator {
                        message: format!(
                            "carveouts {} ({:#010x} + {:#x}) and {} ({:#010x} + {:#x}) overlap once page-aligned",
                            a.name, a.da, a.len, b.name, b.da, b.len
                        ),
                    });
                }
            }
        }
        let mem = Memory {
            endian: image.endian,
            regions,
        };
        // rproc_elf_load_segments: each segment wholly inside one carveout (by p_paddr).
        for s in &image.segments {
            if s.mem_size == 0 {
                continue;
            }
            let Some((r, off)) = mem.find_da(s.addr, s.mem_size as usize) else {
                return Err(Error::Kernel {
                    message: format!("bad phdr da {:#x} mem {:#x}", s.addr, s.mem_size),
                    errno: 22,
                    detail: String::new(),
                });
            };
            // SAFETY: off + data.len() <= off + mem_size <= r.len (find_da); the tail is
            // already zero (fresh allocation).
            unsafe {
                std::ptr::copy_nonoverlapping(s.data.as_ptr(), r.host_ptr().add(off), s.data.len())
            };
        }
        Ok(mem)
    }

    /// The region holding `[da, da + len)` by device address, and the offset in it.
    pub fn find_da(&self, da: u32, len: usize) -> Option<(&Region, usize)> {
        self.regions
            .iter()
            .filter(|r| r.kind != RegionKind::Stack)
            .find_map(|r| r.contains(da, len).map(|off| (r, off)))
    }

    /// The region a guest virtual address reaches (TLB-mapped KUSEG, or KSEG0/KSEG1 onto
    /// physical memory), and the offset in it.
    pub fn find_va(&self, va: u32, len: usize) -> Option<(&Region, usize)> {
        if is_kseg01(va) {
            let pa = va & 0x1fff_ffff;
            self.regions.iter().find_map(|r| {
                let off = pa.checked_sub(r.pa)? as usize;
                (off.checked_add(len)? <= r.len as usize).then_some((r, off))
            })
        } else {
            self.regions
                .iter()
                .filter(|r| r.tlb)
                .find_map(|r| r.contains(va, len).map(|off| (r, off)))
        }
    }

    /// Read guest virtual memory (hosted syscalls).
    pub fn read_va(&self, va: u32, buf: &mut [u8]) -> Option<()> {
        let (r, off) = self.find_va(va, buf.len())?;
        // SAFETY: bounds checked by find_va.
        unsafe {
            std::ptr::copy_nonoverlapping(r.host_ptr().add(off), buf.as_mut_ptr(), buf.len())
        };
        Some(())
    }

    /// The stack region (hosted mode).
    pub fn stack(&self) -> Option<&Region> {
        self.regions.iter().find(|r| r.kind == RegionKind::Stack)
    }
}

impl SpMemory for Memory {
    fn read(&self, da: u32, buf: &mut [u8]) -> Result<()> {
        let (r, off) = self
            .find_da(da, buf.len())
            .ok_or_else(|| out_of_range(da, buf.len()))?;
        // SAFETY: bounds checked by find_da; byte copy (see the module comment).
        unsafe {
            std::ptr::copy_nonoverlapping(r.host_ptr().add(off), buf.as_mut_ptr(), buf.len())
        };
        Ok(())
    }

    fn write(&self, da: u32, buf: &[u8]) -> Result<()> {
        let (r, off) = self
            .find_da(da, buf.len())
            .ok_or_else(|| out_of_range(da, buf.len()))?;
        // SAFETY: as in read.
        unsafe { std::ptr::copy_nonoverlapping(buf.as_ptr(), r.host_ptr().add(off), buf.len()) };
        Ok(())
    }
}

#[cfg(test)]
impl Region {
    /// A region descriptor for geometry tests (a one-page block: never accessed).
    pub(crate) fn test(da: u32, pa: u32, len: u32) -> Region {
        Region {
            name: "test".into(),
            kind: RegionKind::Carveout,
            da,
            pa,
            len,
            tlb: true,
            block: Block::new(PAGE as usize).expect("one page"),
        }
    }
}
