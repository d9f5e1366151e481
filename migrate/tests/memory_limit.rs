//! Issue 13, memory bombs: a small object declaring a huge `.bss`. The binary runs as a
//! process under GNU time (`/usr/bin/time -v`) so its peak RSS is measured.

use std::path::Path;
use std::process::{Command, Output};

use vpe::elf::Endian;
use vpe::synth;

/// A ~64 KB relocatable whose `.bss` is `extra` bytes bigger than synth's own.
fn bss_object(extra: u32) -> Vec<u8> {
    let opts = synth::Options {
        size: 64 * 1024,
        endian: Endian::Big,
        seed: 5,
    };
    synth::generate_with_extra_bss(&opts, extra)
}

/// Run vpe-migrate with `args`; its output and peak RSS in KiB.
fn run_measured(args: &[&std::ffi::OsStr]) -> (Output, u64) {
    let time = Path::new("/usr/bin/time");
    assert!(
        time.exists(),
        "GNU time is needed to measure peak RSS (Debian package `time`, installed by scripts/test)"
    );
    let o = Command::new(time)
        .arg("-v")
        .arg(env!("CARGO_BIN_EXE_vpe-migrate"))
        .args(args)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    let kib = err
        .lines()
        .find_map(|l| {
            l.trim()
                .strip_prefix("Maximum resident set size (kbytes): ")
        })
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no RSS line from GNU time: {err}"));
    (o, kib)
}

fn convert(input: &[u8], extra_args: &[&str]) -> (Output, u64, Option<u64>) {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("bomb.o");
    std::fs::write(&inp, input).unwrap();
    let out = dir.path().join("bomb.fw");
    let mut args: Vec<&std::ffi::OsStr> = extra_args.iter().map(|s| s.as_ref()).collect();
    args.push(inp.as_os_str());
    args.push(out.as_os_str());
    let (o, kib) = run_measured(&args);
    let size = std::fs::metadata(&out).ok().map(|m| m.len());
    (o, kib, size)
}

/// Peak RSS far below what materialising the `.bss` once would take.
const RSS_BOUND_KIB: u64 = 20 * 1024;

#[test]
fn a_255_mib_bss_is_refused_by_the_default_limit_before_allocating() {
    let input = bss_object(255 << 20);
    assert!(input.len() < 70_000);
    let (o, kib, size) = convert(&input, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    let first = err.lines().next().unwrap_or_default();
    assert!(
        first.starts_with("error: section [")
            && first.contains(" .bss (0x")
            && first.contains("over the limit of 0x1000000 bytes")
            && first.contains("--max-mem"),
        "{first}"
    );
    assert_eq!(size, None, "no output");
    assert!(kib < RSS_BOUND_KIB, "peak RSS {kib} KiB");
}

#[test]
fn a_15_mib_bss_converts_into_a_small_firmware_with_small_peak_rss() {
    let input = bss_object(15 << 20);
    let (o, kib, size) = convert(&input, &[]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let size = size.unwrap();
    // The input's bytes, headers and a table of 16 carveouts: not 15 MiB of zeros.
    assert!(size < 256 * 1024, "{size}-byte firmware");
    assert!(kib < RSS_BOUND_KIB, "peak RSS {kib} KiB");
    eprintln!("15 MiB .bss: firmware {size} bytes, peak RSS {kib} KiB");
}

#[test]
fn max_mem_raises_the_limit_and_the_result_stays_small() {
    let input = bss_object(255 << 20);
    let (o, kib, size) = convert(&input, &["--max-mem", "512M"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{err}");
    let size = size.unwrap();
    assert!(size < 256 * 1024, "{size}-byte firmware");
    assert!(kib < RSS_BOUND_KIB, "peak RSS {kib} KiB");
    eprintln!("255 MiB .bss with --max-mem 512M: firmware {size} bytes, peak RSS {kib} KiB");
    // And a lower limit refuses a small one.
    let (o, _, size) = convert(&bss_object(0), &["--max-mem", "16K"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("over the limit of 0x4000 bytes"));
    assert_eq!(size, None);
}
