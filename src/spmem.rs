//! Memory of the SP ("real-time" VPE) as the Linux side sees it, at SP device addresses.
//!
//! RTLX and kspd only ever touch the SP through [`SpMemory`]: the emulated core implements it
//! over its own memory, the sysfs backend over `/dev/mem` at the carveouts' physical addresses
//! (`remoteproc::devmem`), tests over plain vectors ([`VecMemory`]). Every implementation
//! translates through [`Carveouts`], so an address the SP publishes can never make the daemon
//! touch memory outside the firmware's carveouts.

use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::rproc::table::{Carveout, Resource, ResourceTable};

/// Byte access to the SP's memory at SP device addresses.
///
/// A failing access has touched nothing: implementations check the whole range first.
pub trait SpMemory {
    fn read(&self, da: u32, buf: &mut [u8]) -> Result<()>;
    fn write(&self, da: u32, buf: &[u8]) -> Result<()>;
}

/// One carveout: `[da, da + len)` in SP addresses, and the physical address remoteproc gave it
/// (the table's `pa`, or what debugfs reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Region {
    pub name: String,
    pub da: u32,
    pub len: u32,
    pub pa: u64,
}

impl Region {
    fn end(&self) -> u64 {
        u64::from(self.da) + u64::from(self.len)
    }
}

/// Where a checked range lies: which region, and the offset in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    pub region: usize,
    pub offset: u32,
}

/// The device-address → memory translation of a firmware: its carveouts, bounds-checked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Carveouts {
    regions: Vec<Region>,
}

impl Carveouts {
    /// From explicit regions (empty ones are dropped: nothing can be inside them).
    pub fn new(regions: Vec<Region>) -> Carveouts {
        Carveouts {
            regions: regions.into_iter().filter(|r| r.len > 0).collect(),
        }
    }

    /// The carveouts of a resource table (devmem, trace and vdev entries are not SP memory
    /// the Linux side may touch).
    pub fn from_table(table: &ResourceTable) -> Carveouts {
        Carveouts::new(
            table
                .entries
                .iter()
                .filter_map(|r| match r {
                    Resource::Carveout(c) => Some(region_of(c)),
                    _ => None,
                })
                .collect(),
        )
    }

    pub fn regions(&self) -> &[Region] {
        &self.regions
    }

    /// The region holding all of `[da, da + len)`; `len` 0 still needs `da` inside one.
    pub fn place(&self, da: u32, len: usize) -> Result<Place> {
        let end = u64::from(da).saturating_add(len as u64);
        self.regions
            .iter()
            .position(|r| {
                u64::from(da) >= u64::from(r.da) && u64::from(da) < r.end() && end <= r.end()
            })
            .map(|region| Place {
                region,
                offset: da - self.regions[region].da,
            })
            .ok_or_else(|| self.outside(da, len))
    }

    /// The region holding `da`, whatever the length (for messages that say how far a buffer
    /// runs past its carveout).
    pub fn region_at(&self, da: u32) -> Option<&Region> {
        self.regions
            .iter()
            .find(|r| u64::from(da) >= u64::from(r.da) && u64::from(da) < r.end())
    }

    /// The error for a range that is not inside one carveout.
    pub fn outside(&self, da: u32, len: usize) -> Error {
        Error::SpAddress {
            da,
            len: len as u64,
            carveouts: self.describe(),
        }
    }

    /// `name [da, end)` for every region, for messages.
    pub fn describe(&self) -> String {
        if self.regions.is_empty() {
            return "no carveouts".to_string();
        }
        self.regions
            .iter()
            .map(|r| format!("{} {:#010x}..{:#010x}", r.name, r.da, r.end()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn region_of(c: &Carveout) -> Region {
    Region {
        name: c.name.clone(),
        da: c.da,
        len: c.len,
        pa: u64::from(c.pa),
    }
}

/// SP memory held in vectors, one per carveout: for tests, and for anything that wants a copy
/// of an SP's memory.
#[derive(Debug)]
pub struct VecMemory {
    carveouts: Carveouts,
    mem: Mutex<Vec<Vec<u8>>>,
}

impl VecMemory {
    /// Zero-filled memory for every carveout.
    pub fn new(carveouts: Carveouts) -> VecMemory {
        let mem = carveouts
            .regions()
            .iter()
            .map(|r| vec![0; r.len as usize])
            .collect();
        VecMemory {
            carveouts,
            mem: Mutex::new(mem),
        }
    }

    pub fn carveouts(&self) -> &Carveouts {
        &self.carveouts
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Vec<u8>>> {
        // A panic elsewhere cannot leave the bytes half-updated in a way that matters more
        // than the SP's own writes could.
        self.mem.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SpMemory for VecMemory {
    fn read(&self, da: u32, buf: &mut [u8]) -> Result<()> {
        let p = self.carveouts.place(da, buf.len())?;
        let mem = self.lock();
        let off = p.offset as usize;
        buf.copy_from_slice(&mem[p.region][off..off + buf.len()]);
        Ok(())
    }

    fn write(&self, da: u32, buf: &[u8]) -> Result<()> {
        let p = self.carveouts.place(da, buf.len())?;
        let mut mem = self.lock();
        let off = p.offset as usize;
        mem[p.region][off..off + buf.len()].copy_from_slice(buf);
        Ok(())
    }
}

/// The error every implementation reports for an access outside its memory.
pub fn out_of_range(da: u32, len: usize) -> Error {
    Error::SpAddress {
        da,
        len: len as u64,
        carveouts: "the memory this SP has".into(),
    }
}

/// One flat block of SP memory starting at device address `base` (tests, simulations).
#[derive(Debug)]
pub struct FlatMemory {
    base: u32,
    bytes: Mutex<Vec<u8>>,
}

impl FlatMemory {
    pub fn new(base: u32, bytes: Vec<u8>) -> FlatMemory {
        FlatMemory {
            base,
            bytes: Mutex::new(bytes),
        }
    }

    /// A copy of the whole block.
    pub fn snapshot(&self) -> Vec<u8> {
        self.bytes.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn range(&self, da: u32, len: usize, have: usize) -> Result<std::ops::Range<usize>> {
        let off = da
            .checked_sub(self.base)
            .ok_or_else(|| out_of_range(da, len))? as usize;
        let end = off.checked_add(len).ok_or_else(|| out_of_range(da, len))?;
        if end > have {
            return Err(out_of_range(da, len));
        }
        Ok(off..end)
    }
}

impl SpMemory for FlatMemory {
    fn read(&self, da: u32, buf: &mut [u8]) -> Result<()> {
        let b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let r = self.range(da, buf.len(), b.len())?;
        buf.copy_from_slice(&b[r]);
        Ok(())
    }

    fn write(&self, da: u32, buf: &[u8]) -> Result<()> {
        let mut b = self.bytes.lock().unwrap_or_else(|e| e.into_inner());
        let r = self.range(da, buf.len(), b.len())?;
        b[r].copy_from_slice(buf);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn two() -> Carveouts {
        Carveouts::new(vec![
            Region {
                name: "text".into(),
                da: 0x1000_0000,
                len: 0x2000,
                pa: 0x0f00_0000,
            },
            Region {
                name: "top".into(),
                da: 0xffff_f000,
                len: 0x1000,
                pa: 0,
            },
        ])
    }

    #[test]
    fn place_inside_and_at_the_edges() {
        let c = two();
        assert_eq!(
            c.place(0x1000_0000, 0x2000).unwrap(),
            Place {
                region: 0,
                offset: 0
            }
        );
        assert_eq!(c.place(0x1000_1fff, 1).unwrap().offset, 0x1fff);
        assert_eq!(
            c.place(0x1000_2000, 0).unwrap_err(),
            c.outside(0x1000_2000, 0)
        );
        // The last byte of the 32-bit space: no overflow in the end computation.
        assert_eq!(
            c.place(0xffff_ffff, 1).unwrap(),
            Place {
                region: 1,
                offset: 0xfff
            }
        );
    }

    #[test]
    fn place_refuses_ranges_crossing_or_outside_and_names_them() {
        let c = two();
        let e = c.place(0x1000_1ff0, 0x20).unwrap_err();
        assert_eq!(
            e.to_string(),
            "SP address 0x10001ff0 + 0x20 bytes is outside every carveout (text 0x10000000..0x10002000, top 0xfffff000..0x100000000)"
        );
        assert!(c.place(0x0fff_ffff, 1).is_err());
        assert!(c.place(0xffff_ffff, 2).is_err());
        assert!(c.place(0x1000_0000, usize::MAX).is_err());
        assert!(Carveouts::default()
            .place(0, 0)
            .unwrap_err()
            .to_string()
            .contains("no carveouts"));
    }

    #[test]
    fn vec_memory_reads_back_and_touches_nothing_on_error() {
        let m = VecMemory::new(two());
        m.write(0x1000_0010, b"abcd").unwrap();
        let mut b = [0u8; 4];
        m.read(0x1000_0010, &mut b).unwrap();
        assert_eq!(&b, b"abcd");
        assert!(m.write(0x1000_1ffe, b"wxyz").is_err());
        let mut tail = [0u8; 2];
        m.read(0x1000_1ffe, &mut tail).unwrap();
        assert_eq!(tail, [0, 0]);
    }

    #[test]
    fn from_table_keeps_only_carveouts() {
        let t = ResourceTable {
            ver: 1,
            entries: vec![
                Resource::Carveout(Carveout {
                    da: 0x1000_0000,
                    pa: 0x0e00_0000,
                    len: 0x4000,
                    flags: 0,
                    reserved: 0,
                    name: "vpe1".into(),
                }),
                Resource::Trace {
                    da: 0x1000_0000,
                    len: 0x100,
                    reserved: 0,
                    name: "trace".into(),
                },
            ],
        };
        let c = Carveouts::from_table(&t);
        assert_eq!(c.regions().len(), 1);
        assert_eq!(c.regions()[0].pa, 0x0e00_0000);
    }

    #[test]
    fn flat_memory_is_bounds_checked() {
        let m = FlatMemory::new(0x1000_0000, vec![0; 16]);
        m.write(0x1000_0004, &[1, 2, 3, 4]).unwrap();
        let mut b = [0; 4];
        m.read(0x1000_0004, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
        // Past the end, before the start, wrapping: errors naming the address.
        let e = m.read(0x1000_000e, &mut b).unwrap_err();
        assert_eq!(
            e.to_string(),
            "SP address 0x1000000e + 0x4 bytes is outside every carveout (the memory this SP has)"
        );
        assert!(m.write(0x0fff_fffe, &[0; 4]).is_err());
        assert!(m.read(0xffff_fffe, &mut b).is_err());
        assert_eq!(m.snapshot()[4..8], [1, 2, 3, 4]);
    }
}
