//! What `vpe-migrate` does with what is already at an output path, through the binary: only
//! a regular file is ever replaced (keeping its mode); a device, FIFO, socket, directory or
//! symbolic link there is refused with one clear line and left exactly as it was.

use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod common;

use common::{bin, fixture};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn first_line(o: &Output) -> String {
    stderr(o).lines().next().unwrap_or_default().to_string()
}

fn convert(new: &Path) -> Output {
    bin()
        .arg(fixture("hello.be.o"))
        .arg(new)
        .output()
        .expect("run vpe-migrate")
}

/// Names in `dir`: nothing but what the test put there (no temp file left either).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

fn refused(o: &Output, expect: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let line = first_line(o);
    assert!(line.starts_with("error: "), "{line}");
    assert!(line.contains(expect), "expected `{expect}` in: {line}");
    assert_eq!(stderr(o).lines().count(), 1, "one line: {}", stderr(o));
    assert!(o.stdout.is_empty());
}

fn mknod(path: &Path, kind: &str, major_minor: Option<(u32, u32)>) {
    let mut c = Command::new("mknod");
    c.arg(path).arg(kind);
    if let Some((ma, mi)) = major_minor {
        c.arg(ma.to_string()).arg(mi.to_string());
    }
    let o = c.output().expect("mknod");
    assert!(o.status.success(), "mknod: {o:?}");
}

#[test]
fn a_device_node_at_new_is_never_replaced() {
    // The /dev/null of the report, made here (char 1:3) rather than touching the real one.
    let dir = tempfile::tempdir().unwrap();
    let null = dir.path().join("null");
    mknod(&null, "c", Some((1, 3)));
    let before = std::fs::symlink_metadata(&null).unwrap();
    refused(
        &convert(&null),
        &format!(
            "refusing to replace {}: it is a character device, not a regular file",
            null.display()
        ),
    );
    let after = std::fs::symlink_metadata(&null).unwrap();
    assert!(after.file_type().is_char_device());
    assert_eq!(
        (after.ino(), after.rdev()),
        (before.ino(), before.rdev()),
        "the same node"
    );
    assert_eq!(names(dir.path()), ["null"], "no temp file left");

    // A block device too (7:0, a loop device number; the node is never opened).
    let blk = dir.path().join("blk");
    mknod(&blk, "b", Some((7, 0)));
    refused(&convert(&blk), "it is a block device, not a regular file");
    assert!(std::fs::symlink_metadata(&blk)
        .unwrap()
        .file_type()
        .is_block_device());
}

#[test]
fn a_fifo_socket_or_directory_at_new_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("fifo");
    mknod(&fifo, "p", None);
    refused(
        &convert(&fifo),
        "it is a FIFO (named pipe), not a regular file",
    );
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());

    let sock = dir.path().join("sock");
    let _l = std::os::unix::net::UnixListener::bind(&sock).unwrap();
    refused(&convert(&sock), "it is a socket, not a regular file");
    assert!(std::fs::symlink_metadata(&sock)
        .unwrap()
        .file_type()
        .is_socket());

    let sub = dir.path().join("sub");
    std::fs::create_dir(&sub).unwrap();
    refused(
        &convert(&sub),
        "it is a directory; give the name of the file",
    );
    assert!(names(&sub).is_empty());
}

#[test]
fn a_directory_given_as_new_is_named_as_one() {
    let dir = tempfile::tempdir().unwrap();
    // `vpe-migrate x .` said "Device or resource busy", `x dir/` "Not a directory".
    let o = bin()
        .current_dir(dir.path())
        .arg(fixture("hello.be.o"))
        .arg(".")
        .output()
        .unwrap();
    refused(&o, "cannot write .: it is a directory");
    for new in ["sub/", "missing/"] {
        std::fs::create_dir_all(dir.path().join("sub")).unwrap();
        let o = bin()
            .current_dir(dir.path())
            .arg(fixture("hello.be.o"))
            .arg(new)
            .output()
            .unwrap();
        refused(&o, &format!("cannot write {new}: it is a directory"));
    }
    assert_eq!(names(dir.path()), ["sub"]);
    // A missing directory is named as such, and nothing is created.
    let o = convert(&dir.path().join("nope/x.fw"));
    refused(
        &o,
        &format!(
            "its directory {} does not exist",
            dir.path().join("nope").display()
        ),
    );
}

#[test]
fn a_symlink_at_new_is_refused_and_neither_it_nor_its_target_change() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target.fw");
    std::fs::write(&target, b"keep me").unwrap();
    let link = dir.path().join("link.fw");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    refused(
        &convert(&link),
        &format!(
            "refusing to write {}: it is a symbolic link (to {})",
            link.display(),
            target.display()
        ),
    );
    assert_eq!(std::fs::read_link(&link).unwrap(), target);
    assert_eq!(std::fs::read(&target).unwrap(), b"keep me");
    // A dangling link is not followed either (it would create its target).
    let dangling = dir.path().join("dangling.fw");
    let nowhere = dir.path().join("nowhere");
    std::os::unix::fs::symlink(&nowhere, &dangling).unwrap();
    refused(&convert(&dangling), "it is a symbolic link");
    assert!(!nowhere.exists());
    assert_eq!(names(dir.path()), ["dangling.fw", "link.fw", "target.fw"]);
}

#[test]
fn a_regular_file_at_new_is_replaced_keeping_its_mode() {
    let dir = tempfile::tempdir().unwrap();
    for mode in [0o600, 0o640, 0o755] {
        let new = dir.path().join(format!("fw.{mode:o}"));
        std::fs::write(&new, b"old firmware").unwrap();
        std::fs::set_permissions(&new, std::fs::Permissions::from_mode(mode)).unwrap();
        let o = convert(&new);
        assert!(o.status.success(), "{}", stderr(&o));
        let m = std::fs::metadata(&new).unwrap();
        assert_eq!(m.mode() & 0o7777, mode, "mode of the replaced file");
        assert_ne!(std::fs::read(&new).unwrap(), b"old firmware");
    }
    // A new file is 0644 whatever the umask.
    let new = dir.path().join("fresh.fw");
    let o = convert(&new);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::metadata(&new).unwrap().mode() & 0o7777, 0o644);
}

#[test]
fn man_refuses_a_file_for_dir_and_a_fifo_for_the_page() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    // Was: "File exists (os error 17)".
    let o = bin().arg("man").arg(&file).output().unwrap();
    refused(
        &o,
        &format!("{} is a regular file, not a directory", file.display()),
    );
    let fifo = dir.path().join("vpe-migrate.1");
    mknod(&fifo, "p", None);
    let o = bin().arg("man").arg(dir.path()).output().unwrap();
    refused(&o, "it is a FIFO (named pipe), not a regular file");
    assert!(std::fs::symlink_metadata(&fifo)
        .unwrap()
        .file_type()
        .is_fifo());
}

#[test]
fn gen_synth_never_writes_into_a_device() {
    let dir = tempfile::tempdir().unwrap();
    let null = dir.path().join("null");
    mknod(&null, "c", Some((1, 3)));
    let o = bin()
        .args(["gen-synth", "--size", "4K"])
        .arg(&null)
        .output()
        .unwrap();
    refused(&o, "it is a character device, not a regular file");
}

struct Umount(PathBuf);
impl Drop for Umount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_write_error_after_warnings_still_says_error_first() {
    // A full file system: the conversion works (with a warning), the write fails.
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("mnt");
    std::fs::create_dir(&mnt).unwrap();
    let o = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=16k", "tmpfs"])
        .arg(&mnt)
        .output()
        .expect("mount");
    assert!(o.status.success(), "mount tmpfs (needs root): {o:?}");
    let _u = Umount(mnt.clone());
    // Fill it.
    let mut fill = std::fs::File::create(mnt.join("fill")).unwrap();
    let chunk = vec![0u8; 4096];
    while std::io::Write::write_all(&mut fill, &chunk).is_ok() {}
    drop(fill);
    let new = mnt.join("x.fw");
    let o = bin()
        .arg(fixture("no_shared.be.o"))
        .arg(&new)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let e = stderr(&o);
    let mut lines = e.lines();
    let first = lines.next().unwrap_or_default();
    assert!(
        first.starts_with(&format!("error: cannot write {}: ", new.display())),
        "{e}"
    );
    assert!(!first.contains(".vpe-migrate."), "no temp name: {first}");
    assert!(
        lines
            .next()
            .unwrap_or_default()
            .starts_with("warning: VPE loader: program does not contain vpe_shared symbol."),
        "{e}"
    );
    assert_eq!(names(&mnt), ["fill"], "no output, no temp file");
}
