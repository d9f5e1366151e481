//! The `/dev/rtlxN` rules against a `Vec<u8>` SP memory, both layouts and byte orders, and a
//! hostile SP. The "SP" here is the test itself writing its side of the rings.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use vpe::rtlx::layout::Layout;
use vpe::rtlx::ring::{Channel, CHANNEL_SIZE};
use vpe::rtlx::RTLX_ID;
use vpe::spmem::{Region, VecMemory};

use super::*;

const BASE: u32 = 0x1000_0000;
/// `vpe_shared` (the variable) and the struct it will point to.
const SHARED: u32 = BASE;
const INFO: u32 = BASE + 0x100;
const RING: u32 = 16;

/// VecMemory that counts refused accesses: the model must check before it touches, so a
/// hostile SP never makes it try an address outside the carveouts.
struct Guarded {
    mem: VecMemory,
    refused: AtomicUsize,
}

impl SpMemory for Guarded {
    fn read(&self, da: u32, buf: &mut [u8]) -> vpe::Result<()> {
        self.mem.read(da, buf).inspect_err(|_| {
            self.refused.fetch_add(1, Ordering::SeqCst);
        })
    }
    fn write(&self, da: u32, buf: &[u8]) -> vpe::Result<()> {
        self.mem.write(da, buf).inspect_err(|_| {
            self.refused.fetch_add(1, Ordering::SeqCst);
        })
    }
}

struct Sp {
    mem: Arc<Guarded>,
    e: Endian,
    layout: Layout,
}

fn carveouts() -> Carveouts {
    Carveouts::new(vec![Region {
        name: "vpe1".into(),
        da: BASE,
        len: 0x2000,
        pa: 0,
    }])
}

impl Sp {
    fn new(layout: Layout, e: Endian) -> Sp {
        Sp {
            mem: Arc::new(Guarded {
                mem: VecMemory::new(carveouts()),
                refused: AtomicUsize::new(0),
            }),
            e,
            layout,
        }
    }

    fn view(&self, generation: u64) -> SpView {
        SpView {
            generation,
            memory: self.mem.clone(),
            carveouts: carveouts(),
            shared: Some(SHARED),
            endian: self.e,
            kseg0_rule: false,
        }
    }

    fn w32(&self, da: u32, v: u32) {
        self.mem.mem.write(da, &self.e.u32_bytes(v)).unwrap();
    }

    fn chan_addr(&self, n: usize) -> u32 {
        INFO + self.layout.channel_offset(n)
    }

    fn chan(&self, n: usize) -> Channel {
        let mut b = [0u8; CHANNEL_SIZE as usize];
        self.mem.mem.read(self.chan_addr(n), &mut b).unwrap();
        Channel::decode(&b, self.e)
    }

    fn set_chan(&self, n: usize, ch: Channel) {
        self.mem
            .mem
            .write(self.chan_addr(n), &ch.encode(self.e))
            .unwrap();
    }

    /// What an SP's start-up does: set up every channel, id, then publish.
    fn publish(&self) {
        for n in 0..RTLX_CHANNELS {
            let buf = BASE + 0x1000 + 2 * RING * n as u32;
            self.set_chan(
                n,
                Channel {
                    rt_state: State::Initialised as u32,
                    buffer_size: RING,
                    rt_buffer: buf,
                    lx_buffer: buf + RING,
                    ..Default::default()
                },
            );
        }
        self.w32(INFO, RTLX_ID);
        self.w32(SHARED, INFO);
    }

    /// The SP sends `data` on channel `n` (all of it must fit).
    fn send(&self, n: usize, data: &[u8]) {
        let mut ch = self.chan(n);
        for &b in data {
            self.mem
                .mem
                .write(ch.lx_buffer + ch.lx_write, &[b])
                .unwrap();
            ch.lx_write = (ch.lx_write + 1) % ch.buffer_size;
            assert_ne!(ch.lx_write, ch.lx_read, "test SP overfilled its ring");
        }
        self.set_chan(n, ch);
    }

    /// The SP drains channel `n`'s AP → SP ring.
    fn recv(&self, n: usize) -> Vec<u8> {
        let mut ch = self.chan(n);
        let mut out = vec![];
        while ch.rt_read != ch.rt_write {
            let mut b = [0u8];
            self.mem
                .mem
                .read(ch.rt_buffer + ch.rt_read, &mut b)
                .unwrap();
            out.push(b[0]);
            ch.rt_read = (ch.rt_read + 1) % ch.buffer_size;
        }
        self.set_chan(n, ch);
        out
    }

    fn snapshot(&self) -> Vec<u8> {
        let mut b = vec![0u8; 0x2000];
        self.mem.mem.read(BASE, &mut b).unwrap();
        b
    }

    fn refused(&self) -> usize {
        self.mem.refused.load(Ordering::SeqCst)
    }
}

fn all() -> impl Iterator<Item = (Layout, Endian)> {
    Layout::ALL
        .into_iter()
        .flat_map(|l| [(l, Endian::Big), (l, Endian::Little)])
}

fn opened(o: Result<Open, Errno>) -> u64 {
    match o {
        Ok(Open::Opened(fh)) => fh,
        Ok(Open::Wait(_)) => panic!("open waits"),
        Err(e) => panic!("open failed: {e}"),
    }
}

fn running(layout: Layout, e: Endian) -> (Arc<Rtlx>, Sp) {
    let sp = Sp::new(layout, e);
    sp.publish();
    let r = Rtlx::new(Config::default());
    r.sp_started(sp.view(1));
    (r, sp)
}

#[test]
fn nonblocking_open_without_a_program_or_pointer_is_enosys() {
    let r = Rtlx::new(Config::default());
    assert_eq!(r.open(1, true).err(), Some(Errno(libc::ENOSYS)));
    let sp = Sp::new(Layout::L296, Endian::Big);
    r.sp_started(sp.view(1));
    // Running, vpe_shared still NULL.
    assert_eq!(r.open(1, true).err(), Some(Errno(libc::ENOSYS)));
    // A program without a vpe_shared symbol.
    r.sp_started(SpView {
        shared: None,
        ..sp.view(2)
    });
    assert_eq!(r.open(1, true).err(), Some(Errno(libc::ENOSYS)));
    assert_eq!(r.open(8, false).err(), Some(Errno(libc::ENOSYS)));
}

#[test]
fn blocking_open_waits_until_published_and_holds_the_channel_meanwhile() {
    for (layout, e) in all() {
        let r = Rtlx::new(Config::default());
        let Ok(Open::Wait(p)) = r.open(1, false) else {
            panic!("no SP: must wait");
        };
        // in_open: a second opener of the same channel is refused, another channel is not.
        assert_eq!(r.open(1, false).err(), Some(Errno(libc::EBUSY)));
        let sp = Sp::new(layout, e);
        r.sp_started(sp.view(1));
        let Ok(Open::Wait(p)) = r.resume(p) else {
            panic!("vpe_shared NULL: must wait");
        };
        sp.publish();
        let fh = opened(r.resume(p));
        assert_eq!(
            sp.chan(1).lx_state,
            State::Opened as u32,
            "{layout:?} {e:?}"
        );
        let st = r.status();
        assert_eq!(st.layout, Some(layout.name()));
        assert_eq!(st.rtlx_info.as_deref(), Some("0x10000100"));
        assert_eq!(st.open_channels, vec![1]);
        r.release(fh);
        assert_eq!(sp.chan(1).lx_state, State::Unused as u32);
    }
}

#[test]
fn giving_up_a_blocking_open_frees_the_channel() {
    let r = Rtlx::new(Config::default());
    let Ok(Open::Wait(p)) = r.open(0, false) else {
        panic!("must wait");
    };
    drop(p);
    assert!(matches!(r.open(0, false), Ok(Open::Wait(_))));
}

#[test]
fn a_bad_id_is_enoexec_and_does_not_wedge_the_channel() {
    let (r, sp) = running(Layout::L296, Endian::Big);
    sp.w32(INFO, 0x1234_5601);
    assert_eq!(r.open(0, false).err(), Some(Errno(libc::ENOEXEC)));
    assert_eq!(r.open(0, true).err(), Some(Errno(libc::ENOEXEC)));
    // The SP fixes its id: the next open finds it (3.13+ kernels leaked in_open here).
    sp.w32(INFO, RTLX_ID);
    opened(r.open(0, false));
}

#[test]
fn second_open_is_ebusy_until_release() {
    let (r, sp) = running(Layout::L300, Endian::Little);
    let fh = opened(r.open(3, false));
    assert_eq!(r.open(3, true).err(), Some(Errno(libc::EBUSY)));
    opened(r.open(4, true));
    r.release(fh);
    opened(r.open(3, true));
    // lx_state lives in the SP's memory: an SP that marks it OPENED keeps AP openers out.
    let mut ch = sp.chan(5);
    ch.lx_state = State::Opened as u32;
    sp.set_chan(5, ch);
    assert_eq!(r.open(5, false).err(), Some(Errno(libc::EBUSY)));
}

#[test]
fn reads_return_zero_when_nonblocking_wait_when_blocking_and_wrap() {
    for (layout, e) in all() {
        let (r, sp) = running(layout, e);
        let fh = opened(r.open(0, false));
        assert_eq!(r.read(fh, 100, true).unwrap(), Read::Data(vec![]));
        assert_eq!(r.read(fh, 100, false).unwrap(), Read::Wait);
        sp.send(0, b"hello, AP");
        assert_eq!(r.read(fh, 5, false).unwrap(), Read::Data(b"hello".to_vec()));
        assert_eq!(r.read(fh, 100, true).unwrap(), Read::Data(b", AP".to_vec()));
        // Indices now at 9: the next 12 bytes wrap.
        sp.send(0, b"0123456789ab");
        assert_eq!(
            r.read(fh, 100, false).unwrap(),
            Read::Data(b"0123456789ab".to_vec())
        );
        assert_eq!(sp.chan(0).lx_read, (9 + 12) % RING);
        assert_eq!(sp.refused(), 0);
    }
}

#[test]
fn writes_are_short_when_the_ring_fills_then_block() {
    for (layout, e) in all() {
        let (r, sp) = running(layout, e);
        let fh = opened(r.open(1, false));
        let data: Vec<u8> = (0..40).collect();
        assert_eq!(r.write(fh, &data, false).unwrap(), Write::Wrote(15));
        assert_eq!(r.write(fh, &data, true).err(), Some(Errno(libc::EAGAIN)));
        assert_eq!(r.write(fh, &data, false).unwrap(), Write::Wait);
        assert_eq!(sp.recv(1), &data[..15]);
        assert_eq!(r.write(fh, &data[15..], false).unwrap(), Write::Wrote(15));
        assert_eq!(sp.recv(1), &data[15..30]);
        assert_eq!(r.write(fh, b"", true).unwrap(), Write::Wrote(0));
    }
}

#[test]
fn poll_reports_data_and_space_as_file_poll_did() {
    let (r, sp) = running(Layout::L296, Endian::Big);
    let fh = opened(r.open(0, false));
    assert_eq!(r.poll(fh).unwrap(), POLLOUT | POLLWRNORM);
    sp.send(0, b"x");
    assert_eq!(
        r.poll(fh).unwrap(),
        POLLIN | POLLRDNORM | POLLOUT | POLLWRNORM
    );
    assert_eq!(r.write(fh, &[0; 32], false).unwrap(), Write::Wrote(15));
    assert_eq!(r.poll(fh).unwrap(), POLLIN | POLLRDNORM);
}

#[test]
fn the_sp_stopping_delivers_what_it_wrote_then_eof_and_touches_nothing() {
    for (layout, e) in all() {
        let (r, sp) = running(layout, e);
        let fh = opened(r.open(0, false));
        let idle = opened(r.open(2, false));
        sp.send(0, b"last words");
        r.sp_stopping();
        let after_stop = sp.snapshot();
        assert_eq!(r.poll(fh).unwrap(), POLLIN | POLLRDNORM);
        assert_eq!(r.read(fh, 4, false).unwrap(), Read::Data(b"last".to_vec()));
        assert_eq!(
            r.read(fh, 100, false).unwrap(),
            Read::Data(b" words".to_vec())
        );
        assert_eq!(r.read(fh, 100, false).unwrap(), Read::Eof);
        assert_eq!(r.read(idle, 100, true).unwrap(), Read::Eof);
        assert_eq!(r.poll(idle).unwrap(), POLLIN | POLLRDNORM | POLLHUP);
        assert_eq!(
            r.write(fh, b"anyone?", false).err(),
            Some(Errno(libc::EPIPE))
        );
        // Opens wait for the next program; non-blocking ones are refused.
        assert!(matches!(r.open(4, false), Ok(Open::Wait(_))));
        assert_eq!(r.open(4, true).err(), Some(Errno(libc::ENOSYS)));
        r.release(fh);
        r.release(idle);
        assert_eq!(sp.snapshot(), after_stop, "memory touched after stop");
    }
}

#[test]
fn a_reload_ends_old_handles_and_finds_the_new_struct() {
    let (r, sp) = running(Layout::L296, Endian::Big);
    let old = opened(r.open(1, false));
    r.sp_stopping();
    let sp2 = Sp::new(Layout::L300, Endian::Little);
    r.sp_started(sp2.view(2));
    let Ok(Open::Wait(p)) = r.open(1, false) else {
        panic!("new program has not published yet");
    };
    sp2.publish();
    let new = opened(r.resume(p));
    assert_eq!(r.status().layout, Some("300"));
    assert_eq!(r.read(old, 10, false).unwrap(), Read::Eof);
    sp2.send(1, b"hi");
    assert_eq!(r.read(new, 10, false).unwrap(), Read::Data(b"hi".to_vec()));
    // Releasing the old handle writes into neither program.
    let (before1, before2) = (sp.snapshot(), sp2.snapshot());
    r.release(old);
    assert_eq!((sp.snapshot(), sp2.snapshot()), (before1, before2));
    assert_eq!(r.read(old, 1, false).err(), Some(Errno(libc::EBADF)));
}

#[test]
fn a_published_pointer_outside_the_carveouts_is_refused() {
    for bad in [0x2000_0000u32, BASE + 0x2000 - 100, 0xffff_fff0] {
        let (r, sp) = running(Layout::L296, Endian::Big);
        sp.w32(SHARED, bad);
        assert_eq!(r.open(0, false).err(), Some(Errno(libc::ENOSYS)));
        assert_eq!(sp.refused(), 0);
    }
    // The vpe_shared variable itself outside the SP's memory.
    let sp = Sp::new(Layout::L296, Endian::Big);
    let r = Rtlx::new(Config::default());
    r.sp_started(SpView {
        shared: Some(0x4000_0000),
        ..sp.view(1)
    });
    assert_eq!(r.open(0, false).err(), Some(Errno(libc::ENOSYS)));
}

#[test]
fn the_legacy_kseg0_rule_applies_where_asked() {
    let sp = Sp::new(Layout::L296, Endian::Big);
    sp.publish();
    let r = Rtlx::new(Config::default());
    r.sp_started(SpView {
        kseg0_rule: true,
        ..sp.view(1)
    });
    assert_eq!(r.open(0, false).err(), Some(Errno(libc::ENOSYS)));
}

#[test]
fn hostile_channels_give_eio_and_never_reach_outside() {
    type Corrupt = fn(&mut Channel);
    // Which operations must fail: (write, read); each uses only its own ring.
    let cases: [(&str, Corrupt, bool, bool); 6] = [
        (
            "rt_buffer outside",
            |c| c.rt_buffer = 0x3000_0000,
            true,
            false,
        ),
        (
            "lx_buffer outside",
            |c| c.lx_buffer = 0x0fff_fff0,
            false,
            true,
        ),
        (
            "huge buffer_size",
            |c| c.buffer_size = 0x7fff_0000,
            true,
            true,
        ),
        ("buffer_size 0", |c| c.buffer_size = 0, true, true),
        ("rt_write beyond size", |c| c.rt_write = 0x1000, true, false),
        (
            "lx_read beyond size",
            |c| c.lx_read = 0xffff_ff00,
            false,
            true,
        ),
    ];
    for (what, corrupt, write_fails, read_fails) in cases {
        for (layout, e) in all() {
            let (r, sp) = running(layout, e);
            let fh = opened(r.open(1, false));
            let mut ch = sp.chan(1);
            corrupt(&mut ch);
            sp.set_chan(1, ch);
            let before = sp.snapshot();
            assert_eq!(r.poll(fh).unwrap(), POLLERR, "{what}");
            if write_fails {
                assert_eq!(r.write(fh, b"data", false), Err(Errno(libc::EIO)), "{what}");
            }
            if read_fails {
                assert_eq!(r.read(fh, 4, false), Err(Errno(libc::EIO)), "{what}");
            }
            assert_eq!(sp.snapshot(), before, "{what}: memory changed");
            if !read_fails {
                assert_eq!(r.read(fh, 4, true), Ok(Read::Data(vec![])), "{what}");
            }
            if !write_fails {
                assert_eq!(r.write(fh, b"data", true), Ok(Write::Wrote(4)), "{what}");
            }
            // Stopping with a corrupt channel open drains nothing and does not fail.
            r.sp_stopping();
            assert_eq!(r.read(fh, 4, false).unwrap(), Read::Eof);
        }
    }
}

#[test]
fn a_struct_fitting_neither_layout_is_enoexec() {
    let (r, sp) = running(Layout::L296, Endian::Big);
    // rt_state of channel 0 under 296, ap_int_pending under 300: not a state.
    let mut ch = sp.chan(0);
    ch.rt_state = 9;
    sp.set_chan(0, ch);
    for n in 1..RTLX_CHANNELS {
        sp.set_chan(n, Channel::default());
    }
    assert_eq!(r.open(0, false).err(), Some(Errno(libc::ENOEXEC)));
    // Told the layout, it opens; the channel is then refused per operation.
    let r = Rtlx::new(Config {
        layout: Choice::Fixed(Layout::L296),
        ..Config::default()
    });
    r.sp_started(sp.view(1));
    let fh = opened(r.open(1, false));
    assert_eq!(r.read(fh, 1, true).err(), Some(Errno(libc::EIO)));
    assert_eq!(r.status().layout_decided, Some("--rtlx-layout 296"));
}

#[test]
fn the_wrong_fixed_layout_misreads_but_stays_inside() {
    let (_, sp) = running(Layout::L300, Endian::Big);
    let r = Rtlx::new(Config {
        layout: Choice::Fixed(Layout::L296),
        ..Config::default()
    });
    r.sp_started(sp.view(1));
    for n in 0..RTLX_CHANNELS {
        if let Ok(Open::Opened(fh)) = r.open(n, true) {
            let _ = r.read(fh, 64, true);
            let _ = r.write(fh, b"probe", true);
            let _ = r.poll(fh);
            r.release(fh);
        }
    }
    assert_eq!(sp.refused(), 0);
}

#[test]
fn wait_for_returns_once_the_condition_holds_or_eintr() {
    let (r, sp) = running(Layout::L296, Endian::Little);
    let fh = opened(r.open(0, false));
    let sp = Arc::new(sp);
    let writer = {
        let sp = Arc::clone(&sp);
        std::thread::spawn(move || sp.send(0, b"late"))
    };
    let got = wait_for(
        || match r.read(fh, 10, false)? {
            Read::Data(d) => Ok(Some(d)),
            Read::Eof => Err(Errno(libc::EIO)),
            Read::Wait => Ok(None),
        },
        || false,
    )
    .unwrap();
    writer.join().unwrap();
    assert_eq!(got, b"late");
    let stop = AtomicBool::new(false);
    let tries = AtomicUsize::new(0);
    let res: Result<(), Errno> = wait_for(
        || {
            if tries.fetch_add(1, Ordering::SeqCst) == 5 {
                stop.store(true, Ordering::SeqCst);
            }
            Ok(None)
        },
        || stop.load(Ordering::SeqCst),
    );
    assert_eq!(res, Err(Errno(libc::EINTR)));
}

#[test]
fn backoff_spins_then_doubles_to_its_cap() {
    let mut b = Backoff::new();
    let d: Vec<u64> = (0..16).map(|_| b.next_delay().as_micros() as u64).collect();
    assert_eq!(
        d,
        [0, 0, 0, 20, 40, 80, 160, 320, 640, 1280, 2560, 5000, 5000, 5000, 5000, 5000]
    );
    b.reset();
    assert_eq!(b.next_delay(), Duration::ZERO);
}

#[test]
fn kspd_holds_channel_2_and_serves_it() {
    use vpe::rtlx::kspd::{Reply, Request, MTSP_SYSCALL_EXIT};
    for (layout, e) in all() {
        let sp = Sp::new(layout, e);
        let r = Rtlx::new(Config {
            kspd: true,
            ..Config::default()
        });
        let dir = tempfile::tempdir().unwrap();
        let mut k = kspd::Kspd::new(
            kspd::KspdConfig::default(),
            kspd::Loader {
                uid: 0,
                gid: 0,
                cwd: dir.path().to_path_buf(),
            },
        );
        assert_eq!(r.kspd_step(&mut k).unwrap(), KspdStep::Idle);
        r.sp_started(sp.view(1));
        assert_eq!(
            r.kspd_step(&mut k).unwrap(),
            KspdStep::Idle,
            "not published yet"
        );
        sp.publish();
        assert_eq!(r.kspd_step(&mut k).unwrap(), KspdStep::Served(vec![]));
        assert_eq!(sp.chan(2).lx_state, State::Opened as u32);
        assert_eq!(r.open(2, true).err(), Some(Errno(libc::EBUSY)));
        assert_eq!(r.open(2, false).err(), Some(Errno(libc::EBUSY)));
        opened(r.open(1, true));
        let exit = Request {
            cmd: MTSP_SYSCALL_EXIT,
            abi: 0,
            size: 4,
            args: [7, 0, 0, 0, 0, 0, 0],
        };
        // A 12-byte request does not fit a 16-byte ring twice: send, serve, read back.
        sp.send(2, &exit.encode(e));
        assert_eq!(
            r.kspd_step(&mut k).unwrap(),
            KspdStep::Served(vec![kspd::Event::Exit(7)])
        );
        let reply = sp.recv(2);
        let reply = Reply::decode(reply.try_into().unwrap(), e);
        assert_eq!((reply.retval, reply.errno), (-1, 0));
        r.sp_stopping();
        k.sp_stopped();
        assert_eq!(r.kspd_step(&mut k).unwrap(), KspdStep::Idle);
    }
}

#[test]
fn kspd_gives_up_on_a_bad_struct_until_the_next_start() {
    let sp = Sp::new(Layout::L296, Endian::Big);
    sp.publish();
    sp.w32(INFO, 0x1234_5601);
    let r = Rtlx::new(Config {
        kspd: true,
        ..Config::default()
    });
    let mut k = kspd::Kspd::new(
        kspd::KspdConfig::default(),
        kspd::Loader {
            uid: 0,
            gid: 0,
            cwd: "/".into(),
        },
    );
    r.sp_started(sp.view(1));
    assert_eq!(r.kspd_step(&mut k), Err(Errno(libc::ENOEXEC)));
    sp.w32(INFO, RTLX_ID);
    assert_eq!(
        r.kspd_step(&mut k),
        Ok(KspdStep::Idle),
        "no retry in this run"
    );
    r.sp_stopping();
    r.sp_started(sp.view(2));
    assert_eq!(r.kspd_step(&mut k), Ok(KspdStep::Served(vec![])));
}
