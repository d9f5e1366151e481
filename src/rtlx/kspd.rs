//! kspd (`arch/mips/kernel/kspd.c`, kernels ≤ 3.6): the SP's libc calls, served on RTLX
//! channel 2. Pure parts only: the request/reply codec, the SDE open-flag translation, and
//! what each command number means ([`classify`]).
//!
//! A request is `struct mtsp_syscall {int cmd; u8 abi; u8 size;}` (8 bytes with padding)
//! followed by `size` bytes of `struct mtsp_syscall_generic {int arg0..arg6}`; every request
//! gets the reply `struct mtsp_syscall_ret {int retval; int errno;}`. All ints are in the SP's
//! byte order.
//!
//! kspd.c ran `cmd` as an o32 system call when it was in `[__NR_Linux, __NR_Linux +
//! __NR_Linux_syscalls]`, else through `syscall_command_table` (OPEN, READ, WRITE, CLOSE,
//! LSEEK32, IOCTL → `__NR_open`, ...; ISATTY and GETTIME are in no table), and answered
//! PIPEFREQ, GETTOD and EXIT itself. As a kernel thread it could run any system call; the
//! shim passes through only the file and time calls of [`PASSED_THROUGH`] and refuses the
//! rest with the kernel's `KSPD: Unknown SP syscall number %d` (reply -1, as kspd.c).

use crate::elf::Endian;
use crate::error::{Error, Result};

/// `sizeof(struct mtsp_syscall)`: int + 2 chars, padded to the int's alignment.
pub const HEADER_SIZE: usize = 8;
/// `sizeof(struct mtsp_syscall_generic)`: 7 ints. kspd.c read `size` bytes into it unchecked.
pub const ARGS_MAX: usize = 28;
/// `sizeof(struct mtsp_syscall_ret)`.
pub const REPLY_SIZE: usize = 8;

// MTSP_SYSCALL_* ("these should match with those in the SDE kit").
pub const MTSP_SYSCALL_EXIT: i32 = 0;
pub const MTSP_SYSCALL_OPEN: i32 = 1;
pub const MTSP_SYSCALL_READ: i32 = 2;
pub const MTSP_SYSCALL_WRITE: i32 = 3;
pub const MTSP_SYSCALL_CLOSE: i32 = 4;
pub const MTSP_SYSCALL_LSEEK32: i32 = 5;
pub const MTSP_SYSCALL_ISATTY: i32 = 6;
pub const MTSP_SYSCALL_GETTIME: i32 = 7;
pub const MTSP_SYSCALL_PIPEFREQ: i32 = 8;
pub const MTSP_SYSCALL_GETTOD: i32 = 9;
pub const MTSP_SYSCALL_IOCTL: i32 = 10;

// MTSP_O_* (SDE open flags).
pub const MTSP_O_WRONLY: u32 = 0x0001;
pub const MTSP_O_RDWR: u32 = 0x0002;
pub const MTSP_O_NONBLOCK: u32 = 0x0004;
pub const MTSP_O_APPEND: u32 = 0x0008;
pub const MTSP_O_SYNC: u32 = 0x0080;
pub const MTSP_O_NOFOLLOW: u32 = 0x0100;
pub const MTSP_O_CREAT: u32 = 0x0200;
pub const MTSP_O_TRUNC: u32 = 0x0400;
pub const MTSP_O_EXCL: u32 = 0x0800;

/// MIPS Linux open flags (arch/mips/include/uapi/asm/fcntl.h + asm-generic/fcntl.h): what
/// `__NR_open` on the SP's kernel took, so what translated and raw requests carry.
pub mod o32 {
    pub const O_WRONLY: u32 = 0x0001;
    pub const O_RDWR: u32 = 0x0002;
    pub const O_ACCMODE: u32 = 0x0003;
    pub const O_APPEND: u32 = 0x0008;
    pub const O_DSYNC: u32 = 0x0010;
    pub const O_NONBLOCK: u32 = 0x0080;
    pub const O_CREAT: u32 = 0x0100;
    pub const O_TRUNC: u32 = 0x0200;
    pub const O_EXCL: u32 = 0x0400;
    pub const O_NOCTTY: u32 = 0x0800;
    pub const O_LARGEFILE: u32 = 0x2000;
    /// `__O_SYNC`; `O_SYNC` is `__O_SYNC | O_DSYNC`.
    pub const O_SYNC_BIT: u32 = 0x4000;
    pub const O_DIRECTORY: u32 = 0x1_0000;
    pub const O_NOFOLLOW: u32 = 0x2_0000;
    pub const O_CLOEXEC: u32 = 0x8_0000;
}

/// `__NR_Linux` for o32.
pub const NR_LINUX: i32 = 4000;
pub const NR_EXIT: i32 = 4001;
pub const NR_READ: i32 = 4003;
pub const NR_WRITE: i32 = 4004;
pub const NR_OPEN: i32 = 4005;
pub const NR_CLOSE: i32 = 4006;
pub const NR_UNLINK: i32 = 4010;
pub const NR_TIME: i32 = 4013;
pub const NR_LSEEK: i32 = 4019;
pub const NR_IOCTL: i32 = 4054;
pub const NR_GETTIMEOFDAY: i32 = 4078;

/// The o32 calls the shim runs for the SP, with their names.
pub const PASSED_THROUGH: [(i32, &str); 8] = [
    (NR_READ, "read"),
    (NR_WRITE, "write"),
    (NR_OPEN, "open"),
    (NR_CLOSE, "close"),
    (NR_UNLINK, "unlink"),
    (NR_TIME, "time"),
    (NR_LSEEK, "lseek"),
    (NR_GETTIMEOFDAY, "gettimeofday"),
];

/// One decoded request. Argument words the SP did not send are 0 (kspd.c left them as stack
/// garbage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub cmd: i32,
    pub abi: u8,
    pub size: u8,
    pub args: [i32; 7],
}

/// What [`decode`] found at the front of the bytes read so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded {
    /// Not a whole request yet: `need` bytes in all.
    NeedMore { need: usize },
    /// A request and how many bytes it used.
    Request { request: Request, consumed: usize },
}

/// Decode the request at the front of `bytes` (a stream: a request may arrive in pieces;
/// kspd.c read whatever part was there).
pub fn decode(bytes: &[u8], e: Endian) -> Result<Decoded> {
    if bytes.len() < HEADER_SIZE {
        return Ok(Decoded::NeedMore { need: HEADER_SIZE });
    }
    let word = |at: usize| e.read_u32([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    let cmd = word(0) as i32;
    let (abi, size) = (bytes[4], bytes[5]);
    if size as usize > ARGS_MAX {
        return Err(Error::Kspd {
            message: format!(
                "KSPD: request cmd {cmd} carries {size} argument bytes; struct mtsp_syscall_generic holds {ARGS_MAX} (kspd.c would have overrun its stack)"
            ),
        });
    }
    let need = HEADER_SIZE + size as usize;
    if bytes.len() < need {
        return Ok(Decoded::NeedMore { need });
    }
    let mut args = [0i32; 7];
    let mut raw = [0u8; ARGS_MAX];
    raw[..size as usize].copy_from_slice(&bytes[HEADER_SIZE..need]);
    for (i, a) in args.iter_mut().enumerate() {
        *a = e.read_u32([raw[4 * i], raw[4 * i + 1], raw[4 * i + 2], raw[4 * i + 3]]) as i32;
    }
    Ok(Decoded::Request {
        request: Request {
            cmd,
            abi,
            size,
            args,
        },
        consumed: need,
    })
}

impl Request {
    /// A request with `args` (at most 7 words, the rest 0) and the `size` an SP would send for
    /// them; the tests' encoder input.
    pub fn with_args(cmd: i32, args: &[i32]) -> Request {
        let mut a = [0; 7];
        let n = args.len().min(a.len());
        a[..n].copy_from_slice(&args[..n]);
        Request {
            cmd,
            abi: 0,
            size: (4 * n) as u8,
            args: a,
        }
    }

    /// The bytes an SP sends for this request (for tests and SP-side tools).
    pub fn encode(&self, e: Endian) -> Vec<u8> {
        let mut out = e.u32_bytes(self.cmd as u32).to_vec();
        out.extend_from_slice(&[self.abi, self.size, 0, 0]);
        let mut args = Vec::with_capacity(ARGS_MAX);
        for a in self.args {
            args.extend_from_slice(&e.u32_bytes(a as u32));
        }
        out.extend_from_slice(&args[..(self.size as usize).min(ARGS_MAX)]);
        out
    }
}

/// `struct mtsp_syscall_ret`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// The call's result; a failed system call is `-errno` in MIPS numbering (`sp_syscall`
    /// negated `$v0` when `$a3` flagged an error).
    pub retval: i32,
    /// kspd.c set it only for PIPEFREQ (0); the shim always writes 0.
    pub errno: i32,
}

impl Reply {
    pub fn encode(&self, e: Endian) -> [u8; REPLY_SIZE] {
        let mut b = [0u8; REPLY_SIZE];
        b[..4].copy_from_slice(&e.u32_bytes(self.retval as u32));
        b[4..].copy_from_slice(&e.u32_bytes(self.errno as u32));
        b
    }

    pub fn decode(b: [u8; REPLY_SIZE], e: Endian) -> Reply {
        Reply {
            retval: e.read_u32([b[0], b[1], b[2], b[3]]) as i32,
            errno: e.read_u32([b[4], b[5], b[6], b[7]]) as i32,
        }
    }
}

/// `translate_open_flags`: each SDE bit of `open_flags_table` that is set adds its Linux flag
/// (so RDWR|WRONLY gives access mode 3, as in kspd.c); EXCL, SYNC and the rest are dropped.
pub fn sde_open_flags(sde: u32) -> u32 {
    [
        (MTSP_O_RDWR, o32::O_RDWR),
        (MTSP_O_WRONLY, o32::O_WRONLY),
        (MTSP_O_CREAT, o32::O_CREAT),
        (MTSP_O_TRUNC, o32::O_TRUNC),
        (MTSP_O_NONBLOCK, o32::O_NONBLOCK),
        (MTSP_O_APPEND, o32::O_APPEND),
        (MTSP_O_NOFOLLOW, o32::O_NOFOLLOW),
    ]
    .iter()
    .filter(|(sp, _)| sde & sp != 0)
    .fold(0, |acc, (_, ap)| acc | ap)
}

/// MIPS Linux open flags as this host's `open(2)` flags. Unknown bits and access mode 3 are
/// refused (the host could give them another meaning).
pub fn o32_open_flags_to_host(flags: u32) -> Result<i32> {
    use o32::*;
    let acc = match flags & O_ACCMODE {
        0 => libc::O_RDONLY,
        O_WRONLY => libc::O_WRONLY,
        O_RDWR => libc::O_RDWR,
        _ => {
            return Err(Error::Kspd {
                message: format!("KSPD: open flags {flags:#x}: access mode 3 is not served"),
            })
        }
    };
    let table = [
        (O_APPEND, libc::O_APPEND),
        (O_DSYNC, libc::O_DSYNC),
        (O_NONBLOCK, libc::O_NONBLOCK),
        (O_CREAT, libc::O_CREAT),
        (O_TRUNC, libc::O_TRUNC),
        (O_EXCL, libc::O_EXCL),
        (O_NOCTTY, libc::O_NOCTTY),
        (O_LARGEFILE, 0),
        (O_SYNC_BIT, libc::O_SYNC),
        (O_DIRECTORY, libc::O_DIRECTORY),
        (O_NOFOLLOW, libc::O_NOFOLLOW),
        (O_CLOEXEC, libc::O_CLOEXEC),
    ];
    let known = table.iter().fold(O_ACCMODE, |a, (b, _)| a | b);
    if flags & !known != 0 {
        return Err(Error::Kspd {
            message: format!(
                "KSPD: open flags {flags:#x}: bits {:#x} are not o32 open flags the shim serves",
                flags & !known
            ),
        });
    }
    Ok(table
        .iter()
        .filter(|(b, _)| flags & b != 0)
        .fold(acc, |a, (_, h)| a | h))
}

/// A host errno in MIPS numbering (the SP's libc expects its kernel's numbers; 1–34 are the
/// same everywhere, the rest differ on MIPS). Unlisted values become EIO.
pub fn o32_errno(host: i32) -> i32 {
    match host {
        1..=34 => host,
        libc::ENAMETOOLONG => 78,
        libc::ENOLCK => 46,
        libc::ENOSYS => 89,
        libc::ENOTEMPTY => 93,
        libc::ELOOP => 90,
        libc::EOVERFLOW => 79,
        libc::EDQUOT => 1133,
        _ => 5,
    }
}

/// Memory the SP names in a call: an SP address and how many bytes (a path is a NUL-terminated
/// string of at most `len` bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpBuf {
    pub da: u32,
    pub len: u32,
}

/// A system call to run for the SP, its pointer arguments still SP addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Syscall {
    Read {
        fd: i32,
        buf: SpBuf,
    },
    Write {
        fd: i32,
        buf: SpBuf,
    },
    /// `flags` in MIPS Linux numbering ([`o32_open_flags_to_host`]).
    Open {
        path: u32,
        flags: u32,
        mode: u32,
    },
    Close {
        fd: i32,
    },
    Unlink {
        path: u32,
    },
    /// `tloc` 0: no store.
    Time {
        tloc: u32,
    },
    Lseek {
        fd: i32,
        offset: i32,
        whence: i32,
    },
    Gettimeofday {
        tv: u32,
        tz: u32,
    },
}

/// What a request asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    /// MTSP_SYSCALL_EXIT: halt the SP (`KSPD got exit syscall from SP exitcode %d`).
    Exit { code: i32 },
    /// MTSP_SYSCALL_PIPEFREQ: `cpu_khz * 1000`, errno 0.
    PipeFreq,
    /// MTSP_SYSCALL_GETTOD: `tv_sec`.
    GetTod,
    /// MTSP_SYSCALL_OPEN (flags already translated, run in the loader's cwd) or a call from
    /// the table or a raw o32 number.
    Sys {
        number: i32,
        call: Syscall,
        /// Came through MTSP_SYSCALL_OPEN: `chdir` to the loader's cwd first.
        sde_open: bool,
    },
    /// Reply -1 and log `message` (starts with the kernel's text).
    Refused { message: String },
}

/// `sp_work_handle_request`'s switch.
pub fn classify(req: &Request) -> Call {
    let a = req.args;
    let number = match req.cmd {
        MTSP_SYSCALL_EXIT => return Call::Exit { code: a[0] },
        MTSP_SYSCALL_PIPEFREQ => return Call::PipeFreq,
        MTSP_SYSCALL_GETTOD => return Call::GetTod,
        MTSP_SYSCALL_OPEN => {
            return Call::Sys {
                number: NR_OPEN,
                call: Syscall::Open {
                    path: a[0] as u32,
                    flags: sde_open_flags(a[1] as u32),
                    mode: a[2] as u32,
                },
                sde_open: true,
            }
        }
        MTSP_SYSCALL_READ => NR_READ,
        MTSP_SYSCALL_WRITE => NR_WRITE,
        MTSP_SYSCALL_CLOSE => NR_CLOSE,
        MTSP_SYSCALL_LSEEK32 => NR_LSEEK,
        MTSP_SYSCALL_IOCTL => NR_IOCTL,
        n => n,
    };
    let call = match number {
        NR_READ => Syscall::Read {
            fd: a[0],
            buf: SpBuf {
                da: a[1] as u32,
                len: a[2] as u32,
            },
        },
        NR_WRITE => Syscall::Write {
            fd: a[0],
            buf: SpBuf {
                da: a[1] as u32,
                len: a[2] as u32,
            },
        },
        NR_OPEN => Syscall::Open {
            path: a[0] as u32,
            flags: a[1] as u32,
            mode: a[2] as u32,
        },
        NR_CLOSE => Syscall::Close { fd: a[0] },
        NR_UNLINK => Syscall::Unlink { path: a[0] as u32 },
        NR_TIME => Syscall::Time { tloc: a[0] as u32 },
        NR_LSEEK => Syscall::Lseek {
            fd: a[0],
            offset: a[1],
            whence: a[2],
        },
        NR_GETTIMEOFDAY => Syscall::Gettimeofday {
            tv: a[0] as u32,
            tz: a[1] as u32,
        },
        _ => {
            let served = PASSED_THROUGH
                .iter()
                .map(|(n, name)| format!("{name} {n}"))
                .collect::<Vec<_>>()
                .join(", ");
            let why = if number >= NR_LINUX && req.cmd == number {
                format!("o32 system call {number} is not among those vpe-compat passes through ({served})")
            } else if number == NR_IOCTL {
                format!("MTSP_SYSCALL_IOCTL (o32 ioctl) is not among those vpe-compat passes through ({served})")
            } else {
                "neither an MTSP command kspd.c served nor an o32 system call number".to_string()
            };
            return Call::Refused {
                message: format!("KSPD: Unknown SP syscall number {} ({why})", req.cmd),
            };
        }
    };
    Call::Sys {
        number,
        call,
        sde_open: false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(cmd: i32, args: &[i32]) -> Request {
        Request::with_args(cmd, args)
    }

    #[test]
    fn requests_round_trip_in_both_byte_orders_and_arrive_in_pieces() {
        for e in [Endian::Big, Endian::Little] {
            let r = req(MTSP_SYSCALL_OPEN, &[0x1000_0040, 0x0201, 0o644]);
            let bytes = r.encode(e);
            assert_eq!(bytes.len(), 8 + 12);
            for cut in 0..bytes.len() {
                let need = if cut < 8 { 8 } else { 20 };
                assert_eq!(
                    decode(&bytes[..cut], e).unwrap(),
                    Decoded::NeedMore { need }
                );
            }
            let mut two = bytes.clone();
            two.extend_from_slice(&req(MTSP_SYSCALL_EXIT, &[3]).encode(e));
            assert_eq!(
                decode(&two, e).unwrap(),
                Decoded::Request {
                    request: r,
                    consumed: 20
                }
            );
            let Decoded::Request { request, .. } = decode(&two[20..], e).unwrap() else {
                panic!("second request");
            };
            assert_eq!(classify(&request), Call::Exit { code: 3 });
        }
        // Byte order is the SP's: cmd 1 big-endian.
        assert_eq!(&req(1, &[]).encode(Endian::Big)[..6], &[0, 0, 0, 1, 0, 0]);
    }

    #[test]
    fn an_oversized_argument_block_is_refused() {
        let mut b = req(MTSP_SYSCALL_WRITE, &[]).encode(Endian::Big);
        b[5] = 29;
        let err = decode(&b, Endian::Big).unwrap_err().to_string();
        assert!(err.contains("carries 29 argument bytes; struct mtsp_syscall_generic holds 28"));
    }

    #[test]
    fn replies_encode_in_the_sp_byte_order() {
        let r = Reply {
            retval: -2,
            errno: 0,
        };
        assert_eq!(r.encode(Endian::Big), [0xff, 0xff, 0xff, 0xfe, 0, 0, 0, 0]);
        assert_eq!(Reply::decode(r.encode(Endian::Little), Endian::Little), r);
    }

    #[test]
    fn sde_flags_translate_as_kspd_did() {
        assert_eq!(sde_open_flags(0), 0);
        assert_eq!(
            sde_open_flags(MTSP_O_WRONLY | MTSP_O_CREAT | MTSP_O_TRUNC),
            o32::O_WRONLY | o32::O_CREAT | o32::O_TRUNC
        );
        assert_eq!(
            sde_open_flags(MTSP_O_RDWR | MTSP_O_APPEND | MTSP_O_NONBLOCK | MTSP_O_NOFOLLOW),
            o32::O_RDWR | o32::O_APPEND | o32::O_NONBLOCK | o32::O_NOFOLLOW
        );
        // EXCL and SYNC are not in open_flags_table: dropped.
        assert_eq!(
            sde_open_flags(MTSP_O_EXCL | MTSP_O_SYNC | MTSP_O_CREAT),
            o32::O_CREAT
        );
        // Both access bits: mode 3, which the host side refuses.
        assert_eq!(sde_open_flags(MTSP_O_RDWR | MTSP_O_WRONLY), 3);
        assert!(o32_open_flags_to_host(3).is_err());
    }

    #[test]
    fn o32_flags_reach_the_host_meaning() {
        assert_eq!(
            o32_open_flags_to_host(o32::O_WRONLY | o32::O_CREAT | o32::O_TRUNC).unwrap(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC
        );
        assert_eq!(
            o32_open_flags_to_host(o32::O_RDWR | o32::O_EXCL | o32::O_NONBLOCK).unwrap(),
            libc::O_RDWR | libc::O_EXCL | libc::O_NONBLOCK
        );
        let err = o32_open_flags_to_host(0x40_0000).unwrap_err().to_string();
        assert!(err.contains("bits 0x400000"), "{err}");
    }

    #[test]
    fn commands_classify_as_kspd_c_switched_them() {
        let w = classify(&req(MTSP_SYSCALL_WRITE, &[1, 0x1000_0100, 5]));
        assert_eq!(
            w,
            Call::Sys {
                number: NR_WRITE,
                call: Syscall::Write {
                    fd: 1,
                    buf: SpBuf {
                        da: 0x1000_0100,
                        len: 5
                    }
                },
                sde_open: false
            }
        );
        let Call::Sys {
            call: Syscall::Open { flags, .. },
            sde_open: true,
            ..
        } = classify(&req(MTSP_SYSCALL_OPEN, &[0x1000_0000, 0x0601]))
        else {
            panic!("open");
        };
        assert_eq!(flags, o32::O_WRONLY | o32::O_CREAT | o32::O_TRUNC);
        // A raw o32 open keeps its flags untranslated.
        let Call::Sys {
            call: Syscall::Open { flags, .. },
            sde_open: false,
            ..
        } = classify(&req(NR_OPEN, &[0x1000_0000, 0x0601]))
        else {
            panic!("raw open");
        };
        assert_eq!(flags, 0x0601);
        assert_eq!(classify(&req(MTSP_SYSCALL_PIPEFREQ, &[])), Call::PipeFreq);
        assert_eq!(classify(&req(MTSP_SYSCALL_GETTOD, &[])), Call::GetTod);
        for (n, _) in PASSED_THROUGH {
            assert!(matches!(classify(&req(n, &[])), Call::Sys { number, .. } if number == n));
        }
    }

    #[test]
    fn everything_else_is_refused_with_the_kernel_message() {
        for (cmd, why) in [
            (MTSP_SYSCALL_ISATTY, "neither an MTSP command"),
            (MTSP_SYSCALL_GETTIME, "neither an MTSP command"),
            (
                MTSP_SYSCALL_IOCTL,
                "MTSP_SYSCALL_IOCTL (o32 ioctl) is not among",
            ),
            (NR_EXIT, "o32 system call 4001 is not among"),
            (NR_IOCTL, "o32 system call 4054 is not among"),
            (-5, "neither"),
            (3999, "neither"),
        ] {
            let Call::Refused { message } = classify(&req(cmd, &[])) else {
                panic!("{cmd} not refused");
            };
            assert!(
                message.starts_with(&format!("KSPD: Unknown SP syscall number {cmd} (")),
                "{message}"
            );
            assert!(message.contains(why), "{message}");
        }
    }

    #[test]
    fn errnos_use_mips_numbers() {
        assert_eq!(o32_errno(libc::ENOENT), 2);
        assert_eq!(o32_errno(libc::ENOSYS), 89);
        assert_eq!(o32_errno(libc::ENAMETOOLONG), 78);
        assert_eq!(o32_errno(libc::ELOOP), 90);
    }

    #[test]
    fn random_bytes_decode_without_panic() {
        let mut x = 0x9e37_79b9u32;
        let mut buf = Vec::new();
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            buf.push((x >> 7) as u8);
            if buf.len() > 64 {
                buf.clear();
            }
            for e in [Endian::Big, Endian::Little] {
                if let Ok(Decoded::Request { request, consumed }) = decode(&buf, e) {
                    assert!(consumed <= buf.len());
                    let _ = classify(&request);
                }
            }
        }
    }
}
