//! Issue 14.1: with a base that is not 1 MiB aligned the mips-rproc carveouts split at smaller
//! power-of-two boundaries. For every 8 KiB-aligned base in [0x10000000, 0x10200000) and image
//! sizes that put the tail (trampoline, `vpe_boot_args`, table, trace buffer) just before,
//! across and just after one of those boundaries, with and without a trace buffer, the
//! firmware is built, passes `check` (every kernel era, with the profile's geometry) and
//! verifies equivalent. A sample runs the whole `convert` pipeline on objects with that much
//! more `.bss`.

use vpe::convert::{self, Options};
use vpe::elf::{Endian, SHT_NOBITS};
use vpe::image::{Image, RelocSemantics};
use vpe::rproc::check::{self, KernelEra};
use vpe::rproc::firmware::{self, Profile};
use vpe::rproc::note::Provenance;
use vpe::rproc::table::Resource;
use vpe::rproc::verify;
use vpe::synth;

/// The carveout chunk boundaries of a region starting at `base` (each chunk is naturally
/// aligned and at most 1 MiB): the first one above `addr`.
fn next_boundary(base: u32, addr: u32) -> u32 {
    let mut b = base & !0x1fff;
    while b <= addr {
        b += (1u32 << b.trailing_zeros()).min(0x10_0000);
    }
    b
}

/// Where the image ends relative to the boundary: the trampoline (0x38 bytes at the end),
/// `vpe_boot_args` (0x40: it straddles), the table (~0x100 bytes) and the 4 KiB trace buffer
/// start before it, on it or after it.
const BEFORE: [u32; 7] = [0x20, 0x40, 0x60, 0xa0, 0x100, 0x800, 0x1010];

fn synth_opts() -> synth::Options {
    synth::Options {
        size: 64 * 1024,
        endian: Endian::Big,
        seed: 3,
    }
}

fn fw_opts(base: u32, trace: Option<u32>) -> firmware::Options {
    firmware::Options {
        profile: Profile::MipsRproc,
        ntcs: 1,
        memsize: 0,
        extra_mem: 0,
        trace,
        trampoline: true,
        provenance: Provenance {
            input_sha256: "00".repeat(32),
            input_kind: "ET_REL".into(),
            base,
            profile: "mips-rproc".into(),
            relocs: "strict".into(),
            ntcs: 1,
            memsize: 0,
            trampoline: true,
            tool: "test".into(),
            extra: Vec::new(),
        },
        cma_align: 8,
    }
}

/// `img` with `extra` more bytes of `.bss` at its end (what a bigger `.bss` gives).
fn with_more_bss(img: &Image, extra: u32) -> Image {
    let mut img = img.clone();
    img.segments[0].mem_size += extra;
    let bss = img
        .sections
        .iter_mut()
        .filter(|s| s.sh_type == SHT_NOBITS)
        .max_by_key(|s| s.addr)
        .unwrap();
    bss.size += extra;
    img
}

#[test]
fn tail_never_straddles_a_real_carveout_boundary() {
    let input = synth::generate(&synth_opts());
    let mut cases = 0;
    for base in (0x1000_0000u32..0x1020_0000).step_by(0x2000) {
        let img = convert::load_legacy(&input, base, RelocSemantics::Strict).unwrap();
        let end = img.segments[0].end() as u32;
        let b = next_boundary(base, end + 0x1000);
        for before in BEFORE {
            let img = with_more_bss(&img, b - before - end);
            for trace in [None, Some(0x1000)] {
                let what = format!("base {base:#010x} end {:#010x} trace {trace:?}", b - before);
                let fw = firmware::build(&img, &fw_opts(base, trace))
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                // One era per case, in turn (each era sees every base and position).
                let eras = [KernelEra::Newest, KernelEra::Pre57, KernelEra::Old4x];
                {
                    let kernel = eras[(cases + (base as usize >> 13)) % 3];
                    let copts = check::Options {
                        host: Some(Endian::Big),
                        profile: Some(Profile::MipsRproc),
                        kernel,
                        cma_align: None,
                    };
                    let loaded = check::check(&fw, &copts)
                        .unwrap_or_else(|e| panic!("{what} {kernel:?}: {e}"));
                    let r = verify::verify(&img, &loaded);
                    assert!(r.equivalent && r.entry_ok, "{what}: {r:?}");
                    if let Some(len) = trace {
                        assert!(loaded
                            .table
                            .entries
                            .iter()
                            .any(|r| matches!(r, Resource::Trace { len: l, .. } if *l == len)));
                    }
                }
                cases += 1;
            }
        }
    }
    assert_eq!(cases, 256 * BEFORE.len() * 2);
}

/// The whole pipeline on real objects with more `.bss`, at the bases of `--base 0x1000e000`
/// and a few others.
#[test]
fn convert_succeeds_at_unaligned_bases() {
    let plain = synth::generate(&synth_opts());
    for base in [0x1000_e000u32, 0x1001_2000, 0x1007_e000, 0x100f_e000] {
        let size = convert::load_legacy(&plain, base, RelocSemantics::Strict)
            .unwrap()
            .segments[0]
            .mem_size;
        let b = next_boundary(base, base + size + 0x1000);
        for before in BEFORE {
            let input = synth::generate_with_extra_bss(&synth_opts(), b - before - base - size);
            for trace in [None, Some(0x1000)] {
                let o = Options {
                    base: Some(base),
                    trace,
                    ..Options::default()
                };
                let conv = convert::convert(&input, &o).unwrap_or_else(|e| {
                    panic!(
                        "base {base:#010x} end {:#010x} trace {trace:?}: {e}",
                        b - before
                    )
                });
                assert!(conv.report.equivalent && conv.report.entry_ok);
            }
        }
    }
}
