//! The hostile corpus through a mounted `vpe1`: every malformed file is written with one
//! open/write/close; the daemon keeps running, counts a failed load and `status` shows the
//! converter's one-line error (for the few the legacy kernel accepted too, a load).

mod support;

use support::*;
use vpe::convert;
use vpe::image::RelocSemantics;

#[test]
fn every_hostile_input_fails_cleanly_through_the_mount() {
    if !can_mount() {
        return;
    }
    let mut d = Daemon::start(&[]);
    let opts = convert::Options {
        semantics: RelocSemantics::Legacy,
        ..Default::default()
    };
    let mut failures = Vec::new();
    let mut failed = 0;
    for (i, (name, bytes)) in hostile_cases().into_iter().enumerate() {
        let before_failed = Daemon::count(&d.status(), "loads_failed: ");
        // close() returns 0 as it did with the old kernel (no --errors-on-close).
        write_file(&d.path("vpe1"), &bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        let st = d.wait_loads(i as u64 + 1);
        assert!(d.alive(), "{name}: the daemon died\n{}", d.log());
        let last = st
            .lines()
            .find_map(|l| l.strip_prefix("last_error: "))
            .unwrap_or("-")
            .to_string();
        match convert::convert(&bytes, &opts) {
            Ok(_) => {
                // Started: the emulated core runs it, and a hostile image may well crash at
                // once (remoteproc's `crashed`, with the fault line); either way it loaded.
                let started = st.contains("state: running\n")
                    || (st.contains("state: crashed\n") && st.contains("\nfault: "));
                if !started || !st.contains("last_result: ok\n") {
                    failures.push(format!(
                        "{name}: accepted by the library, not started:\n{st}"
                    ));
                }
            }
            Err(e) => {
                failed += 1;
                if Daemon::count(&st, "loads_failed: ") != before_failed + 1 {
                    failures.push(format!("{name}: not counted as failed:\n{st}"));
                }
                if st.contains("state: running\n") {
                    failures.push(format!("{name}: running after a failed load"));
                }
                let e = e.to_string();
                // Non-ELF data is refused by the device itself (vpe_elfload's first check)
                // with the legacy message and what it received.
                let ok = if bytes.starts_with(b"\x7fELF") {
                    last == e
                } else {
                    last.starts_with("VPE loader: only elf files are supported")
                };
                if !ok {
                    failures.push(format!("{name}:\n  status   {last}\n  expected {e}"));
                }
            }
        }
    }
    assert!(failed >= 60, "only {failed} failed loads");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(d.alive());
}
