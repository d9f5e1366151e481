//! What `vpe-migrate` reads, through the binary: only regular files, never blocking on a
//! FIFO, never reading a device, and never more than the input limit (256 MiB + 1 byte).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

mod common;

use common::{bin, fixture, output_within};

/// Each way the binary reads a file given on the command line.
fn readers(input: &Path, dir: &Path) -> Vec<(&'static str, Command)> {
    let new = dir.join("out.fw");
    let fw = dir.join("good.fw");
    if !fw.exists() {
        let o = bin().arg(fixture("hello.be.o")).arg(&fw).output().unwrap();
        assert!(o.status.success());
    }
    let mut convert = bin();
    convert.arg(input).arg(&new);
    let mut inspect = bin();
    inspect.arg("inspect").arg(input);
    let mut check = bin();
    check.arg("check").arg(input);
    let mut verify_old = bin();
    verify_old.arg("verify").arg(input).arg(&fw);
    let mut verify_new = bin();
    verify_new
        .arg("verify")
        .arg(fixture("hello.be.o"))
        .arg(input);
    vec![
        ("convert", convert),
        ("inspect", inspect),
        ("check", check),
        ("verify OLD", verify_old),
        ("verify NEW", verify_new),
    ]
}

fn refused(name: &str, o: &Output, expect: &str) {
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{name}: {e}");
    let first = e.lines().next().unwrap_or_default();
    assert!(first.starts_with("error: "), "{name}: {e}");
    assert!(
        first.contains(expect),
        "{name}: expected `{expect}` in: {first}"
    );
}

#[test]
fn a_fifo_input_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("in.o");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    // Nobody ever writes the FIFO: the old binary blocked in open() forever.
    for (name, mut c) in readers(&fifo, dir.path()) {
        let o = output_within(&mut c, Duration::from_secs(20));
        refused(
            name,
            &o,
            &format!(
                "cannot read {}: it is a FIFO (named pipe), not a regular file",
                fifo.display()
            ),
        );
    }
    assert!(!dir.path().join("out.fw").exists());
}

#[test]
fn a_character_device_input_is_refused_unread() {
    // A /dev/zero (char 1:5) of our own: the old binary read it until memory ran out.
    let dir = tempfile::tempdir().unwrap();
    let zero = dir.path().join("zero");
    let o = Command::new("mknod")
        .arg(&zero)
        .args(["c", "1", "5"])
        .output()
        .unwrap();
    assert!(o.status.success(), "mknod: {o:?}");
    for (name, mut c) in readers(&zero, dir.path()) {
        let o = output_within(&mut c, Duration::from_secs(20));
        refused(name, &o, "it is a character device, not a regular file");
    }
}

#[test]
fn a_huge_input_is_refused_quickly_naming_its_size_and_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    // Sparse: no disk used, and reading it whole would take 2 GiB of memory.
    for (len, size) in [
        (2u64 << 30, "2147483648 bytes"),
        ((256 << 20) + 1, "268435457 bytes"),
    ] {
        let big = dir.path().join("big.o");
        std::fs::File::create(&big).unwrap().set_len(len).unwrap();
        for (name, mut c) in readers(&big, dir.path()) {
            let start = Instant::now();
            let o = output_within(&mut c, Duration::from_secs(60));
            refused(
                name,
                &o,
                &format!(
                    "{} is {size}: larger than any input vpe-migrate accepts (268435456 bytes, 256 MiB)",
                    big.display()
                ),
            );
            // Refused from the size, not after reading: well under the time to read it.
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{name}: {:?}",
                start.elapsed()
            );
        }
    }
}
