//! The provenance note (`.note.vpe-migrate`): what a firmware was converted from and how.
//!
//! Standard ELF note layout (namesz, descsz, type in the ELF's byte order; name and desc each
//! padded to 4). The desc is UTF-8 `key=value` lines in a fixed order, so the note is
//! deterministic (no timestamps) and readable with `readelf -x .note.vpe-migrate`.

use serde::Serialize;

use crate::elf::Endian;
use crate::error::{Error, Result};

/// Note owner name (with its NUL, as `namesz` counts it).
pub const NOTE_NAME: &[u8] = b"vpe-migrate\0";
/// `n_type` of the provenance note.
pub const NT_VPE_PROVENANCE: u32 = 1;

/// How a firmware was produced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct Provenance {
    /// sha256 of the input file, lowercase hex.
    pub input_sha256: String,
    /// `ET_REL`, `ET_EXEC`, ...
    pub input_kind: String,
    /// Base the image was placed at.
    pub base: u32,
    /// Profile name (`mips-rproc`, `fixed`).
    pub profile: String,
    /// Relocation semantics (`strict`, `legacy`, `elf`).
    pub relocs: String,
    pub ntcs: u32,
    pub memsize: u32,
    pub trampoline: bool,
    /// e.g. `vpe-migrate 0.1.0`.
    pub tool: String,
    /// Further `key=value` lines after the fixed ones, in this order (e.g. the Lantiq loader
    /// settings or every field of a voice image's footer). Decoding puts every key it does
    /// not know here.
    pub extra: Vec<(String, String)>,
}

fn pad4(v: &mut Vec<u8>) {
    v.resize(v.len().div_ceil(4) * 4, 0);
}

fn malformed(what: String, at: usize) -> Error {
    Error::Malformed {
        what: format!("vpe-migrate note: {what}"),
        at: at as u64,
    }
}

impl Provenance {
    /// The desc text: one `key=value` line per field, in this fixed order.
    pub fn desc(&self) -> String {
        // Newlines would break the line format; values we write never contain them, and a
        // caller's stray newline is replaced rather than producing an undecodable note.
        let clean = |s: &str| s.replace(['\n', '\r'], " ");
        let mut out = format!(
            "tool={}\ninput_sha256={}\ninput_kind={}\nbase={:#010x}\nprofile={}\nrelocs={}\nntcs={}\nmemsize={:#x}\ntrampoline={}\n",
            clean(&self.tool),
            clean(&self.input_sha256),
            clean(&self.input_kind),
            self.base,
            clean(&self.profile),
            clean(&self.relocs),
            self.ntcs,
            self.memsize,
            self.trampoline
        );
        for (k, v) in &self.extra {
            out.push_str(&format!("{}={}\n", clean(k).replace('=', "_"), clean(v)));
        }
        out
    }
}

/// The note section's bytes.
pub fn encode(p: &Provenance, endian: Endian) -> Vec<u8> {
    let desc = p.desc();
    let mut out = Vec::new();
    out.extend_from_slice(&endian.u32_bytes(NOTE_NAME.len() as u32));
    // The desc is a few hundred bytes of our own text; it always fits a u32.
    out.extend_from_slice(&endian.u32_bytes(u32::try_from(desc.len()).unwrap_or(u32::MAX)));
    out.extend_from_slice(&endian.u32_bytes(NT_VPE_PROVENANCE));
    out.extend_from_slice(NOTE_NAME);
    pad4(&mut out);
    out.extend_from_slice(desc.as_bytes());
    pad4(&mut out);
    out
}

fn parse_u32(s: &str) -> Option<u32> {
    match s.strip_prefix("0x") {
        Some(h) => u32::from_str_radix(h, 16).ok(),
        None => s.parse().ok(),
    }
}

/// Find our note among the notes in `bytes` (a note section's contents) and decode it.
pub fn decode(bytes: &[u8], endian: Endian) -> Result<Provenance> {
    let mut off = 0usize;
    loop {
        let word = |at: usize| -> Result<u32> {
            at.checked_add(4)
                .and_then(|e| bytes.get(at..e))
                .map(|b| endian.read_u32([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| {
                    malformed(format!("no vpe-migrate note in {} bytes", bytes.len()), at)
                })
        };
        let namesz = word(off)? as usize;
        let descsz = word(off + 4)? as usize;
        let ntype = word(off + 8)?;
        let name_at = off + 12;
        let desc_at = name_at
            .checked_add(namesz.div_ceil(4) * 4)
            .ok_or_else(|| malformed("namesz overflows".into(), off))?;
        let next = desc_at
            .checked_add(descsz.div_ceil(4) * 4)
            .ok_or_else(|| malformed("descsz overflows".into(), off))?;
        let name = bytes
            .get(name_at..name_at.saturating_add(namesz))
            .ok_or_else(|| malformed(format!("name ({namesz} bytes) past the end"), name_at))?;
        if name == NOTE_NAME && ntype == NT_VPE_PROVENANCE {
            let desc = bytes
                .get(desc_at..desc_at.saturating_add(descsz))
                .ok_or_else(|| malformed(format!("desc ({descsz} bytes) past the end"), desc_at))?;
            return parse_desc(desc, desc_at);
        }
        off = next;
    }
}

fn parse_desc(desc: &[u8], at: usize) -> Result<Provenance> {
    let text =
        std::str::from_utf8(desc).map_err(|e| malformed(format!("desc is not UTF-8: {e}"), at))?;
    let mut p = Provenance::default();
    let mut seen = [false; 9];
    for line in text.lines() {
        let Some((k, raw)) = line.split_once('=') else {
            return Err(malformed(format!("line without '=': {line:?}"), at));
        };
        // Shown by inspect and verify: made printable like any name from a file.
        let printable = crate::elf::read::printable_name(raw.as_bytes());
        let v = printable.as_str();
        let num = |v: &str| {
            parse_u32(v).ok_or_else(|| malformed(format!("{k}: not a number: {v:?}"), at))
        };
        let i = match k {
            "tool" => {
                p.tool = v.into();
                0
            }
            "input_sha256" => {
                p.input_sha256 = v.into();
                1
            }
            "input_kind" => {
                p.input_kind = v.into();
                2
            }
            "base" => {
                p.base = num(v)?;
                3
            }
            "profile" => {
                p.profile = v.into();
                4
            }
            "relocs" => {
                p.relocs = v.into();
                5
            }
            "ntcs" => {
                p.ntcs = num(v)?;
                6
            }
            "memsize" => {
                p.memsize = num(v)?;
                7
            }
            "trampoline" => {
                p.trampoline = match v {
                    "true" => true,
                    "false" => false,
                    _ => return Err(malformed(format!("trampoline: {v:?}"), at)),
                };
                8
            }
            // Keys this version has no field for are kept in order.
            _ => {
                p.extra.push((
                    crate::elf::read::printable_name(k.as_bytes()),
                    v.to_string(),
                ));
                continue;
            }
        };
        seen[i] = true;
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        let keys = [
            "tool",
            "input_sha256",
            "input_kind",
            "base",
            "profile",
            "relocs",
            "ntcs",
            "memsize",
            "trampoline",
        ];
        return Err(malformed(format!("key {} missing", keys[i]), at));
    }
    Ok(p)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Provenance {
        Provenance {
            input_sha256: "ab".repeat(32),
            input_kind: "ET_REL".into(),
            base: 0x1000_0000,
            profile: "mips-rproc".into(),
            relocs: "strict".into(),
            ntcs: 1,
            memsize: 0x20_0000,
            trampoline: true,
            tool: "vpe-migrate 0.1.0".into(),
            extra: Vec::new(),
        }
    }

    #[test]
    fn extra_lines_round_trip_in_order() {
        let p = Provenance {
            extra: vec![
                ("voice_magic".into(), "0xcc123456".into()),
                ("kernel".into(), "lantiq".into()),
            ],
            ..sample()
        };
        let b = encode(&p, Endian::Big);
        assert_eq!(decode(&b, Endian::Big).unwrap(), p);
        assert!(p
            .desc()
            .ends_with("trampoline=true\nvoice_magic=0xcc123456\nkernel=lantiq\n"));
    }

    #[test]
    fn layout_and_round_trip() {
        let p = sample();
        for e in [Endian::Big, Endian::Little] {
            let b = encode(&p, e);
            assert_eq!(b.len() % 4, 0);
            assert_eq!(e.read_u32(b[0..4].try_into().unwrap()), 12);
            let descsz = e.read_u32(b[4..8].try_into().unwrap()) as usize;
            assert_eq!(e.read_u32(b[8..12].try_into().unwrap()), 1);
            assert_eq!(&b[12..24], b"vpe-migrate\0");
            let desc = std::str::from_utf8(&b[24..24 + descsz]).unwrap();
            assert!(desc.starts_with("tool=vpe-migrate 0.1.0\ninput_sha256=abab"));
            assert!(desc.contains("\nbase=0x10000000\n"));
            assert!(desc.ends_with("trampoline=true\n"));
            assert_eq!(decode(&b, e).unwrap(), p);
            assert_eq!(encode(&p, e), b, "deterministic");
        }
    }

    #[test]
    fn finds_our_note_after_another_and_rejects_garbage() {
        let e = Endian::Big;
        let mut b = Vec::new();
        // A GNU build-id style note first: namesz 4 "GNU\0", descsz 3, type 3.
        b.extend_from_slice(&e.u32_bytes(4));
        b.extend_from_slice(&e.u32_bytes(3));
        b.extend_from_slice(&e.u32_bytes(3));
        b.extend_from_slice(b"GNU\0\x01\x02\x03\0");
        b.extend_from_slice(&encode(&sample(), e));
        assert_eq!(decode(&b, e).unwrap(), sample());
        // Cut anywhere before the last desc byte (the padding is at most 3 bytes).
        for n in 0..b.len() - 4 {
            assert!(decode(&b[..n], e).is_err());
        }
        let mut huge = encode(&sample(), e);
        huge[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
        assert!(decode(&huge, e).is_err());
    }
}
