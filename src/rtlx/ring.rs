//! One RTLX channel (`struct rtlx_channel`, 36 bytes) and its two rings, with the kernel's
//! index arithmetic (`rtlx.c`: `write_spacefree`, `rtlx_read_poll`, `rtlx_read`,
//! `rtlx_write`).
//!
//! Linux writes `rt_buffer` and `rt_write` and reads `lx_buffer`/`lx_write`; the SP does the
//! reverse. The kernel trusted every field (an index beyond `buffer_size` made it copy outside
//! the buffer); here a channel is first [`Channel::check`]ed: buffer inside one carveout,
//! `buffer_size` > 0, indices below it. For such a channel the arithmetic below is exactly the
//! kernel's (the tests compare it with a C-semantics transcription for every index pair).

use crate::elf::Endian;
use crate::error::{Error, Result};
use crate::spmem::{Carveouts, SpMemory};

use super::EIO;

/// Size of `struct rtlx_channel`.
pub const CHANNEL_SIZE: u32 = 36;
// Field offsets in `struct rtlx_channel` (asm/rtlx.h).
pub const RT_STATE: u32 = 0;
pub const LX_STATE: u32 = 4;
pub const BUFFER_SIZE: u32 = 8;
pub const RT_WRITE: u32 = 12;
pub const RT_READ: u32 = 16;
pub const RT_BUFFER: u32 = 20;
pub const LX_WRITE: u32 = 24;
pub const LX_READ: u32 = 28;
pub const LX_BUFFER: u32 = 32;

/// The fields of one channel as the SP left them (raw words, nothing checked).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Channel {
    pub rt_state: u32,
    pub lx_state: u32,
    pub buffer_size: u32,
    pub rt_write: u32,
    pub rt_read: u32,
    pub rt_buffer: u32,
    pub lx_write: u32,
    pub lx_read: u32,
    pub lx_buffer: u32,
}

/// Which ring: `rt` carries AP → SP bytes, `lx` SP → AP.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Rt,
    Lx,
}

impl Side {
    fn name(self) -> &'static str {
        match self {
            Side::Rt => "rt",
            Side::Lx => "lx",
        }
    }
}

/// A checked ring: the buffer lies inside one carveout and both indices are below `size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ring {
    pub buffer: u32,
    pub size: u32,
    pub read: u32,
    pub write: u32,
}

impl Ring {
    /// Bytes the reader may take: `(write + size - read) % size` (`rtlx_read_poll`).
    pub fn available(&self) -> u32 {
        ((u64::from(self.write) + u64::from(self.size) - u64::from(self.read))
            % u64::from(self.size)) as u32
    }

    /// Bytes the writer may add: the ring is never filled completely, so that equal indices
    /// mean empty (`write_spacefree`).
    pub fn free(&self) -> u32 {
        if self.read == self.write {
            return self.size - 1;
        }
        (((u64::from(self.read) + u64::from(self.size) - u64::from(self.write))
            % u64::from(self.size))
            - 1) as u32
    }

    /// The one or two `(da, len)` spans a copy of `count` bytes starting at index `at` covers:
    /// first up to the end of the buffer, then from its start (`fl` in rtlx.c).
    pub fn spans(&self, at: u32, count: u32) -> [(u32, u32); 2] {
        let first = count.min(self.size - at);
        [(self.buffer + at, first), (self.buffer, count - first)]
    }

    /// `(index + count) % size`.
    pub fn advance(&self, index: u32, count: u32) -> u32 {
        ((u64::from(index) + u64::from(count)) % u64::from(self.size)) as u32
    }
}

/// Where a channel is, for reading and writing it and for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Site {
    /// Channel number (the minor of `/dev/rtlxN`).
    pub index: usize,
    /// SP address of the `rtlx_info` it belongs to.
    pub info: u32,
    /// SP address of the channel itself.
    pub addr: u32,
}

impl Site {
    fn refuse(&self, what: String) -> Error {
        Error::Rtlx {
            message: format!(
                "rtlx channel {} (rtlx_info at {:#010x}, channel at {:#010x}): {what}",
                self.index, self.info, self.addr
            ),
            errno: EIO,
        }
    }

    fn word(&self, mem: &dyn SpMemory, field: u32, e: Endian) -> Result<u32> {
        let mut b = [0u8; 4];
        mem.read(self.addr.wrapping_add(field), &mut b)?;
        Ok(e.read_u32(b))
    }

    fn set_word(&self, mem: &dyn SpMemory, field: u32, v: u32, e: Endian) -> Result<()> {
        mem.write(self.addr.wrapping_add(field), &e.u32_bytes(v))
    }

    /// Read the whole channel.
    pub fn load(&self, mem: &dyn SpMemory, e: Endian) -> Result<Channel> {
        let mut b = [0u8; CHANNEL_SIZE as usize];
        mem.read(self.addr, &mut b)?;
        Ok(Channel::decode(&b, e))
    }

    /// Write `lx_state` (rtlx_open sets OPENED, rtlx_release UNUSED).
    pub fn set_lx_state(&self, mem: &dyn SpMemory, state: u32, e: Endian) -> Result<()> {
        self.set_word(mem, LX_STATE, state, e)
    }

    /// Take up to `max` bytes from the SP → AP ring (`rtlx_read`): `lx_write` is read once,
    /// the bytes are copied out, then `lx_read` is advanced. Returns no bytes when empty.
    pub fn take(
        &self,
        mem: &dyn SpMemory,
        carveouts: &Carveouts,
        max: usize,
        e: Endian,
    ) -> Result<Vec<u8>> {
        let ring = self.load(mem, e)?.check(self, Side::Lx, carveouts)?;
        let count = ring.available().min(clamp(max));
        let mut out = vec![0u8; count as usize];
        let [(a, n), (b, m)] = ring.spans(ring.read, count);
        mem.read(a, &mut out[..n as usize])?;
        mem.read(b, &mut out[n as usize..(n + m) as usize])?;
        self.set_word(mem, LX_READ, ring.advance(ring.read, count), e)?;
        Ok(out)
    }

    /// Put as much of `data` as fits into the AP → SP ring (`rtlx_write`): short when the
    /// ring is nearly full; bytes first, then `rt_write`.
    pub fn put(
        &self,
        mem: &dyn SpMemory,
        carveouts: &Carveouts,
        data: &[u8],
        e: Endian,
    ) -> Result<usize> {
        let ring = self.load(mem, e)?.check(self, Side::Rt, carveouts)?;
        let count = ring.free().min(clamp(data.len()));
        let [(a, n), (b, m)] = ring.spans(ring.write, count);
        mem.write(a, &data[..n as usize])?;
        mem.write(b, &data[n as usize..(n + m) as usize])?;
        self.set_word(mem, RT_WRITE, ring.advance(ring.write, count), e)?;
        Ok(count as usize)
    }

    /// `rtlx_read_poll(.., 0)` and `rtlx_write_poll`: bytes readable, bytes writable.
    pub fn poll(&self, mem: &dyn SpMemory, carveouts: &Carveouts, e: Endian) -> Result<(u32, u32)> {
        let ch = self.load(mem, e)?;
        let lx = ch.check(self, Side::Lx, carveouts)?;
        let rt = ch.check(self, Side::Rt, carveouts)?;
        Ok((lx.available(), rt.free()))
    }

    /// Only `lx_read` is read back (for tests and status); unchecked.
    pub fn lx_read(&self, mem: &dyn SpMemory, e: Endian) -> Result<u32> {
        self.word(mem, LX_READ, e)
    }
}

/// A request length as a ring count (a ring is never larger than 2^31).
fn clamp(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Channel {
    pub fn decode(b: &[u8; CHANNEL_SIZE as usize], e: Endian) -> Channel {
        let w = |off: u32| {
            let o = off as usize;
            e.read_u32([b[o], b[o + 1], b[o + 2], b[o + 3]])
        };
        Channel {
            rt_state: w(RT_STATE),
            lx_state: w(LX_STATE),
            buffer_size: w(BUFFER_SIZE),
            rt_write: w(RT_WRITE),
            rt_read: w(RT_READ),
            rt_buffer: w(RT_BUFFER),
            lx_write: w(LX_WRITE),
            lx_read: w(LX_READ),
            lx_buffer: w(LX_BUFFER),
        }
    }

    pub fn encode(&self, e: Endian) -> [u8; CHANNEL_SIZE as usize] {
        let mut b = [0u8; CHANNEL_SIZE as usize];
        for (off, v) in [
            (RT_STATE, self.rt_state),
            (LX_STATE, self.lx_state),
            (BUFFER_SIZE, self.buffer_size),
            (RT_WRITE, self.rt_write),
            (RT_READ, self.rt_read),
            (RT_BUFFER, self.rt_buffer),
            (LX_WRITE, self.lx_write),
            (LX_READ, self.lx_read),
            (LX_BUFFER, self.lx_buffer),
        ] {
            b[off as usize..off as usize + 4].copy_from_slice(&e.u32_bytes(v));
        }
        b
    }

    /// Every word zero: a channel the SP never set up.
    pub fn is_blank(&self) -> bool {
        *self == Channel::default()
    }

    /// The ring of `side`, checked: `buffer_size` > 0 and at most 2^31 - 1 (an `int` in the
    /// kernel), the buffer inside one carveout, both indices below `buffer_size`. The error
    /// names the channel, the field and the address.
    pub fn check(&self, site: &Site, side: Side, carveouts: &Carveouts) -> Result<Ring> {
        let (buffer, read, write) = match side {
            Side::Rt => (self.rt_buffer, self.rt_read, self.rt_write),
            Side::Lx => (self.lx_buffer, self.lx_read, self.lx_write),
        };
        let size = self.buffer_size;
        let s = side.name();
        if size == 0 || size > i32::MAX as u32 {
            return Err(site.refuse(format!(
                "buffer_size {size:#x} is not a ring size (1..=0x7fffffff)"
            )));
        }
        if carveouts.place(buffer, size as usize).is_err() {
            let what = match carveouts.region_at(buffer) {
                Some(r) => format!(
                    "{s}_buffer {buffer:#010x} + buffer_size {size:#x} runs past carveout {} (ends {:#010x})",
                    r.name,
                    u64::from(r.da) + u64::from(r.len)
                ),
                None => format!(
                    "{s}_buffer {buffer:#010x} is outside every carveout ({})",
                    carveouts.describe()
                ),
            };
            return Err(site.refuse(what));
        }
        for (name, v) in [("read", read), ("write", write)] {
            if v >= size {
                return Err(site.refuse(format!(
                    "{s}_{name} {v:#x} is not below buffer_size {size:#x}"
                )));
            }
        }
        Ok(Ring {
            buffer,
            size,
            read,
            write,
        })
    }
}

/// The kernel's arithmetic transcribed with C `int` semantics, for the tests: for checked
/// rings [`Ring`] must agree with it exactly.
#[cfg(test)]
pub(crate) mod kernel {
    /// `write_spacefree(int read, int write, int size)`.
    pub fn write_spacefree(read: i32, write: i32, size: i32) -> i32 {
        if read == write {
            return size - 1;
        }
        (read.wrapping_add(size).wrapping_sub(write)) % size - 1
    }

    /// `rtlx_read_poll`'s result (`int` fields, promoted to `size_t` in the newest kernels;
    /// the same for in-range values).
    pub fn available(read: i32, write: i32, size: i32) -> i32 {
        (write.wrapping_add(size).wrapping_sub(read)) % size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spmem::{Region, VecMemory};

    #[test]
    fn arithmetic_matches_the_kernel_for_every_index_pair() {
        for size in 1..=9u32 {
            for read in 0..size {
                for write in 0..size {
                    let r = Ring {
                        buffer: 0,
                        size,
                        read,
                        write,
                    };
                    let (ri, wi, si) = (read as i32, write as i32, size as i32);
                    assert_eq!(r.available() as i32, kernel::available(ri, wi, si));
                    assert_eq!(r.free() as i32, kernel::write_spacefree(ri, wi, si));
                    // The invariant the kernel's comment states: never completely full.
                    assert_eq!(r.available() + r.free(), size - 1);
                }
            }
        }
    }

    #[test]
    fn large_sizes_do_not_overflow() {
        let r = Ring {
            buffer: 0,
            size: 0x7fff_ffff,
            read: 0x7fff_fffe,
            write: 3,
        };
        assert_eq!(r.available(), 4);
        assert_eq!(r.free(), 0x7fff_fffe - 4);
    }

    #[test]
    fn spans_wrap_at_the_end_of_the_buffer() {
        let r = Ring {
            buffer: 0x1000,
            size: 16,
            read: 0,
            write: 0,
        };
        assert_eq!(r.spans(12, 6), [(0x100c, 4), (0x1000, 2)]);
        assert_eq!(r.spans(0, 15), [(0x1000, 15), (0x1000, 0)]);
        assert_eq!(r.advance(12, 6), 2);
    }

    fn mem() -> (VecMemory, Carveouts) {
        let c = Carveouts::new(vec![Region {
            name: "sp".into(),
            da: 0x1000_0000,
            len: 0x1000,
            pa: 0,
        }]);
        (VecMemory::new(c.clone()), c)
    }

    const SITE: Site = Site {
        index: 1,
        info: 0x1000_0000,
        addr: 0x1000_0008 + 36,
    };

    fn chan(size: u32) -> Channel {
        Channel {
            rt_state: 1,
            buffer_size: size,
            rt_buffer: 0x1000_0400,
            lx_buffer: 0x1000_0800,
            ..Default::default()
        }
    }

    #[test]
    fn put_then_take_through_memory_in_both_byte_orders() {
        for e in [Endian::Big, Endian::Little] {
            let (m, c) = mem();
            let mut ch = chan(8);
            ch.rt_read = 5;
            ch.rt_write = 5;
            m.write(SITE.addr, &ch.encode(e)).unwrap();
            // 7 bytes fit (never full), wrapping after 3.
            assert_eq!(SITE.put(&m, &c, b"abcdefghij", e).unwrap(), 7);
            let mut buf = [0u8; 8];
            m.read(0x1000_0400, &mut buf).unwrap();
            assert_eq!(&buf, b"defg\0abc");
            assert_eq!(SITE.load(&m, e).unwrap().rt_write, 4);
            assert_eq!(SITE.put(&m, &c, b"x", e).unwrap(), 0);

            // The SP wrote "hello" at lx index 6 (wrapping).
            m.write(0x1000_0806, b"he").unwrap();
            m.write(0x1000_0800, b"llo").unwrap();
            let mut ch = SITE.load(&m, e).unwrap();
            ch.lx_read = 6;
            ch.lx_write = 3;
            m.write(SITE.addr, &ch.encode(e)).unwrap();
            assert_eq!(SITE.poll(&m, &c, e).unwrap(), (5, 0));
            assert_eq!(SITE.take(&m, &c, 2, e).unwrap(), b"he");
            assert_eq!(SITE.take(&m, &c, 100, e).unwrap(), b"llo");
            assert_eq!(SITE.take(&m, &c, 100, e).unwrap(), b"");
            assert_eq!(SITE.lx_read(&m, e).unwrap(), 3);
        }
    }

    fn refused(ch: Channel, side: Side) -> String {
        let (_, c) = mem();
        ch.check(&SITE, side, &c).unwrap_err().to_string()
    }

    #[test]
    fn hostile_channels_are_refused_naming_channel_field_and_address() {
        let pre = "rtlx channel 1 (rtlx_info at 0x10000000, channel at 0x1000002c): ";
        assert_eq!(
            refused(chan(0), Side::Rt),
            format!("{pre}buffer_size 0x0 is not a ring size (1..=0x7fffffff)")
        );
        assert!(refused(chan(0x8000_0000), Side::Lx).contains("buffer_size 0x80000000"));
        assert_eq!(
            refused(chan(0x900), Side::Lx),
            format!("{pre}lx_buffer 0x10000800 + buffer_size 0x900 runs past carveout sp (ends 0x10001000)")
        );
        let mut ch = chan(16);
        ch.rt_buffer = 0x2000_0000;
        assert_eq!(
            refused(ch, Side::Rt),
            format!(
                "{pre}rt_buffer 0x20000000 is outside every carveout (sp 0x10000000..0x10001000)"
            )
        );
        let mut ch = chan(16);
        ch.lx_write = 16;
        assert_eq!(
            refused(ch, Side::Lx),
            format!("{pre}lx_write 0x10 is not below buffer_size 0x10")
        );
        let mut ch = chan(16);
        ch.rt_read = 0xffff_ffff;
        assert!(refused(ch, Side::Rt).contains("rt_read 0xffffffff is not below"));
    }

    #[test]
    fn a_hostile_index_touches_no_memory() {
        let e = Endian::Big;
        let (m, c) = mem();
        let mut ch = chan(16);
        ch.rt_write = 0x4000;
        m.write(SITE.addr, &ch.encode(e)).unwrap();
        let before = SITE.load(&m, e).unwrap();
        let err = SITE.put(&m, &c, b"data", e).unwrap_err();
        assert_eq!(err.errno(), EIO);
        assert_eq!(SITE.load(&m, e).unwrap(), before);
        let mut buf = [0u8; 16];
        m.read(0x1000_0400, &mut buf).unwrap();
        assert_eq!(buf, [0; 16]);
    }

    /// VecMemory that counts accesses it had to refuse.
    struct Counting {
        mem: VecMemory,
        refused: std::cell::Cell<usize>,
    }

    impl SpMemory for Counting {
        fn read(&self, da: u32, buf: &mut [u8]) -> Result<()> {
            self.mem
                .read(da, buf)
                .inspect_err(|_| self.refused.set(self.refused.get() + 1))
        }
        fn write(&self, da: u32, buf: &[u8]) -> Result<()> {
            self.mem
                .write(da, buf)
                .inspect_err(|_| self.refused.set(self.refused.get() + 1))
        }
    }

    /// xorshift32: deterministic, no dependency.
    fn next(x: &mut u32) -> u32 {
        *x ^= *x << 13;
        *x ^= *x >> 17;
        *x ^= *x << 5;
        *x
    }

    #[test]
    fn random_channels_never_reach_outside_the_carveouts() {
        let (m, c) = mem();
        let m = Counting {
            mem: m,
            refused: std::cell::Cell::new(0),
        };
        let mut x = 0x1234_5678u32;
        // Values near the interesting edges: small, ring-sized, carveout edges, huge.
        let pick = |x: &mut u32| match next(x) % 6 {
            0 => next(x) % 40,
            1 => 0x1000_0000 + next(x) % 0x1100,
            2 => 0x1000_1000 - next(x) % 64,
            3 => next(x),
            4 => 0xffff_ffff - next(x) % 16,
            _ => 0x7fff_ffff + next(x) % 3,
        };
        for round in 0..20_000 {
            let ch = Channel {
                rt_state: pick(&mut x),
                lx_state: pick(&mut x),
                buffer_size: pick(&mut x),
                rt_write: pick(&mut x),
                rt_read: pick(&mut x),
                rt_buffer: pick(&mut x),
                lx_write: pick(&mut x),
                lx_read: pick(&mut x),
                lx_buffer: pick(&mut x),
            };
            let e = if round % 2 == 0 {
                Endian::Big
            } else {
                Endian::Little
            };
            m.mem.write(SITE.addr, &ch.encode(e)).unwrap();
            let _ = SITE.poll(&m, &c, e);
            let _ = SITE.put(&m, &c, b"0123456789abcdefghijklmnopqrstuvwxyz", e);
            let _ = SITE.take(&m, &c, 1 + (next(&mut x) % 100) as usize, e);
            assert_eq!(m.refused.get(), 0, "round {round}: {ch:?}");
        }
    }
}
