//! `vpe-migrate batch` over a mixed directory: committed fixtures, a synthesized voice image,
//! an existing firmware and garbage. Checks the exit status, the outputs, that inputs are
//! untouched, the Markdown report (snapshot, with sha256s) and the JSON report's content.

use std::path::Path;
use std::process::Output;

use vpe::elf::Endian;
use vpe::lantiq::{self, Footer, VOICE_MAGIC};

mod common;

use common::{bin, fixture};

/// A new-format xRX200 voice image with a deterministic payload and a correct CRC.
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
        crc32: lantiq::voice_crc32(&b, 0, 0x800).unwrap(),
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

fn sha(p: &Path) -> String {
    vpe::convert::sha256_hex(&std::fs::read(p).unwrap())
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn run(args: &[&std::ffi::OsStr]) -> Output {
    bin().args(args).output().expect("run vpe-migrate")
}

#[test]
fn mixed_directory_report() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = tmp.path().join("in");
    let out = tmp.path().join("out");
    std::fs::create_dir(&inp).unwrap();
    for f in [
        "hello.be.o",
        "hello.le.exe",
        "features.le.o",
        "common.be.o",
        "no_shared.be.o",
        "no_start.be.o",
    ] {
        std::fs::copy(fixture(f), inp.join(f)).unwrap();
    }
    std::fs::write(inp.join("voice_vr9.bin"), voice_image()).unwrap();
    std::fs::write(inp.join("garbage.bin"), b"this is not a VPE image\n").unwrap();
    // An already converted firmware: skipped, not converted twice.
    let fw = tmp.path().join("x.fw");
    let o = bin().arg(fixture("hello.le.o")).arg(&fw).output().unwrap();
    assert!(o.status.success());
    std::fs::copy(&fw, inp.join("already.fw")).unwrap();
    let before: Vec<(String, String)> = names(&inp)
        .into_iter()
        .map(|n| (n.clone(), sha(&inp.join(&n))))
        .collect();

    let md = tmp.path().join("report.md");
    let json = tmp.path().join("report.json");
    let o = run(&[
        "batch".as_ref(),
        inp.as_os_str(),
        out.as_os_str(),
        "--jobs".as_ref(),
        "3".as_ref(),
        "--report".as_ref(),
        md.as_os_str(),
        "--report".as_ref(),
        json.as_os_str(),
        "--load-addr".as_ref(),
        "0x83e00000".as_ref(),
        "--platform".as_ref(),
        "xrx200".as_ref(),
    ]);
    let stderr = String::from_utf8_lossy(&o.stderr);
    // common.be.o needs a decision and no_start.be.o fails: not everything converted.
    assert_eq!(o.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("5 converted, 1 need a decision, 1 failed, 2 skipped (of 9 files)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains('\u{1b}'),
        "no progress bar when stderr is not a terminal"
    );

    // Inputs untouched; outputs only for converted images, no temp files left.
    let after: Vec<(String, String)> = names(&inp)
        .into_iter()
        .map(|n| (n.clone(), sha(&inp.join(&n))))
        .collect();
    assert_eq!(before, after);
    assert_eq!(
        names(&out),
        [
            "features.le.o.fw",
            "hello.be.o.fw",
            "hello.le.exe.fw",
            "no_shared.be.o.fw",
            "voice_vr9.bin.fw"
        ]
    );

    // JSON: parse and check the facts.
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(j["totals"]["images"], 9);
    assert_eq!(j["totals"]["converted"], 5);
    let img = |f: &str| {
        j["images"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["file"] == f)
            .unwrap_or_else(|| panic!("{f} in the report"))
            .clone()
    };
    assert_eq!(img("hello.be.o")["kind"], "ET_REL");
    assert_eq!(img("hello.le.exe")["kind"], "ET_EXEC");
    assert_eq!(img("voice_vr9.bin")["kind"], "voice image");
    assert_eq!(img("voice_vr9.bin")["outcome"], "converted");
    assert_eq!(img("voice_vr9.bin")["entry"], "0xa3e00000");
    assert_eq!(img("garbage.bin")["outcome"], "skipped");
    assert_eq!(img("already.fw")["kind"], "remoteproc firmware");
    assert_eq!(img("no_start.be.o")["outcome"], "failed");
    assert!(img("no_start.be.o")["error"]
        .as_str()
        .unwrap()
        .starts_with("VPE loader: program does not contain a __start symbol"));
    let common = img("common.be.o");
    assert_eq!(common["outcome"], "needs_decision");
    let decisions: Vec<&str> = common["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap())
        .collect();
    assert!(
        decisions[0].starts_with("relocation semantics"),
        "{decisions:?}"
    );
    assert!(
        decisions.iter().any(|d| d.starts_with("COMMON symbols")),
        "{decisions:?}"
    );
    // RTLX use is flagged; the output sha256 is the file's.
    let hello = img("hello.be.o");
    assert!(hello["decisions"][0]
        .as_str()
        .unwrap()
        .starts_with("vpe_shared at"));
    assert_eq!(
        hello["output_sha256"].as_str().unwrap(),
        sha(&out.join("hello.be.o.fw"))
    );
    assert!(img("no_shared.be.o")["warnings"][0]
        .as_str()
        .unwrap()
        .starts_with("VPE loader: program does not contain vpe_shared symbol."));

    // Markdown: the readable report, with the temp paths taken out.
    let text = std::fs::read_to_string(&md)
        .unwrap()
        .replace(&inp.display().to_string(), "IN_DIR")
        .replace(&out.display().to_string(), "OUT_DIR")
        .replace(env!("CARGO_PKG_VERSION"), "VERSION");
    insta::assert_snapshot!("batch_report_md", text);
}

#[test]
fn lantiq_batch_converts_everything_and_refuses_to_overwrite_inputs() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = tmp.path().join("in");
    std::fs::create_dir(&inp).unwrap();
    for f in ["hello.be.o", "no_shared.be.o"] {
        std::fs::copy(fixture(f), inp.join(f)).unwrap();
    }
    std::fs::write(inp.join("voice.bin"), voice_image()).unwrap();
    let report = tmp.path().join("r.json");
    let args = |out: &Path| {
        let mut c = bin();
        c.arg("batch")
            .arg(&inp)
            .arg(out)
            .args(["--kernel", "lantiq", "--vpe1-load-addr", "0x83e00000"])
            .args(["--vpe1-mem", "1M", "--report"])
            .arg(&report);
        c
    };
    let out = tmp.path().join("out");
    let o = args(&out).output().unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    let kinds: Vec<&str> = j["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["Lantiq ELF (ET_REL)", "Lantiq ELF (ET_REL)", "voice image"]
    );
    // The quirk is a decision for a person.
    let ns = &j["images"][1];
    assert!(ns["decisions"].as_array().unwrap().iter().any(|d| d
        .as_str()
        .unwrap()
        .starts_with("entry: the Lantiq loader's fallback")));

    // Writing into the input directory twice: the second run's outputs would replace the
    // first run's files, which are now inputs: refused, and nothing is changed.
    let o = args(&inp).output().unwrap();
    assert_eq!(o.status.code(), Some(0));
    let before: Vec<String> = names(&inp).iter().map(|n| sha(&inp.join(n))).collect();
    let o = args(&inp).output().unwrap();
    assert_eq!(o.status.code(), Some(1));
    let after: Vec<String> = names(&inp).iter().map(|n| sha(&inp.join(n))).collect();
    assert_eq!(before, after);
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(j["totals"]["failed"], 3);
    assert_eq!(j["totals"]["skipped"], 3, "the .fw files are firmware");
}
