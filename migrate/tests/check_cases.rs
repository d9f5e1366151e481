//! `vpe-migrate check` on broken firmware (remoteproc.md §6.4, the cases that apply to files):
//! each is made by damaging one field of a real converted fixture, and must give the kernel's
//! message on the first line and exit 1 — never a panic.

use std::process::Output;

use goblin::elf::Elf;

mod common;

use common::{bin, fixture, section};

/// A converted firmware of `hello.<tag>.o`.
fn firmware(tag: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("fw");
    let o = bin()
        .arg(fixture(&format!("hello.{tag}.o")))
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    std::fs::read(out).unwrap()
}

fn check(bytes: &[u8], extra: &[&str]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("fw");
    std::fs::write(&p, bytes).unwrap();
    bin().arg("check").args(extra).arg(&p).output().unwrap()
}

fn expect(bytes: &[u8], extra: &[&str], message: &str) {
    let o = check(bytes, extra);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{message}: {err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("error: {message}")),
        "expected `{message}`, got: {first}"
    );
}

struct Fw {
    bytes: Vec<u8>,
    big: bool,
}

impl Fw {
    fn new(tag: &str) -> Fw {
        Fw {
            bytes: firmware(tag),
            big: tag == "be",
        }
    }
    fn put32(b: &mut [u8], off: usize, v: u32, big: bool) {
        let x = if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        b[off..off + 4].copy_from_slice(&x);
    }
    fn put16(b: &mut [u8], off: usize, v: u16, big: bool) {
        let x = if big {
            v.to_be_bytes()
        } else {
            v.to_le_bytes()
        };
        b[off..off + 2].copy_from_slice(&x);
    }
    /// A copy with `f` applied.
    fn with(&self, f: impl FnOnce(&mut Vec<u8>, &Elf, bool)) -> Vec<u8> {
        let elf = Elf::parse(&self.bytes).unwrap();
        let mut b = self.bytes.clone();
        f(&mut b, &elf, self.big);
        b
    }
    /// File offset of the `.resource_table` contents and the section header's offset.
    fn table(elf: &Elf) -> (usize, usize) {
        section(elf, ".resource_table")
    }
}

#[test]
fn the_converted_firmware_passes() {
    for tag in ["be", "le"] {
        let o = check(&Fw::new(tag).bytes, &["--profile", "mips-rproc"]);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
}

#[test]
fn elf_header_cases() {
    for tag in ["be", "le"] {
        let fw = Fw::new(tag);
        // 1. 51 bytes
        expect(&fw.bytes[..51], &[], "Image is too small");
        // 2. bad magic
        expect(
            &fw.with(|b, _, _| b[1] = b'X'),
            &[],
            "Image is corrupted (bad magic)",
        );
        // 3. class 0 and 3
        expect(&fw.with(|b, _, _| b[4] = 0), &[], "Unsupported class: 0");
        expect(&fw.with(|b, _, _| b[4] = 3), &[], "Unsupported class: 3");
        // 4. ELF64 truncated to 60 bytes
        expect(
            &fw.with(|b, _, _| b[4] = 2)[..60],
            &[],
            "elf64 header is too small",
        );
        // 5. the other host byte order
        let other = if tag == "be" { "little" } else { "big" };
        expect(
            &fw.bytes,
            &["--host", other],
            "Unsupported firmware endianness",
        );
        // 6. e_shoff past EOF
        let len = fw.bytes.len() as u32;
        expect(
            &fw.with(|b, _, big| Fw::put32(b, 32, len, big)),
            &[],
            "Image is too small",
        );
        // 8. e_phoff > size
        expect(
            &fw.with(|b, _, big| Fw::put32(b, 28, len + 1, big)),
            &[],
            "Firmware size is too small",
        );
    }
    // 7. an unconverted ET_REL has no program headers
    expect(
        &std::fs::read(fixture("hello.be.o")).unwrap(),
        &[],
        "No loadable segments",
    );
}

#[test]
fn segment_cases() {
    for tag in ["be", "le"] {
        let fw = Fw::new(tag);
        let ph = |elf: &Elf| elf.header.e_phoff as usize;
        // 9. filesz > memsz
        let b = fw.with(|b, elf, big| {
            let memsz = elf.program_headers[0].p_memsz as u32;
            Fw::put32(b, ph(elf) + 16, memsz + 4, big);
        });
        expect(&b, &[], "bad phdr filesz 0x");
        // 10. p_offset + p_filesz past EOF
        let b = fw.with(|b, elf, big| {
            let len = b.len() as u32;
            Fw::put32(b, ph(elf) + 4, len - 8, big);
        });
        expect(&b, &[], "truncated fw: need 0x");
        // 11. outside every carveout
        let b = fw.with(|b, elf, big| {
            Fw::put32(b, ph(elf) + 12, 0x2000_0000, big);
            Fw::put32(b, ph(elf) + 8, 0x2000_0000, big);
        });
        expect(&b, &[], "bad phdr da 0x20000000 mem 0x");
    }
}

#[test]
fn table_cases() {
    for tag in ["be", "le"] {
        let fw = Fw::new(tag);
        // 13. no .resource_table (renamed)
        let b = fw.with(|b, elf, _| {
            let (_, sh) = Fw::table(elf);
            let name = elf.section_headers[(sh - elf.header.e_shoff as usize) / 40].sh_name;
            let at = elf.section_headers[elf.header.e_shstrndx as usize].sh_offset as usize + name;
            b[at + 1] = b'R';
        });
        expect(&b, &[], "no .resource_table section");
        expect(&b, &["--kernel", "old4x"], "Failed to find resource table");
        // 14. section headers stripped
        let b = fw.with(|b, _, big| Fw::put16(b, 48, 0, big));
        expect(&b, &[], "no .resource_table section");
        // 15. sh_size 12
        let b = fw.with(|b, elf, big| Fw::put32(b, Fw::table(elf).1 + 20, 12, big));
        expect(&b, &[], "header-less resource table");
        // 16. ver 2
        let b = fw.with(|b, elf, big| Fw::put32(b, Fw::table(elf).0, 2, big));
        expect(&b, &[], "unsupported fw ver: 2");
        // 17. reserved[1] = 1
        let b = fw.with(|b, elf, big| Fw::put32(b, Fw::table(elf).0 + 12, 1, big));
        expect(&b, &[], "non zero reserved bytes");
        // 18. num = 100
        let b = fw.with(|b, elf, big| Fw::put32(b, Fw::table(elf).0 + 4, 100, big));
        expect(&b, &[], "resource table incomplete");
        // 19. sh_offset + sh_size past EOF, and wrapping
        let b = fw.with(|b, elf, big| {
            let len = b.len() as u32;
            Fw::put32(b, Fw::table(elf).1 + 20, len, big)
        });
        expect(&b, &[], "resource table truncated");
        let b = fw.with(|b, elf, big| Fw::put32(b, Fw::table(elf).1 + 20, 0xffff_fff0, big));
        expect(&b, &[], "resource table truncated");
        // 20. an entry offset beyond the table
        let b = fw.with(|b, elf, big| Fw::put32(b, Fw::table(elf).0 + 16, 0x1000, big));
        expect(&b, &[], "rsc table is truncated");
        // 21. carveout reserved != 0 (entry: type, da, pa, len, flags, reserved)
        let b = fw.with(|b, elf, big| {
            let t = Fw::table(elf).0;
            let off = if big {
                u32::from_be_bytes(b[t + 16..t + 20].try_into().unwrap())
            } else {
                u32::from_le_bytes(b[t + 16..t + 20].try_into().unwrap())
            } as usize;
            Fw::put32(b, t + off + 20, 1, big)
        });
        expect(&b, &[], "carveout rsc has non zero reserved bytes");
    }
}

#[test]
fn profile_geometry_cases() {
    let fw = Fw::new("be");
    let carveout = |b: &mut Vec<u8>, elf: &Elf, field: usize, v: u32| {
        let t = Fw::table(elf).0;
        let off = u32::from_be_bytes(b[t + 16..t + 20].try_into().unwrap()) as usize;
        Fw::put32(b, t + off + field, v, true)
    };
    // 30. len not a multiple of 8 KiB (still covering the segment)
    let b = fw.with(|b, elf, _| carveout(b, elf, 12, 0x3000));
    let o = check(&b, &["--profile", "mips-rproc"]);
    assert_eq!(o.status.code(), Some(1));
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("len 0x3000") && e.contains("multiple of 0x2000"),
        "{e}"
    );
    // the kernel itself accepts it: without a profile the check passes
    assert!(check(&b, &[]).status.success());
    // 31. da not 8 KiB aligned; 33. da in KSEG0
    for (da, what) in [(0x1000_1000u32, "0x10001000"), (0x8000_0000, "0x80000000")] {
        let b = fw.with(|b, elf, _| carveout(b, elf, 4, da));
        let o = check(&b, &["--profile", "mips-rproc"]);
        assert_eq!(o.status.code(), Some(1));
        let e = String::from_utf8_lossy(&o.stderr);
        assert!(e.starts_with("error: ") && e.contains(what), "{e}");
    }
}

/// Issue 14 items 7-12: `--kernel` names every era with the same version ranges as the
/// library, and the era-dependent messages reach the CLI.
#[test]
fn kernel_eras_on_the_command_line() {
    let o = bin().args(["check", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    for (name, range) in [
        ("newest", "v6.2+"),
        ("v6.1", "v6.1"),
        ("v5.19", "v5.19 - v6.0"),
        ("v5.7", "v5.7 - v5.18"),
        ("pre57", "v4.20 - v5.6"),
        ("old4x", "v4.10 - v4.19"),
    ] {
        let line = help
            .lines()
            .find(|l| {
                l.trim_start()
                    .trim_start_matches("- ")
                    .starts_with(&format!("{name}:"))
            })
            .unwrap_or_else(|| panic!("no {name} in {help}"));
        assert!(line.contains(range), "{name}: {line}");
    }
    for tag in ["be", "le"] {
        let fw = Fw::new(tag);
        for era in ["newest", "v6.1", "v5.19", "v5.7", "pre57", "old4x"] {
            let o = check(&fw.bytes, &["--kernel", era, "--profile", "mips-rproc"]);
            assert!(
                o.status.success(),
                "{era}: {}",
                String::from_utf8_lossy(&o.stderr)
            );
        }
        // EI_CLASS 0x80: a signed char until v6.2.
        let b = fw.with(|b, _, _| b[4] = 0x80);
        expect(&b, &[], "Unsupported class: 128");
        for era in ["v6.1", "v5.19", "v5.7", "pre57", "old4x"] {
            expect(&b, &["--kernel", era], "Unsupported class: -128");
        }
    }
}
