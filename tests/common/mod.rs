//! Helpers shared by the integration tests: the committed MIPS fixtures, GNU ld as the
//! reference linker and qemu-user as the reference CPU.
//!
//! The cross tools are required (`mips-linux-gnu-ld`, `qemu-mips`, `qemu-mipsel`); a missing
//! tool fails the test with the command it tried, it is never skipped silently.
//!
//! Typical differential use:
//! ```ignore
//! let script = legacy_order_script(&[(".text".into(), 0x1000_0000), (".data".into(), 0x1000_0400)]);
//! ld_reference(&fixture("hello.be.o"), Endian::Big, &script, &out);
//! let (stdout, code) = run_qemu(&out, Endian::Big);
//! ```
#![allow(dead_code)]

use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use vpe::elf::Endian;

/// The GNU linker used for every reference link (one binutils for both byte orders).
pub const LD: &str = "mips-linux-gnu-ld";

/// Flags every reference link gets besides `-EB|-EL -T script`: qemu-user maps PT_LOADs with
/// mmap, so file offsets must be page-congruent; 4 KiB instead of ld's default 64 KiB keeps
/// the outputs small. `tests/fixtures/build.sh` links the committed `.exe` files with the
/// same flags, so `ld_reference(x.o, exec.ld)` reproduces `x.exe` byte for byte.
pub const LD_PAGE_FLAGS: [&str; 4] = [
    "-z",
    "max-page-size=0x1000",
    "-z",
    "common-page-size=0x1000",
];

/// Upper bound for one qemu run; every fixture finishes in well under a second.
pub const QEMU_TIMEOUT: Duration = Duration::from_secs(20);

/// Sections the reference links throw away: MIPS bookkeeping that ld would otherwise turn into
/// PT_MIPS_REGINFO / PT_MIPS_ABIFLAGS headers (and an extra low PT_LOAD), plus non-program data.
pub const DISCARDED: [&str; 7] = [
    ".MIPS.abiflags",
    ".reginfo",
    ".pdr",
    ".comment",
    ".gnu.attributes",
    ".mdebug.*",
    ".note.*",
];

/// `tests/fixtures`.
pub fn fixtures_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// A committed fixture binary: `tests/fixtures/bin/<name>` (e.g. `"hello.be.o"`).
pub fn fixture(name: &str) -> PathBuf {
    fixtures_root().join("bin").join(name)
}

/// The bytes of [`fixture`]`(name)`; panics with the path if it cannot be read.
pub fn fixture_bytes(name: &str) -> Vec<u8> {
    let p = fixture(name);
    std::fs::read(&p).unwrap_or_else(|e| panic!("read fixture {}: {e}", p.display()))
}

/// The fixtures' ET_EXEC script `tests/fixtures/exec.ld`: `.text`, `.rodata`, `.data`,
/// small data, `.bss` (and COMMON) in that order from 0x10000000 in one RWX PT_LOAD.
pub fn default_script() -> String {
    let p = fixtures_root().join("exec.ld");
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

/// A fresh temporary directory, removed when the value is dropped.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::tempdir().expect("create a temporary directory")
}

fn endian_flag(endian: Endian) -> &'static str {
    match endian {
        Endian::Big => "-EB",
        Endian::Little => "-EL",
    }
}

/// Link the single relocatable `obj` with GNU ld:
/// `mips-linux-gnu-ld -EB|-EL -z max-page-size=0x1000 -z common-page-size=0x1000 -T <script> -o <out> <obj>`.
/// The script text is written beside `out` as `<out>.script`. Panics with ld's stderr if
/// the link fails.
pub fn ld_reference(obj: &Path, endian: Endian, script: &str, out: &Path) {
    let mut script_path = out.as_os_str().to_owned();
    script_path.push(".script");
    let script_path = PathBuf::from(script_path);
    std::fs::write(&script_path, script)
        .unwrap_or_else(|e| panic!("write {}: {e}", script_path.display()));
    let output = Command::new(LD)
        .arg(endian_flag(endian))
        .args(LD_PAGE_FLAGS)
        .arg("-T")
        .arg(&script_path)
        .arg("-o")
        .arg(out)
        .arg(obj)
        .output()
        .unwrap_or_else(|e| panic!("run {LD} (install binutils-mips-linux-gnu): {e}"));
    if !output.status.success() {
        panic!(
            "{LD} failed for {} ({}):\n{}\nscript:\n{script}",
            obj.display(),
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// A linker script that puts every named input section of the one input object at the
/// given address, each in an output section of the same name: `NAME ADDR : { *(NAME) }`,
/// in address order, all in one RWX PT_LOAD (gaps are zero-filled). `ENTRY(__start)`.
///
/// - Names in [`DISCARDED`] (`.MIPS.abiflags`, `.reginfo`, ...) are not placed but
///   discarded, so ld emits no PT_MIPS_REGINFO/PT_MIPS_ABIFLAGS headers; the `PHDRS` command
///   replaces ld's default program headers entirely.
/// - COMMON symbols: pass the pseudo-section name `"COMMON"` (and/or `".scommon"`) with an
///   address to place them there; otherwise ld allocates them in a trailing `.common`
///   section right after the highest-addressed section (the ELF meaning, after `.bss`).
pub fn legacy_order_script(sections: &[(String, u32)]) -> String {
    let discarded = |name: &str| {
        DISCARDED.iter().any(|d| match d.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => name == *d,
        })
    };
    let mut placed: Vec<&(String, u32)> = sections.iter().filter(|(n, _)| !discarded(n)).collect();
    placed.sort_by_key(|(n, a)| (*a, n.clone()));
    let mut s = String::from(
        "/* tests/common legacy_order_script: each input section at its legacy address */\n\
         ENTRY(__start)\nPHDRS\n{\n  image PT_LOAD FLAGS(7);\n}\nSECTIONS\n{\n",
    );
    for (name, addr) in &placed {
        s.push_str(&format!("  {name} {addr:#010x} : {{ *({name}) }} :image\n"));
    }
    let has = |n: &str| placed.iter().any(|(p, _)| p == n);
    let mut rest = Vec::new();
    if !has("COMMON") {
        rest.push("COMMON");
    }
    if !has(".scommon") {
        rest.push(".scommon");
    }
    if !rest.is_empty() {
        let inputs: Vec<String> = rest.iter().map(|r| format!("*({r})")).collect();
        s.push_str(&format!("  .common : {{ {} }} :image\n", inputs.join(" ")));
    }
    let discards: Vec<String> = DISCARDED.iter().map(|d| format!("*({d})")).collect();
    s.push_str(&format!("  /DISCARD/ : {{ {} }}\n}}\n", discards.join(" ")));
    s
}

/// Run a MIPS32 Linux executable (or firmware file) under `qemu-mips`/`qemu-mipsel` and
/// return its stdout and exit code. A program killed by a signal reports `128 + signal`
/// (as a shell would). If `path` is not executable (qemu-user refuses such files) a copy in a
/// temporary directory is made executable and run, so committed fixtures are never touched.
/// Panics if qemu cannot start or load the file, or after [`QEMU_TIMEOUT`].
pub fn run_qemu(path: &Path, endian: Endian) -> (Vec<u8>, i32) {
    let qemu = match endian {
        Endian::Big => "qemu-mips",
        Endian::Little => "qemu-mipsel",
    };
    let mode = std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("stat {}: {e}", path.display()))
        .permissions()
        .mode();
    let mut keep = None; // the temporary copy lives until qemu is done
    let exe = if mode & 0o111 == 0o111 {
        path.to_path_buf()
    } else {
        let dir = tempdir();
        let copy = dir
            .path()
            .join(path.file_name().unwrap_or_else(|| "prog".as_ref()));
        std::fs::copy(path, &copy).unwrap_or_else(|e| panic!("copy {}: {e}", path.display()));
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755))
            .unwrap_or_else(|e| panic!("chmod {}: {e}", copy.display()));
        keep = Some(dir);
        copy
    };
    let mut child = Command::new(qemu)
        .arg(&exe)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("run {qemu} (install qemu-user): {e}"));
    // Drain both pipes on threads so a chatty program cannot block on a full pipe.
    let mut out_pipe = child.stdout.take().expect("piped stdout");
    let mut err_pipe = child.stderr.take().expect("piped stderr");
    let out_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = out_pipe.read_to_end(&mut v);
        v
    });
    let err_t = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = err_pipe.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        match child.try_wait() {
            Ok(Some(st)) => break st,
            Ok(None) if start.elapsed() < QEMU_TIMEOUT => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{qemu} {}: no exit within {QEMU_TIMEOUT:?}", path.display());
            }
            Err(e) => panic!("wait for {qemu}: {e}"),
        }
    };
    let stdout = out_t.join().unwrap_or_default();
    let stderr = err_t.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    // qemu's own loader errors ("qemu-mips: x: Error mapping file") are not program results.
    if stderr.lines().any(|l| l.starts_with(&format!("{qemu}:"))) {
        panic!("{qemu} could not run {}: {stderr}", path.display());
    }
    let code = match status.code() {
        Some(c) => c,
        None => {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }
    };
    drop(keep);
    (stdout, code)
}
