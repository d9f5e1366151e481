//! `vpe-migrate batch` must not lose data and must account for every entry of IN_DIR:
//! `--report` paths are checked before anything is converted, output names come from the raw
//! file names (non-UTF-8 included) and the report names them escaped, and entries that are
//! not converted (links to non-regular files, loops, FIFOs, sockets, directories, devices)
//! are listed with why; links to regular files are followed.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

mod common;

use common::{bin, fixture, output_within};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn sha(p: &Path) -> String {
    vpe::convert::sha256_hex(&std::fs::read(p).unwrap())
}

/// Every name under `dir` with the sha256 of regular files (to prove nothing changed).
fn snapshot(dir: &Path) -> Vec<(PathBuf, String)> {
    let mut v: Vec<(PathBuf, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let p = e.unwrap().path();
            let s = if std::fs::symlink_metadata(&p).unwrap().is_file() {
                sha(&p)
            } else {
                String::new()
            };
            (p, s)
        })
        .collect();
    v.sort();
    v
}

fn batch(in_dir: &Path, out_dir: &Path, reports: &[&Path]) -> Output {
    let mut c = bin();
    c.arg("batch").arg(in_dir).arg(out_dir);
    for r in reports {
        c.arg("--report").arg(r);
    }
    output_within(&mut c, Duration::from_secs(60))
}

/// IN_DIR with two images, OUT_DIR not created yet.
fn setup() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let inp = tmp.path().join("in");
    std::fs::create_dir(&inp).unwrap();
    std::fs::copy(fixture("hello.be.o"), inp.join("hello.be.o")).unwrap();
    std::fs::copy(fixture("features.le.o"), inp.join("features.le.o")).unwrap();
    let out = tmp.path().join("out");
    (tmp, inp, out)
}

fn refused_before_converting(o: &Output, out: &Path, expect: &str) {
    assert_eq!(o.status.code(), Some(1), "{}", stderr(o));
    let first = stderr(o).lines().next().unwrap_or_default().to_string();
    assert!(first.starts_with("error: --report "), "{first}");
    assert!(first.contains(expect), "expected `{expect}` in: {first}");
    assert!(first.ends_with("; nothing was converted"), "{first}");
    let left = if out.exists() {
        std::fs::read_dir(out).unwrap().count()
    } else {
        0
    };
    assert_eq!(left, 0, "no firmware written");
}

#[test]
fn a_report_path_over_an_input_or_an_output_is_refused_before_converting() {
    let (tmp, inp, out) = setup();
    let before = snapshot(&inp);
    // The input itself: the old code converted everything and then wrote the report over it.
    let o = batch(&inp, &out, &[&inp.join("hello.be.o")]);
    refused_before_converting(&o, &out, "is inside IN_DIR");
    // Anywhere inside IN_DIR, even a new name or a subdirectory.
    std::fs::create_dir(inp.join("sub")).unwrap();
    let o = batch(&inp, &out, &[&inp.join("sub/r.md")]);
    refused_before_converting(&o, &out, "is inside IN_DIR");
    std::fs::remove_dir(inp.join("sub")).unwrap();
    assert_eq!(snapshot(&inp), before);

    // Where a firmware goes: OUT_DIR not created yet, then existing with that firmware.
    let o = batch(&inp, &out, &[&out.join("hello.be.o.fw")]);
    refused_before_converting(&o, &out, "it is where the firmware of hello.be.o goes");
    assert!(!out.exists(), "OUT_DIR not even created");
    std::fs::create_dir(&out).unwrap();
    let o = batch(&inp, &out, &[&out.join("features.le.o.fw")]);
    refused_before_converting(&o, &out, "it is where the firmware of features.le.o goes");

    // An input reached through a link in IN_DIR: its target, outside IN_DIR.
    let elsewhere = tmp.path().join("elsewhere.o");
    std::fs::copy(fixture("hello.le.o"), &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, inp.join("linked.o")).unwrap();
    let o = batch(&inp, &out, &[&elsewhere]);
    refused_before_converting(&o, &out, "it is the input linked.o");
    assert_eq!(
        std::fs::read(&elsewhere).unwrap(),
        std::fs::read(fixture("hello.le.o")).unwrap()
    );

    // A missing directory, the same report twice, a FIFO.
    let o = batch(&inp, &out, &[&tmp.path().join("nope/r.md")]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).starts_with(&format!(
        "error: cannot write {}: its directory {} does not exist",
        tmp.path().join("nope/r.md").display(),
        tmp.path().join("nope").display()
    )));
    let r = tmp.path().join("r.json");
    let o = batch(&inp, &out, &[&r, &tmp.path().join("./r.json")]);
    refused_before_converting(&o, &out, "it is given twice");
    let fifo = tmp.path().join("fifo.md");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    let o = batch(&inp, &out, &[&fifo]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("it is a FIFO (named pipe), not a regular file"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 0);

    // And a good one, inside OUT_DIR, works.
    let o = batch(&inp, &out, &[&out.join("report.md")]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(out.join("report.md").exists());
}

#[test]
fn names_that_differ_only_in_non_utf8_bytes_give_two_outputs() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = tmp.path().join("in");
    let out = tmp.path().join("out");
    std::fs::create_dir(&inp).unwrap();
    // Both were "img\u{fffd}.o" through to_string_lossy: one output, two report lines.
    let a = inp.join(OsStr::from_bytes(b"img\xff.o"));
    let b = inp.join(OsStr::from_bytes(b"img\xfe.o"));
    std::fs::copy(fixture("hello.be.o"), &a).unwrap();
    std::fs::copy(fixture("features.le.o"), &b).unwrap();
    // A backslash and a newline in a name are escaped too, distinctly.
    let c = inp.join("back\\xff.o");
    std::fs::copy(fixture("hello.le.o"), &c).unwrap();
    let d = inp.join("new\nline.o");
    std::fs::copy(fixture("hello.le.o"), &d).unwrap();
    let json = tmp.path().join("r.json");
    let md = tmp.path().join("r.md");
    let o = batch(&inp, &out, &[&json, &md]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));

    // Each output is the conversion of its own input.
    let single = |input: &Path| {
        let fw = tmp.path().join("single.fw");
        let o = bin().arg(input).arg(&fw).output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        sha(&fw)
    };
    for i in [&a, &b, &c, &d] {
        let mut name = i.file_name().unwrap().to_owned();
        name.push(".fw");
        assert_eq!(sha(&out.join(&name)), single(i), "{name:?}");
    }
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 4);

    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let files: Vec<(&str, &str)> = j["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["file"].as_str().unwrap(), e["output"].as_str().unwrap()))
        .collect();
    assert_eq!(
        files,
        [
            ("back\\\\xff.o", "back\\\\xff.o.fw"),
            ("img\\xfe.o", "img\\xfe.o.fw"),
            ("img\\xff.o", "img\\xff.o.fw"),
            ("new\\x0aline.o", "new\\x0aline.o.fw"),
        ]
    );
    assert_eq!(j["totals"]["converted"], 4);
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains("\n## img\\xff.o\n") && text.contains("\n## img\\xfe.o\n"));
    assert!(!text.contains('\u{fffd}'), "{text}");
}

#[test]
fn every_entry_not_converted_is_listed_with_why_and_links_to_files_are_followed() {
    let tmp = tempfile::tempdir().unwrap();
    let inp = tmp.path().join("in");
    let out = tmp.path().join("out");
    std::fs::create_dir(&inp).unwrap();
    std::fs::copy(fixture("hello.be.o"), inp.join("plain.o")).unwrap();
    let target = tmp.path().join("features.le.o");
    std::fs::copy(fixture("features.le.o"), &target).unwrap();
    let ln = |to: &Path, name: &str| std::os::unix::fs::symlink(to, inp.join(name)).unwrap();
    ln(&target, "link-to-file.o");
    ln(Path::new("plain.o"), "relative-link.o");
    ln(tmp.path(), "link-to-dir");
    ln(&tmp.path().join("missing.o"), "dangling.o");
    ln(Path::new("loop-b"), "loop-a");
    ln(Path::new("loop-a"), "loop-b");
    ln(Path::new("self"), "self");
    std::fs::create_dir(inp.join("subdir")).unwrap();
    assert!(Command::new("mkfifo")
        .arg(inp.join("fifo.o"))
        .status()
        .unwrap()
        .success());
    ln(&inp.join("fifo.o"), "link-to-fifo.o");
    let _sock = std::os::unix::net::UnixListener::bind(inp.join("sock.o")).unwrap();
    assert!(Command::new("mknod")
        .arg(inp.join("zero.o"))
        .args(["c", "1", "5"])
        .status()
        .unwrap()
        .success());
    let json = tmp.path().join("r.json");
    let md = tmp.path().join("r.md");
    // A FIFO must not block the run (it is never opened).
    let o = batch(&inp, &out, &[&json, &md]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("3 converted, 0 need a decision, 0 failed, 10 skipped (of 13 files)"),
        "{}",
        stderr(&o)
    );
    let j: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let rows: Vec<String> = j["images"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            format!(
                "{} | {} | {} | {}",
                e["file"].as_str().unwrap(),
                e["kind"].as_str().unwrap(),
                e["outcome"].as_str().unwrap(),
                e["error"]
                    .as_str()
                    .unwrap_or("-")
                    .replace(&tmp.path().display().to_string(), "TMP")
            )
        })
        .collect();
    let expect = [
        "dangling.o | dangling symbolic link | skipped | a symbolic link to `TMP/missing.o`, which does not exist",
        "fifo.o | FIFO (named pipe) | skipped | a FIFO (named pipe): only regular files are read (IN_DIR is not searched recursively)",
        "link-to-dir | symbolic link to a directory | skipped | a symbolic link to a directory (`TMP`): only regular files are read",
        "link-to-fifo.o | symbolic link to a FIFO (named pipe) | skipped | a symbolic link to a FIFO (named pipe) (`TMP/in/fifo.o`): only regular files are read",
        "link-to-file.o | ET_REL | converted | -",
        "loop-a | symbolic link loop | skipped | a symbolic link that loops (`loop-b`, too many levels of links): not followed",
        "loop-b | symbolic link loop | skipped | a symbolic link that loops (`loop-a`, too many levels of links): not followed",
        "plain.o | ET_REL | converted | -",
        "relative-link.o | ET_REL | converted | -",
        "self | symbolic link loop | skipped | a symbolic link that loops (`self`, too many levels of links): not followed",
        "sock.o | socket | skipped | a socket: only regular files are read (IN_DIR is not searched recursively)",
        "subdir | directory | skipped | a directory: only regular files are read (IN_DIR is not searched recursively)",
        "zero.o | character device | skipped | a character device: only regular files are read (IN_DIR is not searched recursively)",
    ];
    assert_eq!(rows, expect, "{rows:#?}");
    let linked = &j["images"][4];
    assert_eq!(linked["symlink_to"], target.display().to_string());
    assert_eq!(sha(&out.join("link-to-file.o.fw")), {
        let fw = tmp.path().join("single.fw");
        assert!(bin().arg(&target).arg(&fw).status().unwrap().success());
        sha(&fw)
    });
    let text = std::fs::read_to_string(&md).unwrap();
    assert!(text.contains(&format!("- symbolic link to `{}`", target.display())));
    assert!(text.contains("| fifo.o | FIFO (named pipe) | skipped | 0 | - |"));
}

#[test]
fn in_dir_or_out_dir_that_is_a_file_is_named() {
    let (tmp, inp, _) = setup();
    let file = tmp.path().join("file");
    std::fs::write(&file, b"x").unwrap();
    for (i, o) in [(&file, tmp.path().join("out")), (&inp, file.clone())] {
        let r = batch(i, &o, &[]);
        assert_eq!(r.status.code(), Some(1), "{}", stderr(&r));
        assert_eq!(
            stderr(&r).lines().next().unwrap_or_default(),
            format!(
                "error: {} is a regular file, not a directory",
                file.display()
            )
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"x");
}
