//! Command-line definition (kept apart so the man page and completions come from one place).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use vpe::convert;
use vpe::elf::Endian;
use vpe::image::RelocSemantics;
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
    /// Convert a legacy SP ELF (ET_REL or ET_EXEC) into remoteproc firmware.
    Convert(ConvertArgs),
    /// Show what the legacy loader would do with a file, or decode a firmware.
    Inspect {
        /// A legacy SP ELF or a remoteproc firmware.
        file: PathBuf,
        /// Base address a relocatable input is placed at.
        #[arg(long, default_value = "0x10000000", value_parser = parse_addr)]
        base: Addr,
        /// Relocation semantics for a relocatable input.
        #[arg(long, value_enum, default_value_t = Relocs::Strict)]
        relocs: Relocs,
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
        #[arg(long, value_parser = parse_addr)]
        base: Option<Addr>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Write the man page (vpe-migrate.1) into DIR.
    #[command(hide = true)]
    Man { dir: PathBuf },
    /// Print shell completions.
    #[command(hide = true)]
    Completions { shell: clap_complete::Shell },
}

/// Options of a conversion.
#[derive(Debug, Args)]
pub struct ConvertArgs {
    /// The legacy SP ELF (what was written to /dev/vpe1).
    pub old: PathBuf,
    /// The firmware file to write (never the input; written via temp file + rename).
    pub new: PathBuf,
    /// Target profile: `mips-rproc` (KUSEG carveouts, the MIPS remoteproc driver model) or
    /// `fixed` (addresses kept as linked, for a platform driver with fixed memory).
    #[arg(long, value_enum, default_value_t = ProfileArg::MipsRproc)]
    pub profile: ProfileArg,
    /// Address a relocatable input is placed at (default 0x10000000 for mips-rproc;
    /// required for fixed).
    #[arg(long, value_parser = parse_addr)]
    pub base: Option<Addr>,
    /// Relocation semantics where the legacy loader and the MIPS ELF ABI disagree:
    /// `legacy` (bit-for-bit the old kernel) or `elf` (standard). Default: refuse and list
    /// the sites.
    #[arg(long, value_enum, default_value_t = Relocs::Strict)]
    pub relocs: Relocs,
    /// Value the trampoline puts in $a2 (the legacy loader passed the number of TCs).
    #[arg(long, default_value_t = 1, value_parser = parse_u32)]
    pub ntcs: u32,
    /// Value the trampoline puts in $a3 (legacy physical_memsize; 0 since Linux 6.3).
    #[arg(long, default_value_t = 0, value_parser = parse_u32)]
    pub memsize: u32,
    /// Extra zeroed memory after the image for stack and heap (bytes; K/M suffixes).
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
    /// Print a JSON summary instead of text.
    #[arg(long)]
    pub json: bool,
}

impl ConvertArgs {
    pub fn options(&self) -> convert::Options {
        convert::Options {
            base: self.base.map(|b| b.0),
            profile: self.profile.into(),
            semantics: self.relocs.into(),
            ntcs: self.ntcs,
            memsize: self.memsize,
            extra_mem: self.extra_mem,
            trace: self.trace,
            trampoline: !self.no_trampoline,
            host: self.host.map(Into::into),
        }
    }
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

/// Sizes: decimal or 0x hex, optional K/M suffix (powers of 1024).
fn parse_size(s: &str) -> Result<u32, String> {
    let t = s.trim();
    let (num, mult) = match t.chars().last() {
        Some('k' | 'K') => (&t[..t.len() - 1], 1024u64),
        Some('m' | 'M') => (&t[..t.len() - 1], 1024 * 1024),
        _ => (t, 1),
    };
    let v = u64::from(parse_u32(num)?) * mult;
    u32::try_from(v).map_err(|_| format!("`{s}` does not fit in 32 bits"))
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

#[derive(Debug, Clone, Copy, ValueEnum)]
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
    /// Current mainline rules (v5.7+).
    Newest,
    /// v4.10–v5.6 (ELF32-only sanity check order).
    Pre57,
    /// 4.x messages (`Failed to find resource table`, empty PT_LOAD rejected).
    Old4x,
}

impl From<Kernel> for KernelEra {
    fn from(k: Kernel) -> Self {
        match k {
            Kernel::Newest => KernelEra::Newest,
            Kernel::Pre57 => KernelEra::Pre57,
            Kernel::Old4x => KernelEra::Old4x,
        }
    }
}
