//! Issue 13, memory bombs through a mounted `vpe1`: a ~64 KB object declaring a 255 MiB
//! `.bss` once took the daemon to ~1 GB RSS. Now the default loaded-memory limit refuses it
//! with the converter's message, and with `--max-mem` raised it loads without the `.bss`
//! ever becoming bytes. The daemon's peak RSS (VmHWM) stays small either way.

mod support;

use support::*;
use vpe::elf::Endian;
use vpe::synth;

fn bomb() -> Vec<u8> {
    let opts = synth::Options {
        size: 64 * 1024,
        endian: Endian::Big,
        seed: 5,
    };
    synth::generate_with_extra_bss(&opts, 255 << 20)
}

/// Peak resident set of `pid`, in KiB.
fn vm_hwm(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Far below what one copy of the `.bss` would take.
const HWM_BOUND_KIB: u64 = 64 * 1024;

#[test]
fn a_255_mib_bss_is_refused_by_the_default_limit() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&[]);
    write_file(&d.path("vpe1"), &bomb()).unwrap();
    let st = d.wait_loads(1);
    assert_eq!(Daemon::count(&st, "loads_failed: "), 1, "{st}");
    let last = st
        .lines()
        .find_map(|l| l.strip_prefix("last_error: "))
        .unwrap_or_default();
    assert!(
        last.contains(" .bss (0x") && last.contains("over the limit of 0x1000000 bytes"),
        "{st}"
    );
    let hwm = vm_hwm(d.pid());
    assert!(hwm < HWM_BOUND_KIB, "peak RSS {hwm} KiB");
}

#[test]
fn with_max_mem_raised_it_converts_without_materialising_the_bss() {
    if !can_mount() {
        return;
    }
    let d = Daemon::start(&["--max-mem", "512M"]);
    write_file(&d.path("vpe1"), &bomb()).unwrap();
    let st = d.wait_loads(1);
    // Converted and installed; the emulated VPE (like the board) cannot map 256 carveouts with
    // its 16 TLB entries, so the start is what fails, naming the count.
    assert!(
        st.contains("last_error_phase: start\n"),
        "{st}\n{}",
        d.log()
    );
    assert!(st.contains("wired TLB entries"), "{st}");
    let hwm = vm_hwm(d.pid());
    assert!(hwm < HWM_BOUND_KIB, "peak RSS {hwm} KiB");
    eprintln!("daemon peak RSS after loading a 255 MiB .bss: {hwm} KiB");
}
