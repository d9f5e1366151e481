//! Snapshots of `inspect` for every fixture and every converted fixture: readable text with
//! hex addresses, decoded tables and sha256s. CI runs with INSTA_UPDATE=no, so a changed or
//! missing snapshot fails.

mod common;

use common::*;
use vpe::convert::{self, Options};
use vpe::image::RelocSemantics;
use vpe::inspect;

fn semantics_for(name: &str) -> RelocSemantics {
    if name.starts_with("smalldata") || name.starts_with("common") {
        RelocSemantics::Elf
    } else {
        RelocSemantics::Strict
    }
}

const INPUTS: &[&str] = &[
    "hello.be.o",
    "hello.le.o",
    "features.be.o",
    "features.le.o",
    "pc16.be.o",
    "pc16.le.o",
    "smalldata.be.o",
    "smalldata.le.o",
    "common.be.o",
    "common.le.o",
    "regs.be.o",
    "regs.le.o",
    "bigbss.be.o",
    "bigbss.le.o",
    "hello.be.exe",
    "hello.le.exe",
    "features.be.exe",
    "features.le.exe",
];

#[test]
fn inspect_legacy_inputs() {
    for name in INPUTS {
        let bytes = fixture_bytes(name);
        let opts = inspect::Options {
            semantics: semantics_for(name),
            ..Default::default()
        };
        let text = inspect::render_text(&inspect::inspect(&bytes, &opts).unwrap());
        insta::assert_snapshot!(format!("legacy__{name}"), text);
    }
}

#[test]
fn inspect_converted_firmware() {
    for name in INPUTS {
        let bytes = fixture_bytes(name);
        let opts = Options {
            semantics: semantics_for(name),
            ..Options::default()
        };
        let conv = convert::convert(&bytes, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let ins = inspect::inspect(&conv.firmware, &inspect::Options::default()).unwrap();
        insta::assert_snapshot!(format!("firmware__{name}"), inspect::render_text(&ins));
    }
}
