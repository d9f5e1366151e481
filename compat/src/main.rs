//! `vpe-compat`: a FUSE `/dev/vpe1` so unmodified legacy VPE loaders keep working on top of
//! remoteproc. See `docs/SEMANTICS.md` for the device's behaviour next to the old kernel's.

mod device;
mod fuse;
mod status;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use clap::{Parser, ValueEnum};
use fuse3::raw::{MountHandle, Session};
use fuse3::MountOptions;
use log::{error, info, warn};
use nix::mount::{umount2, MntFlags};
use vpe::image::RelocSemantics;
use vpe::remoteproc::sim::{Sim, SimOptions};
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
    /// Directory to mount the device files (vpe1, kill, ntcs, status, status.json) on.
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
    /// remoteproc crash recovery (sysfs backend): `disabled` as with the legacy loader, which
    /// had none; `enabled` lets the kernel reboot a crashed processor; `keep` leaves it.
    #[arg(long, value_enum, default_value = "disabled")]
    recovery: RecoveryPolicy,
    /// If `--rproc mips-cpuN` is not registered yet, take CPU N offline and hand it to the MIPS
    /// remoteproc driver (`/sys/devices/mips-rproc/cpus`) first (sysfs backend).
    #[arg(long)]
    bring_up: bool,
    /// Image size limit per open (vpe.c P_SIZE; 2097152 for CONFIG_MIPS_VPE_LOADER_TOM set-ups).
    #[arg(long, value_name = "BYTES", default_value_t = device::P_SIZE)]
    max_image: usize,
    /// Largest value `ntcs` accepts (hw_tcs - tclimit on the old kernel).
    #[arg(long, value_name = "N", default_value_t = 8)]
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
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let args = Args::parse();
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
    if let Err(e) = rt.block_on(run(args)) {
        error!("{e}");
        std::process::exit(1);
    }
}

async fn run(args: Args) -> Result<(), String> {
    // Before anything is mounted: a SIGTERM right after READY=1 must unmount, not kill.
    let mut term = signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut int = signal(tokio::signal::unix::SignalKind::interrupt())?;
    let backend: Box<dyn Backend> = match args.backend {
        BackendKind::Sim => {
            let sim = Sim::new(SimOptions {
                host: None,
                profile: None,
                fail_start: args.sim_fail_start,
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
            Box::new(Sysfs::open(opts).map_err(|e| format!("remoteproc {}: {e}", args.rproc))?)
        }
    };
    let mut cfg = Config {
        max_image: args.max_image,
        max_tcs: args.max_tcs,
        errors_on_close: args.errors_on_close,
        ..Config::default()
    };
    if args.ntcs == 0 || args.ntcs > args.max_tcs {
        return Err(format!(
            "--ntcs {} must be in 1..={}",
            args.ntcs, args.max_tcs
        ));
    }
    cfg.ntcs = args.ntcs;
    cfg.convert.base = args.base;
    cfg.convert.semantics = args.relocs;
    match (args.kernel, args.vpe1_load_addr) {
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
            cfg = cfg.lantiq(addr, mem, true);
        }
    }
    if args.backend == BackendKind::Sysfs {
        // The daemon runs on the machine whose kernel loads the firmware: remoteproc refuses
        // an ELF whose EI_DATA differs from the kernel's byte order.
        cfg.convert.host = Some(if cfg!(target_endian = "big") {
            vpe::elf::Endian::Big
        } else {
            vpe::elf::Endian::Little
        });
    }
    let own = ownership(args.group.as_deref())?;
    let dev = Arc::new(Device::new(cfg, backend));

    cleanup_stale_mount(&args.mount);
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
        "vpe-compat {} on {} (backend {}, limit {} bytes)",
        env!("CARGO_PKG_VERSION"),
        args.mount.display(),
        dev.status().backend,
        dev.max_image()
    );
    let mut dev_handle = None;
    if let Some(path) = &args.bind_dev {
        cleanup_stale_mount(path);
        match mount_dev_file(dev.clone(), path, own, args.max_write).await {
            Ok(h) => {
                info!("{} is the vpe1 device", path.display());
                dev_handle = Some((h, path.clone()));
            }
            Err(e) => {
                unmount(handle, &args.mount).await;
                return Err(format!("--bind-dev {}: {e}", path.display()));
            }
        }
    }
    notify_ready();

    let external = tokio::select! {
        _ = term.recv() => { info!("SIGTERM: unmounting"); false }
        _ = int.recv() => { info!("SIGINT: unmounting"); false }
        r = &mut handle => { warn!("{} was unmounted ({r:?}); exiting", args.mount.display()); true }
    };
    if let Some((h, path)) = dev_handle {
        unmount(h, &path).await;
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

/// Mount a one-file filesystem over `path`, whose root is `vpe1` itself.
async fn mount_dev_file(
    dev: Arc<Device>,
    path: &Path,
    own: Ownership,
    max_write: u32,
) -> io::Result<MountHandle> {
    if !path.exists() {
        std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)?;
    }
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(io::Error::other(
            "must be a regular file (a FUSE file mount cannot cover a device node or directory)",
        ));
    }
    // fuse3 prints `rootmode` with `{}` while the kernel parses octal: give the octal digits
    // of S_IFREG|perm as a decimal number (rust-crates.md).
    let perm = Node::Vpe1.perm(own.group_writable);
    let rootmode =
        100_000 + (perm / 64 % 8) as u32 * 100 + (perm / 8 % 8) as u32 * 10 + (perm % 8) as u32;
    let fs = VpeFs::single_file(dev, own, Node::Vpe1).max_write(max_write);
    mount(fs, path, own, Some(rootmode)).await
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
    fn args_parse_the_documented_flags() {
        let a = Args::try_parse_from([
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
        ])
        .unwrap();
        assert_eq!(a.backend, BackendKind::Sysfs);
        assert_eq!(a.base, Some(0x8020_0000));
        assert_eq!(
            a.max_image, 2_097_152,
            "P_SIZE with CONFIG_MIPS_VPE_LOADER_TOM"
        );
        assert!(a.errors_on_close && a.no_rollback && a.bring_up);
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
