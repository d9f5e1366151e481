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
