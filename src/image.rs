//! [`Image`]: what a loader puts into memory. The one value every stage passes on.
//!
//! The legacy model produces it from bytes written to `/dev/vpe1`; the firmware writer turns
//! it into a remoteproc ELF; the checker turns that ELF back into the `Image` remoteproc would
//! load. `verify` compares the two.

use serde::Serialize;

use crate::elf::Endian;

/// A contiguous range of memory written by a loader: `data` copied at `addr`, then zeros up
/// to `addr + mem_size`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// Address the bytes land at (the address the program sees).
    pub addr: u32,
    /// Bytes copied from the file.
    #[serde(skip)]
    pub data: Vec<u8>,
    /// Total size in memory, `>= data.len()`; the tail is zero-filled.
    pub mem_size: u32,
}

impl Segment {
    /// One past the last byte (exclusive end) in memory; `u64` so it never wraps.
    pub fn end(&self) -> u64 {
        u64::from(self.addr) + u64::from(self.mem_size)
    }

    /// The byte the loader leaves at `addr`, if `addr` is inside this segment.
    pub fn byte_at(&self, addr: u32) -> Option<u8> {
        let off = addr.checked_sub(self.addr)? as usize;
        if off < self.data.len() {
            Some(self.data[off])
        } else if (off as u64) < u64::from(self.mem_size) {
            Some(0)
        } else {
            None
        }
    }
}

/// Where a named section of the input ended up (for `inspect`, section headers in the
/// firmware, and the GNU ld differential test).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlacedSection {
    /// Index in the input's section header table.
    pub index: usize,
    pub name: String,
    /// Final address.
    pub addr: u32,
    pub size: u32,
    pub align: u32,
    /// Input `sh_flags` (SHF_*).
    pub flags: u32,
    /// Input `sh_type` (SHT_*).
    pub sh_type: u32,
    /// Offset from the start of the legacy image (`sh_entsize` in the kernel's layout).
    pub offset: u32,
}

/// A symbol worth keeping in the firmware's `.symtab`, with its final value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Symbol {
    pub name: String,
    pub value: u32,
    pub size: u32,
    /// `st_info` of the input (binding and type).
    pub info: u8,
    /// Index into `Image::sections` of the section it lives in; `None` for absolute symbols.
    pub section: Option<usize>,
}

/// How the relocations were (or would be) applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum RelocSemantics {
    /// Refuse when legacy and ELF semantics disagree anywhere (the default).
    #[default]
    Strict,
    /// Bit-for-bit what `arch/mips/kernel/vpe.c` did.
    Legacy,
    /// The MIPS ELF ABI meaning (what GNU ld does).
    Elf,
}

impl std::str::FromStr for RelocSemantics {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "strict" => Ok(RelocSemantics::Strict),
            "legacy" => Ok(RelocSemantics::Legacy),
            "elf" => Ok(RelocSemantics::Elf),
            _ => Err(format!(
                "unknown relocation semantics `{s}` (strict, legacy, elf)"
            )),
        }
    }
}

impl RelocSemantics {
    pub fn as_str(self) -> &'static str {
        match self {
            RelocSemantics::Strict => "strict",
            RelocSemantics::Legacy => "legacy",
            RelocSemantics::Elf => "elf",
        }
    }
}

/// The kind of input a legacy image was made from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum InputKind {
    /// ELF relocatable (`ld -r` / `.o`), placed and relocated by the loader.
    Rel,
    /// ELF executable, copied to `p_paddr`.
    Exec,
    /// A remoteproc firmware (output of this tool or another).
    Firmware,
}

/// A warning the loader or converter emits; `message` uses the legacy text where one exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    pub message: String,
}

impl Warning {
    pub fn new(message: impl Into<String>) -> Self {
        Warning {
            message: message.into(),
        }
    }
}

/// What a loader puts into memory and where execution starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Image {
    pub kind: InputKind,
    pub endian: Endian,
    /// `e_flags` of the input, carried into the firmware unchanged.
    pub e_flags: u32,
    /// Sorted by address, non-overlapping.
    pub segments: Vec<Segment>,
    /// Where the program starts (`__start` for legacy inputs; `e_entry` for firmware).
    pub entry: u32,
    /// Address of the `vpe_shared` variable, if the program has one.
    pub shared: Option<u32>,
    /// `_gp` as the loader saw it, if any symbol named `_gp*` was present.
    pub gp: Option<u32>,
    /// Base address the image was placed at (ET_REL) or lowest segment address (ET_EXEC).
    pub base: u32,
    /// Placed sections (ALLOC ones) in input order.
    pub sections: Vec<PlacedSection>,
    /// Symbols with final values, in input order (section and file symbols dropped).
    pub symbols: Vec<Symbol>,
    pub warnings: Vec<Warning>,
}

impl Image {
    /// The byte a loader left at `addr`, if any segment covers it.
    pub fn byte_at(&self, addr: u32) -> Option<u8> {
        self.segments.iter().find_map(|s| s.byte_at(addr))
    }

    /// Lowest address loaded and one past the highest (`None` if nothing is loaded).
    pub fn span(&self) -> Option<(u32, u64)> {
        let lo = self.segments.iter().map(|s| s.addr).min()?;
        let hi = self.segments.iter().map(Segment::end).max()?;
        Some((lo, hi))
    }

    /// Value of the first symbol called `name`, if kept.
    pub fn symbol(&self, name: &str) -> Option<u32> {
        self.symbols
            .iter()
            .find(|s| s.name == name)
            .map(|s| s.value)
    }
}
