//! The emulation thread: creates the engine (it is not `Send`), maps the memory, runs the
//! boot stub, enters the firmware, then runs it in slices until it exits, faults or is
//! stopped. A watchdog thread ends each slice with `uc_emu_stop` (unicorn's own timeout
//! thread costs a quarter of a core and loses a stop sent between two runs; the stop flag
//! here is sticky and checked between slices).

use std::sync::atomic::Ordering;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use unicorn_engine::{
    uc_emu_stop, uc_engine, uc_error, Arch, ControlType, Mode as UcMode, Prot, RegisterMIPS,
    Unicorn,
};

use super::decode;
use super::hosted::{self, Outcome};
use super::memory::{Memory, PAGE};
use super::tlb::{self, TLB_ENTRIES};
use super::{Config, CpuState, Fault, Mode, Regs, Shared, IPI_FROM_REMOTE, IPI_TO_REMOTE, SLICE};
use crate::elf::Endian;
use crate::error::{Error, Result};

/// Physical page the boot and fault stubs run from (through KSEG1); mapped only while one
/// runs, so the firmware never sees it.
const STUB_PA: u32 = 0x1fff_0000;
const STUB_LEN: u32 = 0x4000;
const KSEG1: u32 = 0xa000_0000;
/// `until` for the firmware run: an address no MIPS32 code executes (odd: a MIPS16 address
/// the 74Kf cannot fetch), so only a stop or an exception ends a slice. In KSEG0, because
/// unicorn translates `until` when a run stops, and a TLB-mapped one (KSEG2/3, e.g.
/// 0xffffffff) fails that translation and turns every stop into READ_UNMAPPED.
const NEVER: u64 = 0x8000_0001;
/// The translated-code buffer (unicorn reserves 1 GiB of address space otherwise).
const TCG_BUFFER: u32 = 16 << 20;

// QEMU's MIPS exception numbers (target/mips/cpu.h), as the interrupt hook reports them.
const EXCP_ADEL: u32 = 12;
const EXCP_ADES: u32 = 13;
const EXCP_TLBF: u32 = 14;
const EXCP_IBE: u32 = 15;
const EXCP_SYSCALL: u32 = 17;
const EXCP_BREAK: u32 = 18;
const EXCP_CPU: u32 = 19;
const EXCP_RI: u32 = 20;
const EXCP_OVERFLOW: u32 = 21;
const EXCP_TRAP: u32 = 22;
const EXCP_TLBL: u32 = 26;
const EXCP_TLBS: u32 = 27;
const EXCP_DBE: u32 = 28;
const EXCP_TLBXI: u32 = 36;
const EXCP_TLBRI: u32 = 37;

/// MIPS name and meaning of an exception.
fn cause_name(intno: u32) -> (&'static str, &'static str) {
    match intno {
        EXCP_ADEL => ("AdEL", "address error on load or fetch"),
        EXCP_ADES => ("AdES", "address error on store"),
        EXCP_TLBF => ("TLBL", "TLB miss on fetch"),
        EXCP_IBE => ("IBE", "bus error on fetch"),
        EXCP_SYSCALL => ("Sys", "syscall without a handler"),
        EXCP_BREAK => ("Bp", "breakpoint"),
        EXCP_CPU => ("CpU", "coprocessor unusable"),
        EXCP_RI => ("RI", "reserved instruction"),
        EXCP_OVERFLOW => ("Ov", "arithmetic overflow"),
        EXCP_TRAP => ("Tr", "trap"),
        EXCP_TLBL => ("TLBL", "TLB miss on load or fetch: address not mapped"),
        EXCP_TLBS => ("TLBS", "TLB miss on store: address not mapped"),
        EXCP_DBE => ("DBE", "bus error on load or store"),
        EXCP_TLBXI => ("TLBXI", "TLB execute-inhibit"),
        EXCP_TLBRI => ("TLBRI", "TLB read-inhibit"),
        _ => ("exception", "unhandled exception"),
    }
}

/// Why the last slice ended, as the hooks saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    Exit(i32),
    Exception(u32),
    Syscall(u32),
}

struct Data {
    mode: Mode,
    memory: Arc<Memory>,
    output: super::Output,
    /// Start and size of the translation block executing (to find a fault's pc).
    block: (u64, u32),
    event: Option<Event>,
}

fn uc_err(what: &str, e: uc_error) -> Error {
    Error::Emulator {
        message: format!("emulator: {what}: {e:?}"),
    }
}

/// The watchdog's view of the running slice.
struct Slice {
    deadline: Option<Instant>,
    quit: bool,
}

struct Watchdog {
    slice: Mutex<Slice>,
    cv: Condvar,
    /// The engine handle as an integer (the engine lives on the emulation thread; only
    /// `uc_emu_stop` is called from the watchdog, as unicorn's own timeout thread does).
    handle: usize,
}

fn watchdog(w: Arc<Watchdog>) {
    let mut s = w.slice.lock().unwrap_or_else(|e| e.into_inner());
    loop {
        if s.quit {
            return;
        }
        match s.deadline {
            None => s = w.cv.wait(s).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    // SAFETY: the engine outlives this thread (joined before it is closed);
                    // uc_emu_stop only sets flags and kicks the vCPU.
                    unsafe { uc_emu_stop(w.handle as *mut uc_engine) };
                    // A stop that came just before the run began is lost: repeat.
                    s =
                        w.cv.wait_timeout(s, Duration::from_millis(1))
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                } else {
                    s =
                        w.cv.wait_timeout(s, d - now)
                            .unwrap_or_else(|e| e.into_inner())
                            .0;
                }
            }
        }
    }
}

fn read_regs(uc: &Unicorn<Data>) -> Regs {
    let mut gpr = [0u32; 32];
    for (i, g) in gpr.iter_mut().enumerate().skip(1) {
        *g = uc.reg_read(RegisterMIPS::R0 as i32 + i as i32).unwrap_or(0) as u32;
    }
    Regs {
        gpr,
        pc: uc.reg_read(RegisterMIPS::PC).unwrap_or(0) as u32,
        hi: uc.reg_read(RegisterMIPS::HI).unwrap_or(0) as u32,
        lo: uc.reg_read(RegisterMIPS::LO).unwrap_or(0) as u32,
    }
}

fn write_reg(uc: &mut Unicorn<Data>, n: u32, v: u32) -> Result<()> {
    uc.reg_write(RegisterMIPS::R0 as i32 + n as i32, u64::from(v))
        .map_err(|e| uc_err("register write", e))
}

/// Run `words` from the stub page through KSEG1 until its last word.
fn run_stub(uc: &mut Unicorn<Data>, words: &[u32], endian: Endian) -> Result<()> {
    let bytes = tlb::to_bytes(words, endian);
    let len = (bytes.len() as u32).div_ceil(PAGE) * PAGE;
    if len > STUB_LEN {
        return Err(Error::Emulator {
            message: format!("emulator: boot stub of {} bytes is too large", bytes.len()),
        });
    }
    uc.mem_map(u64::from(STUB_PA), u64::from(len), Prot::ALL)
        .map_err(|e| uc_err("mapping the boot stub", e))?;
    let begin = u64::from(KSEG1 | STUB_PA);
    let r = uc
        .mem_write(u64::from(STUB_PA), &bytes)
        .and_then(|()| uc.emu_start(begin, begin + bytes.len() as u64 - 4, 0, 0));
    let _ = uc.mem_unmap(u64::from(STUB_PA), u64::from(len));
    r.map_err(|e| uc_err("running the boot stub", e))?;
    if let Some(ev) = uc.get_data_mut().event.take() {
        return Err(Error::Emulator {
            message: format!("emulator: the boot stub raised {ev:?}"),
        });
    }
    Ok(())
}

fn boot(
    memory: &Arc<Memory>,
    endian: Endian,
    entry: u32,
    config: &Config,
) -> Result<Unicorn<'static, Data>> {
    let mode = UcMode::MIPS32
        | match endian {
            Endian::Big => UcMode::BIG_ENDIAN,
            Endian::Little => UcMode::LITTLE_ENDIAN,
        };
    let data = Data {
        mode: config.mode,
        memory: memory.clone(),
        output: config.output.clone(),
        block: (0, 0),
        event: None,
    };
    let mut uc = Unicorn::new_with_data(Arch::MIPS, mode, data)
        .map_err(|e| uc_err("creating the MIPS engine", e))?;
    // SAFETY: a valid engine; the control takes one uint32_t.
    unsafe {
        unicorn_engine::uc_ctl(
            uc.get_handle(),
            ControlType(ControlType::TCG_BUFFER_SIZE.0 | ControlType::IO_WRITE.0),
            TCG_BUFFER,
        )
    }
    .and(Ok(()))
    .map_err(|e| uc_err("sizing the code buffer", e))?;
    for r in &memory.regions {
        // SAFETY: the block is r.len bytes, page-aligned, and outlives the engine (the
        // Arc<Memory> in Data and in Emu keep it; the engine is dropped first).
        unsafe {
            uc.mem_map_ptr(
                u64::from(r.pa),
                u64::from(r.len),
                Prot::ALL,
                r.host_ptr().cast(),
            )
        }
        .map_err(|e| {
            uc_err(
                &format!(
                    "mapping {} at physical {:#010x} + {:#x}",
                    r.name, r.pa, r.len
                ),
                e,
            )
        })?;
    }
    let entries: Vec<_> = memory
        .regions
        .iter()
        .filter(|r| r.tlb)
        .flat_map(tlb::entries_for)
        .collect();
    if entries.len() > TLB_ENTRIES {
        return Err(Error::Emulator {
            message: format!(
                "the carveouts need {} wired TLB entries; the CPU has {TLB_ENTRIES}",
                entries.len()
            ),
        });
    }
    uc.add_block_hook(1, 0, |uc, addr, size| {
        uc.get_data_mut().block = (addr, size);
    })
    .map_err(|e| uc_err("adding the block hook", e))?;
    uc.add_intr_hook(on_exception)
        .map_err(|e| uc_err("adding the exception hook", e))?;
    run_stub(&mut uc, &tlb::boot_stub(&entries), endian)?;

    // Entry registers.
    for n in 1..32 {
        write_reg(&mut uc, n, 0)?;
    }
    match config.mode {
        Mode::Bare => {
            // mips_rproc_cpu_entry: bootaddr(-3, ipi_to_remote, ipi_from_remote, 0).
            write_reg(&mut uc, 4, (-3i32) as u32)?;
            write_reg(&mut uc, 5, IPI_TO_REMOTE)?;
            write_reg(&mut uc, 6, IPI_FROM_REMOTE)?;
        }
        Mode::Hosted => {
            // qemu-user: $sp at argc (0), argv/envp/auxv terminators above it, 8-aligned.
            let top = memory.stack().map(|s| s.da + s.len).unwrap_or(0);
            write_reg(&mut uc, 29, top - 16)?;
        }
    }
    for &(n, v) in &config.entry_regs {
        write_reg(&mut uc, n, v)?;
    }
    uc.reg_write(RegisterMIPS::PC, u64::from(entry))
        .map_err(|e| uc_err("setting the pc", e))?;
    Ok(uc)
}

fn on_exception(uc: &mut Unicorn<Data>, intno: u32) {
    let d = uc.get_data();
    if intno == EXCP_SYSCALL && d.mode == Mode::Hosted {
        let nr = uc.reg_read(RegisterMIPS::V0).unwrap_or(0) as u32;
        let a = [
            uc.reg_read(RegisterMIPS::A0).unwrap_or(0) as u32,
            uc.reg_read(RegisterMIPS::A1).unwrap_or(0) as u32,
            uc.reg_read(RegisterMIPS::A2).unwrap_or(0) as u32,
        ];
        let d = uc.get_data();
        match hosted::syscall(nr, a, &d.memory, &d.output) {
            Outcome::Return { v0, a3 } => {
                let _ = uc.reg_write(RegisterMIPS::V0, u64::from(v0));
                let _ = uc.reg_write(RegisterMIPS::A3, u64::from(a3));
            }
            Outcome::Exit(code) => {
                uc.get_data_mut().event = Some(Event::Exit(code));
                let _ = uc.emu_stop();
            }
            Outcome::Unknown(n) => {
                uc.get_data_mut().event = Some(Event::Syscall(n));
                let _ = uc.emu_stop();
            }
        }
        return;
    }
    uc.get_data_mut().event = Some(Event::Exception(intno));
    let _ = uc.emu_stop();
}

/// BadVAddr, read by running `mfc0 k0, BadVAddr` (unicorn exposes no CP0 register for it).
fn read_badvaddr(uc: &mut Unicorn<Data>, endian: Endian) -> Option<u32> {
    let k0 = uc.reg_read(RegisterMIPS::K0).ok()?;
    run_stub(uc, &[tlb::mfc0(26, tlb::CP0_BADVADDR), 0], endian).ok()?;
    let bad = uc.reg_read(RegisterMIPS::K0).ok()? as u32;
    uc.reg_write(RegisterMIPS::K0, k0).ok()?;
    Some(bad)
}

/// Find the faulting instruction in the block the core was executing.
fn fault_pc(
    uc: &Unicorn<Data>,
    block: (u64, u32),
    endian: Endian,
    intno: u32,
    gpr: &[u32; 32],
    bad: Option<u32>,
) -> u32 {
    let (start, size) = block;
    let mem = &uc.get_data().memory;
    let words: Vec<(u32, u32)> = (0..size / 4)
        .filter_map(|i| {
            let a = start as u32 + 4 * i;
            let mut b = [0u8; 4];
            mem.read_va(a, &mut b).map(|()| (a, endian.read_u32(b)))
        })
        .collect();
    let last = words.last().map(|w| w.0).unwrap_or(start as u32);
    let find = |p: &dyn Fn(u32) -> bool| words.iter().find(|(_, w)| p(*w)).map(|w| w.0);
    match intno {
        EXCP_ADEL | EXCP_ADES | EXCP_TLBL | EXCP_TLBS | EXCP_TLBRI | EXCP_DBE => {
            let Some(bad) = bad else { return last };
            // A data access to the bad address (same page for TLB faults), else the fetch.
            let exact = intno == EXCP_ADEL || intno == EXCP_ADES;
            find(&|w| {
                decode::mem_access(w, gpr).is_some_and(|ea| {
                    if exact {
                        ea == bad
                    } else {
                        ea & !0xfff == bad & !0xfff
                    }
                })
            })
            .unwrap_or(bad)
        }
        EXCP_TLBF | EXCP_IBE | EXCP_TLBXI => bad.unwrap_or(last),
        EXCP_BREAK => find(&decode::is_break).unwrap_or(last),
        EXCP_SYSCALL => find(&decode::is_syscall).unwrap_or(last),
        EXCP_TRAP => find(&decode::is_trap).unwrap_or(last),
        EXCP_OVERFLOW => find(&decode::can_overflow).unwrap_or(last),
        EXCP_CPU => find(&decode::is_cop).unwrap_or(last),
        _ => last,
    }
}

fn make_fault(
    uc: &mut Unicorn<Data>,
    endian: Endian,
    ev: Option<Event>,
    err: Option<uc_error>,
) -> Fault {
    let mut regs = read_regs(uc);
    let (cause, description, intno) = match (&ev, err) {
        (Some(Event::Syscall(n)), _) => (
            format!("syscall {n}"),
            "not served in hosted mode (only write 4004, exit 4001, exit_group 4246)".to_string(),
            EXCP_SYSCALL,
        ),
        (Some(Event::Exception(n)), _) => {
            let (c, d) = cause_name(*n);
            (c.to_string(), d.to_string(), *n)
        }
        (_, Some(e)) => (
            format!("{e:?}"),
            "the emulator stopped".to_string(),
            u32::MAX,
        ),
        _ => ("exception".into(), "unknown".into(), u32::MAX),
    };
    let wants_bad = matches!(
        intno,
        EXCP_ADEL | EXCP_ADES | EXCP_TLBF | EXCP_TLBL | EXCP_TLBS | EXCP_TLBXI | EXCP_TLBRI
    );
    // The block the fault happened in (before the BadVAddr stub runs and replaces it).
    let block = uc.get_data().block;
    let bad = if wants_bad {
        read_badvaddr(uc, endian)
    } else {
        None
    };
    let pc = if intno == EXCP_SYSCALL && matches!(ev, Some(Event::Syscall(_))) {
        // The syscall hook sees the pc already past the instruction.
        regs.pc.wrapping_sub(4)
    } else if intno == u32::MAX {
        regs.pc
    } else {
        fault_pc(uc, block, endian, intno, &regs.gpr, bad)
    };
    regs.pc = pc;
    Fault {
        cause,
        description,
        pc,
        badvaddr: bad,
        regs,
    }
}

/// The thread body: boot (reporting the result on `ready`), then run.
pub(super) fn run(
    memory: Arc<Memory>,
    endian: Endian,
    entry: u32,
    config: Config,
    shared: Arc<Shared>,
    wake: Arc<(Mutex<bool>, Condvar)>,
    ready: Sender<Result<()>>,
) {
    let mut uc = match boot(&memory, endian, entry, &config) {
        Ok(uc) => uc,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(()));
    let w = Arc::new(Watchdog {
        slice: Mutex::new(Slice {
            deadline: None,
            quit: false,
        }),
        cv: Condvar::new(),
        handle: uc.get_handle() as usize,
    });
    let dog = {
        let w = w.clone();
        std::thread::Builder::new()
            .name("vpe-emu-watchdog".into())
            .spawn(move || watchdog(w))
    };
    let share = config.cpu_share.clamp(1, 100);
    let final_state = loop {
        if shared.stop.load(Ordering::SeqCst) {
            break CpuState::Stopped;
        }
        let pc = uc.reg_read(RegisterMIPS::PC).unwrap_or(0);
        let t0 = Instant::now();
        {
            let mut s = w.slice.lock().unwrap_or_else(|e| e.into_inner());
            s.deadline = Some(t0 + SLICE);
            w.cv.notify_all();
        }
        let r = uc.emu_start(pc, NEVER, 0, 0);
        {
            let mut s = w.slice.lock().unwrap_or_else(|e| e.into_inner());
            s.deadline = None;
        }
        let spent = t0.elapsed();
        *shared.busy.lock().unwrap_or_else(|e| e.into_inner()) += spent;
        let ev = uc.get_data_mut().event.take();
        match (ev, r) {
            (Some(Event::Exit(code)), _) => break CpuState::Halted { code },
            (None, Ok(())) => {}
            (ev, r) => {
                let fault = make_fault(&mut uc, endian, ev, r.err());
                break CpuState::Faulted {
                    fault: Box::new(fault),
                };
            }
        }
        // Throttle: idle so that busy / (busy + idle) = share.
        if share < 100 {
            let idle = spent * (100 - share) / share;
            let (lock, cv) = &*wake;
            let woken = lock.lock().unwrap_or_else(|e| e.into_inner());
            if !*woken {
                let _ = cv.wait_timeout(woken, idle);
            }
        }
    };
    {
        let mut s = w.slice.lock().unwrap_or_else(|e| e.into_inner());
        s.quit = true;
        w.cv.notify_all();
    }
    if let Ok(d) = dog {
        let _ = d.join();
    }
    drop(uc);
    shared.set(final_state);
}
