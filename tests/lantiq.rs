//! Lantiq-era images (spec §3.6, §6, §8.3 cases 27 and 35–38): voice firmware images
//! synthesized here (random payload from a tiny deterministic PRNG, valid and broken footers,
//! every platform nibble, both formats, both byte orders), their `inspect` snapshots, their
//! conversion through the driver's checks, and ELF images under the Lantiq-patched loader.

mod common;

use common::*;
use vpe::convert::{self, Format, Options};
use vpe::elf::Endian;
use vpe::inspect;
use vpe::lantiq::{self, Footer, LantiqLoader, Platform, VoiceOptions, VOICE_MAGIC};
use vpe::rproc::firmware::Profile;
use vpe::rproc::table::Resource;

/// xorshift64*: a deterministic payload without a dependency.
struct Prng(u64);

impl Prng {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 >> 12;
                self.0 ^= self.0 << 25;
                self.0 ^= self.0 >> 27;
                (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
            })
            .collect()
    }
}

const LOAD: u32 = 0x83e0_0000;

/// A new-format image: `len` payload bytes, footer with a correct CRC over the payload,
/// `fw_vers` with the platform nibble, `enc`, memory requirement `mem`.
fn voice(seed: u64, len: usize, nibble: u32, enc: u32, mem: u32, e: Endian) -> Vec<u8> {
    let payload = Prng(seed).bytes(len);
    let f = Footer {
        crc32: lantiq::voice_crc32(&payload, 0, len as u32).unwrap(),
        st_addr_crc: 0,
        en_addr_crc: len as u32,
        fw_vers: 0x0102_0000 | (nibble << 8) | 0x31,
        enc,
        magic: VOICE_MAGIC,
        mem: lantiq::mem_word(mem),
    };
    let mut b = payload;
    b.extend_from_slice(&f.encode(e));
    b
}

/// Rewrite footer word `k` (0 = crc32 ... 6 = mem) of an image.
fn set_word(b: &mut [u8], k: usize, v: u32, e: Endian) {
    let at = b.len() - 28 + 4 * k;
    b[at..at + 4].copy_from_slice(&e.u32_bytes(v));
}

fn opts(platform: Option<Platform>) -> Options {
    Options {
        voice: Some(VoiceOptions {
            crc: Default::default(),
            load_addr: LOAD,
            vpe1_mem: Some(0x20_0000),
            platform,
            endian: None,
            old_format: false,
        }),
        ..Options::default()
    }
}

fn inspect_text(bytes: &[u8], old: bool) -> String {
    let o = inspect::Options {
        lantiq_voice: old,
        ..Default::default()
    };
    inspect::render_text(&inspect::inspect(bytes, &o).unwrap())
}

#[test]
fn inspect_snapshots_of_synthesized_voice_images() {
    let be = Endian::Big;
    let mut cases: Vec<(String, Vec<u8>, bool)> = Vec::new();
    for (i, p) in Platform::ALL.into_iter().enumerate() {
        cases.push((
            format!("new_nibble{}_be", p.nibble()),
            voice(10 + i as u64, 0x200, p.nibble(), 0, 0x10_0000, be),
            false,
        ));
    }
    cases.push((
        "new_nibble7_le".into(),
        voice(20, 0x180, 7, 0, 0x8_0000, Endian::Little),
        false,
    ));
    cases.push((
        "new_unknown_nibble".into(),
        voice(21, 0x100, 0xb, 0, 0x10_0000, be),
        false,
    ));
    cases.push((
        "new_encrypted_mbox2".into(),
        voice(22, 0x400, 7, 3, 0x18_0000, be),
        false,
    ));
    let mut bad_crc = voice(23, 0x100, 4, 0, 0x10_0000, be);
    set_word(&mut bad_crc, 0, 0xdead_beef, be);
    cases.push(("new_crc_mismatch".into(), bad_crc, false));
    let mut bad_mem = voice(24, 0x100, 8, 0, 0x10_0000, be);
    set_word(&mut bad_mem, 6, 0x0010_0000, be);
    cases.push(("new_bad_mem_check_byte".into(), bad_mem, false));
    let mut bad_range = voice(25, 0x100, 7, 0, 0x10_0000, be);
    set_word(&mut bad_range, 2, 0x1_0000, be);
    cases.push(("new_crc_range_outside".into(), bad_range, false));
    let mut odd = voice(26, 0x100, 7, 0, 0x10_0000, be);
    odd.push(0x5a);
    cases.push(("new_odd_length".into(), odd, false));
    // Old format: payload then only the mem word (no magic).
    let mut old = Prng(30).bytes(0x240);
    old.extend_from_slice(&be.u32_bytes(lantiq::mem_word(0xc_0000)));
    cases.push(("old_format".into(), old.clone(), true));
    let n = old.len();
    old[n - 4] = 0x00; // check byte wrong: nothing is dropped, 1 MiB assumed
    cases.push(("old_format_bad_mem".into(), old, true));

    for (name, bytes, old) in &cases {
        let text = inspect_text(bytes, *old);
        insta::assert_snapshot!(format!("voice__{name}"), text);
    }
}

#[test]
fn case35_valid_image_converts_at_the_physical_base_with_a_kseg1_entry() {
    for e in [Endian::Big, Endian::Little] {
        let img = voice(1, 0x1000, 7, 0, 0x10_0000, e);
        assert_eq!(convert::sniff(&img), Format::Voice);
        let c = convert::convert(&img, &opts(Some(Platform::Xrx200))).unwrap();
        let v = c.voice.as_ref().unwrap();
        assert_eq!(v.copy_len as usize, img.len() - 24, "new format: len - 24");
        let seg = &c.loaded.image.segments[0];
        assert_eq!(seg.addr, 0x03e0_0000, "PT_LOAD at the physical base");
        assert_eq!(&seg.data[..img.len() - 24], &img[..img.len() - 24]);
        assert_eq!(c.loaded.image.entry, 0xa3e0_0000, "KSEG1(base)");
        assert!(c.loaded.trampoline.is_none(), "vpe1_sw_start(addr, 0, 0)");
        let cos: Vec<_> = c
            .loaded
            .table
            .entries
            .iter()
            .filter_map(|r| match r {
                Resource::Carveout(c) => Some(c.clone()),
                _ => None,
            })
            .collect();
        assert_eq!(cos.len(), 1);
        assert_eq!(cos[0].name, "vpe1");
        assert_eq!(
            (cos[0].da, cos[0].pa, cos[0].len),
            (0x03e0_0000, 0x03e0_0000, 0x10_0000)
        );
        let p = c.loaded.provenance.as_ref().unwrap();
        assert_eq!(p.input_kind, "voice");
        assert_eq!(p.profile, "fixed");
        for key in [
            "voice_crc32",
            "voice_st_addr_crc",
            "voice_en_addr_crc",
            "voice_fw_vers",
            "voice_enc",
            "voice_magic",
            "voice_mem_word",
        ] {
            assert!(p.extra.iter().any(|(k, _)| k == key), "{key} in the note");
        }
        assert!(c.report.equivalent && c.report.entry_ok);
        // Deterministic.
        let again = convert::convert(&img, &opts(Some(Platform::Xrx200))).unwrap();
        assert_eq!(again.firmware, c.firmware);
        // The checker accepts it with the fixed profile's rules.
        let chk = vpe::rproc::check::Options {
            profile: Some(Profile::Fixed),
            ..Default::default()
        };
        vpe::rproc::check::check(&c.firmware, &chk).unwrap();
    }
}

#[test]
fn case36_platform_mismatch_for_every_other_nibble() {
    for want in [Platform::Xrx100, Platform::Xrx200, Platform::Xrx300] {
        for have in Platform::ALL {
            let img = voice(2, 0x100, have.nibble(), 0, 0x10_0000, Endian::Big);
            let r = convert::convert(&img, &opts(Some(want)));
            if have == want {
                r.unwrap();
            } else {
                let e = r.unwrap_err().to_string();
                assert!(
                    e.starts_with("Firmware does not match to this platform."),
                    "{want:?}/{have:?}: {e}"
                );
            }
        }
    }
}

#[test]
fn case37_bad_check_byte_warns_and_assumes_1mib() {
    let mut img = voice(3, 0x100, 7, 0, 0x4_0000, Endian::Big);
    set_word(&mut img, 6, 0x0004_0000, Endian::Big);
    let c = convert::convert(&img, &opts(None)).unwrap();
    assert!(c.warnings()[0].starts_with("warning, image does not contain size - assuming 1MB!"));
    assert_eq!(c.voice.unwrap().mem, 0x10_0000);
    // The carveout covers the assumed 1 MiB.
    assert!(c.loaded.table.entries.iter().any(|r| matches!(r,
        Resource::Carveout(c) if c.len == 0x10_0000)));
}

#[test]
fn case38_unaligned_base_memory_limit_and_crc_range() {
    let img = voice(4, 0x100, 7, 0, 0x10_0000, Endian::Big);
    let mut o = opts(None);
    o.voice.as_mut().unwrap().load_addr = 0x83e4_0000;
    let e = convert::convert(&img, &o).unwrap_err().to_string();
    assert!(
        e.starts_with("IFX_MPS: CPU1 base address is not 1MB aligned!"),
        "{e}"
    );

    let big = voice(5, 0x100, 7, 0, 0x30_0000, Endian::Big);
    let e = convert::convert(&big, &opts(None)).unwrap_err().to_string();
    assert!(
        e.starts_with("error, firmware memory exceeds reserved space (3145728 > 2097152)!"),
        "{e}"
    );

    let mut bad = voice(6, 0x100, 7, 0, 0x10_0000, Endian::Big);
    set_word(&mut bad, 2, 0x200, Endian::Big);
    let e = convert::convert(&bad, &opts(None)).unwrap_err().to_string();
    assert!(e.contains("CRC range"), "{e}");

    // Without a load address a voice image is not guessed at.
    let e = convert::convert(&img, &Options::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("--load-addr"), "{e}");
}

#[test]
fn old_format_copies_len_minus_4_and_is_treated_as_encrypted() {
    let mut img = Prng(7).bytes(0x300);
    img.extend_from_slice(&Endian::Big.u32_bytes(lantiq::mem_word(0x10_0000)));
    assert_eq!(convert::sniff(&img), Format::Unknown, "no magic");
    let mut o = opts(None);
    o.voice.as_mut().unwrap().old_format = true;
    let c = convert::convert(&img, &o).unwrap();
    let v = c.voice.as_ref().unwrap();
    assert_eq!(v.copy_len as usize, img.len() - 4);
    assert!(v.encrypted);
    assert!(c.warnings().iter().any(|w| w.contains("ROM decrypt")));
}

/// ELF sections: (name offset, type, ...). Patch the `.symtab` section header type to
/// SHT_NULL so the executable looks stripped (spec §8.3 case 27).
fn stripped(mut b: Vec<u8>) -> Vec<u8> {
    let e = Endian::Big;
    let rd = |b: &[u8], at: usize| u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]]);
    let shoff = rd(&b, 32) as usize;
    let shnum = u16::from_be_bytes([b[48], b[49]]) as usize;
    for i in 0..shnum {
        let at = shoff + 40 * i + 4;
        if rd(&b, at) == 2 {
            b[at..at + 4].copy_from_slice(&e.u32_bytes(0));
        }
    }
    b
}

fn lantiq(entry_override: bool) -> Options {
    Options {
        profile: Profile::Fixed,
        lantiq: Some(LantiqLoader {
            vpe1_load_addr: LOAD,
            vpe1_mem: 0x20_0000,
            entry_override,
        }),
        ..Options::default()
    }
}

#[test]
fn case27_stripped_exec_mainline_refuses_lantiq_starts_at_kseg1() {
    let exe = stripped(fixture_bytes("hello.be.exe"));
    let e = convert::convert(&exe, &Options::default()).unwrap_err();
    assert_eq!(
        e.to_string(),
        "VPE loader: program does not contain a __start symbol"
    );
    // The fixture is linked at 0x10000000; with vpe1_load_addr 0x90000000 (the KSEG0 window
    // onto it) the Lantiq loader starts at KSEG1 0xb0000000, the same physical byte.
    let mut o = lantiq(true);
    o.lantiq.as_mut().unwrap().vpe1_load_addr = 0x9000_0000;
    let c = convert::convert(&exe, &o).unwrap();
    assert_eq!(c.legacy.entry, 0xb000_0000);
    assert!(c.report.entry_ok);
    // Where vpe1_load_addr is not where the image is, nothing would run: refused.
    let e = convert::convert(&exe, &lantiq(true))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("0xa3e00000") && e.contains("not inside any loaded segment"),
        "{e}"
    );
}

#[test]
fn lantiq_elf_mode_places_relocatables_at_vpe1_load_addr_and_reproduces_the_quirk() {
    // hello has both symbols: __start, placed at vpe1_load_addr.
    let c = convert::convert(&fixture_bytes("hello.be.o"), &lantiq(true)).unwrap();
    assert_eq!(c.legacy.base, LOAD);
    let cos: Vec<u32> = c
        .loaded
        .table
        .entries
        .iter()
        .filter_map(|r| match r {
            Resource::Carveout(c) => Some(c.pa),
            _ => None,
        })
        .collect();
    assert_eq!(cos, vec![0x03e0_0000], "pa = vpe1_load_addr & 0x1fffffff");
    // no_shared: __start present, vpe_shared missing → KSEG1(vpe1_load_addr), loudly.
    for name in ["no_shared.be.o", "no_shared.le.o"] {
        let c = convert::convert(&fixture_bytes(name), &lantiq(true)).unwrap();
        assert_eq!(c.legacy.entry, 0xa3e0_0000, "{name}");
        assert!(
            c.warnings()[0].contains("__start is IGNORED"),
            "{:?}",
            c.warnings()
        );
        // --entry __start.
        let c = convert::convert(&fixture_bytes(name), &lantiq(false)).unwrap();
        assert_eq!(
            c.legacy.entry,
            c.legacy.symbol("__start").unwrap(),
            "{name}"
        );
    }
    // The mips-rproc profile cannot keep KSEG0 addresses.
    let o = Options {
        profile: Profile::MipsRproc,
        ..lantiq(true)
    };
    assert!(convert::convert(&fixture_bytes("hello.be.o"), &o).is_err());
}

#[test]
fn converted_voice_firmware_inspect_snapshot() {
    let img = voice(40, 0x600, 7, 2, 0xc_0000, Endian::Big);
    let c = convert::convert(&img, &opts(Some(Platform::Xrx200))).unwrap();
    let text = inspect_text(&c.firmware, false);
    insta::assert_snapshot!("voice__converted_firmware", text);
}

/// Lantiq-mode ELF conversions (fixed profile, KSEG0 placement, the quirk) as `inspect` shows
/// the firmware: carveout physical addresses, the KSEG1 entry, the provenance note.
#[test]
fn lantiq_elf_mode_inspect_snapshots() {
    for (name, quirk) in [
        ("hello.be.o", true),
        ("no_shared.le.o", true),
        ("no_shared.be.o", false),
    ] {
        let c = convert::convert(&fixture_bytes(name), &lantiq(quirk)).unwrap();
        let text = inspect_text(&c.firmware, false);
        let tag = if quirk { "quirk" } else { "entry_start" };
        insta::assert_snapshot!(format!("lantiq_elf__{name}__{tag}"), text);
    }
}
