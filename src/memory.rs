//! How the binaries get memory: two opt-in tunings of the system allocator. Neither changes
//! a byte of output or the amount of memory asked for.
//!
//! A conversion touches several image-sized buffers once each (the input, two relocated
//! images, the firmware, the checker's loaded image). Fresh pages are what costs: on the
//! reference VM (docs/PERFORMANCE.md) a 1 MiB object took ~1 100 page faults.
//!
//! * [`reuse_freed_memory`] (`vpe-migrate` and `vpe-compat`): glibc gives blocks of 128 KiB+
//!   their own `mmap` and returns them to the kernel on `free`, so the next buffer faults in
//!   fresh pages again; raising the thresholds keeps freed buffers (the relocated ELF image,
//!   the input) in the heap, where the firmware and the checker's image reuse them (1 MiB
//!   object: ~1 140 faults → ~810). The daemon then holds on to at most the peak of one load,
//!   which `/dev/vpe1`'s size limit bounds, and reuses it for the next.
//! * [`HugePageHint`] (`vpe-migrate` only): `madvise(MADV_HUGEPAGE)` on the 2 MiB-aligned
//!   interior of every block of 2 MiB or more, given before the block is first written when
//!   the allocator hands out fresh memory: a 64 MiB input then costs ~100 faults instead of
//!   ~50 000 (~1.3× on the whole run from 16 MiB up). Without THP in the kernel (or with it
//!   `never`) the call fails and is ignored. The daemon's loads are small, and on a board it
//!   should not trigger memory compaction.

use std::alloc::{GlobalAlloc, Layout, System};

/// The huge page size on x86-64 and arm64 (4 KiB granule); elsewhere the hint is still valid,
/// only coarser or finer than the kernel's unit.
const HUGE: usize = 2 << 20;
/// Smaller blocks cannot hold an aligned huge page.
const THRESHOLD: usize = HUGE;

/// The system allocator, plus the huge-page hint for blocks of 2 MiB or more (module doc).
pub struct HugePageHint;

/// The 2 MiB-aligned part of the block `[p, p + len)` worth hinting, if any.
fn interior(p: usize, len: usize) -> Option<(usize, usize)> {
    if p == 0 || len < THRESHOLD {
        return None;
    }
    let start = p.checked_next_multiple_of(HUGE)?;
    let end = p.checked_add(len)? & !(HUGE - 1);
    (end > start).then_some((start, end))
}

fn advise(p: *mut u8, len: usize) {
    if let Some((start, end)) = interior(p as usize, len) {
        // SAFETY: [start, end) lies inside the block just returned by the system allocator,
        // which we own; MADV_HUGEPAGE only changes how its pages are backed, never their
        // contents. A failure (no THP in this kernel) leaves normal pages: ignored.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

/// Keep freed blocks in the process for reuse: blocks up to 32 MiB (glibc's maximum) come
/// from the heap instead of their own `mmap`, and the heap top is not trimmed. Call once,
/// first thing in `main`, before other threads exist. A no-op where the C library is not
/// glibc.
pub fn reuse_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets allocator parameters; called before any other thread exists.
    // A refused value (returns 0) leaves glibc's default, which is only slower.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}

/// Return the free memory [`reuse_freed_memory`] keeps to the kernel, once: for a daemon
/// after a burst of concurrent requests, so the peak does not stay resident. A no-op where
/// the C library is not glibc.
pub fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free pages of every arena to the kernel; it is
    // thread-safe and never touches memory in use.
    unsafe {
        libc::malloc_trim(0);
    }
}

// SAFETY: every block comes from and goes back to `System` with the same layout; `advise`
// does not touch the memory.
unsafe impl GlobalAlloc for HugePageHint {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (the caller's contract).
        let p = unsafe { System.alloc(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded unchanged (the caller's contract).
        let p = unsafe { System.alloc_zeroed(layout) };
        advise(p, layout.size());
        p
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded unchanged (the caller's contract).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded unchanged (the caller's contract).
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        advise(p, new_size);
        p
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Large blocks allocated through the hint are ordinary memory: writable, zeroed when
    /// asked, preserved by realloc, freed without complaint.
    #[test]
    fn large_blocks_behave_like_the_system_allocator() {
        let a = HugePageHint;
        for size in [THRESHOLD - 1, THRESHOLD, 3 * THRESHOLD + 123] {
            let layout = Layout::from_size_align(size, 8).unwrap();
            // SAFETY: non-zero layout; the block is freed with the same layout.
            unsafe {
                let z = a.alloc_zeroed(layout);
                assert!(!z.is_null());
                let s = std::slice::from_raw_parts_mut(z, size);
                assert!(s.iter().all(|&b| b == 0));
                s[size - 1] = 0xa5;
                s[0] = 0x5a;
                let grown = a.realloc(z, layout, size * 2);
                assert!(!grown.is_null());
                assert_eq!(*grown, 0x5a);
                assert_eq!(*grown.add(size - 1), 0xa5);
                a.dealloc(grown, Layout::from_size_align(size * 2, 8).unwrap());
                let p = a.alloc(layout);
                assert!(!p.is_null());
                p.write_bytes(7, size);
                assert_eq!(*p.add(size / 2), 7);
                a.dealloc(p, layout);
            }
        }
    }

    /// The hinted range is the aligned interior of the block, never outside it.
    #[test]
    fn the_hint_stays_inside_the_block() {
        assert_eq!(interior(HUGE + 100, 3 * HUGE), Some((2 * HUGE, 4 * HUGE)));
        assert_eq!(interior(HUGE, 2 * HUGE), Some((HUGE, 3 * HUGE)));
        // Small blocks, null, and blocks with no whole aligned page inside: no hint.
        assert_eq!(interior(HUGE, THRESHOLD - 1), None);
        assert_eq!(interior(0, 8 * HUGE), None);
        assert_eq!(interior(usize::MAX - HUGE, THRESHOLD), None);
    }
}
