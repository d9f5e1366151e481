//! The legacy loader model (`vpe_elfload`: parse, layout, symbols, relocations). The
//! relocation semantics is chosen by the input length (so every mutation that changes the
//! length also explores another semantics at one load per semantics per execution); the same
//! input is then loaded again with the state the first load left (pending HI16s, `gp`), and
//! once with the kernel's 256 KiB buffer capacity and a base near the top of the address
//! space (wrap-around).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpe::image::RelocSemantics;
use vpe::legacy::{self, Options, State};

const SEMANTICS: [RelocSemantics; 3] = [
    RelocSemantics::Strict,
    RelocSemantics::Legacy,
    RelocSemantics::Elf,
];

fuzz_target!(|data: &[u8]| {
    let semantics = SEMANTICS[data.len() % 3];
    let mut st = State::new();
    let opts = Options {
        semantics,
        ..Options::default()
    };
    for _ in 0..2 {
        if let Err(e) = legacy::load_with_state(data, &opts, &mut st) {
            one_line(&e);
        }
    }
    let opts = Options {
        base: 0xffff_f000,
        semantics,
        capacity: Some(legacy::P_SIZE),
        ..Options::default()
    };
    let _ = legacy::load(data, &opts);
});

/// A rejection is one line (the semantics-difference report is the documented exception).
fn one_line(e: &vpe::Error) {
    let s = e.to_string();
    if !matches!(e, vpe::Error::SemanticsDiffer { .. }) {
        assert!(!s.contains('\n'), "multi-line error: {s}");
    }
}
