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
