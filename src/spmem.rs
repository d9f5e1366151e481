//! SP memory at SP (device) addresses: what code that talks to a running SP program (RTLX,
//! trace buffers, crash dumps) reads and writes, whatever holds that memory — the emulated
//! core's carveouts, `/dev/mem` at a board's carveouts, or a `Vec<u8>` in a test.
//!
//! Addresses are the firmware's device addresses (`da` of the resource table's carveouts),
//! translated through the carveouts and bounds-checked: an access that is not wholly inside
//! one carveout is an error, never a partial read or write.

use std::sync::Mutex;

use crate::error::{Error, Result};

/// Read/write SP memory at device addresses.
pub trait SpMemory {
    /// Fill `buf` from `[da, da + buf.len())`.
    fn read(&self, da: u32, buf: &mut [u8]) -> Result<()>;
    /// Copy `buf` to `[da, da + buf.len())`.
    fn write(&self, da: u32, buf: &[u8]) -> Result<()>;
}

/// The error every implementation reports for an access outside its memory.
pub fn out_of_range(da: u32, len: usize) -> Error {
    Error::SpMemory {
        da,
        len,
        reason: "not inside one carveout".into(),
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
            "SP memory access of 4 bytes at 0x1000000e: not inside one carveout"
        );
        assert!(m.write(0x0fff_fffe, &[0; 4]).is_err());
        assert!(m.read(0xffff_fffe, &mut b).is_err());
        assert_eq!(m.snapshot()[4..8], [1, 2, 3, 4]);
    }
}
