//! A real `vpe-compat` on a real FUSE mount, shared by the mounted tests (behaviour, hostile
//! inputs, soak, faults): own mount point per daemon, READY=1 over NOTIFY_SOCKET (the systemd
//! readiness protocol), a Drop guard that terminates it and detaches its mounts so a failing
//! test leaves nothing behind.
#![allow(dead_code)]

pub mod fakesys;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_vpe-compat");

pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/bin").join(name)
}

pub fn fixture_bytes(name: &str) -> Vec<u8> {
    std::fs::read(fixture(name)).expect("fixture")
}

pub fn can_mount() -> bool {
    let ok = nix::unistd::geteuid().is_root() && Path::new("/dev/fuse").exists();
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "mounted tests need root and /dev/fuse, and CI is set"
    );
    if !ok {
        eprintln!("skipped: mounted tests need root and /dev/fuse");
    }
    ok
}

pub fn mounted(p: &Path) -> bool {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let p = p.to_string_lossy();
    mounts.lines().any(|l| l.split(' ').nth(1) == Some(&*p))
}

/// Run the daemon on `mnt` with `args`, expecting it to refuse to start (exit status 1).
/// Returns what it printed on stderr.
pub fn start_refused<I, S>(mnt: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let o = Command::new(BIN)
        .arg("--mount")
        .arg(mnt)
        .args(args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1), "{o:?}");
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub struct Daemon {
    pub child: Option<Child>,
    pub dir: tempfile::TempDir,
    pub mnt: PathBuf,
    /// Further mounts the daemon made (e.g. `--bind-dev`), detached on drop too.
    pub extra_mounts: Vec<PathBuf>,
    /// The program and its first arguments: [`BIN`], or qemu-user and a board binary.
    pub cmd: Vec<std::ffi::OsString>,
}

impl Daemon {
    pub fn start(extra: &[&str]) -> Daemon {
        Self::start_env(extra, &[])
    }

    pub fn start_env(extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        Self::start_cmd(&[BIN.into()], extra, env)
    }

    /// The daemon started as `cmd` (e.g. `qemu-mipsel -L SYSROOT vpe-compat`).
    pub fn start_cmd(cmd: &[std::ffi::OsString], extra: &[&str], env: &[(&str, &str)]) -> Daemon {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let mnt = dir.path().join("mnt");
        std::fs::create_dir(&mnt).unwrap();
        let mut d = Daemon {
            child: None,
            mnt,
            dir,
            extra_mounts: Vec::new(),
            cmd: cmd.to_vec(),
        };
        d.spawn(extra, env);
        d
    }

    pub fn spawn(&mut self, extra: &[&str], env: &[(&str, &str)]) {
        let sock_path = self.dir.path().join("notify");
        let _ = std::fs::remove_file(&sock_path);
        let sock = UnixDatagram::bind(&sock_path).unwrap();
        sock.set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("log"))
            .unwrap();
        let child = Command::new(&self.cmd[0])
            .args(&self.cmd[1..])
            .arg("--mount")
            .arg(&self.mnt)
            .args(extra)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .env("NOTIFY_SOCKET", &sock_path)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn vpe-compat");
        self.child = Some(child);
        let mut buf = [0u8; 64];
        let n = sock
            .recv(&mut buf)
            .unwrap_or_else(|e| panic!("no READY=1 from the daemon ({e}); log:\n{}", self.log()));
        assert_eq!(&buf[..n], b"READY=1\n");
        assert!(mounted(&self.mnt), "READY=1 before the mount exists");
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.mnt.join(name)
    }

    pub fn status(&self) -> String {
        std::fs::read_to_string(self.path("status")).expect("read status")
    }

    pub fn status_json(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.path("status.json")).unwrap()).unwrap()
    }

    pub fn count(st: &str, key: &str) -> u64 {
        st.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    pub fn loads(st: &str) -> u64 {
        Self::count(st, "loads_ok: ") + Self::count(st, "loads_failed: ")
    }

    /// The status once `n` loads have finished (RELEASE comes after close() returned).
    pub fn wait_loads(&self, n: u64) -> String {
        let t = Instant::now();
        loop {
            let st = self.status();
            if Self::loads(&st) >= n {
                return st;
            }
            assert!(
                t.elapsed() < Duration::from_secs(20),
                "waiting for {n} loads:\n{st}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap_or_default()
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.as_mut().map(|c| c.try_wait()), Some(Ok(None)))
    }

    /// SIGKILL and reap: the mount stays behind, dead.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn signal(&self, sig: Signal) {
        if let Some(c) = &self.child {
            let _ = kill(Pid::from_raw(c.id() as i32), sig);
        }
    }

    /// SIGTERM, then wait up to 10 s (SIGKILL after that); the exit status if it exited.
    pub fn terminate(&mut self) -> Option<ExitStatus> {
        self.stop(Signal::SIGTERM)
    }

    /// Send `sig`, then wait up to 10 s (SIGKILL after that); the exit status if it exited.
    pub fn stop(&mut self, sig: Signal) -> Option<ExitStatus> {
        self.signal(sig);
        let mut c = self.child.take()?;
        let t = Instant::now();
        while t.elapsed() < Duration::from_secs(10) {
            if let Ok(Some(st)) = c.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = c.kill();
        let _ = c.wait();
        None
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.terminate();
        for p in std::iter::once(&self.mnt).chain(&self.extra_mounts) {
            if mounted(p) {
                let _ = nix::mount::umount2(p.as_path(), nix::mount::MntFlags::MNT_DETACH);
            }
        }
    }
}

/// Write `bytes` to `path` with one open/write/close (as `cat` does).
pub fn write_file(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
    f.write_all(bytes)?;
    drop(f);
    Ok(())
}

/// The hostile corpus: (name, bytes), sorted.
pub fn hostile_cases() -> Vec<(String, Vec<u8>)> {
    let dir = root().join("tests/hostile/cases");
    let mut v: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v.into_iter()
        .map(|p| {
            let n = p.file_stem().unwrap().to_string_lossy().into_owned();
            (n, std::fs::read(&p).unwrap())
        })
        .collect()
}

pub fn sh(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

/// Run a python3 snippet; `P` is bound to the path given.
pub fn py(path: &Path, code: &str) -> Output {
    let script = format!("import os, sys, errno, fcntl\nP = sys.argv[1]\n{code}\n");
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(path)
        .output()
        .expect("python3")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A path quoted for `sh`.
pub fn q(p: &Path) -> String {
    format!("'{}'", p.display())
}

/// VmRSS of process `pid` in kB.
pub fn rss_kb(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Run the daemon on `mnt` with `args`, expecting it to exit by itself within 10 s (killed
/// after that: then the code is `None`). Returns its exit code and stderr.
pub fn run_to_exit<I, S>(mnt: &Path, args: I) -> (Option<i32>, String)
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut c = Command::new(BIN)
        .arg("--mount")
        .arg(mnt)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    let code = loop {
        if let Some(st) = c.try_wait().unwrap() {
            break st.code();
        }
        if t.elapsed() > Duration::from_secs(10) {
            let _ = c.kill();
            let _ = c.wait();
            if mounted(mnt) {
                let _ = nix::mount::umount2(mnt, nix::mount::MntFlags::MNT_DETACH);
            }
            break None;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    use std::io::Read;
    let _ = c.stderr.take().map(|mut e| e.read_to_string(&mut err));
    (code, err)
}
