//! Command-line definition (kept apart so the man page and completions come from one place).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vpe::convert;
use vpe::elf::Endian;
use vpe::image::RelocSemantics;
use vpe::lantiq::{LantiqLoader, Platform, VoiceCrcPolicy, VoiceOptions};
use vpe::rproc::check::KernelEra;
use vpe::rproc::firmware::Profile;

/// Convert legacy MIPS VPE ("SP") programs, as once written to /dev/vpe1, into remoteproc
/// firmware; inspect, check and verify such files.
///
/// `vpe-migrate OLD NEW` converts (same as `vpe-migrate convert OLD NEW`). The output is
/// checked with the kernel's remoteproc rules and proven equivalent to what the legacy loader
/// (arch/mips/kernel/vpe.c) would have put in memory before it is written (atomically).
///
/// Exit status: 0 success, 1 input rejected (the first line says `error: ...`), 2 usage.
#[derive(Debug, Parser)]
#[command(name = "vpe-migrate", version, args_conflicts_with_subcommands = true)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Cmd>,
    #[command(flatten)]
    pub convert: Option<ConvertArgs>,
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    /// Convert a legacy SP ELF (ET_REL or ET_EXEC) or a Lantiq voice image into remoteproc
    /// firmware.
    Convert(ConvertArgs),
    /// Convert every recognized image of a directory in parallel and write a migration
    /// report; never stops at the first failure (exit 1 if any image did not convert).
    Batch(BatchArgs),
    /// Show what the legacy loader would do with a file, or decode a firmware.
    Inspect {
        /// A legacy SP ELF or a remoteproc firmware.
        file: PathBuf,
        /// Base address a relocatable input is placed at (4 KiB aligned).
        #[arg(long, default_value = "0x10000000", value_parser = parse_base)]
        base: Addr,
        /// Relocation semantics for a relocatable input.
        #[arg(long, value_enum, default_value_t = Relocs::Strict)]
        relocs: Relocs,
        /// Read a non-ELF input as an old-format Lantiq voice image.
        #[arg(long)]
        lantiq_voice: bool,
        /// Byte order of a voice image's footer (default: detected, else big).
        #[arg(long, value_enum)]
        endian: Option<Host>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Apply the kernel's remoteproc loader rules; exit 0 or print the kernel's message.
    Check {
        /// A remoteproc firmware ELF.
        file: PathBuf,
        /// Byte order of the target kernel (`Unsupported firmware endianness` on mismatch).
        #[arg(long, value_enum)]
        host: Option<Host>,
        /// Also apply the geometry rules of a target profile.
        #[arg(long, value_enum)]
        profile: Option<ProfileArg>,
        /// Which kernel generation's rules and messages to apply.
        #[arg(long, value_enum, default_value_t = Kernel::Newest)]
        kernel: Kernel,
        /// With --profile mips-rproc: the target kernel's CONFIG_CMA_ALIGNMENT (order of
        /// 4 KiB pages); every carveout must map correctly for every physical address it
        /// allows.
        #[arg(long, value_name = "ORDER", default_value_t = 8, value_parser = clap::value_parser!(u8).range(2..=12))]
        cma_align: u8,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Prove NEW loads exactly what the legacy loader loaded from OLD, and starts at __start.
    Verify {
        /// The legacy SP ELF.
        old: PathBuf,
        /// The remoteproc firmware.
        new: PathBuf,
        /// Base OLD is placed at (default: from NEW's provenance note, else 0x10000000).
        #[arg(long, value_parser = parse_base)]
        base: Option<Addr>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        /// Also run both on the emulated core (hosted): OLD placed and relocated as
        /// vpe_elfload would and entered like vpe_run ($a2 = ntcs, $a3 = memsize from NEW's
        /// note), NEW as remoteproc boots it; their output and exit status must be equal.
        #[arg(long)]
        run: bool,
        /// Seconds each run may take (with --run).
        #[arg(long, default_value_t = 2.0)]
        timeout: f64,
    },
    /// Run FILE (a firmware, or any input `convert` accepts, converted in memory with the
    /// same options) on the emulated MIPS core. Hosted (default): the program's fd 1/2 go
    /// to stdout/stderr and `exit(N)` ends the run with status N. Exit 0 if it was still
    /// running at the timeout, 1 on a fault (an `error:` line, then the registers). The
    /// trace buffers (RSC_TRACE) are printed to stderr at the end.
    Run(RunArgs),
    /// Write the man page (vpe-migrate.1) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Print shell completions.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
    /// Write a synthetic SP object of about SIZE bytes (benchmarks; see vpe::synth).
    #[command(hide = true)]
    GenSynth {
        /// Approximate size (bytes; K, M, G or KiB, MiB, GiB suffixes).
        #[arg(long, value_parser = parse_size)]
        size: u32,
        /// Byte order.
        #[arg(long, value_enum, default_value_t = Host::Big)]
        endian: Host,
        /// Seed of the pseudo-random contents.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Where to write it.
        out: PathBuf,
    },
}

/// `vpe-migrate run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// A remoteproc firmware, or a legacy SP ELF / voice image to convert first.
    pub file: PathBuf,
    /// Serve o32 write/exit and start like qemu-user starts a static executable (default).
    #[arg(long, conflicts_with = "bare")]
    pub hosted: bool,
    /// Enter like the MIPS remoteproc driver (a0 = -3, a1/a2 = IPI numbers, a3 = 0); a
    /// syscall is a fault.
    #[arg(long)]
    pub bare: bool,
    /// Seconds to run a program that neither exits nor faults.
    #[arg(long, default_value_t = 2.0)]
    pub timeout: f64,
    /// Percent of one host core the emulated core may take (1-100; default 20).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub cpu_share: Option<u32>,
    #[command(flatten)]
    pub flags: ConversionFlags,
}

/// Options of a conversion.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The legacy SP ELF (what was written to /dev/vpe1), or a Lantiq voice firmware image.
    pub old: PathBuf,
    /// The firmware file to write (never the input; written via temp file + rename).
    pub new: PathBuf,
    #[command(flatten)]
    pub flags: ConversionFlags,
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ConvertArgs {
    pub fn options(&self) -> Result<convert::Options, vpe::Error> {
        self.flags.options()
    }
}

/// The conversion flags shared by `convert` and `batch`.
#[derive(Debug, Args, Clone)]
pub struct ConversionFlags {
    /// Target profile: `mips-rproc` (KUSEG carveouts, the MIPS remoteproc driver model) or
    /// `fixed` (addresses kept as linked, for a platform driver with fixed memory). Default:
    /// mips-rproc; fixed with --kernel lantiq and for voice images.
    #[arg(long, value_enum)]
    pub profile: Option<ProfileArg>,
    /// Address a relocatable input is placed at, 4 KiB aligned (default 0x10000000 for
    /// mips-rproc; required for fixed).
    #[arg(long, value_parser = parse_base)]
    pub base: Option<Addr>,
    /// Relocation semantics where the legacy loader and the MIPS ELF ABI disagree:
    /// `legacy` (bit-for-bit the old kernel) or `elf` (standard). Default: refuse and list
    /// the sites.
    #[arg(long, value_enum, default_value_t = Relocs::Strict)]
    pub relocs: Relocs,
    /// Value the trampoline puts in $a2 (the legacy loader passed the number of TCs; at
    /// least 1). The
    /// default 1 is a deliberate deviation: vpe.c passed hw_tcs - maxtcs, which depends on
    /// the board and the kernel command line and cannot be known here; pass the board's value.
    #[arg(long, default_value_t = 1, value_parser = parse_ntcs)]
    pub ntcs: u32,
    /// Value the trampoline puts in $a3 (legacy physical_memsize; 0 since Linux 6.3).
    #[arg(long, default_value_t = 0, value_parser = parse_u32)]
    pub memsize: u32,
    /// Extra zeroed memory after the image for stack and heap (bytes; K, M, G or KiB, MiB,
    /// GiB suffixes).
    #[arg(long, default_value = "0", value_parser = parse_size)]
    pub extra_mem: u32,
    /// Add an RSC_TRACE buffer of SIZE bytes inside the carveout.
    #[arg(long, value_parser = parse_size)]
    pub trace: Option<u32>,
    /// Enter __start directly (no register set-up; remoteproc passes $a0..$a3 of its own).
    #[arg(long)]
    pub no_trampoline: bool,
    /// Byte order of the target kernel; refuse an input of the other order.
    #[arg(long, value_enum)]
    pub host: Option<Host>,
    /// Which /dev/vpe1 loader to reproduce: `mainline` or `lantiq` (the OpenWrt/UGW
    /// IFX_VPE_EXT patch: image at --vpe1-load-addr, write limit --vpe1-mem, a missing
    /// __start or vpe_shared starts the program at KSEG1(vpe1_load_addr)).
    #[arg(long, value_enum, default_value_t = LoaderKernel::Mainline)]
    pub kernel: LoaderKernel,
    /// The board's vpe1_load_addr= (KSEG0, e.g. 0x83e00000): where the Lantiq loader and the
    /// voice driver put VPE1's image.
    #[arg(long, visible_alias = "load-addr", value_parser = parse_addr)]
    pub vpe1_load_addr: Option<Addr>,
    /// The board's vpe1_mem= (bytes; K, M, G or KiB, MiB, GiB suffixes): the Lantiq write
    /// limit and the voice memory limit (default 2M, what vpe1_get_max_mem() returns
    /// without it).
    #[arg(long, value_parser = parse_size)]
    pub vpe1_mem: Option<u32>,
    /// `--entry __start`: start at __start even where the Lantiq loader's quirk (vpe_shared
    /// missing) would start at KSEG1(vpe1_load_addr).
    #[arg(long, value_name = "SYMBOL", value_parser = ["__start"])]
    pub entry: Option<String>,
    /// Voice images: the chip the voice driver runs on (its platform check).
    #[arg(long, value_enum)]
    pub platform: Option<PlatformArg>,
    /// Voice images: byte order of the footer (default: detected by the magic, else big).
    #[arg(long, value_enum)]
    pub endian: Option<Host>,
    /// Treat a non-ELF input as an old-format Lantiq voice image (footer without magic).
    #[arg(long)]
    pub lantiq_voice: bool,
    /// Most memory the image may load, `.bss` included (bytes; K/M suffixes). Default 16M, or
    /// --vpe1-mem with --kernel lantiq.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub max_mem: Option<u32>,
    /// The target kernel's CONFIG_CMA_ALIGNMENT (order of 4 KiB pages, 2..=12): mips-rproc
    /// carveouts are at most 4 KiB << ORDER (1 MiB with the default 8).
    #[arg(long, value_name = "ORDER", default_value_t = 8, value_parser = clap::value_parser!(u8).range(2..=12))]
    pub cma_align: u8,
    /// Voice images: a CRC mismatch refuses the image (`fatal`, the upstream AR9/xRX100
    /// drivers) or only warns (`warn`, OpenWrt's patched driver).
    #[arg(long, value_enum, default_value_t = VoiceCrcArg::Fatal)]
    pub voice_crc: VoiceCrcArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum VoiceCrcArg {
    Fatal,
    Warn,
}

impl ConversionFlags {
    pub fn options(&self) -> Result<convert::Options, vpe::Error> {
        let bad = |message: String| vpe::Error::Convert { message };
        let mem = self.vpe1_mem.unwrap_or(vpe::legacy::P_SIZE_TOM);
        let lantiq = match (self.kernel, self.vpe1_load_addr) {
            (LoaderKernel::Mainline, _) => None,
            (LoaderKernel::Lantiq, Some(a)) => Some(LantiqLoader {
                vpe1_load_addr: a.0,
                vpe1_mem: mem,
                entry_override: self.entry.is_none(),
            }),
            (LoaderKernel::Lantiq, None) => {
                return Err(bad(
                    "--kernel lantiq needs --vpe1-load-addr ADDR (the board's vpe1_load_addr=, e.g. 0x83e00000)".into(),
                ))
            }
        };
        if self.entry.is_some() && lantiq.is_none() {
            return Err(bad(
                "--entry __start only changes the Lantiq loader's fallback (use it with --kernel lantiq)".into(),
            ));
        }
        let voice = self.vpe1_load_addr.map(|a| VoiceOptions {
            crc: match self.voice_crc {
                VoiceCrcArg::Fatal => VoiceCrcPolicy::Fatal,
                VoiceCrcArg::Warn => VoiceCrcPolicy::Warn,
            },
            load_addr: a.0,
            vpe1_mem: self.vpe1_mem,
            platform: self.platform.map(Into::into),
            endian: self.endian.map(Into::into),
            old_format: self.lantiq_voice,
        });
        let profile = match (self.profile, lantiq.is_some()) {
            (Some(ProfileArg::MipsRproc), true) => {
                return Err(bad(
                    "--kernel lantiq keeps the addresses the program ran at (KSEG0/KSEG1): it needs --profile fixed".into(),
                ))
            }
            (Some(p), _) => p.into(),
            (None, true) => Profile::Fixed,
            (None, false) => Profile::MipsRproc,
        };
        Ok(convert::Options {
            base: self.base.map(|b| b.0),
            profile,
            semantics: self.relocs.into(),
            ntcs: self.ntcs,
            memsize: self.memsize,
            extra_mem: self.extra_mem,
            trace: self.trace,
            trampoline: !self.no_trampoline,
            host: self.host.map(Into::into),
            lantiq,
            voice,
            max_mem: self.max_mem,
            cma_align: self.cma_align,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LoaderKernel {
    /// arch/mips/kernel/vpe.c as in Linux.
    Mainline,
    /// The Lantiq/OpenWrt IFX_VPE_EXT patch.
    Lantiq,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PlatformArg {
    /// AR9.
    Xrx100,
    /// VR9.
    Xrx200,
    /// AR10, GRX330.
    Xrx300,
}

impl From<PlatformArg> for Platform {
    fn from(p: PlatformArg) -> Self {
        match p {
            PlatformArg::Xrx100 => Platform::Xrx100,
            PlatformArg::Xrx200 => Platform::Xrx200,
            PlatformArg::Xrx300 => Platform::Xrx300,
        }
    }
}

/// `vpe-migrate batch IN_DIR OUT_DIR`.
#[derive(Debug, Args)]
pub struct BatchArgs {
    /// Directory of legacy images (not searched recursively).
    pub in_dir: PathBuf,
    /// Where the firmware goes (`NAME.fw` for each input `NAME`; created if missing).
    pub out_dir: PathBuf,
    /// Conversions run in parallel (default: the number of CPUs).
    #[arg(long, short = 'j')]
    pub jobs: Option<usize>,
    /// Write the migration report here: JSON if the name ends in .json, else Markdown.
    /// May be given twice.
    #[arg(long)]
    pub report: Vec<PathBuf>,
    #[command(flatten)]
    pub flags: ConversionFlags,
}

/// An address given on the command line.
#[derive(Debug, Clone, Copy)]
pub struct Addr(pub u32);

fn parse_u32(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (digits, radix) = match t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        Some(h) => (h, 16),
        None => (t, 10),
    };
    u32::from_str_radix(digits, radix).map_err(|e| format!("`{s}` is not a 32-bit number: {e}"))
}

fn parse_addr(s: &str) -> Result<Addr, String> {
    parse_u32(s).map(Addr)
}

/// The alignment `--base` needs: a page. The legacy loader's memory came page-aligned and
/// the firmware's segments and carveouts are laid out in pages.
pub const BASE_ALIGN: u32 = 0x1000;

fn parse_base(s: &str) -> Result<Addr, String> {
    let a = parse_u32(s)?;
    if a % BASE_ALIGN != 0 {
        return Err(format!(
            "`{s}` is not aligned: the base must be a multiple of {BASE_ALIGN:#x} (4 KiB, a page)"
        ));
    }
    Ok(Addr(a))
}

fn parse_ntcs(s: &str) -> Result<u32, String> {
    match parse_u32(s)? {
        0 => Err(
            "0 TCs: the legacy loader passed the number of TCs the program runs on, at least 1"
                .into(),
        ),
        n => Ok(n),
    }
}

/// Sizes: decimal or 0x hex, optional suffix K, M, G or KiB, MiB, GiB (powers of 1024; the
/// letter in either case), at most `u32::MAX` bytes.
fn parse_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let lower = t.to_ascii_lowercase();
    let (num, mult) = [("kib", 1u64 << 10), ("mib", 1 << 20), ("gib", 1 << 30)]
        .iter()
        .chain(&[("k", 1 << 10), ("m", 1 << 20), ("g", 1 << 30)])
        .find(|(suffix, _)| lower.ends_with(suffix))
        .map_or((t, 1), |&(suffix, m)| (&t[..t.len() - suffix.len()], m));
    let v = u64::from(parse_u32(num).map_err(|_| {
        format!("`{s}` is not a size: a number (decimal or 0x hex) with an optional K, M, G, KiB, MiB or GiB suffix")
    })?) * mult;
    u32::try_from(v).map_err(|_| {
        format!(
            "`{s}` is {v} bytes: more than the 32-bit limit of {} bytes (4 GiB - 1)",
            u32::MAX
        )
    })
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Relocs {
    /// Refuse when the two semantics disagree (list the sites).
    Strict,
    /// Bit-for-bit what arch/mips/kernel/vpe.c did.
    Legacy,
    /// The MIPS ELF ABI (what GNU ld does).
    Elf,
}

impl From<Relocs> for RelocSemantics {
    fn from(r: Relocs) -> Self {
        match r {
            Relocs::Strict => RelocSemantics::Strict,
            Relocs::Legacy => RelocSemantics::Legacy,
            Relocs::Elf => RelocSemantics::Elf,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Host {
    Big,
    Little,
}

impl From<Host> for Endian {
    fn from(h: Host) -> Self {
        match h {
            Host::Big => Endian::Big,
            Host::Little => Endian::Little,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProfileArg {
    MipsRproc,
    Fixed,
}

impl From<ProfileArg> for Profile {
    fn from(p: ProfileArg) -> Self {
        match p {
            ProfileArg::MipsRproc => Profile::MipsRproc,
            ProfileArg::Fixed => Profile::Fixed,
        }
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum Kernel {
    /// Current mainline rules (v6.2+).
    Newest,
    /// v6.1 (a bad vring no longer fails the boot).
    #[value(name = "v6.1")]
    V61,
    /// v5.19 - v6.0 (empty PT_LOADs skipped).
    #[value(name = "v5.19")]
    V519,
    /// v5.7 - v5.18 (ELF64-aware sanity check; empty PT_LOADs refused).
    #[value(name = "v5.7")]
    V57,
    /// v4.20 - v5.6 (ELF32-only sanity check order).
    Pre57,
    /// v4.10 - v4.19 (`Failed to find resource table`, carveouts and traces handled while the
    /// table is parsed, empty PT_LOAD rejected).
    Old4x,
}

impl From<Kernel> for KernelEra {
    fn from(k: Kernel) -> Self {
        match k {
            Kernel::Newest => KernelEra::Newest,
            Kernel::V61 => KernelEra::V61,
            Kernel::V519 => KernelEra::V519,
            Kernel::V57 => KernelEra::V57,
            Kernel::Pre57 => KernelEra::Pre57,
            Kernel::Old4x => KernelEra::Old4x,
        }
    }
}
