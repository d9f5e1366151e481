//! A bounds-checked, endian-aware view over ELF32 bytes.
//!
//! Why not goblin: the legacy loader and the remoteproc core each read headers in their own
//! order and report their own messages; a parser that validates everything up front would
//! reject inputs before we can say what the kernel would have said. Every accessor here checks
//! its range and reports the file offset it failed at. goblin is used in tests as an
//! independent cross-check.

use super::*;
use crate::error::{Error, Result};

/// Read `N` bytes at `off`, or a `Malformed` error naming `what`.
pub fn bytes_at<const N: usize>(data: &[u8], off: u64, what: &str) -> Result<[u8; N]> {
    let start = usize::try_from(off).ok();
    let slice = start
        .and_then(|s| s.checked_add(N).map(|e| (s, e)))
        .and_then(|(s, e)| data.get(s..e));
    match slice {
        Some(s) => Ok(s.try_into().expect("length checked")),
        None => Err(Error::Malformed {
            what: format!(
                "{what} ({N} bytes) lies past the end of the {}-byte file",
                data.len()
            ),
            at: off,
        }),
    }
}

/// A checked sub-slice `[off, off+len)`.
pub fn slice_at<'a>(data: &'a [u8], off: u64, len: u64, what: &str) -> Result<&'a [u8]> {
    let end = off.checked_add(len);
    match end {
        Some(end) if end <= data.len() as u64 => Ok(&data[off as usize..end as usize]),
        _ => Err(Error::Malformed {
            what: format!(
                "{what} ({len:#x} bytes) lies past the end of the {}-byte file",
                data.len()
            ),
            at: off,
        }),
    }
}

/// The ELF32 file header, decoded in the file's byte order. Only `e_ident` is validated by
/// [`Ehdr::parse`]; callers apply the rules of the loader they model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ehdr {
    pub class: u8,
    pub data: u8,
    pub ident_version: u8,
    pub endian: Endian,
    pub e_type: u16,
    pub e_machine: u16,
    pub e_version: u32,
    pub e_entry: u32,
    pub e_phoff: u32,
    pub e_shoff: u32,
    pub e_flags: u32,
    pub e_ehsize: u16,
    pub e_phentsize: u16,
    pub e_phnum: u16,
    pub e_shentsize: u16,
    pub e_shnum: u16,
    pub e_shstrndx: u16,
}

impl Ehdr {
    /// Decode the 52-byte header. Fails if the file is shorter than 52 bytes or `EI_DATA` is
    /// neither 1 nor 2 (no byte order to read it in). Magic and class are *not* checked.
    pub fn parse(data: &[u8]) -> Result<Ehdr> {
        let ident: [u8; 16] = bytes_at(data, 0, "ELF identification")?;
        let endian = Endian::from_ei_data(ident[EI_DATA]).ok_or_else(|| Error::Malformed {
            what: format!(
                "EI_DATA is {} (neither 1 little nor 2 big endian)",
                ident[EI_DATA]
            ),
            at: EI_DATA as u64,
        })?;
        let _: [u8; EHDR32_SIZE] = bytes_at(data, 0, "ELF32 header")?;
        let u16_at = |o: usize| endian.read_u16([data[o], data[o + 1]]);
        let u32_at = |o: usize| endian.read_u32([data[o], data[o + 1], data[o + 2], data[o + 3]]);
        Ok(Ehdr {
            class: ident[EI_CLASS],
            data: ident[EI_DATA],
            ident_version: ident[EI_VERSION],
            endian,
            e_type: u16_at(16),
            e_machine: u16_at(18),
            e_version: u32_at(20),
            e_entry: u32_at(24),
            e_phoff: u32_at(28),
            e_shoff: u32_at(32),
            e_flags: u32_at(36),
            e_ehsize: u16_at(40),
            e_phentsize: u16_at(42),
            e_phnum: u16_at(44),
            e_shentsize: u16_at(46),
            e_shnum: u16_at(48),
            e_shstrndx: u16_at(50),
        })
    }
}

/// An ELF32 program header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Phdr {
    pub p_type: u32,
    pub p_offset: u32,
    pub p_vaddr: u32,
    pub p_paddr: u32,
    pub p_filesz: u32,
    pub p_memsz: u32,
    pub p_flags: u32,
    pub p_align: u32,
}

/// An ELF32 section header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shdr {
    pub sh_name: u32,
    pub sh_type: u32,
    pub sh_flags: u32,
    pub sh_addr: u32,
    pub sh_offset: u32,
    pub sh_size: u32,
    pub sh_link: u32,
    pub sh_info: u32,
    pub sh_addralign: u32,
    pub sh_entsize: u32,
}

/// An ELF32 symbol.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sym {
    pub st_name: u32,
    pub st_value: u32,
    pub st_size: u32,
    pub st_info: u8,
    pub st_other: u8,
    pub st_shndx: u16,
}

impl Sym {
    pub fn bind(&self) -> u8 {
        self.st_info >> 4
    }
    pub fn typ(&self) -> u8 {
        self.st_info & 0xf
    }
}

/// Bounds-checked reader bound to one file and its byte order.
#[derive(Clone, Copy)]
pub struct Reader<'a> {
    pub data: &'a [u8],
    pub endian: Endian,
}

impl<'a> Reader<'a> {
    pub fn new(data: &'a [u8], endian: Endian) -> Self {
        Reader { data, endian }
    }

    pub fn u8(&self, off: u64, what: &str) -> Result<u8> {
        Ok(bytes_at::<1>(self.data, off, what)?[0])
    }
    pub fn u16(&self, off: u64, what: &str) -> Result<u16> {
        Ok(self.endian.read_u16(bytes_at(self.data, off, what)?))
    }
    pub fn u32(&self, off: u64, what: &str) -> Result<u32> {
        Ok(self.endian.read_u32(bytes_at(self.data, off, what)?))
    }

    /// [`bytes_at`], naming the bytes only if they are missing (table entries are read by
    /// the million; formatting a name for each would dominate).
    fn array<const N: usize>(&self, off: u64, what: impl FnOnce() -> String) -> Result<[u8; N]> {
        match bytes_at(self.data, off, "") {
            Ok(b) => Ok(b),
            Err(_) => bytes_at(self.data, off, &what()),
        }
    }

    /// Program header `i` of a table at `phoff` (32-byte stride).
    pub fn phdr(&self, phoff: u32, i: usize) -> Result<Phdr> {
        let base = u64::from(phoff) + (i as u64) * PHDR32_SIZE as u64;
        let b: [u8; PHDR32_SIZE] = self.array(base, || format!("program header #{i}"))?;
        let w = |k: usize| self.endian.read_u32([b[k], b[k + 1], b[k + 2], b[k + 3]]);
        Ok(Phdr {
            p_type: w(0),
            p_offset: w(4),
            p_vaddr: w(8),
            p_paddr: w(12),
            p_filesz: w(16),
            p_memsz: w(20),
            p_flags: w(24),
            p_align: w(28),
        })
    }

    /// Section header `i` of a table at `shoff` (40-byte stride).
    pub fn shdr(&self, shoff: u32, i: usize) -> Result<Shdr> {
        let base = u64::from(shoff) + (i as u64) * SHDR32_SIZE as u64;
        let b: [u8; SHDR32_SIZE] = self.array(base, || format!("section header [{i}]"))?;
        let w = |k: usize| self.endian.read_u32([b[k], b[k + 1], b[k + 2], b[k + 3]]);
        Ok(Shdr {
            sh_name: w(0),
            sh_type: w(4),
            sh_flags: w(8),
            sh_addr: w(12),
            sh_offset: w(16),
            sh_size: w(20),
            sh_link: w(24),
            sh_info: w(28),
            sh_addralign: w(32),
            sh_entsize: w(36),
        })
    }

    /// Symbol `i` of a symbol table whose contents start at `off` (16-byte stride).
    pub fn sym(&self, off: u32, i: usize) -> Result<Sym> {
        let base = u64::from(off) + (i as u64) * SYM32_SIZE as u64;
        let b: [u8; SYM32_SIZE] = self.array(base, || format!("symbol #{i}"))?;
        let w = |k: usize| self.endian.read_u32([b[k], b[k + 1], b[k + 2], b[k + 3]]);
        Ok(Sym {
            st_name: w(0),
            st_value: w(4),
            st_size: w(8),
            st_info: b[12],
            st_other: b[13],
            st_shndx: self.endian.read_u16([b[14], b[15]]),
        })
    }

    /// NUL-terminated string at `strtab_off + idx`, bounded by the string table's size.
    /// Invalid UTF-8 is replaced (names are only ever shown or compared as ASCII).
    pub fn str_in(
        &self,
        strtab_off: u32,
        strtab_size: u32,
        idx: u32,
        what: &str,
    ) -> Result<String> {
        self.str_in_with(strtab_off, strtab_size, idx, || what.to_string())
    }

    /// [`Reader::str_in`] with the "what" of an error built only on error (symbol tables call
    /// this once per symbol).
    pub fn str_in_with(
        &self,
        strtab_off: u32,
        strtab_size: u32,
        idx: u32,
        what: impl FnOnce() -> String,
    ) -> Result<String> {
        if idx >= strtab_size {
            return Err(Error::Malformed {
                what: format!(
                    "{}: name offset {idx:#x} is outside the string table ({strtab_size:#x} bytes)",
                    what()
                ),
                at: u64::from(strtab_off),
            });
        }
        let table = slice_at(
            self.data,
            u64::from(strtab_off),
            u64::from(strtab_size),
            "string table",
        )?;
        let rest = &table[idx as usize..];
        match rest.iter().position(|&c| c == 0) {
            Some(n) => Ok(printable_name(&rest[..n])),
            None => Err(Error::Malformed {
                what: format!(
                    "{}: name at offset {idx:#x} is not NUL-terminated inside the string table",
                    what()
                ),
                at: u64::from(strtab_off) + u64::from(idx),
            }),
        }
    }
}

/// General categories Cf (format: soft hyphen, zero-width and bidirectional controls, BOM,
/// tags, ...), Zl and Zp (U+2028, U+2029), as inclusive ranges: invisible, or they move or
/// split text on a terminal or for a reader splitting lines. From UnicodeData 14.0 (this
/// machine's Python and Perl), plus U+13439..U+1343F, Cf since 15.0. `char::is_control`
/// covers Cc.
const INVISIBLE: &[(u32, u32)] = &[
    (0x00ad, 0x00ad),
    (0x0600, 0x0605),
    (0x061c, 0x061c),
    (0x06dd, 0x06dd),
    (0x070f, 0x070f),
    (0x0890, 0x0891),
    (0x08e2, 0x08e2),
    (0x180e, 0x180e),
    (0x200b, 0x200f),
    (0x2028, 0x202e),
    (0x2060, 0x2064),
    (0x2066, 0x206f),
    (0xfeff, 0xfeff),
    (0xfff9, 0xfffb),
    (0x110bd, 0x110bd),
    (0x110cd, 0x110cd),
    (0x13430, 0x1343f),
    (0x1bca0, 0x1bca3),
    (0x1d173, 0x1d17a),
    (0xe0001, 0xe0001),
    (0xe0020, 0xe007f),
];

/// A character that must not be printed as itself in a message or a status line: a control
/// character (Cc) or one of Cf, Zl, Zp ([`INVISIBLE`]).
pub fn is_unprintable(c: char) -> bool {
    if c.is_control() {
        return true;
    }
    let cp = c as u32;
    cp >= 0xad
        && INVISIBLE
            .binary_search_by(|&(lo, hi)| {
                if hi < cp {
                    std::cmp::Ordering::Less
                } else if lo > cp {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok()
}

/// A name taken from a file, made safe to print: invalid UTF-8 becomes U+FFFD; control
/// characters (newlines, escapes, ...), format characters (bidi controls, zero-width ones)
/// and the line/paragraph separators become `\xNN` / `\u{NNNN}` ([`is_unprintable`]), so a
/// crafted symbol or section name can never split an error into several lines, forge a
/// `status` line, reverse text on a terminal or send terminal escapes. Names the tools look
/// for (`__start`, `.resource_table`, ...) have none.
pub fn printable_name(bytes: &[u8]) -> String {
    // Nearly every name is printable ASCII: one pass over the bytes, no UTF-8 decoding.
    if bytes.iter().all(|&b| (0x20..0x7f).contains(&b)) {
        if let Ok(s) = std::str::from_utf8(bytes) {
            return s.to_owned();
        }
    }
    let s = String::from_utf8_lossy(bytes);
    if !s.chars().any(is_unprintable) {
        return s.into_owned();
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if !is_unprintable(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            out.push_str(&format!("\\x{:02x}", c as u32));
        } else {
            out.push_str(&format!("\\u{{{:04x}}}", c as u32));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::printable_name;

    #[test]
    fn names_are_printable_on_one_line() {
        assert_eq!(printable_name(b"__start"), "__start");
        assert_eq!(printable_name(b""), "");
        assert_eq!(printable_name(b"a\nb"), "a\\x0ab");
        assert_eq!(printable_name(b"\x1b[2J"), "\\x1b[2J");
        assert_eq!(printable_name(b"del\x7f"), "del\\x7f");
        // Invalid UTF-8 becomes U+FFFD; C1 controls are escaped too.
        assert_eq!(printable_name(b"x\xffy"), "x\u{fffd}y");
        assert_eq!(printable_name("next\u{85}line".as_bytes()), "next\\x85line");
        assert_eq!(printable_name("café".as_bytes()), "café");
        // Line and paragraph separators, bidi controls, zero-width and other Cf characters.
        for (c, esc) in [
            ('\u{2028}', "\\u{2028}"),
            ('\u{2029}', "\\u{2029}"),
            ('\u{202a}', "\\u{202a}"),
            ('\u{202e}', "\\u{202e}"),
            ('\u{2066}', "\\u{2066}"),
            ('\u{2069}', "\\u{2069}"),
            ('\u{200b}', "\\u{200b}"),
            ('\u{200f}', "\\u{200f}"),
            ('\u{feff}', "\\u{feff}"),
            ('\u{ad}', "\\xad"),
            ('\u{61c}', "\\u{061c}"),
            ('\u{e0041}', "\\u{e0041}"),
        ] {
            let name = format!("a{c}b");
            assert_eq!(printable_name(name.as_bytes()), format!("a{esc}b"), "{c:?}");
        }
        // Their neighbours stay as they are.
        for c in [
            '\u{ac}', '\u{2027}', '\u{2030}', '\u{2065}', '\u{fefe}', 'é', '中',
        ] {
            let name = format!("a{c}b");
            assert_eq!(printable_name(name.as_bytes()), name, "{c:?}");
        }
    }

    #[test]
    fn the_invisible_table_is_sorted_and_disjoint() {
        for w in super::INVISIBLE.windows(2) {
            assert!(w[0].0 <= w[0].1 && w[0].1 < w[1].0, "{w:x?}");
        }
    }
}
