//! The Linux half of RTLX (`arch/mips/kernel/rtlx.c`, `rtlx-mt.c`, `asm/rtlx.h`) and of kspd
//! (`arch/mips/kernel/kspd.c`), as pure models over [`SpMemory`](crate::spmem::SpMemory):
//!
//! - [`layout`]: `struct rtlx_info` in both of its sizes (296 and 300 bytes), read in the
//!   firmware's byte order, and the `auto` decision between them;
//! - [`ring`]: one channel's two rings with the kernel's index arithmetic, every SP-published
//!   pointer and index checked against the carveouts before any byte is touched;
//! - [`kspd`]: the `struct mtsp_syscall` request/reply codec, the SDE open-flag translation and
//!   the list of o32 system calls the shim passes through.
//!
//! The `/dev/rtlxN` rules (blocking, EBUSY, EOF on stop) live in the daemon
//! (`compat/src/rtlx.rs`); the behaviour next to the legacy kernel's is in `docs/SEMANTICS.md`.

pub mod kspd;
pub mod layout;
pub mod ring;

/// `RTLX_ID` (asm/rtlx.h): `RTLX_xID | RTLX_VERSION`, `0x12345600 | 2`.
pub const RTLX_ID: u32 = 0x1234_5602;
/// `RTLX_CHANNELS`.
pub const RTLX_CHANNELS: usize = 8;
/// `RTLX_CHANNEL_STDIO`, `RTLX_CHANNEL_DBG`, `RTLX_CHANNEL_SYSIO` (kspd's channel).
pub const RTLX_CHANNEL_STDIO: usize = 0;
pub const RTLX_CHANNEL_DBG: usize = 1;
pub const RTLX_CHANNEL_SYSIO: usize = 2;
/// `KSEG0`: the legacy open refused a published pointer below it.
pub const KSEG0: u32 = 0x8000_0000;

/// `enum rtlx_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Unused = 0,
    Initialised = 1,
    RemoteReady = 2,
    Opened = 3,
}

impl State {
    pub fn from_u32(v: u32) -> Option<State> {
        match v {
            0 => Some(State::Unused),
            1 => Some(State::Initialised),
            2 => Some(State::RemoteReady),
            3 => Some(State::Opened),
            _ => None,
        }
    }
}

// errnos the RTLX operations return: the host's numbers (ENOSYS is 89 on a MIPS host).
pub const ENOEXEC: i32 = libc::ENOEXEC;
pub const EIO: i32 = libc::EIO;
pub const ENOSYS: i32 = libc::ENOSYS;
