//! Emulated-core figures for docs/PERFORMANCE.md (not timed tests): instructions per second
//! on a load/store loop, a fixture's run time, boot cost of a 256 KiB image, and the host CPU
//! a spinning firmware takes at the default throttle. `cargo bench --bench emu`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vpe::emu::{Config, CpuState, Emu, Mode};
use vpe::rproc::check;
use vpe::spmem::SpMemory;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/bin/{name}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn quiet() -> vpe::emu::Output {
    Arc::new(|_, _| {})
}

/// Process CPU time (user + system).
fn cpu_time() -> Duration {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// spin_count of rproc_spin (mips-linux-gnu-nm); its loop is lw, addiu, b, sw: 4 per count.
const SPIN_COUNT: u32 = 0x1000_0ab0;

fn main() {
    let spin = check::check(&fixture("rproc_spin.be.fw"), &check::Options::default()).unwrap();

    // 1. Load/store loop, unthrottled.
    let mut c = Config::new(Mode::Bare, quiet());
    c.cpu_share = 100;
    let mut emu = Emu::start(&spin, c).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let mut b = [0u8; 4];
    emu.memory().read(SPIN_COUNT, &mut b).unwrap();
    let busy = emu.busy();
    emu.stop();
    let n = u64::from(u32::from_be_bytes(b));
    println!(
        "load/store loop: {:.0} M instructions/s ({} iterations in {:?} of emulation)",
        (4 * n) as f64 / busy.as_secs_f64() / 1e6,
        n,
        busy
    );

    // 2. A fixture, hosted: wall time from start to exit (boot included).
    let opts = vpe::convert::Options {
        semantics: vpe::image::RelocSemantics::Legacy,
        ..Default::default()
    };
    let feat = vpe::convert::convert(&fixture("features.be.o"), &opts)
        .unwrap()
        .loaded;
    let runs = 50;
    let t = Instant::now();
    for _ in 0..runs {
        let c = Config::new(Mode::Hosted, quiet());
        let emu = Emu::start(&feat, c).unwrap();
        assert!(matches!(
            emu.wait(Duration::from_secs(10)),
            CpuState::Halted { .. }
        ));
    }
    println!(
        "features fixture: {:?} per run (boot + run to exit)",
        t.elapsed() / runs
    );

    // 3. Boot cost (map + load + boot stub) of a 256 KiB image vs today's check-only start.
    let obj = vpe::synth::generate(&vpe::synth::Options {
        size: 256 * 1024,
        endian: vpe::elf::Endian::Big,
        seed: 1,
    });
    let conv = vpe::convert::convert(&obj, &opts).unwrap();
    let runs = 50;
    let t = Instant::now();
    for _ in 0..runs {
        let _ = check::check(&conv.firmware, &check::Options::default()).unwrap();
    }
    let check_only = t.elapsed() / runs;
    let t = Instant::now();
    for _ in 0..runs {
        let mut c = Config::new(Mode::Bare, quiet());
        c.cpu_share = 100;
        let mut emu = Emu::start(&conv.loaded, c).unwrap();
        emu.stop();
    }
    let boot = t.elapsed() / runs;
    println!(
        "256 KiB image ({} bytes of firmware): check {check_only:?}, emulated boot + stop {boot:?} more",
        conv.firmware.len()
    );

    // 4. Host CPU of a spinning firmware at the default throttle.
    let c = Config::new(Mode::Bare, quiet());
    let share = c.cpu_share;
    let cpu0 = cpu_time();
    let t = Instant::now();
    let mut emu = Emu::start(&spin, c).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    emu.stop();
    let used = cpu_time() - cpu0;
    println!(
        "spinning firmware at the default {share} % share: {:.1} % of one host core",
        100.0 * used.as_secs_f64() / t.elapsed().as_secs_f64()
    );
}
