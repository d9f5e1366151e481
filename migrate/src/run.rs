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
