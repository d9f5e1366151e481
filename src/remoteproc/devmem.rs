//! SP memory of a real remote processor: the firmware's carveouts read and written through
//! `/dev/mem` (`--mem-device PATH`) at their physical addresses.
//!
//! Where the physical address comes from:
//! - `mips-rproc` profile: the carveouts are CMA allocations at addresses only the kernel
//!   knows; debugfs `remoteproc/remoteprocN/carveout_memories` lists them
//!   (drivers/remoteproc/remoteproc_debugfs.c `rproc_carveouts_show`; the DMA address is the
//!   physical one on MIPS without an IOMMU);
//! - `fixed` profile: the addresses the firmware was linked at, KSEG0/KSEG1 being windows onto
//!   physical `da & 0x1fffffff` (what the converter writes as the carveout's `pa`).
//!
//! Each access is one `pread`/`pwrite` at the translated offset, after [`Carveouts::place`]
//! checked the whole range. A kernel built with `CONFIG_STRICT_DEVMEM` refuses `/dev/mem`
//! access to RAM; the error then names the device, the address and the errno.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::rproc::firmware::Profile;
use crate::spmem::{Carveouts, Region, SpMemory};

/// `--mem-device` default.
pub const DEFAULT_MEM_DEVICE: &str = "/dev/mem";
/// Where debugfs is normally mounted.
pub const DEFAULT_DEBUGFS: &str = "/sys/kernel/debug";

/// One `Carveout memory entry:` of `carveout_memories`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DebugfsCarveout {
    pub name: String,
    /// `DMA address: %pad`.
    pub dma: u64,
    /// `Device address: 0x%x`.
    pub da: u32,
    /// `Length: 0x%zx Bytes`.
    pub len: u64,
}

fn backend_err(message: String, errno: i32) -> Error {
    Error::Backend { message, errno }
}

/// `<debugfs>/remoteproc/<remoteprocN>/carveout_memories` for the sysfs device directory
/// `<sysfs>/class/remoteproc/remoteprocN` (debugfs names the directory `dev_name()` too).
pub fn carveout_memories_path(debugfs: &Path, device_dir: &Path) -> PathBuf {
    let n = device_dir.file_name().unwrap_or_default();
    debugfs.join("remoteproc").join(n).join("carveout_memories")
}

fn hex(v: &str) -> Option<u64> {
    u64::from_str_radix(v.strip_prefix("0x")?, 16).ok()
}

/// An entry being read: the line of its header, then the fields seen so far.
#[derive(Default)]
struct Partial {
    line: usize,
    name: Option<String>,
    dma: Option<u64>,
    da: Option<u32>,
    len: Option<u64>,
}

/// Parse `rproc_carveouts_show` output. `file` names the source in errors.
pub fn parse_carveout_memories(text: &str, file: &str) -> Result<Vec<DebugfsCarveout>> {
    let bad = |line: usize, what: String| backend_err(format!("{file}:{line}: {what}"), 0);
    let mut out = Vec::new();
    let mut cur: Option<Partial> = None;
    let finish = |c: Partial, out: &mut Vec<DebugfsCarveout>| -> Result<()> {
        let Partial {
            line,
            name,
            dma,
            da,
            len,
        } = c;
        match (name, dma, da, len) {
            (Some(name), Some(dma), Some(da), Some(len)) => {
                out.push(DebugfsCarveout { name, dma, da, len });
                Ok(())
            }
            _ => Err(bad(
                line,
                "entry lacks one of Name, DMA address, Device address, Length".to_string(),
            )),
        }
    };
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let l = raw.trim();
        if l.is_empty() {
            continue;
        }
        if l == "Carveout memory entry:" {
            if let Some(c) = cur.take() {
                finish(c, &mut out)?;
            }
            cur = Some(Partial {
                line,
                ..Default::default()
            });
            continue;
        }
        let Some(c) = cur.as_mut() else {
            return Err(bad(
                line,
                format!("{l:?} before any \"Carveout memory entry:\""),
            ));
        };
        let (key, value) = l
            .split_once(": ")
            .ok_or_else(|| bad(line, format!("{l:?} is not \"key: value\"")))?;
        let num = |v: &str| hex(v).ok_or_else(|| bad(line, format!("{key}: {v:?} is not 0x-hex")));
        match key {
            "Name" => c.name = Some(value.to_string()),
            "Virtual address" => {}
            "DMA address" => c.dma = Some(num(value)?),
            "Device address" => {
                let v = num(value)?;
                c.da = Some(u32::try_from(v).map_err(|_| {
                    bad(line, format!("Device address {v:#x} does not fit 32 bits"))
                })?)
            }
            "Length" => {
                let v = value.strip_suffix(" Bytes").unwrap_or(value);
                c.len = Some(num(v)?)
            }
            _ => return Err(bad(line, format!("unknown key {key:?}"))),
        }
    }
    if let Some(c) = cur {
        finish(c, &mut out)?;
    }
    Ok(out)
}

/// Where physical addresses come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaSource {
    /// The kernel's list (`mips-rproc` profile).
    Debugfs(Vec<DebugfsCarveout>),
    /// As linked: KSEG0/KSEG1 `da & 0x1fffffff`, other addresses as they are (`fixed`).
    Fixed,
}

/// The firmware's carveouts with their physical addresses. Every carveout must be listed by
/// the kernel (matched by device address, covering the whole length).
pub fn physical(carveouts: &Carveouts, source: &PaSource) -> Result<Carveouts> {
    let mut out = Vec::new();
    for r in carveouts.regions() {
        let pa = match source {
            PaSource::Fixed if (0x8000_0000..0xc000_0000).contains(&r.da) => {
                u64::from(r.da & 0x1fff_ffff)
            }
            PaSource::Fixed => u64::from(r.da),
            PaSource::Debugfs(list) => {
                let hit = list
                    .iter()
                    .find(|d| d.da == r.da && d.len >= u64::from(r.len))
                    .ok_or_else(|| {
                        backend_err(
                            format!(
                                "carveout {} at {:#010x} (len {:#x}) is not in carveout_memories (listed: {})",
                                r.name,
                                r.da,
                                r.len,
                                if list.is_empty() {
                                    "nothing".to_string()
                                } else {
                                    list.iter()
                                        .map(|d| format!("{} da {:#010x} len {:#x}", d.name, d.da, d.len))
                                        .collect::<Vec<_>>()
                                        .join(", ")
                                }
                            ),
                            0,
                        )
                    })?;
                hit.dma
            }
        };
        out.push(Region { pa, ..r.clone() });
    }
    Ok(Carveouts::new(out))
}

/// The source for a firmware of `profile` on the instance at `device_dir`: `fixed` needs
/// nothing, `mips-rproc` reads debugfs (mounted at `debugfs`).
pub fn pa_source(profile: Profile, debugfs: &Path, device_dir: &Path) -> Result<PaSource> {
    match profile {
        Profile::Fixed => Ok(PaSource::Fixed),
        Profile::MipsRproc => {
            let path = carveout_memories_path(debugfs, device_dir);
            let text = std::fs::read_to_string(&path).map_err(|e| {
                backend_err(
                    format!(
                        "cannot read {} (the carveouts' physical addresses; is debugfs mounted at {}?): {e}",
                        path.display(),
                        debugfs.display()
                    ),
                    e.raw_os_error().unwrap_or(0),
                )
            })?;
            Ok(PaSource::Debugfs(parse_carveout_memories(
                &text,
                &path.display().to_string(),
            )?))
        }
    }
}

/// SP memory through a `/dev/mem`-like file.
#[derive(Debug)]
pub struct DevMem {
    file: File,
    path: PathBuf,
    carveouts: Carveouts,
}

impl DevMem {
    /// Open `path` read-write (`O_SYNC`, which `/dev/mem` maps uncached for mmap and is
    /// harmless for pread/pwrite) over `carveouts` with physical addresses ([`physical`]).
    pub fn open(path: &Path, carveouts: Carveouts) -> Result<DevMem> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_SYNC)
            .open(path)
            .map_err(|e| {
                backend_err(
                    format!("cannot open the memory device {}: {e}", path.display()),
                    e.raw_os_error().unwrap_or(0),
                )
            })?;
        Ok(DevMem {
            file,
            path: path.to_path_buf(),
            carveouts,
        })
    }

    pub fn carveouts(&self) -> &Carveouts {
        &self.carveouts
    }

    fn offset(&self, da: u32, len: usize) -> Result<u64> {
        let p = self.carveouts.place(da, len)?;
        Ok(self.carveouts.regions()[p.region].pa + u64::from(p.offset))
    }

    fn io_err(&self, op: &str, da: u32, pa: u64, len: usize, e: std::io::Error) -> Error {
        backend_err(
            format!(
                "{op} of {len:#x} bytes at SP address {da:#010x} (physical {pa:#010x}) through {} failed: {e}",
                self.path.display()
            ),
            e.raw_os_error().unwrap_or(libc::EIO),
        )
    }
}

impl SpMemory for DevMem {
    fn read(&self, da: u32, buf: &mut [u8]) -> Result<()> {
        let pa = self.offset(da, buf.len())?;
        self.file
            .read_exact_at(buf, pa)
            .map_err(|e| self.io_err("read", da, pa, buf.len(), e))
    }

    fn write(&self, da: u32, buf: &[u8]) -> Result<()> {
        let pa = self.offset(da, buf.len())?;
        self.file
            .write_all_at(buf, pa)
            .map_err(|e| self.io_err("write", da, pa, buf.len(), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a 6.x kernel prints for two carveouts (64-bit `%pad`, hashed `%pK`).
    pub const SAMPLE: &str = "Carveout memory entry:
\tName: vpe1
\tVirtual address: 00000000b2f1c3a4
\tDMA address: 0x0000000003f00000
\tDevice address: 0x10000000
\tLength: 0x100000 Bytes

Carveout memory entry:
\tName: vdev0vring0
\tVirtual address: 000000001c2d3e4f
\tDMA address: 0x03e00000
\tDevice address: 0x3e00000
\tLength: 0x2000 Bytes

";

    #[test]
    fn parses_the_kernel_format() {
        let v = parse_carveout_memories(SAMPLE, "cm").unwrap();
        assert_eq!(
            v,
            [
                DebugfsCarveout {
                    name: "vpe1".into(),
                    dma: 0x03f0_0000,
                    da: 0x1000_0000,
                    len: 0x10_0000
                },
                DebugfsCarveout {
                    name: "vdev0vring0".into(),
                    dma: 0x03e0_0000,
                    da: 0x03e0_0000,
                    len: 0x2000
                }
            ]
        );
        assert_eq!(parse_carveout_memories("", "cm").unwrap(), []);
    }

    #[test]
    fn malformed_lists_name_file_and_line() {
        for (text, want) in [
            ("\tName: x\n", "cm:1: \"Name: x\" before any"),
            (
                "Carveout memory entry:\n\tName: x\n",
                "cm:1: entry lacks one of",
            ),
            (
                "Carveout memory entry:\n\tDMA address: 3f00000\n",
                "cm:2: DMA address: \"3f00000\" is not 0x-hex",
            ),
            (
                "Carveout memory entry:\n\tDevice address: 0x100000000\n",
                "cm:2: Device address 0x100000000 does not fit 32 bits",
            ),
            (
                "Carveout memory entry:\n\tColour: red\n",
                "cm:2: unknown key \"Colour\"",
            ),
        ] {
            let e = parse_carveout_memories(text, "cm").unwrap_err().to_string();
            assert!(e.starts_with(want), "{e}");
        }
    }

    fn fw_carveouts(da: u32) -> Carveouts {
        Carveouts::new(vec![Region {
            name: "vpe1".into(),
            da,
            len: 0x4000,
            pa: 0,
        }])
    }

    #[test]
    fn physical_addresses_from_debugfs_or_the_fixed_rule() {
        let list = parse_carveout_memories(SAMPLE, "cm").unwrap();
        let c = physical(&fw_carveouts(0x1000_0000), &PaSource::Debugfs(list.clone())).unwrap();
        assert_eq!(c.regions()[0].pa, 0x03f0_0000);
        let e = physical(&fw_carveouts(0x2000_0000), &PaSource::Debugfs(list))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("carveout vpe1 at 0x20000000 (len 0x4000) is not in carveout_memories (listed: vpe1 da 0x10000000 len 0x100000, "), "{e}");
        let c = physical(&fw_carveouts(0x8020_0000), &PaSource::Fixed).unwrap();
        assert_eq!(c.regions()[0].pa, 0x0020_0000);
        let c = physical(&fw_carveouts(0x0400_0000), &PaSource::Fixed).unwrap();
        assert_eq!(c.regions()[0].pa, 0x0400_0000);
    }

    #[test]
    fn debugfs_path_follows_the_sysfs_instance() {
        assert_eq!(
            carveout_memories_path(
                Path::new("/sys/kernel/debug"),
                Path::new("/sys/class/remoteproc/remoteproc3")
            ),
            Path::new("/sys/kernel/debug/remoteproc/remoteproc3/carveout_memories")
        );
    }
}
