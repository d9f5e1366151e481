//! The fixtures themselves are sound: every program, linked by GNU ld and run under
//! qemu-user, prints the same non-empty output in both byte orders and exits with the code its
//! source promises; the committed executables are exactly GNU ld's link of the committed
//! relocatables; each relocatable contains the relocations and symbols it exists for; and the
//! `legacy_order_script` helper really puts sections where it is told.

mod common;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use common::*;
use goblin::elf::section_header::{SHF_ALLOC, SHT_RELA};
use goblin::elf::Elf;
use vpe::elf::Endian;

/// (fixture program, exit code, source file that promises it with `#define EXIT_CODE`).
const PROGRAMS: &[(&str, i32, &str)] = &[
    ("hello", 17, "hello.c"),
    ("no_shared", 17, "hello.c"),
    ("features", 23, "features.c"),
    ("pc16", 31, "pc16_main.c"),
    ("smalldata", 37, "smalldata.c"),
    ("common", 41, "common.c"),
    ("regs", 43, "regs.c"),
    ("bigbss", 47, "bigbss.c"),
];

/// Programs that also have a committed `.exe`.
const EXECUTABLES: &[&str] = &["hello", "features"];

const ENDIANS: [(Endian, &str); 2] = [(Endian::Big, "be"), (Endian::Little, "le")];

// MIPS relocation types (binutils include/elf/mips.h).
const R_MIPS_32: u32 = 2;
const R_MIPS_26: u32 = 4;
const R_MIPS_HI16: u32 = 5;
const R_MIPS_LO16: u32 = 6;
const R_MIPS_GPREL16: u32 = 7;
const R_MIPS_PC16: u32 = 10;
/// The types `apply_relocations` in arch/mips/kernel/vpe.c has handlers for.
const LEGACY_TYPES: [u32; 7] = [0, 2, 4, 5, 6, 7, 10];
const SHN_COMMON: usize = 0xfff2;
const PT_MIPS_REGINFO: u32 = 0x7000_0000;
const PT_MIPS_ABIFLAGS: u32 = 0x7000_0003;

/// Link `obj` with `script` into `dir` and run it.
fn link_and_run(obj: &str, endian: Endian, script: &str, dir: &std::path::Path) -> (Vec<u8>, i32) {
    let out = dir.join(format!("{obj}.exe"));
    ld_reference(&fixture(obj), endian, script, &out);
    run_qemu(&out, endian)
}

#[test]
fn every_program_runs_under_gnu_ld_with_its_exit_code() {
    let script = default_script();
    for &(program, code, _) in PROGRAMS {
        let dir = tempdir();
        let mut outputs = Vec::new();
        for (endian, tag) in ENDIANS {
            let obj = format!("{program}.{tag}.o");
            let (stdout, got) = link_and_run(&obj, endian, &script, dir.path());
            assert_eq!(
                got,
                code,
                "{obj}: exit code (stdout: {})",
                String::from_utf8_lossy(&stdout)
            );
            assert!(
                stdout.len() > 20 && stdout.ends_with(b"\n"),
                "{obj}: output {stdout:?}"
            );
            assert!(
                String::from_utf8_lossy(&stdout).lines().count() >= 4,
                "{obj}: expected several lines"
            );
            outputs.push(stdout);
        }
        assert_eq!(
            String::from_utf8_lossy(&outputs[0]),
            String::from_utf8_lossy(&outputs[1]),
            "{program}: big- and little-endian output differ"
        );
    }
}

#[test]
fn exit_codes_are_the_ones_the_sources_define() {
    for &(program, code, src) in PROGRAMS {
        let path = fixtures_root().join("src").join(src);
        let text = std::fs::read_to_string(&path).unwrap();
        let defined: Vec<i32> = text
            .lines()
            .filter_map(|l| l.strip_prefix("#define EXIT_CODE"))
            .map(|v| v.trim().parse().unwrap())
            .collect();
        assert_eq!(defined, vec![code], "{program}: EXIT_CODE in {src}");
    }
}

#[test]
fn hello_and_no_shared_differ_only_in_vpe_shared() {
    let dir = tempdir();
    let script = default_script();
    let (hello, _) = link_and_run("hello.be.o", Endian::Big, &script, dir.path());
    let (no_shared, _) = link_and_run("no_shared.be.o", Endian::Big, &script, dir.path());
    let hello = String::from_utf8_lossy(&hello).into_owned();
    let no_shared = String::from_utf8_lossy(&no_shared).into_owned();
    assert!(hello.contains("vpe_shared id 0x12345602\n"), "{hello}");
    assert!(no_shared.contains("no vpe_shared"), "{no_shared}");
    let strip = |s: &str| {
        s.lines()
            .filter(|l| !l.contains("vpe_shared"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&hello), strip(&no_shared));
}

#[test]
fn executables_are_gnu_ld_links_of_the_relocatables() {
    let script = default_script();
    for program in EXECUTABLES {
        for (endian, tag) in ENDIANS {
            let dir = tempdir();
            let exe = format!("{program}.{tag}.exe");
            let obj = format!("{program}.{tag}.o");
            let out = dir.path().join(&exe);
            ld_reference(&fixture(&obj), endian, &script, &out);
            let relinked = std::fs::read(&out).unwrap();
            assert!(
                relinked == fixture_bytes(&exe),
                "{exe} is not `ld -T exec.ld {obj}` (rerun build.sh)"
            );
            let committed = run_qemu(&fixture(&exe), endian);
            let reference = run_qemu(&out, endian);
            assert_eq!(committed, reference, "{exe}");
            // qemu-user refuses files without x bits; run_qemu must cope without chmod-ing
            // the fixture itself.
            let plain = dir.path().join("not-executable");
            std::fs::write(&plain, fixture_bytes(&exe)).unwrap();
            std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert_eq!(run_qemu(&plain, endian), reference, "{exe} without x bits");
            let mode = std::fs::metadata(&plain).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o644, "run_qemu changed the file's mode");
            let code = PROGRAMS.iter().find(|p| p.0 == *program).unwrap().1;
            assert_eq!(committed.1, code, "{exe}");

            let bytes = fixture_bytes(&exe);
            let elf = Elf::parse(&bytes).unwrap();
            let loads: Vec<_> = elf
                .program_headers
                .iter()
                .filter(|p| p.p_type == 1)
                .collect();
            assert_eq!(loads.len(), 1, "{exe}: one PT_LOAD");
            assert_eq!(loads[0].p_vaddr, 0x1000_0000, "{exe}");
            assert_eq!(loads[0].p_flags, 7, "{exe}: RWX");
            assert!(
                elf.program_headers
                    .iter()
                    .all(|p| p.p_type != PT_MIPS_REGINFO && p.p_type != PT_MIPS_ABIFLAGS),
                "{exe}: MIPS program headers"
            );
            assert!(elf
                .syms
                .iter()
                .any(|s| elf.strtab.get_at(s.st_name) == Some("__start")));
        }
    }
}

/// ALLOC sections of `bytes` in header order: (name, size, align).
fn alloc_sections(bytes: &[u8]) -> Vec<(String, u32, u32)> {
    let elf = Elf::parse(bytes).unwrap();
    elf.section_headers
        .iter()
        .filter(|s| s.sh_flags & u64::from(SHF_ALLOC) != 0)
        .map(|s| {
            let name = elf.shdr_strtab.get_at(s.sh_name).unwrap().to_string();
            (name, s.sh_size as u32, s.sh_addralign.max(1) as u32)
        })
        .collect()
}

#[test]
fn legacy_order_script_places_sections_where_asked() {
    for &(program, code, _) in PROGRAMS {
        for (endian, tag) in ENDIANS {
            let obj = format!("{program}.{tag}.o");
            // Reverse header order with gaps: nothing like ld's own layout, so a helper that
            // ignored the addresses would be caught.
            let mut cursor = 0x1000_0000u32;
            let mut placed = Vec::new();
            let mut empty = Vec::new();
            for (name, size, align) in alloc_sections(&fixture_bytes(&obj)).into_iter().rev() {
                if size == 0 {
                    empty.push(name.clone()); // ld drops empty output sections
                }
                let align = align.max(16);
                let addr = cursor.div_ceil(align) * align;
                cursor = addr + size + 0x40;
                placed.push((name, addr));
            }
            let dir = tempdir();
            let out = dir.path().join("reversed");
            ld_reference(&fixture(&obj), endian, &legacy_order_script(&placed), &out);
            let bytes = std::fs::read(&out).unwrap();
            let elf = Elf::parse(&bytes).unwrap();
            for (name, addr) in &placed {
                let sh = elf
                    .section_headers
                    .iter()
                    .find(|h| elf.shdr_strtab.get_at(h.sh_name) == Some(name));
                if name == ".MIPS.abiflags" || name == ".reginfo" || empty.contains(name) {
                    assert!(sh.is_none(), "{obj}: {name} must be discarded");
                } else {
                    let sh = sh.unwrap_or_else(|| panic!("{obj}: no {name} in the output"));
                    assert_eq!(sh.sh_addr, u64::from(*addr), "{obj}: {name}");
                }
            }
            assert_eq!(
                elf.program_headers.iter().filter(|p| p.p_type == 1).count(),
                1,
                "{obj}"
            );
            assert!(
                elf.program_headers
                    .iter()
                    .all(|p| p.p_type != PT_MIPS_REGINFO && p.p_type != PT_MIPS_ABIFLAGS),
                "{obj}: MIPS program headers"
            );
            let (stdout, got) = run_qemu(&out, endian);
            let (ref_out, _) = link_and_run(&obj, endian, &default_script(), dir.path());
            assert_eq!(got, code, "{obj}");
            assert_eq!(
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&ref_out),
                "{obj}"
            );
        }
    }
}

/// What one relocatable contains, read with goblin (not with our own ELF reader).
struct Contents {
    /// Relocation types on ALLOC target sections.
    types: BTreeSet<u32>,
    /// (type, target section name, symbol name, symbol is global, in-place low 16 bits).
    relocs: Vec<(u32, String, String, bool, u16)>,
    /// Defined symbol names (st_shndx != SHN_UNDEF).
    defined: BTreeSet<String>,
    common: BTreeSet<String>,
    has_rela: bool,
}

fn contents(name: &str, endian: Endian) -> Contents {
    let bytes = fixture_bytes(name);
    let elf = Elf::parse(&bytes).unwrap();
    assert_eq!(elf.header.e_type, 1, "{name}: ET_REL");
    assert_eq!(elf.header.e_machine, 8, "{name}: EM_MIPS");
    assert_eq!(elf.header.e_ident[5], endian.ei_data(), "{name}: EI_DATA");
    let mut c = Contents {
        types: BTreeSet::new(),
        relocs: Vec::new(),
        defined: BTreeSet::new(),
        common: BTreeSet::new(),
        has_rela: elf.section_headers.iter().any(|s| s.sh_type == SHT_RELA),
    };
    for s in elf.syms.iter() {
        let n = elf.strtab.get_at(s.st_name).unwrap_or("").to_string();
        if s.st_shndx == SHN_COMMON {
            c.common.insert(n);
        } else if s.st_shndx != 0 && !n.is_empty() {
            c.defined.insert(n);
        }
    }
    for (rel_idx, relocs) in &elf.shdr_relocs {
        let target = &elf.section_headers[elf.section_headers[*rel_idx].sh_info as usize];
        if target.sh_flags & u64::from(SHF_ALLOC) == 0 {
            continue;
        }
        let tname = elf.shdr_strtab.get_at(target.sh_name).unwrap().to_string();
        for r in relocs.iter() {
            let sym = elf.syms.get(r.r_sym).unwrap();
            let sname = if sym.st_type() == goblin::elf::sym::STT_SECTION {
                let sec = &elf.section_headers[sym.st_shndx];
                elf.shdr_strtab.get_at(sec.sh_name).unwrap().to_string()
            } else {
                elf.strtab.get_at(sym.st_name).unwrap().to_string()
            };
            let at = (target.sh_offset + r.r_offset) as usize;
            let word = endian.read_u32(bytes[at..at + 4].try_into().unwrap());
            c.types.insert(r.r_type);
            c.relocs.push((
                r.r_type,
                tname.clone(),
                sname,
                sym.st_bind() == goblin::elf::sym::STB_GLOBAL,
                word as u16,
            ));
        }
    }
    c
}

#[test]
fn fixtures_contain_what_they_are_for() {
    for (endian, tag) in ENDIANS {
        let all = [
            "hello",
            "no_shared",
            "features",
            "pc16",
            "smalldata",
            "common",
            "regs",
            "bigbss",
            "no_start",
        ];
        for program in all {
            let name = format!("{program}.{tag}.o");
            let c = contents(&name, endian);
            assert!(!c.has_rela, "{name}: RELA");
            assert!(
                c.types.iter().all(|t| LEGACY_TYPES.contains(t)),
                "{name}: types {:?}",
                c.types
            );
            assert_eq!(
                c.defined.contains("__start"),
                program != "no_start",
                "{name}: __start"
            );
            let basic = [R_MIPS_26, R_MIPS_HI16, R_MIPS_LO16];
            if program != "no_start" {
                assert!(
                    basic.iter().all(|t| c.types.contains(t)),
                    "{name}: {:?}",
                    c.types
                );
            }
        }

        let hello = contents(&format!("hello.{tag}.o"), endian);
        assert!(hello.defined.contains("vpe_shared"));
        assert!(!contents(&format!("no_shared.{tag}.o"), endian)
            .defined
            .contains("vpe_shared"));

        let f = contents(&format!("features.{tag}.o"), endian);
        let abs32_in = |sec: &str| {
            f.relocs
                .iter()
                .filter(|r| r.0 == R_MIPS_32 && r.1 == sec)
                .count()
        };
        assert!(
            abs32_in(".rodata") >= 8,
            "features.{tag}.o: a jump table in .rodata"
        );
        assert!(
            abs32_in(".data") >= 4,
            "features.{tag}.o: function pointers in .data"
        );

        let p = contents(&format!("pc16.{tag}.o"), endian);
        let pc16: Vec<_> = p.relocs.iter().filter(|r| r.0 == R_MIPS_PC16).collect();
        assert_eq!(pc16.len(), 3, "pc16.{tag}.o");
        assert!(
            pc16.iter().all(|r| r.3 && r.4 == 0xffff),
            "pc16.{tag}.o: global targets, field -1: {pc16:?}"
        );
        assert!(
            pc16.iter().any(|r| r.2 == "pc16_double"),
            "pc16.{tag}.o: branch into the C file"
        );

        let s = contents(&format!("smalldata.{tag}.o"), endian);
        assert!(s.defined.contains("_gp"));
        let gprel: Vec<_> = s.relocs.iter().filter(|r| r.0 == R_MIPS_GPREL16).collect();
        assert!(
            gprel.iter().any(|r| r.4 != 0 && r.3),
            "smalldata.{tag}.o: global with addend"
        );
        assert!(
            gprel.iter().any(|r| r.4 != 0 && !r.3),
            "smalldata.{tag}.o: section symbol with addend"
        );
        assert!(
            gprel.iter().any(|r| r.4 == 0),
            "smalldata.{tag}.o: plain GPREL16"
        );

        let cm = contents(&format!("common.{tag}.o"), endian);
        let want: BTreeSet<String> = ["common_counts", "common_name"].map(String::from).into();
        assert_eq!(cm.common, want, "common.{tag}.o");
    }
}

#[test]
fn fixtures_are_small_and_the_example_is_hello() {
    for e in std::fs::read_dir(fixtures_root().join("bin")).unwrap() {
        let e = e.unwrap();
        let len = e.metadata().unwrap().len();
        assert!(len < 16 * 1024, "{:?} is {len} bytes", e.file_name());
    }
    let example = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/sp/hello.o");
    assert!(
        std::fs::read(example).unwrap() == fixture_bytes("hello.be.o"),
        "examples/sp/hello.o != hello.be.o"
    );
}
