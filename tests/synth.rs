//! The synthetic SP objects of `vpe::synth` (used by the benchmarks and `scripts/bench-*`) are
//! valid: they convert with the default (strict) options and verify equivalent, GNU ld relocates
//! them to the same bytes as the legacy model, and the converted firmware runs under qemu-user.
//! Small sizes only (CI time).

mod common;

use common::*;
use goblin::elf::Elf;
use vpe::convert::{self, Options};
use vpe::elf::{Endian, SHT_NOBITS};
use vpe::image::RelocSemantics;
use vpe::synth;

const ENDIANS: [Endian; 2] = [Endian::Big, Endian::Little];

fn object(size: usize, endian: Endian) -> (Vec<u8>, synth::Stats) {
    synth::generate_with_stats(&synth::Options {
        size,
        endian,
        seed: 7,
    })
}

#[test]
fn generated_objects_convert_strictly_and_verify() {
    for endian in ENDIANS {
        for size in [64 * 1024, 200 * 1024] {
            let (bytes, stats) = object(size, endian);
            assert_eq!(bytes.len(), size, "{endian:?} {size}");
            // All seven legacy relocation types.
            for t in [0, 2, 4, 5, 6, 7, 10] {
                assert!(
                    stats.relocs_by_type[t] > 0,
                    "{endian:?} {size}: no type {t}"
                );
            }
            let conv = convert::convert(&bytes, &Options::default())
                .unwrap_or_else(|e| panic!("{endian:?} {size}: {e}"));
            assert!(conv.report.equivalent && conv.report.entry_ok);
            // Only the size warning (and none at all under 256 KiB).
            assert!(conv.warnings().is_empty(), "{:?}", conv.warnings());
            assert_eq!(conv.legacy.endian, endian);
            assert_eq!(conv.legacy.shared, conv.legacy.symbol("vpe_shared"));
            assert_eq!(conv.legacy.entry, convert::DEFAULT_BASE);
        }
    }
}

#[test]
fn gnu_ld_relocates_a_generated_object_to_the_same_bytes() {
    for endian in ENDIANS {
        let (bytes, _) = object(150 * 1024, endian);
        let img = convert::load_legacy(&bytes, convert::DEFAULT_BASE, RelocSemantics::Strict)
            .unwrap_or_else(|e| panic!("{endian:?}: {e}"));
        let dir = tempdir();
        let obj = dir.path().join("synth.o");
        std::fs::write(&obj, &bytes).unwrap();
        let sections: Vec<(String, u32)> = img
            .sections
            .iter()
            .map(|s| (s.name.clone(), s.addr))
            .collect();
        let out = dir.path().join("synth.ld");
        ld_reference(&obj, endian, &legacy_order_script(&sections), &out);
        let ld_bytes = std::fs::read(&out).unwrap();
        let ld = Elf::parse(&ld_bytes).unwrap();
        let mut compared = 0usize;
        for s in img
            .sections
            .iter()
            .filter(|s| s.sh_type != SHT_NOBITS && s.size > 0)
        {
            let sh = ld
                .section_headers
                .iter()
                .find(|h| ld.shdr_strtab.get_at(h.sh_name) == Some(s.name.as_str()))
                .unwrap_or_else(|| panic!("{endian:?}: ld output has no {}", s.name));
            assert_eq!(sh.sh_addr as u32, s.addr, "{endian:?}: {} moved", s.name);
            let theirs = &ld_bytes[sh.sh_offset as usize..][..s.size as usize];
            for (i, &b) in theirs.iter().enumerate() {
                let addr = s.addr + i as u32;
                let ours = img.byte_at(addr).expect("inside the image");
                assert_eq!(
                    ours, b,
                    "{endian:?}: {}+{i:#x} ({addr:#010x}) legacy model {ours:#04x}, GNU ld {b:#04x}",
                    s.name
                );
            }
            compared += s.size as usize;
        }
        assert!(compared > 40 * 1024, "{endian:?}: only {compared} bytes");
    }
}

#[test]
fn converted_generated_object_runs_under_qemu() {
    for endian in ENDIANS {
        let (bytes, _) = object(64 * 1024, endian);
        let conv = convert::convert(&bytes, &Options::default()).unwrap();
        let dir = tempdir();
        let fw = dir.path().join("synth.fw");
        std::fs::write(&fw, &conv.firmware).unwrap();
        let (_, code) = run_qemu(&fw, endian);
        assert_eq!(code, synth::EXIT_CODE as i32, "{endian:?}");
    }
}
