//! End to end: every fixture, both byte orders, ET_REL and ET_EXEC, is converted at the
//! default base and the firmware is run under qemu-user. Its output and exit status must equal
//! those of the same object linked by GNU ld at the same base (same section layout).

mod common;

use std::path::Path;

use common::*;
use vpe::convert::{self, Options};
use vpe::elf::Endian;
use vpe::image::RelocSemantics;

/// Convert `input` with `opts`, write the firmware to `dir`, run it.
fn convert_and_run(
    input: &[u8],
    opts: &Options,
    dir: &Path,
    name: &str,
    endian: Endian,
) -> (Vec<u8>, i32) {
    let conv = convert::convert(input, opts).unwrap_or_else(|e| panic!("{name}: {e}"));
    let fw = dir.join(format!("{name}.fw"));
    std::fs::write(&fw, &conv.firmware).unwrap();
    run_qemu(&fw, endian)
}

/// The reference: GNU ld places the object's sections where the legacy layout put them at the
/// default base.
fn reference_run(
    obj: &str,
    semantics: RelocSemantics,
    dir: &Path,
    endian: Endian,
) -> (Vec<u8>, i32) {
    reference_run_at(obj, convert::DEFAULT_BASE, semantics, dir, endian)
}

fn reference_run_at(
    obj: &str,
    base: u32,
    semantics: RelocSemantics,
    dir: &Path,
    endian: Endian,
) -> (Vec<u8>, i32) {
    let bytes = fixture_bytes(obj);
    let img = convert::load_legacy(&bytes, base, semantics).unwrap();
    let sections: Vec<(String, u32)> = img
        .sections
        .iter()
        .map(|s| (s.name.clone(), s.addr))
        .collect();
    let script = legacy_order_script(&sections);
    let out = dir.join(format!("{obj}.ld"));
    ld_reference(&fixture(obj), endian, &script, &out);
    run_qemu(&out, endian)
}

fn endians() -> [(Endian, &'static str); 2] {
    [(Endian::Big, "be"), (Endian::Little, "le")]
}

fn check_rel(program: &str, semantics: RelocSemantics) {
    for (endian, tag) in endians() {
        let dir = tempdir();
        let obj = format!("{program}.{tag}.o");
        let reference = reference_run(&obj, semantics, dir.path(), endian);
        assert!(
            !reference.0.is_empty(),
            "{obj}: the reference printed nothing"
        );
        // ntcs 0 / memsize 0: qemu-user starts the reference with $a2 = $a3 = 0.
        let opts = Options {
            semantics,
            ntcs: 0,
            memsize: 0,
            ..Options::default()
        };
        let got = convert_and_run(&fixture_bytes(&obj), &opts, dir.path(), &obj, endian);
        assert_eq!(
            String::from_utf8_lossy(&got.0),
            String::from_utf8_lossy(&reference.0),
            "{obj}: output differs from GNU ld's"
        );
        assert_eq!(
            got.1, reference.1,
            "{obj}: exit status differs from GNU ld's"
        );
    }
}

#[test]
fn hello_runs_like_gnu_ld() {
    check_rel("hello", RelocSemantics::Strict);
}

#[test]
fn features_runs_like_gnu_ld() {
    check_rel("features", RelocSemantics::Strict);
}

#[test]
fn pc16_runs_like_gnu_ld() {
    check_rel("pc16", RelocSemantics::Strict);
}

#[test]
fn smalldata_runs_like_gnu_ld_with_elf_semantics() {
    check_rel("smalldata", RelocSemantics::Elf);
}

#[test]
fn common_runs_like_gnu_ld_with_elf_semantics() {
    check_rel("common", RelocSemantics::Elf);
}

#[test]
fn executables_run_like_the_original() {
    for program in ["hello", "features"] {
        for (endian, tag) in endians() {
            let dir = tempdir();
            let exe = format!("{program}.{tag}.exe");
            let reference = run_qemu(&fixture(&exe), endian);
            let opts = Options {
                ntcs: 0,
                ..Options::default()
            };
            let got = convert_and_run(&fixture_bytes(&exe), &opts, dir.path(), &exe, endian);
            assert_eq!(
                String::from_utf8_lossy(&got.0),
                String::from_utf8_lossy(&reference.0),
                "{exe}: output differs from the original executable"
            );
            assert_eq!(got.1, reference.1, "{exe}: exit status differs");
        }
    }
}

#[test]
fn regs_runs_like_gnu_ld() {
    check_rel("regs", RelocSemantics::Strict);
}

/// `vpe_run` passed `$a2 = ntcs` and `$a3 = memsize`; remoteproc passes its own values, so the
/// trampoline must set them. The `regs` fixture prints what `__start` received.
#[test]
fn trampoline_sets_a2_and_a3_like_vpe_run() {
    for (endian, tag) in endians() {
        let dir = tempdir();
        let obj = format!("regs.{tag}.o");
        let reference = reference_run(&obj, RelocSemantics::Strict, dir.path(), endian);
        let ref_text = String::from_utf8_lossy(&reference.0).into_owned();
        let ref_lines: Vec<&str> = ref_text.lines().collect();
        assert_eq!(ref_lines.len(), 4, "{obj}: {ref_text}");
        let opts = Options {
            ntcs: 3,
            memsize: 0x0100_0000,
            ..Options::default()
        };
        let (out, code) = convert_and_run(&fixture_bytes(&obj), &opts, dir.path(), &obj, endian);
        // $a0/$a1 pass through untouched (as qemu-user set them for the reference); $a2/$a3
        // are what vpe_run would have set.
        let expected = format!(
            "{}\n{}\na2 0x00000003\na3 0x01000000\n",
            ref_lines[0], ref_lines[1]
        );
        assert_eq!(String::from_utf8_lossy(&out), expected, "{obj}");
        assert_eq!(code, 43, "{obj}");
        // Without the trampoline (`--no-trampoline`) __start is entered directly and sees
        // what the loader (here qemu-user) left there, exactly as the GNU ld reference does.
        let opts = Options {
            trampoline: false,
            ..Options::default()
        };
        let got = convert_and_run(&fixture_bytes(&obj), &opts, dir.path(), &obj, endian);
        assert_eq!(got, reference, "{obj}");
    }
}

/// `--trace` and `--extra-mem` add memory after the image; the program runs the same and the
/// kernel's rules still accept the firmware (checked inside `convert`).
#[test]
fn trace_and_extra_memory_do_not_change_behaviour() {
    for (endian, tag) in endians() {
        let dir = tempdir();
        let obj = format!("features.{tag}.o");
        let reference = reference_run(&obj, RelocSemantics::Strict, dir.path(), endian);
        let opts = Options {
            ntcs: 0,
            trace: Some(0x1000),
            extra_mem: 0x4_0000,
            ..Options::default()
        };
        let conv = convert::convert(&fixture_bytes(&obj), &opts).unwrap();
        let trace = conv
            .loaded
            .table
            .entries
            .iter()
            .any(|r| matches!(r, vpe::rproc::table::Resource::Trace { len: 0x1000, .. }));
        assert!(trace, "{obj}: no 4 KiB trace entry");
        let (lo, hi) = conv.loaded.image.span().unwrap();
        assert!(
            hi - u64::from(lo) >= 0x4_0000,
            "{obj}: extra memory missing"
        );
        let got = convert_and_run(&fixture_bytes(&obj), &opts, dir.path(), &obj, endian);
        assert_eq!(got, reference, "{obj}");
    }
}

/// Profile `fixed` keeps the addresses as placed: a relocatable placed with `--base` runs like
/// GNU ld's link at that base.
#[test]
fn fixed_profile_at_another_base_runs_like_gnu_ld() {
    const BASE: u32 = 0x1020_0000;
    for (endian, tag) in endians() {
        let dir = tempdir();
        let obj = format!("hello.{tag}.o");
        let reference = reference_run_at(&obj, BASE, RelocSemantics::Strict, dir.path(), endian);
        let opts = Options {
            profile: vpe::rproc::firmware::Profile::Fixed,
            base: Some(BASE),
            ntcs: 0,
            ..Options::default()
        };
        let got = convert_and_run(&fixture_bytes(&obj), &opts, dir.path(), &obj, endian);
        assert_eq!(got, reference, "{obj}");
    }
}

/// An 8 MiB `.bss` is zero-filled by the loader, never stored: the firmware stays small, the
/// program finds its `.bss` zero, writes to it, and runs as GNU ld's link does.
#[test]
fn big_bss_runs_and_is_not_stored() {
    check_rel("bigbss", RelocSemantics::Strict);
    for (_, tag) in endians() {
        let obj = format!("bigbss.{tag}.o");
        let conv = convert::convert(&fixture_bytes(&obj), &Options::default()).unwrap();
        assert!(
            conv.firmware.len() < 0x8000,
            "{obj}: {:#x}-byte firmware",
            conv.firmware.len()
        );
        let loaded: u64 = conv
            .loaded
            .image
            .segments
            .iter()
            .map(|s| u64::from(s.mem_size))
            .sum();
        assert!(loaded > 8 << 20, "{obj}: loads {loaded:#x}");
    }
}

/// Issue 14.5: GNU ld's own layout at `-Ttext=0x10000000` keeps `.MIPS.abiflags`/`.reginfo`
/// in a PT_LOAD of their own at 0x00400000. The converter drops it (with a warning, no
/// carveout down there), warns that the KUSEG executable never ran under a legacy loader,
/// `verify` says the equivalence is to the image, and the firmware runs as ld's output does.
#[test]
fn gnu_ld_mips_info_segment_is_dropped_and_kuseg_exec_warned() {
    for (endian, tag) in endians() {
        let dir = tempdir();
        let exe = dir.path().join(format!("hello.{tag}.ld.exe"));
        let flag = if endian == Endian::Big { "-EB" } else { "-EL" };
        let st = std::process::Command::new("mips-linux-gnu-ld")
            .args([
                flag,
                "-e",
                "__start",
                "-Ttext=0x10000000",
                "-z",
                "max-page-size=0x1000",
            ])
            .arg("-o")
            .arg(&exe)
            .arg(fixture(&format!("hello.{tag}.o")))
            .status()
            .unwrap();
        assert!(st.success());
        let bytes = std::fs::read(&exe).unwrap();
        let reference = run_qemu(&exe, endian);
        for profile in [
            vpe::rproc::firmware::Profile::MipsRproc,
            vpe::rproc::firmware::Profile::Fixed,
        ] {
            let opts = Options {
                ntcs: 0,
                profile,
                ..Options::default()
            };
            let conv = convert::convert(&bytes, &opts).unwrap();
            let w = conv.warnings().join("\n");
            assert!(
                w.contains("at 0x00400000 holds only .MIPS.abiflags/.reginfo"),
                "{w}"
            );
            assert!(w.contains("at 0x10000000 is in KUSEG"), "{w}");
            assert!(conv.report.to_image_only);
            assert!(convert::report_summary(&conv.report).starts_with("equivalent to the image"));
            for r in &conv.loaded.table.entries {
                if let vpe::rproc::table::Resource::Carveout(c) = r {
                    assert!(c.da >= 0x1000_0000, "{profile:?}: carveout {c:?}");
                }
            }
            if profile == vpe::rproc::firmware::Profile::MipsRproc {
                let fw = dir.path().join(format!("hello.{tag}.fw"));
                std::fs::write(&fw, &conv.firmware).unwrap();
                let got = run_qemu(&fw, endian);
                assert_eq!(
                    String::from_utf8_lossy(&got.0),
                    String::from_utf8_lossy(&reference.0)
                );
                assert_eq!(got.1, reference.1);
            }
        }
    }
}
