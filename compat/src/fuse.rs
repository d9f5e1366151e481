//! The FUSE adapter: one flat directory whose files are the [`Node`]s of the device. Each
//! callback is one call into [`Device`] plus errno mapping; all behaviour lives there.
//!
//! Device calls may block (they talk to the backend and serialise loads), so they run under
//! `block_in_place` on the multi-threaded runtime.

use std::ffi::{OsStr, OsString};
use std::num::NonZeroU32;
use std::os::unix::ffi::OsStrExt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fuse3::raw::prelude::*;
use fuse3::{Errno, Result};
use futures_util::stream::{self, Stream};
use tokio::task::block_in_place;

use crate::device::{self, Device, Node};

/// `FOPEN_DIRECT_IO` (include/uapi/linux/fuse.h): every read/write reaches us, unbuffered,
/// so the size limit applies per `write(2)` and reads ignore `st_size`.
pub const FOPEN_DIRECT_IO: u32 = 1 << 0;
// FOPEN_NONSEEKABLE (1 << 2) is deliberately not set: `lseek` on vpe1 must succeed
// (vpe.c noop_llseek), and a nonseekable open makes it fail with ESPIPE.

const ROOT: u64 = 1;
const TTL: Duration = Duration::from_secs(1);
/// Largest write the kernel may send in one request (`dd bs=1M` arrives whole).
pub const MAX_WRITE: u32 = 1 << 20;

/// Owner and permissions of the files.
#[derive(Debug, Clone, Copy)]
pub struct Ownership {
    pub uid: u32,
    /// Group of `vpe1` (and the directory); `vpe1` is group-writable when `group_writable`.
    pub gid: u32,
    pub group_writable: bool,
}

pub struct VpeFs {
    dev: Arc<Device>,
    own: Ownership,
    mtime: SystemTime,
    /// `Some(node)`: the mount is that one file (`--bind-dev`), its root inode is the node.
    root_file: Option<Node>,
    /// Benchmark floor (`--bench-noop`): `vpe1` opens, swallows writes and closes without
    /// touching the device, so `scripts/bench-fuse` can time the same writes through the
    /// same FUSE session with none of our work behind them.
    noop: bool,
    /// Largest write the kernel may send (`--max-write`): fuse3 sizes its request buffer by it.
    max_write: u32,
}

fn ino(n: Node) -> u64 {
    // Inode 1 is the root; the nodes follow in `Node::ALL` order.
    Node::ALL
        .iter()
        .position(|&m| m == n)
        .map_or(0, |i| i as u64 + 2)
}

fn dir_node(inode: u64) -> Result<Node> {
    inode
        .checked_sub(2)
        .and_then(|i| Node::ALL.get(usize::try_from(i).ok()?).copied())
        .ok_or_else(|| Errno::from(libc::ENOENT))
}

fn errno(e: device::Errno) -> Errno {
    Errno::from(e.0)
}

impl VpeFs {
    /// The directory with every file.
    pub fn new(dev: Arc<Device>, own: Ownership) -> VpeFs {
        VpeFs {
            dev,
            own,
            mtime: SystemTime::now(),
            root_file: None,
            noop: false,
            max_write: MAX_WRITE,
        }
    }

    /// A mount that is the file `node` itself (mounted over a regular file).
    pub fn single_file(dev: Arc<Device>, own: Ownership, node: Node) -> VpeFs {
        VpeFs {
            dev,
            own,
            mtime: SystemTime::now(),
            root_file: Some(node),
            noop: false,
            max_write: MAX_WRITE,
        }
    }

    /// The benchmark floor: see [`VpeFs::noop`].
    pub fn noop(mut self, on: bool) -> VpeFs {
        self.noop = on;
        self
    }

    /// The largest write the kernel may send in one request (default [`MAX_WRITE`]).
    pub fn max_write(mut self, bytes: u32) -> VpeFs {
        self.max_write = bytes;
        self
    }

    /// File handle of a no-op `vpe1` open (real handles start at 1).
    const NOOP_FH: u64 = 0;

    fn is_noop(&self, fh: u64) -> bool {
        self.noop && fh == Self::NOOP_FH
    }

    fn node(&self, inode: u64) -> Result<Node> {
        match self.root_file {
            Some(n) if inode == ROOT => Ok(n),
            Some(_) => Err(libc::ENOENT.into()),
            None => dir_node(inode),
        }
    }

    fn attr(&self, inode: u64) -> Result<FileAttr> {
        let (kind, perm, nlink) = if inode == ROOT && self.root_file.is_none() {
            (FileType::Directory, 0o755, 2)
        } else {
            (
                FileType::RegularFile,
                self.node(inode)?.perm(self.own.group_writable),
                1,
            )
        };
        let t = self.mtime.into();
        Ok(FileAttr {
            ino: inode,
            size: 0,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
            kind,
            perm,
            nlink,
            uid: self.own.uid,
            gid: self.own.gid,
            rdev: 0,
            blksize: 4096,
        })
    }

    /// `.`, `..` and the files, starting after `offset`.
    fn entries(&self) -> Vec<(u64, FileType, OsString)> {
        let mut v = vec![
            (ROOT, FileType::Directory, OsString::from(".")),
            (ROOT, FileType::Directory, OsString::from("..")),
        ];
        v.extend(Node::ALL.map(|n| (ino(n), FileType::RegularFile, OsString::from(n.name()))));
        v
    }
}

impl Filesystem for VpeFs {
    async fn init(&self, _req: Request) -> Result<ReplyInit> {
        Ok(ReplyInit::new(
            NonZeroU32::new(self.max_write).unwrap_or(NonZeroU32::MIN),
        ))
    }

    async fn destroy(&self, _req: Request) {}

    async fn lookup(&self, _req: Request, parent: u64, name: &OsStr) -> Result<ReplyEntry> {
        let n =
            Node::from_name(name.as_bytes()).filter(|_| parent == ROOT && self.root_file.is_none());
        let n = n.ok_or_else(|| Errno::from(libc::ENOENT))?;
        Ok(ReplyEntry {
            ttl: TTL,
            attr: self.attr(ino(n))?,
            generation: 0,
        })
    }

    async fn getattr(
        &self,
        _req: Request,
        inode: u64,
        _fh: Option<u64>,
        _flags: u32,
    ) -> Result<ReplyAttr> {
        Ok(ReplyAttr {
            ttl: TTL,
            attr: self.attr(inode)?,
        })
    }

    async fn setattr(
        &self,
        _req: Request,
        inode: u64,
        _fh: Option<u64>,
        set: SetAttr,
    ) -> Result<ReplyAttr> {
        if set.mode.is_some() || set.uid.is_some() || set.gid.is_some() {
            return Err(libc::EPERM.into());
        }
        if let Some(size) = set.size {
            self.dev.truncate(self.node(inode)?, size).map_err(errno)?;
        }
        // Timestamps (touch) are accepted and ignored.
        Ok(ReplyAttr {
            ttl: TTL,
            attr: self.attr(inode)?,
        })
    }

    async fn open(&self, _req: Request, inode: u64, flags: u32) -> Result<ReplyOpen> {
        let n = self.node(inode)?;
        if self.noop && n == Node::Vpe1 {
            return Ok(ReplyOpen {
                fh: Self::NOOP_FH,
                flags: FOPEN_DIRECT_IO,
            });
        }
        let fh = block_in_place(|| self.dev.open(n, flags as i32)).map_err(errno)?;
        Ok(ReplyOpen {
            fh,
            flags: FOPEN_DIRECT_IO,
        })
    }

    async fn read(
        &self,
        _req: Request,
        _inode: u64,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> Result<ReplyData> {
        let data = self.dev.read(fh, offset, size).map_err(errno)?;
        Ok(ReplyData {
            data: Bytes::from(data),
        })
    }

    async fn write(
        &self,
        req: Request,
        inode: u64,
        fh: u64,
        _offset: u64,
        data: &[u8],
        _write_flags: u32,
        _flags: u32,
    ) -> Result<ReplyWrite> {
        if self.is_noop(fh) {
            return Ok(ReplyWrite {
                written: data.len() as u32,
            });
        }
        // A vpe1 write only appends to its buffer under a short lock: run it right here.
        // block_in_place (a worker hand-off, tens of µs) is for writes that may wait on a
        // load (kill stops the processor).
        let n = if self.node(inode)? == Node::Vpe1 {
            self.dev.write(fh, data, req.pid)
        } else {
            block_in_place(|| self.dev.write(fh, data, req.pid))
        }
        .map_err(errno)?;
        Ok(ReplyWrite {
            written: u32::try_from(n).unwrap_or(u32::MAX),
        })
    }

    // The names are fixed (device::name_change): without these, fuse3 answers ENOSYS.
    async fn mknod(
        &self,
        _req: Request,
        _parent: u64,
        name: &OsStr,
        _mode: u32,
        _rdev: u32,
    ) -> Result<ReplyEntry> {
        Err(errno(device::name_change(name.as_bytes())))
    }

    async fn create(
        &self,
        _req: Request,
        _parent: u64,
        name: &OsStr,
        _mode: u32,
        _flags: u32,
    ) -> Result<ReplyCreated> {
        Err(errno(device::name_change(name.as_bytes())))
    }

    async fn mkdir(
        &self,
        _req: Request,
        _parent: u64,
        name: &OsStr,
        _mode: u32,
        _umask: u32,
    ) -> Result<ReplyEntry> {
        Err(errno(device::name_change(name.as_bytes())))
    }

    async fn symlink(
        &self,
        _req: Request,
        _parent: u64,
        name: &OsStr,
        _link: &OsStr,
    ) -> Result<ReplyEntry> {
        Err(errno(device::name_change(name.as_bytes())))
    }

    async fn link(
        &self,
        _req: Request,
        _inode: u64,
        _new_parent: u64,
        _new_name: &OsStr,
    ) -> Result<ReplyEntry> {
        Err(libc::EPERM.into())
    }

    async fn unlink(&self, _req: Request, _parent: u64, name: &OsStr) -> Result<()> {
        Err(errno(device::name_change(name.as_bytes())))
    }

    async fn rmdir(&self, _req: Request, _parent: u64, name: &OsStr) -> Result<()> {
        Err(errno(device::name_change(name.as_bytes())))
    }

    async fn rename(
        &self,
        _req: Request,
        _parent: u64,
        name: &OsStr,
        _new_parent: u64,
        _new_name: &OsStr,
    ) -> Result<()> {
        Err(errno(device::name_change(name.as_bytes())))
    }

    async fn rename2(
        &self,
        _req: Request,
        _parent: u64,
        name: &OsStr,
        _new_parent: u64,
        _new_name: &OsStr,
        _flags: u32,
    ) -> Result<()> {
        Err(errno(device::name_change(name.as_bytes())))
    }

    async fn statfs(&self, _req: Request, _inode: u64) -> Result<ReplyStatFs> {
        Ok(ReplyStatFs {
            blocks: 0,
            bfree: 0,
            bavail: 0,
            files: Node::ALL.len() as u64 + 1,
            ffree: 0,
            bsize: 4096,
            namelen: 255,
            frsize: 4096,
        })
    }

    async fn release(
        &self,
        _req: Request,
        _inode: u64,
        fh: u64,
        _flags: u32,
        _lock_owner: u64,
        _flush: bool,
    ) -> Result<()> {
        if self.is_noop(fh) {
            return Ok(());
        }
        block_in_place(|| self.dev.release(fh));
        Ok(())
    }

    async fn fsync(&self, _req: Request, _inode: u64, fh: u64, _datasync: bool) -> Result<()> {
        if self.is_noop(fh) {
            return Ok(());
        }
        block_in_place(|| self.dev.fsync(fh)).map_err(errno)
    }

    async fn flush(&self, req: Request, _inode: u64, fh: u64, _lock_owner: u64) -> Result<()> {
        if self.is_noop(fh) {
            return Ok(());
        }
        block_in_place(|| self.dev.flush(fh, req.pid)).map_err(errno)
    }

    async fn opendir(&self, _req: Request, inode: u64, _flags: u32) -> Result<ReplyOpen> {
        if inode != ROOT || self.root_file.is_some() {
            return Err(libc::ENOTDIR.into());
        }
        Ok(ReplyOpen { fh: 0, flags: 0 })
    }

    async fn readdir<'a>(
        &'a self,
        _req: Request,
        _parent: u64,
        _fh: u64,
        offset: i64,
    ) -> Result<ReplyDirectory<impl Stream<Item = Result<DirectoryEntry>> + Send + 'a>> {
        let skip = usize::try_from(offset).unwrap_or(0);
        let v: Vec<_> = (1i64..)
            .zip(self.entries())
            .skip(skip)
            .map(|(off, (inode, kind, name))| {
                Ok(DirectoryEntry {
                    inode,
                    kind,
                    name,
                    offset: off,
                })
            })
            .collect();
        Ok(ReplyDirectory {
            entries: stream::iter(v),
        })
    }

    async fn readdirplus<'a>(
        &'a self,
        _req: Request,
        _parent: u64,
        _fh: u64,
        offset: u64,
        _lock_owner: u64,
    ) -> Result<ReplyDirectoryPlus<impl Stream<Item = Result<DirectoryEntryPlus>> + Send + 'a>>
    {
        let skip = usize::try_from(offset).unwrap_or(usize::MAX);
        let mut v = Vec::new();
        for (off, (inode, kind, name)) in (1i64..).zip(self.entries()).skip(skip) {
            v.push(Ok(DirectoryEntryPlus {
                inode,
                generation: 0,
                kind,
                name,
                offset: off,
                attr: self.attr(inode)?,
                entry_ttl: TTL,
                attr_ttl: TTL,
            }));
        }
        Ok(ReplyDirectoryPlus {
            entries: stream::iter(v),
        })
    }

    async fn releasedir(&self, _req: Request, _inode: u64, _fh: u64, _flags: u32) -> Result<()> {
        Ok(())
    }

    async fn access(&self, _req: Request, inode: u64, _mask: u32) -> Result<()> {
        // default_permissions makes the kernel check modes; only existence is ours.
        self.attr(inode).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inodes_map_to_nodes_and_back() {
        for n in Node::ALL {
            assert_eq!(dir_node(ino(n)), Ok(n));
        }
        assert!(dir_node(ROOT).is_err());
        assert!(dir_node(0).is_err());
        assert!(dir_node(2 + Node::ALL.len() as u64).is_err());
    }
}
