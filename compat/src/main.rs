//! `vpe-compat`: a FUSE `/dev/vpe1` so unmodified legacy VPE loaders keep working on top of
//! remoteproc. See `docs/SEMANTICS.md` for the device's behaviour next to the old kernel's.

mod device;
mod fuse;
mod loglimit;
// The /dev/rtlxN state machine; fuse.rs serves it once the emulated SP (issue 11) lands.
#[allow(dead_code)]
mod rtlx;
mod status;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::error::ErrorKind;
use clap::{CommandFactory, Parser, ValueEnum};
use fuse3::raw::{MountHandle, Session};
use fuse3::MountOptions;
use log::{error, info, warn};
use nix::mount::{umount2, MntFlags};
use vpe::image::RelocSemantics;
use vpe::remoteproc::sim::{Exec, Sim, SimOptions};
use vpe::remoteproc::sysfs::{Recovery, Sysfs, SysfsOptions};
use vpe::remoteproc::Backend;

use crate::device::{Config, Device, Node};
use crate::fuse::{Ownership, VpeFs};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum BackendKind {
    /// A simulated remote processor applying the kernel's rules (works anywhere).
    Sim,
    /// The real remoteproc through /sys/class/remoteproc.
    Sysfs,
}

/// FUSE /dev/vpe1 for legacy MIPS VPE loaders on top of remoteproc.
#[derive(Debug, Parser)]
#[command(name = "vpe-compat", version)]
struct Args {
    /// Directory to mount the device files (vpe1, kill, ntcs, status, status.json, console,
    /// trace0..trace3) on.
    #[arg(long, value_name = "DIR")]
    mount: PathBuf,
    /// Where programs run.
    #[arg(long, value_enum, default_value = "sim")]
    backend: BackendKind,
    /// remoteproc instance, by its `name` attribute (sysfs backend).
    #[arg(long, value_name = "NAME", default_value = "mips-cpu1")]
    rproc: String,
    /// Mount point of sysfs.
    #[arg(long, value_name = "DIR", default_value = "/sys")]
    sysfs_root: PathBuf,
    /// A directory of the kernel's firmware search path; images go to its `vpe-compat/`.
    #[arg(long, value_name = "DIR", default_value = "/lib/firmware")]
    firmware_dir: PathBuf,
    /// Do not restart the previous firmware when a start fails.
    #[arg(long)]
    no_rollback: bool,
    /// remoteproc crash recovery (both backends): `disabled` as with the legacy loader, which
    /// had none; `enabled` lets the kernel reboot a crashed processor; `keep` leaves it.
    #[arg(long, value_enum, default_value = "disabled")]
    recovery: RecoveryPolicy,
    /// If `--rproc mips-cpuN` is not registered yet, take CPU N offline and hand it to the MIPS
    /// remoteproc driver (`/sys/devices/mips-rproc/cpus`) first (sysfs backend).
    #[arg(long)]
    bring_up: bool,
    /// Image size limit per open (vpe.c P_SIZE; 2097152 for CONFIG_MIPS_VPE_LOADER_TOM set-ups).
    #[arg(long, value_name = "BYTES", default_value_t = device::P_SIZE,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_image: usize,
    /// Bytes all open vpe1 files may buffer together; a write past it fails with ENOMEM
    /// (default: 4 times the image limit).
    #[arg(long, value_name = "BYTES",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    max_buffered: Option<usize>,
    /// Largest value `ntcs` accepts (hw_tcs - tclimit on the old kernel).
    #[arg(long, value_name = "N", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..))]
    max_tcs: u32,
    /// Initial `ntcs` ($a2 at start).
    #[arg(long, value_name = "N", default_value_t = 1)]
    ntcs: u32,
    /// Load on close() and make close() fail when the load fails.
    #[arg(long)]
    errors_on_close: bool,
    /// Make vpe1 writable by this group (mode 0660).
    #[arg(long, value_name = "NAME")]
    group: Option<String>,
    /// Address an ET_REL image is placed at (default: the profile's).
    #[arg(long, value_name = "ADDR", value_parser = parse_u32)]
    base: Option<u32>,
    /// Relocation semantics: legacy (what vpe.c did, default), strict or elf.
    #[arg(long, value_name = "MODE", default_value = "legacy")]
    relocs: RelocSemantics,
    /// Also make this path (a regular file, created if missing) the vpe1 device.
    #[arg(long, value_name = "PATH")]
    bind_dev: Option<PathBuf>,
    /// Which /dev/vpe1 loader to reproduce: mainline or lantiq (the OpenWrt/UGW IFX_VPE_EXT
    /// patch: images at --vpe1-load-addr, buffer --vpe1-mem, KSEG1(vpe1_load_addr) fallback).
    #[arg(long, value_enum, default_value = "mainline")]
    kernel: LoaderKernel,
    /// The board's vpe1_load_addr= (KSEG0, e.g. 0x83e00000); needed with --kernel lantiq.
    #[arg(long, value_name = "ADDR", value_parser = parse_u32)]
    vpe1_load_addr: Option<u32>,
    /// The board's vpe1_mem= (bytes, K/M suffixes): the buffer limit with --kernel lantiq
    /// (default: --max-image).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    vpe1_mem: Option<u32>,
    /// Byte order of the kernel that loads the firmware. Default: with `--backend sysfs` this
    /// machine's (it must be); with the simulator either (it accepts both, a real kernel
    /// one: `--host` makes it refuse the other with the kernel's message).
    #[arg(long, value_enum, value_name = "ORDER")]
    host: Option<HostOrder>,
    /// Refuse an image that already is remoteproc firmware instead of installing it
    /// unchanged.
    #[arg(long)]
    no_passthrough: bool,
    /// `--entry __start` (with --kernel lantiq): start at __start even where the Lantiq
    /// loader's quirk (vpe_shared missing) would start at KSEG1(vpe1_load_addr).
    #[arg(long, value_name = "SYMBOL", value_parser = ["__start"])]
    entry: Option<String>,
    /// Most memory an image may load, `.bss` included (bytes, K/M suffixes); a bigger one is
    /// refused before anything is allocated for it. Default 16M, or --vpe1-mem with
    /// --kernel lantiq.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_mem: Option<u32>,
    /// Sim backend: run programs as on the board (a syscall is a fault) instead of hosted
    /// (o32 write/exit served, output in the `console` file).
    #[arg(long)]
    bare: bool,
    /// Sim backend: percent of one host core the emulated core may take (1-100; default 20).
    #[arg(long, value_name = "PERCENT", value_parser = clap::value_parser!(u32).range(1..=100))]
    cpu_share: Option<u32>,
    /// Largest FUSE write (bytes, K/M suffixes; 4K..=1M): fuse3 keeps a request buffer of this
    /// size. Default 1M, 128K on the board (docs/PERFORMANCE.md, "On the board").
    #[arg(long, value_name = "SIZE", value_parser = parse_max_write, default_value_t = board::MAX_WRITE)]
    max_write: u32,
    /// Runtime worker threads. Default: one per CPU, 1 on the board.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
    /// Test hook: the simulated remote processor refuses every start (-EBUSY).
    #[arg(long, hide = true)]
    sim_fail_start: bool,
    /// Benchmark floor (scripts/bench-fuse): vpe1 accepts and discards writes, close does
    /// nothing. The other files work as usual.
    #[arg(long, hide = true)]
    bench_noop: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum HostOrder {
    Big,
    Little,
}

impl HostOrder {
    fn endian(self) -> vpe::elf::Endian {
        match self {
            HostOrder::Big => vpe::elf::Endian::Big,
            HostOrder::Little => vpe::elf::Endian::Little,
        }
    }
}

/// The byte order this daemon runs in: the kernel's, when it drives the real remoteproc.
fn machine_order() -> vpe::elf::Endian {
    if cfg!(target_endian = "big") {
        vpe::elf::Endian::Big
    } else {
        vpe::elf::Endian::Little
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum RecoveryPolicy {
    Disabled,
    Enabled,
    Keep,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LoaderKernel {
    /// arch/mips/kernel/vpe.c as in Linux.
    Mainline,
    /// The Lantiq/OpenWrt IFX_VPE_EXT patch.
    Lantiq,
}

/// Decimal or 0x hex with an optional K/M suffix (as the kernel's memparse for vpe1_mem=).
fn parse_size(s: &str) -> Result<u32, String> {
    let (num, mult) = match s.chars().last() {
        Some('k' | 'K') => (&s[..s.len() - 1], 1024u64),
        Some('m' | 'M') => (&s[..s.len() - 1], 1024 * 1024),
        _ => (s, 1),
    };
    let v = u64::from(parse_u32(num)?) * mult;
    u32::try_from(v).map_err(|_| format!("`{s}` does not fit in 32 bits"))
}

/// Defaults sized for the board (`target_arch = "mips"`: 64-128 MiB of RAM, 2-4 VPEs one of
/// which runs the SP program) and for other machines.
mod board {
    #[cfg(target_arch = "mips")]
    pub const MAX_WRITE: u32 = 128 << 10;
    #[cfg(not(target_arch = "mips"))]
    pub const MAX_WRITE: u32 = crate::fuse::MAX_WRITE;
    #[cfg(target_arch = "mips")]
    pub const WORKER_THREADS: Option<usize> = Some(1);
    #[cfg(not(target_arch = "mips"))]
    pub const WORKER_THREADS: Option<usize> = None;
}

fn parse_max_write(s: &str) -> Result<u32, String> {
    let v = parse_size(s)?;
    if !(4096..=fuse::MAX_WRITE).contains(&v) {
        return Err(format!("`{s}` is not in 4K..=1M"));
    }
    Ok(v)
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let r = match s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        Some(h) => u32::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.map_err(|e| format!("`{s}`: {e}"))
}

fn main() {
    vpe::memory::reuse_freed_memory();
    let args = Args::parse();
    // Usage errors exit 2 with clap's message and usage, like the parser's own.
    let cfg = config(&args).unwrap_or_else(|e| usage_error(e));
    let own = ownership(args.group.as_deref()).unwrap_or_else(|e| usage_error(e));
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = args
        .worker_threads
        .map(usize::from)
        .or(board::WORKER_THREADS)
    {
        rt.worker_threads(n);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!("cannot start the runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match rt.block_on(run(args, cfg, own)) {
        Ok(()) => 0,
        Err(e) => {
            error!("{e}");
            1
        }
    };
    // Not the runtime's drop: it would wait for fuse3's blocking reader, which a mount kept
    // busy by an open file (only detached) feeds until the last close. Exiting closes
    // /dev/fuse, which aborts the connection: such files then fail with ENOTCONN.
    std::process::exit(code);
}

/// A usage error: clap's format and exit status 2, like the parser's own errors.
fn usage_error(msg: String) -> ! {
    Args::command()
        .error(ErrorKind::ValueValidation, msg)
        .exit()
}

/// The device's settings from the flags; `Err` is a usage error.
fn config(args: &Args) -> Result<Config, String> {
    let mut cfg = Config {
        max_image: args.max_image,
        max_tcs: args.max_tcs,
        errors_on_close: args.errors_on_close,
        ..Config::default()
    };
    if args.ntcs == 0 || args.ntcs > args.max_tcs {
        return Err(format!(
            "--ntcs {} must be in 1..={} (--max-tcs)",
            args.ntcs, args.max_tcs
        ));
    }
    cfg.ntcs = args.ntcs;
    cfg.convert.base = args.base;
    cfg.convert.semantics = args.relocs;
    cfg.convert.max_mem = args.max_mem;
    match (args.kernel, args.vpe1_load_addr) {
        (LoaderKernel::Mainline, _) if args.entry.is_some() => {
            return Err(
                "--entry __start only changes the Lantiq loader's fallback (use it with --kernel lantiq)".into(),
            );
        }
        (LoaderKernel::Mainline, _) => {}
        (LoaderKernel::Lantiq, None) => {
            return Err("--kernel lantiq needs --vpe1-load-addr ADDR".into());
        }
        (LoaderKernel::Lantiq, Some(addr)) => {
            if args.base.is_some_and(|b| b != addr) {
                return Err("--base contradicts --vpe1-load-addr with --kernel lantiq".into());
            }
            let mem = args
                .vpe1_mem
                .unwrap_or(u32::try_from(args.max_image).unwrap_or(u32::MAX));
            cfg = cfg.lantiq(addr, mem, args.entry.is_none());
        }
    }
    cfg.max_buffered = args
        .max_buffered
        .unwrap_or(cfg.max_image.saturating_mul(device::BUFFERED_IMAGES));
    if cfg.max_buffered < cfg.max_image {
        return Err(format!(
            "--max-buffered {} is smaller than the image limit {}: no image could be written whole",
            cfg.max_buffered, cfg.max_image
        ));
    }
    cfg.passthrough = !args.no_passthrough;
    let host = args.host.map(HostOrder::endian);
    if let (BackendKind::Sysfs, Some(h)) = (args.backend, host) {
        if h != machine_order() {
            return Err(format!(
                "--host {} with --backend sysfs: this machine's kernel is {}-endian, and remoteproc refuses firmware of the other byte order",
                h.name(),
                machine_order().name()
            ));
        }
    }
    // The daemon runs on the machine whose kernel loads the firmware: remoteproc refuses an
    // ELF whose EI_DATA differs from the kernel's byte order. The simulator plays whichever
    // kernel `--host` names (both byte orders without it).
    cfg.convert.host = match args.backend {
        BackendKind::Sysfs => Some(machine_order()),
        BackendKind::Sim => host,
    };
    Ok(cfg)
}

/// A failed backend open, naming the instance once: the attribute errors already start with
/// `remoteproc <name>:` (they are logged that way at run time too), the others do not.
fn open_error(rproc: &str, msg: &str) -> String {
    let prefix = format!("remoteproc {rproc}:");
    if msg.starts_with(&prefix) {
        msg.to_string()
    } else {
        format!("{prefix} {msg}")
    }
}

async fn run(args: Args, cfg: Config, own: Ownership) -> Result<(), String> {
    // Before anything is mounted: a SIGTERM right after READY=1 must unmount, not kill.
    // HUP (a closed terminal, `kill -HUP` out of habit) and QUIT stop cleanly too: killed by
    // them, the daemon left a dead mount.
    use tokio::signal::unix::SignalKind;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut hup = signal(SignalKind::hangup())?;
    let mut quit = signal(SignalKind::quit())?;
    let backend: Box<dyn Backend> = match args.backend {
        BackendKind::Sim => {
            if args.bare && !cfg!(feature = "emulate") {
                return Err(
                    "--bare: vpe-compat was built without the emulator (feature `emulate`)".into(),
                );
            }
            let sim = Sim::new(SimOptions {
                host: cfg.convert.host,
                profile: None,
                fail_start: args.sim_fail_start,
                exec: if args.bare { Exec::Bare } else { Exec::Hosted },
                cpu_share: args.cpu_share,
                // `keep` leaves the kernel's default, which is enabled.
                recovery: args.recovery != RecoveryPolicy::Disabled,
            });
            Box::new(sim.with_rollback(!args.no_rollback))
        }
        BackendKind::Sysfs => {
            let opts = SysfsOptions {
                sysfs_root: args.sysfs_root.clone(),
                firmware_dir: args.firmware_dir.clone(),
                rollback: !args.no_rollback,
                recovery: match args.recovery {
                    RecoveryPolicy::Disabled => Some(Recovery::Disabled),
                    RecoveryPolicy::Enabled => Some(Recovery::Enabled),
                    RecoveryPolicy::Keep => None,
                },
                bring_up: args.bring_up,
                ..SysfsOptions::new(args.rproc.clone())
            };
            Box::new(Sysfs::open(opts).map_err(|e| open_error(&args.rproc, &e.to_string()))?)
        }
    };
    let dev = Arc::new(Device::new(cfg, backend));

    cleanup_stale_mount(&args.mount);
    refuse_live_mount(&args.mount).map_err(|e| format!("--mount {}: {e}", args.mount.display()))?;
    let mut handle = mount(
        VpeFs::new(dev.clone(), own)
            .noop(args.bench_noop)
            .max_write(args.max_write),
        &args.mount,
        own,
        None,
    )
    .await
    .map_err(|e| format!("mount on {}: {e}", args.mount.display()))?;
    info!(
        "vpe-compat {} on {} (backend {}, limit {} bytes per image, {} buffered)",
        env!("CARGO_PKG_VERSION"),
        args.mount.display(),
        dev.status().backend,
        dev.max_image(),
        dev.max_buffered()
    );
    let mut dev_handle = None;
    if let Some(path) = &args.bind_dev {
        match mount_dev_file(dev.clone(), path, own, args.max_write).await {
            Ok((h, placeholder)) => {
                info!("{} is the vpe1 device", path.display());
                dev_handle = Some((h, placeholder));
            }
            Err(e) => {
                unmount(handle, &args.mount).await;
                return Err(format!("--bind-dev {}: {e}", path.display()));
            }
        }
    }
    // The summaries of suppressed log lines come when their window is over, also when no
    // other line of that kind (and no release) follows the burst.
    let flusher = {
        let dev = dev.clone();
        tokio::spawn(async move {
            let mut t = tokio::time::interval(loglimit::INTERVAL);
            loop {
                t.tick().await;
                dev.flush_log();
            }
        })
    };
    notify_ready();

    let external = tokio::select! {
        _ = term.recv() => { info!("SIGTERM: unmounting"); false }
        _ = int.recv() => { info!("SIGINT: unmounting"); false }
        _ = hup.recv() => { info!("SIGHUP: unmounting"); false }
        _ = quit.recv() => { info!("SIGQUIT: unmounting"); false }
        r = &mut handle => { warn!("{} was unmounted ({r:?}); exiting", args.mount.display()); true }
    };
    flusher.abort();
    // A load in progress finishes first (its firmware install is atomic anyway).
    tokio::task::block_in_place(|| dev.wait_idle());
    if let Some((h, placeholder)) = dev_handle {
        unmount(h, &placeholder.path).await;
        placeholder.remove();
    }
    if !external {
        unmount(handle, &args.mount).await;
    }
    Ok(())
}

fn signal(kind: tokio::signal::unix::SignalKind) -> Result<tokio::signal::unix::Signal, String> {
    tokio::signal::unix::signal(kind).map_err(|e| format!("signal handler: {e}"))
}

fn ownership(group: Option<&str>) -> Result<Ownership, String> {
    let Some(name) = group else {
        return Ok(Ownership {
            uid: 0,
            gid: 0,
            group_writable: false,
        });
    };
    let g = nix::unistd::Group::from_name(name)
        .map_err(|e| format!("--group {name}: {e}"))?
        .ok_or_else(|| format!("--group {name}: no such group"))?;
    Ok(Ownership {
        uid: 0,
        gid: g.gid.as_raw(),
        group_writable: true,
    })
}

fn mount_options(rootmode: Option<u32>) -> MountOptions {
    let mut o = MountOptions::default();
    // allow_other so loaders running as other users reach the files at all, and
    // default_permissions so the kernel enforces the modes (vpe1 0600 root).
    o.fs_name("vpe-compat")
        .allow_other(true)
        .default_permissions(true);
    if let Some(m) = rootmode {
        o.rootmode(m).nonempty(true);
    }
    o
}

async fn mount(
    fs: VpeFs,
    path: &Path,
    _own: Ownership,
    rootmode: Option<u32>,
) -> io::Result<MountHandle> {
    Session::new(mount_options(rootmode)).mount(fs, path).await
}

/// The `--bind-dev` path, and the placeholder file we created there (if we did), which is
/// removed at exit: left behind, loaders writing to it would "succeed" into a plain file.
struct Placeholder {
    path: PathBuf,
    /// (st_dev, st_ino) of the file we created; `None` if it was there before us.
    created: Option<(u64, u64)>,
}

impl Placeholder {
    /// `lstat` first: an existing regular file is used as it is, a missing one is created
    /// `O_CREAT|O_EXCL|O_NOFOLLOW` (never through a symlink), anything else is refused.
    fn prepare(path: &Path) -> io::Result<Placeholder> {
        use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
        let created = match std::fs::symlink_metadata(path) {
            Ok(m) if m.file_type().is_symlink() => return Err(symlink_refused()),
            Ok(m) if m.file_type().is_file() => None,
            Ok(_) => {
                return Err(io::Error::other(
                    "must be a regular file (a FUSE file mount cannot cover a device node or \
                     directory)",
                ));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let f = std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .custom_flags(libc::O_NOFOLLOW)
                    .open(path)?;
                let m = f.metadata()?;
                Some((m.dev(), m.ino()))
            }
            Err(e) => return Err(e),
        };
        Ok(Placeholder {
            path: path.to_path_buf(),
            created,
        })
    }

    /// Remove the placeholder if we created it and it is still that file.
    fn remove(self) {
        use std::os::unix::fs::MetadataExt;
        let Some((dev, ino)) = self.created else {
            return;
        };
        match std::fs::symlink_metadata(&self.path) {
            Ok(m) if m.file_type().is_file() && (m.dev(), m.ino()) == (dev, ino) => {
                match std::fs::remove_file(&self.path) {
                    Ok(()) => info!("removed the placeholder {}", self.path.display()),
                    Err(e) => warn!("removing the placeholder {}: {e}", self.path.display()),
                }
            }
            Ok(_) => warn!(
                "{} is no longer the placeholder this daemon created: left alone",
                self.path.display()
            ),
            Err(_) => {}
        }
    }
}

fn symlink_refused() -> io::Error {
    io::Error::other(
        "is a symbolic link: give the path itself (the mount would cover its target, and a \
         dangling link would make the daemon create it)",
    )
}

/// Mount a one-file filesystem over `path`, whose root is `vpe1` itself.
async fn mount_dev_file(
    dev: Arc<Device>,
    path: &Path,
    own: Ownership,
    max_write: u32,
) -> io::Result<(MountHandle, Placeholder)> {
    // Before anything that follows the path (the stale-mount check, canonicalize).
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(symlink_refused());
    }
    cleanup_stale_mount(path);
    refuse_live_mount(path)?;
    let placeholder = Placeholder::prepare(path)?;
    // fuse3 prints `rootmode` with `{}` while the kernel parses octal: give the octal digits
    // of S_IFREG|perm as a decimal number (rust-crates.md).
    let perm = Node::Vpe1.perm(own.group_writable);
    let rootmode =
        100_000 + (perm / 64 % 8) as u32 * 100 + (perm / 8 % 8) as u32 * 10 + (perm % 8) as u32;
    let fs = VpeFs::single_file(dev, own, Node::Vpe1).max_write(max_write);
    match mount(fs, path, own, Some(rootmode)).await {
        Ok(h) => Ok((h, placeholder)),
        Err(e) => {
            placeholder.remove();
            Err(e)
        }
    }
}

/// A second daemon on a live vpe-compat mount would stack a mount on it (fuse3 then said
/// "mount point is not empty"): refuse, naming the real cause. Dead mounts were detached by
/// [`cleanup_stale_mount`] already.
fn refuse_live_mount(path: &Path) -> io::Result<()> {
    let Ok(abs) = std::fs::canonicalize(path) else {
        return Ok(());
    };
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if mountinfo_has_vpe_compat(&info, &abs) {
        return Err(io::Error::other(
            "already a vpe-compat mount (another vpe-compat serves it: stop that one first)",
        ));
    }
    Ok(())
}

/// Whether `/proc/self/mountinfo` text lists a vpe-compat FUSE mount at `at`.
fn mountinfo_has_vpe_compat(info: &str, at: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    info.lines().any(|l| {
        let mut f = l.split(' ');
        let point = f.nth(4).map(unescape_mountinfo);
        // Optional fields end at "-"; then fstype and source.
        let mut rest = f.skip_while(|&x| x != "-").skip(1);
        let (fstype, source) = (rest.next(), rest.next());
        point.as_deref() == Some(at.as_os_str().as_bytes())
            && fstype.is_some_and(|t| t == "fuse" || t.starts_with("fuse."))
            && source == Some("vpe-compat")
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape_mountinfo(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let oct = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], oct) {
            (b'\\', Some(d)) => {
                out.push(((d[0] - b'0') << 6) | ((d[1] - b'0') << 3) | (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// Unmount explicitly (dropping the handle would unmount from a task that may never run),
/// falling back to a lazy unmount if the mount is busy.
async fn unmount(handle: MountHandle, path: &Path) {
    if let Err(e) = handle.unmount().await {
        warn!("unmount {}: {e}; detaching", path.display());
        if let Err(e) = umount2(path, MntFlags::MNT_DETACH) {
            error!("umount2({}, MNT_DETACH): {e}", path.display());
        }
    }
}

/// A daemon killed with SIGKILL leaves its mount behind ("Transport endpoint is not
/// connected"); detach it so we can mount again.
fn cleanup_stale_mount(path: &Path) {
    if let Err(e) = std::fs::metadata(path) {
        if e.raw_os_error() == Some(libc::ENOTCONN) {
            warn!("{}: stale FUSE mount, detaching it", path.display());
            if let Err(e) = umount2(path, MntFlags::MNT_DETACH) {
                warn!("umount2({}, MNT_DETACH): {e}", path.display());
            }
        }
    }
}

/// sd_notify(READY=1) without libsystemd: one datagram to `$NOTIFY_SOCKET`.
fn notify_ready() {
    let Some(sock) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    if let Err(e) = send_notify(&sock, b"READY=1\n") {
        warn!("NOTIFY_SOCKET {}: {e}", sock.to_string_lossy());
    }
}

fn send_notify(sock: &std::ffi::OsStr, msg: &[u8]) -> io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let bytes = sock.as_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        // Abstract namespace socket (systemd may use one).
        Some(name) => SocketAddr::from_abstract_name(name)?,
        None => SocketAddr::from_pathname(Path::new(sock))?,
    };
    let s = UnixDatagram::unbound()?;
    s.send_to_addr(msg, &addr)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn open_errors_name_the_instance_once() {
        assert_eq!(
            open_error(
                "mips-cpu1",
                "remoteproc mips-cpu1: reading state failed: EIO"
            ),
            "remoteproc mips-cpu1: reading state failed: EIO"
        );
        assert_eq!(
            open_error("mips-cpu1", "no remoteproc class at /sys/class/remoteproc"),
            "remoteproc mips-cpu1: no remoteproc class at /sys/class/remoteproc"
        );
        // Another instance's name is no reason to leave ours out.
        assert_eq!(
            open_error("mips-cpu1", "remoteproc mips-cpu10: x"),
            "remoteproc mips-cpu1: remoteproc mips-cpu10: x"
        );
    }

    #[test]
    fn parse_u32_accepts_hex_and_decimal() {
        assert_eq!(parse_u32("0x80000000"), Ok(0x8000_0000));
        assert_eq!(parse_u32("4096"), Ok(4096));
        assert!(parse_u32("0x1_0000_0000").is_err());
        assert!(parse_u32("x").is_err());
    }

    #[test]
    fn notify_sends_one_datagram() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("notify");
        let rx = std::os::unix::net::UnixDatagram::bind(&p).unwrap();
        send_notify(p.as_os_str(), b"READY=1\n").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
    }

    #[test]
    fn mountinfo_finds_a_vpe_compat_mount_with_escaped_names() {
        let info = "36 25 0:32 / /run/a\\040b rw,nosuid - fuse vpe-compat rw,user_id=0\n\
                    37 25 0:33 / /mnt/other rw shared:5 - fuse sshfs rw\n\
                    38 25 0:34 / /mnt/x rw - tmpfs vpe-compat rw\n";
        assert!(mountinfo_has_vpe_compat(info, Path::new("/run/a b")));
        assert!(!mountinfo_has_vpe_compat(info, Path::new("/mnt/other")));
        assert!(
            !mountinfo_has_vpe_compat(info, Path::new("/mnt/x")),
            "not FUSE"
        );
        assert!(!mountinfo_has_vpe_compat(info, Path::new("/run/a")));
    }

    #[test]
    fn args_parse_the_documented_flags() {
        let mut a = Args::try_parse_from([
            "vpe-compat",
            "--mount",
            "/m",
            "--backend",
            "sysfs",
            "--rproc",
            "mips-cpu3",
            "--max-image",
            "2097152",
            "--base",
            "0x80200000",
            "--errors-on-close",
            "--no-rollback",
            "--bring-up",
            "--bind-dev",
            "/dev/vpe1",
            "--host",
            "big",
            "--no-passthrough",
            "--max-buffered",
            "8388608",
        ])
        .unwrap();
        assert_eq!(a.max_buffered, Some(8 << 20));
        assert_eq!(a.host, Some(HostOrder::Big));
        // --host must name this machine's order with --backend sysfs (tested in sim_backend.rs).
        a.host = None;
        assert_eq!(config(&a).map(|c| c.max_buffered), Ok(8 << 20));
        assert_eq!(a.backend, BackendKind::Sysfs);
        assert_eq!(a.base, Some(0x8020_0000));
        assert_eq!(
            a.max_image, 2_097_152,
            "P_SIZE with CONFIG_MIPS_VPE_LOADER_TOM"
        );
        assert!(a.errors_on_close && a.no_rollback && a.bring_up && a.no_passthrough);
        assert_eq!(a.relocs, RelocSemantics::Legacy);
        assert_eq!((a.max_write, a.worker_threads), (board::MAX_WRITE, None));
    }

    #[test]
    fn max_write_and_worker_threads_are_bounded() {
        let parse = |extra: &[&str]| {
            Args::try_parse_from(["vpe-compat", "--mount", "/m"].iter().chain(extra))
        };
        let a = parse(&["--max-write", "64K", "--worker-threads", "2"]).unwrap();
        assert_eq!((a.max_write, a.worker_threads), (64 << 10, Some(2)));
        assert_eq!(parse(&["--max-write", "1M"]).unwrap().max_write, 1 << 20);
        for bad in ["4095", "2M", "0"] {
            assert!(parse(&["--max-write", bad]).is_err(), "{bad}");
        }
        assert!(parse(&["--worker-threads", "0"]).is_err());
    }
}
