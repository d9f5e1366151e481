//! A small ELF32 writer in the shape of gimli-rs/object's: the caller first *reserves* every
//! file range (so every offset is known before a byte is written, and headers can point
//! forward), then *writes* the ranges in the same order. The byte order is a runtime value
//! (from `EI_DATA` of the input); nothing here uses the host's order.
//!
//! Owned by the firmware writer; see `rproc::firmware`.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};

use super::read::{Ehdr, Phdr, Shdr, Sym};
use super::*;
use crate::error::{Error, Result};

/// ELF32 offsets and sizes are `u32`.
const MAX_FILE: u64 = u32::MAX as u64;

fn internal(message: String) -> Error {
    Error::Convert {
        message: format!("internal error in the ELF writer: {message}"),
    }
}

/// `v` rounded up to a multiple of `align` (a power of two; 0 and 1 mean "no alignment").
pub fn align_up(v: u64, align: u64) -> Option<u64> {
    if align <= 1 {
        return Some(v);
    }
    let m = align - 1;
    v.checked_add(m).map(|x| x & !m)
}

/// The 52-byte file header. `EI_DATA` comes from `h.endian`; `class`, `data` and
/// `ident_version` of `h` are not consulted (always ELFCLASS32 / `h.endian` / EV_CURRENT).
pub fn ehdr_bytes(h: &Ehdr) -> [u8; EHDR32_SIZE] {
    let e = h.endian;
    let mut b = [0u8; EHDR32_SIZE];
    b[..4].copy_from_slice(ELFMAG);
    b[EI_CLASS] = ELFCLASS32;
    b[EI_DATA] = e.ei_data();
    b[EI_VERSION] = EV_CURRENT;
    // EI_OSABI, EI_ABIVERSION and the padding stay 0 (ELFOSABI_NONE).
    b[16..18].copy_from_slice(&e.u16_bytes(h.e_type));
    b[18..20].copy_from_slice(&e.u16_bytes(h.e_machine));
    b[20..24].copy_from_slice(&e.u32_bytes(h.e_version));
    b[24..28].copy_from_slice(&e.u32_bytes(h.e_entry));
    b[28..32].copy_from_slice(&e.u32_bytes(h.e_phoff));
    b[32..36].copy_from_slice(&e.u32_bytes(h.e_shoff));
    b[36..40].copy_from_slice(&e.u32_bytes(h.e_flags));
    b[40..42].copy_from_slice(&e.u16_bytes(h.e_ehsize));
    b[42..44].copy_from_slice(&e.u16_bytes(h.e_phentsize));
    b[44..46].copy_from_slice(&e.u16_bytes(h.e_phnum));
    b[46..48].copy_from_slice(&e.u16_bytes(h.e_shentsize));
    b[48..50].copy_from_slice(&e.u16_bytes(h.e_shnum));
    b[50..52].copy_from_slice(&e.u16_bytes(h.e_shstrndx));
    b
}

fn words<const N: usize>(e: Endian, ws: &[u32]) -> [u8; N] {
    let mut b = [0u8; N];
    for (chunk, w) in b.chunks_exact_mut(4).zip(ws) {
        chunk.copy_from_slice(&e.u32_bytes(*w));
    }
    b
}

/// One 32-byte program header.
pub fn phdr_bytes(e: Endian, p: &Phdr) -> [u8; PHDR32_SIZE] {
    words(
        e,
        &[
            p.p_type, p.p_offset, p.p_vaddr, p.p_paddr, p.p_filesz, p.p_memsz, p.p_flags, p.p_align,
        ],
    )
}

/// One 40-byte section header.
pub fn shdr_bytes(e: Endian, s: &Shdr) -> [u8; SHDR32_SIZE] {
    words(
        e,
        &[
            s.sh_name,
            s.sh_type,
            s.sh_flags,
            s.sh_addr,
            s.sh_offset,
            s.sh_size,
            s.sh_link,
            s.sh_info,
            s.sh_addralign,
            s.sh_entsize,
        ],
    )
}

/// One 16-byte symbol.
pub fn sym_bytes(e: Endian, s: &Sym) -> [u8; SYM32_SIZE] {
    let mut b = [0u8; SYM32_SIZE];
    b[0..4].copy_from_slice(&e.u32_bytes(s.st_name));
    b[4..8].copy_from_slice(&e.u32_bytes(s.st_value));
    b[8..12].copy_from_slice(&e.u32_bytes(s.st_size));
    b[12] = s.st_info;
    b[13] = s.st_other;
    b[14..16].copy_from_slice(&e.u16_bytes(s.st_shndx));
    b
}

/// A string table (`.strtab`, `.shstrtab`): starts with the empty string, equal strings share
/// one copy. Offsets depend only on the order of `add` calls (deterministic).
///
/// Strings are found again by a keyed (SipHash) 64-bit hash of their bytes, compared with the
/// copy already in the table: one hash per `add` and no allocation per string (a
/// `HashMap<String, _>` hashed twice and allocated a key for each of the 214 696 symbols of
/// the 64 MiB benchmark object). The key is random per process, so colliding names cannot be
/// chosen by an input; a collision only costs a comparison.
#[derive(Debug, Clone)]
pub struct StringTable {
    bytes: Vec<u8>,
    hasher: RandomState,
    /// Hash → offset of the first string with that hash.
    seen: HashMap<u64, u32, BuildHasherDefault<Prehashed>>,
    /// Later strings whose hash was already taken by a different string.
    collided: Vec<(u64, u32)>,
}

/// The map's keys are already hashes: pass them through.
#[derive(Debug, Default, Clone, Copy)]
struct Prehashed(u64);

impl Hasher for Prehashed {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used (u64 keys); fold anything else in anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

impl Default for StringTable {
    fn default() -> Self {
        StringTable {
            bytes: vec![0],
            hasher: RandomState::new(),
            seen: HashMap::default(),
            collided: Vec::new(),
        }
    }
}

impl StringTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// A table expecting about `strings` strings of `bytes` bytes in all (no rehashing while
    /// it fills).
    pub fn with_capacity(strings: usize, bytes: usize) -> Self {
        let mut t = Self::default();
        t.seen.reserve(strings);
        t.bytes.reserve(bytes);
        t
    }

    /// The NUL-terminated string at `off` equals `s`.
    fn holds(&self, off: u32, s: &[u8]) -> bool {
        let o = off as usize;
        self.bytes.get(o..o + s.len()) == Some(s) && self.bytes.get(o + s.len()) == Some(&0)
    }

    /// Offset of `s` (added if new). A name with an interior NUL is cut at the NUL, as every
    /// reader would see it.
    pub fn add(&mut self, s: &str) -> u32 {
        let s = s.split('\0').next().unwrap_or("").as_bytes();
        if s.is_empty() {
            return 0;
        }
        let h = self.hasher.hash_one(s);
        let first = self.seen.get(&h).copied();
        if let Some(off) = first {
            if self.holds(off, s) {
                return off;
            }
            if let Some(&(_, off)) = self
                .collided
                .iter()
                .find(|&&(ch, off)| ch == h && self.holds(off, s))
            {
                return off;
            }
        }
        // A string table larger than 4 GiB cannot be described anyway; the caller's size
        // check on the whole file catches it.
        let off = u32::try_from(self.bytes.len()).unwrap_or(u32::MAX);
        self.bytes.extend_from_slice(s);
        self.bytes.push(0);
        if first.is_some() {
            self.collided.push((h, off));
        } else {
            self.seen.insert(h, off);
        }
        off
    }

    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Reserve-then-write buffer. Reservations hand out increasing offsets; writes then land
/// anywhere inside the reserved bytes (unwritten bytes are zero), and [`Writer::finish`]
/// returns exactly the reserved length.
#[derive(Debug)]
pub struct Writer {
    endian: Endian,
    reserved: u64,
    buf: Vec<u8>,
}

impl Writer {
    pub fn new(endian: Endian) -> Self {
        Writer {
            endian,
            reserved: 0,
            buf: Vec::new(),
        }
    }

    pub fn endian(&self) -> Endian {
        self.endian
    }

    /// Bytes reserved so far (the file size if nothing else is reserved).
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    fn take(&mut self, off: u64, len: u64) -> Result<u64> {
        let end = off.checked_add(len).filter(|&e| e <= MAX_FILE).ok_or_else(|| Error::Convert {
            message: format!(
                "the firmware would be larger than 4 GiB ({off:#x} + {len:#x} bytes), which ELF32 cannot describe"
            ),
        })?;
        self.reserved = end;
        Ok(off)
    }

    /// Reserve `len` bytes at the next offset aligned to `align`; returns the offset.
    pub fn reserve(&mut self, len: u64, align: u64) -> Result<u64> {
        let off = align_up(self.reserved, align)
            .ok_or_else(|| internal(format!("offset overflow aligning {:#x}", self.reserved)))?;
        self.take(off, len)
    }

    /// Reserve `len` bytes at the next offset congruent to `addr` modulo `modulus` (a power
    /// of two): the ELF rule `p_offset ≡ p_vaddr (mod p_align)`.
    pub fn reserve_congruent(&mut self, len: u64, addr: u32, modulus: u64) -> Result<u64> {
        let m = modulus.max(1);
        let cur = self.reserved;
        let want = u64::from(addr) % m;
        let off = cur + (want + m - cur % m) % m;
        self.take(off, len)
    }

    /// Write `bytes` at `off`, inside the reserved bytes; everything not written reads as
    /// zero. The file is allocated once, zeroed, at the first write: every range is reserved
    /// before it, and a calloc'd buffer leaves the gaps (alignment padding, `.bss` made
    /// explicit) untouched instead of filling them byte by byte.
    pub fn write_at(&mut self, off: u64, bytes: &[u8]) -> Result<()> {
        let end = off + bytes.len() as u64;
        if end > self.reserved {
            return Err(internal(format!(
                "write [{off:#x}, {end:#x}) past the reserved {:#x} bytes",
                self.reserved
            )));
        }
        if self.buf.is_empty() {
            // `reserved` is at most 4 GiB (checked in `take`).
            self.buf = vec![0; self.reserved as usize];
        } else if (self.buf.len() as u64) < end {
            self.buf.resize(self.reserved as usize, 0);
        }
        self.buf[off as usize..end as usize].copy_from_slice(bytes);
        Ok(())
    }

    pub fn write_ehdr(&mut self, h: &Ehdr) -> Result<()> {
        let b = ehdr_bytes(&Ehdr {
            endian: self.endian,
            ..h.clone()
        });
        self.write_at(0, &b)
    }

    /// Write a table of program headers at `off`.
    pub fn write_phdrs(&mut self, off: u64, ps: &[Phdr]) -> Result<()> {
        let mut b = Vec::with_capacity(ps.len() * PHDR32_SIZE);
        for p in ps {
            b.extend_from_slice(&phdr_bytes(self.endian, p));
        }
        self.write_at(off, &b)
    }

    /// Write a table of section headers at `off`.
    pub fn write_shdrs(&mut self, off: u64, ss: &[Shdr]) -> Result<()> {
        let mut b = Vec::with_capacity(ss.len() * SHDR32_SIZE);
        for s in ss {
            b.extend_from_slice(&shdr_bytes(self.endian, s));
        }
        self.write_at(off, &b)
    }

    /// Write a symbol table at `off`.
    pub fn write_syms(&mut self, off: u64, syms: &[Sym]) -> Result<()> {
        let mut b = Vec::with_capacity(syms.len() * SYM32_SIZE);
        for s in syms {
            b.extend_from_slice(&sym_bytes(self.endian, s));
        }
        self.write_at(off, &b)
    }

    /// The file: everything written, zero-padded to the reserved length.
    pub fn finish(mut self) -> Vec<u8> {
        // `reserved` is at most 4 GiB (checked in `take`).
        self.buf.resize(self.reserved as usize, 0);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::elf::read::Reader;

    #[test]
    fn headers_round_trip_through_the_reader_in_both_orders() {
        for endian in [Endian::Little, Endian::Big] {
            let h = Ehdr {
                class: ELFCLASS32,
                data: endian.ei_data(),
                ident_version: EV_CURRENT,
                endian,
                e_type: ET_EXEC,
                e_machine: EM_MIPS,
                e_version: 1,
                e_entry: 0x1000_0400,
                e_phoff: 52,
                e_shoff: 0x1234,
                e_flags: 0x5000_1001,
                e_ehsize: 52,
                e_phentsize: 32,
                e_phnum: 1,
                e_shentsize: 40,
                e_shnum: 1,
                e_shstrndx: 0,
            };
            let p = Phdr {
                p_type: PT_LOAD,
                p_offset: 0x1000,
                p_vaddr: 0x1000_0000,
                p_paddr: 0x1000_0000,
                p_filesz: 0x10,
                p_memsz: 0x20,
                p_flags: PF_R | PF_W | PF_X,
                p_align: 0x1000,
            };
            let mut w = Writer::new(endian);
            assert_eq!(w.reserve(52, 1).unwrap(), 0);
            let phoff = w.reserve(32, 4).unwrap();
            assert_eq!(phoff, 52);
            let seg = w.reserve_congruent(0x10, 0x1000_0000, 0x1000).unwrap();
            assert_eq!(seg, 0x1000);
            w.write_ehdr(&h).unwrap();
            w.write_phdrs(phoff, &[p]).unwrap();
            w.write_at(seg, &[0xaa; 0x10]).unwrap();
            // Writing past the reservation is a bug in the caller, reported rather than
            // growing the file.
            assert!(w.write_at(0x1008, &[1; 9]).is_err());
            let bytes = w.finish();
            assert_eq!(bytes.len(), 0x1010);
            let back = Ehdr::parse(&bytes).unwrap();
            assert_eq!(back, h);
            assert_eq!(Reader::new(&bytes, endian).phdr(52, 0).unwrap(), p);
        }
    }

    #[test]
    fn congruent_reservation_and_string_table() {
        let mut w = Writer::new(Endian::Big);
        w.reserve(0x1801, 1).unwrap();
        // Next offset ≡ 0x234 (mod 0x1000) at or after 0x1801.
        assert_eq!(w.reserve_congruent(4, 0x8000_0234, 0x1000).unwrap(), 0x2234);
        let mut s = StringTable::new();
        assert_eq!(s.add(""), 0);
        assert_eq!(s.add(".text"), 1);
        assert_eq!(s.add(".data"), 7);
        assert_eq!(s.add(".text"), 1);
        assert_eq!(s.bytes(), b"\0.text\0.data\0");
        assert_eq!(s.add(".text\0junk"), 1);
    }

    /// Two different strings with the same hash each get their own copy (the per-process key
    /// makes this practically impossible to provoke, so the collision is planted).
    #[test]
    fn string_table_hash_collisions_keep_strings_apart() {
        let mut s = StringTable::with_capacity(4, 32);
        assert_eq!(s.add("a"), 1);
        let hb = s.hasher.hash_one(b"b".as_slice());
        s.seen.insert(hb, 1); // "b" now hashes to where "a" lives
        assert_eq!(s.add("b"), 3);
        assert_eq!(s.add("b"), 3);
        assert_eq!(s.add("a"), 1);
        let hc = s.hasher.hash_one(b"c".as_slice());
        s.seen.insert(hc, 1);
        s.collided.push((hc, 3)); // and "c" to both
        assert_eq!(s.add("c"), 5);
        assert_eq!(s.add("c"), 5);
        assert_eq!(s.bytes(), b"\0a\0b\0c\0");
    }
}
