//! The Lantiq/Intel xRX `/dev/vpe1` loader variant (spec §3.3, §3.6): the IFX_VPE_EXT patch
//! (OpenWrt `0019-MIPS-lantiq-adds-VPE-extensions.patch`: `vpe1_load_addr`, `vpe1_mem`, the
//! missing-symbol fallback). The VMMC voice firmware format is the crate's `voice` module.

use serde::Serialize;

use super::MSG_NO_SHARED;
use crate::error::{Error, Result};
use crate::image::Warning;

/// `KSEG1ADDR(a)`: the uncached alias of a KSEG0/physical address.
pub fn kseg1(addr: u32) -> u32 {
    0xa000_0000 | (addr & 0x1fff_ffff)
}

/// Physical address of a KSEG0/KSEG1 address (`CPHYSADDR`); other addresses unchanged.
pub fn physical(addr: u32) -> u32 {
    if (0x8000_0000..0xc000_0000).contains(&addr) {
        addr & 0x1fff_ffff
    } else {
        addr
    }
}

// ---- the IFX_VPE_EXT loader patch (ELF images through /dev/vpe1) ------------------------------

/// The Lantiq-patched `/dev/vpe1` loader (OpenWrt `0019-MIPS-lantiq-adds-VPE-extensions.patch`,
/// kernel parameters `vpe1_load_addr=` and `vpe1_mem=`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LantiqLoader {
    /// `vpe1_load_addr` (KSEG0): where `alloc_progmem` places an ET_REL image.
    pub vpe1_load_addr: u32,
    /// `vpe1_mem`: the `/dev/vpe1` buffer size (write limit) and the voice memory limit.
    pub vpe1_mem: u32,
    /// Reproduce the patch's quirk that a missing `vpe_shared` alone overrides a present
    /// `__start` (true, the default); false = `--entry __start`.
    pub entry_override: bool,
}

/// `find_vpe_symbols` and what `vpe_elfload` did with its result, mainline or Lantiq-patched
/// (spec §3.6): the entry point, or `NoStart`. Pushes the warnings the loader printed (and,
/// for the Lantiq fallback, a loud one the loader never printed).
pub(crate) fn vpe_entry(
    lantiq: Option<&LantiqLoader>,
    start: u32,
    shared: u32,
    warnings: &mut Vec<Warning>,
) -> Result<u32> {
    let fallback = lantiq.filter(|l| l.vpe1_load_addr != 0 && (start == 0 || shared == 0));
    match fallback {
        // "if (find_vpe_symbols(...) < 0) { if (vpe1_load_addr) { v->__start =
        // KSEG1ADDR(vpe1_load_addr); return 0; } ... }"
        Some(l) if start == 0 || l.entry_override => {
            let entry = kseg1(l.vpe1_load_addr);
            let why = if start == 0 {
                "the program has no __start symbol".to_string()
            } else {
                format!(
                    "the program has __start at {start:#010x} but no vpe_shared symbol, so __start is IGNORED (pass --entry __start to start there instead)"
                )
            };
            warnings.push(Warning::new(format!(
                "LANTIQ LOADER QUIRK: {why}; the Lantiq-patched loader (IFX_VPE_EXT) starts it at KSEG1(vpe1_load_addr) = {entry:#010x}, the first byte at vpe1_load_addr {:#010x}, uncached, and prints nothing; vpe_shared is unset (RTLX unusable)",
                l.vpe1_load_addr
            )));
            Ok(entry)
        }
        Some(_) => {
            warnings.push(Warning::new(MSG_NO_SHARED));
            warnings.push(Warning::new(format!(
                "--entry __start: starting at __start {start:#010x}; the Lantiq-patched loader would have started at KSEG1(vpe1_load_addr) because vpe_shared is missing"
            )));
            Ok(start)
        }
        None if start == 0 => Err(Error::NoStart),
        None => {
            if shared == 0 {
                warnings.push(Warning::new(MSG_NO_SHARED));
            }
            Ok(start)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lantiq_entry_rules() {
        let l = LantiqLoader {
            vpe1_load_addr: 0x83e0_0000,
            vpe1_mem: 0x20_0000,
            entry_override: true,
        };
        let mut w = Vec::new();
        // Both present: __start.
        assert_eq!(
            vpe_entry(Some(&l), 0x83e0_0040, 0x83e0_1000, &mut w),
            Ok(0x83e0_0040)
        );
        assert!(w.is_empty());
        // No __start: KSEG1(vpe1_load_addr) instead of NoStart.
        assert_eq!(vpe_entry(Some(&l), 0, 0x83e0_1000, &mut w), Ok(0xa3e0_0000));
        // The quirk: missing vpe_shared overrides a present __start.
        w.clear();
        assert_eq!(vpe_entry(Some(&l), 0x83e0_0040, 0, &mut w), Ok(0xa3e0_0000));
        assert!(w[0].message.contains("IGNORED"), "{w:?}");
        // --entry __start.
        let keep = LantiqLoader {
            entry_override: false,
            ..l
        };
        assert_eq!(
            vpe_entry(Some(&keep), 0x83e0_0040, 0, &mut w),
            Ok(0x83e0_0040)
        );
        assert_eq!(vpe_entry(Some(&keep), 0, 0, &mut w), Ok(0xa3e0_0000));
        // Mainline.
        assert_eq!(vpe_entry(None, 0, 5, &mut w), Err(Error::NoStart));
    }

    /// The split removed the lantiq <-> legacy import circle: the loader model does not use
    /// the voice format.
    #[test]
    fn the_legacy_loader_does_not_import_the_voice_format() {
        for (name, src) in [
            ("mod.rs", include_str!("mod.rs")),
            ("lantiq.rs", include_str!("lantiq.rs")),
            ("reloc.rs", include_str!("reloc.rs")),
            ("symbols.rs", include_str!("symbols.rs")),
            ("layout.rs", include_str!("layout.rs")),
            ("hazards.rs", include_str!("hazards.rs")),
        ] {
            // Built at run time so that this file does not contain the needles itself.
            for bad in [
                ["crate::", "voice"].concat(),
                ["crate::", "lantiq"].concat(),
            ] {
                assert!(!src.contains(&bad), "src/legacy/{name} uses {bad}");
            }
        }
    }
}
