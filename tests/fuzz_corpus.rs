//! Replays the committed, minimized fuzz corpora (`fuzz/corpus/<target>/`) and every past
//! finding (`fuzz/regressions/`) through the same entry points as the `cargo fuzz` targets,
//! in every configuration the targets choose between, on the stable toolchain: CI keeps every
//! finding fixed without nightly. Asserts no panic, and that a rejection is reported as one
//! line (the semantics-difference report is the one documented multi-line error: one line per
//! site, after a one-line summary).

use std::path::{Path, PathBuf};

use vpe::convert::{self, Options};
use vpe::elf::Endian;
use vpe::image::RelocSemantics;
use vpe::lantiq::{self, Footer, Platform, VoiceOptions};
use vpe::rproc::check::{self, KernelEra};
use vpe::rproc::firmware::Profile;
use vpe::{inspect, legacy, Error};

const SEMANTICS: [RelocSemantics; 3] = [
    RelocSemantics::Strict,
    RelocSemantics::Legacy,
    RelocSemantics::Elf,
];

fn files(sub: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz").join(sub);
    let Ok(rd) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = rd
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    v.sort();
    v
}

fn one_line(what: &str, e: &Error) {
    let s = e.to_string();
    assert!(!s.is_empty(), "{what}: empty error");
    if !matches!(e, Error::SemanticsDiffer { .. }) {
        assert!(!s.contains('\n'), "{what}: error is not one line:\n{s}");
    }
}

fn legacy_load(what: &str, data: &[u8]) {
    for semantics in SEMANTICS {
        let opts = legacy::Options {
            semantics,
            ..legacy::Options::default()
        };
        let mut st = legacy::State::new();
        for _ in 0..2 {
            if let Err(e) = legacy::load_with_state(data, &opts, &mut st) {
                one_line(what, &e);
            }
        }
        let opts = legacy::Options {
            base: 0xffff_f000,
            semantics,
            capacity: Some(legacy::P_SIZE),
            ..legacy::Options::default()
        };
        if let Err(e) = legacy::load(data, &opts) {
            one_line(what, &e);
        }
    }
}

fn rproc_check(what: &str, data: &[u8]) {
    for kernel in KernelEra::ALL {
        for profile in [None, Some(Profile::MipsRproc), Some(Profile::Fixed)] {
            for host in [None, Some(Endian::Big), Some(Endian::Little)] {
                let opts = check::Options {
                    host,
                    profile,
                    kernel,
                    cma_align: None,
                };
                if let Err(e) = check::check(data, &opts) {
                    one_line(what, &e);
                }
            }
        }
    }
}

fn inspect_all(what: &str, data: &[u8]) {
    for semantics in SEMANTICS {
        let opts = inspect::Options {
            semantics,
            ..inspect::Options::default()
        };
        match inspect::inspect(data, &opts) {
            Ok(ins) => {
                assert!(!inspect::render_text(&ins).is_empty(), "{what}");
                assert!(!inspect::render_json(&ins).is_empty(), "{what}");
            }
            Err(e) => one_line(what, &e),
        }
    }
}

fn convert_all(what: &str, data: &[u8]) {
    let variants = [
        Options::default(),
        Options {
            semantics: RelocSemantics::Legacy,
            trace: Some(0x1000),
            extra_mem: 0x1000,
            ..Options::default()
        },
        Options {
            semantics: RelocSemantics::Elf,
            profile: Profile::Fixed,
            base: Some(0x8010_0000),
            trampoline: false,
            ..Options::default()
        },
    ];
    for opts in &variants {
        if let Err(e) = convert::convert(data, opts) {
            one_line(what, &e);
            assert!(
                !e.to_string().contains("internal error"),
                "{what}: convert produced an internal error: {e}"
            );
        }
    }
}

fn lantiq_all(what: &str, data: &[u8]) {
    let _ = Footer::read(data, Endian::Big);
    let _ = Footer::read(data, Endian::Little);
    let _ = lantiq::detect_endian(data);
    let _ = lantiq::is_voice(data);
    for endian in [None, Some(Endian::Big), Some(Endian::Little)] {
        for old_format in [false, true] {
            match lantiq::parse_voice(data, endian, old_format) {
                Ok(v) => {
                    let _ = lantiq::decrypt_len(&v);
                    let _ = lantiq::note_fields(&v, 0x83e0_0000);
                }
                Err(e) => one_line(what, &e),
            }
            for (load_addr, vpe1_mem, platform) in [
                (0x83e0_0000, None, None),
                (0xa3f0_0000, Some(0x10_0000), Some(Platform::Xrx200)),
                (0xfff0_0000, Some(u32::MAX), Some(Platform::Danube)),
            ] {
                let opts = VoiceOptions {
                    crc: Default::default(),
                    load_addr,
                    vpe1_mem,
                    platform,
                    endian,
                    old_format,
                };
                if let Err(e) = lantiq::load_voice(data, &opts) {
                    one_line(what, &e);
                }
            }
        }
    }
}

fn replay(target: &str, f: fn(&str, &[u8])) -> usize {
    let v = files(&format!("corpus/{target}"));
    for p in &v {
        let data = std::fs::read(p).unwrap();
        f(&p.display().to_string(), &data);
    }
    v.len()
}

#[test]
fn legacy_load_corpus() {
    assert!(replay("legacy_load", legacy_load) > 0, "empty corpus");
}

#[test]
fn rproc_check_corpus() {
    assert!(replay("rproc_check", rproc_check) > 0, "empty corpus");
}

#[test]
fn inspect_corpus() {
    assert!(replay("inspect", inspect_all) > 0, "empty corpus");
}

#[test]
fn convert_corpus() {
    assert!(replay("convert", convert_all) > 0, "empty corpus");
}

#[test]
fn lantiq_corpus() {
    assert!(replay("lantiq", lantiq_all) > 0, "empty corpus");
}

/// Every input that once crashed a target (or was slow) goes through every entry point.
#[test]
fn regressions() {
    for p in files("regressions") {
        let data = std::fs::read(&p).unwrap();
        let what = p.display().to_string();
        legacy_load(&what, &data);
        rproc_check(&what, &data);
        inspect_all(&what, &data);
        convert_all(&what, &data);
        lantiq_all(&what, &data);
    }
}
