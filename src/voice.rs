//! Lantiq/Intel xRX VMMC voice firmware images (spec §6.4): what `drv_mps_vmmc`
//! (`ifx_mps_download_firmware`, `drv_mps_vmmc_ar9.c`) loaded at `vpe1_load_addr` and started
//! with `vpe1_sw_start(KSEG1(base), 0, 0)`. The Lantiq `/dev/vpe1` loader variant is
//! [`crate::legacy::lantiq`].
//!
//! A voice image is raw code with a 28-byte footer (`FW_image_ftr_t`, 7 words in the SoC's
//! byte order): `crc32`, `st_addr_crc`, `en_addr_crc`, `fw_vers` (bits 11:8 = platform),
//! `enc` (bit 0 encrypted, bit 1 mailbox layout 2), `magic` (`0xCC123456` = new format) and
//! `mem` (bits 23:0 memory requirement, bits 31:24 check byte `~(b0+b1+b2)`). This module
//! reproduces the driver's checks in its order and with its messages, and turns the bytes the
//! driver copied into an [`Image`] (one segment at the physical base, entry = KSEG1(base)).
//!
//! Encrypted payloads are decrypted by a routine in the SoC's boot ROM after the copy; they
//! cannot be decrypted here, so they are carried unchanged (see `docs/CONVERSION.md` §7).

use serde::Serialize;

use crate::elf::Endian;
use crate::error::{Error, Result};
use crate::image::{Image, InputKind, Segment, Warning};
use crate::legacy::lantiq::{kseg1, physical};
use crate::legacy::P_SIZE_TOM;

/// `FW_MAGIC_NUM` (drv_mps_vmmc_device.h): the footer's `magic` word of the new format.
pub const VOICE_MAGIC: u32 = 0xCC12_3456;
/// `sizeof(FW_image_ftr_t)`.
pub const FOOTER_SIZE: usize = 28;
/// `FW_ENC_ENCRYPT`.
pub const FW_ENC_ENCRYPT: u32 = 0x1;
/// `FW_ENC_MBOX_LAYOUT_2`.
pub const FW_ENC_MBOX_LAYOUT_2: u32 = 0x2;
/// `2*sizeof(u32) + FW_AR9_OLD_FMT_XCPT_AREA_SZ`: where the old format's CRC range starts.
pub const OLD_FORMAT_CRC_START: u32 = 8 + 28;
/// What the driver assumes when the `mem` check byte is wrong (1 MiB).
pub const DEFAULT_MEM: u32 = 0x10_0000;
/// `vpe1_load_addr` must be 1 MiB aligned (`cpu1_base_addr & 0xfffff`).
pub const BASE_ALIGN: u32 = 0x10_0000;

/// drv_mps_vmmc messages, verbatim (without the `[%s %s %d]: ` file/function/line prefix).
pub const MSG_PLATFORM: &str = "Firmware does not match to this platform.";
pub const MSG_NO_SIZE: &str = "warning, image does not contain size - assuming 1MB!";
pub const MSG_BASE_INVALID: &str = "IFX_MPS: CPU1 base address is invalid!";
pub const MSG_BASE_ALIGN: &str = "IFX_MPS: CPU1 base address is not 1MB aligned!";

// ---- voice firmware -------------------------------------------------------------------------

/// The platform nibble of `fw_vers` (bits 11:8; `FW_PLT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Platform {
    IncaIp2,
    Danube,
    Xrx100,
    Xrx200,
    Xrx300,
}

impl Platform {
    pub const ALL: [Platform; 5] = [
        Platform::IncaIp2,
        Platform::Danube,
        Platform::Xrx100,
        Platform::Xrx200,
        Platform::Xrx300,
    ];

    /// `FW_PLT_INCA_IP2` 0, `FW_PLT_DANUBE` 1, `FW_PLT_XRX100` 4, `FW_PLT_XRX200` 7,
    /// `FW_PLT_XRX300` 8.
    pub fn nibble(self) -> u32 {
        match self {
            Platform::IncaIp2 => 0,
            Platform::Danube => 1,
            Platform::Xrx100 => 4,
            Platform::Xrx200 => 7,
            Platform::Xrx300 => 8,
        }
    }

    pub fn from_nibble(n: u32) -> Option<Platform> {
        Platform::ALL.into_iter().find(|p| p.nibble() == n)
    }

    pub fn name(self) -> &'static str {
        match self {
            Platform::IncaIp2 => "INCA-IP2",
            Platform::Danube => "Danube",
            Platform::Xrx100 => "xRX100 (AR9)",
            Platform::Xrx200 => "xRX200 (VR9)",
            Platform::Xrx300 => "xRX300 (AR10/GRX330)",
        }
    }

    /// True for the chips whose voice CPU is VPE1 of a 34Kc (the others have a separate
    /// CPU1 started through the RCU, spec §6.5).
    pub fn is_vpe(self) -> bool {
        matches!(self, Platform::Xrx100 | Platform::Xrx200 | Platform::Xrx300)
    }
}

impl std::str::FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "xrx100" | "ar9" => Ok(Platform::Xrx100),
            "xrx200" | "vr9" => Ok(Platform::Xrx200),
            "xrx300" | "ar10" | "grx330" => Ok(Platform::Xrx300),
            _ => Err(format!(
                "unknown platform `{s}` (xrx100, xrx200, xrx300; the driver's platform check exists only for these)"
            )),
        }
    }
}

/// `FW_image_ftr_t` as read from the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub struct Footer {
    pub crc32: u32,
    pub st_addr_crc: u32,
    pub en_addr_crc: u32,
    pub fw_vers: u32,
    pub enc: u32,
    pub magic: u32,
    pub mem: u32,
}

impl Footer {
    /// Encode in `endian` (for tests and tools that build images).
    pub fn encode(&self, endian: Endian) -> [u8; FOOTER_SIZE] {
        let mut out = [0u8; FOOTER_SIZE];
        let words = [
            self.crc32,
            self.st_addr_crc,
            self.en_addr_crc,
            self.fw_vers,
            self.enc,
            self.magic,
            self.mem,
        ];
        for (i, w) in words.iter().enumerate() {
            out[i * 4..i * 4 + 4].copy_from_slice(&endian.u32_bytes(*w));
        }
        out
    }

    /// The last 28 bytes as the driver copies them: `data + length/4 - 7` words, so for a
    /// length that is not a multiple of 4 the footer ends at the last whole word.
    pub fn read(bytes: &[u8], endian: Endian) -> Option<(Footer, usize)> {
        let end = bytes.len() & !3;
        let at = end.checked_sub(FOOTER_SIZE)?;
        let w = |k: usize| {
            let o = at + 4 * k;
            endian.read_u32([bytes[o], bytes[o + 1], bytes[o + 2], bytes[o + 3]])
        };
        Some((
            Footer {
                crc32: w(0),
                st_addr_crc: w(1),
                en_addr_crc: w(2),
                fw_vers: w(3),
                enc: w(4),
                magic: w(5),
                mem: w(6),
            },
            at,
        ))
    }

    pub fn is_new_format(&self) -> bool {
        self.magic == VOICE_MAGIC
    }

    /// `fw_vers >> 8 & 0xf`.
    pub fn platform_nibble(&self) -> u32 {
        (self.fw_vers >> 8) & 0xf
    }
}

/// The check byte the driver expects in bits 31:24 of `mem`:
/// `0xFF & ~((mem >> 16) + (mem >> 8) + mem)`.
pub fn mem_check_byte(mem: u32) -> u32 {
    0xff & !((mem >> 16).wrapping_add(mem >> 8).wrapping_add(mem))
}

/// A `mem` word with a valid check byte for a requirement of `size` bytes (< 16 MiB).
pub fn mem_word(size: u32) -> u32 {
    let s = size & 0x00ff_ffff;
    s | (mem_check_byte(s) << 24)
}

/// Which footer layout the driver applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VoiceFormat {
    /// `magic == 0xCC123456`.
    New,
    /// Anything else (only accepted with `--lantiq-voice`): only `mem` is meaningful.
    Old,
}

/// `ifx_mps_fw_crc32` (drv_mps_vmmc_common.c) covers the reset vector and then the CRC range:
/// `crc = ifx_mps_calc_crc32(0xffffffff, base, 8, IFX_FALSE);`
/// `crc = ifx_mps_calc_crc32(~crc, base + st_addr_crc, en_addr_crc - st_addr_crc, IFX_TRUE);`
/// (the exception area between is skipped: the firmware writes it at run time). The
/// polynomial is 0x04C11DB7 (`POLY`, drv_mps_vmmc_crc32.h, table-driven); the body of
/// `ifx_mps_calc_crc32` (bit order, what the flag does, the final inversion) is not public. These
/// are the readings of those two calls we compute; [`CrcCheck`] says which one matched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CrcVariant {
    /// One CRC-32/IEEE (reflected, init and final XOR 0xffffffff: zlib's) over both parts.
    Ieee,
    /// CRC-32/BZIP2 (MSB first, init and final XOR 0xffffffff) over both parts.
    Bzip2,
    /// CRC-32/JAMCRC (reflected, init 0xffffffff, no final XOR) over both parts.
    Jamcrc,
    /// CRC-32/MPEG-2 (MSB first, init 0xffffffff, no final XOR) over both parts.
    Mpeg2,
    /// Literal reading, reflected: `calc(init, …, final)` starts from `init` and inverts at
    /// the end only when `final`, so the register is inverted between the two calls.
    ChainedReflected,
    /// The same literal reading, MSB first.
    ChainedMsbFirst,
    /// zlib-style `calc` (inverts `init` on entry, and at the end when `final`), reflected:
    /// the first call then starts from 0.
    ZlibStyleReflected,
    /// zlib-style `calc`, MSB first.
    ZlibStyleMsbFirst,
}

impl CrcVariant {
    /// Every variant, in the order they are tried (the first one is what we write).
    pub const ALL: [CrcVariant; 8] = [
        CrcVariant::Ieee,
        CrcVariant::Bzip2,
        CrcVariant::Jamcrc,
        CrcVariant::Mpeg2,
        CrcVariant::ChainedReflected,
        CrcVariant::ChainedMsbFirst,
        CrcVariant::ZlibStyleReflected,
        CrcVariant::ZlibStyleMsbFirst,
    ];

    pub fn name(self) -> &'static str {
        match self {
            CrcVariant::Ieee => "crc32-ieee",
            CrcVariant::Bzip2 => "crc32-bzip2",
            CrcVariant::Jamcrc => "crc32-jamcrc",
            CrcVariant::Mpeg2 => "crc32-mpeg2",
            CrcVariant::ChainedReflected => "chained-reflected",
            CrcVariant::ChainedMsbFirst => "chained-msb-first",
            CrcVariant::ZlibStyleReflected => "zlib-style-reflected",
            CrcVariant::ZlibStyleMsbFirst => "zlib-style-msb-first",
        }
    }

    /// The CRC over `head` (`[0, 8)`) then `range` (`[st_addr_crc, en_addr_crc)`).
    pub fn compute(self, head: &[u8], range: &[u8]) -> u32 {
        let (r, m) = (reg_reflected, reg_msb_first);
        match self {
            CrcVariant::Ieee => !r(r(!0, head), range),
            CrcVariant::Bzip2 => !m(m(!0, head), range),
            CrcVariant::Jamcrc => r(r(!0, head), range),
            CrcVariant::Mpeg2 => m(m(!0, head), range),
            CrcVariant::ChainedReflected => !r(!r(!0, head), range),
            CrcVariant::ChainedMsbFirst => !m(!m(!0, head), range),
            CrcVariant::ZlibStyleReflected => !r(r(0, head), range),
            CrcVariant::ZlibStyleMsbFirst => !m(m(0, head), range),
        }
    }
}

/// One variant's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct CrcValue {
    pub variant: CrcVariant,
    pub value: u32,
}

/// The outcome of the CRC comparison over the driver's coverage (`[0, 8)` then
/// `[st_addr_crc, en_addr_crc)`, see [`CrcVariant`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum CrcCheck {
    /// Unencrypted image: `variant` (the first that does) equals the footer's `crc32`.
    Match { variant: CrcVariant, value: u32 },
    /// Unencrypted image: no variant matches (the driver: `MPS: FW checksum error:
    /// img=0x%08x calc=0x%08x`); every variant's value.
    Mismatch {
        stored: u32,
        computed: Vec<CrcValue>,
    },
    /// Not computed (encrypted image, or a range outside the image); `reason` says why.
    NotComputed { reason: String },
}

/// What a CRC mismatch of an unencrypted voice image does (`--voice-crc`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum VoiceCrcPolicy {
    /// The upstream AR9/xRX100 drivers: `return IFX_ERROR`, the download fails.
    #[default]
    Fatal,
    /// OpenWrt's `500-ar9_vr9.patch` (and the Falcon copy): the message only.
    Warn,
}

/// What the voice driver made of an image (before the load-address and memory checks).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Voice {
    pub format: VoiceFormat,
    pub endian: Endian,
    /// The 28 bytes as read from the file.
    pub footer: Footer,
    /// File offset of the footer.
    pub footer_offset: usize,
    /// Platform from `fw_vers` (new format; `None` for old or an unknown nibble).
    pub platform: Option<Platform>,
    /// `enc & FW_ENC_ENCRYPT` (the old format is always treated as encrypted).
    pub encrypted: bool,
    /// `enc & FW_ENC_MBOX_LAYOUT_2`.
    pub mbox_layout2: bool,
    /// The `mem` check byte was right.
    pub mem_valid: bool,
    /// Memory requirement in bytes (1 MiB if the check byte was wrong).
    pub mem: u32,
    /// Bytes the driver copies to the base: new `len − 24`, old `len − 4` (`len` if `mem`
    /// was invalid).
    pub copy_len: u32,
    /// CRC range `[start, end)` as the driver uses it (offsets from the base).
    pub crc_start: u32,
    pub crc_end: u32,
    pub crc: CrcCheck,
    /// The driver's warnings and ours.
    pub warnings: Vec<String>,
}

/// How to load a voice image (the driver's environment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VoiceOptions {
    /// A CRC mismatch refuses the image (upstream) or only warns (OpenWrt).
    pub crc: VoiceCrcPolicy,
    /// `vpe1_load_addr` (KSEG0, e.g. `0x83e00000`).
    pub load_addr: u32,
    /// `vpe1_mem`; `None` = what `vpe1_get_max_mem()` returns without it (`P_SIZE` of a
    /// `CONFIG_MIPS_VPE_LOADER_TOM` kernel, 2 MiB).
    pub vpe1_mem: Option<u32>,
    /// The chip the driver runs on; `None` skips the platform check.
    pub platform: Option<Platform>,
    /// Byte order of the footer; `None` = detect by the magic, big-endian if neither matches.
    pub endian: Option<Endian>,
    /// Accept an image without the new-format magic as the old format (`--lantiq-voice`).
    pub old_format: bool,
}

/// The byte order whose footer carries the magic (big-endian first: Lantiq SoCs run BE).
pub fn detect_endian(bytes: &[u8]) -> Option<Endian> {
    [Endian::Big, Endian::Little]
        .into_iter()
        .find(|&e| Footer::read(bytes, e).is_some_and(|(f, _)| f.is_new_format()))
}

/// True if `bytes` end in a new-format voice footer (in either byte order).
pub fn is_voice(bytes: &[u8]) -> bool {
    detect_endian(bytes).is_some()
}

fn voice_err(message: &str, detail: String) -> Error {
    Error::Voice {
        message: message.to_string(),
        detail,
    }
}

/// CRC-32 (IEEE 802.3, reflected, init and final XOR `0xffffffff`, as zlib's `crc32`).
pub fn crc32(bytes: &[u8]) -> u32 {
    !reg_reflected(!0, bytes)
}

/// The CRC a voice image's footer should carry for `[0, 8)` then `[st, en)` of `image`, in
/// the variant we write ([`CrcVariant::Ieee`]); `None` if the range is outside the image.
pub fn voice_crc32(image: &[u8], st: u32, en: u32) -> Option<u32> {
    let head = image.get(..8)?;
    let range = image.get(st as usize..en as usize)?;
    Some(CrcVariant::Ieee.compute(head, range))
}

/// The register of a reflected CRC with polynomial 0x04C11DB7 (0xEDB88320 reversed) after
/// `bytes`, from `c`, without any inversion.
fn reg_reflected(c: u32, bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        t
    });
    bytes.iter().fold(c, |c, &b| {
        t[((c ^ u32::from(b)) & 0xff) as usize] ^ (c >> 8)
    })
}

/// The register of an MSB-first CRC with polynomial 0x04C11DB7 after `bytes`, from `c`.
fn reg_msb_first(c: u32, bytes: &[u8]) -> u32 {
    static TABLE: std::sync::OnceLock<[u32; 256]> = std::sync::OnceLock::new();
    let t = TABLE.get_or_init(|| {
        let mut t = [0u32; 256];
        for (i, e) in t.iter_mut().enumerate() {
            let mut c = (i as u32) << 24;
            for _ in 0..8 {
                c = if c & 0x8000_0000 != 0 {
                    0x04c1_1db7 ^ (c << 1)
                } else {
                    c << 1
                };
            }
            *e = c;
        }
        t
    });
    bytes.iter().fold(c, |c, &b| {
        t[(((c >> 24) ^ u32::from(b)) & 0xff) as usize] ^ (c << 8)
    })
}

/// Parse the footer and apply the format rules (no platform, memory or base checks: those
/// need the board, see [`load_voice`]). `endian` `None` detects it; `old_format` accepts an
/// image without the magic.
pub fn parse_voice(bytes: &[u8], endian: Option<Endian>, old_format: bool) -> Result<Voice> {
    let endian = endian
        .or_else(|| detect_endian(bytes))
        .unwrap_or(Endian::Big);
    let Some((footer, footer_offset)) = Footer::read(bytes, endian) else {
        return Err(voice_err(
            "not a Lantiq voice firmware image",
            format!(
                "{} bytes, shorter than the {FOOTER_SIZE}-byte footer",
                bytes.len()
            ),
        ));
    };
    let mut warnings = Vec::new();
    let format = if footer.is_new_format() {
        VoiceFormat::New
    } else if old_format {
        VoiceFormat::Old
    } else {
        return Err(voice_err(
            "not a Lantiq voice firmware image",
            format!(
                "the footer's magic word is {:#010x}, not {VOICE_MAGIC:#010x} ({}-endian); an old-format image has no magic: pass --lantiq-voice to load it as one",
                footer.magic,
                endian.name()
            ),
        ));
    };
    if bytes.len() % 4 != 0 {
        warnings.push(format!(
            "the image is {} bytes, not a multiple of 4: the driver reads the footer at the last whole word ({footer_offset:#x})",
            bytes.len()
        ));
    }
    // "memory requirement sanity check - crc check"
    let mem_valid = mem_check_byte(footer.mem) == footer.mem >> 24;
    let mem = if mem_valid {
        footer.mem & 0x00ff_ffff
    } else {
        warnings.push(format!(
            "{MSG_NO_SIZE} (mem word {:#010x}: check byte {:#04x}, expected {:#04x})",
            footer.mem,
            footer.mem >> 24,
            mem_check_byte(footer.mem)
        ));
        DEFAULT_MEM
    };
    let len = u32::try_from(bytes.len()).map_err(|_| {
        voice_err(
            "not a Lantiq voice firmware image",
            format!("{} bytes is beyond 32 bits", bytes.len()),
        )
    })?;
    // "adjust download length": new format drops 6 footer words (keeps crc32); old drops mem
    // (or nothing when mem was not a size).
    let (copy_len, encrypted, crc_start, crc_end, platform) = match format {
        VoiceFormat::New => {
            let copy_len = len - (FOOTER_SIZE as u32 - 4);
            let platform = Platform::from_nibble(footer.platform_nibble());
            match platform {
                None => warnings.push(format!(
                    "fw_vers {:#010x}: platform nibble {} is not one the driver knows (0 INCA-IP2, 1 Danube, 4 xRX100, 7 xRX200, 8 xRX300)",
                    footer.fw_vers,
                    footer.platform_nibble()
                )),
                Some(p) if !p.is_vpe() => warnings.push(format!(
                    "fw_vers {:#010x}: platform {}: that voice CPU is a separate core started through the RCU, not VPE1 (spec §6.5)",
                    footer.fw_vers,
                    p.name()
                )),
                Some(_) => {}
            }
            if footer.enc & !(FW_ENC_ENCRYPT | FW_ENC_MBOX_LAYOUT_2) != 0 {
                warnings.push(format!(
                    "enc {:#010x} has bits the driver does not know (FW_ENC_FLAGS_ALL = 0x3)",
                    footer.enc
                ));
            }
            (
                copy_len,
                footer.enc & FW_ENC_ENCRYPT != 0,
                footer.st_addr_crc,
                footer.en_addr_crc,
                platform,
            )
        }
        VoiceFormat::Old => {
            let copy_len = if mem_valid { len - 4 } else { len };
            // "in case of old FW format always assume that FW is encrypted"
            (copy_len, true, OLD_FORMAT_CRC_START, copy_len, None)
        }
    };
    let mbox_layout2 = format == VoiceFormat::New && footer.enc & FW_ENC_MBOX_LAYOUT_2 != 0;
    // The driver also reads [0, 8) (the reset vector).
    let range_ok = crc_start <= crc_end && crc_end <= copy_len && copy_len >= 8;
    let crc = if !range_ok {
        CrcCheck::NotComputed {
            reason: format!(
                "CRC coverage [0x0, 0x8) + [{crc_start:#x}, {crc_end:#x}) lies outside the {copy_len:#x}-byte image"
            ),
        }
    } else if format == VoiceFormat::Old {
        CrcCheck::NotComputed {
            reason: "old format: assumed encrypted; the driver only computes and stores the CRC after the ROM decrypted the image".into(),
        }
    } else if encrypted {
        CrcCheck::NotComputed {
            reason: "encrypted: the driver checks the CRC after the on-chip ROM decrypted the image; the algorithm over decrypted data is unconfirmed".into(),
        }
    } else {
        let (head, range) = (&bytes[..8], &bytes[crc_start as usize..crc_end as usize]);
        let computed: Vec<CrcValue> = CrcVariant::ALL
            .iter()
            .map(|&variant| CrcValue {
                variant,
                value: variant.compute(head, range),
            })
            .collect();
        match computed.iter().find(|c| c.value == footer.crc32) {
            Some(c) => CrcCheck::Match {
                variant: c.variant,
                value: c.value,
            },
            None => CrcCheck::Mismatch {
                stored: footer.crc32,
                computed,
            },
        }
    };
    if let CrcCheck::Mismatch { stored, computed } = &crc {
        warnings.push(format!(
            "{} ({})",
            crc_message(*stored, computed),
            crc_detail(computed, crc_start, crc_end)
        ));
    }
    Ok(Voice {
        format,
        endian,
        footer,
        footer_offset,
        platform,
        encrypted,
        mbox_layout2,
        mem_valid,
        mem,
        copy_len,
        crc_start,
        crc_end,
        crc,
        warnings,
    })
}

/// The driver's line for a mismatch, with our first variant as `calc`.
fn crc_message(stored: u32, computed: &[CrcValue]) -> String {
    let calc = computed.first().map_or(0, |c| c.value);
    format!("MPS: FW checksum error: img={stored:#010x} calc={calc:#010x}")
}

fn crc_detail(computed: &[CrcValue], st: u32, en: u32) -> String {
    let all: Vec<String> = computed
        .iter()
        .map(|c| format!("{} {:#010x}", c.variant.name(), c.value))
        .collect();
    format!(
        "over [0x0, 0x8) + [{st:#x}, {en:#x}) as ifx_mps_fw_crc32 covers it, no CRC-32 variant matches: {}; the body of ifx_mps_calc_crc32 is not public",
        all.join(", ")
    )
}

/// `ifx_mps_download_firmware` up to `vpe1_sw_start`, in the driver's order: footer, platform,
/// memory, base address, copy. Returns the parsed image and what ends up in memory: one
/// segment of `copy_len` bytes at the physical base, entry `KSEG1(base)`.
pub fn load_voice(bytes: &[u8], opts: &VoiceOptions) -> Result<(Voice, Image)> {
    let v = parse_voice(bytes, opts.endian, opts.old_format)?;
    if let (VoiceFormat::New, Some(want)) = (v.format, opts.platform) {
        if v.footer.platform_nibble() != want.nibble() {
            return Err(voice_err(
                MSG_PLATFORM,
                format!(
                    "fw_vers {:#010x} has platform nibble {} ({}), the target is {} (nibble {})",
                    v.footer.fw_vers,
                    v.footer.platform_nibble(),
                    v.platform.map_or("unknown", Platform::name),
                    want.name(),
                    want.nibble()
                ),
            ));
        }
    }
    let max = opts.vpe1_mem.unwrap_or(P_SIZE_TOM);
    if v.mem > max {
        // "error, firmware memory exceeds reserved space (%i > %i)!"
        return Err(voice_err(
            &format!(
                "error, firmware memory exceeds reserved space ({} > {})!",
                v.mem, max
            ),
            format!(
                "the footer asks for {:#x} bytes, vpe1_mem is {max:#x}{}",
                v.mem,
                if opts.vpe1_mem.is_none() {
                    " (P_SIZE of a TOM kernel: pass --vpe1-mem)"
                } else {
                    ""
                }
            ),
        ));
    }
    if opts.load_addr == 0 {
        return Err(voice_err(
            MSG_BASE_INVALID,
            "vpe1_load_addr is 0 (not set on the kernel command line)".into(),
        ));
    }
    if opts.load_addr & (BASE_ALIGN - 1) != 0 {
        return Err(voice_err(
            MSG_BASE_ALIGN,
            format!("vpe1_load_addr {:#010x} & 0xfffff != 0", opts.load_addr),
        ));
    }
    if v.crc_start > v.crc_end || v.crc_end > v.copy_len {
        return Err(voice_err(
            "voice firmware CRC range outside the image",
            format!(
                "st_addr_crc {:#x} / en_addr_crc {:#x} do not lie within the {:#x} bytes the driver copies; it would checksum memory past the image",
                v.crc_start, v.crc_end, v.copy_len
            ),
        ));
    }
    if let (CrcCheck::Mismatch { stored, computed }, VoiceCrcPolicy::Fatal) = (&v.crc, opts.crc) {
        // Upstream AR9/xRX100: "return IFX_ERROR" after the message.
        return Err(voice_err(
            &crc_message(*stored, computed),
            format!(
                "{}; the upstream driver refuses the download, OpenWrt's only warns: --voice-crc warn to convert anyway",
                crc_detail(computed, v.crc_start, v.crc_end)
            ),
        ));
    }
    let mut warnings: Vec<Warning> = v.warnings.iter().map(Warning::new).collect();
    if !(0x8000_0000..0xa000_0000).contains(&opts.load_addr) {
        warnings.push(Warning::new(format!(
            "vpe1_load_addr {:#010x} is not a KSEG0 address; the driver uses KSEG1ADDR() of it, {:#010x}",
            opts.load_addr,
            kseg1(opts.load_addr)
        )));
    }
    if v.copy_len > v.mem {
        warnings.push(Warning::new(format!(
            "the image copies {:#x} bytes but the footer's memory requirement is only {:#x}",
            v.copy_len, v.mem
        )));
    }
    if v.encrypted {
        warnings.push(Warning::new(format!(
            "the payload is encrypted: the platform driver must run the on-chip ROM decrypt routine over {:#x} bytes at KSEG1(base) before starting it (see docs/CONVERSION.md)",
            decrypt_len(&v)
        )));
    }
    let base = physical(kseg1(opts.load_addr));
    let data = bytes[..v.copy_len as usize].to_vec();
    let image = Image {
        kind: InputKind::Exec,
        endian: v.endian,
        // MIPS32r2, o32: what a 34Kc runs; the payload carries no ELF flags of its own.
        e_flags: crate::elf::EF_MIPS_ABI_O32 | 0x7000_0000,
        segments: vec![Segment {
            addr: base,
            mem_size: v.copy_len,
            data,
        }],
        entry: kseg1(opts.load_addr),
        shared: None,
        gp: None,
        base,
        sections: Vec::new(),
        symbols: Vec::new(),
        warnings,
    };
    Ok((v, image))
}

/// The length the driver passes to the ROM decrypt routine: copy length minus the CRC word
/// (new format) minus 4 ("BootROM actually decrypts n+4 bytes").
pub fn decrypt_len(v: &Voice) -> u32 {
    let n = match v.format {
        VoiceFormat::New => v.copy_len.saturating_sub(4),
        VoiceFormat::Old => v.copy_len,
    };
    n.saturating_sub(4)
}

/// The footer fields as `key=value` pairs for the firmware's provenance note, in a fixed
/// order.
pub fn note_fields(v: &Voice, load_addr: u32) -> Vec<(String, String)> {
    let f = &v.footer;
    let crc = match &v.crc {
        CrcCheck::Match { variant, .. } => format!("match ({})", variant.name()),
        CrcCheck::Mismatch { computed, .. } => format!(
            "mismatch (computed {:#010x})",
            computed.first().map_or(0, |c| c.value)
        ),
        CrcCheck::NotComputed { .. } => "not computed".to_string(),
    };
    [
        (
            "voice_format",
            match v.format {
                VoiceFormat::New => "new".to_string(),
                VoiceFormat::Old => "old".to_string(),
            },
        ),
        ("voice_endian", v.endian.name().to_string()),
        ("voice_crc32", format!("{:#010x}", f.crc32)),
        ("voice_st_addr_crc", format!("{:#x}", v.crc_start)),
        ("voice_en_addr_crc", format!("{:#x}", v.crc_end)),
        ("voice_fw_vers", format!("{:#010x}", f.fw_vers)),
        (
            "voice_platform",
            v.platform
                .map_or("unknown".to_string(), |p| p.name().to_string()),
        ),
        ("voice_enc", format!("{:#x}", f.enc)),
        ("voice_encrypted", v.encrypted.to_string()),
        ("voice_mbox_layout2", v.mbox_layout2.to_string()),
        ("voice_magic", format!("{:#010x}", f.magic)),
        ("voice_mem_word", format!("{:#010x}", f.mem)),
        ("voice_mem", format!("{:#x}", v.mem)),
        ("voice_copy_len", format!("{:#x}", v.copy_len)),
        ("voice_decrypt_len", format!("{:#x}", decrypt_len(v))),
        ("voice_load_addr", format!("{load_addr:#010x}")),
        ("voice_crc_check", crc),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image(payload_len: usize, footer: Footer, e: Endian) -> Vec<u8> {
        let mut b: Vec<u8> = (0..payload_len).map(|i| (i * 7 + 3) as u8).collect();
        b.extend_from_slice(&footer.encode(e));
        b
    }

    fn good(payload_len: u32) -> Footer {
        Footer {
            crc32: 0,
            st_addr_crc: 0,
            en_addr_crc: payload_len,
            fw_vers: 0x0102_0700,
            enc: 0,
            magic: VOICE_MAGIC,
            mem: mem_word(0x10_0000),
        }
    }

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b""), 0);
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
    }

    /// The standard check values ("123456789") of the named variants, and the driver's
    /// coverage: the reset vector, then the range, skipping what lies between.
    #[test]
    fn crc_variants_over_the_driver_coverage() {
        let whole = b"123456789";
        let (head, range) = (&whole[..8], &whole[8..]);
        assert_eq!(CrcVariant::Ieee.compute(head, range), 0xcbf4_3926);
        assert_eq!(CrcVariant::Bzip2.compute(head, range), 0xfc89_1918);
        assert_eq!(CrcVariant::Jamcrc.compute(head, range), 0x340b_c6d9);
        assert_eq!(CrcVariant::Mpeg2.compute(head, range), 0x0376_e6e7);
        // The chained readings invert the register between the parts: not the same.
        assert_ne!(
            CrcVariant::ChainedReflected.compute(head, range),
            0xcbf4_3926
        );
        // [0, 8) + [st, en): the bytes between are not covered.
        let mut img: Vec<u8> = (0..0x80u8).collect();
        let c = voice_crc32(&img, 0x40, 0x80).unwrap();
        img[0x20] ^= 0xff; // between: ignored
        assert_eq!(voice_crc32(&img, 0x40, 0x80), Some(c));
        img[3] ^= 0xff; // reset vector: covered
        assert_ne!(voice_crc32(&img, 0x40, 0x80), Some(c));
        assert_eq!(voice_crc32(&img, 0x40, 0x81), None);
    }

    #[test]
    fn each_variant_is_recognised_and_a_mismatch_follows_the_policy() {
        let e = Endian::Big;
        let payload: Vec<u8> = (0..0x100).map(|i| (i * 7 + 3) as u8).collect();
        let mut f = good(0x100);
        f.st_addr_crc = 0x24; // after the reset vector and an exception area
        for v in CrcVariant::ALL {
            f.crc32 = v.compute(&payload[..8], &payload[0x24..0x100]);
            let mut b = payload.clone();
            b.extend_from_slice(&f.encode(e));
            let got = parse_voice(&b, None, false).unwrap().crc;
            assert_eq!(
                got,
                CrcCheck::Match {
                    variant: v,
                    value: f.crc32
                },
                "{v:?}"
            );
        }
        // The range alone (what the model did before) is not the driver's coverage.
        f.crc32 = crc32(&payload[0x24..0x100]);
        let mut b = payload.clone();
        b.extend_from_slice(&f.encode(e));
        let v = parse_voice(&b, None, false).unwrap();
        assert!(matches!(v.crc, CrcCheck::Mismatch { .. }), "{:?}", v.crc);
        let mut opts = VoiceOptions {
            crc: VoiceCrcPolicy::Fatal,
            load_addr: 0x83e0_0000,
            vpe1_mem: Some(0x20_0000),
            platform: None,
            endian: None,
            old_format: false,
        };
        let err = load_voice(&b, &opts).unwrap_err().to_string();
        assert!(err.starts_with("MPS: FW checksum error: img="), "{err}");
        assert!(err.contains("--voice-crc warn"), "{err}");
        opts.crc = VoiceCrcPolicy::Warn;
        let (_, img) = load_voice(&b, &opts).unwrap();
        assert!(
            img.warnings
                .iter()
                .any(|w| w.message.starts_with("MPS: FW checksum error")),
            "{:?}",
            img.warnings
        );
    }

    #[test]
    fn mem_check_byte_matches_the_driver_formula() {
        // mem 0x00100000: bytes 0x10, 0x00, 0x00 → ~0x10 & 0xff = 0xef.
        assert_eq!(mem_word(0x10_0000), 0xef10_0000);
        let v = mem_word(0x12_3456);
        assert_eq!(v >> 24, u32::from(!(0x12u8 + 0x34 + 0x56)));
    }

    #[test]
    fn case35_new_format_valid() {
        for e in [Endian::Big, Endian::Little] {
            let mut f = good(0x100);
            let b0 = image(0x100, f, e);
            f.crc32 = voice_crc32(&b0, 0, 0x100).unwrap();
            let b = image(0x100, f, e);
            let opts = VoiceOptions {
                crc: VoiceCrcPolicy::Fatal,
                load_addr: 0x83e0_0000,
                vpe1_mem: Some(0x20_0000),
                platform: Some(Platform::Xrx200),
                endian: None,
                old_format: false,
            };
            let (v, img) = load_voice(&b, &opts).unwrap();
            assert_eq!(v.endian, e);
            assert_eq!(v.copy_len as usize, b.len() - 24);
            assert_eq!(img.entry, 0xa3e0_0000);
            assert_eq!(img.segments[0].addr, 0x03e0_0000);
            assert_eq!(img.segments[0].data, b[..b.len() - 24]);
            assert!(matches!(v.crc, CrcCheck::Match { .. }), "{:?}", v.crc);
        }
    }

    #[test]
    fn cases_36_to_38_and_memory() {
        let e = Endian::Big;
        let mut opts = VoiceOptions {
            crc: VoiceCrcPolicy::Warn,
            load_addr: 0x83e0_0000,
            vpe1_mem: Some(0x20_0000),
            platform: Some(Platform::Xrx200),
            endian: None,
            old_format: false,
        };
        let mut f = good(0x40);
        f.fw_vers = 0x0400;
        let err = load_voice(&image(0x40, f, e), &opts).unwrap_err();
        assert!(err.to_string().starts_with(MSG_PLATFORM), "{err}");

        let mut f = good(0x40);
        f.mem = 0x0010_0000; // check byte 0
        let (v, _) = load_voice(&image(0x40, f, e), &opts).unwrap();
        assert!(!v.mem_valid);
        assert_eq!(v.mem, DEFAULT_MEM);
        assert!(v.warnings[0].starts_with(MSG_NO_SIZE));

        opts.load_addr = 0x83e8_0000;
        let err = load_voice(&image(0x40, good(0x40), e), &opts).unwrap_err();
        assert!(err.to_string().starts_with(MSG_BASE_ALIGN), "{err}");

        opts.load_addr = 0x83e0_0000;
        let mut f = good(0x40);
        f.mem = mem_word(0x30_0000);
        let err = load_voice(&image(0x40, f, e), &opts).unwrap_err();
        assert!(err
            .to_string()
            .starts_with("error, firmware memory exceeds reserved space (3145728 > 2097152)!"));

        let mut f = good(0x40);
        f.en_addr_crc = 0x1000;
        let err = load_voice(&image(0x40, f, e), &opts).unwrap_err();
        assert!(err.to_string().contains("CRC range"), "{err}");
    }

    #[test]
    fn old_format_needs_the_flag_and_drops_only_mem() {
        let mut b: Vec<u8> = vec![0x11; 0x80];
        b.extend_from_slice(&Endian::Big.u32_bytes(mem_word(0x8_0000)));
        assert!(parse_voice(&b, None, false).is_err());
        let v = parse_voice(&b, None, true).unwrap();
        assert_eq!(v.format, VoiceFormat::Old);
        assert_eq!(v.copy_len, 0x80);
        assert!(v.encrypted);
        assert_eq!((v.crc_start, v.crc_end), (36, 0x80));
        // Invalid mem: nothing is dropped.
        let n = b.len();
        b[n - 4] = 0;
        let v = parse_voice(&b, None, true).unwrap();
        assert_eq!(v.copy_len as usize, n);
    }

    #[test]
    fn short_and_odd_inputs_never_panic() {
        for n in 0..64 {
            let b = vec![0xccu8; n];
            let _ = parse_voice(&b, None, true);
            let _ = parse_voice(&b, Some(Endian::Little), false);
        }
    }
}
