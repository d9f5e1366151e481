//! `vpe-migrate run`: a firmware (or anything `convert` accepts, converted in memory) on the
//! emulated MIPS core.

use crate::cli::RunArgs;
use crate::{read, CliError};

#[cfg(feature = "emulate")]
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    use std::io::Write as _;
    use std::sync::Arc;
    use std::time::Duration;

    use vpe::convert::{self, Format};
    use vpe::emu::{Config, CpuState, Emu, Mode};
    use vpe::rproc::check;

    let bytes = read(&args.file)?;
    let loaded = if convert::sniff(&bytes) == Format::Firmware {
        check::check(&bytes, &check::Options::default())?
    } else {
        convert::convert_owned(bytes, &args.flags.options()?)?.loaded
    };
    let mode = if args.bare { Mode::Bare } else { Mode::Hosted };
    let output: vpe::emu::Output = Arc::new(|fd, b: &[u8]| {
        // The program's own bytes, unchanged and unbuffered (as qemu-user writes them).
        let _ = if fd == 2 {
            let mut e = std::io::stderr().lock();
            e.write_all(b).and_then(|()| e.flush())
        } else {
            let mut o = std::io::stdout().lock();
            o.write_all(b).and_then(|()| o.flush())
        };
    });
    let mut config = Config::new(mode, output);
    if let Some(share) = args.cpu_share {
        config.cpu_share = share;
    }
    let timeout = Duration::try_from_secs_f64(args.timeout.max(0.0)).unwrap_or(Duration::MAX);
    let mut emu = Emu::start(&loaded, config)?;
    let state = emu.wait(timeout);
    emu.stop();
    let state = if state == CpuState::Running {
        state
    } else {
        emu.state()
    };
    for (i, (name, da, _)) in emu.traces().iter().enumerate() {
        if let Some(Ok(t)) = emu.read_trace(i) {
            if !t.is_empty() {
                let mut e = std::io::stderr().lock();
                let _ = writeln!(e, "trace{i} ({name} at {da:#010x}):");
                let _ = e.write_all(&t);
                if !t.ends_with(b"\n") {
                    let _ = writeln!(e);
                }
            }
        }
    }
    match state {
        CpuState::Halted { code } => Err(CliError::ProgramExit {
            code: (code & 0xff) as u8,
        })
        .or_else(|e| if code == 0 { Ok(()) } else { Err(e) }),
        CpuState::Faulted { fault } => Err(CliError::Fault {
            summary: fault.summary(),
            regs: fault.regs.render().trim_end().to_string(),
        }),
        // Still running at the timeout (or stopped by it): not an error.
        CpuState::Running | CpuState::Stopped => Ok(()),
    }
}

#[cfg(not(feature = "emulate"))]
pub fn run(args: &RunArgs) -> Result<(), CliError> {
    let _ = read(&args.file)?;
    Err(CliError::Vpe(vpe::Error::Emulator {
        message:
            "vpe-migrate was built without the emulator (feature `emulate`): `run` is not available"
                .into(),
    }))
}

/// `verify --run`: the legacy image and the firmware on the emulated core, hosted; equal
/// output and exit status, or an error saying what differs.
#[cfg(feature = "emulate")]
pub fn verify_run(
    legacy: &vpe::Image,
    loaded: &vpe::rproc::check::Loaded,
    ntcs: u32,
    memsize: u32,
    timeout: f64,
    new: &std::path::Path,
    old: &std::path::Path,
) -> Result<(), CliError> {
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use vpe::emu::{Config, CpuState, Emu, Mode};
    use vpe::rproc::table::{Carveout, Resource, ResourceTable};

    let timeout = Duration::try_from_secs_f64(timeout.max(0.0)).unwrap_or(Duration::MAX);
    let go = |image: &vpe::Image, table: &ResourceTable, regs: Vec<(u32, u32)>| {
        let out = Arc::new(Mutex::new(Vec::<u8>::new()));
        let sink = out.clone();
        let mut config = Config::new(
            Mode::Hosted,
            Arc::new(move |_, b: &[u8]| {
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .extend_from_slice(b)
            }),
        );
        config.cpu_share = 100;
        config.entry_regs = regs;
        let mut emu = Emu::start_image(image, table, config)?;
        let st = emu.wait(timeout);
        emu.stop();
        let text = out.lock().unwrap_or_else(|e| e.into_inner()).clone();
        Ok::<_, vpe::Error>((text, st))
    };
    // The legacy loader's memory: one block over the image (vpe.c's alloc_progmem / the
    // ET_EXEC addresses), mapped as the converter's carveouts would be.
    let (lo, hi) = legacy.span().ok_or_else(|| vpe::Error::Emulator {
        message: format!("{}: the legacy image is empty", old.display()),
    })?;
    let da = lo & !0x1fff;
    let len = ((hi - u64::from(da)).div_ceil(0x2000) * 0x2000) as u32;
    let table = ResourceTable {
        ver: 1,
        entries: vec![Resource::Carveout(Carveout {
            da,
            pa: 0,
            len,
            flags: 0,
            reserved: 0,
            name: "progmem".into(),
        })],
    };
    // vpe_run: $a2 = ntcs, $a3 = memsize, entered at __start.
    let (old_out, old_st) = go(legacy, &table, vec![(6, ntcs), (7, memsize)])?;
    let (new_out, new_st) = go(&loaded.image, &loaded.table, Vec::new())?;
    let show = |st: &CpuState| match st {
        CpuState::Faulted { fault } => format!("fault: {}", fault.summary()),
        other => other.label(),
    };
    if old_out != new_out || old_st != new_st {
        return Err(CliError::NotEquivalent {
            path: new.to_owned(),
            old: old.to_owned(),
            summary: format!(
                "the runs differ: legacy printed {} bytes and ended {}, the firmware printed {} bytes and ended {}{}",
                old_out.len(),
                show(&old_st),
                new_out.len(),
                show(&new_st),
                match old_out.iter().zip(&new_out).position(|(a, b)| a != b) {
                    Some(i) => format!(" (output differs from byte {i})"),
                    None => String::new(),
                }
            ),
        });
    }
    eprintln!(
        "runs agree: {} bytes of output, {}",
        new_out.len(),
        show(&new_st)
    );
    Ok(())
}

#[cfg(not(feature = "emulate"))]
pub fn verify_run(
    _legacy: &vpe::Image,
    _loaded: &vpe::rproc::check::Loaded,
    _ntcs: u32,
    _memsize: u32,
    _timeout: f64,
    _new: &std::path::Path,
    _old: &std::path::Path,
) -> Result<(), CliError> {
    Err(CliError::Vpe(vpe::Error::Emulator {
        message: "vpe-migrate was built without the emulator (feature `emulate`): `verify --run` is not available".into(),
    }))
}
