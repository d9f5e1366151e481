//! The Lantiq voice-firmware footer parser and loader (`vpe::lantiq`): footer decoding in
//! both byte orders, detection, parsing (new and old format) and loading at a
//! `vpe1_load_addr`. Options are chosen by the input length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpe::elf::Endian;
use vpe::lantiq::{self, Footer, Platform, VoiceOptions};

fuzz_target!(|data: &[u8]| {
    let n = data.len();
    let _ = Footer::read(data, Endian::Big);
    let _ = Footer::read(data, Endian::Little);
    let _ = lantiq::detect_endian(data);
    let _ = lantiq::is_voice(data);
    let endian = [None, Some(Endian::Big), Some(Endian::Little)][n % 3];
    let old_format = (n / 3) % 2 == 1;
    match lantiq::parse_voice(data, endian, old_format) {
        Ok(v) => {
            let _ = lantiq::decrypt_len(&v);
            let _ = lantiq::note_fields(&v, 0x83e0_0000);
        }
        Err(e) => one_line(&e),
    }
    let opts = VoiceOptions {
        crc: Default::default(),
        load_addr: [0x83e0_0000, 0xa3f0_0000, 0xfff0_0000, 0x1234_5678][(n / 6) % 4],
        vpe1_mem: [None, Some(0), Some(0x10_0000), Some(u32::MAX)][(n / 24) % 4],
        platform: [None, Some(Platform::Xrx200), Some(Platform::Danube)][(n / 96) % 3],
        endian,
        old_format,
    };
    match lantiq::load_voice(data, &opts) {
        Ok((v, img)) => {
            let _ = lantiq::note_fields(&v, opts.load_addr);
            let _ = img.segments.len();
        }
        Err(e) => one_line(&e),
    }
});

/// A rejection is one line (the semantics-difference report is the documented exception).
fn one_line(e: &vpe::Error) {
    let s = e.to_string();
    if !matches!(e, vpe::Error::SemanticsDiffer { .. }) {
        assert!(!s.contains('\n'), "multi-line error: {s}");
    }
}
