//! The kspd server against SP memory in vectors: requests as an SDE-built SP would send
//! them, on channel 2's rings or one at a time.

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use vpe::rtlx::kspd::{
    Request, MTSP_SYSCALL_CLOSE, MTSP_SYSCALL_EXIT, MTSP_SYSCALL_GETTOD, MTSP_SYSCALL_IOCTL,
    MTSP_SYSCALL_ISATTY, MTSP_SYSCALL_LSEEK32, MTSP_SYSCALL_OPEN, MTSP_SYSCALL_PIPEFREQ,
    MTSP_SYSCALL_READ, MTSP_SYSCALL_WRITE, NR_GETTIMEOFDAY, NR_OPEN, NR_TIME, NR_UNLINK,
};
use vpe::rtlx::ring::Channel;
use vpe::spmem::{Region, VecMemory};

use super::*;

const BASE: u32 = 0x1000_0000;
const PATH: u32 = BASE + 0x100;
const BUF: u32 = BASE + 0x200;
const CHAN: u32 = BASE + 0x800;
const RT: u32 = BASE + 0x900;
const LX: u32 = BASE + 0xa00;
const RING: u32 = 0x100;
const E: Endian = Endian::Big;

fn carveouts() -> Carveouts {
    Carveouts::new(vec![Region {
        name: "vpe1".into(),
        da: BASE,
        len: 0x1000,
        pa: 0,
    }])
}

struct Sp {
    mem: VecMemory,
    cv: Carveouts,
}

impl Sp {
    fn new() -> Sp {
        let mem = VecMemory::new(carveouts());
        let ch = Channel {
            rt_state: 1,
            buffer_size: RING,
            rt_buffer: RT,
            lx_buffer: LX,
            ..Default::default()
        };
        mem.write(CHAN, &ch.encode(E)).unwrap();
        Sp {
            mem,
            cv: carveouts(),
        }
    }

    fn cstr(&self, at: u32, s: &str) {
        let mut b = s.as_bytes().to_vec();
        b.push(0);
        self.mem.write(at, &b).unwrap();
    }

    fn chan(&self) -> Channel {
        let mut b = [0u8; 36];
        self.mem.read(CHAN, &mut b).unwrap();
        Channel::decode(&b, E)
    }

    /// The SP sends request bytes on its lx ring.
    fn send(&self, bytes: &[u8]) {
        let mut ch = self.chan();
        for &b in bytes {
            self.mem.write(LX + ch.lx_write, &[b]).unwrap();
            ch.lx_write = (ch.lx_write + 1) % RING;
        }
        self.mem.write(CHAN, &ch.encode(E)).unwrap();
    }

    /// The SP reads its rt ring.
    fn recv(&self) -> Vec<u8> {
        let mut ch = self.chan();
        let mut out = vec![];
        while ch.rt_read != ch.rt_write {
            let mut b = [0u8];
            self.mem.read(RT + ch.rt_read, &mut b).unwrap();
            out.push(b[0]);
            ch.rt_read = (ch.rt_read + 1) % RING;
        }
        self.mem.write(CHAN, &ch.encode(E)).unwrap();
        out
    }
}

fn site() -> Site {
    Site {
        index: 2,
        info: BASE,
        addr: CHAN,
    }
}

fn req(cmd: i32, args: &[i32]) -> Request {
    Request::with_args(cmd, args)
}

fn kspd(cwd: &Path, root: Option<PathBuf>, uid: u32) -> Kspd {
    Kspd::new(
        KspdConfig {
            root,
            pipefreq_hz: 500_000_000,
        },
        Loader {
            uid,
            gid: uid,
            cwd: cwd.to_path_buf(),
        },
    )
}

fn call(k: &mut Kspd, sp: &Sp, cmd: i32, args: &[i32]) -> i32 {
    let (reply, ev) = k.handle(&req(cmd, args), &sp.mem, &sp.cv, E);
    assert_eq!(ev, None);
    assert_eq!(reply.errno, 0);
    reply.retval
}

/// setfsuid is per thread: every test that changes credentials runs on its own.
fn on_own_thread(f: impl FnOnce() + Send + 'static) {
    std::thread::spawn(f).join().unwrap();
}

#[test]
fn an_sde_program_writes_reads_and_removes_a_file_in_the_loaders_cwd() {
    on_own_thread(|| {
        let dir = tempfile::tempdir().unwrap();
        let sp = Sp::new();
        let mut k = kspd(dir.path(), None, 0);
        sp.cstr(PATH, "out.txt");
        // SDE O_WRONLY|O_CREAT|O_TRUNC = 0x601.
        assert_eq!(
            call(&mut k, &sp, MTSP_SYSCALL_OPEN, &[PATH as i32, 0x601, 0o644]),
            0
        );
        sp.mem.write(BUF, b"hi kspd\n").unwrap();
        assert_eq!(
            call(&mut k, &sp, MTSP_SYSCALL_WRITE, &[0, BUF as i32, 8]),
            8
        );
        assert_eq!(call(&mut k, &sp, MTSP_SYSCALL_CLOSE, &[0]), 0);
        assert_eq!(
            std::fs::read(dir.path().join("out.txt")).unwrap(),
            b"hi kspd\n"
        );

        assert_eq!(call(&mut k, &sp, MTSP_SYSCALL_OPEN, &[PATH as i32, 0]), 0);
        assert_eq!(call(&mut k, &sp, MTSP_SYSCALL_LSEEK32, &[0, 3, 0]), 3);
        assert_eq!(
            call(
                &mut k,
                &sp,
                MTSP_SYSCALL_READ,
                &[0, (BUF + 0x40) as i32, 100]
            ),
            5
        );
        let mut b = [0u8; 5];
        sp.mem.read(BUF + 0x40, &mut b).unwrap();
        assert_eq!(&b, b"kspd\n");
        assert_eq!(k.open_fds(), [0]);
        k.sp_stopped();
        assert_eq!(k.open_fds(), [] as [i32; 0]);
        assert_eq!(call(&mut k, &sp, NR_UNLINK, &[PATH as i32]), 0);
        assert!(!dir.path().join("out.txt").exists());
        // Errors are -errno in MIPS numbering.
        assert_eq!(call(&mut k, &sp, MTSP_SYSCALL_OPEN, &[PATH as i32, 0]), -2);
        assert_eq!(call(&mut k, &sp, MTSP_SYSCALL_CLOSE, &[7]), -9);
    });
}

#[test]
fn requests_and_replies_travel_on_channel_2() {
    on_own_thread(|| {
        let dir = tempfile::tempdir().unwrap();
        let sp = Sp::new();
        let mut k = kspd(dir.path(), None, 0);
        sp.cstr(PATH, "f");
        let open = req(MTSP_SYSCALL_OPEN, &[PATH as i32, 0x601, 0o600]).encode(E);
        // Half a request: nothing to answer yet.
        sp.send(&open[..10]);
        assert_eq!(k.pump(&site(), &sp.mem, &sp.cv, E).unwrap(), []);
        assert_eq!(sp.recv(), b"");
        sp.send(&open[10..]);
        sp.send(&req(MTSP_SYSCALL_PIPEFREQ, &[]).encode(E));
        sp.send(&req(MTSP_SYSCALL_EXIT, &[3]).encode(E));
        assert_eq!(
            k.pump(&site(), &sp.mem, &sp.cv, E).unwrap(),
            [Event::Exit(3)]
        );
        let replies = sp.recv();
        let words: Vec<i32> = replies
            .chunks(4)
            .map(|c| E.read_u32([c[0], c[1], c[2], c[3]]) as i32)
            .collect();
        // open -> fd 0; PIPEFREQ -> the frequency; EXIT -> -1: one reply per request.
        assert_eq!(words, [0, 0, 500_000_000, 0, -1, 0]);
    });
}

#[test]
fn replies_wait_for_room_in_the_ring() {
    let dir = tempfile::tempdir().unwrap();
    let sp = Sp::new();
    let mut k = kspd(dir.path(), None, 0);
    // 40 requests of 8 bytes -> 320 reply bytes, more than the 255 the ring holds.
    let many: Vec<u8> = (0..40)
        .flat_map(|_| req(MTSP_SYSCALL_GETTOD, &[]).encode(E))
        .collect();
    let (a, b) = many.split_at(200);
    sp.send(a);
    k.pump(&site(), &sp.mem, &sp.cv, E).unwrap();
    sp.send(b);
    k.pump(&site(), &sp.mem, &sp.cv, E).unwrap();
    // The ring holds 255 bytes; the rest waits (kspd.c dropped it) and follows in order.
    let mut got = sp.recv();
    assert_eq!(got.len(), 255);
    k.pump(&site(), &sp.mem, &sp.cv, E).unwrap();
    got.extend(sp.recv());
    assert_eq!(got.len(), 320);
    for r in got.chunks(8) {
        assert!(E.read_u32([r[0], r[1], r[2], r[3]]) > 1_700_000_000);
    }
}

#[test]
fn refused_and_hostile_requests_get_minus_one_or_efault() {
    let dir = tempfile::tempdir().unwrap();
    let sp = Sp::new();
    let mut k = kspd(dir.path(), None, 0);
    for cmd in [MTSP_SYSCALL_ISATTY, MTSP_SYSCALL_IOCTL, 4001, 4002, 77] {
        assert_eq!(call(&mut k, &sp, cmd, &[0, 0, 0]), -1, "cmd {cmd}");
    }
    sp.cstr(PATH, "f");
    assert_eq!(
        call(&mut k, &sp, MTSP_SYSCALL_OPEN, &[PATH as i32, 0x601, 0o600]),
        0
    );
    // A buffer outside the carveouts, or running past it.
    assert_eq!(
        call(&mut k, &sp, MTSP_SYSCALL_WRITE, &[0, 0x2000_0000, 4]),
        -14
    );
    assert_eq!(
        call(
            &mut k,
            &sp,
            MTSP_SYSCALL_WRITE,
            &[0, (BASE + 0xff0) as i32, 0x20]
        ),
        -14
    );
    assert_eq!(call(&mut k, &sp, MTSP_SYSCALL_READ, &[0, -1, 4]), -14);
    assert_eq!(call(&mut k, &sp, NR_OPEN, &[0x3000_0000, 0]), -14);
    // A path with no NUL before the end of the carveout.
    sp.mem.write(BASE + 0xffc, b"abcd").unwrap();
    assert_eq!(call(&mut k, &sp, NR_OPEN, &[(BASE + 0xffc) as i32, 0]), -14);
    // An argument block larger than struct mtsp_syscall_generic: -1, stream dropped.
    let mut bad = req(MTSP_SYSCALL_WRITE, &[]).encode(E);
    bad[5] = 200;
    sp.send(&bad);
    assert_eq!(k.pump(&site(), &sp.mem, &sp.cv, E).unwrap(), []);
    assert_eq!(sp.recv(), [0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]);
}

#[test]
fn time_calls_store_in_the_sps_byte_order() {
    let dir = tempfile::tempdir().unwrap();
    let sp = Sp::new();
    let mut k = kspd(dir.path(), None, 0);
    let t = call(&mut k, &sp, NR_TIME, &[BUF as i32]);
    let mut b = [0u8; 4];
    sp.mem.read(BUF, &mut b).unwrap();
    assert_eq!(E.read_u32(b) as i32, t);
    assert!(t > 1_700_000_000);
    assert_eq!(
        call(
            &mut k,
            &sp,
            NR_GETTIMEOFDAY,
            &[(BUF + 8) as i32, (BUF + 16) as i32]
        ),
        0
    );
    sp.mem.read(BUF + 8, &mut b).unwrap();
    assert!((E.read_u32(b) as i32) >= t);
    assert!(call(&mut k, &sp, MTSP_SYSCALL_GETTOD, &[]) >= t);
}

#[test]
fn kspd_root_confines_every_path() {
    on_own_thread(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        std::fs::create_dir(&root).unwrap();
        std::fs::write(dir.path().join("outside"), b"secret").unwrap();
        std::os::unix::fs::symlink("../outside", root.join("link")).unwrap();
        std::fs::write(root.join("inside"), b"ok").unwrap();
        let sp = Sp::new();
        let mut k = kspd(Path::new("/"), Some(root.clone()), 0);
        for p in ["../outside", "/../outside", "link"] {
            sp.cstr(PATH, p);
            assert_eq!(call(&mut k, &sp, NR_OPEN, &[PATH as i32, 0]), -2, "{p}");
        }
        for p in ["../outside", "/../outside"] {
            sp.cstr(PATH, p);
            assert_eq!(call(&mut k, &sp, NR_UNLINK, &[PATH as i32]), -2, "{p}");
        }
        // Unlinking the symlink removes the link, never its target.
        sp.cstr(PATH, "link");
        assert_eq!(call(&mut k, &sp, NR_UNLINK, &[PATH as i32]), 0);
        assert!(root.join("link").symlink_metadata().is_err());
        assert!(dir.path().join("outside").exists());
        for p in ["inside", "/inside", "../inside"] {
            sp.cstr(PATH, p);
            let fd = call(&mut k, &sp, NR_OPEN, &[PATH as i32, 0]);
            assert!(fd >= 0, "{p}");
            assert_eq!(call(&mut k, &sp, MTSP_SYSCALL_CLOSE, &[fd]), 0);
        }
        sp.cstr(PATH, "../inside");
        assert_eq!(call(&mut k, &sp, NR_UNLINK, &[PATH as i32]), 0);
        assert!(!root.join("inside").exists());
    });
}

#[test]
fn file_calls_run_with_the_loaders_credentials_not_root() {
    on_own_thread(|| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let private = dir.path().join("root-only");
        std::fs::write(&private, b"x").unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o600)).unwrap();
        let sp = Sp::new();
        let mut k = kspd(dir.path(), None, 65534);
        sp.cstr(PATH, "root-only");
        assert_eq!(call(&mut k, &sp, MTSP_SYSCALL_OPEN, &[PATH as i32, 0]), -13);
        sp.cstr(PATH, "mine");
        assert_eq!(
            call(&mut k, &sp, MTSP_SYSCALL_OPEN, &[PATH as i32, 0x601, 0o644]),
            0
        );
        let meta = std::fs::metadata(dir.path().join("mine")).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        // The daemon thread is root again afterwards.
        assert!(std::fs::read(&private).is_ok());
        let mut as_root = kspd(dir.path(), None, 0);
        sp.cstr(PATH, "root-only");
        assert_eq!(
            call(&mut as_root, &sp, MTSP_SYSCALL_OPEN, &[PATH as i32, 0]),
            0
        );
    });
}
