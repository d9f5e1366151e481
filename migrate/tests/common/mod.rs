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

/// Run `cmd` to completion, failing the test if it takes longer than `cap` (it is killed):
/// for inputs that could make the binary block (FIFOs) or read forever (devices).
pub fn output_within(cmd: &mut Command, cap: std::time::Duration) -> std::process::Output {
    use std::io::Read as _;
    use std::process::Stdio;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vpe-migrate");
    let pipe = |mut r: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut v = Vec::new();
            let _ = r.read_to_end(&mut v);
            v
        })
    };
    let out = pipe(Box::new(child.stdout.take().expect("stdout")));
    let err = pipe(Box::new(child.stderr.take().expect("stderr")));
    let start = std::time::Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if start.elapsed() > cap {
            let _ = child.kill();
            let _ = child.wait();
            panic!("vpe-migrate still running after {cap:?}: {cmd:?}");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    std::process::Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}
