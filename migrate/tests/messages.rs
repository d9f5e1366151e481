//! One clear line with the right blame, exit 2 for usage errors: the vpe-migrate rows of the
//! hardening review's message table, through the binary.

use std::path::Path;
use std::process::Output;

mod common;

use common::{bin, fixture};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn first_line(o: &Output) -> String {
    stderr(o).lines().next().unwrap_or_default().to_string()
}

fn convert_with(flags: &[&str], input: &Path, new: &Path) -> Output {
    bin().args(flags).arg(input).arg(new).output().unwrap()
}

/// A usage error: exit 2, clap's `error: ` line naming `expect`, nothing written.
fn usage_error(o: &Output, new: &Path, expect: &str) {
    assert_eq!(o.status.code(), Some(2), "{}", stderr(o));
    let line = first_line(o);
    assert!(line.starts_with("error: "), "{line}");
    assert!(line.contains(expect), "expected `{expect}` in: {line}");
    assert!(
        stderr(o).contains("For more information, try '--help'."),
        "{}",
        stderr(o)
    );
    assert!(!new.exists(), "no output");
}

#[test]
fn inspect_of_a_common_object_says_the_legacy_loader_accepts_it() {
    let o = bin()
        .arg("inspect")
        .arg(fixture("common.be.o"))
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(!text.contains("rejects"), "{text}");
    assert!(
        text.contains("what /dev/vpe1 (arch/mips/kernel/vpe.c) would load, base 0x10000000:"),
        "{text}"
    );
    assert!(
        text.contains("the legacy loader accepts it (loaded above as --relocs legacy would); the MIPS ELF ABI differs: relocation semantics differ"),
        "{text}"
    );
    // What it shows is what --relocs legacy loads.
    let legacy = bin()
        .args(["inspect", "--relocs", "legacy"])
        .arg(fixture("common.be.o"))
        .output()
        .unwrap();
    let sha = |t: &str| {
        t.lines()
            .find(|l| l.starts_with("memory image sha256: "))
            .map(str::to_owned)
    };
    assert!(sha(&text).is_some());
    assert_eq!(sha(&text), sha(&stdout(&legacy)));
}

#[test]
fn verify_names_the_wrong_argument() {
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("hello.fw");
    let old = fixture("hello.be.o");
    assert!(convert_with(&[], &old, &fw).status.success());
    let verify = |a: &Path, b: &Path| bin().arg("verify").arg(a).arg(b).output().unwrap();
    let cases = [
        (
            verify(&fw, &old),
            format!(
                "error: the arguments look swapped: OLD {} is a remoteproc firmware and NEW {} is not",
                fw.display(),
                old.display()
            ),
        ),
        (
            verify(&fw, &fw),
            format!(
                "error: OLD {} is a remoteproc firmware, not a legacy SP program",
                fw.display()
            ),
        ),
        (
            verify(&old, &old),
            format!(
                "error: NEW {} is not a remoteproc firmware (no .resource_table)",
                old.display()
            ),
        ),
    ];
    for (o, expect) in cases {
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
        let e = stderr(&o);
        assert!(e.starts_with(&expect), "expected `{expect}` in: {e}");
        assert_eq!(e.lines().count(), 1, "{e}");
        // No Rust Debug text (`Trampoline { target: ... }` before).
        assert!(!e.contains(" { ") && !e.contains("Some("), "{e}");
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn check_json_reports_a_failure_as_json() {
    let o = bin()
        .args(["check", "--json"])
        .arg(fixture("hello.be.o"))
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    assert!(first_line(&o).starts_with("error: No loadable segments"));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["ok"], false);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("No loadable segments"));
    // A file that cannot be read, too.
    let o = bin()
        .args(["check", "--json", "/nonexistent/x.fw"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON on stdout");
    assert_eq!(v["ok"], false);
    assert!(v["error"]
        .as_str()
        .unwrap()
        .starts_with("cannot read /nonexistent/x.fw"));
}

#[test]
fn every_json_mode_reports_a_failure_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage");
    std::fs::write(&garbage, b"not an ELF").unwrap();
    let fw = dir.path().join("hello.fw");
    assert!(convert_with(&[], &fixture("hello.be.o"), &fw)
        .status
        .success());
    let new = dir.path().join("x.fw");
    for args in [
        vec![garbage.as_os_str(), new.as_os_str(), "--json".as_ref()],
        vec![
            "convert".as_ref(),
            "--json".as_ref(),
            garbage.as_os_str(),
            new.as_os_str(),
        ],
        vec![
            "inspect".as_ref(),
            "--json".as_ref(),
            "/nonexistent".as_ref(),
        ],
        vec![
            "verify".as_ref(),
            "--json".as_ref(),
            fw.as_os_str(),
            fw.as_os_str(),
        ],
    ] {
        let o = bin().args(&args).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{args:?}: {}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout)
            .unwrap_or_else(|e| panic!("{args:?}: JSON on stdout: {e}: {}", stdout(&o)));
        assert_eq!(v["ok"], false, "{args:?}");
        let err = v["error"].as_str().unwrap();
        assert_eq!(format!("error: {err}"), first_line(&o), "{args:?}");
    }
}

#[test]
fn voice_flags_with_an_elf_and_ntcs_0_are_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("x.fw");
    let elf = fixture("hello.be.o");
    for (flags, expect) in [
        (
            &["--platform", "xrx200"][..],
            "--platform only applies to Lantiq voice images",
        ),
        (
            &["--lantiq-voice"][..],
            "--lantiq-voice only applies to Lantiq voice images",
        ),
        (
            &[
                "--load-addr",
                "0x83e00000",
                "--platform",
                "xrx200",
                "--endian",
                "big",
            ][..],
            "--platform, --endian only apply to Lantiq voice images",
        ),
        (
            &["--ntcs", "0"][..],
            "0 TCs: the legacy loader passed the number of TCs the program runs on, at least 1",
        ),
    ] {
        let o = convert_with(flags, &elf, &new);
        usage_error(&o, &new, expect);
        if flags[0] != "--ntcs" {
            assert!(first_line(&o).contains(&format!("{} is an ELF file", elf.display())));
        }
    }
}

#[test]
fn inspect_voice_flags_with_an_elf_are_usage_errors() {
    let elf = fixture("hello.be.o");
    for (flags, expect) in [
        (&["--lantiq-voice"][..], "--lantiq-voice only applies"),
        (&["--endian", "little"][..], "--endian only applies"),
    ] {
        let o = bin().arg("inspect").args(flags).arg(&elf).output().unwrap();
        usage_error(&o, Path::new("/nonexistent"), expect);
        assert!(o.stdout.is_empty());
    }
}

#[test]
fn flag_combinations_refused_after_parsing_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("x.fw");
    let elf = fixture("hello.be.o");
    for (flags, expect) in [
        (
            &["--kernel", "lantiq"][..],
            "--kernel lantiq needs --vpe1-load-addr",
        ),
        (
            &["--entry", "__start"][..],
            "--entry __start only changes the Lantiq loader's fallback",
        ),
        (
            &[
                "--kernel",
                "lantiq",
                "--vpe1-load-addr",
                "0x83e00000",
                "--profile",
                "mips-rproc",
            ][..],
            "it needs --profile fixed",
        ),
    ] {
        usage_error(&convert_with(flags, &elf, &new), &new, expect);
    }
}

#[test]
fn sizes_take_k_m_g_and_kib_mib_gib_within_32_bits() {
    let dir = tempfile::tempdir().unwrap();
    let elf = fixture("hello.be.o");
    let mut shas = Vec::new();
    for v in ["65536", "0x10000", "64K", "64k", "64KiB", "64kib"] {
        let new = dir.path().join(format!("{v}.fw"));
        let o = convert_with(&["--extra-mem", v], &elf, &new);
        assert!(o.status.success(), "{v}: {}", stderr(&o));
        shas.push(vpe::convert::sha256_hex(&std::fs::read(&new).unwrap()));
    }
    assert!(shas.windows(2).all(|w| w[0] == w[1]), "{shas:?}");
    // M/MiB and G/GiB parse to the same values (checked through the 32-bit limit message).
    let new = dir.path().join("big.fw");
    for (v, bytes) in [
        ("4G", "4294967296"),
        ("4GiB", "4294967296"),
        ("4096M", "4294967296"),
        ("5g", "5368709120"),
    ] {
        usage_error(
            &convert_with(&["--extra-mem", v], &elf, &new),
            &new,
            &format!("`{v}` is {bytes} bytes: more than the 32-bit limit of 4294967295 bytes (4 GiB - 1)"),
        );
    }
    for v in ["4X", "K", "1.5M", "4KB"] {
        usage_error(
            &convert_with(&["--extra-mem", v], &elf, &new),
            &new,
            &format!("`{v}` is not a size"),
        );
    }
}

#[test]
fn an_unaligned_base_says_what_it_must_be_aligned_to() {
    let dir = tempfile::tempdir().unwrap();
    let new = dir.path().join("x.fw");
    for b in ["0x1", "0x10000800"] {
        let o = convert_with(&["--base", b], &fixture("hello.be.o"), &new);
        usage_error(
            &o,
            &new,
            &format!("`{b}` is not aligned: the base must be a multiple of 0x1000 (4 KiB, a page)"),
        );
    }
    let o = convert_with(&["--base", "0x10001000"], &fixture("hello.be.o"), &new);
    assert!(o.status.success(), "{}", stderr(&o));
}
