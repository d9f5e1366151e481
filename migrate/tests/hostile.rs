//! Every file of the hostile corpus (`tests/hostile/cases`, see `tests/hostile/gen.py`) fed
//! to the real `vpe-migrate` binary: a rejected one exits 1 with `error: <the snapshotted
//! one-line error>` first, and leaves no output file and no temp file; the few the legacy
//! kernel accepted too (`accepted` in the snapshot) convert with exit 0.

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `name -> expected line` from the library test's snapshot.
fn expected() -> Vec<(String, String)> {
    let snap = std::fs::read_to_string(root().join("tests/snapshots/hostile__hostile_errors.snap"))
        .expect("hostile snapshot");
    // insta header: `---`, metadata, `---`, then the content.
    let body = snap.splitn(3, "---\n").nth(2).expect("snapshot body");
    body.lines()
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, e) = l.split_once(": ").expect("name: error");
            (n.to_string(), e.to_string())
        })
        .collect()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn every_hostile_input_is_refused_by_the_binary_without_output() {
    let exp = expected();
    let cases = root().join("tests/hostile/cases");
    assert_eq!(
        exp.len(),
        std::fs::read_dir(&cases).unwrap().count(),
        "the snapshot and tests/hostile/cases disagree"
    );
    let mut rejected = 0;
    let mut failures = Vec::new();
    for (name, line) in &exp {
        let out = tempfile::tempdir().unwrap();
        let dst = out.path().join("fw.elf");
        let o = Command::new(env!("CARGO_BIN_EXE_vpe-migrate"))
            .arg(cases.join(format!("{name}.elf")))
            .arg(&dst)
            .output()
            .expect("run vpe-migrate");
        let stderr = String::from_utf8_lossy(&o.stderr);
        let first = stderr.lines().next().unwrap_or_default();
        if line.starts_with("accepted") {
            if o.status.code() != Some(0) || !dst.exists() {
                failures.push(format!("{name}: expected a conversion, got {o:?}"));
            }
            continue;
        }
        rejected += 1;
        if o.status.code() != Some(1) {
            failures.push(format!("{name}: exit {:?}, not 1", o.status.code()));
        }
        if first != format!("error: {line}") {
            failures.push(format!(
                "{name}: first line\n  got      {first}\n  expected error: {line}"
            ));
        }
        let left = entries(out.path());
        if !left.is_empty() {
            failures.push(format!("{name}: left {left:?} behind"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(rejected >= 60, "only {rejected} rejected cases");
}
