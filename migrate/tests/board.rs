//! The board binaries (`scripts/cross-build`) under qemu-user against this host build: every
//! fixture, with every option the fixtures' tests use, converts into the same bytes, with the
//! same exit status, stdout and stderr; `inspect --json`, `check` and `verify` agree too.
//! mips and mipsel are 32-bit, so this also runs the library with a 32-bit `usize`.
//!
//! `VPE_CROSS_BINS` lists the built binaries (what `scripts/cross-build` printed; `scripts/test`
//! sets it). Without it the test fails under CI and says it did nothing elsewhere.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use vpe::elf::Endian;
use vpe::lantiq::{self, Footer, VOICE_MAGIC};

mod common;

use common::{bin, fixture};

/// The four board targets and how qemu-user runs each (glibc ones with Debian's sysroot).
const TARGETS: [(&str, &str, Option<&str>); 4] = [
    (
        "mips-unknown-linux-gnu",
        "qemu-mips",
        Some("/usr/mips-linux-gnu"),
    ),
    (
        "mipsel-unknown-linux-gnu",
        "qemu-mipsel",
        Some("/usr/mipsel-linux-gnu"),
    ),
    ("mips-unknown-linux-musl", "qemu-mips", None),
    ("mipsel-unknown-linux-musl", "qemu-mipsel", None),
];

/// The binaries `scripts/cross-build` printed, as (target, path), for `name`.
pub fn cross_bins(name: &str) -> Option<Vec<(&'static str, PathBuf)>> {
    let Some(list) = std::env::var_os("VPE_CROSS_BINS") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI is set but VPE_CROSS_BINS is not: scripts/test must build the board binaries"
        );
        eprintln!("skipped: VPE_CROSS_BINS unset (scripts/test sets it)");
        return None;
    };
    let paths: Vec<PathBuf> = list
        .to_string_lossy()
        .split([':', '\n'])
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .collect();
    let mut v = Vec::new();
    for (target, _, _) in TARGETS {
        // target/<triple>/<profile>/<name>
        let p = paths
            .iter()
            .find(|p| {
                p.file_name().is_some_and(|f| f == name)
                    && p.parent()
                        .and_then(Path::parent)
                        .and_then(Path::file_name)
                        .is_some_and(|t| t == target)
            })
            .unwrap_or_else(|| panic!("VPE_CROSS_BINS has no {name} for {target}: {list:?}"));
        assert!(p.is_file(), "{} is missing", p.display());
        v.push((target, p.clone()));
    }
    Some(v)
}

fn qemu(target: &str, bin: &Path) -> Command {
    let (_, qemu, sysroot) = TARGETS.iter().find(|t| t.0 == target).unwrap();
    let mut c = Command::new(qemu);
    if let Some(s) = sysroot {
        c.arg("-L").arg(s);
    }
    c.arg(bin);
    c
}

/// A new-format xRX200 voice image with a deterministic payload and a correct CRC (as in
/// batch.rs).
fn voice_image() -> Vec<u8> {
    let mut x = 0x9e37_79b9_7f4a_7c15u64;
    let mut b: Vec<u8> = (0..0x800)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let f = Footer {
        crc32: lantiq::crc32(&b),
        st_addr_crc: 0,
        en_addr_crc: 0x800,
        fw_vers: 0x0000_0712,
        enc: 0,
        magic: VOICE_MAGIC,
        mem: lantiq::mem_word(0x10_0000),
    };
    b.extend_from_slice(&f.encode(Endian::Big));
    b
}

/// One run: arguments (relative to the run's directory, which holds the inputs) and the
/// files it may write, compared byte for byte.
struct Case {
    args: Vec<String>,
    outputs: Vec<&'static str>,
}

fn case(args: &[&str], outputs: &[&'static str]) -> Case {
    Case {
        args: args.iter().map(|s| s.to_string()).collect(),
        outputs: outputs.to_vec(),
    }
}

/// The conversion options the CLI and batch tests use, each set on its own.
const CONVERSIONS: &[&[&str]] = &[
    &[],
    &["--relocs", "legacy"],
    &["--relocs", "elf"],
    &[
        "--profile",
        "fixed",
        "--base",
        "0x80200000",
        "--relocs",
        "legacy",
    ],
    &[
        "--ntcs",
        "2",
        "--memsize",
        "0x1000000",
        "--extra-mem",
        "64K",
        "--trace",
        "4K",
        "--relocs",
        "legacy",
    ],
    &["--no-trampoline", "--json", "--relocs", "legacy"],
    &["--host", "little"],
    &["--host", "big", "--base", "0x10200000"],
    &[
        "--kernel",
        "lantiq",
        "--vpe1-load-addr",
        "0x83e00000",
        "--vpe1-mem",
        "1M",
    ],
];

/// Fixtures that get every conversion option (both byte orders, ET_REL and ET_EXEC, GPREL16).
const WITH_EVERY_OPTION: [&str; 4] = [
    "hello.be.o",
    "features.le.o",
    "smalldata.be.o",
    "hello.le.exe",
];

/// Every fixture: converted, then its firmware inspected, checked and verified in the same
/// case; a few fixtures with every option on its own (the product of the two is ~5x the
/// qemu time for no new code path).
fn cases(inputs: &[String]) -> Vec<Case> {
    let mut v = Vec::new();
    for f in inputs {
        let f = f.as_str();
        let mut args: Vec<&str> = vec!["convert", f, "out.fw"];
        for tail in [
            &["inspect", "--json", f][..],
            &["inspect", "--json", "out.fw"],
            &["check", "out.fw"],
            &[
                "check",
                "out.fw",
                "--host",
                "big",
                "--profile",
                "mips-rproc",
                "--json",
            ],
            &["check", "out.fw", "--kernel", "old4x"],
            &["verify", f, "out.fw"],
        ] {
            args.push("--then");
            args.extend_from_slice(tail);
        }
        v.push(case(&args, &["out.fw"]));
    }
    for f in WITH_EVERY_OPTION {
        assert!(inputs.iter().any(|i| i == f), "{f}");
        v.push(case(&["inspect", "--relocs", "legacy", f], &[]));
        for opts in &CONVERSIONS[1..] {
            let mut a: Vec<&str> = vec!["convert"];
            a.extend_from_slice(opts);
            a.extend([f, "out.fw"]);
            v.push(case(&a, &["out.fw"]));
        }
    }
    v.push(case(
        &[
            "convert",
            "voice.bin",
            "out.fw",
            "--load-addr",
            "0x83e00000",
            "--platform",
            "xrx200",
        ],
        &["out.fw"],
    ));
    v.push(case(
        &[
            "batch",
            "in",
            "outdir",
            "--jobs",
            "2",
            "--report",
            "report.json",
            "--load-addr",
            "0x83e00000",
            "--platform",
            "xrx200",
        ],
        &["report.json"],
    ));
    v
}

/// What a case gave: for each command, status, stdout and stderr; then the output files.
type Outcome = (Vec<(Option<i32>, Vec<u8>, Vec<u8>)>, Vec<Option<Vec<u8>>>);

fn stage(dir: &Path, inputs: &[String]) {
    for f in inputs {
        std::fs::copy(fixture(f), dir.join(f)).unwrap();
    }
    std::fs::write(dir.join("voice.bin"), voice_image()).unwrap();
    std::fs::create_dir(dir.join("in")).unwrap();
    for f in [
        "hello.be.o",
        "features.le.o",
        "no_start.be.o",
        "hello.le.exe",
    ] {
        std::fs::copy(fixture(f), dir.join("in").join(f)).unwrap();
    }
    std::fs::write(dir.join("in/voice.bin"), voice_image()).unwrap();
}

fn run_case(c: &Case, inputs: &[String], cmd: &dyn Fn() -> Command) -> Outcome {
    let dir = tempfile::tempdir().unwrap();
    stage(dir.path(), inputs);
    // `--then` splits a case into commands run one after the other in the same directory.
    let mut cmds: Vec<Vec<String>> = vec![vec![]];
    for a in &c.args {
        if a == "--then" {
            if !cmds.last().unwrap().is_empty() {
                cmds.push(vec![]);
            }
        } else {
            cmds.last_mut().unwrap().push(a.clone());
        }
    }
    let runs = cmds
        .iter()
        .map(|args| {
            let o: Output = cmd()
                .args(args)
                .current_dir(dir.path())
                .env_remove("RUST_LOG")
                .output()
                .expect("run vpe-migrate");
            (o.status.code(), o.stdout, o.stderr)
        })
        .collect();
    let mut files: Vec<Option<Vec<u8>>> = c
        .outputs
        .iter()
        .map(|f| std::fs::read(dir.path().join(f)).ok())
        .collect();
    let mut out: Vec<_> = std::fs::read_dir(dir.path().join("outdir"))
        .map(|r| r.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    out.sort();
    files.extend(out.iter().map(|p| std::fs::read(p).ok()));
    (runs, files)
}

#[test]
fn board_builds_convert_like_the_host_build() {
    let Some(bins) = cross_bins("vpe-migrate") else {
        return;
    };
    let mut inputs: Vec<String> = std::fs::read_dir(fixture(""))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    inputs.sort();
    assert!(inputs.len() >= 20, "{inputs:?}");
    let cases = cases(&inputs);
    let host: Vec<Outcome> = cases.iter().map(|c| run_case(c, &inputs, &bin)).collect();
    // The comparison must have something to compare: most commands succeed.
    let ok = host
        .iter()
        .flat_map(|(r, _)| r)
        .filter(|x| x.0 == Some(0))
        .count();
    let all: usize = host.iter().map(|(r, _)| r.len()).sum();
    eprintln!(
        "{} cases, {all} commands, {ok} succeed on the host",
        cases.len()
    );
    assert!(ok >= 100, "{ok} of {all}");
    std::thread::scope(|s| {
        for (target, path) in &bins {
            let (cases, host, inputs) = (&cases, &host, &inputs);
            s.spawn(move || {
                let cmd = || qemu(target, path);
                for (c, want) in cases.iter().zip(host) {
                    let got = run_case(c, inputs, &cmd);
                    for (i, (g, w)) in got.0.iter().zip(&want.0).enumerate() {
                        assert_eq!(
                            g,
                            w,
                            "{target}: command {i} of `vpe-migrate {}` differs from the host's \
                             (status, stdout, stderr): host stderr {:?}, target stderr {:?}",
                            c.args.join(" "),
                            String::from_utf8_lossy(&w.2),
                            String::from_utf8_lossy(&g.2)
                        );
                    }
                    assert!(
                        got.1 == want.1,
                        "{target}: the files written by `vpe-migrate {}` differ from the host's",
                        c.args.join(" ")
                    );
                }
            });
        }
    });
}

/// A sparse input of 4 GiB + 5 bytes: refused by its size with one clear error, before any
/// of it is read (on a 32-bit board the old `std::fs::read` grew its buffer until the
/// allocator aborted; on the host it read all 4 GiB first). Host build, then each board build.
#[test]
fn inputs_over_4_gib_are_refused_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let big = dir.path().join("big.o");
    std::fs::File::create(&big)
        .unwrap()
        .set_len((4u64 << 30) + 5)
        .unwrap();
    let mut runs: Vec<(String, Command)> = vec![("host".into(), bin())];
    for (target, path) in cross_bins("vpe-migrate").unwrap_or_default() {
        runs.push((target.to_string(), qemu(target, &path)));
    }
    for (who, cmd) in runs {
        for sub in [&["convert"][..], &["inspect"], &["check"]] {
            let out = dir.path().join("out.fw");
            let t = std::time::Instant::now();
            let o = Command::new(cmd.get_program())
                .args(cmd.get_args())
                .args(sub)
                .arg(&big)
                .args(if sub[0] == "convert" {
                    vec![&out]
                } else {
                    vec![]
                })
                .output()
                .unwrap();
            let err = String::from_utf8_lossy(&o.stderr);
            assert_eq!(o.status.code(), Some(1), "{who} {sub:?}: {err}");
            let line = err.lines().next().unwrap_or_default();
            assert_eq!(
                line,
                format!(
                    "error: {} is 4294967301 bytes: larger than any input vpe-migrate accepts \
                     (268435456 bytes, 256 MiB)",
                    big.display()
                ),
                "{who} {sub:?}"
            );
            assert!(!out.exists(), "{who}: no output");
            assert!(t.elapsed().as_secs() < 20, "{who}: it read the file");
        }
    }
}
