//! Soak: 1 000 load cycles (after a warm-up of 1 000) through a real mount, valid and invalid images mixed, from four
//! concurrent writers. The daemon must not leak file descriptors or memory (VmRSS after the
//! run within 10 % of its value after a warm-up), leave no temp file behind, and every valid
//! image must have reached `running` (a load counts as ok only once the processor runs).

mod support;

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use support::*;

const CYCLES: u64 = 1000;
const WRITERS: u64 = 4;
/// Loads before the first measurement: the runtime's worker threads, their malloc arenas and
/// the converter's buffers reach their working size within the first few hundred.
const WARMUP: u64 = 1000;

fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn tree(dir: &Path) -> Vec<String> {
    let mut v = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        v.push(e.file_name().to_string_lossy().into_owned());
    }
    v.sort();
    v
}

/// Run `n` cycles from `WRITERS` threads; cycle `k` writes image `k % images.len()`.
fn run(d: &Daemon, images: &Arc<Vec<(bool, Vec<u8>)>>, from: u64, n: u64, ok: &AtomicU64) {
    let next = Arc::new(AtomicU64::new(from));
    std::thread::scope(|s| {
        for _ in 0..WRITERS {
            let next = next.clone();
            let images = images.clone();
            let vpe1 = d.path("vpe1");
            s.spawn(move || loop {
                let k = next.fetch_add(1, Ordering::SeqCst);
                if k >= from + n {
                    break;
                }
                let (valid, bytes) = &images[(k as usize) % images.len()];
                write_file(&vpe1, bytes).unwrap();
                if *valid {
                    ok.fetch_add(1, Ordering::SeqCst);
                }
            });
        }
    });
}

#[test]
fn a_thousand_loads_leak_nothing() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    let pid = d.pid();
    let mut images: Vec<(bool, Vec<u8>)> =
        ["hello.be.o", "features.le.o", "hello.le.exe", "regs.be.o"]
            .iter()
            .map(|n| (true, fixture_bytes(n)))
            .collect();
    let bad: Vec<(String, Vec<u8>)> = hostile_cases()
        .into_iter()
        .filter(|(n, _)| {
            [
                "random-4k",
                "trunc-shdr-07",
                "reloc-type-003",
                "rela-text",
                "shoff-max",
            ]
            .contains(&n.as_str())
        })
        .collect();
    assert_eq!(bad.len(), 5);
    images.extend(bad.into_iter().map(|(_, b)| (false, b)));
    images.push((false, fixture_bytes("no_start.be.o")));
    let images = Arc::new(images);
    let expected_ok = AtomicU64::new(0);

    run(&d, &images, 0, WARMUP, &expected_ok);
    d.wait_loads(WARMUP);
    let (fds0, rss0) = (fd_count(pid), rss_kb(pid));

    let t = std::time::Instant::now();
    run(&d, &images, WARMUP, CYCLES, &expected_ok);
    let st = d.wait_loads(WARMUP + CYCLES);
    let elapsed = t.elapsed();
    let (fds1, rss1) = (fd_count(pid), rss_kb(pid));
    eprintln!(
        "soak: {CYCLES} loads in {elapsed:?} (after warm-up); fds {fds0} -> {fds1}; VmRSS {rss0} kB -> {rss1} kB"
    );

    assert_eq!(Daemon::loads(&st), WARMUP + CYCLES, "{st}");
    assert_eq!(
        Daemon::count(&st, "loads_ok: "),
        expected_ok.load(Ordering::SeqCst),
        "every valid image reaches running:\n{st}"
    );
    assert!(fds1 <= fds0, "fd leak: {fds0} -> {fds1}");
    assert!(
        rss1 * 10 <= rss0 * 11,
        "VmRSS grew more than 10 %: {rss0} kB -> {rss1} kB"
    );
    // Nothing but what the test itself put there: no temp file in the daemon's directory.
    assert_eq!(tree(d.dir.path()), ["log", "mnt", "notify"]);
    let mut d = d;
    assert!(d.alive());
}
