//! The CLI contract, through the real binary: exit codes, `error:` first lines, atomic
//! output, never overwriting the input, the legacy messages for bad inputs.

use std::path::Path;
use std::process::Output;

mod common;

use common::{bin, fixture, section};

fn run(args: &[&std::ffi::OsStr]) -> Output {
    bin().args(args).output().expect("run vpe-migrate")
}

fn os(s: &str) -> &std::ffi::OsStr {
    std::ffi::OsStr::new(s)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn first_line(o: &Output) -> String {
    stderr(o).lines().next().unwrap_or_default().to_string()
}

/// Entries of `dir` (to prove nothing, not even a temp file, was left behind).
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Convert `input` bytes (written to a temp dir) and expect rejection with `expect` in the
/// first line; asserts exit 1 and that the output file does not exist.
fn expect_rejected(input: &[u8], extra: &[&str], expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.elf");
    std::fs::write(&inp, input).unwrap();
    let out = dir.path().join("out.fw");
    let mut args: Vec<&std::ffi::OsStr> = extra.iter().map(|s| os(s)).collect();
    args.push(inp.as_os_str());
    args.push(out.as_os_str());
    let o = run(&args);
    assert_eq!(o.status.code(), Some(1), "stderr: {}", stderr(&o));
    let line = first_line(&o);
    assert!(line.starts_with("error: "), "first line: {line}");
    assert!(line.contains(expect), "expected `{expect}` in: {line}");
    assert_eq!(
        entries(dir.path()),
        vec!["in.elf".to_string()],
        "no output, no temp file"
    );
}

#[test]
fn converts_checks_and_verifies_the_example() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hello.fw");
    let ex = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/sp/hello.o");
    let o = run(&[ex.as_os_str(), out.as_os_str()]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("equivalent"));
    let o = run(&[
        os("check"),
        out.as_os_str(),
        os("--host"),
        os("big"),
        os("--profile"),
        os("mips-rproc"),
    ]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    let o = run(&[os("verify"), ex.as_os_str(), out.as_os_str()]);
    assert!(o.status.success(), "stderr: {}", stderr(&o));
    assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "equivalent");
    // The same input and options give byte-identical output.
    let out2 = dir.path().join("again.fw");
    let o = run(&[os("convert"), ex.as_os_str(), out2.as_os_str()]);
    assert!(o.status.success());
    assert_eq!(std::fs::read(&out).unwrap(), std::fs::read(&out2).unwrap());
}

#[test]
fn check_rejects_wrong_host_order_with_the_kernel_message() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hello.fw");
    let o = run(&[fixture("hello.be.o").as_os_str(), out.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = run(&[os("check"), out.as_os_str(), os("--host"), os("little")]);
    assert_eq!(o.status.code(), Some(1));
    let line = first_line(&o);
    assert!(
        line.starts_with("error: Unsupported firmware endianness ("),
        "{line}"
    );
    assert!(line.contains("host is little-endian"), "{line}");
    // And the converter refuses a host mismatch up front.
    let o = run(&[
        os("--host"),
        os("little"),
        fixture("hello.be.o").as_os_str(),
        dir.path().join("x").as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        first_line(&o).contains("Unsupported firmware endianness"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn verify_reports_the_first_differing_address() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("hello.fw");
    assert!(run(&[fixture("hello.le.o").as_os_str(), out.as_os_str()])
        .status
        .success());
    // Verify against a different program: must not say equivalent.
    let o = run(&[
        os("verify"),
        fixture("features.le.o").as_os_str(),
        out.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        first_line(&o).contains("first difference at 0x"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn garbage_is_rejected_with_the_legacy_message_and_no_output() {
    expect_rejected(b"hello", &[], "VPE loader: only elf files are supported");
    expect_rejected(b"", &[], "VPE loader: only elf files are supported");
}

fn patched(name: &str, f: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut b = std::fs::read(fixture(name)).unwrap();
    f(&mut b);
    b
}

#[test]
fn header_cases_of_the_legacy_loader() {
    const WRONG: &str = "VPE loader: program wrong arch or weird elf version";
    // e_machine 3 (big-endian field at 18)
    expect_rejected(
        &patched("hello.be.o", |b| b[18..20].copy_from_slice(&[0, 3])),
        &[],
        WRONG,
    );
    // ET_DYN
    expect_rejected(
        &patched("hello.be.o", |b| b[16..18].copy_from_slice(&[0, 3])),
        &[],
        WRONG,
    );
    // e_shentsize 41
    expect_rejected(
        &patched("hello.be.o", |b| b[46..48].copy_from_slice(&[0, 41])),
        &[],
        WRONG,
    );
    // ELFCLASS64
    expect_rejected(&patched("hello.be.o", |b| b[4] = 2), &[], WRONG);
    // EF_MIPS_ABI2 (e_flags at 36, big-endian; bit 0x20 in the last byte)
    expect_rejected(&patched("hello.be.o", |b| b[39] |= 0x20), &[], WRONG);
    // little-endian file: the same field in the other byte order
    expect_rejected(
        &patched("hello.le.o", |b| b[18..20].copy_from_slice(&[3, 0])),
        &[],
        WRONG,
    );
}

#[test]
fn truncated_file_names_the_legacy_message() {
    let b = std::fs::read(fixture("hello.be.o")).unwrap();
    expect_rejected(&b[..b.len() - 1], &[], "truncated");
    expect_rejected(&b[..60], &[], "truncated");
}

#[test]
fn missing_start_is_rejected() {
    expect_rejected(
        &std::fs::read(fixture("no_start.be.o")).unwrap(),
        &[],
        "VPE loader: program does not contain a __start symbol",
    );
}

#[test]
fn semantics_disagreement_lists_sites_and_asks_for_a_choice() {
    let b = std::fs::read(fixture("common.be.o")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.o");
    std::fs::write(&inp, &b).unwrap();
    let o = run(&[inp.as_os_str(), dir.path().join("o").as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains("--relocs legacy") && e.contains("--relocs elf"),
        "{e}"
    );
    assert!(e.contains("COMMON"), "{e}");
    for r in ["legacy", "elf"] {
        let out = dir.path().join(format!("{r}.fw"));
        let o = run(&[os("--relocs"), os(r), inp.as_os_str(), out.as_os_str()]);
        assert!(o.status.success(), "--relocs {r}: {}", stderr(&o));
        let o = run(&[os("verify"), inp.as_os_str(), out.as_os_str()]);
        assert!(o.status.success(), "verify --relocs {r}: {}", stderr(&o));
    }
}

#[test]
fn never_overwrites_the_input() {
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.o");
    let orig = std::fs::read(fixture("hello.be.o")).unwrap();
    std::fs::write(&inp, &orig).unwrap();
    let o = run(&[inp.as_os_str(), inp.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(first_line(&o).contains("refusing to overwrite the input"));
    assert_eq!(std::fs::read(&inp).unwrap(), orig);
    // Also through another name for the same file.
    let link = dir.path().join("link.o");
    std::fs::hard_link(&inp, &link).unwrap();
    let o = run(&[inp.as_os_str(), link.as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(std::fs::read(&inp).unwrap(), orig);
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(run(&[]).status.code(), Some(2));
    assert_eq!(run(&[os("only-one-arg")]).status.code(), Some(2));
    assert_eq!(
        run(&[os("--profile"), os("nope"), os("a"), os("b")])
            .status
            .code(),
        Some(2)
    );
    assert_eq!(
        run(&[os("--base"), os("0xzz"), os("a"), os("b")])
            .status
            .code(),
        Some(2)
    );
}

#[test]
fn help_documents_every_option_and_man_and_completions_generate() {
    let o = run(&[os("convert"), os("--help")]);
    let h = String::from_utf8_lossy(&o.stdout);
    for opt in [
        "--profile",
        "--base",
        "--relocs",
        "--ntcs",
        "--memsize",
        "--extra-mem",
        "--trace",
        "--no-trampoline",
        "--host",
        "--json",
    ] {
        assert!(h.contains(opt), "convert --help lacks {opt}");
    }
    let dir = tempfile::tempdir().unwrap();
    let o = run(&[os("man"), dir.path().as_os_str()]);
    assert!(o.status.success());
    let man = std::fs::read_to_string(dir.path().join("vpe-migrate.1")).unwrap();
    assert!(
        man.contains(".TH") && man.contains("vpe\\-migrate"),
        "{man}"
    );
    let o = run(&[os("completions"), os("bash")]);
    assert!(o.status.success());
    assert!(String::from_utf8_lossy(&o.stdout).contains("vpe-migrate"));
}

#[test]
fn inspect_json_is_valid_json() {
    let o = run(&[
        os("inspect"),
        os("--json"),
        fixture("hello.le.o").as_os_str(),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON");
    assert_eq!(v["format"], "legacy");
}

/// File offsets of `.rel.text`'s first entry and of its section header.
fn rel_text(bytes: &[u8]) -> (usize, usize) {
    section(&goblin::elf::Elf::parse(bytes).unwrap(), ".rel.text")
}

#[test]
fn relocation_types_the_kernel_crashed_on_are_clean_errors() {
    for tag in ["be", "le"] {
        let name = format!("hello.{tag}.o");
        for t in [1u8, 3, 8, 9, 11, 37] {
            let b = patched(&name, |b| {
                let (entry, _) = rel_text(b);
                // r_info's low byte is the type: last byte big-endian, first little-endian.
                let at = if tag == "be" { entry + 7 } else { entry + 4 };
                b[at] = t;
            });
            expect_rejected(&b, &[], "relocation type UNKNOWN");
            let dir = tempfile::tempdir().unwrap();
            let p = dir.path().join("x.o");
            std::fs::write(&p, &b).unwrap();
            let o = run(&[p.as_os_str(), dir.path().join("y").as_os_str()]);
            let e = stderr(&o);
            assert!(
                e.contains("relocation #0 in .rel.text") && e.contains(&format!("r_type {t}")),
                "{e}"
            );
        }
    }
}

#[test]
fn rela_is_rejected_with_the_module_loader_message() {
    for tag in ["be", "le"] {
        let b = patched(&format!("hello.{tag}.o"), |b| {
            let (_, shdr) = rel_text(b);
            // sh_type at +4 := SHT_RELA (4)
            let v: [u8; 4] = if tag == "be" {
                4u32.to_be_bytes()
            } else {
                4u32.to_le_bytes()
            };
            b[shdr + 4..shdr + 8].copy_from_slice(&v);
        });
        expect_rejected(&b, &[], "module VPE loader: REL relocation unsupported");
    }
}

#[test]
fn separators_and_bidi_controls_in_symbol_names_are_escaped() {
    // common.be.o's sites name the symbol `common_counts`; the same 13 bytes become
    // "co" U+2028 U+202E U+FEFF "ns": a line separator, a right-to-left override, a BOM.
    let forged = "co\u{2028}\u{202e}\u{feff}ns";
    assert_eq!(forged.len(), "common_counts".len());
    let b = patched("common.be.o", |b| {
        let at = b
            .windows(14)
            .position(|w| w == b"common_counts\0")
            .expect("symbol name in the string table");
        b[at..at + 13].copy_from_slice(forged.as_bytes());
    });
    let dir = tempfile::tempdir().unwrap();
    let inp = dir.path().join("in.o");
    std::fs::write(&inp, &b).unwrap();
    let o = run(&[inp.as_os_str(), dir.path().join("o").as_os_str()]);
    assert_eq!(o.status.code(), Some(1));
    let e = stderr(&o);
    assert!(
        e.contains(r#"symbol "co\u{2028}\u{202e}\u{feff}ns""#),
        "escaped: {e}"
    );
    for c in ['\u{2028}', '\u{202e}', '\u{feff}'] {
        assert!(!e.contains(c), "{c:?} printed raw: {e}");
    }
    let o = run(&[os("inspect"), inp.as_os_str()]);
    let out = String::from_utf8_lossy(&o.stdout).into_owned() + &stderr(&o);
    for c in ['\u{2028}', '\u{202e}', '\u{feff}'] {
        assert!(!out.contains(c), "inspect printed {c:?} raw: {out}");
    }
}
