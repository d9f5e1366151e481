//! Differential: the bytes the legacy model relocates equal GNU ld's for the same layout (a
//! linker script that puts every section where the legacy 4-pass layout put it).

mod common;

use common::*;
use goblin::elf::Elf;
use vpe::convert;
use vpe::elf::{Endian, SHT_MIPS_ABIFLAGS, SHT_MIPS_REGINFO, SHT_NOBITS};
use vpe::image::RelocSemantics;

fn compare(obj: &str, endian: Endian, semantics: RelocSemantics) {
    let bytes = fixture_bytes(obj);
    let img = convert::load_legacy(&bytes, convert::DEFAULT_BASE, semantics)
        .unwrap_or_else(|e| panic!("{obj}: {e}"));
    let sections: Vec<(String, u32)> = img
        .sections
        .iter()
        .map(|s| (s.name.clone(), s.addr))
        .collect();
    let dir = tempdir();
    let out = dir.path().join("ref");
    ld_reference(&fixture(obj), endian, &legacy_order_script(&sections), &out);
    let ld_bytes = std::fs::read(&out).unwrap();
    let ld = Elf::parse(&ld_bytes).unwrap();
    let mut compared = 0;
    for s in &img.sections {
        // ld rewrites these (gp value, merged flags); they are not relocated program bytes.
        if s.sh_type == SHT_MIPS_REGINFO
            || s.sh_type == SHT_MIPS_ABIFLAGS
            || s.sh_type == SHT_NOBITS
            || s.size == 0
        {
            continue;
        }
        let sh = ld
            .section_headers
            .iter()
            .find(|h| ld.shdr_strtab.get_at(h.sh_name) == Some(s.name.as_str()))
            .unwrap_or_else(|| panic!("{obj}: ld output has no section {}", s.name));
        assert_eq!(
            sh.sh_addr as u32, s.addr,
            "{obj}: {} placed differently by ld",
            s.name
        );
        let theirs = &ld_bytes[sh.sh_offset as usize..][..s.size as usize];
        for (i, &b) in theirs.iter().enumerate() {
            let addr = s.addr + i as u32;
            let ours = img.byte_at(addr).expect("section inside the image");
            assert_eq!(
                ours, b,
                "{obj}: {}+{:#x} ({addr:#010x}) legacy model {ours:#04x}, GNU ld {b:#04x}",
                s.name, i
            );
        }
        compared += s.size;
    }
    assert!(compared > 0, "{obj}: nothing compared");
}

#[test]
fn relocated_bytes_equal_gnu_ld() {
    for program in ["hello", "features", "pc16"] {
        for (endian, tag) in [(Endian::Big, "be"), (Endian::Little, "le")] {
            compare(
                &format!("{program}.{tag}.o"),
                endian,
                RelocSemantics::Strict,
            );
        }
    }
}

#[test]
fn elf_semantics_equal_gnu_ld_where_legacy_differs() {
    for program in ["smalldata", "common"] {
        for (endian, tag) in [(Endian::Big, "be"), (Endian::Little, "le")] {
            compare(&format!("{program}.{tag}.o"), endian, RelocSemantics::Elf);
        }
    }
}
