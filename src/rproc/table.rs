//! The remoteproc resource table (`include/linux/remoteproc.h`): types, and encode/decode in
//! a given byte order.
//!
//! The kernel reads the table with plain native loads (no `le32_to_cpu`), and
//! `rproc_elf_sanity_check` forces `EI_DATA` to equal the host order, so every field is
//! written in the ELF's byte order. [`ResourceTable::decode`] is lenient (for `inspect`); the
//! kernel's exact acceptance rules and messages live in `rproc::check`.

use serde::Serialize;

use crate::elf::Endian;
use crate::error::{Error, Result};

// Resource types (include/linux/remoteproc.h, enum fw_resource_type).
pub const RSC_CARVEOUT: u32 = 0;
pub const RSC_DEVMEM: u32 = 1;
pub const RSC_TRACE: u32 = 2;
pub const RSC_VDEV: u32 = 3;
pub const RSC_LAST: u32 = 4;
/// Vendor range, inclusive at both ends (`rproc_handle_resources`).
pub const RSC_VENDOR_START: u32 = 128;
pub const RSC_VENDOR_END: u32 = 512;
/// `FW_RSC_ADDR_ANY` is `(-1)` in the kernel header: all ones in a u32 field.
pub const FW_RSC_ADDR_ANY: u32 = 0xffff_ffff;

/// `struct resource_table` without the offset array: ver, num, `reserved[2]`.
pub const HEADER_SIZE: usize = 16;
/// `struct fw_rsc_hdr`: the type word in front of every entry.
pub const RSC_HDR_SIZE: usize = 4;
/// Size of the NUL-padded `name[32]` fields.
pub const NAME_LEN: usize = 32;
/// `struct fw_rsc_carveout` / `fw_rsc_devmem` body: da, pa, len, flags, reserved, `name[32]`.
pub const CARVEOUT_BODY: usize = 5 * 4 + NAME_LEN;
/// `struct fw_rsc_trace` body: da, len, reserved, `name[32]`.
pub const TRACE_BODY: usize = 3 * 4 + NAME_LEN;
/// `struct fw_rsc_vdev` body without vrings: id, notifyid, dfeatures, gfeatures, config_len,
/// status, num_of_vrings, `reserved[2]`.
pub const VDEV_BODY: usize = 5 * 4 + 1 + 1 + 2;
/// `struct fw_rsc_vdev_vring`: da, align, num, notifyid, pa (formerly reserved).
pub const VRING_SIZE: usize = 5 * 4;

/// Entry sizes including the type word, pinned against the kernel's packed structs.
pub const CARVEOUT_ENTRY: usize = RSC_HDR_SIZE + CARVEOUT_BODY;
pub const TRACE_ENTRY: usize = RSC_HDR_SIZE + TRACE_BODY;
pub const VDEV_ENTRY: usize = RSC_HDR_SIZE + VDEV_BODY;

const _: () = assert!(HEADER_SIZE == 16);
const _: () = assert!(CARVEOUT_ENTRY == 56);
const _: () = assert!(TRACE_ENTRY == 48);
const _: () = assert!(VDEV_ENTRY == 28);
const _: () = assert!(VRING_SIZE == 20);

/// Alignment of every entry written by [`ResourceTable::encode`]. The kernel only needs the
/// packed layout, but a MIPS firmware reading the table with `lw` needs 4, and 8 keeps u64
/// accesses safe too (spec §2.3).
pub const ENTRY_ALIGN: usize = 8;

/// `fw_rsc_carveout` / `fw_rsc_devmem` (identical layouts).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Carveout {
    pub da: u32,
    pub pa: u32,
    pub len: u32,
    pub flags: u32,
    pub reserved: u32,
    pub name: String,
}

/// `fw_rsc_vdev_vring`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Vring {
    pub da: u32,
    pub align: u32,
    pub num: u32,
    pub notifyid: u32,
    /// Called `reserved` (and required to be 0) by old kernels.
    pub pa: u32,
}

/// One resource entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Resource {
    Carveout(Carveout),
    Devmem(Carveout),
    Trace {
        da: u32,
        len: u32,
        reserved: u32,
        name: String,
    },
    Vdev {
        id: u32,
        notifyid: u32,
        dfeatures: u32,
        gfeatures: u32,
        config_len: u32,
        status: u8,
        /// Written as given; `vrings` supplies the ring entries (a mismatch is encoded as
        /// is, so tests can craft bad tables).
        num_of_vrings: u8,
        reserved: [u8; 2],
        vrings: Vec<Vring>,
        /// Virtio config space, written as given after the vrings.
        #[serde(serialize_with = "hex")]
        config: Vec<u8>,
    },
    /// Any other type (vendor or unknown): the body bytes after the type word.
    Other {
        rtype: u32,
        #[serde(serialize_with = "hex")]
        body: Vec<u8>,
    },
}

/// Raw bytes appear as a hex string in JSON (never as decimal arrays).
fn hex<S: serde::Serializer>(b: &[u8], s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_str(&b.iter().map(|x| format!("{x:02x}")).collect::<String>())
}

impl Resource {
    /// The `fw_rsc_hdr.type` word.
    pub fn rtype(&self) -> u32 {
        match self {
            Resource::Carveout(_) => RSC_CARVEOUT,
            Resource::Devmem(_) => RSC_DEVMEM,
            Resource::Trace { .. } => RSC_TRACE,
            Resource::Vdev { .. } => RSC_VDEV,
            Resource::Other { rtype, .. } => *rtype,
        }
    }

    /// Encoded size including the type word.
    pub fn encoded_len(&self) -> usize {
        RSC_HDR_SIZE
            + match self {
                Resource::Carveout(_) | Resource::Devmem(_) => CARVEOUT_BODY,
                Resource::Trace { .. } => TRACE_BODY,
                Resource::Vdev { vrings, config, .. } => {
                    VDEV_BODY + VRING_SIZE * vrings.len() + config.len()
                }
                Resource::Other { body, .. } => body.len(),
            }
    }

    fn encode_into(&self, e: Endian, out: &mut Vec<u8>) -> Result<()> {
        let w = |v: u32, out: &mut Vec<u8>| out.extend_from_slice(&e.u32_bytes(v));
        w(self.rtype(), out);
        match self {
            Resource::Carveout(c) | Resource::Devmem(c) => {
                for v in [c.da, c.pa, c.len, c.flags, c.reserved] {
                    w(v, out);
                }
                out.extend_from_slice(&name_bytes(&c.name)?);
            }
            Resource::Trace {
                da,
                len,
                reserved,
                name,
            } => {
                for v in [*da, *len, *reserved] {
                    w(v, out);
                }
                out.extend_from_slice(&name_bytes(name)?);
            }
            Resource::Vdev {
                id,
                notifyid,
                dfeatures,
                gfeatures,
                config_len,
                status,
                num_of_vrings,
                reserved,
                vrings,
                config,
            } => {
                for v in [*id, *notifyid, *dfeatures, *gfeatures, *config_len] {
                    w(v, out);
                }
                out.extend_from_slice(&[*status, *num_of_vrings, reserved[0], reserved[1]]);
                for r in vrings {
                    for v in [r.da, r.align, r.num, r.notifyid, r.pa] {
                        w(v, out);
                    }
                }
                out.extend_from_slice(config);
            }
            Resource::Other { body, .. } => out.extend_from_slice(body),
        }
        Ok(())
    }
}

/// A name as the kernel's `char name[32]`: NUL-padded and NUL-terminated within 32 bytes.
fn name_bytes(name: &str) -> Result<[u8; NAME_LEN]> {
    let b = name.as_bytes();
    if b.len() >= NAME_LEN || b.contains(&0) {
        return Err(Error::Convert {
            message: format!(
                "resource name \"{}\" does not fit the kernel's char name[32] (at most 31 bytes, no NUL)",
                name.escape_debug()
            ),
        });
    }
    let mut out = [0u8; NAME_LEN];
    out[..b.len()].copy_from_slice(b);
    Ok(out)
}

/// Lenient decode (see [`ResourceTable::decode`]).
pub fn decode(bytes: &[u8], endian: Endian) -> Result<ResourceTable> {
    ResourceTable::decode(bytes, endian)
}

/// `struct resource_table`: `ver`, then the entries (the kernel's `num` and `offset[]` are
/// derived when encoding; `reserved[2]` is written as zero).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceTable {
    pub ver: u32,
    pub entries: Vec<Resource>,
}

fn align_usize(v: usize, a: usize) -> usize {
    v.div_ceil(a) * a
}

impl ResourceTable {
    /// Encode with every entry [`ENTRY_ALIGN`]-aligned, right after the offset array.
    pub fn encode(&self, endian: Endian) -> Result<Vec<u8>> {
        self.encode_aligned(endian, ENTRY_ALIGN)
    }

    /// Encode with entries aligned to `align` (1 or 4 gives the packed C layout of
    /// firmware that declares the table as one packed struct, e.g. the MIPS example).
    pub fn encode_aligned(&self, endian: Endian, align: usize) -> Result<Vec<u8>> {
        let align = align.max(1);
        let num = self.entries.len();
        let num32 = u32::try_from(num).map_err(|_| Error::Convert {
            message: format!("{num} resource entries do not fit the table's u32 count"),
        })?;
        let mut out = Vec::new();
        out.extend_from_slice(&endian.u32_bytes(self.ver));
        out.extend_from_slice(&endian.u32_bytes(num32));
        out.extend_from_slice(&[0u8; 8]);
        let mut off = HEADER_SIZE + 4 * num;
        let mut offsets = Vec::with_capacity(num);
        for r in &self.entries {
            off = align_usize(off, align);
            offsets.push(off);
            off += r.encoded_len();
        }
        for &o in &offsets {
            let o32 = u32::try_from(o).map_err(|_| Error::Convert {
                message: format!("resource entry at table offset {o:#x} is beyond 4 GiB"),
            })?;
            out.extend_from_slice(&endian.u32_bytes(o32));
        }
        for (r, &o) in self.entries.iter().zip(&offsets) {
            out.resize(o, 0);
            r.encode_into(endian, &mut out)?;
        }
        Ok(out)
    }

    /// Size [`ResourceTable::encode`] produces.
    pub fn encoded_len(&self) -> usize {
        let mut off = HEADER_SIZE + 4 * self.entries.len();
        for r in &self.entries {
            off = align_usize(off, ENTRY_ALIGN) + r.encoded_len();
        }
        off
    }

    /// Lenient decode for display: checks only what it needs to read each field in bounds
    /// (reserved fields and versions are reported as found, not judged).
    pub fn decode(bytes: &[u8], endian: Endian) -> Result<ResourceTable> {
        let rd = |off: usize, what: &str| -> Result<u32> {
            off.checked_add(4)
                .and_then(|end| bytes.get(off..end))
                .map(|b| endian.read_u32([b[0], b[1], b[2], b[3]]))
                .ok_or_else(|| Error::Malformed {
                    what: format!(
                        "resource table: {what} lies past the end of the {}-byte table",
                        bytes.len()
                    ),
                    at: off as u64,
                })
        };
        let ver = rd(0, "ver")?;
        let num = rd(4, "num")?;
        // Each offset takes 4 bytes, so a count larger than the table is malformed.
        if u64::from(num) * 4 > bytes.len() as u64 {
            return Err(Error::Malformed {
                what: format!(
                    "resource table: num {num} needs {} bytes of offsets, the table has {}",
                    u64::from(num) * 4,
                    bytes.len()
                ),
                at: 4,
            });
        }
        let num = num as usize;
        let mut offsets = Vec::with_capacity(num);
        for i in 0..num {
            offsets.push(rd(HEADER_SIZE + 4 * i, &format!("offset[{i}]"))? as usize);
        }
        let mut entries = Vec::with_capacity(num);
        for (i, &o) in offsets.iter().enumerate() {
            entries.push(decode_entry(bytes, endian, o, i, &offsets)?);
        }
        Ok(ResourceTable { ver, entries })
    }
}

fn decode_entry(
    bytes: &[u8],
    e: Endian,
    off: usize,
    index: usize,
    offsets: &[usize],
) -> Result<Resource> {
    let get = |rel: usize, len: usize| -> Result<&[u8]> {
        off.checked_add(rel)
            .and_then(|s| s.checked_add(len).map(|end| (s, end)))
            .and_then(|(s, end)| bytes.get(s..end))
            .ok_or_else(|| Error::Malformed {
                what: format!(
                    "resource entry {index} at table offset {off:#x}: field at +{rel:#x} ({len} bytes) lies past the end of the {}-byte table",
                    bytes.len()
                ),
                at: off as u64,
            })
    };
    let u = |rel: usize| -> Result<u32> {
        let b = get(rel, 4)?;
        Ok(e.read_u32([b[0], b[1], b[2], b[3]]))
    };
    let name = |rel: usize| -> Result<String> {
        let b = get(rel, NAME_LEN)?;
        let n = b.iter().position(|&c| c == 0).unwrap_or(NAME_LEN);
        Ok(crate::elf::read::printable_name(&b[..n]))
    };
    let rtype = u(0)?;
    let b = RSC_HDR_SIZE;
    Ok(match rtype {
        RSC_CARVEOUT | RSC_DEVMEM => {
            let c = Carveout {
                da: u(b)?,
                pa: u(b + 4)?,
                len: u(b + 8)?,
                flags: u(b + 12)?,
                reserved: u(b + 16)?,
                name: name(b + 20)?,
            };
            if rtype == RSC_CARVEOUT {
                Resource::Carveout(c)
            } else {
                Resource::Devmem(c)
            }
        }
        RSC_TRACE => Resource::Trace {
            da: u(b)?,
            len: u(b + 4)?,
            reserved: u(b + 8)?,
            name: name(b + 12)?,
        },
        RSC_VDEV => {
            let flags = get(b + 20, 4)?;
            let (status, num_of_vrings, reserved) = (flags[0], flags[1], [flags[2], flags[3]]);
            let config_len = u(b + 16)?;
            let mut vrings = Vec::with_capacity(usize::from(num_of_vrings));
            for k in 0..usize::from(num_of_vrings) {
                let v = b + VDEV_BODY + k * VRING_SIZE;
                vrings.push(Vring {
                    da: u(v)?,
                    align: u(v + 4)?,
                    num: u(v + 8)?,
                    notifyid: u(v + 12)?,
                    pa: u(v + 16)?,
                });
            }
            let cfg_at = b + VDEV_BODY + usize::from(num_of_vrings) * VRING_SIZE;
            let config = get(cfg_at, config_len as usize)?.to_vec();
            Resource::Vdev {
                id: u(b)?,
                notifyid: u(b + 4)?,
                dfeatures: u(b + 8)?,
                gfeatures: u(b + 12)?,
                config_len,
                status,
                num_of_vrings,
                reserved,
                vrings,
                config,
            }
        }
        _ => {
            // Unknown size: up to the next entry that starts after this one, or the end.
            let start = off.saturating_add(RSC_HDR_SIZE).min(bytes.len());
            let end = offsets
                .iter()
                .copied()
                .filter(|&o| o > off)
                .min()
                .unwrap_or(bytes.len())
                .clamp(start, bytes.len());
            Resource::Other {
                rtype,
                body: bytes[start..end].to_vec(),
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ResourceTable {
        ResourceTable {
            ver: 1,
            entries: vec![
                Resource::Carveout(Carveout {
                    da: 0x1000_0000,
                    pa: 0x1000_0000,
                    len: 0x10000,
                    flags: 0,
                    reserved: 0,
                    name: "firmware".into(),
                }),
                Resource::Trace {
                    da: 0x1000_8000,
                    len: 4096,
                    reserved: 0,
                    name: "trace".into(),
                },
                Resource::Vdev {
                    id: 11,
                    notifyid: 4,
                    dfeatures: 0,
                    gfeatures: 0,
                    config_len: 12,
                    status: 0,
                    num_of_vrings: 2,
                    reserved: [0, 0],
                    vrings: vec![
                        Vring {
                            da: 0,
                            align: 0x1000,
                            num: 4,
                            notifyid: 1,
                            pa: 0,
                        },
                        Vring {
                            da: 0,
                            align: 0x1000,
                            num: 4,
                            notifyid: 0,
                            pa: 0,
                        },
                    ],
                    config: vec![0xa5; 12],
                },
                Resource::Other {
                    rtype: 200,
                    body: vec![1, 2, 3, 4, 5, 6, 7, 8],
                },
            ],
        }
    }

    #[test]
    fn round_trip_in_both_orders_and_orders_differ() {
        let t = sample();
        let le = t.encode(Endian::Little).unwrap();
        let be = t.encode(Endian::Big).unwrap();
        assert_eq!(le.len(), t.encoded_len());
        assert_eq!(ResourceTable::decode(&le, Endian::Little).unwrap(), t);
        assert_eq!(ResourceTable::decode(&be, Endian::Big).unwrap(), t);
        // Spec §6.4 #36: the same values give different bytes per order, and reading with the
        // wrong order gives different values (guards against host-order encoding).
        assert_ne!(le, be);
        assert_eq!(&le[..4], &[1, 0, 0, 0]);
        assert_eq!(&be[..4], &[0, 0, 0, 1]);
        // Read in the wrong order, `num` becomes 0x04000000 (larger than the table): the
        // decode fails or, if it ever succeeded, must give other values.
        if let Ok(wrong) = ResourceTable::decode(&le, Endian::Big) {
            assert_ne!(wrong, t);
        }
        assert_eq!(
            Endian::Big.read_u32(le[4..8].try_into().unwrap()),
            0x0400_0000
        );
        assert_eq!(
            Endian::Little.read_u32(be[20..24].try_into().unwrap()),
            0x5800_0000
        );
    }

    #[test]
    fn entries_are_aligned_after_the_offset_array() {
        let t = sample();
        let b = t.encode(Endian::Big).unwrap();
        let n = t.entries.len();
        for i in 0..n {
            let o = u32::from_be_bytes(b[16 + 4 * i..20 + 4 * i].try_into().unwrap()) as usize;
            assert_eq!(o % ENTRY_ALIGN, 0, "offset[{i}] = {o:#x}");
            assert!(o >= 16 + 4 * n);
        }
        // Reserved words of the header are zero.
        assert_eq!(&b[8..16], &[0; 8]);
    }

    /// Spec §4.6 / §6.4 #37: the MIPS example's three-entry table (a packed C struct).
    #[test]
    fn mips_example_layout() {
        let mut t = sample();
        t.entries.truncate(3);
        let packed = t.encode_aligned(Endian::Little, 4).unwrap();
        // Computed from the struct sizes, not from our encoder.
        let hdr = 16 + 4 * 3;
        let carveout = 4 + (4 * 5 + 32);
        let trace = 4 + (4 * 3 + 32);
        let vdev = 4 + 24 + 2 * 20 + 12;
        let off = |i: usize| u32::from_le_bytes(packed[16 + 4 * i..20 + 4 * i].try_into().unwrap());
        assert_eq!(off(0), hdr as u32);
        assert_eq!(off(1), (hdr + carveout) as u32);
        assert_eq!(off(2), (hdr + carveout + trace) as u32);
        assert_eq!((off(0), off(1), off(2)), (0x1c, 0x54, 0x84));
        assert_eq!(packed.len(), hdr + carveout + trace + vdev);
        assert_eq!(vdev, 80);
        // Spot-check fields at their C offsets: carveout len at entry+12, name at entry+24,
        // vdev num_of_vrings at entry+4+21.
        assert_eq!(&packed[0x1c + 12..0x1c + 16], &0x10000u32.to_le_bytes());
        assert_eq!(&packed[0x1c + 24..0x1c + 32], b"firmware");
        assert_eq!(packed[0x84 + 4 + 21], 2);
        assert_eq!(ResourceTable::decode(&packed, Endian::Little).unwrap(), t);
        // Our default encoding uses 8-byte alignment instead.
        let ours = t.encode(Endian::Little).unwrap();
        let off8 = |i: usize| u32::from_le_bytes(ours[16 + 4 * i..20 + 4 * i].try_into().unwrap());
        assert_eq!((off8(0), off8(1), off8(2)), (0x20, 0x58, 0x88));
    }

    #[test]
    fn json_shows_bytes_as_hex() {
        let j = serde_json::to_string(&sample()).unwrap();
        assert!(j.contains("\"body\":\"0102030405060708\""), "{j}");
        assert!(j.contains("\"type\":\"carveout\""), "{j}");
    }

    #[test]
    fn long_names_are_refused() {
        let mut t = sample();
        t.entries[1] = Resource::Trace {
            da: 0,
            len: 1,
            reserved: 0,
            name: "x".repeat(32),
        };
        assert!(t.encode(Endian::Big).is_err());
        t.entries[1] = Resource::Trace {
            da: 0,
            len: 1,
            reserved: 0,
            name: "x".repeat(31),
        };
        assert!(t.encode(Endian::Big).is_ok());
    }

    #[test]
    fn decode_never_reads_out_of_bounds() {
        let b = sample().encode(Endian::Little).unwrap();
        for n in 0..b.len() {
            let _ = ResourceTable::decode(&b[..n], Endian::Little);
            let _ = ResourceTable::decode(&b[..n], Endian::Big);
        }
        let mut huge = b.clone();
        huge[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(ResourceTable::decode(&huge, Endian::Little).is_err());
        let mut bad_off = b;
        bad_off[16..20].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(ResourceTable::decode(&bad_off, Endian::Little).is_err());
    }
}
