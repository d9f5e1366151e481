//! Helpers shared by the `vpe-migrate` process tests.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::Command;

use goblin::elf::Elf;

/// The binary under test.
pub fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vpe-migrate"))
}

/// A committed MIPS fixture (`tests/fixtures/bin/<name>`).
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/bin")
        .join(name)
}

/// The section called `name`: file offset of its contents and of its section header.
pub fn section(elf: &Elf, name: &str) -> (usize, usize) {
    let (i, sh) = elf
        .section_headers
        .iter()
        .enumerate()
        .find(|(_, h)| elf.shdr_strtab.get_at(h.sh_name) == Some(name))
        .unwrap_or_else(|| panic!("no section {name}"));
    (sh.sh_offset as usize, elf.header.e_shoff as usize + i * 40)
}
