//! The one error type of the `vpe` crate.
//!
//! Where the legacy kernel or the remoteproc core printed a message for a condition, the
//! `Display` text starts with that message verbatim (people grep dmesg for it) and then says
//! where the problem is. Addresses are printed as `{:#010x}`.
//!
//! Helpers: add variants here with named fields; never reuse a variant for a different meaning.

use thiserror::Error;

/// Result alias used throughout the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Where a relocation is: which entry of which relocation section, patching what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelocationSite {
    /// Index of the entry in its relocation section.
    pub index: usize,
    /// The relocation section (e.g. `.rel.text`).
    pub section: String,
    /// The section it patches (e.g. `.text`).
    pub target: String,
    pub r_offset: u32,
    /// Final address of the patched word.
    pub location: u32,
    pub r_type: u8,
    /// The kernel's name (`MIPS_26`, ... or `UNKNOWN`).
    pub type_name: String,
    /// The symbol's name as the kernel printed it (`strtab + st_name`: empty for a section
    /// symbol).
    pub symbol: String,
    /// For a section symbol: `[index] name` of its section (our addition to the message).
    pub symbol_section: Option<String>,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    // ---- legacy loader (arch/mips/kernel/vpe.c) -------------------------------------------
    /// Not starting with `\x7fELF`.
    #[error("VPE loader: only elf files are supported ({detail})")]
    NotElf { detail: String },

    /// Magic, `e_type`, `elf_check_arch` or `e_shentsize` rejected.
    #[error("VPE loader: program wrong arch or weird elf version ({detail})")]
    WrongArch { detail: String },

    /// Section header table beyond the end of the data.
    #[error(
        "VPE loader: program length {len} truncated (section headers at {shoff:#010x} + {shnum} x 40 end past the {len}-byte file)"
    )]
    HeadersTruncated { len: u64, shoff: u32, shnum: u16 },

    /// A section's contents beyond the end of the data (note: the kernel's text has no
    /// "loader:").
    #[error(
        "VPE program length {len} truncated (section [{index}] {name} at {offset:#010x} size {size:#010x} ends past the file)"
    )]
    SectionTruncated {
        len: u64,
        index: usize,
        name: String,
        offset: u32,
        size: u32,
    },

    /// A structural problem the legacy kernel did not check (it would have read out of
    /// bounds or oopsed); `what` names the field, `at` the file offset.
    #[error("malformed ELF: {what} (at file offset {at:#010x})")]
    Malformed { what: String, at: u64 },

    /// `__start` missing (or 0).
    #[error("VPE loader: program does not contain a __start symbol")]
    NoStart,

    /// A relocation the legacy kernel could not apply. The site is boxed so that `Result`s
    /// stay small on the hot path.
    #[error(
        "VPE loader: .text+{:#x} relocation type {} for symbol \"{}\" failed: {reason} (relocation #{} in {}, target {} at {:#010x}, r_type {}{})",
        site.r_offset, site.type_name, site.symbol, site.index, site.section, site.target, site.location, site.r_type,
        site.symbol_section.as_ref().map(|s| format!(", symbol: the section symbol of {s}")).unwrap_or_default()
    )]
    Relocation {
        site: Box<RelocationSite>,
        reason: String,
    },

    /// SHT_RELA on an ALLOC target.
    #[error(
        "module VPE loader: REL relocation unsupported (section [{index}] {section} is SHT_RELA)"
    )]
    Rela { index: usize, section: String },

    /// Legacy and standard ELF relocation semantics disagree; one line per site.
    #[error(
        "relocation semantics differ between the legacy VPE loader and the MIPS ELF ABI at {} site(s):\n{}\nchoose --relocs legacy (bit-for-bit what the old kernel did) or --relocs elf (standard semantics)",
        sites.len(),
        sites.iter().map(|s| format!("  {s}")).collect::<Vec<_>>().join("\n")
    )]
    SemanticsDiffer { sites: Vec<String> },

    // ---- remoteproc kernel rules (drivers/remoteproc/*) ------------------------------------
    /// The kernel would refuse the firmware; `message` is the kernel's text, `errno` what the
    /// `state` write returns, `detail` says where.
    #[error("{message}{}", if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
    Kernel {
        message: String,
        errno: i32,
        detail: String,
    },

    /// The kernel would accept the firmware but it would not work (silent failures, profile
    /// geometry).
    #[error("{message}")]
    Firmware { message: String },

    // ---- driving a remote processor (remoteproc::sysfs, remoteproc::sim) -------------------
    /// A sysfs attribute access or the firmware install failed. `message` names the instance,
    /// the attribute, the value and what the errno means; `errno` is what the kernel or the
    /// file system returned (0 when there was none, e.g. a name refused before any I/O).
    #[error("{message}")]
    Backend { message: String, errno: i32 },

    // ---- Lantiq voice firmware (drv_mps_vmmc ifx_mps_download_firmware) --------------------
    /// The voice driver would refuse the image; `message` is the driver's text verbatim,
    /// `detail` says which field and value.
    #[error("{message}{}", if detail.is_empty() { String::new() } else { format!(" ({detail})") })]
    Voice { message: String, detail: String },

    // ---- SP memory and RTLX (spmem, rtlx) ------------------------------------------------
    /// An SP address range that lies in no single carveout: never read or written.
    #[error("SP address {da:#010x} + {len:#x} bytes is outside every carveout ({carveouts})")]
    SpAddress {
        da: u32,
        len: u64,
        carveouts: String,
    },

    /// What the SP published for RTLX cannot be served. `message` starts with the legacy
    /// kernel's text where it had one and names the channel and address; `errno` is what the
    /// `/dev/rtlxN` operation returns.
    #[error("{message}")]
    Rtlx { message: String, errno: i32 },

    /// A kspd request that cannot be decoded (the legacy kspd would have overrun its stack).
    #[error("{message}")]
    Kspd { message: String },

    /// The image would load more memory than the limit (`legacy::Options::max_mem`); checked
    /// in the layout, before any memory is allocated for it. `what` names the section or
    /// segment that goes over, `size` its size, `total` the image's size with it.
    #[error(
        "{what} ({size:#x} bytes) brings the memory the image loads to {total:#x} bytes, over the limit of {limit:#x} bytes: the SP's memory could not hold it (--max-mem raises the limit)"
    )]
    MemoryLimit {
        what: String,
        size: u64,
        total: u64,
        limit: u32,
    },

    /// The emulated core could not be set up (or the build has no emulator); `message` says
    /// what and where.
    #[error("{message}")]
    Emulator { message: String },

    // ---- conversion -----------------------------------------------------------------------
    /// A request the converter cannot honour (bad option combination, address out of range).
    #[error("{message}")]
    Convert { message: String },
}

impl Error {
    /// The errno a `/dev/vpe1` or `state` write would report for this error.
    pub fn errno(&self) -> i32 {
        const ENOEXEC: i32 = 8;
        match self {
            Error::Kernel { errno, .. } => *errno,
            Error::Backend { errno, .. } if *errno != 0 => *errno,
            Error::Rtlx { errno, .. } => *errno,
            _ => ENOEXEC,
        }
    }
}
