//! ELF32 reading and writing with the byte order carried as a runtime value (from `EI_DATA`).
//! Constants are named as in the kernel and binutils.

pub mod read;
pub mod write;

use serde::Serialize;

/// Byte order, always taken from `EI_DATA` of the input; never the host's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endian {
    Little,
    Big,
}

impl Endian {
    /// From `e_ident[EI_DATA]`.
    pub fn from_ei_data(b: u8) -> Option<Self> {
        match b {
            ELFDATA2LSB => Some(Endian::Little),
            ELFDATA2MSB => Some(Endian::Big),
            _ => None,
        }
    }
    pub fn ei_data(self) -> u8 {
        match self {
            Endian::Little => ELFDATA2LSB,
            Endian::Big => ELFDATA2MSB,
        }
    }
    pub fn read_u16(self, b: [u8; 2]) -> u16 {
        match self {
            Endian::Little => u16::from_le_bytes(b),
            Endian::Big => u16::from_be_bytes(b),
        }
    }
    pub fn read_u32(self, b: [u8; 4]) -> u32 {
        match self {
            Endian::Little => u32::from_le_bytes(b),
            Endian::Big => u32::from_be_bytes(b),
        }
    }
    pub fn u16_bytes(self, v: u16) -> [u8; 2] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    pub fn u32_bytes(self, v: u32) -> [u8; 4] {
        match self {
            Endian::Little => v.to_le_bytes(),
            Endian::Big => v.to_be_bytes(),
        }
    }
    /// `"big"` / `"little"`.
    pub fn name(self) -> &'static str {
        match self {
            Endian::Little => "little",
            Endian::Big => "big",
        }
    }
}

// e_ident (include/uapi/linux/elf.h)
pub const ELFMAG: &[u8; 4] = b"\x7fELF";
pub const EI_CLASS: usize = 4;
pub const EI_DATA: usize = 5;
pub const EI_VERSION: usize = 6;
pub const ELFCLASS32: u8 = 1;
pub const ELFCLASS64: u8 = 2;
pub const ELFDATA2LSB: u8 = 1;
pub const ELFDATA2MSB: u8 = 2;
pub const EV_CURRENT: u8 = 1;

pub const ET_REL: u16 = 1;
pub const ET_EXEC: u16 = 2;
pub const ET_DYN: u16 = 3;
pub const EM_MIPS: u16 = 8;

pub const EHDR32_SIZE: usize = 52;
pub const PHDR32_SIZE: usize = 32;
pub const SHDR32_SIZE: usize = 40;
pub const SYM32_SIZE: usize = 16;
pub const REL32_SIZE: usize = 8;
pub const RELA32_SIZE: usize = 12;

// e_flags (arch/mips/include/asm/elf.h)
pub const EF_MIPS_NOREORDER: u32 = 0x0000_0001;
pub const EF_MIPS_PIC: u32 = 0x0000_0002;
pub const EF_MIPS_CPIC: u32 = 0x0000_0004;
pub const EF_MIPS_ABI2: u32 = 0x0000_0020;
pub const EF_MIPS_FP64: u32 = 0x0000_0200;
pub const EF_MIPS_NAN2008: u32 = 0x0000_0400;
pub const EF_MIPS_ABI: u32 = 0x0000_f000;
pub const EF_MIPS_ABI_O32: u32 = 0x0000_1000;
pub const EF_MIPS_ARCH: u32 = 0xf000_0000;

// p_type
pub const PT_NULL: u32 = 0;
pub const PT_LOAD: u32 = 1;
pub const PT_NOTE: u32 = 4;
pub const PT_MIPS_REGINFO: u32 = 0x7000_0000;
pub const PT_MIPS_ABIFLAGS: u32 = 0x7000_0003;
pub const PF_X: u32 = 1;
pub const PF_W: u32 = 2;
pub const PF_R: u32 = 4;

// sh_type
pub const SHT_NULL: u32 = 0;
pub const SHT_PROGBITS: u32 = 1;
pub const SHT_SYMTAB: u32 = 2;
pub const SHT_STRTAB: u32 = 3;
pub const SHT_RELA: u32 = 4;
pub const SHT_NOTE: u32 = 7;
pub const SHT_NOBITS: u32 = 8;
pub const SHT_REL: u32 = 9;
pub const SHT_MIPS_REGINFO: u32 = 0x7000_0006;
pub const SHT_MIPS_ABIFLAGS: u32 = 0x7000_002a;

// sh_flags
pub const SHF_WRITE: u32 = 0x1;
pub const SHF_ALLOC: u32 = 0x2;
pub const SHF_EXECINSTR: u32 = 0x4;

// special section indices
pub const SHN_UNDEF: u16 = 0;
pub const SHN_LORESERVE: u16 = 0xff00;
pub const SHN_MIPS_ACOMMON: u16 = 0xff00;
pub const SHN_MIPS_SCOMMON: u16 = 0xff03;
pub const SHN_ABS: u16 = 0xfff1;
pub const SHN_COMMON: u16 = 0xfff2;
pub const SHN_XINDEX: u16 = 0xffff;

// st_info
pub const STB_LOCAL: u8 = 0;
pub const STB_GLOBAL: u8 = 1;
pub const STB_WEAK: u8 = 2;
pub const STT_NOTYPE: u8 = 0;
pub const STT_OBJECT: u8 = 1;
pub const STT_FUNC: u8 = 2;
pub const STT_SECTION: u8 = 3;
pub const STT_FILE: u8 = 4;

// MIPS relocation types (arch/mips/include/uapi/asm/elf.h? no: include/uapi/linux/elf-em.h,
// arch/mips/include/asm/elf.h)
pub const R_MIPS_NONE: u8 = 0;
pub const R_MIPS_16: u8 = 1;
pub const R_MIPS_32: u8 = 2;
pub const R_MIPS_REL32: u8 = 3;
pub const R_MIPS_26: u8 = 4;
pub const R_MIPS_HI16: u8 = 5;
pub const R_MIPS_LO16: u8 = 6;
pub const R_MIPS_GPREL16: u8 = 7;
pub const R_MIPS_LITERAL: u8 = 8;
pub const R_MIPS_GOT16: u8 = 9;
pub const R_MIPS_PC16: u8 = 10;
pub const R_MIPS_CALL16: u8 = 11;
pub const R_MIPS_GPREL32: u8 = 12;
pub const R_MIPS_JALR: u8 = 37;
