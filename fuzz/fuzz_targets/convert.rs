//! The whole pipeline: sniff, legacy model, firmware writer, kernel-rule check, verify. The
//! option set is chosen by the input length. An `internal error` (our own output failing our
//! own checks, or not equivalent to the legacy image) is a finding too.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpe::convert::{self, Options};
use vpe::image::RelocSemantics;
use vpe::rproc::firmware::Profile;

fuzz_target!(|data: &[u8]| {
    let opts = match data.len() % 3 {
        0 => Options::default(),
        1 => Options {
            semantics: RelocSemantics::Legacy,
            trace: Some(0x1000),
            extra_mem: 0x1000,
            ..Options::default()
        },
        _ => Options {
            semantics: RelocSemantics::Elf,
            profile: Profile::Fixed,
            base: Some(0x8010_0000),
            trampoline: false,
            ..Options::default()
        },
    };
    if let Err(e) = convert::convert(data, &opts) {
        one_line(&e);
        let msg = e.to_string();
        assert!(
            !msg.contains("internal error"),
            "convert produced an internal error: {msg}"
        );
    }
});

/// A rejection is one line (the semantics-difference report is the documented exception).
fn one_line(e: &vpe::Error) {
    let s = e.to_string();
    if !matches!(e, vpe::Error::SemanticsDiffer { .. }) {
        assert!(!s.contains('\n'), "multi-line error: {s}");
    }
}
