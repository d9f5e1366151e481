//! The remoteproc core's firmware rules, in the kernel's order and with its messages; firmware
//! bytes → [`Loaded`] (the [`Image`] remoteproc would put in memory, plus the table).
//!
//! Order (`drivers/remoteproc/remoteproc_core.c`, `rproc_fw_boot` / `rproc_start`):
//! `rproc_elf_sanity_check` → `find_table` (via `rproc_elf_load_rsc_table`) →
//! `rproc_handle_resources` → `rproc_alloc_registered_carveouts` → `rproc_elf_load_segments`.
//! Every refusal is an [`Error::Kernel`] with the kernel's text formatted as `dev_err` would.
//!
//! After that come the rules the kernel does not check but which break the firmware anyway
//! (out-of-bounds header reads, a table the kernel cannot copy back, an entry point outside the
//! code, overlapping carveouts, ...) as [`Error::Firmware`], then the profile geometry.
//!
//! Modelled platform: the default ELF ops, no IOMMU, no `ops->da_to_va`, no `ops->handle_rsc`,
//! no carveouts pre-registered from the device tree (the MIPS remoteproc driver's situation).

use serde::Serialize;

use super::firmware::Profile;
use super::mips_tlb;
use super::note::{self, Provenance};
use super::table::{
    Carveout, Resource, ResourceTable, Vring, CARVEOUT_BODY, FW_RSC_ADDR_ANY, HEADER_SIZE,
    NAME_LEN, RSC_CARVEOUT, RSC_DEVMEM, RSC_HDR_SIZE, RSC_LAST, RSC_TRACE, RSC_VENDOR_END,
    RSC_VENDOR_START, TRACE_BODY, VDEV_BODY, VRING_SIZE,
};
use super::trampoline::{self, Trampoline};
use crate::elf::read::{Ehdr, Phdr, Reader, Shdr};
use crate::elf::*;
use crate::error::{Error, Result};
use crate::image::{Image, InputKind, PlacedSection, Segment, Symbol};

const EINVAL: i32 = 22;
const ENOMEM: i32 = 12;

/// The section the kernel looks the table up by (`find_table`, by name only).
pub const RESOURCE_TABLE: &str = ".resource_table";

/// Which kernel's behaviour to mirror where it differs. Each rule that differs between eras
/// names the change it follows in `docs/CONVERSION.md` §6 ("check per kernel era"); where the
/// exact commit was not found, the version range comes from the sources compared there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelEra {
    /// v6.2+ (current mainline): everything below, and `char` printed unsigned
    /// (`-funsigned-char` for every architecture since v6.2).
    #[default]
    Newest,
    /// v6.1: vdev vrings parsed in the `rproc-virtio` platform device's probe, so a bad vring
    /// no longer fails the boot.
    V61,
    /// v5.19 – v6.0: empty PT_LOADs skipped (`|| !memsz`).
    V519,
    /// v5.7 – v5.18: ELF64-aware sanity check (new order), silent missing table.
    V57,
    /// v4.20 – v5.6: ELF32-only sanity check order; carveouts allocated after the table walk,
    /// found by name; trace `da` resolved when `trace0` is read; the vendor range
    /// (`unsupported vendor resource`) from v5.3.
    Pre57,
    /// v4.10 – v4.19 (the MIPS driver's 4.9 – 4.12 era): as `Pre57`, plus `Failed to find
    /// resource table`, carveouts allocated and traces translated while the table is parsed
    /// (in table order), vring `reserved` must be 0 (checked before the queue size), no
    /// carveout lookup by name and no vendor range.
    Old4x,
}

impl KernelEra {
    /// Every era, newest first.
    pub const ALL: [KernelEra; 6] = [
        KernelEra::Newest,
        KernelEra::V61,
        KernelEra::V519,
        KernelEra::V57,
        KernelEra::Pre57,
        KernelEra::Old4x,
    ];

    /// The kernel versions the era stands for.
    pub fn versions(self) -> &'static str {
        match self {
            KernelEra::Newest => "v6.2+",
            KernelEra::V61 => "v6.1",
            KernelEra::V519 => "v5.19 - v6.0",
            KernelEra::V57 => "v5.7 - v5.18",
            KernelEra::Pre57 => "v4.20 - v5.6",
            KernelEra::Old4x => "v4.10 - v4.19",
        }
    }

    /// v5.7+: the ELF64-aware `rproc_elf_sanity_check` (magic first).
    fn elf64_sanity(self) -> bool {
        matches!(
            self,
            KernelEra::Newest | KernelEra::V61 | KernelEra::V519 | KernelEra::V57
        )
    }

    /// v5.19+: `rproc_elf_load_segments` skips `p_memsz == 0`.
    fn skips_empty_loads(self) -> bool {
        matches!(self, KernelEra::Newest | KernelEra::V61 | KernelEra::V519)
    }

    /// Up to v6.0: `rproc_parse_vring` runs inside `rproc_handle_vdev`, so a bad vring fails
    /// the boot.
    fn vring_fatal(self) -> bool {
        !matches!(self, KernelEra::Newest | KernelEra::V61)
    }

    /// v4.10 – v4.19: the table handlers allocate carveouts and translate traces at once.
    fn parse_time_alloc(self) -> bool {
        self == KernelEra::Old4x
    }
}

/// What to check against.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Byte order of the kernel that will load the firmware; `None` accepts either.
    pub host: Option<Endian>,
    /// Profile whose geometry to enforce; `None` checks only the generic core's rules.
    pub profile: Option<Profile>,
    pub kernel: KernelEra,
    /// With the mips-rproc profile: the target kernel's `CONFIG_CMA_ALIGNMENT` (an order of
    /// 4 KiB pages); `None` = 8, the kernel's default. Every carveout must map correctly for
    /// every physical address CMA may return under it ([`mips_tlb_geometry`]).
    pub cma_align: Option<u8>,
}

/// What remoteproc would load from a firmware that passed every rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Loaded {
    /// Kind `Firmware`: what `rproc_elf_load_segments` writes (each PT_LOAD at `p_paddr`,
    /// `p_filesz` copied, zeros to `p_memsz`); `entry` = `e_entry`; sections and symbols from
    /// the file; `shared` = `vpe_shared`, `gp` = `_gp`.
    pub image: Image,
    /// The table as found in the file (before the kernel's write-backs).
    pub table: ResourceTable,
    /// `sh_addr` of `.resource_table`.
    pub table_addr: u32,
    /// Kernel warnings (`unsupported resource %d`, ...) and our own non-fatal findings.
    pub warnings: Vec<String>,
    /// The entry trampoline at `e_entry`, if the code there is one.
    pub trampoline: Option<Trampoline>,
    /// The `.note.vpe-migrate` provenance note, if present and readable.
    pub provenance: Option<Provenance>,
}

fn kernel(message: impl Into<String>, errno: i32, detail: impl Into<String>) -> Error {
    Error::Kernel {
        message: message.into(),
        errno,
        detail: detail.into(),
    }
}

fn firmware(message: impl Into<String>) -> Error {
    Error::Firmware {
        message: message.into(),
    }
}

/// Follow-on lines the core prints after a resource handler fails.
const AFTER_RSC: &str = "then \"Failed to process resources: -22\" and \"Boot failed: -22\"";
const AFTER_LOAD: &str = "then \"Failed to load program segments: -22\" and \"Boot failed: -22\"";

fn u32_at(b: &[u8], e: Endian, off: u64) -> Option<u32> {
    let s = usize::try_from(off).ok()?;
    let w = b.get(s..s.checked_add(4)?)?;
    Some(e.read_u32([w[0], w[1], w[2], w[3]]))
}

fn u16_at(b: &[u8], e: Endian, off: u64) -> Option<u16> {
    let s = usize::try_from(off).ok()?;
    let w = b.get(s..s.checked_add(2)?)?;
    Some(e.read_u16([w[0], w[1]]))
}

fn u64_at(b: &[u8], e: Endian, off: usize) -> Option<u64> {
    let hi_lo = (u32_at(b, e, off as u64)?, u32_at(b, e, off as u64 + 4)?);
    Some(match e {
        Endian::Little => u64::from(hi_lo.1) << 32 | u64::from(hi_lo.0),
        Endian::Big => u64::from(hi_lo.0) << 32 | u64::from(hi_lo.1),
    })
}

/// Check `bytes` as the remoteproc core would boot them, then the rules it does not check.
pub fn check(bytes: &[u8], opts: &Options) -> Result<Loaded> {
    let mut warnings = Vec::new();
    let endian = sanity_check(bytes, opts)?;
    let h = Ehdr::parse(bytes)?; // cannot fail: size and EI_DATA were checked
    header_warnings(&h, &mut warnings);

    // find_table (remoteproc_elf_loader.c): section headers are read without bounds checks
    // beyond the first one, so anything out of range is refused before it is "read".
    let shdrs = section_headers(bytes, &h)?;
    let (ti, tshdr) = find_table(bytes, &h, &shdrs, opts.kernel, &mut warnings)?;
    let table_bytes = &bytes[tshdr.sh_offset as usize..][..tshdr.sh_size as usize];

    // rproc_handle_resources + carveout allocation (remoteproc_core.c).
    let (table, offsets) = handle_resources(table_bytes, endian, opts.kernel, &mut warnings)?;
    let carveouts: Vec<(usize, &Carveout)> = table
        .entries
        .iter()
        .enumerate()
        .filter_map(|(i, r)| match r {
            Resource::Carveout(c) => Some((i, c)),
            _ => None,
        })
        .collect();
    if !opts.kernel.parse_time_alloc() {
        for &(i, c) in &carveouts {
            check_alloc(i, c, opts.kernel)?;
        }
    }

    // rproc_elf_load_segments.
    let (phdrs, segments) = load_segments(bytes, &h, &carveouts, opts.kernel, &mut warnings)?;

    // Rules the kernel does not check.
    silent_failures(
        &h,
        &shdrs[ti],
        &phdrs,
        &segments,
        &table,
        &offsets,
        &mut warnings,
    )?;
    if let Some(p) = opts.profile {
        profile_geometry(p, &table)?;
        if p == Profile::MipsRproc {
            mips_tlb_geometry(&table, opts.cma_align, &mut warnings)?;
        }
    }

    let image = build_image(bytes, &h, &shdrs, segments, &mut warnings);
    let trampoline = decode_trampoline(&image);
    let provenance = find_provenance(bytes, &h, &shdrs, &mut warnings);
    Ok(Loaded {
        image,
        table,
        table_addr: tshdr.sh_addr,
        warnings,
        trampoline,
        provenance,
    })
}

// ---- rproc_elf_sanity_check ----------------------------------------------------------------

fn endian_check(ei_data: u8, host: Option<Endian>) -> Result<Endian> {
    // "We assume the firmware has the same endianness as the host".
    match (Endian::from_ei_data(ei_data), host) {
        (Some(e), None) => Ok(e),
        (Some(e), Some(hst)) if e == hst => Ok(e),
        (Some(e), Some(hst)) => Err(kernel(
            "Unsupported firmware endianness",
            EINVAL,
            format!(
                "EI_DATA is {ei_data} ({}-endian) and the host is {}-endian; the kernel reads the \
                 firmware and its resource table with native loads, so they must match",
                e.name(),
                hst.name()
            ),
        )),
        (None, _) => Err(kernel(
            "Unsupported firmware endianness",
            EINVAL,
            format!("EI_DATA is {ei_data}: neither 1 (little-endian) nor 2 (big-endian)"),
        )),
    }
}

fn too_small_header(len: usize) -> Error {
    kernel(
        "Image is too small",
        EINVAL,
        format!("the file is {len} bytes; an ELF32 header is 52"),
    )
}

fn bad_magic(b: &[u8]) -> Error {
    kernel(
        "Image is corrupted (bad magic)",
        EINVAL,
        format!("the file starts {:02x?}, not 7f 45 4c 46", &b[..4]),
    )
}

/// `rproc_elf_sanity_check`: v5.7+ order, or the older ELF32-only order. Returns the byte
/// order of an ELF32 file.
fn sanity_check(b: &[u8], opts: &Options) -> Result<Endian> {
    let len = b.len();
    if len < EHDR32_SIZE {
        return Err(too_small_header(len));
    }
    let class = b[EI_CLASS];
    let shoff_too_small = |shoff: u64, shsize: u64, what: &str| {
        kernel(
            "Image is too small",
            EINVAL,
            format!(
                "e_shoff {shoff:#x} + one {shsize}-byte section header ends past the {len}-byte \
                 file{what}"
            ),
        )
    };
    if opts.kernel.elf64_sanity() {
        if &b[..4] != ELFMAG {
            return Err(bad_magic(b));
        }
        if class != ELFCLASS32 && class != ELFCLASS64 {
            // `char class` printed with %d: signed on MIPS (and x86) until v6.2 made every
            // architecture build with -funsigned-char (commit 3bc753c06dd0, "kbuild: treat
            // char as always unsigned").
            let shown = if opts.kernel == KernelEra::Newest {
                i32::from(class)
            } else {
                i32::from(class as i8)
            };
            return Err(kernel(format!("Unsupported class: {shown}"), EINVAL, ""));
        }
        if class == ELFCLASS64 && len < 64 {
            return Err(kernel(
                "elf64 header is too small",
                EINVAL,
                format!("the file is {len} bytes; an ELF64 header is 64"),
            ));
        }
        let e = endian_check(b[EI_DATA], opts.host)?;
        let (phoff, shoff, phnum, shsize) = if class == ELFCLASS64 {
            let g = |o| u64_at(b, e, o).unwrap_or(0);
            (g(32), g(40), u16_at(b, e, 56).unwrap_or(0), 64u64)
        } else {
            let g = |o| u64::from(u32_at(b, e, o).unwrap_or(0));
            (
                g(28),
                g(32),
                u16_at(b, e, 44).unwrap_or(0),
                SHDR32_SIZE as u64,
            )
        };
        // `fw->size < shoff + elf_shdr_get_size` in u64: wraps only for an ELF64 e_shoff.
        if (len as u64) < shoff.wrapping_add(shsize) {
            return Err(shoff_too_small(shoff, shsize, ""));
        }
        if phnum == 0 {
            return Err(no_segments());
        }
        if phoff > len as u64 {
            return Err(phoff_too_big(phoff, len));
        }
        if class == ELFCLASS64 {
            return Err(firmware(
                "ELF64 firmware: kernels since v5.7 accept it, but the MIPS remoteproc driver is \
                 32-bit only (depends on !64BIT) and kernels before v5.7 refuse it with \
                 \"Unsupported class: 2\"; build an ELF32 firmware",
            ));
        }
        Ok(e)
    } else {
        // Before v5.7: size, class (ELF32 only), endianness, e_shoff, magic, e_phnum, e_phoff.
        if class != ELFCLASS32 {
            // Printed from a `char`: signed on MIPS and x86 before -funsigned-char.
            return Err(kernel(
                format!("Unsupported class: {}", class as i8),
                EINVAL,
                "",
            ));
        }
        let e = endian_check(b[EI_DATA], opts.host)?;
        let shoff = u64::from(u32_at(b, e, 32).unwrap_or(0));
        // u32 + size_t: a 32-bit kernel would wrap here (and then read section headers from
        // beyond the buffer); in u64 the file is simply too small. Refused either way.
        if (len as u64) < shoff + SHDR32_SIZE as u64 {
            return Err(shoff_too_small(
                shoff,
                SHDR32_SIZE as u64,
                " (a 32-bit kernel computes this in 32 bits and may wrap instead)",
            ));
        }
        if &b[..4] != ELFMAG {
            return Err(bad_magic(b));
        }
        if u16_at(b, e, 44).unwrap_or(0) == 0 {
            return Err(no_segments());
        }
        let phoff = u64::from(u32_at(b, e, 28).unwrap_or(0));
        if phoff > len as u64 {
            return Err(phoff_too_big(phoff, len));
        }
        Ok(e)
    }
}

fn no_segments() -> Error {
    kernel(
        "No loadable segments",
        EINVAL,
        "e_phnum is 0 (an unconverted relocatable object has no program headers)",
    )
}

fn phoff_too_big(phoff: u64, len: usize) -> Error {
    kernel(
        "Firmware size is too small",
        EINVAL,
        format!("e_phoff {phoff:#x} is past the end of the {len}-byte file"),
    )
}

fn header_warnings(h: &Ehdr, w: &mut Vec<String>) {
    if h.e_type != ET_EXEC {
        w.push(format!(
            "e_type is {} (not ET_EXEC 2); the kernel does not check it",
            h.e_type
        ));
    }
    if h.e_machine != EM_MIPS {
        w.push(format!(
            "e_machine is {} (not EM_MIPS 8); the kernel does not check it",
            h.e_machine
        ));
    }
    if h.e_ehsize as usize != EHDR32_SIZE {
        w.push(format!("e_ehsize is {} (not 52)", h.e_ehsize));
    }
    if h.e_phentsize as usize != PHDR32_SIZE {
        w.push(format!(
            "e_phentsize is {} but the kernel reads program headers with a 32-byte stride",
            h.e_phentsize
        ));
    }
    if h.e_shnum != 0 && h.e_shentsize as usize != SHDR32_SIZE {
        w.push(format!(
            "e_shentsize is {} but the kernel reads section headers with a 40-byte stride",
            h.e_shentsize
        ));
    }
}

// ---- find_table ----------------------------------------------------------------------------

/// A section header with its name (read from `.shstrtab`).
struct Section {
    shdr: Shdr,
    name: String,
}

/// All section headers and names, refusing anything `find_table` would read out of bounds.
fn section_headers(b: &[u8], h: &Ehdr) -> Result<Vec<Section>> {
    let n = usize::from(h.e_shnum);
    if n == 0 {
        return Ok(Vec::new());
    }
    let oob = "the kernel would read it from beyond the firmware buffer";
    let end = u64::from(h.e_shoff) + (n as u64) * SHDR32_SIZE as u64;
    if end > b.len() as u64 {
        return Err(firmware(format!(
            "section header table at {:#010x} ({n} x 40 bytes) runs past the end of the \
             {}-byte file: the kernel checks only the first header, {oob}",
            h.e_shoff,
            b.len()
        )));
    }
    if h.e_shstrndx >= h.e_shnum {
        return Err(firmware(format!(
            "e_shstrndx {} is not below e_shnum {n} (extended numbering is not supported): \
             find_table would take section names from a header outside the table",
            h.e_shstrndx
        )));
    }
    let r = Reader::new(b, h.endian);
    let shdrs: Vec<Shdr> = (0..n)
        .map(|i| r.shdr(h.e_shoff, i))
        .collect::<Result<_>>()?;
    let st = shdrs[usize::from(h.e_shstrndx)];
    let st_end = u64::from(st.sh_offset) + u64::from(st.sh_size);
    if st_end > b.len() as u64 {
        return Err(firmware(format!(
            "section name table [{}] at {:#010x} size {:#x} runs past the end of the {}-byte \
             file: {oob}",
            h.e_shstrndx,
            st.sh_offset,
            st.sh_size,
            b.len()
        )));
    }
    let names = &b[st.sh_offset as usize..st_end as usize];
    shdrs
        .into_iter()
        .enumerate()
        .map(|(i, shdr)| {
            let rest = names.get(shdr.sh_name as usize..).filter(|r| !r.is_empty());
            let Some(rest) = rest else {
                return Err(firmware(format!(
                    "section [{i}]: name offset {:#x} is outside the {:#x}-byte section name \
                     table; {oob}",
                    shdr.sh_name, st.sh_size
                )));
            };
            let Some(nul) = rest.iter().position(|&c| c == 0) else {
                return Err(firmware(format!(
                    "section [{i}]: name at offset {:#x} is not NUL-terminated inside the \
                     section name table; strcmp in find_table would read past it",
                    shdr.sh_name
                )));
            };
            Ok(Section {
                shdr,
                name: crate::elf::read::printable_name(&rest[..nul]),
            })
        })
        .collect()
}

/// `find_table`: the first section named `.resource_table`, with the kernel's checks.
fn find_table(
    b: &[u8],
    h: &Ehdr,
    secs: &[Section],
    era: KernelEra,
    w: &mut Vec<String>,
) -> Result<(usize, Shdr)> {
    let old = era == KernelEra::Old4x;
    let then = if old {
        "; then \"Failed to find resource table\""
    } else {
        ""
    };
    let Some(ti) = secs.iter().position(|s| s.name == RESOURCE_TABLE) else {
        let detail = if secs.is_empty() {
            "the file has no section headers (e_shnum 0); stripped section headers break loading"
                .to_string()
        } else {
            format!(
                "none of the {} section headers is named {RESOURCE_TABLE}",
                secs.len()
            )
        };
        return Err(if old {
            kernel(
                "Failed to find resource table",
                EINVAL,
                format!("{detail}; then \"Boot failed: -22\""),
            )
        } else {
            kernel(
                "no .resource_table section (the kernel fails with \"Boot failed: -22\" and \
                 prints nothing else)",
                EINVAL,
                detail,
            )
        });
    };
    let dups = secs.iter().filter(|s| s.name == RESOURCE_TABLE).count();
    if dups > 1 {
        w.push(format!(
            "{dups} sections are named {RESOURCE_TABLE}; the kernel uses the first (section [{ti}])"
        ));
    }
    let s = secs[ti].shdr;
    let (off, size) = (u64::from(s.sh_offset), u64::from(s.sh_size));
    let at = format!("section [{ti}] {RESOURCE_TABLE} at file offset {off:#010x} size {size:#x}");
    if off + size > b.len() as u64 {
        return Err(kernel(
            "resource table truncated",
            EINVAL,
            format!("{at} ends past the {}-byte file{then}", b.len()),
        ));
    }
    if size < HEADER_SIZE as u64 {
        return Err(kernel(
            "header-less resource table",
            EINVAL,
            format!("{at}: smaller than the 16-byte header{then}"),
        ));
    }
    let t = &b[off as usize..(off + size) as usize];
    let rd = |o: u64| u32_at(t, h.endian, o).unwrap_or(0);
    let ver = rd(0);
    if ver != 1 {
        return Err(kernel(
            format!("unsupported fw ver: {}", ver as i32),
            EINVAL,
            format!("{at}{then}"),
        ));
    }
    if rd(8) != 0 || rd(12) != 0 {
        return Err(kernel(
            "non zero reserved bytes",
            EINVAL,
            format!(
                "{at}: reserved[0] = {:#x}, reserved[1] = {:#x}{then}",
                rd(8),
                rd(12)
            ),
        ));
    }
    let num = rd(4);
    // struct_size() saturates; 4.x computed 16 + 4 * num in a 32-bit size_t, which wraps.
    let need = if old {
        u64::from(16u32.wrapping_add(num.wrapping_mul(4)))
    } else {
        16 + 4 * u64::from(num)
    };
    if need > size {
        return Err(kernel(
            "resource table incomplete",
            EINVAL,
            format!(
                "{at}: num {num} needs {:#x} bytes of header and offsets{then}",
                16 + 4 * u64::from(num)
            ),
        ));
    }
    Ok((ti, s))
}

// ---- rproc_handle_resources ----------------------------------------------------------------

/// A NUL-terminated `char name[32]`, or `None` if there is no NUL within the 32 bytes.
fn c_name(b: &[u8]) -> Option<String> {
    let n = b.iter().position(|&c| c == 0)?;
    Some(crate::elf::read::printable_name(&b[..n]))
}

fn handle_resources(
    t: &[u8],
    e: Endian,
    era: KernelEra,
    w: &mut Vec<String>,
) -> Result<(ResourceTable, Vec<u64>)> {
    let size = t.len() as u64;
    let rd = |o: u64| u32_at(t, e, o);
    let ver = rd(0).unwrap_or(0);
    let num = rd(4).unwrap_or(0);
    let mut entries = Vec::new();
    let mut offsets = Vec::new();
    let mut seen_other = false;
    for i in 0..num {
        let Some(raw) = rd(16 + 4 * u64::from(i)) else {
            // Only reachable when 4.x's 32-bit size computation wrapped.
            return Err(firmware(format!(
                "resource table: num {num} wraps the kernel's 32-bit size check, so the kernel \
                 would read offset[{i}] from beyond the {size:#x}-byte table"
            )));
        };
        // `int offset`, `int avail = table_sz - offset - sizeof(*hdr)`.
        let offset = raw as i32;
        let avail = (size as u32)
            .wrapping_sub(raw)
            .wrapping_sub(RSC_HDR_SIZE as u32) as i32;
        let at = format!("entry {i} at table offset {raw:#x} in a {size:#x}-byte table");
        if avail < 0 {
            return Err(kernel(
                "rsc table is truncated",
                EINVAL,
                format!("{at}; {AFTER_RSC}"),
            ));
        }
        if offset < 0 {
            return Err(firmware(format!(
                "resource table {at}: offset[{i}] is negative as the kernel's int, so the kernel \
                 accepts it and reads the entry from before the table"
            )));
        }
        let off = u64::from(raw);
        let avail = avail as u64;
        let rtype = rd(off).unwrap_or(0);
        let body = off + RSC_HDR_SIZE as u64;
        let f = |k: u64| rd(body + k).unwrap_or(0);
        let bytes = |k: u64, n: usize| &t[(body + k) as usize..(body + k) as usize + n];
        if off < 16 + 4 * u64::from(num) {
            w.push(format!(
                "resource table {at} overlaps the table header or offset array"
            ));
        }
        let r = match rtype {
            // Vendor range first (inclusive), handed to ops->handle_rsc, which we do not have.
            RSC_VENDOR_START..=RSC_VENDOR_END => {
                // The vendor range and ops->handle_rsc: "[PATCH] remoteproc: add vendor
                // resources handling" (Clement Leger, Jun 2019), first in v5.3. Before it the
                // type fell into the `>= RSC_LAST` branch.
                w.push(match era {
                    KernelEra::Old4x => format!("unsupported resource {}", rtype as i32),
                    KernelEra::Pre57 => format!(
                        "unsupported vendor resource {t} (v5.3 - v5.6; v4.20 - v5.2 print \"unsupported resource {t}\")",
                        t = rtype as i32
                    ),
                    _ => format!("unsupported vendor resource {}", rtype as i32),
                });
                Resource::Other {
                    rtype,
                    body: Vec::new(),
                }
            }
            RSC_LAST.. => {
                w.push(format!("unsupported resource {}", rtype as i32));
                Resource::Other {
                    rtype,
                    body: Vec::new(),
                }
            }
            RSC_CARVEOUT => {
                if (CARVEOUT_BODY as u64) > avail {
                    return Err(kernel(
                        "carveout rsc is truncated",
                        EINVAL,
                        format!("{at}; {AFTER_RSC}"),
                    ));
                }
                if f(16) != 0 {
                    return Err(kernel(
                        "carveout rsc has non zero reserved bytes",
                        EINVAL,
                        format!("{at}: reserved = {:#x}; {AFTER_RSC}", f(16)),
                    ));
                }
                let Some(name) = c_name(bytes(20, NAME_LEN)) else {
                    return Err(firmware(format!(
                        "resource table {at}: carveout name is not NUL-terminated within 32 \
                         bytes; the kernel would read past it"
                    )));
                };
                if name.contains('%') {
                    return Err(firmware(format!(
                        "resource table {at}: carveout name \"{}\" contains '%': \
                         rproc_mem_entry_init uses the name as a printf format",
                        name.escape_debug()
                    )));
                }
                let c = Carveout {
                    da: f(0),
                    pa: f(4),
                    len: f(8),
                    flags: f(12),
                    reserved: 0,
                    name,
                };
                // rproc_find_carveout_by_name (v4.20+): a second entry with the same name
                // finds the first one, already linked to the table.
                let dup = entries
                    .iter()
                    .any(|r| matches!(r, Resource::Carveout(d) if d.name == c.name));
                if era != KernelEra::Old4x && dup {
                    return Err(kernel(
                        "Carveout already associated to resource table",
                        ENOMEM,
                        format!(
                            "{at}: another carveout is already named \"{}\"; then \"Failed to \
                             process resources: -12\" and \"Boot failed: -12\"",
                            c.name.escape_debug()
                        ),
                    ));
                }
                if era.parse_time_alloc() {
                    check_alloc(i as usize, &c, era)?;
                }
                if seen_other {
                    w.push(format!(
                        "carveout \"{}\" (entry {i}) follows other entries; put carveouts first \
                         (4.x kernels translate a trace da while parsing)",
                        c.name.escape_debug()
                    ));
                }
                if c.name.is_empty() {
                    w.push(format!("carveout entry {i} has an empty name"));
                }
                Resource::Carveout(c)
            }
            RSC_DEVMEM => {
                // No IOMMU domain: rproc_handle_devmem returns -EINVAL before any message.
                return Err(kernel(
                    "Failed to process resources: -22",
                    EINVAL,
                    format!(
                        "{at}: RSC_DEVMEM needs an IOMMU; without one rproc_handle_devmem fails \
                         silently; then \"Boot failed: -22\""
                    ),
                ));
            }
            RSC_TRACE => {
                if (TRACE_BODY as u64) > avail {
                    return Err(kernel(
                        "trace rsc is truncated",
                        EINVAL,
                        format!("{at}; {AFTER_RSC}"),
                    ));
                }
                if f(8) != 0 {
                    return Err(kernel(
                        "trace rsc has non zero reserved bytes",
                        EINVAL,
                        format!("{at}: reserved = {:#x}; {AFTER_RSC}", f(8)),
                    ));
                }
                let name = c_name(bytes(12, NAME_LEN)).unwrap_or_else(|| {
                    w.push(format!(
                        "trace entry {i}: name is not NUL-terminated within 32 bytes"
                    ));
                    crate::elf::read::printable_name(bytes(12, NAME_LEN))
                });
                let (da, len) = (f(0), f(4));
                if era.parse_time_alloc() {
                    // 4.x rproc_handle_trace: `rproc_da_to_va(rproc, rsc->da, rsc->len)` right
                    // away, against the carveouts the entries before it allocated.
                    let before: Vec<(usize, &Carveout)> = entries
                        .iter()
                        .enumerate()
                        .filter_map(|(k, r)| match r {
                            Resource::Carveout(c) => Some((k, c)),
                            _ => None,
                        })
                        .collect();
                    if !in_one_carveout(&before, da, len) {
                        return Err(kernel(
                            "erroneous trace resource entry",
                            EINVAL,
                            format!(
                                "{at}: trace [{da:#010x}, {:#010x}) is not inside one carveout \
                                 allocated by an earlier entry (4.x kernels translate the trace \
                                 while parsing the table, in table order); {}; {AFTER_RSC}",
                                u64::from(da) + u64::from(len),
                                describe_carveouts(&before)
                            ),
                        ));
                    }
                }
                seen_other = true;
                Resource::Trace {
                    da,
                    len,
                    reserved: 0,
                    name,
                }
            }
            // RSC_VDEV: the only value left below RSC_LAST.
            _ => {
                let truncated = || {
                    kernel(
                        "vdev rsc is truncated",
                        EINVAL,
                        format!("{at}; {AFTER_RSC}"),
                    )
                };
                if (VDEV_BODY as u64) > avail {
                    return Err(truncated());
                }
                let flags = bytes(20, 4);
                let (status, nvr, reserved) = (flags[0], flags[1], [flags[2], flags[3]]);
                let config_len = f(16);
                let need =
                    VDEV_BODY as u64 + VRING_SIZE as u64 * u64::from(nvr) + u64::from(config_len);
                if need > avail {
                    return Err(truncated());
                }
                if reserved != [0, 0] {
                    return Err(kernel(
                        "vdev rsc has non zero reserved bytes",
                        EINVAL,
                        format!("{at}: reserved = {reserved:02x?}; {AFTER_RSC}"),
                    ));
                }
                if nvr > 2 {
                    return Err(kernel(
                        format!("too many vrings: {nvr}"),
                        EINVAL,
                        format!("{at}; {AFTER_RSC}"),
                    ));
                }
                let mut vrings = Vec::new();
                for k in 0..u64::from(nvr) {
                    let v = VDEV_BODY as u64 + k * VRING_SIZE as u64;
                    let vr = Vring {
                        da: f(v),
                        align: f(v + 4),
                        num: f(v + 8),
                        notifyid: f(v + 12),
                        pa: f(v + 16),
                    };
                    // 4.x rproc_parse_vring checks `reserved` before the queue size; the
                    // field became `pa` and lost its check later (version not pinned down).
                    if vr.pa != 0 {
                        if era == KernelEra::Old4x {
                            return Err(kernel(
                                "vring rsc has non zero reserved bytes",
                                EINVAL,
                                format!("{at}, vring {k}: reserved = {:#x}; {AFTER_RSC}", vr.pa),
                            ));
                        }
                        w.push(format!("vdev entry {i} vring {k}: the word at +16 is {:#x}; old kernels require 0", vr.pa));
                    }
                    if vr.num == 0 || vr.align == 0 {
                        let msg = format!(
                            "invalid qsz ({}) or alignment ({})",
                            vr.num as i32, vr.align as i32
                        );
                        if era.vring_fatal() {
                            return Err(kernel(
                                msg,
                                EINVAL,
                                format!("{at}, vring {k}; {AFTER_RSC}"),
                            ));
                        }
                        // v6.1+: rproc_parse_vring runs in the rproc-virtio platform device's
                        // probe ("remoteproc: virtio: Create platform device for the
                        // remoteproc_virtio", Arnaud Pouliquen); a failed probe does not fail
                        // the boot.
                        w.push(format!(
                            "{msg} ({at}, vring {k}: v6.1+ kernels print this from the rproc-virtio probe and boot without this virtio device; v6.0 and older refuse the firmware)"
                        ));
                    }
                    if !vr.num.is_power_of_two() {
                        w.push(format!(
                            "vdev entry {i} vring {k}: num {} is not a power of two; virtio will \
                             refuse the virtqueue (\"Bad virtqueue length\")",
                            vr.num
                        ));
                    }
                    vrings.push(vr);
                }
                let cfg = VDEV_BODY as u64 + VRING_SIZE as u64 * u64::from(nvr);
                seen_other = true;
                Resource::Vdev {
                    id: f(0),
                    notifyid: f(4),
                    dfeatures: f(8),
                    gfeatures: f(12),
                    config_len,
                    status,
                    num_of_vrings: nvr,
                    reserved,
                    vrings,
                    config: bytes(cfg, config_len as usize).to_vec(),
                }
            }
        };
        entries.push(r);
        offsets.push(off);
    }
    // Bodies of unknown entries: up to the next entry that starts after them, or the end.
    for (k, r) in entries.iter_mut().enumerate() {
        if let Resource::Other { body, .. } = r {
            let start = offsets[k] + RSC_HDR_SIZE as u64;
            let end = offsets
                .iter()
                .copied()
                .filter(|&o| o > offsets[k])
                .min()
                .unwrap_or(size);
            let end = end.clamp(start, size);
            *body = t[start as usize..end as usize].to_vec();
        }
    }
    Ok((ResourceTable { ver, entries }, offsets))
}

/// `dma_alloc_coherent` of a zero length fails: in 4.x inside `rproc_handle_carveout` (so the
/// table walk fails), since v4.20 in `rproc_alloc_carveout`, called from
/// `rproc_alloc_registered_carveouts` after the walk.
fn check_alloc(i: usize, c: &Carveout, era: KernelEra) -> Result<()> {
    if c.len == 0 {
        let name = c.name.escape_debug();
        let then = if era.parse_time_alloc() {
            "then \"Failed to process resources: -12\" and \"Boot failed: -12\"".to_string()
        } else {
            format!(
                "then \"Unable to allocate carveout {name}: -12\", \"Failed to allocate \
                 associated carveouts: -12\" and \"Boot failed: -12\""
            )
        };
        return Err(kernel(
            "failed to allocate dma memory: len 0x0",
            ENOMEM,
            format!("carveout entry {i} \"{name}\" has len 0; {then}"),
        ));
    }
    Ok(())
}

// ---- rproc_elf_load_segments ---------------------------------------------------------------

/// `rproc_da_to_va` over the carveouts: `da >= c.da && (da - c.da) + len <= c.len`.
fn in_one_carveout(carveouts: &[(usize, &Carveout)], da: u32, len: u32) -> bool {
    carveouts.iter().any(|(_, c)| {
        c.da != FW_RSC_ADDR_ANY
            && da >= c.da
            && u64::from(da - c.da) + u64::from(len) <= u64::from(c.len)
    })
}

fn describe_carveouts(carveouts: &[(usize, &Carveout)]) -> String {
    if carveouts.is_empty() {
        return "the table has no carveouts".into();
    }
    let list: Vec<String> = carveouts
        .iter()
        .map(|(_, c)| {
            if c.da == FW_RSC_ADDR_ANY {
                format!(
                    "\"{}\" at FW_RSC_ADDR_ANY (address chosen at boot) len {:#x}",
                    c.name, c.len
                )
            } else {
                format!(
                    "\"{}\" [{:#010x}, {:#010x})",
                    c.name,
                    c.da,
                    u64::from(c.da) + u64::from(c.len)
                )
            }
        })
        .collect();
    format!("carveouts: {}", list.join(", "))
}

type Segments = (Vec<(usize, Phdr)>, Vec<Segment>);

/// Returns the PT_LOADs the kernel loads (index, header) and the segments they write.
fn load_segments(
    b: &[u8],
    h: &Ehdr,
    carveouts: &[(usize, &Carveout)],
    era: KernelEra,
    w: &mut Vec<String>,
) -> Result<Segments> {
    let r = Reader::new(b, h.endian);
    let mut loads = Vec::new();
    let mut segs = Vec::new();
    for i in 0..usize::from(h.e_phnum) {
        let p = r.phdr(h.e_phoff, i).map_err(|_| {
            firmware(format!(
                "program header #{i} at {:#010x} runs past the end of the {}-byte file: the \
                 kernel checks only e_phoff <= size and would read it from beyond the firmware \
                 buffer",
                u64::from(h.e_phoff) + (i * PHDR32_SIZE) as u64,
                b.len()
            ))
        })?;
        if p.p_type != PT_LOAD {
            continue;
        }
        let at = format!("program header #{i}");
        if p.p_memsz == 0 {
            // `|| !memsz`: "[PATCH V2 1/2] remoteproc: elf_loader: skip segment with memsz as
            // zero" (Peng Fan, Apr 2022), first in v5.19. Before it rproc_da_to_va(da, 0) had
            // to find a carveout holding da.
            let inside = in_one_carveout(carveouts, p.p_paddr, 0);
            if era.skips_empty_loads() {
                if !inside {
                    w.push(format!(
                        "{at} is an empty PT_LOAD at {:#010x} outside every carveout: skipped by \
                         v5.19+ kernels, refused by older ones (bad phdr da)",
                        p.p_paddr
                    ));
                }
                continue;
            }
        }
        if p.p_filesz > p.p_memsz {
            return Err(kernel(
                format!("bad phdr filesz {:#x} memsz {:#x}", p.p_filesz, p.p_memsz),
                EINVAL,
                format!("{at}; {AFTER_LOAD}"),
            ));
        }
        let need = u64::from(p.p_offset) + u64::from(p.p_filesz);
        if need > b.len() as u64 {
            return Err(kernel(
                format!("truncated fw: need {need:#x} avail {:#x}", b.len()),
                EINVAL,
                format!("{at} at file offset {:#010x}; {AFTER_LOAD}", p.p_offset),
            ));
        }
        if !in_one_carveout(carveouts, p.p_paddr, p.p_memsz) {
            return Err(kernel(
                format!("bad phdr da {:#x} mem {:#x}", p.p_paddr, p.p_memsz),
                EINVAL,
                format!(
                    "{at}: [{:#010x}, {:#010x}) is not inside one carveout (a segment may not \
                     span two); {}; {AFTER_LOAD}",
                    p.p_paddr,
                    u64::from(p.p_paddr) + u64::from(p.p_memsz),
                    describe_carveouts(carveouts)
                ),
            ));
        }
        if p.p_memsz == 0 {
            continue; // older kernels: translated, nothing written
        }
        segs.push(Segment {
            addr: p.p_paddr,
            data: b[p.p_offset as usize..need as usize].to_vec(),
            mem_size: p.p_memsz,
        });
        loads.push((i, p));
    }
    Ok((loads, segs))
}

// ---- what the kernel does not check --------------------------------------------------------

fn silent_failures(
    h: &Ehdr,
    tsec: &Section,
    loads: &[(usize, Phdr)],
    segs: &[Segment],
    table: &ResourceTable,
    offsets: &[u64],
    w: &mut Vec<String>,
) -> Result<()> {
    let accepts = "the kernel would accept it";
    // Overlapping PT_LOADs: the later one silently overwrites the earlier one.
    let mut order: Vec<usize> = (0..segs.len()).collect();
    order.sort_by_key(|&k| segs[k].addr);
    for pair in order.windows(2) {
        let (a, b) = (&segs[pair[0]], &segs[pair[1]]);
        if a.end() > u64::from(b.addr) {
            return Err(firmware(format!(
                "PT_LOADs #{} [{:#010x}, {:#010x}) and #{} [{:#010x}, {:#010x}) overlap: {accepts}, \
                 but whichever is loaded later overwrites the other",
                loads[pair[0]].0,
                a.addr,
                a.end(),
                loads[pair[1]].0,
                b.addr,
                b.end()
            )));
        }
    }

    // The table must be where rproc_elf_find_loaded_rsc_table finds it (by sh_addr) after
    // loading, or the kernel's write-backs never reach the firmware (spec §2.4).
    let s = tsec.shdr;
    let why = "the kernel would boot it, but never copy the table (with the carveout pa, \
               vring da and notifyid it fills in) into the firmware's memory";
    if s.sh_type == SHT_NOBITS {
        return Err(firmware(format!(
            "{RESOURCE_TABLE} is SHT_NOBITS: {accepts} and read the table from whatever file \
             bytes are at sh_offset {:#010x}, while the firmware sees zero-filled memory",
            s.sh_offset
        )));
    }
    if s.sh_flags & SHF_ALLOC == 0 {
        return Err(firmware(format!(
            "{RESOURCE_TABLE} is not SHF_ALLOC (not loaded): {why}"
        )));
    }
    let holder = loads.iter().find(|(_, p)| {
        let (so, ss) = (u64::from(s.sh_offset), u64::from(s.sh_size));
        so >= u64::from(p.p_offset)
            && so + ss <= u64::from(p.p_offset) + u64::from(p.p_filesz)
            && s.sh_addr.checked_sub(p.p_vaddr) == Some(s.sh_offset - p.p_offset)
    });
    let Some((pi, p)) = holder else {
        return Err(firmware(format!(
            "{RESOURCE_TABLE} (sh_addr {:#010x}, file offset {:#010x}, size {:#x}) is not inside \
             the file-backed part of any PT_LOAD at the matching address: {why}",
            s.sh_addr, s.sh_offset, s.sh_size
        )));
    };
    if p.p_vaddr != p.p_paddr {
        return Err(firmware(format!(
            "program header #{pi} holds {RESOURCE_TABLE} but its p_vaddr {:#010x} != p_paddr \
             {:#010x}: the kernel loads by p_paddr but looks the table up by sh_addr (a virtual \
             address); {why}",
            p.p_vaddr, p.p_paddr
        )));
    }
    if s.sh_type != SHT_PROGBITS {
        w.push(format!(
            "{RESOURCE_TABLE} has sh_type {:#x}, not SHT_PROGBITS",
            s.sh_type
        ));
    }
    if s.sh_flags & SHF_WRITE == 0 || p.p_flags & PF_W == 0 {
        w.push(format!(
            "{RESOURCE_TABLE} or its segment is not writable; the kernel and the firmware write it"
        ));
    }
    // Entries read by MIPS code with lw: every entry 4-byte aligned in memory.
    for (i, &o) in offsets.iter().enumerate() {
        let addr = u64::from(s.sh_addr) + o;
        if addr % 4 != 0 {
            return Err(firmware(format!(
                "resource entry {i} at table offset {o:#x} (address {addr:#010x}) is not 4-byte \
                 aligned: {accepts} (the table is packed), but MIPS firmware reading it with lw \
                 takes an address error"
            )));
        }
    }

    // e_entry: the kernel never checks it; the MIPS driver calls it as a function. A
    // KSEG0/KSEG1 entry may reach its code through the unmapped alias of a segment loaded at
    // the twin or physical address (Lantiq: vpe1_sw_start(KSEG1(base)), spec §6.4).
    let mut targets = vec![h.e_entry];
    targets.extend(super::firmware::kseg_aliases(h.e_entry));
    let in_code = loads.iter().any(|(_, p)| {
        p.p_flags & PF_X != 0
            && targets.iter().any(|&t| {
                t >= p.p_paddr && u64::from(t) < u64::from(p.p_paddr) + u64::from(p.p_memsz)
            })
    });
    if !in_code {
        return Err(firmware(format!(
            "e_entry {:#010x} is not inside any executable PT_LOAD: {accepts} (it never checks \
             e_entry), but the driver would jump there",
            h.e_entry
        )));
    }

    // Carveouts must not overlap each other (wired TLB entries may not overlap on MIPS, and
    // two allocations cannot share device addresses).
    let cs: Vec<&Carveout> = table
        .entries
        .iter()
        .filter_map(|r| match r {
            Resource::Carveout(c) if c.da != FW_RSC_ADDR_ANY => Some(c),
            _ => None,
        })
        .collect();
    for (k, a) in cs.iter().enumerate() {
        for b in &cs[k + 1..] {
            let (a0, a1) = (u64::from(a.da), u64::from(a.da) + u64::from(a.len));
            let (b0, b1) = (u64::from(b.da), u64::from(b.da) + u64::from(b.len));
            if a0 < b1 && b0 < a1 {
                return Err(firmware(format!(
                    "carveouts \"{}\" [{a0:#010x}, {a1:#010x}) and \"{}\" [{b0:#010x}, \
                     {b1:#010x}) overlap: {accepts}, but they would be separate allocations \
                     mapped at the same device addresses",
                    a.name, b.name
                )));
            }
        }
    }

    // Trace buffers are resolved (da_to_va) when trace0 is read.
    let refs: Vec<(usize, &Carveout)> = cs.iter().map(|c| (0, *c)).collect();
    for (i, r) in table.entries.iter().enumerate() {
        if let Resource::Trace { da, len, .. } = r {
            if !in_one_carveout(&refs, *da, *len) {
                return Err(firmware(format!(
                    "trace entry {i} [{da:#010x}, {:#010x}) is not inside one carveout: {accepts} \
                     and create trace0, but reading it fails",
                    u64::from(*da) + u64::from(*len)
                )));
            }
        }
    }

    // Other PT_LOADs with p_vaddr != p_paddr: legal, but tools disagree about addresses.
    for (i, p) in loads {
        if p.p_vaddr != p.p_paddr {
            w.push(format!(
                "program header #{i}: p_vaddr {:#010x} != p_paddr {:#010x}; the kernel loads at p_paddr",
                p.p_vaddr, p.p_paddr
            ));
        }
    }
    Ok(())
}

/// `PAGE_ALIGN(vring_size(num, align))` as the kernel computes it (4 KiB pages).
fn vring_bytes(num: u32, align: u32) -> u64 {
    let (n, a) = (u64::from(num), u64::from(align));
    let ring = (16 * n + 2 * (3 + n) + a - 1) & !(a.wrapping_sub(1));
    let total = ring + 2 * 3 + 8 * n;
    (total + 0xfff) & !0xfff
}

/// MIPS driver geometry (spec §4.4) or fixed-memory rules; only when a profile is given.
fn profile_geometry(p: Profile, table: &ResourceTable) -> Result<()> {
    let pre = format!("profile {}: ", p.name());
    let tail = "the kernel core would accept it";
    let mut names: Vec<&str> = Vec::new();
    for (i, r) in table.entries.iter().enumerate() {
        match (p, r) {
            (Profile::MipsRproc, Resource::Carveout(c)) => {
                let end = u64::from(c.da) + u64::from(c.len);
                let what = format!(
                    "{pre}carveout entry {i} \"{}\" (da {:#010x} len {:#x})",
                    c.name, c.da, c.len
                );
                let bad = if c.da == FW_RSC_ADDR_ANY {
                    Some("has da FW_RSC_ADDR_ANY; the MIPS driver maps each carveout at its da with wired TLB entries, so it needs a fixed KUSEG address")
                } else if c.da % 0x2000 != 0 {
                    Some("da is not 8 KiB-aligned; EntryHi drops bit 12, so the mapping would be shifted")
                } else if c.len == 0 || c.len % 0x2000 != 0 {
                    Some("len is not a non-zero multiple of 0x2000; the driver maps EntryLo0/EntryLo1 pairs and its unsigned size counter underflows")
                } else if end > 0x8000_0000 {
                    Some("does not lie below 0x80000000 (KUSEG); the driver maps carveouts with the TLB, which only covers KUSEG")
                } else {
                    None
                };
                if let Some(b) = bad {
                    return Err(firmware(format!("{what} {b}; {tail}")));
                }
            }
            (Profile::MipsRproc, Resource::Devmem(_)) => {
                return Err(firmware(format!(
                    "{pre}entry {i} is RSC_DEVMEM; the MIPS driver has no IOMMU"
                )));
            }
            (Profile::MipsRproc, Resource::Vdev { vrings, .. }) => {
                for (k, v) in vrings.iter().enumerate() {
                    let sz = vring_bytes(v.num, v.align);
                    if sz % 0x2000 != 0 {
                        return Err(firmware(format!(
                            "{pre}vdev entry {i} vring {k} (num {}, align {:#x}) takes {sz:#x} bytes \
                             after PAGE_ALIGN, not a multiple of 0x2000; the driver's vring mapping \
                             loop underflows; {tail}",
                            v.num, v.align
                        )));
                    }
                }
            }
            (Profile::Fixed, Resource::Carveout(c)) => {
                if c.len == 0 {
                    return Err(firmware(format!(
                        "{pre}carveout entry {i} \"{}\" has len 0; {tail}",
                        c.name
                    )));
                }
                if names.contains(&c.name.as_str()) {
                    return Err(firmware(format!(
                        "{pre}carveout name \"{}\" is used twice; a platform driver matches \
                         pre-registered carveouts by name",
                        c.name
                    )));
                }
                names.push(&c.name);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Profile M: replay the MIPS driver's wired TLB mapping (`mips_tlb`) of every carveout for
/// every physical address CMA may return under `cma_align`, and count the wired entries the
/// carveouts and vrings need. Runs after [`profile_geometry`], so `da` and `len` are
/// 8 KiB multiples here.
fn mips_tlb_geometry(
    table: &ResourceTable,
    cma_align: Option<u8>,
    w: &mut Vec<String>,
) -> Result<()> {
    let cma = cma_align.unwrap_or(mips_tlb::DEFAULT_CMA_ALIGN);
    let (mut carveouts, mut vrings) = (0usize, 0usize);
    for (i, r) in table.entries.iter().enumerate() {
        match r {
            Resource::Carveout(c) => {
                match mips_tlb::check_carveout(u64::from(c.da), u64::from(c.len), cma) {
                    Ok(n) => carveouts += n,
                    Err(bad) => {
                        let e = bad.entry;
                        return Err(firmware(format!(
                            "profile mips-rproc: carveout entry {i} \"{}\" (da {:#010x} len {:#x}) \
                             would be mapped wrongly by the MIPS driver: with \
                             CONFIG_CMA_ALIGNMENT={cma} its memory may be at physical {:#x}, \
                             and the driver (choosing page sizes from the physical address only) \
                             then maps [{:#010x}, +{:#x}) with one wired entry whose da is not \
                             {:#x}-aligned; carveouts of at most {:#x} bytes aligned to the next \
                             power of two of their size always map (vpe-migrate --cma-align {cma}); \
                             the kernel core would accept it",
                            c.name.escape_debug(),
                            c.da,
                            c.len,
                            bad.pa,
                            e.da,
                            e.pair,
                            e.pair,
                            mips_tlb::KERNEL_PAGE << cma
                        )));
                    }
                }
            }
            Resource::Vdev { vrings: rings, .. } => {
                // The driver maps two vring slots per vdev, identity-mapped (da == pa).
                for v in rings.iter().take(2) {
                    vrings += mips_tlb::identity_entries(vring_bytes(v.num, v.align), cma);
                }
            }
            _ => {}
        }
    }
    let total = carveouts + vrings;
    if total > mips_tlb::WIRED_WARN {
        w.push(format!(
            "profile mips-rproc: mapping needs up to {total} wired TLB entries ({carveouts} for \
             the carveouts, {vrings} for the vrings; with 256 MiB pages, for the physical \
             addresses CMA may return under CONFIG_CMA_ALIGNMENT={cma}); the driver does not \
             check this, and cores with small TLBs (16 entries on the smallest) run out"
        ));
    }
    Ok(())
}

// ---- the Image, trampoline and note ----------------------------------------------------------

fn build_image(
    b: &[u8],
    h: &Ehdr,
    secs: &[Section],
    mut segments: Vec<Segment>,
    w: &mut Vec<String>,
) -> Image {
    segments.sort_by_key(|s| s.addr);
    let base = segments.first().map_or(0, |s| s.addr);
    let mut sections = Vec::new();
    let mut sec_pos = vec![None; secs.len()];
    for (i, s) in secs.iter().enumerate() {
        if i == 0 || s.shdr.sh_flags & SHF_ALLOC == 0 {
            continue;
        }
        sec_pos[i] = Some(sections.len());
        sections.push(PlacedSection {
            index: i,
            name: s.name.clone(),
            addr: s.shdr.sh_addr,
            size: s.shdr.sh_size,
            align: s.shdr.sh_addralign,
            flags: s.shdr.sh_flags,
            sh_type: s.shdr.sh_type,
            offset: s.shdr.sh_addr.wrapping_sub(base),
        });
    }
    let symbols = match read_symbols(b, h, secs, &sec_pos) {
        Ok(s) => s,
        Err(e) => {
            w.push(format!("symbol table ignored: {e}"));
            Vec::new()
        }
    };
    let find = |n: &str| symbols.iter().find(|s| s.name == n).map(|s| s.value);
    Image {
        kind: InputKind::Firmware,
        endian: h.endian,
        e_flags: h.e_flags,
        entry: h.e_entry,
        shared: find("vpe_shared"),
        gp: find("_gp"),
        base,
        segments,
        sections,
        symbols,
        warnings: Vec::new(),
    }
}

fn read_symbols(
    b: &[u8],
    h: &Ehdr,
    secs: &[Section],
    sec_pos: &[Option<usize>],
) -> Result<Vec<Symbol>> {
    let Some(st) = secs.iter().find(|s| s.shdr.sh_type == SHT_SYMTAB) else {
        return Ok(Vec::new());
    };
    let strtab = secs
        .get(st.shdr.sh_link as usize)
        .ok_or_else(|| Error::Malformed {
            what: format!(".symtab sh_link {} is not a section", st.shdr.sh_link),
            at: u64::from(h.e_shoff),
        })?;
    let r = Reader::new(b, h.endian);
    crate::elf::read::slice_at(
        b,
        u64::from(st.shdr.sh_offset),
        u64::from(st.shdr.sh_size),
        ".symtab",
    )?;
    let n = st.shdr.sh_size as usize / SYM32_SIZE;
    let mut out = Vec::new();
    for i in 1..n {
        let s = r.sym(st.shdr.sh_offset, i)?;
        if matches!(s.typ(), STT_SECTION | STT_FILE) {
            continue;
        }
        let name = r.str_in(
            strtab.shdr.sh_offset,
            strtab.shdr.sh_size,
            s.st_name,
            "symbol name",
        )?;
        let section = match s.st_shndx {
            SHN_UNDEF => None,
            x if x >= SHN_LORESERVE => None,
            x => sec_pos.get(usize::from(x)).copied().flatten(),
        };
        out.push(Symbol {
            name,
            value: s.st_value,
            size: s.st_size,
            info: s.st_info,
            section,
        });
    }
    Ok(out)
}

fn decode_trampoline(img: &Image) -> Option<Trampoline> {
    let code: Option<Vec<u8>> = (0..trampoline::SIZE as u32)
        .map(|k| img.entry.checked_add(k).and_then(|a| img.byte_at(a)))
        .collect();
    trampoline::decode(&code?, img.endian)
}

fn find_provenance(
    b: &[u8],
    h: &Ehdr,
    secs: &[Section],
    w: &mut Vec<String>,
) -> Option<Provenance> {
    for s in secs.iter().filter(|s| s.shdr.sh_type == SHT_NOTE) {
        let (o, n) = (u64::from(s.shdr.sh_offset), u64::from(s.shdr.sh_size));
        let Ok(bytes) = crate::elf::read::slice_at(b, o, n, "note") else {
            continue;
        };
        match note::decode(bytes, h.endian) {
            Ok(p) => return Some(p),
            Err(e) if s.name == ".note.vpe-migrate" => {
                w.push(format!("provenance note unreadable: {e}"))
            }
            Err(_) => {}
        }
    }
    None
}

#[cfg(test)]
pub(crate) mod tests {
    //! Inputs come from a small hand-written ELF32 writer (independent of `firmware.rs`) that
    //! lays out a known-good firmware; each case then edits the spec or patches bytes.
    use super::*;

    pub const BASE: u32 = 0x1000_0000;
    const BOTH: [Endian; 2] = [Endian::Little, Endian::Big];

    pub fn put32(b: &mut [u8], off: usize, v: u32, e: Endian) {
        b[off..off + 4].copy_from_slice(&e.u32_bytes(v));
    }
    fn put16(b: &mut [u8], off: usize, v: u16, e: Endian) {
        b[off..off + 2].copy_from_slice(&e.u16_bytes(v));
    }
    fn words(e: Endian, ws: &[u32]) -> Vec<u8> {
        ws.iter().flat_map(|w| e.u32_bytes(*w)).collect()
    }
    fn name32(n: &str) -> Vec<u8> {
        let mut v = n.as_bytes().to_vec();
        v.resize(32, 0);
        v
    }

    // ---- resource entries, type word included (layouts from include/linux/remoteproc.h) ----
    pub fn carveout(e: Endian, da: u32, len: u32, name: &str) -> Vec<u8> {
        let mut v = words(e, &[0, da, da, len, 0, 0]);
        v.extend(name32(name));
        assert_eq!(v.len(), 56);
        v
    }
    fn devmem(e: Endian, da: u32, len: u32) -> Vec<u8> {
        let mut v = carveout(e, da, len, "dev");
        v[..4].copy_from_slice(&e.u32_bytes(1));
        v
    }
    pub fn trace(e: Endian, da: u32, len: u32, name: &str) -> Vec<u8> {
        let mut v = words(e, &[2, da, len, 0]);
        v.extend(name32(name));
        assert_eq!(v.len(), 48);
        v
    }
    /// vdev with `(align, num)` vrings, `config_len` as written and `cfg` config bytes.
    fn vdev(e: Endian, rings: &[(u32, u32)], config_len: u32, cfg: usize) -> Vec<u8> {
        let mut v = words(e, &[3, 7, 31, 1, 0, config_len]);
        v.extend([0, rings.len() as u8, 0, 0]);
        for (k, &(align, num)) in rings.iter().enumerate() {
            v.extend(words(e, &[0, align, num, k as u32, 0]));
        }
        v.extend(vec![0xc5; cfg]);
        v
    }
    /// `struct resource_table` with entries at `align`-aligned offsets.
    pub fn table(e: Endian, entries: &[Vec<u8>], align: usize) -> Vec<u8> {
        let n = entries.len();
        let mut v = words(e, &[1, n as u32, 0, 0]);
        let mut off = 16 + 4 * n;
        let mut offs = Vec::new();
        for en in entries {
            off = off.div_ceil(align) * align;
            offs.push(off);
            off += en.len();
        }
        for &o in &offs {
            v.extend(e.u32_bytes(o as u32));
        }
        for (en, &o) in entries.iter().zip(&offs) {
            v.resize(o, 0);
            v.extend(en);
        }
        v
    }

    // ---- the ELF32 writer ------------------------------------------------------------------
    #[derive(Clone)]
    pub struct Seg {
        pub p_type: u32,
        pub vaddr: u32,
        pub paddr: u32,
        pub data: Vec<u8>,
        pub memsz: u32,
        pub flags: u32,
    }
    #[derive(Clone)]
    pub enum Content {
        /// Inside segment `.0` at offset `.1`.
        InSeg(usize, u32),
        Own(Vec<u8>),
        Nothing,
    }
    #[derive(Clone)]
    pub struct Sec {
        pub name: String,
        pub sh_type: u32,
        pub flags: u32,
        pub addr: u32,
        pub size: u32,
        pub link: u32,
        pub content: Content,
    }
    #[derive(Clone)]
    pub struct Elf {
        pub e: Endian,
        pub entry: u32,
        pub segs: Vec<Seg>,
        pub secs: Vec<Sec>,
    }
    pub struct Built {
        pub bytes: Vec<u8>,
        pub phoff: usize,
        pub shoff: usize,
        /// File offset of each segment's data.
        pub seg_off: Vec<usize>,
        /// File offset of each section's contents (spec order; header index = position + 1).
        pub sec_off: Vec<usize>,
    }
    impl Built {
        /// File offset of field `k` (byte offset in the header) of program header `i`.
        pub fn ph(&self, i: usize, k: usize) -> usize {
            self.phoff + 32 * i + k
        }
        /// File offset of field `k` of the header of section spec `i` (header index `i + 1`).
        pub fn sh(&self, i: usize, k: usize) -> usize {
            self.shoff + 40 * (i + 1) + k
        }
    }

    impl Elf {
        pub fn sec(&self, name: &str) -> usize {
            self.secs.iter().position(|s| s.name == name).unwrap()
        }
        pub fn build(&self) -> Built {
            let e = self.e;
            let mut b = vec![0u8; 52];
            let phoff = 52;
            b.resize(phoff + 32 * self.segs.len(), 0);
            let mut seg_off = Vec::new();
            for s in &self.segs {
                b.resize(b.len().div_ceil(16) * 16, 0);
                seg_off.push(b.len());
                b.extend(&s.data);
            }
            let mut sec_off = Vec::new();
            for s in &self.secs {
                match &s.content {
                    Content::InSeg(k, o) => sec_off.push(seg_off[*k] + *o as usize),
                    Content::Own(d) => {
                        b.resize(b.len().div_ceil(4) * 4, 0);
                        sec_off.push(b.len());
                        b.extend(d);
                    }
                    Content::Nothing => sec_off.push(b.len()),
                }
            }
            let mut shstr = vec![0u8];
            let mut name_off = Vec::new();
            for n in self
                .secs
                .iter()
                .map(|s| s.name.as_str())
                .chain([".shstrtab"])
            {
                name_off.push(shstr.len() as u32);
                shstr.extend(n.as_bytes());
                shstr.push(0);
            }
            let shstr_off = b.len();
            b.extend(&shstr);
            b.resize(b.len().div_ceil(4) * 4, 0);
            let shoff = b.len();
            let nsec = self.secs.len() + 2;
            b.resize(shoff + 40 * nsec, 0);
            // ELF header.
            b[..4].copy_from_slice(b"\x7fELF");
            b[4] = 1;
            b[5] = e.ei_data();
            b[6] = 1;
            put16(&mut b, 16, 2, e);
            put16(&mut b, 18, 8, e);
            put32(&mut b, 20, 1, e);
            put32(&mut b, 24, self.entry, e);
            put32(&mut b, 28, phoff as u32, e);
            put32(&mut b, 32, shoff as u32, e);
            put32(&mut b, 36, 0x5000_1007, e);
            put16(&mut b, 40, 52, e);
            put16(&mut b, 42, 32, e);
            put16(&mut b, 44, self.segs.len() as u16, e);
            put16(&mut b, 46, 40, e);
            put16(&mut b, 48, nsec as u16, e);
            put16(&mut b, 50, (nsec - 1) as u16, e);
            for (i, s) in self.segs.iter().enumerate() {
                let p = phoff + 32 * i;
                let f = [
                    s.p_type,
                    seg_off[i] as u32,
                    s.vaddr,
                    s.paddr,
                    s.data.len() as u32,
                    s.memsz,
                    s.flags,
                    16,
                ];
                for (k, v) in f.iter().enumerate() {
                    put32(&mut b, p + 4 * k, *v, e);
                }
            }
            let mut hdr = |i: usize, f: [u32; 10]| {
                for (k, v) in f.iter().enumerate() {
                    put32(&mut b, shoff + 40 * i + 4 * k, *v, e);
                }
            };
            for (i, s) in self.secs.iter().enumerate() {
                let entsize = if s.sh_type == SHT_SYMTAB { 16 } else { 0 };
                let info = if s.sh_type == SHT_SYMTAB { 1 } else { 0 };
                hdr(
                    i + 1,
                    [
                        name_off[i],
                        s.sh_type,
                        s.flags,
                        s.addr,
                        sec_off[i] as u32,
                        s.size,
                        s.link,
                        info,
                        4,
                        entsize,
                    ],
                );
            }
            let n = self.secs.len();
            hdr(
                n + 1,
                [
                    name_off[n],
                    SHT_STRTAB,
                    0,
                    0,
                    shstr_off as u32,
                    shstr.len() as u32,
                    0,
                    0,
                    1,
                    0,
                ],
            );
            Built {
                bytes: b,
                phoff,
                shoff,
                seg_off,
                sec_off,
            }
        }
    }

    pub fn code(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 7 % 251) as u8 + 1).collect()
    }

    /// One RWX PT_LOAD at `base` holding 0x100 bytes of code then the table, `memsz` 0x4000;
    /// sections `.text`, `.resource_table`, `.bss`, `.symtab`, `.strtab`.
    pub fn good_at(e: Endian, base: u32, entries: &[Vec<u8>]) -> Elf {
        let tbl = table(e, entries, 8);
        let mut data = code(0x100);
        data.extend(&tbl);
        let dlen = data.len() as u32;
        let mut strtab = vec![0u8];
        let sym = |name: &str, value: u32, info: u8, shndx: u16, st: &mut Vec<u8>| {
            let mut v = e.u32_bytes(st.len() as u32).to_vec();
            st.extend(name.as_bytes());
            st.push(0);
            v.extend(e.u32_bytes(value));
            v.extend(e.u32_bytes(0));
            v.extend([info, 0]);
            v.extend(e.u16_bytes(shndx));
            v
        };
        let mut symtab = vec![0u8; 16];
        symtab.extend(sym("__start", base, 0x12, 1, &mut strtab));
        symtab.extend(sym("vpe_shared", base + 0x3000, 0x11, 3, &mut strtab));
        symtab.extend(sym("_gp", base + 0x8010, 0x10, SHN_ABS, &mut strtab));
        symtab.extend(sym("sect", 0, 0x03, 1, &mut strtab));
        let s = |name: &str, sh_type, flags, addr, size, link, content| Sec {
            name: name.into(),
            sh_type,
            flags,
            addr,
            size,
            link,
            content,
        };
        Elf {
            e,
            entry: base,
            segs: vec![Seg {
                p_type: PT_LOAD,
                vaddr: base,
                paddr: base,
                data,
                memsz: 0x4000,
                flags: 7,
            }],
            secs: vec![
                s(
                    ".text",
                    SHT_PROGBITS,
                    SHF_ALLOC | SHF_EXECINSTR,
                    base,
                    0x100,
                    0,
                    Content::InSeg(0, 0),
                ),
                s(
                    RESOURCE_TABLE,
                    SHT_PROGBITS,
                    SHF_ALLOC | SHF_WRITE,
                    base + 0x100,
                    tbl.len() as u32,
                    0,
                    Content::InSeg(0, 0x100),
                ),
                s(
                    ".bss",
                    SHT_NOBITS,
                    SHF_ALLOC | SHF_WRITE,
                    base + dlen,
                    0x4000 - dlen,
                    0,
                    Content::Nothing,
                ),
                s(
                    ".symtab",
                    SHT_SYMTAB,
                    0,
                    0,
                    symtab.len() as u32,
                    5,
                    Content::Own(symtab),
                ),
                s(
                    ".strtab",
                    SHT_STRTAB,
                    0,
                    0,
                    strtab.len() as u32,
                    0,
                    Content::Own(strtab),
                ),
            ],
        }
    }

    pub fn default_entries(e: Endian) -> Vec<Vec<u8>> {
        vec![
            carveout(e, BASE, 0x10000, "firmware"),
            trace(e, BASE + 0x8000, 0x1000, "trace"),
        ]
    }
    pub fn good(e: Endian) -> Elf {
        good_at(e, BASE, &default_entries(e))
    }
    fn with(e: Endian, entries: &[Vec<u8>]) -> Elf {
        good_at(e, BASE, entries)
    }

    fn run(b: &[u8], era: KernelEra) -> Result<Loaded> {
        check(
            b,
            &Options {
                kernel: era,
                ..Default::default()
            },
        )
    }
    #[track_caller]
    fn kerr(r: Result<Loaded>, message: &str, errno: i32) -> String {
        match r {
            Err(Error::Kernel {
                message: m,
                errno: n,
                detail,
            }) => {
                assert_eq!((m.as_str(), n), (message, errno), "detail: {detail}");
                detail
            }
            other => panic!("expected kernel error {message:?}, got {other:?}"),
        }
    }
    #[track_caller]
    fn ferr(r: Result<Loaded>, needle: &str) -> String {
        match r {
            Err(Error::Firmware { message }) => {
                assert!(message.contains(needle), "{message:?} lacks {needle:?}");
                message
            }
            other => panic!("expected firmware error containing {needle:?}, got {other:?}"),
        }
    }

    // ---- the good case -----------------------------------------------------------------------

    #[test]
    fn good_firmware_loads_what_the_segments_say() {
        for e in BOTH {
            let elf = good(e);
            let built = elf.build();
            let l = run(&built.bytes, KernelEra::Newest).unwrap();
            assert_eq!(l.image.kind, InputKind::Firmware);
            assert_eq!(l.image.endian, e);
            assert_eq!(l.image.entry, BASE);
            assert_eq!(l.image.segments.len(), 1);
            assert_eq!(l.image.segments[0].addr, BASE);
            assert_eq!(l.image.segments[0].data, elf.segs[0].data);
            assert_eq!(l.image.segments[0].mem_size, 0x4000);
            assert_eq!(l.table_addr, BASE + 0x100);
            assert_eq!(l.table.ver, 1);
            assert_eq!(
                l.table.entries,
                vec![
                    Resource::Carveout(Carveout {
                        da: BASE,
                        pa: BASE,
                        len: 0x10000,
                        flags: 0,
                        reserved: 0,
                        name: "firmware".into()
                    }),
                    Resource::Trace {
                        da: BASE + 0x8000,
                        len: 0x1000,
                        reserved: 0,
                        name: "trace".into()
                    },
                ]
            );
            assert_eq!(l.image.symbol("__start"), Some(BASE));
            assert_eq!(l.image.shared, Some(BASE + 0x3000));
            assert_eq!(l.image.gp, Some(BASE + 0x8010));
            assert!(
                l.image.symbols.iter().all(|s| s.name != "sect"),
                "section symbols dropped"
            );
            let names: Vec<&str> = l.image.sections.iter().map(|s| s.name.as_str()).collect();
            assert_eq!(names, [".text", RESOURCE_TABLE, ".bss"]);
            assert_eq!(l.image.symbols[1].section, Some(2), "vpe_shared is in .bss");
            assert_eq!(l.trampoline, None);
            assert_eq!(l.provenance, None);
            assert!(l.warnings.is_empty(), "{:?}", l.warnings);
            // All eras and both profiles accept it (carveout 64 KiB at an 8 KiB-aligned KUSEG da).
            for era in KernelEra::ALL {
                run(&built.bytes, era).unwrap();
            }
            for p in [Profile::MipsRproc, Profile::Fixed] {
                check(
                    &built.bytes,
                    &Options {
                        profile: Some(p),
                        host: Some(e),
                        ..Default::default()
                    },
                )
                .unwrap();
            }
        }
    }

    /// The writer is checked against an independent reader, so the cases below test the
    /// checker and not a broken input.
    #[test]
    fn builder_output_parses_with_goblin() {
        for e in BOTH {
            let b = good(e).build().bytes;
            let elf = goblin::elf::Elf::parse(&b).unwrap();
            assert_eq!(elf.little_endian, e == Endian::Little);
            assert_eq!(elf.entry, u64::from(BASE));
            let sh = elf
                .section_headers
                .iter()
                .find(|s| elf.shdr_strtab.get_at(s.sh_name) == Some(RESOURCE_TABLE))
                .unwrap();
            assert_eq!(sh.sh_addr, u64::from(BASE) + 0x100);
            let ph = &elf.program_headers[0];
            assert_eq!(sh.sh_offset - ph.p_offset, sh.sh_addr - ph.p_vaddr);
            assert!(elf
                .syms
                .iter()
                .any(|s| elf.strtab.get_at(s.st_name) == Some("vpe_shared")));
        }
    }

    #[test]
    fn trampoline_and_provenance_are_decoded() {
        for e in BOTH {
            let mut elf = good(e);
            let tramp = trampoline::encode(BASE + 0x3ff0, 3, 0x1000, BASE + 0x40, e);
            elf.segs[0].data[0x80..0x80 + tramp.len()].copy_from_slice(&tramp);
            elf.entry = BASE + 0x80;
            let p = Provenance {
                input_sha256: "ab".repeat(32),
                base: BASE,
                ntcs: 3,
                ..Default::default()
            };
            elf.secs.push(Sec {
                name: ".note.vpe-migrate".into(),
                sh_type: SHT_NOTE,
                flags: 0,
                addr: 0,
                size: note::encode(&p, e).len() as u32,
                link: 0,
                content: Content::Own(note::encode(&p, e)),
            });
            let l = run(&elf.build().bytes, KernelEra::Newest).unwrap();
            let t = l.trampoline.unwrap();
            assert_eq!(
                (t.boot_args, t.ntcs, t.memsize, t.target),
                (BASE + 0x3ff0, 3, 0x1000, BASE + 0x40)
            );
            assert_eq!(l.provenance, Some(p));
        }
    }

    // ---- §6.4 1-8: rproc_elf_sanity_check ---------------------------------------------------

    #[test]
    fn case01_too_small() {
        let b = good(Endian::Little).build().bytes;
        for era in KernelEra::ALL {
            kerr(run(&b[..51], era), "Image is too small", 22);
            kerr(run(&[], era), "Image is too small", 22);
        }
    }

    #[test]
    fn case02_bad_magic() {
        let mut b = good(Endian::Big).build().bytes;
        b[1] = b'X';
        kerr(
            run(&b, KernelEra::Newest),
            "Image is corrupted (bad magic)",
            22,
        );
        kerr(
            run(&b, KernelEra::Pre57),
            "Image is corrupted (bad magic)",
            22,
        );
    }

    #[test]
    fn case03_class() {
        let b = good(Endian::Little).build().bytes;
        for c in [0u8, 3] {
            let mut x = b.clone();
            x[4] = c;
            kerr(
                run(&x, KernelEra::Newest),
                &format!("Unsupported class: {c}"),
                22,
            );
            kerr(
                run(&x, KernelEra::Pre57),
                &format!("Unsupported class: {c}"),
                22,
            );
        }
        // Before v5.7 only ELF32; the value is printed from a signed char.
        let mut x = b.clone();
        x[4] = 2;
        kerr(run(&x, KernelEra::Pre57), "Unsupported class: 2", 22);
        x[4] = 0x80;
        kerr(run(&x, KernelEra::Old4x), "Unsupported class: -128", 22);
        kerr(run(&x, KernelEra::Newest), "Unsupported class: 128", 22);
        // v5.7 - v6.1 check the class in the new order but still print a signed char.
        for era in [KernelEra::V61, KernelEra::V519, KernelEra::V57] {
            kerr(run(&x, era), "Unsupported class: -128", 22);
        }
    }

    #[test]
    fn sanity_order_differs_before_v57() {
        // Bad magic and bad class: v5.7+ checks magic first, older kernels the class.
        let mut b = good(Endian::Little).build().bytes;
        b[0] = 0;
        b[4] = 3;
        kerr(
            run(&b, KernelEra::Newest),
            "Image is corrupted (bad magic)",
            22,
        );
        kerr(run(&b, KernelEra::Pre57), "Unsupported class: 3", 22);
        // Bad magic and e_shoff past EOF: older kernels check the size first.
        let mut b = good(Endian::Little).build().bytes;
        b[0] = 0;
        let len = b.len() as u32;
        put32(&mut b, 32, len, Endian::Little);
        kerr(
            run(&b, KernelEra::Newest),
            "Image is corrupted (bad magic)",
            22,
        );
        kerr(run(&b, KernelEra::Old4x), "Image is too small", 22);
        // Bad magic and wrong byte order: older kernels report the endianness first.
        let mut b = good(Endian::Big).build().bytes;
        b[0] = 0;
        let host = |era| Options {
            host: Some(Endian::Little),
            kernel: era,
            ..Default::default()
        };
        kerr(
            check(&b, &host(KernelEra::Newest)),
            "Image is corrupted (bad magic)",
            22,
        );
        kerr(
            check(&b, &host(KernelEra::Pre57)),
            "Unsupported firmware endianness",
            22,
        );
    }

    #[test]
    fn case04_elf64() {
        let mut b = good(Endian::Little).build().bytes;
        b[4] = 2;
        kerr(
            run(&b[..60], KernelEra::Newest),
            "elf64 header is too small",
            22,
        );
        kerr(run(&b[..60], KernelEra::Pre57), "Unsupported class: 2", 22);
        // A well-formed ELF64 header passes the sanity check of v5.7+; we still refuse it.
        let mut h = vec![0u8; 64 + 64];
        h[..4].copy_from_slice(b"\x7fELF");
        h[4] = 2;
        h[5] = 1;
        h[32..40].copy_from_slice(&64u64.to_le_bytes()); // e_phoff
        h[40..48].copy_from_slice(&64u64.to_le_bytes()); // e_shoff (+64 = size)
        h[56..58].copy_from_slice(&1u16.to_le_bytes()); // e_phnum
        ferr(run(&h, KernelEra::Newest), "ELF64");
        h[56] = 0;
        kerr(run(&h, KernelEra::Newest), "No loadable segments", 22);
    }

    #[test]
    fn case05_endianness() {
        for e in BOTH {
            let b = good(e).build().bytes;
            let other = if e == Endian::Little {
                Endian::Big
            } else {
                Endian::Little
            };
            for era in [KernelEra::Newest, KernelEra::Pre57] {
                let o = Options {
                    host: Some(other),
                    kernel: era,
                    ..Default::default()
                };
                kerr(check(&b, &o), "Unsupported firmware endianness", 22);
                let o = Options {
                    host: Some(e),
                    kernel: era,
                    ..Default::default()
                };
                check(&b, &o).unwrap();
            }
            let mut x = b.clone();
            x[5] = 0;
            kerr(
                run(&x, KernelEra::Newest),
                "Unsupported firmware endianness",
                22,
            );
        }
    }

    #[test]
    fn case06_shoff_past_eof() {
        for e in BOTH {
            let mut b = good(e).build().bytes;
            let len = b.len() as u32;
            put32(&mut b, 32, len - 39, e);
            kerr(run(&b, KernelEra::Newest), "Image is too small", 22);
            kerr(run(&b, KernelEra::Pre57), "Image is too small", 22);
            // Exactly one header fits: the kernel is satisfied, the rest of the table is not.
            put32(&mut b, 32, len - 40, e);
            ferr(run(&b, KernelEra::Newest), "section header table");
        }
    }

    #[test]
    fn case07_no_phdrs() {
        for e in BOTH {
            let mut b = good(e).build().bytes;
            put16(&mut b, 44, 0, e);
            kerr(run(&b, KernelEra::Newest), "No loadable segments", 22);
            kerr(run(&b, KernelEra::Old4x), "No loadable segments", 22);
        }
    }

    #[test]
    fn case08_phoff() {
        for e in BOTH {
            let mut b = good(e).build().bytes;
            let len = b.len() as u32;
            put32(&mut b, 28, len + 1, e);
            kerr(run(&b, KernelEra::Newest), "Firmware size is too small", 22);
            // e_phoff <= size but the header runs past EOF: the kernel reads out of bounds.
            put32(&mut b, 28, len - 16, e);
            ferr(run(&b, KernelEra::Newest), "program header #0");
            // Two headers declared, one present.
            let mut b = good(e).build().bytes;
            let shoff = u32_at(&b, e, 32).unwrap();
            put32(&mut b, 28, shoff + 40 * 7 - 32, e); // the last 32 bytes of the shdr table
            put16(&mut b, 44, 2, e);
            ferr(run(&b, KernelEra::Newest), "program header #1");
        }
    }

    // ---- §6.4 9-12: rproc_elf_load_segments -------------------------------------------------

    #[test]
    fn case09_filesz_above_memsz() {
        for e in BOTH {
            let elf = good(e);
            let mut built = elf.build();
            let at = built.ph(0, 20);
            put32(&mut built.bytes, at, 0x100, e);
            let filesz = elf.segs[0].data.len();
            kerr(
                run(&built.bytes, KernelEra::Newest),
                &format!("bad phdr filesz {filesz:#x} memsz 0x100"),
                22,
            );
        }
    }

    #[test]
    fn case10_truncated_segment() {
        for e in BOTH {
            let elf = good(e);
            let built = elf.build();
            let mut b = built.bytes.clone();
            let at = built.ph(0, 4);
            let off = built.seg_off[0] as u32 + 0x10000;
            put32(&mut b, at, off, e);
            let need = off as usize + elf.segs[0].data.len();
            let msg = format!("truncated fw: need 0x{need:x} avail 0x{:x}", b.len());
            kerr(run(&b, KernelEra::Newest), &msg, 22);
        }
    }

    #[test]
    fn case11_segment_outside_or_straddling() {
        for e in BOTH {
            // Outside every carveout.
            let mut elf = good(e);
            elf.segs.push(Seg {
                p_type: PT_LOAD,
                vaddr: 0x2000_0000,
                paddr: 0x2000_0000,
                data: vec![1; 16],
                memsz: 0x20,
                flags: 6,
            });
            kerr(
                run(&elf.build().bytes, KernelEra::Newest),
                "bad phdr da 0x20000000 mem 0x20",
                22,
            );
            // Straddling two adjacent carveouts: each alone is too small.
            let ents = [
                carveout(e, BASE, 0x2000, "a"),
                carveout(e, BASE + 0x2000, 0x2000, "b"),
            ];
            let elf = with(e, &ents);
            let d = kerr(
                run(&elf.build().bytes, KernelEra::Newest),
                "bad phdr da 0x10000000 mem 0x4000",
                22,
            );
            assert!(d.contains("\"a\"") && d.contains("\"b\""), "{d}");
            // One carveout exactly the segment's size is enough.
            let elf = with(e, &[carveout(e, BASE, 0x4000, "fw")]);
            run(&elf.build().bytes, KernelEra::Newest).unwrap();
        }
    }

    #[test]
    fn case12_empty_pt_load() {
        for e in BOTH {
            let mut elf = good(e);
            elf.segs.push(Seg {
                p_type: PT_LOAD,
                vaddr: 0x2000_0000,
                paddr: 0x2000_0000,
                data: vec![],
                memsz: 0,
                flags: 6,
            });
            let b = elf.build().bytes;
            // Skipped from v5.19 (`|| !memsz`), translated and refused before.
            for era in [KernelEra::Newest, KernelEra::V61, KernelEra::V519] {
                let l = run(&b, era).unwrap();
                assert_eq!(l.image.segments.len(), 1);
                assert!(
                    l.warnings.iter().any(|w| w.contains("empty PT_LOAD")),
                    "{:?}",
                    l.warnings
                );
            }
            for era in [KernelEra::V57, KernelEra::Pre57] {
                kerr(run(&b, era), "bad phdr da 0x20000000 mem 0x0", 22);
            }
            kerr(
                run(&b, KernelEra::Old4x),
                "bad phdr da 0x20000000 mem 0x0",
                22,
            );
            // Non-LOAD headers are ignored wherever they point.
            let mut elf = good(e);
            elf.segs.push(Seg {
                p_type: PT_MIPS_ABIFLAGS,
                vaddr: 0x2000_0000,
                paddr: 0x2000_0000,
                data: vec![0; 24],
                memsz: 24,
                flags: 4,
            });
            run(&elf.build().bytes, KernelEra::Old4x).unwrap();
        }
    }

    // ---- §6.4 13-19: find_table ---------------------------------------------------------------

    const NO_TABLE: &str =
        "no .resource_table section (the kernel fails with \"Boot failed: -22\" and prints nothing else)";

    #[test]
    fn case13_no_table() {
        for e in BOTH {
            let mut elf = good(e);
            let t = elf.sec(RESOURCE_TABLE);
            elf.secs[t].name = ".data".into();
            let b = elf.build().bytes;
            kerr(run(&b, KernelEra::Newest), NO_TABLE, 22);
            kerr(run(&b, KernelEra::Pre57), NO_TABLE, 22);
            kerr(
                run(&b, KernelEra::Old4x),
                "Failed to find resource table",
                22,
            );
        }
    }

    #[test]
    fn case14_stripped_section_headers() {
        for e in BOTH {
            let mut b = good(e).build().bytes;
            put16(&mut b, 48, 0, e);
            kerr(run(&b, KernelEra::Newest), NO_TABLE, 22);
            kerr(
                run(&b, KernelEra::Old4x),
                "Failed to find resource table",
                22,
            );
        }
    }

    /// Patch the `.resource_table` header field `k` (12 = sh_addr, 16 = sh_offset, 20 = sh_size).
    fn patch_table_shdr(e: Endian, k: usize, v: u32) -> Vec<u8> {
        let elf = good(e);
        let built = elf.build();
        let mut b = built.bytes.clone();
        put32(&mut b, built.sh(elf.sec(RESOURCE_TABLE), k), v, e);
        b
    }
    /// Patch the table's word at byte `k`.
    fn patch_table(e: Endian, k: usize, v: u32) -> Vec<u8> {
        let elf = good(e);
        let built = elf.build();
        let mut b = built.bytes.clone();
        put32(&mut b, built.sec_off[elf.sec(RESOURCE_TABLE)] + k, v, e);
        b
    }

    #[test]
    fn case15_to_19_table_header() {
        for e in BOTH {
            let d = kerr(
                run(&patch_table_shdr(e, 20, 12), KernelEra::Newest),
                "header-less resource table",
                22,
            );
            assert!(d.contains("section [2]"), "{d}");
            kerr(
                run(&patch_table(e, 0, 2), KernelEra::Newest),
                "unsupported fw ver: 2",
                22,
            );
            kerr(
                run(&patch_table(e, 0, 0xffff_ffff), KernelEra::Newest),
                "unsupported fw ver: -1",
                22,
            );
            kerr(
                run(&patch_table(e, 12, 1), KernelEra::Newest),
                "non zero reserved bytes",
                22,
            );
            // num = 100 in a 64-byte table.
            let mut b = patch_table_shdr(e, 20, 64);
            let elf = good(e);
            let built = elf.build();
            put32(&mut b, built.sec_off[elf.sec(RESOURCE_TABLE)] + 4, 100, e);
            kerr(run(&b, KernelEra::Newest), "resource table incomplete", 22);
            // Past EOF, and with sh_size near 2^32 (the sum wraps in 32 bits).
            let len = good(e).build().bytes.len() as u32;
            kerr(
                run(&patch_table_shdr(e, 16, len - 8), KernelEra::Newest),
                "resource table truncated",
                22,
            );
            kerr(
                run(&patch_table_shdr(e, 20, 0xffff_fff0), KernelEra::Newest),
                "resource table truncated",
                22,
            );
            kerr(
                run(&patch_table_shdr(e, 20, 0xffff_fff0), KernelEra::Old4x),
                "resource table truncated",
                22,
            );
        }
    }

    #[test]
    fn section_name_table_problems_are_flagged() {
        for e in BOTH {
            let elf = good(e);
            let built = elf.build();
            // e_shstrndx out of range.
            let mut b = built.bytes.clone();
            put16(&mut b, 50, 9, e);
            ferr(run(&b, KernelEra::Newest), "e_shstrndx 9");
            // A name offset outside .shstrtab.
            let mut b = built.bytes.clone();
            put32(&mut b, built.sh(0, 0), 0x4000, e);
            ferr(run(&b, KernelEra::Newest), "name offset 0x4000");
            // An unterminated last name: shrink .shstrtab by its final NUL.
            let mut b = built.bytes.clone();
            let st = built.sh(elf.secs.len(), 20);
            let size = u32_at(&b, e, st as u64).unwrap();
            put32(&mut b, st, size - 1, e);
            ferr(run(&b, KernelEra::Newest), "not NUL-terminated");
        }
    }

    #[test]
    fn first_of_two_tables_is_used() {
        let e = Endian::Little;
        let mut elf = good(e);
        let mut second = elf.secs[elf.sec(RESOURCE_TABLE)].clone();
        second.content = Content::Own(vec![0xff; 16]);
        elf.secs.push(second);
        let l = run(&elf.build().bytes, KernelEra::Newest).unwrap();
        assert_eq!(l.table.entries.len(), 2);
        assert!(
            l.warnings
                .iter()
                .any(|w| w.starts_with("2 sections are named")),
            "{:?}",
            l.warnings
        );
    }

    // ---- §6.4 20-26: rproc_handle_resources ---------------------------------------------------

    #[test]
    fn case20_offset_beyond_table() {
        for e in BOTH {
            let elf = good(e);
            let size = elf.secs[elf.sec(RESOURCE_TABLE)].size;
            kerr(
                run(&patch_table(e, 20, size - 3), KernelEra::Newest),
                "rsc table is truncated",
                22,
            );
            kerr(
                run(&patch_table(e, 20, 0x8000_0000), KernelEra::Newest),
                "rsc table is truncated",
                22,
            );
            // The type word exactly fits: not truncated at this level. The word there (the
            // end of the trace's NUL-padded name) is 0, RSC_CARVEOUT, whose body is missing.
            kerr(
                run(&patch_table(e, 20, size - 4), KernelEra::Newest),
                "carveout rsc is truncated",
                22,
            );
            // -4 as an int: avail = table_sz, so the kernel reads before the table.
            ferr(
                run(&patch_table(e, 20, 0xffff_fffc), KernelEra::Newest),
                "negative",
            );
        }
    }

    #[test]
    fn case21_carveout_truncated_or_reserved() {
        for e in BOTH {
            let elf = with(e, &[carveout(e, BASE, 0x10000, "fw")]);
            let built = elf.build();
            let t = elf.sec(RESOURCE_TABLE);
            // Cut the table 40 bytes into the entry (entry at 0x18 with 8-byte alignment).
            let mut b = built.bytes.clone();
            put32(&mut b, built.sh(t, 20), 0x18 + 40, e);
            kerr(run(&b, KernelEra::Newest), "carveout rsc is truncated", 22);
            let mut b = built.bytes.clone();
            put32(&mut b, built.sec_off[t] + 0x18 + 20, 1, e);
            kerr(
                run(&b, KernelEra::Newest),
                "carveout rsc has non zero reserved bytes",
                22,
            );
        }
    }

    #[test]
    fn case22_trace_reserved() {
        for e in BOTH {
            let elf = good(e);
            let built = elf.build();
            let mut b = built.bytes.clone();
            // Entries at 0x18 (carveout, 56 bytes) and 0x50 (trace); reserved at +12.
            put32(
                &mut b,
                built.sec_off[elf.sec(RESOURCE_TABLE)] + 0x50 + 12,
                1,
                e,
            );
            kerr(
                run(&b, KernelEra::Newest),
                "trace rsc has non zero reserved bytes",
                22,
            );
        }
    }

    #[test]
    fn case23_vdev() {
        for e in BOTH {
            let cv = carveout(e, BASE, 0x10000, "fw");
            let ok = with(
                e,
                &[cv.clone(), vdev(e, &[(0x1000, 4), (0x1000, 4)], 12, 12)],
            );
            let l = run(&ok.build().bytes, KernelEra::Newest).unwrap();
            match &l.table.entries[1] {
                Resource::Vdev { vrings, config, .. } => {
                    assert_eq!(vrings.len(), 2);
                    assert_eq!(config, &vec![0xc5; 12]);
                }
                other => panic!("{other:?}"),
            }
            let three = with(e, &[cv.clone(), vdev(e, &[(0x1000, 4); 3], 0, 0)]);
            kerr(
                run(&three.build().bytes, KernelEra::Newest),
                "too many vrings: 3",
                22,
            );
            // A bad vring fails the boot up to v6.0; from v6.1 the virtio probe refuses it
            // and the boot goes on.
            let qsz = with(e, &[cv.clone(), vdev(e, &[(0x1000, 0), (0x1000, 4)], 0, 0)]);
            let qsz = qsz.build().bytes;
            for era in [
                KernelEra::V519,
                KernelEra::V57,
                KernelEra::Pre57,
                KernelEra::Old4x,
            ] {
                kerr(run(&qsz, era), "invalid qsz (0) or alignment (4096)", 22);
            }
            for era in [KernelEra::Newest, KernelEra::V61] {
                let l = run(&qsz, era).unwrap();
                assert!(
                    l.warnings
                        .iter()
                        .any(|w| w.starts_with("invalid qsz (0) or alignment (4096)")
                            && w.contains("rproc-virtio probe")),
                    "{:?}",
                    l.warnings
                );
            }
            let mut v = vdev(e, &[(0x1000, 4)], 0, 0);
            v[4 + 22] = 1;
            let res = with(e, &[cv.clone(), v]);
            kerr(
                run(&res.build().bytes, KernelEra::Newest),
                "vdev rsc has non zero reserved bytes",
                22,
            );
            let cfg = with(e, &[cv.clone(), vdev(e, &[(0x1000, 4)], 13, 12)]);
            kerr(
                run(&cfg.build().bytes, KernelEra::Newest),
                "vdev rsc is truncated",
                22,
            );
            let huge = with(e, &[cv.clone(), vdev(e, &[(0x1000, 4)], 0xffff_fff0, 12)]);
            kerr(
                run(&huge.build().bytes, KernelEra::Newest),
                "vdev rsc is truncated",
                22,
            );
            // The vring word at +16: ignored now, refused by 4.x.
            let mut v = vdev(e, &[(0x1000, 4)], 0, 0);
            v[28 + 16..28 + 20].copy_from_slice(&e.u32_bytes(5));
            let pa = with(e, &[cv.clone(), v]).build().bytes;
            run(&pa, KernelEra::Newest).unwrap();
            kerr(
                run(&pa, KernelEra::Old4x),
                "vring rsc has non zero reserved bytes",
                22,
            );
            // 4.x checks the reserved word before the queue size.
            let mut v = vdev(e, &[(0x1000, 0)], 0, 0);
            v[28 + 16..28 + 20].copy_from_slice(&e.u32_bytes(5));
            let both = with(e, &[cv.clone(), v]).build().bytes;
            kerr(
                run(&both, KernelEra::Old4x),
                "vring rsc has non zero reserved bytes",
                22,
            );
            kerr(
                run(&both, KernelEra::Pre57),
                "invalid qsz (0) or alignment (4096)",
                22,
            );
        }
    }

    #[test]
    fn old4x_translates_traces_in_table_order() {
        for e in BOTH {
            let cv = carveout(e, BASE, 0x10000, "fw");
            let tr = trace(e, BASE + 0x8000, 0x1000, "trace");
            // Trace first: its carveout is not allocated yet in 4.x.
            let b = with(e, &[tr.clone(), cv.clone()]).build().bytes;
            let d = kerr(
                run(&b, KernelEra::Old4x),
                "erroneous trace resource entry",
                22,
            );
            assert!(d.contains("Failed to process resources: -22"), "{d}");
            for era in [KernelEra::Newest, KernelEra::Pre57] {
                let l = run(&b, era).unwrap();
                assert!(
                    l.warnings
                        .iter()
                        .any(|w| w.contains("follows other entries")),
                    "{:?}",
                    l.warnings
                );
            }
            // Carveout first: accepted by every era.
            let b = with(e, &[cv.clone(), tr]).build().bytes;
            for era in KernelEra::ALL {
                run(&b, era).unwrap();
            }
            // Outside every carveout: refused while parsing in 4.x, when trace0 is read later.
            let out = trace(e, 0x3000_0000, 0x1000, "trace");
            let b = with(e, &[cv, out]).build().bytes;
            kerr(
                run(&b, KernelEra::Old4x),
                "erroneous trace resource entry",
                22,
            );
            ferr(run(&b, KernelEra::Newest), "reading it fails");
        }
    }

    #[test]
    fn eras_are_ordered_and_named() {
        assert_eq!(KernelEra::ALL[0], KernelEra::default());
        let v: Vec<&str> = KernelEra::ALL.iter().map(|e| e.versions()).collect();
        assert_eq!(
            v,
            [
                "v6.2+",
                "v6.1",
                "v5.19 - v6.0",
                "v5.7 - v5.18",
                "v4.20 - v5.6",
                "v4.10 - v4.19"
            ]
        );
    }

    #[test]
    fn case24_devmem() {
        for e in BOTH {
            let elf = with(
                e,
                &[
                    carveout(e, BASE, 0x10000, "fw"),
                    devmem(e, 0x1f00_0000, 0x1000),
                ],
            );
            kerr(
                run(&elf.build().bytes, KernelEra::Newest),
                "Failed to process resources: -22",
                22,
            );
        }
    }

    #[test]
    fn case25_unknown_types_warn() {
        for e in BOTH {
            let other = |t: u32| words(e, &[t, 0xdead_beef]);
            let elf = with(
                e,
                &[
                    carveout(e, BASE, 0x10000, "fw"),
                    other(5),
                    other(200),
                    other(600),
                    other(128),
                    other(512),
                ],
            );
            let b = elf.build().bytes;
            let l = run(&b, KernelEra::Newest).unwrap();
            assert_eq!(
                l.warnings,
                [
                    "unsupported resource 5",
                    "unsupported vendor resource 200",
                    "unsupported resource 600",
                    "unsupported vendor resource 128",
                    "unsupported vendor resource 512"
                ]
            );
            // No vendor range before v5.3.
            let l = run(&b, KernelEra::Old4x).unwrap();
            assert_eq!(
                l.warnings,
                [
                    "unsupported resource 5",
                    "unsupported resource 200",
                    "unsupported resource 600",
                    "unsupported resource 128",
                    "unsupported resource 512"
                ]
            );
            let l = run(&b, KernelEra::Pre57).unwrap();
            assert!(
                l.warnings[1].starts_with("unsupported vendor resource 200 (v5.3 - v5.6; v4.20 - v5.2 print \"unsupported resource 200\")"),
                "{:?}",
                l.warnings
            );
            assert_eq!(
                l.table.entries[1],
                Resource::Other {
                    rtype: 5,
                    body: e.u32_bytes(0xdead_beef).to_vec()
                }
            );
        }
    }

    #[test]
    fn case26_duplicate_carveout_names() {
        for e in BOTH {
            let ents = [
                carveout(e, BASE, 0x10000, "fw"),
                carveout(e, BASE + 0x10000, 0x2000, "fw"),
            ];
            let b = with(e, &ents).build().bytes;
            kerr(
                run(&b, KernelEra::Newest),
                "Carveout already associated to resource table",
                12,
            );
            // 4.x had no lookup by name; the fixed-memory profile still refuses it.
            run(&b, KernelEra::Old4x).unwrap();
            let o = Options {
                kernel: KernelEra::Old4x,
                profile: Some(Profile::Fixed),
                ..Default::default()
            };
            ferr(check(&b, &o), "used twice");
        }
    }

    #[test]
    fn zero_length_carveout_fails_allocation() {
        for e in BOTH {
            let ents = [
                carveout(e, BASE, 0x10000, "fw"),
                carveout(e, 0x2000_0000, 0, "empty"),
            ];
            let b = with(e, &ents).build().bytes;
            let d = kerr(
                run(&b, KernelEra::Newest),
                "failed to allocate dma memory: len 0x0",
                12,
            );
            assert!(
                d.contains("then \"Unable to allocate carveout empty: -12\", \"Failed to allocate associated carveouts: -12\" and \"Boot failed: -12\""),
                "{d}"
            );
            // 4.x allocates while parsing: the table walk fails.
            let d = kerr(
                run(&b, KernelEra::Old4x),
                "failed to allocate dma memory: len 0x0",
                12,
            );
            assert!(
                d.contains("then \"Failed to process resources: -12\" and \"Boot failed: -12\""),
                "{d}"
            );
            assert!(!d.contains("associated"), "{d}");
        }
    }

    // ---- §6.4 27-29: silent failures ------------------------------------------------------------

    #[test]
    fn case27_table_not_loaded() {
        for e in BOTH {
            // Contents outside every PT_LOAD (as objcopy --add-section would leave them).
            let mut elf = good(e);
            let t = elf.sec(RESOURCE_TABLE);
            let tbl = table(e, &default_entries(e), 8);
            elf.secs[t].content = Content::Own(tbl);
            ferr(
                run(&elf.build().bytes, KernelEra::Newest),
                "not inside the file-backed part",
            );
            // sh_addr that does not match the segment's translation.
            let b = patch_table_shdr(e, 12, BASE + 0x104);
            ferr(
                run(&b, KernelEra::Newest),
                "not inside the file-backed part",
            );
            // Non-ALLOC.
            let b = patch_table_shdr(e, 8, SHF_WRITE);
            ferr(run(&b, KernelEra::Newest), "not SHF_ALLOC");
            // In the zero-filled part of the segment (past p_filesz).
            let mut elf = good(e);
            let t = elf.sec(RESOURCE_TABLE);
            let tbl = table(e, &default_entries(e), 8);
            let keep = elf.segs[0].data.len() - tbl.len();
            elf.segs[0].data.truncate(keep);
            elf.secs[t].content = Content::Own(tbl);
            ferr(
                run(&elf.build().bytes, KernelEra::Newest),
                "not inside the file-backed part",
            );
        }
    }

    #[test]
    fn case28_vaddr_differs_from_paddr() {
        for e in BOTH {
            let mut elf = good(e);
            elf.segs[0].vaddr = BASE | 0x8000_0000;
            let t = elf.sec(RESOURCE_TABLE);
            elf.secs[t].addr = (BASE | 0x8000_0000) + 0x100;
            ferr(
                run(&elf.build().bytes, KernelEra::Newest),
                "p_vaddr 0x90000000 != p_paddr 0x10000000",
            );
        }
    }

    #[test]
    fn case29_nobits_table() {
        for e in BOTH {
            ferr(
                run(&patch_table_shdr(e, 4, SHT_NOBITS), KernelEra::Newest),
                "SHT_NOBITS",
            );
        }
    }

    #[test]
    fn other_silent_failures() {
        for e in BOTH {
            // Overlapping carveouts.
            let ents = [
                carveout(e, BASE, 0x10000, "a"),
                carveout(e, BASE + 0x8000, 0x10000, "b"),
            ];
            ferr(
                run(&with(e, &ents).build().bytes, KernelEra::Newest),
                "overlap",
            );
            // Trace outside every carveout.
            let ents = [
                carveout(e, BASE, 0x10000, "fw"),
                trace(e, BASE + 0xf000, 0x2000, "t"),
            ];
            ferr(
                run(&with(e, &ents).build().bytes, KernelEra::Newest),
                "trace entry 1",
            );
            // An entry that is not 4-byte aligned (packed table after a 6-byte vendor entry).
            let odd = words(e, &[200])
                .into_iter()
                .chain([0, 0])
                .collect::<Vec<u8>>();
            let ents = [
                carveout(e, BASE, 0x10000, "fw"),
                odd,
                trace(e, BASE + 0x8000, 0x100, "t"),
            ];
            let mut elf = good(e);
            let tbl = table(e, &ents, 1);
            let t = elf.sec(RESOURCE_TABLE);
            elf.segs[0].data.truncate(0x100);
            elf.segs[0].data.extend(&tbl);
            elf.secs[t].size = tbl.len() as u32;
            ferr(
                run(&elf.build().bytes, KernelEra::Newest),
                "not 4-byte aligned",
            );
            // Overlapping PT_LOADs.
            let mut elf = good(e);
            elf.segs.push(Seg {
                p_type: PT_LOAD,
                vaddr: BASE + 0x3000,
                paddr: BASE + 0x3000,
                data: vec![9; 8],
                memsz: 0x2000,
                flags: 6,
            });
            ferr(run(&elf.build().bytes, KernelEra::Newest), "overlap");
            // A '%' in a carveout name (the kernel uses it as a format string).
            let b = with(e, &[carveout(e, BASE, 0x10000, "fw%s")]).build().bytes;
            ferr(run(&b, KernelEra::Newest), "'%'");
        }
    }

    // ---- §6.4 30-33: profile geometry -----------------------------------------------------------

    fn mips(b: &[u8]) -> Result<Loaded> {
        check(
            b,
            &Options {
                profile: Some(Profile::MipsRproc),
                ..Default::default()
            },
        )
    }

    #[test]
    fn case30_to_33_mips_geometry() {
        for e in BOTH {
            let one =
                |da: u32, len: u32| good_at(e, da, &[carveout(e, da, len, "fw")]).build().bytes;
            let b = one(BASE, 0x6000);
            mips(&b).unwrap();
            let b = one(BASE, 0x5000);
            run(&b, KernelEra::Newest).unwrap();
            ferr(mips(&b), "multiple of 0x2000");
            let b = one(0x1000_1000, 0x4000);
            run(&b, KernelEra::Newest).unwrap();
            ferr(mips(&b), "8 KiB-aligned");
            // Above the CMA alignment is refused only where the driver really maps it
            // wrongly (mips_tlb_mapping_for_every_cma_address).
            mips(&one(BASE, 0x10_2000)).unwrap();
            mips(&one(BASE, 0x10_0000)).unwrap();
            let b = one(0x8000_0000, 0x4000);
            run(&b, KernelEra::Newest).unwrap();
            ferr(mips(&b), "0x80000000");
            let b = one(0x7fff_c000, 0x4000);
            mips(&b).unwrap();
            // FW_RSC_ADDR_ANY: nothing can be loaded deterministically into it.
            let ents = [
                carveout(e, BASE, 0x10000, "fw"),
                carveout(e, FW_RSC_ADDR_ANY, 0x2000, "any"),
            ];
            let b = with(e, &ents).build().bytes;
            run(&b, KernelEra::Newest).unwrap();
            ferr(mips(&b), "FW_RSC_ADDR_ANY");
            // vring_size(4, 16) = ALIGN(16*4 + 2*(3+4), 16) + 2*3 + 8*4 = 80 + 38 = 118: one page.
            let ents = [
                carveout(e, BASE, 0x10000, "fw"),
                vdev(e, &[(16, 4), (16, 4)], 0, 0),
            ];
            let b = with(e, &ents).build().bytes;
            run(&b, KernelEra::Newest).unwrap();
            ferr(mips(&b), "vring 0");
            // (256, 4096): 4096 + 2*259 -> 8192, + 6 + 2048 = 10246 -> three pages.
            let ents = [
                carveout(e, BASE, 0x10000, "fw"),
                vdev(e, &[(0x1000, 4), (0x1000, 256)], 0, 0),
            ];
            ferr(mips(&with(e, &ents).build().bytes), "vring 1");
            // The MIPS example's rings (4, 0x1000): 4096 + 38 -> two pages, fine.
            let ents = [
                carveout(e, BASE, 0x10000, "fw"),
                vdev(e, &[(0x1000, 4), (0x1000, 4)], 0, 0),
            ];
            mips(&with(e, &ents).build().bytes).unwrap();
        }
    }

    /// Issue 14.2: the driver's TLB mapping replayed for every physical address CMA may return.
    #[test]
    fn mips_tlb_mapping_for_every_cma_address() {
        let cma = |b: &[u8], order: Option<u8>| {
            check(
                b,
                &Options {
                    profile: Some(Profile::MipsRproc),
                    cma_align: order,
                    ..Default::default()
                },
            )
        };
        for e in BOTH {
            let one =
                |da: u32, len: u32| good_at(e, da, &[carveout(e, da, len, "fw")]).build().bytes;
            // 3 MiB at a 4 MiB-aligned da: CMA guarantees 1 MiB only, and at physical 1 MiB
            // the driver maps a 2 MiB pair at da + 1 MiB.
            let b = one(0x1040_0000, 0x30_0000);
            run(&b, KernelEra::Newest).unwrap();
            let m = ferr(mips(&b), "would be mapped wrongly by the MIPS driver");
            assert!(
                m.contains("CONFIG_CMA_ALIGNMENT=8")
                    && m.contains("physical 0x100000")
                    && m.contains("[0x10500000, +0x200000)"),
                "{m}"
            );
            cma(&b, Some(10)).unwrap();
            // The 1 MiB cap needs CONFIG_CMA_ALIGNMENT=8: under 4, 1 MiB maps wrongly, 64 KiB not.
            let m = ferr(
                cma(&one(BASE, 0x10_0000), Some(4)),
                "CONFIG_CMA_ALIGNMENT=4",
            );
            assert!(m.contains("at most 0x10000 bytes"), "{m}");
            cma(&one(BASE, 0x1_0000), Some(4)).unwrap();
            // 17 carveouts of one wired entry each (the first holds the 16 KiB segment):
            // above 16, a warning.
            let ents: Vec<Vec<u8>> = (0..17)
                .map(|k| {
                    let len = if k == 0 { 0x8000 } else { 0x2000 };
                    carveout(e, BASE + k * 0x2_0000, len, &format!("c{k}"))
                })
                .collect();
            let l = cma(&good_at(e, BASE, &ents).build().bytes, None).unwrap();
            assert!(
                l.warnings
                    .iter()
                    .any(|w| w.contains("17 wired TLB entries")),
                "{:?}",
                l.warnings
            );
            let l = cma(&good_at(e, BASE, &ents[..16]).build().bytes, None).unwrap();
            assert!(!l.warnings.iter().any(|w| w.contains("wired")));
        }
    }

    // ---- §6.4 34: entry point -------------------------------------------------------------------

    #[test]
    fn case34_entry_outside_code() {
        for e in BOTH {
            let mut elf = good(e);
            elf.entry = BASE + 0x4000;
            ferr(
                run(&elf.build().bytes, KernelEra::Newest),
                "e_entry 0x10004000",
            );
            let mut elf = good(e);
            elf.segs[0].flags = 6; // RW only
            ferr(
                run(&elf.build().bytes, KernelEra::Newest),
                "e_entry 0x10000000",
            );
            let mut elf = good(e);
            elf.entry = BASE + 0x3ffc; // last word of the bss: inside the segment
            run(&elf.build().bytes, KernelEra::Newest).unwrap();
        }
    }

    #[test]
    fn never_panics_on_truncations_or_bit_flips() {
        for e in BOTH {
            let b = with(
                e,
                &[
                    carveout(e, BASE, 0x10000, "fw"),
                    vdev(e, &[(0x1000, 4), (0x1000, 4)], 4, 4),
                ],
            )
            .build()
            .bytes;
            for n in 0..b.len() {
                let _ = run(&b[..n], KernelEra::Newest);
                let _ = run(&b[..n], KernelEra::Old4x);
            }
            for i in 0..b.len() {
                for bit in [0x01u8, 0x80] {
                    let mut x = b.clone();
                    x[i] ^= bit;
                    let _ = run(&x, KernelEra::Newest);
                    let _ = run(&x, KernelEra::Old4x);
                }
            }
        }
    }
}
