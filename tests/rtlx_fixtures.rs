//! The RTLX SP programs of `tests/fixtures/rtlx/` (built by GCC from a header mirroring
//! asm/rtlx.h) against the library's model of `struct rtlx_info`: converted like any SP
//! program, loaded into SP memory held in vectors as remoteproc would load them, and
//! published as their `main` does (one store of `&rtlx_info` into `vpe_shared`), the layout
//! the compiler produced must be the one `auto` decides, the rings must lie in the program's
//! buffers, and each hostile variant must be refused for exactly its fault.
//!
//! Running the programs themselves (greeting, echo) needs the emulated SP (issue 11).

use std::path::PathBuf;

use vpe::convert::{convert, Conversion, Options};
use vpe::elf::Endian;
use vpe::rtlx::layout::{self, Choice, Layout, Published};
use vpe::rtlx::ring::Side;
use vpe::rtlx::RTLX_CHANNELS;
use vpe::spmem::{Carveouts, SpMemory, VecMemory};

const RING: u32 = 64;

fn fixture(name: &str, e: Endian) -> Vec<u8> {
    let suffix = match e {
        Endian::Big => "be",
        Endian::Little => "le",
    };
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/rtlx/bin")
        .join(format!("{name}.{suffix}.o"));
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The SP's memory after remoteproc loaded the firmware and `main` published its struct.
struct Loaded {
    conv: Conversion,
    mem: VecMemory,
    carveouts: Carveouts,
    info: u32,
}

fn load(name: &str, e: Endian) -> Loaded {
    let conv = convert(&fixture(name, e), &Options::default()).unwrap();
    let carveouts = Carveouts::from_table(&conv.loaded.table);
    let mem = VecMemory::new(carveouts.clone());
    for s in &conv.loaded.image.segments {
        mem.write(s.addr, &s.data).unwrap();
    }
    let shared = conv.legacy.shared.expect("vpe_shared");
    let info = conv.legacy.symbol("rtlx_info").expect("rtlx_info");
    // Not published before main runs.
    assert_eq!(layout::published(&mem, shared, e).unwrap(), Published::Null);
    mem.write(shared, &e.u32_bytes(info)).unwrap();
    assert_eq!(
        layout::published(&mem, shared, e).unwrap(),
        Published::At(info)
    );
    Loaded {
        conv,
        mem,
        carveouts,
        info,
    }
}

const ORDERS: [Endian; 2] = [Endian::Big, Endian::Little];

#[test]
fn the_compilers_struct_is_the_layout_auto_decides() {
    for e in ORDERS {
        for (name, want) in [("rtlx296", Layout::L296), ("rtlx300", Layout::L300)] {
            let l = load(name, e);
            layout::check_pointer(l.info, want.size(), &l.carveouts, false).unwrap();
            layout::check_id(&l.mem, l.info, e).unwrap();
            let info = layout::decide(&l.mem, l.info, Choice::Auto, &l.carveouts, e).unwrap();
            assert_eq!(info.layout, want, "{name} {e:?}");
            assert_eq!(info.sane_channels as usize, RTLX_CHANNELS, "{name} {e:?}");
            // The rings are the program's rtlx_bufs[n][0] (rt) and [n][1] (lx).
            let bufs = l.conv.legacy.symbol("rtlx_bufs").unwrap();
            for n in 0..RTLX_CHANNELS {
                let site = info.site(n);
                let ch = site.load(&l.mem, e).unwrap();
                let rt = ch.check(&site, Side::Rt, &l.carveouts).unwrap();
                let lx = ch.check(&site, Side::Lx, &l.carveouts).unwrap();
                assert_eq!(rt.buffer, bufs + 2 * RING * n as u32);
                assert_eq!(lx.buffer, bufs + 2 * RING * n as u32 + RING);
                assert_eq!((rt.size, rt.free(), lx.available()), (RING, RING - 1, 0));
            }
            // An AP write on channel 1 lands in the program's buffer.
            let site = info.site(1);
            assert_eq!(site.put(&l.mem, &l.carveouts, b"echo me", e).unwrap(), 7);
            let mut b = [0u8; 7];
            l.mem.read(bufs + 2 * RING, &mut b).unwrap();
            assert_eq!(&b, b"echo me");
            // Read as the other layout, nothing is sane.
            let other = match want {
                Layout::L296 => Layout::L300,
                Layout::L300 => Layout::L296,
            };
            let info =
                layout::decide(&l.mem, l.info, Choice::Fixed(other), &l.carveouts, e).unwrap();
            assert_eq!(info.sane_channels, 0, "{name} read as {other:?}");
        }
    }
}

#[test]
fn each_hostile_program_is_refused_for_its_fault() {
    for e in ORDERS {
        let l = load("hostile_id", e);
        let err = layout::check_id(&l.mem, l.info, e).unwrap_err().to_string();
        assert_eq!(
            err,
            format!(
                "no valid RTLX id at {:#010x} 0x12345601 (expected 0x12345602)",
                l.info
            )
        );

        for (name, side, fault) in [
            (
                "hostile_ptr",
                Side::Lx,
                "lx_buffer 0x7ff00000 is outside every carveout",
            ),
            (
                "hostile_size",
                Side::Rt,
                "+ buffer_size 0x7fff0000 runs past carveout",
            ),
            (
                "hostile_index",
                Side::Rt,
                "rt_write 0x45 is not below buffer_size 0x40",
            ),
            (
                "hostile_index",
                Side::Lx,
                "lx_write 0x100 is not below buffer_size 0x40",
            ),
        ] {
            let l = load(name, e);
            layout::check_id(&l.mem, l.info, e).unwrap();
            // Seven good channels decide the layout; channel 1 is refused on its own.
            let info = layout::decide(&l.mem, l.info, Choice::Auto, &l.carveouts, e).unwrap();
            assert_eq!(
                (info.layout, info.sane_channels),
                (Layout::L296, 7),
                "{name}"
            );
            let site = info.site(1);
            let ch = site.load(&l.mem, e).unwrap();
            let err = ch.check(&site, side, &l.carveouts).unwrap_err().to_string();
            assert!(
                err.starts_with(&format!(
                    "rtlx channel 1 (rtlx_info at {:#010x}, channel at {:#010x}): ",
                    l.info, site.addr
                )) && err.contains(fault),
                "{name} {e:?}: {err}"
            );
            let before: Vec<u8> = {
                let mut b = vec![0u8; 2 * RING as usize * RTLX_CHANNELS];
                l.mem
                    .read(l.conv.legacy.symbol("rtlx_bufs").unwrap(), &mut b)
                    .unwrap();
                b
            };
            let res = match side {
                Side::Rt => site.put(&l.mem, &l.carveouts, b"x", e).map(|_| ()),
                Side::Lx => site.take(&l.mem, &l.carveouts, 8, e).map(|_| ()),
            };
            assert!(res.is_err(), "{name}");
            let mut after = vec![0u8; before.len()];
            l.mem
                .read(l.conv.legacy.symbol("rtlx_bufs").unwrap(), &mut after)
                .unwrap();
            assert_eq!(before, after, "{name}: buffers touched");
            // The other channels serve normally.
            assert_eq!(info.site(0).put(&l.mem, &l.carveouts, b"ok", e).unwrap(), 2);
        }
    }
}
