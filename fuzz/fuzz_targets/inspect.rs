//! `inspect` and both renderings; the relocation semantics is chosen by the input length.
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpe::image::RelocSemantics;
use vpe::inspect::{self, Options};

fuzz_target!(|data: &[u8]| {
    let semantics = [
        RelocSemantics::Strict,
        RelocSemantics::Legacy,
        RelocSemantics::Elf,
    ][data.len() % 3];
    let opts = Options {
        semantics,
        ..Options::default()
    };
    match inspect::inspect(data, &opts) {
        Ok(ins) => {
            let _ = inspect::render_text(&ins);
            let _ = inspect::render_json(&ins);
        }
        Err(e) => {
            one_line(&e);
        }
    }
});

/// A rejection is one line (the semantics-difference report is the documented exception).
fn one_line(e: &vpe::Error) {
    let s = e.to_string();
    if !matches!(e, vpe::Error::SemanticsDiffer { .. }) {
        assert!(!s.contains('\n'), "multi-line error: {s}");
    }
}
