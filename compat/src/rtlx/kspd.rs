//! The kspd server (`--kspd`): serves the SP's libc calls on RTLX channel 2 as
//! `arch/mips/kernel/kspd.c` did, over the pure codec of `vpe::rtlx::kspd`.
//!
//! - Requests are read from channel 2's SP → AP ring as a byte stream; every request gets
//!   a reply in the AP → SP ring (kept until it fits: kspd.c dropped it with
//!   `KSPD: sp_work_handle_request failed to send to SP`).
//! - File calls run with the filesystem uid/gid of the process that loaded the program
//!   (`setfsuid`/`setfsgid` are per thread, as kspd.c's `sp_setfsuidgid`; so [`Kspd::pump`]
//!   must run on a thread of its own). Relative paths are relative to the loader's working
//!   directory (kspd.c `chdir`ed there); with `--kspd-root DIR` every path resolves inside
//!   DIR (`openat2` `RESOLVE_IN_ROOT`), which is then also the working directory.
//! - Descriptors are the SP's own table, lowest free number first from 0 (a kernel thread
//!   had no open files), all closed when the SP stops ([`Kspd::sp_stopped`]).
//! - Pointer arguments are SP addresses: translated through the carveouts, EFAULT outside.

use std::collections::BTreeMap;
use std::ffi::CString;
use std::fs::File;
use std::io::{Read as _, Seek, SeekFrom, Write as _};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use log::{debug, warn};
use vpe::elf::Endian;
use vpe::rtlx::kspd::{
    classify, decode, o32_errno, o32_open_flags_to_host, Call, Decoded, Reply, Request, SpBuf,
    Syscall,
};
use vpe::rtlx::ring::Site;
use vpe::spmem::{Carveouts, SpMemory};

/// Who loaded the program: kspd.c's `vpe_getuid`/`vpe_getgid`/`vpe_getcwd`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loader {
    pub uid: u32,
    pub gid: u32,
    pub cwd: PathBuf,
}

#[derive(Debug, Clone, Default)]
pub struct KspdConfig {
    /// `--kspd-root`.
    pub root: Option<PathBuf>,
    /// PIPEFREQ's answer (kspd.c: `cpu_khz * 1000`).
    pub pipefreq_hz: u32,
}

/// Something the daemon must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// MTSP_SYSCALL_EXIT: halt the SP, show the code in `status`.
    Exit(i32),
}

/// `PATH_MAX`: longest path read from SP memory, NUL included.
const PATH_MAX: usize = 4096;
/// Open descriptors the SP may hold.
const MAX_FDS: usize = 256;

// o32 errnos the server produces itself (1-34: the same numbers on every Linux).
const EBADF: i32 = 9;
const EFAULT: i32 = 14;
const EINVAL: i32 = 22;
const EMFILE: i32 = 24;
const ENAMETOOLONG_O32: i32 = 78;
const EOVERFLOW_O32: i32 = 79;

pub struct Kspd {
    cfg: KspdConfig,
    loader: Loader,
    fds: BTreeMap<i32, File>,
    /// Request bytes read but not yet a whole request.
    inbuf: Vec<u8>,
    /// Reply bytes not yet in the ring.
    outbuf: Vec<u8>,
}

/// Result of one call: the o32 return value, or an o32 errno.
type Ret<T = i32> = std::result::Result<T, i32>;

fn host_err(e: &std::io::Error) -> i32 {
    o32_errno(e.raw_os_error().unwrap_or(libc::EIO))
}

/// Run `f` with the loader's filesystem credentials on this thread (setfsuid/setfsgid),
/// back to the daemon's after.
fn as_loader<T>(l: &Loader, f: impl FnOnce() -> T) -> T {
    // SAFETY: plain system calls on the calling thread; they cannot fail in a way that
    // matters (they return the previous id).
    let (old_gid, old_uid) = unsafe {
        let g = libc::setfsgid(l.gid);
        let u = libc::setfsuid(l.uid);
        (g as u32, u as u32)
    };
    let r = f();
    // SAFETY: as above; uid first, so the gid change is still permitted.
    unsafe {
        libc::setfsuid(old_uid);
        libc::setfsgid(old_gid);
    }
    r
}

impl Kspd {
    pub fn new(cfg: KspdConfig, loader: Loader) -> Kspd {
        Kspd {
            cfg,
            loader,
            fds: BTreeMap::new(),
            inbuf: Vec::new(),
            outbuf: Vec::new(),
        }
    }

    /// The SP stopped: close its descriptors, forget half-read requests (kspd.c
    /// `sp_cleanup`).
    pub fn sp_stopped(&mut self) {
        self.fds.clear();
        self.inbuf.clear();
        self.outbuf.clear();
    }

    /// Descriptors the SP holds.
    pub fn open_fds(&self) -> Vec<i32> {
        self.fds.keys().copied().collect()
    }

    /// One pass over channel 2: flush pending replies, take what the SP wrote, serve every
    /// whole request, queue and flush the replies. Returns what the daemon must act on.
    pub fn pump(
        &mut self,
        site: &Site,
        mem: &dyn SpMemory,
        cv: &Carveouts,
        e: Endian,
    ) -> vpe::Result<Vec<Event>> {
        self.flush(site, mem, cv, e)?;
        let bytes = site.take(mem, cv, usize::MAX, e)?;
        self.inbuf.extend_from_slice(&bytes);
        let mut events = Vec::new();
        loop {
            match decode(&self.inbuf, e) {
                Ok(Decoded::NeedMore { .. }) => break,
                Ok(Decoded::Request { request, consumed }) => {
                    self.inbuf.drain(..consumed);
                    let (reply, ev) = self.handle(&request, mem, cv, e);
                    self.outbuf.extend_from_slice(&reply.encode(e));
                    events.extend(ev);
                }
                Err(err) => {
                    // The stream cannot be resynchronised: drop what is there, answer -1.
                    warn!("{err}");
                    self.inbuf.clear();
                    self.outbuf.extend_from_slice(
                        &Reply {
                            retval: -1,
                            errno: 0,
                        }
                        .encode(e),
                    );
                }
            }
        }
        self.flush(site, mem, cv, e)?;
        Ok(events)
    }

    fn flush(
        &mut self,
        site: &Site,
        mem: &dyn SpMemory,
        cv: &Carveouts,
        e: Endian,
    ) -> vpe::Result<()> {
        if !self.outbuf.is_empty() {
            let n = site.put(mem, cv, &self.outbuf, e)?;
            self.outbuf.drain(..n);
        }
        Ok(())
    }

    /// Serve one request (`sp_work_handle_request`).
    pub fn handle(
        &mut self,
        req: &Request,
        mem: &dyn SpMemory,
        cv: &Carveouts,
        e: Endian,
    ) -> (Reply, Option<Event>) {
        let reply = |retval| Reply { retval, errno: 0 };
        match classify(req) {
            Call::Exit { code } => {
                debug!("KSPD got exit syscall from SP exitcode {code}");
                (reply(-1), Some(Event::Exit(code)))
            }
            Call::PipeFreq => (reply(self.cfg.pipefreq_hz as i32), None),
            Call::GetTod => (reply(now().0 as i32), None),
            Call::Refused { message } => {
                warn!("{message}");
                (reply(-1), None)
            }
            Call::Sys { call, .. } => {
                let r = self.syscall(call, mem, cv, e);
                (reply(r.unwrap_or_else(|errno| -errno)), None)
            }
        }
    }

    fn syscall(&mut self, call: Syscall, mem: &dyn SpMemory, cv: &Carveouts, e: Endian) -> Ret {
        match call {
            Syscall::Open { path, flags, mode } => {
                let path = read_path(mem, path)?;
                let flags = o32_open_flags_to_host(flags).map_err(|err| {
                    warn!("{err}");
                    EINVAL
                })?;
                if self.fds.len() >= MAX_FDS {
                    return Err(EMFILE);
                }
                let file = as_loader(&self.loader, || self.open(&path, flags, mode))?;
                let fd = (0..).find(|n| !self.fds.contains_key(n)).unwrap_or(0);
                self.fds.insert(fd, file);
                Ok(fd)
            }
            Syscall::Close { fd } => self.fds.remove(&fd).map(|_| 0).ok_or(EBADF),
            Syscall::Read { fd, buf } => {
                let file = self.fds.get_mut(&fd).ok_or(EBADF)?;
                check_buf(cv, buf)?;
                let mut data = vec![0u8; buf.len as usize];
                let n = file.read(&mut data).map_err(|e| host_err(&e))?;
                mem.write(buf.da, &data[..n]).map_err(|_| EFAULT)?;
                Ok(n as i32)
            }
            Syscall::Write { fd, buf } => {
                let file = self.fds.get_mut(&fd).ok_or(EBADF)?;
                check_buf(cv, buf)?;
                let mut data = vec![0u8; buf.len as usize];
                mem.read(buf.da, &mut data).map_err(|_| EFAULT)?;
                let n = file.write(&data).map_err(|e| host_err(&e))?;
                Ok(n as i32)
            }
            Syscall::Lseek { fd, offset, whence } => {
                let file = self.fds.get_mut(&fd).ok_or(EBADF)?;
                let pos = match whence {
                    0 if offset >= 0 => SeekFrom::Start(offset as u64),
                    0 => return Err(EINVAL),
                    1 => SeekFrom::Current(i64::from(offset)),
                    2 => SeekFrom::End(i64::from(offset)),
                    _ => return Err(EINVAL),
                };
                let at = file.seek(pos).map_err(|e| host_err(&e))?;
                i32::try_from(at).map_err(|_| EOVERFLOW_O32)
            }
            Syscall::Unlink { path } => {
                let path = read_path(mem, path)?;
                as_loader(&self.loader, || self.unlink(&path))?;
                Ok(0)
            }
            Syscall::Time { tloc } => {
                let secs = now().0 as i32;
                if tloc != 0 {
                    mem.write(tloc, &e.u32_bytes(secs as u32))
                        .map_err(|_| EFAULT)?;
                }
                Ok(secs)
            }
            Syscall::Gettimeofday { tv, tz } => {
                let (sec, usec) = now();
                if tv != 0 {
                    let mut b = e.u32_bytes(sec as u32).to_vec();
                    b.extend_from_slice(&e.u32_bytes(usec));
                    mem.write(tv, &b).map_err(|_| EFAULT)?;
                }
                if tz != 0 {
                    mem.write(tz, &[0; 8]).map_err(|_| EFAULT)?;
                }
                Ok(0)
            }
        }
    }

    /// Where a path is resolved: `(directory fd or AT_FDCWD, path, RESOLVE_IN_ROOT?)`.
    fn base(&self, path: &Path) -> std::result::Result<(Option<OwnedFd>, PathBuf), i32> {
        match &self.cfg.root {
            Some(root) => {
                let c = cstr(root.as_os_str().as_bytes())?;
                // SAFETY: a valid NUL-terminated path; the result is checked.
                let fd = unsafe {
                    libc::open(
                        c.as_ptr(),
                        libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    )
                };
                if fd < 0 {
                    return Err(host_err(&std::io::Error::last_os_error()));
                }
                // SAFETY: fd was just opened and is owned here.
                Ok((
                    Some(unsafe { OwnedFd::from_raw_fd(fd) }),
                    path.to_path_buf(),
                ))
            }
            None if path.is_absolute() => Ok((None, path.to_path_buf())),
            None => Ok((None, self.loader.cwd.join(path))),
        }
    }

    fn open(&self, path: &Path, flags: i32, mode: u32) -> std::result::Result<File, i32> {
        let (dir, p) = self.base(path)?;
        let c = cstr(p.as_os_str().as_bytes())?;
        let fd = match &dir {
            Some(d) => openat2(d.as_raw_fd(), &c, flags | libc::O_CLOEXEC, mode),
            // SAFETY: a valid NUL-terminated path; the result is checked.
            None => unsafe {
                libc::open(c.as_ptr(), flags | libc::O_CLOEXEC, mode as libc::c_uint)
            },
        };
        if fd < 0 {
            return Err(host_err(&std::io::Error::last_os_error()));
        }
        // SAFETY: fd was just opened and is owned by the File.
        Ok(unsafe { File::from_raw_fd(fd) })
    }

    fn unlink(&self, path: &Path) -> std::result::Result<(), i32> {
        let (dir, p) = self.base(path)?;
        match &dir {
            Some(d) => {
                // The parent resolved inside the root, then the last component in it.
                let name = p.file_name().ok_or(EINVAL)?;
                if name.as_bytes() == b".." {
                    return Err(EINVAL);
                }
                let parent = p
                    .parent()
                    .filter(|q| !q.as_os_str().is_empty())
                    .unwrap_or(Path::new("."));
                let pc = cstr(parent.as_os_str().as_bytes())?;
                let pfd = openat2(
                    d.as_raw_fd(),
                    &pc,
                    libc::O_PATH | libc::O_DIRECTORY | libc::O_CLOEXEC,
                    0,
                );
                if pfd < 0 {
                    return Err(host_err(&std::io::Error::last_os_error()));
                }
                // SAFETY: pfd was just opened and is owned here.
                let pfd = unsafe { OwnedFd::from_raw_fd(pfd) };
                let nc = cstr(name.as_bytes())?;
                // SAFETY: valid fd and NUL-terminated name; the result is checked.
                if unsafe { libc::unlinkat(pfd.as_raw_fd(), nc.as_ptr(), 0) } < 0 {
                    return Err(host_err(&std::io::Error::last_os_error()));
                }
                Ok(())
            }
            None => std::fs::remove_file(&p).map_err(|e| host_err(&e)),
        }
    }
}

fn cstr(b: &[u8]) -> std::result::Result<CString, i32> {
    CString::new(b).map_err(|_| EINVAL)
}

/// `openat2(dir, path, {flags, mode, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS})`: `..` and
/// symlinks cannot leave `dir`.
fn openat2(dir: i32, path: &CString, flags: i32, mode: u32) -> i32 {
    // SAFETY: open_how is plain data; zeroed is its documented default.
    let mut how: libc::open_how = unsafe { std::mem::zeroed() };
    how.flags = flags as u64;
    how.mode = if flags & libc::O_CREAT != 0 {
        u64::from(mode & 0o7777)
    } else {
        0
    };
    how.resolve = libc::RESOLVE_IN_ROOT | libc::RESOLVE_NO_MAGICLINKS;
    // SAFETY: valid fd, NUL-terminated path, a live open_how of the size passed.
    unsafe {
        libc::syscall(
            libc::SYS_openat2,
            dir,
            path.as_ptr(),
            &how as *const libc::open_how,
            std::mem::size_of::<libc::open_how>(),
        ) as i32
    }
}

/// A NUL-terminated path from SP memory, byte by byte within the carveouts.
fn read_path(mem: &dyn SpMemory, da: u32) -> Ret<PathBuf> {
    let mut out = Vec::new();
    let mut b = [0u8];
    for i in 0..PATH_MAX as u32 {
        mem.read(da.checked_add(i).ok_or(EFAULT)?, &mut b)
            .map_err(|_| EFAULT)?;
        if b[0] == 0 {
            return Ok(PathBuf::from(std::ffi::OsStr::from_bytes(&out)));
        }
        out.push(b[0]);
    }
    Err(ENAMETOOLONG_O32)
}

fn check_buf(cv: &Carveouts, buf: SpBuf) -> std::result::Result<(), i32> {
    cv.place(buf.da, buf.len as usize)
        .map(|_| ())
        .map_err(|_| EFAULT)
}

fn now() -> (u64, u32) {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (d.as_secs(), d.subsec_micros())
}

#[cfg(test)]
mod tests;
