//! `vpe-migrate run` on the emulated core, as a process: every fixture prints and exits
//! exactly as the same firmware does under qemu-user; bare-metal firmware faults and spins
//! as the issue says; trace buffers are printed at the end.
#![cfg(feature = "emulate")]

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::{Command, Output};

use goblin::elf::Elf;

mod common;

use common::{bin, fixture};

fn run(args: &[&str]) -> Output {
    bin().args(args).output().expect("run vpe-migrate")
}

/// Run `fw` under qemu-user (a 0755 copy: qemu refuses files that are not executable).
fn qemu(fw: &Path, tag: &str) -> (Vec<u8>, Vec<u8>, Option<i32>) {
    let dir = tempfile::tempdir().unwrap();
    let exe = dir.path().join("prog");
    std::fs::copy(fw, &exe).unwrap();
    std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
    let q = if tag == "be" {
        "qemu-mips"
    } else {
        "qemu-mipsel"
    };
    let o = Command::new(q).arg(&exe).output().expect("run qemu-user");
    (o.stdout, o.stderr, o.status.code())
}

/// Convert `input` with `flags`, run the firmware under qemu-user and with `run --hosted`
/// (from the input, converted in memory, and from the firmware file): identical.
fn same_as_qemu(input: &str, tag: &str, flags: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let fw = dir.path().join("x.fw");
    let src = fixture(input);
    let src = src.to_str().unwrap();
    let mut conv = vec!["convert", src, fw.to_str().unwrap()];
    conv.extend_from_slice(flags);
    let o = run(&conv);
    assert!(
        o.status.success(),
        "{input}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (q_out, q_err, q_code) = qemu(&fw, tag);
    assert!(!q_out.is_empty(), "{input}: qemu printed nothing");
    for file in [src, fw.to_str().unwrap()] {
        let mut args = vec!["run", "--hosted", file];
        if file == src {
            args.extend_from_slice(flags);
        }
        let o = run(&args);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&q_out),
            "{input} ({file}): stdout differs from qemu-user"
        );
        assert_eq!(o.stdout, q_out, "{input}: bytes differ");
        assert_eq!(
            o.stderr, q_err,
            "{input} ({file}): stderr differs from qemu-user"
        );
        assert_eq!(
            o.status.code(),
            q_code,
            "{input} ({file}): exit status differs"
        );
    }
}

#[test]
fn every_fixture_runs_as_under_qemu_user() {
    for tag in ["be", "le"] {
        for p in ["hello", "no_shared", "features", "pc16"] {
            same_as_qemu(&format!("{p}.{tag}.o"), tag, &[]);
        }
        for p in ["smalldata", "common"] {
            same_as_qemu(&format!("{p}.{tag}.o"), tag, &["--relocs", "elf"]);
            same_as_qemu(&format!("{p}.{tag}.o"), tag, &["--relocs", "legacy"]);
        }
        for p in ["hello", "features"] {
            same_as_qemu(&format!("{p}.{tag}.exe"), tag, &[]);
        }
        // The trampoline's $a2/$a3, and entering __start directly.
        same_as_qemu(
            &format!("regs.{tag}.o"),
            tag,
            &["--ntcs", "3", "--memsize", "0x1000000"],
        );
        same_as_qemu(&format!("regs.{tag}.o"), tag, &["--no-trampoline"]);
        // Memory after the image and a trace buffer change nothing.
        same_as_qemu(
            &format!("features.{tag}.o"),
            tag,
            &["--trace", "4096", "--extra-mem", "256K"],
        );
    }
}

#[test]
fn regs_fixture_sees_the_trampoline_values() {
    for tag in ["be", "le"] {
        let o = run(&[
            "run",
            fixture(&format!("regs.{tag}.o")).to_str().unwrap(),
            "--ntcs",
            "3",
            "--memsize",
            "0x1000000",
        ]);
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "a0 0x00000000\na1 0x00000000\na2 0x00000003\na3 0x01000000\n"
        );
        assert_eq!(o.status.code(), Some(43));
    }
}

fn symbol(path: &Path, name: &str) -> u32 {
    let bytes = std::fs::read(path).unwrap();
    let elf = Elf::parse(&bytes).unwrap();
    elf.syms
        .iter()
        .find(|s| elf.strtab.get_at(s.st_name) == Some(name))
        .map(|s| s.st_value as u32)
        .unwrap_or_else(|| panic!("{}: no {name}", path.display()))
}

/// The MIPS remoteproc example's layout (carveout 0x10000000/0x10000, trace at
/// 0x10001a20): a store to unmapped memory stops the core with one `error:` line naming
/// the cause, the pc and the bad address, the registers after it; the trace buffer the
/// firmware wrote first is printed.
#[test]
fn a_faulting_bare_firmware_reports_cause_pc_and_address() {
    for tag in ["be", "le"] {
        let fw = fixture(&format!("rproc_fault.{tag}.fw"));
        let pc = symbol(&fw, "fault_here");
        let o = run(&["run", "--bare", fw.to_str().unwrap()]);
        assert_eq!(o.status.code(), Some(1), "{tag}");
        assert!(o.stdout.is_empty());
        let err = String::from_utf8_lossy(&o.stderr);
        let errors: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
        assert_eq!(
            errors,
            [format!(
                "error: fault: TLBS (TLB miss on store: address not mapped) at pc {pc:#010x}, bad address 0x20000000"
            )],
            "{err}"
        );
        let after: Vec<&str> = err
            .lines()
            .skip_while(|l| !l.starts_with("error:"))
            .skip(1)
            .collect();
        assert_eq!(after.len(), 9, "{err}");
        assert!(after[0].starts_with("zero 0x00000000"), "{err}");
        assert!(after[0].contains("v1 0x20000000"), "{err}");
        assert!(after[8].contains(&format!("pc {pc:#010x}")), "{err}");
        // The trace buffer, as written before the fault; bare entry registers.
        assert!(err.starts_with("trace0 (trace at 0x10001a20):\nrproc_fw: hello from the SP\na0 0xfffffffd\na1 0x0000001f\na2 0x00000020\na3 0x00000000\nrproc_fw: storing to 0x20000000\n"), "{err}");
    }
}

/// A firmware spinning in a polling loop runs until the timeout and exits 0.
#[test]
fn a_spinning_bare_firmware_runs_until_the_timeout() {
    for tag in ["be", "le"] {
        let fw = fixture(&format!("rproc_spin.{tag}.fw"));
        let t = std::time::Instant::now();
        let o = run(&["run", "--bare", "--timeout", "0.5", fw.to_str().unwrap()]);
        assert!(t.elapsed() >= std::time::Duration::from_millis(500));
        assert_eq!(
            o.status.code(),
            Some(0),
            "{}",
            String::from_utf8_lossy(&o.stderr)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("rproc_fw: hello from the SP\na0 0xfffffffd\n"),
            "{err}"
        );
        assert!(!err.contains("error:"), "{err}");
    }
}

/// On the board a syscall takes the exception: `--bare` reports it as a fault.
#[test]
fn a_syscall_without_hosting_is_a_fault() {
    let o = run(&["run", "--bare", fixture("hello.be.o").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.starts_with("error: fault: Sys (syscall without a handler) at pc 0x"),
        "{err}"
    );
    assert!(o.stdout.is_empty());
}

#[test]
fn bad_inputs_are_one_clear_error() {
    let o = run(&["run", "/nonexistent/x.fw"]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).starts_with("error: cannot read /nonexistent/x.fw"));
    let o = run(&[
        "run",
        "--hosted",
        "--bare",
        fixture("hello.be.o").to_str().unwrap(),
    ]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&["run", fixture("no_start.be.o").to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("__start"));
}

/// `verify --run`: the legacy image entered like vpe_run and the firmware print and exit
/// the same (both byte orders, ET_REL and ET_EXEC, the regs fixture's $a2/$a3).
#[test]
fn verify_run_agrees_on_the_fixtures() {
    for tag in ["be", "le"] {
        for (input, flags) in [
            (format!("hello.{tag}.o"), vec![]),
            (format!("features.{tag}.exe"), vec![]),
            (
                format!("regs.{tag}.o"),
                vec!["--ntcs", "3", "--memsize", "0x1000000"],
            ),
            (format!("smalldata.{tag}.o"), vec!["--relocs", "legacy"]),
            (format!("common.{tag}.o"), vec!["--relocs", "elf"]),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let fw = dir.path().join("x.fw");
            let src = fixture(&input);
            let mut conv = vec!["convert", src.to_str().unwrap(), fw.to_str().unwrap()];
            conv.extend_from_slice(&flags);
            assert!(run(&conv).status.success(), "{input}");
            let o = run(&[
                "verify",
                "--run",
                src.to_str().unwrap(),
                fw.to_str().unwrap(),
            ]);
            let err = String::from_utf8_lossy(&o.stderr);
            assert!(o.status.success(), "{input}: {err}");
            assert!(err.contains("runs agree: "), "{input}: {err}");
        }
    }
}

/// Where the two relocation semantics disagree (smalldata's GPREL16 addends, common's
/// COMMON placement) the programs behave differently; the ELF semantics is the one that
/// behaves like GNU ld's link (tests/convert_qemu.rs compares it with the ld link).
#[test]
fn legacy_and_elf_semantics_run_differently_where_they_disagree() {
    for p in ["smalldata", "common"] {
        let src = fixture(&format!("{p}.be.o"));
        let legacy = run(&["run", src.to_str().unwrap(), "--relocs", "legacy"]);
        let elf = run(&["run", src.to_str().unwrap(), "--relocs", "elf"]);
        assert_eq!(legacy.status.code(), elf.status.code(), "{p}");
        assert_ne!(legacy.stdout, elf.stdout, "{p}: the semantics should show");
    }
}
