//! Issue 14 (fidelity round 2), as the command line shows it: `--voice-crc`, the Lantiq
//! summary line, `inspect` details.

use std::process::Output;

use vpe::elf::Endian;
use vpe::lantiq::{self, Footer, VOICE_MAGIC};

mod common;

use common::bin;

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A new-format xRX200 voice image; `crc` `None` = the right CRC over the driver's coverage.
fn voice(crc: Option<u32>) -> Vec<u8> {
    let mut b: Vec<u8> = (0..0x400u32).map(|i| (i * 13 + 5) as u8).collect();
    let f = Footer {
        crc32: crc.unwrap_or_else(|| lantiq::voice_crc32(&b, 0x24, 0x400).unwrap()),
        st_addr_crc: 0x24,
        en_addr_crc: 0x400,
        fw_vers: 0x0102_0731,
        enc: 0,
        magic: VOICE_MAGIC,
        mem: lantiq::mem_word(0x10_0000),
    };
    b.extend_from_slice(&f.encode(Endian::Big));
    b
}

/// Item 15: a CRC mismatch refuses the image like the upstream drivers, `--voice-crc warn`
/// converts it like OpenWrt's; a right CRC over `[0, 8)` + `[st, en)` converts either way.
#[test]
fn voice_crc_mismatch_is_fatal_unless_warn() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.bin");
    let bad = dir.path().join("bad.bin");
    std::fs::write(&good, voice(None)).unwrap();
    std::fs::write(&bad, voice(Some(0xdead_beef))).unwrap();
    let out = dir.path().join("fw");
    let conv = |input: &std::path::Path, extra: &[&str]| {
        bin()
            .arg(input)
            .arg(&out)
            .args(["--vpe1-load-addr", "0x83e00000"])
            .args(extra)
            .output()
            .unwrap()
    };
    let o = conv(&good, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    std::fs::remove_file(&out).unwrap();

    let o = conv(&bad, &[]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(
        err.starts_with("error: MPS: FW checksum error: img=0xdeadbeef calc=0x"),
        "{err}"
    );
    assert!(err.contains("--voice-crc warn"), "{err}");
    assert!(!out.exists(), "no output after a refusal");

    let o = conv(&bad, &["--voice-crc", "warn"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: MPS: FW checksum error: img=0xdeadbeef"),
        "{}",
        stderr(&o)
    );
    assert!(out.exists());
}

/// Item 3: code that takes KSEG1ADDR()/CPHYSADDR() of its own data is converted (the bytes
/// are what vpe.c wrote), but each site is named in a warning and the batch report lists the
/// hazard among the decisions.
#[test]
fn kuseg_rebase_hazards_are_named_and_reported() {
    let tmp = tempfile::tempdir().unwrap();
    let fw = tmp.path().join("fw");
    let o = bin()
        .arg(common::fixture("kseg.be.o"))
        .arg(&fw)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    let hazards: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("warning: KUSEG re-base hazard: .text.startup+0x"))
        .collect();
    assert_eq!(hazards.len(), 3, "{err}");
    assert!(hazards[0].contains("`lui $3, 0xa000`") && hazards[0].contains("KSEG1ADDR()"));
    assert!(hazards[1].contains("`ext $2, $2, 0, 29`") && hazards[1].contains("CPHYSADDR()"));
    // A program without such code gets none.
    let o = bin()
        .arg(common::fixture("hello.be.o"))
        .arg(tmp.path().join("hello.fw"))
        .output()
        .unwrap();
    assert!(
        !stderr(&o).contains("KUSEG re-base hazard"),
        "{}",
        stderr(&o)
    );

    let inp = tmp.path().join("in");
    std::fs::create_dir(&inp).unwrap();
    std::fs::copy(common::fixture("kseg.le.o"), inp.join("kseg.le.o")).unwrap();
    let md = tmp.path().join("report.md");
    let o = bin()
        .arg("batch")
        .arg(&inp)
        .arg(tmp.path().join("out"))
        .arg("--report")
        .arg(&md)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&md).unwrap();
    assert!(
        report.contains("KUSEG re-base hazard at 3 site(s)"),
        "{report}\n{}",
        stderr(&o)
    );
}

fn inspect_json(path: &std::path::Path, extra: &[&str]) -> serde_json::Value {
    let o = bin()
        .arg("inspect")
        .arg("--json")
        .args(extra)
        .arg(path)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("JSON")
}

/// Item 18: no `{"Ok": ...}` wrapper, and a symbol's `section` is its ELF section index.
#[test]
fn inspect_json_has_no_result_wrapper_and_elf_section_indices() {
    let tmp = tempfile::tempdir().unwrap();
    let v = inspect_json(&common::fixture("hello.be.o"), &[]);
    let load = &v["load"];
    assert!(load.get("Ok").is_none(), "{load}");
    let sections = load["sections"].as_array().unwrap();
    let syms = load["symbols"].as_array().unwrap();
    let line = syms.iter().find(|s| s["name"] == "line").unwrap();
    let idx = line["section"].as_u64().unwrap();
    let bss = sections.iter().find(|s| s["name"] == ".bss").unwrap();
    assert_eq!(bss["index"].as_u64(), Some(idx), "{line} vs {bss}");
    // The index is the ELF one: more than the position of .bss among the placed sections.
    let pos = sections.iter().position(|s| s["name"] == ".bss").unwrap() as u64;
    assert_ne!(idx, pos, "a position in the array, not the ELF index");

    let fw = tmp.path().join("fw");
    let o = bin()
        .arg(common::fixture("hello.be.o"))
        .arg(&fw)
        .output()
        .unwrap();
    assert!(o.status.success());
    let v = inspect_json(&fw, &[]);
    let check = &v["check"];
    assert!(check.get("Ok").is_none(), "{check}");
    assert!(check["image"]["symbols"].is_array(), "{check}");

    // A refusal: {"error": "..."}.
    let mut b = std::fs::read(common::fixture("hello.be.o")).unwrap();
    b[0x34..].iter_mut().for_each(|x| *x = 0);
    let bad = tmp.path().join("bad.o");
    std::fs::write(&bad, &b).unwrap();
    let v = inspect_json(&bad, &[]);
    assert!(v["load"]["error"].is_string(), "{v}");
    assert!(v["load"].get("Err").is_none(), "{v}");
}

/// Item 18: the text form never says "warnings: none" under a line that is a warning.
#[test]
fn inspect_lists_the_warnings_it_prints() {
    let tmp = tempfile::tempdir().unwrap();
    let mut b: Vec<u8> = (0..0x100u32).map(|i| i as u8).collect();
    let f = Footer {
        crc32: 0,
        st_addr_crc: 0x24,
        en_addr_crc: 0x100,
        fw_vers: 0x0102_0731,
        enc: 1, // encrypted
        magic: VOICE_MAGIC,
        mem: lantiq::mem_word(0x10_0000),
    };
    b.extend_from_slice(&f.encode(Endian::Big));
    let p = tmp.path().join("enc.bin");
    std::fs::write(&p, &b).unwrap();
    let o = bin().arg("inspect").arg(&p).output().unwrap();
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("encrypted: yes"), "{text}");
    assert!(!text.contains("warnings: none"), "{text}");
    assert!(text.contains("the payload is encrypted"), "{text}");
}

/// Item 18: under the Lantiq loader's fallback the summary says where the start really is.
#[test]
fn lantiq_summary_line_names_the_fallback_start() {
    let tmp = tempfile::tempdir().unwrap();
    let run = |input: &str| {
        let o = bin()
            .arg(common::fixture(input))
            .arg(tmp.path().join(format!("{input}.fw")))
            .args(["--kernel", "lantiq", "--vpe1-load-addr", "0x83e00000"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        String::from_utf8_lossy(&o.stdout).into_owned()
    };
    // no vpe_shared: the fallback (KSEG1 of 0x83e00000).
    let out = run("no_shared.be.o");
    assert!(
        out.contains(" -> KSEG1(vpe1_load_addr) 0xa3e00000, "),
        "{out}"
    );
    // Both symbols: __start.
    let out = run("hello.be.o");
    assert!(out.contains(" -> __start 0x83e0"), "{out}");
}

/// Item 6: the `--ntcs` default is documented where users see it as a deliberate deviation.
#[test]
fn ntcs_default_is_documented_as_a_deviation() {
    let o = bin().args(["convert", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&o.stdout);
    let at = help.find("--ntcs").expect("--ntcs in help");
    let text = &help[at..at + 600.min(help.len() - at)];
    assert!(text.contains("deliberate deviation"), "{text}");
    assert!(text.contains("hw_tcs - maxtcs"), "{text}");
}
