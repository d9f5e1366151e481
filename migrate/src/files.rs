//! The files `vpe-migrate` reads and writes. Inputs: regular files only, opened without
//! blocking and read up to [`MAX_INPUT`]. Outputs: regular files only, replaced atomically
//! (temp file in the same directory, fsync, rename), never through a symbolic link and never
//! over a device, FIFO, socket or directory.

use std::ffi::OsString;
use std::fs::{File, FileType, Metadata, OpenOptions};
use std::io::{Read as _, Write as _};
use std::os::unix::ffi::OsStrExt as _;
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::fs::{FileTypeExt as _, MetadataExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

use crate::CliError;

/// The largest input read (256 MiB): the firmware writer's own file limit, so no firmware
/// above it can be checked or verified, and 4× the most file-backed image data the legacy
/// model holds (`legacy::MAX_DATA`, 64 MiB), room for the symbols and relocations of such an
/// object (about as large again in the benchmark objects). Past it the read stops at this
/// + 1 byte.
pub const MAX_INPUT: u64 = 256 << 20;

/// Mode of a new output (the previous default; a replaced file keeps its own).
const NEW_MODE: u32 = 0o644;

/// "a character device", "a FIFO (named pipe)", ...: what a non-regular file is, for messages.
pub fn kind(t: FileType) -> &'static str {
    if t.is_file() {
        "a regular file"
    } else if t.is_dir() {
        "a directory"
    } else if t.is_symlink() {
        "a symbolic link"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

fn read_err(path: &Path) -> impl FnOnce(std::io::Error) -> CliError + '_ {
    move |source| CliError::Read {
        path: path.to_owned(),
        source,
    }
}

/// Read an input: a regular file (symbolic links followed) of at most [`MAX_INPUT`] bytes.
/// Devices, FIFOs and sockets are refused from `stat` before they are opened (opening some
/// devices has effects); the open itself is `O_NONBLOCK` and checked again with `fstat`, so
/// a FIFO swapped in meanwhile cannot block the read.
pub fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    let meta = std::fs::metadata(path).map_err(read_err(path))?;
    regular_input(path, &meta)?;
    let mut f = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(read_err(path))?;
    let now = f.metadata().map_err(read_err(path))?;
    if (now.dev(), now.ino()) != (meta.dev(), meta.ino()) {
        return Err(CliError::InputChanged {
            path: path.to_owned(),
        });
    }
    regular_input(path, &now)?;
    // The size from fstat is a hint (the file may grow); the read itself stops one byte past
    // the limit.
    let mut buf = Vec::with_capacity(usize::try_from(now.len()).unwrap_or(0));
    (&mut f)
        .take(MAX_INPUT + 1)
        .read_to_end(&mut buf)
        .map_err(read_err(path))?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(CliError::InputTooBig {
            path: path.to_owned(),
            size: format!("more than {MAX_INPUT} bytes"),
        });
    }
    Ok(buf)
}

fn regular_input(path: &Path, meta: &Metadata) -> Result<(), CliError> {
    if !meta.is_file() {
        return Err(CliError::InputNotRegular {
            path: path.to_owned(),
            kind: kind(meta.file_type()),
        });
    }
    if meta.len() > MAX_INPUT {
        return Err(CliError::InputTooBig {
            path: path.to_owned(),
            size: format!("{} bytes", meta.len()),
        });
    }
    Ok(())
}

/// The directory an output goes into (`.` for a bare name).
fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Check what is at an output path now, before anything is converted or written. `Ok(None)`:
/// nothing (a new file); `Ok(Some(mode))`: a regular file, whose permission bits the new
/// file keeps. A directory, a symbolic link, a device, a FIFO or a socket is refused, as is
/// a path ending in `/` or one whose directory does not exist.
pub fn check_output(path: &Path) -> Result<Option<u32>, CliError> {
    let p = path.to_owned();
    if path.as_os_str().as_bytes().ends_with(b"/") || path.file_name().is_none() {
        return Err(CliError::OutputIsDir { path: p });
    }
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_file() => Ok(Some(m.mode() & 0o777)),
        Ok(m) if m.is_dir() => Err(CliError::OutputIsDir { path: p }),
        Ok(m) if m.file_type().is_symlink() => Err(CliError::OutputIsSymlink {
            target: std::fs::read_link(path).unwrap_or_default(),
            path: p,
        }),
        Ok(m) => Err(CliError::OutputNotRegular {
            path: p,
            kind: kind(m.file_type()),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let dir = parent_dir(path);
            match std::fs::metadata(&dir) {
                Ok(m) if m.is_dir() => Ok(None),
                Ok(m) => Err(CliError::OutputNoDir {
                    path: p,
                    dir,
                    why: format!("is {}, not a directory", kind(m.file_type())),
                }),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(CliError::OutputNoDir {
                    path: p,
                    dir,
                    why: "does not exist".into(),
                }),
                Err(source) => Err(CliError::Write { path: p, source }),
            }
        }
        Err(source) => Err(CliError::Write { path: p, source }),
    }
}

/// A temp file removed on drop unless renamed into place.
struct Temp {
    path: PathBuf,
    done: bool,
}

impl Drop for Temp {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Create a fresh temp file in `dir` (`O_EXCL|O_NOFOLLOW`, never an existing name).
fn create_temp(dir: &Path) -> std::io::Result<(File, Temp)> {
    static SEQ: AtomicU32 = AtomicU32::new(0);
    loop {
        let mut name = OsString::from(".vpe-migrate.");
        name.push(format!(
            "{}.{}.tmp",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::Relaxed)
        ));
        let path = dir.join(name);
        match OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
        {
            Ok(f) => return Ok((f, Temp { path, done: false })),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Write `data` to `path` via a temporary file in the same directory, fsync, rename. Never
/// replaces `input` (same file by identity, not just by name), and only ever replaces a
/// regular file ([`check_output`]), keeping its permission bits. Messages name `path`, never
/// the temp file.
pub fn write_atomic(path: &Path, data: &[u8], input: Option<&Path>) -> Result<(), CliError> {
    stage(path, data, input)?.commit()
}

/// An output written and synced under a temp name, not yet renamed into place (dropped: the
/// temp file is removed).
pub struct Staged {
    path: PathBuf,
    tmp: Temp,
}

/// The first half of [`write_atomic`]: everything but the rename.
pub fn stage(path: &Path, data: &[u8], input: Option<&Path>) -> Result<Staged, CliError> {
    if let Some(input) = input {
        if same_file(input, path) {
            return Err(CliError::OutputIsInput {
                path: path.to_owned(),
            });
        }
    }
    let mode = check_output(path)?.unwrap_or(NEW_MODE);
    let werr = |source| CliError::Write {
        path: path.to_owned(),
        source,
    };
    let (mut f, tmp) = create_temp(&parent_dir(path)).map_err(werr)?;
    f.write_all(data).map_err(werr)?;
    // Exact bits, whatever the umask.
    f.set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(werr)?;
    f.sync_all().map_err(werr)?;
    Ok(Staged {
        path: path.to_owned(),
        tmp,
    })
}

impl Staged {
    /// Rename into place and make the rename durable.
    pub fn commit(mut self) -> Result<(), CliError> {
        // Again just before the rename: what is at the path may have changed meanwhile.
        check_output(&self.path)?;
        std::fs::rename(&self.tmp.path, &self.path).map_err(|source| CliError::Write {
            path: self.path.clone(),
            source,
        })?;
        self.tmp.done = true;
        if let Ok(d) = File::open(parent_dir(&self.path)) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

pub fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
