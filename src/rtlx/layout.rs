//! `struct rtlx_info` (asm/rtlx.h), 32-bit, in the firmware's byte order. It changed size
//! twice, so an SP built against one header mis-reads channels under the other:
//!
//! | kernels            | size | layout                                                  |
//! |--------------------|------|---------------------------------------------------------|
//! | ≤ 3.12 and ≥ 6.4   | 296  | id, state, `channel[8]` at +8 + 36·n                    |
//! | ≈ 3.13 – 6.3       | 300  | id, state, `ap_int_pending`, `channel[8]` at +12 + 36·n |
//!
//! [`detect`] (`--rtlx-layout auto`) decides from the struct itself: a layout fits when at
//! least one channel reads as a sane ring under it ([`Channel::check`] on both rings, states
//! 0–3) and none does under the other. Read across layouts, a set-up channel's
//! `buffer_size` lands on a state word (0–3) and its buffer pointers on ring indices, so real
//! structs are never ambiguous; a struct that fits neither (or both) is refused with the
//! offsets tried.

use crate::elf::Endian;
use crate::error::{Error, Result};
use crate::spmem::{Carveouts, SpMemory};

use super::ring::{Channel, Side, Site, CHANNEL_SIZE};
use super::{State, ENOEXEC, ENOSYS, KSEG0, RTLX_CHANNELS, RTLX_ID};

/// Which `struct rtlx_info`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum Layout {
    /// 296 bytes: kernels up to 3.12 and from 6.4.
    #[serde(rename = "296")]
    L296,
    /// 300 bytes, with `int ap_int_pending` at +8 (kernels ≈ 3.13 to 6.3, the CMP era).
    #[serde(rename = "300")]
    L300,
}

impl Layout {
    pub const ALL: [Layout; 2] = [Layout::L296, Layout::L300];

    /// `sizeof(struct rtlx_info)`.
    pub const fn size(self) -> u32 {
        self.channels_at() + CHANNEL_SIZE * RTLX_CHANNELS as u32
    }

    /// Offset of `channel[0]`.
    pub const fn channels_at(self) -> u32 {
        match self {
            Layout::L296 => 8,
            Layout::L300 => 12,
        }
    }

    /// Offset of `channel[n]`.
    pub fn channel_offset(self, n: usize) -> u32 {
        self.channels_at() + CHANNEL_SIZE * n as u32
    }

    pub fn name(self) -> &'static str {
        match self {
            Layout::L296 => "296",
            Layout::L300 => "300",
        }
    }

    fn describe(self) -> String {
        match self {
            Layout::L296 => "296-byte layout (channels at +0x8 + 36*n)".to_string(),
            Layout::L300 => {
                "300-byte layout (ap_int_pending at +0x8, channels at +0xc + 36*n)".to_string()
            }
        }
    }
}

const _: () = assert!(Layout::L296.size() == 296);
const _: () = assert!(Layout::L300.size() == 300);

/// `--rtlx-layout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Choice {
    Fixed(Layout),
    Auto,
}

impl Choice {
    pub fn parse(s: &str) -> Result<Choice> {
        match s {
            "296" => Ok(Choice::Fixed(Layout::L296)),
            "300" => Ok(Choice::Fixed(Layout::L300)),
            "auto" => Ok(Choice::Auto),
            _ => Err(Error::Convert {
                message: format!("--rtlx-layout {s:?}: expected 296, 300 or auto"),
            }),
        }
    }
}

/// A published `rtlx_info` that passed the id check, with its layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Info {
    /// SP address of the struct (the value of `vpe_shared`).
    pub addr: u32,
    pub layout: Layout,
    /// Why this layout: `"--rtlx-layout 300"`, or what `auto` found.
    pub decided: &'static str,
    /// Channels that read as sane rings under `layout` when it was decided.
    pub sane_channels: u8,
}

impl Info {
    /// Where channel `n` is.
    pub fn site(&self, n: usize) -> Site {
        Site {
            index: n,
            info: self.addr,
            addr: self.addr + self.layout.channel_offset(n),
        }
    }
}

/// What `vpe_shared` holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Published {
    /// `*vpe_shared == NULL`: the SP has not published its struct (yet).
    Null,
    /// The pointer the SP stored.
    At(u32),
}

/// Read the pointer stored in the SP's `vpe_shared` variable (at SP address `shared`).
pub fn published(mem: &dyn SpMemory, shared: u32, e: Endian) -> Result<Published> {
    let mut b = [0u8; 4];
    mem.read(shared, &mut b).map_err(|err| Error::Rtlx {
        message: format!("vpe_shared at {shared:#010x} is not in the SP's memory: {err}"),
        errno: ENOSYS,
    })?;
    Ok(match e.read_u32(b) {
        0 => Published::Null,
        p => Published::At(p),
    })
}

/// Address rules for the published pointer. The legacy `rtlx_open` refused `*p < KSEG0`
/// with ENOSYS; the `mips-rproc` profile runs the SP at KUSEG addresses, so that test is
/// replaced by "the whole struct lies inside one carveout" (`kseg0_rule` keeps the legacy
/// test too, for `fixed`-profile firmware).
pub fn check_pointer(
    p: u32,
    layout_size: u32,
    carveouts: &Carveouts,
    kseg0_rule: bool,
) -> Result<()> {
    if kseg0_rule && p < KSEG0 {
        return Err(Error::Rtlx {
            message: format!(
                "vpe_get_shared returned an invalid pointer maybe an error code {} ({p:#010x} is below KSEG0)",
                p as i32
            ),
            errno: ENOSYS,
        });
    }
    carveouts
        .place(p, layout_size as usize)
        .map(|_| ())
        .map_err(|err| Error::Rtlx {
            message: format!(
                "vpe_get_shared returned an invalid pointer maybe an error code {}: rtlx_info at {p:#010x}: {err}",
                p as i32
            ),
            errno: ENOSYS,
        })
}

/// The id check of `rtlx_init` (`no valid RTLX id at 0x%p 0x%lx`, ENOEXEC). `p` must have
/// passed [`check_pointer`] for the smaller layout.
pub fn check_id(mem: &dyn SpMemory, p: u32, e: Endian) -> Result<()> {
    let mut b = [0u8; 4];
    mem.read(p, &mut b)?;
    let id = e.read_u32(b);
    if id != RTLX_ID {
        return Err(Error::Rtlx {
            message: format!("no valid RTLX id at {p:#010x} {id:#x} (expected {RTLX_ID:#x})"),
            errno: ENOEXEC,
        });
    }
    Ok(())
}

/// The verdict on one channel under one layout.
enum Verdict {
    Blank,
    Sane,
    Bad(String),
}

fn judge(ch: &Channel, site: &Site, carveouts: &Carveouts) -> Verdict {
    if ch.is_blank() {
        return Verdict::Blank;
    }
    for (name, v) in [("rt_state", ch.rt_state), ("lx_state", ch.lx_state)] {
        if State::from_u32(v).is_none() {
            return Verdict::Bad(format!(
                "channel {} at {:#010x}: {name} {v:#x} is not an rtlx_state",
                site.index, site.addr
            ));
        }
    }
    for side in [Side::Rt, Side::Lx] {
        if let Err(e) = ch.check(site, side, carveouts) {
            let msg = e.to_string();
            // Keep the part after the channel prefix; the prefix is restated shorter.
            let what = msg.split_once("): ").map_or(msg.as_str(), |(_, w)| w);
            return Verdict::Bad(format!(
                "channel {} at {:#010x}: {what}",
                site.index, site.addr
            ));
        }
    }
    Verdict::Sane
}

/// How one layout reads the struct: sane channel count and the first problem seen.
fn survey(
    mem: &dyn SpMemory,
    p: u32,
    layout: Layout,
    carveouts: &Carveouts,
    e: Endian,
) -> (u8, Option<String>) {
    if let Err(err) = carveouts.place(p, layout.size() as usize) {
        return (0, Some(format!("struct: {err}")));
    }
    let info = Info {
        addr: p,
        layout,
        decided: "",
        sane_channels: 0,
    };
    let mut sane = 0;
    let mut first = None;
    for n in 0..RTLX_CHANNELS {
        let site = info.site(n);
        match site.load(mem, e) {
            Ok(ch) => match judge(&ch, &site, carveouts) {
                Verdict::Sane => sane += 1,
                Verdict::Blank => {}
                Verdict::Bad(why) => {
                    first.get_or_insert(why);
                }
            },
            Err(err) => {
                first.get_or_insert(err.to_string());
            }
        }
    }
    (sane, first)
}

/// Decide the layout of the struct at `p` (id already checked). With a fixed choice the
/// struct only has to fit its carveout.
pub fn decide(
    mem: &dyn SpMemory,
    p: u32,
    choice: Choice,
    carveouts: &Carveouts,
    e: Endian,
) -> Result<Info> {
    let refuse = |message: String| Error::Rtlx {
        message,
        errno: ENOEXEC,
    };
    if let Choice::Fixed(layout) = choice {
        carveouts.place(p, layout.size() as usize).map_err(|err| {
            refuse(format!(
                "rtlx_info at {p:#010x} ({}): {err}",
                layout.describe()
            ))
        })?;
        let (sane, _) = survey(mem, p, layout, carveouts, e);
        return Ok(Info {
            addr: p,
            layout,
            decided: match layout {
                Layout::L296 => "--rtlx-layout 296",
                Layout::L300 => "--rtlx-layout 300",
            },
            sane_channels: sane,
        });
    }
    let [(s296, w296), (s300, w300)] = Layout::ALL.map(|l| survey(mem, p, l, carveouts, e));
    let tried = |what: &str| {
        let d = |l: Layout, s: u8, w: &Option<String>| {
            format!(
                "{}: {s} sane channel(s){}",
                l.describe(),
                w.as_ref()
                    .map(|w| format!(", first problem: {w}"))
                    .unwrap_or_default()
            )
        };
        refuse(format!(
            "rtlx_info at {p:#010x} fits {what} layout; tried {}; and {}; give --rtlx-layout 296 or 300",
            d(Layout::L296, s296, &w296),
            d(Layout::L300, s300, &w300)
        ))
    };
    let (layout, sane) = match (s296, s300) {
        (0, 0) => return Err(tried("neither")),
        (s, 0) => (Layout::L296, s),
        (0, s) => (Layout::L300, s),
        _ => return Err(tried("more than one")),
    };
    Ok(Info {
        addr: p,
        layout,
        decided: match layout {
            Layout::L296 => "auto: only the 296-byte layout reads sane channels",
            Layout::L300 => "auto: only the 300-byte layout reads sane channels",
        },
        sane_channels: sane,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::spmem::{Region, VecMemory};

    pub const BASE: u32 = 0x1000_0000;
    pub const INFO: u32 = BASE + 0x100;

    pub fn carveouts() -> Carveouts {
        Carveouts::new(vec![Region {
            name: "vpe1".into(),
            da: BASE,
            len: 0x4000,
            pa: 0,
        }])
    }

    /// An SP's struct: `channels` set up with `size`-byte buffers from BASE + 0x1000.
    pub fn publish(m: &VecMemory, layout: Layout, e: Endian, channels: usize, size: u32) {
        m.write(INFO, &e.u32_bytes(RTLX_ID)).unwrap();
        let info = Info {
            addr: INFO,
            layout,
            decided: "",
            sane_channels: 0,
        };
        for n in 0..channels {
            let ch = Channel {
                rt_state: State::Initialised as u32,
                buffer_size: size,
                rt_buffer: BASE + 0x1000 + 2 * size * n as u32,
                lx_buffer: BASE + 0x1000 + 2 * size * n as u32 + size,
                ..Default::default()
            };
            m.write(info.site(n).addr, &ch.encode(e)).unwrap();
        }
    }

    #[test]
    fn auto_decides_both_layouts_in_both_byte_orders() {
        for e in [Endian::Big, Endian::Little] {
            for layout in Layout::ALL {
                for channels in [1, 3, 8] {
                    let m = VecMemory::new(carveouts());
                    publish(&m, layout, e, channels, 0x40);
                    let info = decide(&m, INFO, Choice::Auto, &carveouts(), e).unwrap();
                    assert_eq!(info.layout, layout, "{e:?} {channels}");
                    assert_eq!(info.sane_channels as usize, channels);
                }
            }
        }
    }

    #[test]
    fn a_struct_fitting_neither_names_the_offsets_tried() {
        let e = Endian::Big;
        let m = VecMemory::new(carveouts());
        m.write(INFO, &e.u32_bytes(RTLX_ID)).unwrap();
        // Channel 0 under 296 (and the ap_int_pending word under 300): a state of 7.
        m.write(INFO + 8, &e.u32_bytes(7)).unwrap();
        let err = decide(&m, INFO, Choice::Auto, &carveouts(), e).unwrap_err();
        assert_eq!(err.errno(), ENOEXEC);
        assert_eq!(
            err.to_string(),
            "rtlx_info at 0x10000100 fits neither layout; tried 296-byte layout (channels at +0x8 + 36*n): 0 sane channel(s), first problem: channel 0 at 0x10000108: rt_state 0x7 is not an rtlx_state; and 300-byte layout (ap_int_pending at +0x8, channels at +0xc + 36*n): 0 sane channel(s); give --rtlx-layout 296 or 300"
        );
    }

    #[test]
    fn a_struct_past_its_carveout_is_refused_for_each_layout() {
        let e = Endian::Little;
        let m = VecMemory::new(carveouts());
        let p = BASE + 0x4000 - 294;
        m.write(p, &e.u32_bytes(RTLX_ID)).unwrap();
        let err = decide(&m, p, Choice::Auto, &carveouts(), e)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("struct: SP address 0x10003eda + 0x128 bytes is outside"),
            "{err}"
        );
        let err = decide(&m, p, Choice::Fixed(Layout::L300), &carveouts(), e).unwrap_err();
        assert!(
            err.to_string()
                .contains("+ 0x12c bytes is outside every carveout"),
            "{err}"
        );
        assert_eq!(
            check_pointer(p, 300, &carveouts(), false)
                .unwrap_err()
                .errno(),
            ENOSYS
        );
    }

    #[test]
    fn fixed_choice_reads_the_other_layout_as_told() {
        let e = Endian::Big;
        let m = VecMemory::new(carveouts());
        publish(&m, Layout::L300, e, 2, 0x40);
        let info = decide(&m, INFO, Choice::Fixed(Layout::L296), &carveouts(), e).unwrap();
        assert_eq!((info.layout, info.sane_channels), (Layout::L296, 0));
        assert_eq!(info.site(1).addr, INFO + 8 + 36);
    }

    #[test]
    fn pointer_and_id_rules() {
        let e = Endian::Big;
        let m = VecMemory::new(carveouts());
        assert_eq!(published(&m, BASE, e).unwrap(), Published::Null);
        m.write(BASE, &e.u32_bytes(INFO)).unwrap();
        assert_eq!(published(&m, BASE, e).unwrap(), Published::At(INFO));
        assert_eq!(published(&m, 0x2000_0000, e).unwrap_err().errno(), ENOSYS);
        // The legacy KSEG0 rule, where it can hold.
        let err = check_pointer(INFO, 296, &carveouts(), true).unwrap_err();
        assert!(err.to_string().starts_with(
            "vpe_get_shared returned an invalid pointer maybe an error code 268435712"
        ));
        assert!(check_pointer(INFO, 296, &carveouts(), false).is_ok());
        m.write(INFO, &e.u32_bytes(0x1234_5601)).unwrap();
        let err = check_id(&m, INFO, e).unwrap_err();
        assert_eq!(err.errno(), ENOEXEC);
        assert_eq!(
            err.to_string(),
            "no valid RTLX id at 0x10000100 0x12345601 (expected 0x12345602)"
        );
    }

    #[test]
    fn choice_parses_the_three_values() {
        assert_eq!(Choice::parse("auto").unwrap(), Choice::Auto);
        assert_eq!(Choice::parse("300").unwrap(), Choice::Fixed(Layout::L300));
        assert!(Choice::parse("298").is_err());
    }
}
