//! Unit tests of the device state machine: Sim backend for the whole loop, a recording mock
//! where the exact backend calls matter. No FUSE.

use std::sync::{Arc, Mutex};

use vpe::remoteproc::sim::{Sim, SimOptions};
use vpe::remoteproc::{Backend, RprocState, StartOutcome};

use super::*;

/// The thread writing and closing in these tests (init: always there, never this process).
const ME: u32 = 1;

fn fixture(name: &str) -> Vec<u8> {
    let p = format!(
        "{}/../tests/fixtures/bin/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read(&p).unwrap_or_else(|e| panic!("fixture {p}: {e}"))
}

fn sim_device(cfg: Config, fail_start: bool) -> Device {
    let sim = Sim::new(SimOptions {
        host: None,
        profile: None,
        fail_start,
        ..Default::default()
    });
    Device::new(cfg, Box::new(sim))
}

fn state(d: &Device) -> String {
    d.status().state
}

/// open + write everything + release, as `cat f > vpe1`.
fn cat(d: &Device, bytes: &[u8]) {
    let fh = d.open(Node::Vpe1, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    assert_eq!(d.truncate(Node::Vpe1, 0), Ok(()));
    assert_eq!(d.flush(fh, ME), Ok(()), "the shell's empty flush");
    for chunk in bytes.chunks(512) {
        assert_eq!(d.write(fh, chunk, ME), Ok(chunk.len()));
    }
    assert_eq!(d.flush(fh, ME), Ok(()));
    d.release(fh);
}

#[derive(Default)]
struct Calls {
    calls: Vec<String>,
    firmware: Vec<Vec<u8>>,
}

/// Records every call; optionally fails `stop` or `start`.
struct Mock {
    calls: Arc<Mutex<Calls>>,
    state: RprocState,
    fail_stop: bool,
    fail_start: bool,
    /// Fail the start but report a rollback to `old.elf`.
    roll_back: bool,
}

impl Mock {
    fn new() -> (Mock, Arc<Mutex<Calls>>) {
        let calls = Arc::new(Mutex::new(Calls::default()));
        let m = Mock {
            calls: calls.clone(),
            state: RprocState::Offline,
            fail_stop: false,
            fail_start: false,
            roll_back: false,
        };
        (m, calls)
    }
}

impl Backend for Mock {
    fn kind(&self) -> &'static str {
        "mock"
    }
    fn state(&mut self) -> vpe::Result<RprocState> {
        Ok(self.state)
    }
    fn stop(&mut self) -> vpe::Result<()> {
        self.calls.lock().unwrap().calls.push("stop".into());
        if self.fail_stop {
            return Err(vpe::Error::Kernel {
                message: "stop failed".into(),
                errno: libc::EINVAL,
                detail: String::new(),
            });
        }
        self.state = RprocState::Offline;
        Ok(())
    }
    fn install(&mut self, firmware: &[u8], sha256: &str) -> vpe::Result<String> {
        self.calls.lock().unwrap().firmware.push(firmware.to_vec());
        Ok(format!("vpe-compat/{sha256}.elf"))
    }
    fn start(&mut self, name: &str) -> vpe::Result<StartOutcome> {
        let sha256 = name
            .trim_start_matches("vpe-compat/")
            .trim_end_matches(".elf");
        self.calls
            .lock()
            .unwrap()
            .calls
            .push(format!("start {sha256}"));
        if self.fail_start {
            return Err(vpe::Error::Kernel {
                message: "Boot failed: -12".into(),
                errno: libc::ENOMEM,
                detail: "carveout".into(),
            });
        }
        self.state = RprocState::Running;
        let rolled_back = self.roll_back.then(|| vpe::remoteproc::Rollback {
            failed_error: "Boot failed: -16".into(),
            restored_firmware: "vpe-compat/old.elf".into(),
            restored_state: RprocState::Running,
        });
        Ok(StartOutcome {
            firmware: format!("vpe-compat/{sha256}.elf"),
            state: RprocState::Running,
            rolled_back,
        })
    }
    fn firmware_name(&mut self) -> Option<String> {
        None
    }
}

#[test]
fn cat_starts_the_program_and_status_shows_it() {
    let hello = fixture("hello.be.o");
    let d = sim_device(Config::default(), false);
    assert_eq!(state(&d), "offline");
    cat(&d, &hello);
    let st = d.status();
    assert_eq!(st.state, "running", "{st:?}");
    assert_eq!(
        st.sha256.as_deref(),
        Some(convert::sha256_hex(&hello).as_str())
    );
    assert_eq!(st.image_size, Some(hello.len() as u64));
    assert_eq!(st.last_result.as_deref(), Some("ok"));
    assert_eq!(st.loads_ok, 1);
    // The entry is __start of the legacy model at the default base, computed independently
    // of the device.
    let conv = convert::convert(&hello, &Config::default().convert).unwrap();
    assert_eq!(st.entry, Some(hex(conv.legacy.entry)));
    assert_eq!(st.vpe_shared, conv.legacy.shared.map(hex));
    assert!(st.vpe_shared.is_some(), "hello.c defines vpe_shared");
    assert!(st.firmware.is_some());
}

#[test]
fn a_write_open_stops_the_running_program_and_clears_vpe_shared() {
    let hello = fixture("hello.be.o");
    let d = sim_device(Config::default(), false);
    cat(&d, &hello);
    assert_eq!(state(&d), "running");
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    assert_eq!(state(&d), "offline");
    assert_eq!(d.status().vpe_shared, None);
    assert_eq!(d.read(fh, 0, 1), Err(Errno(libc::EINVAL)));
    d.release(fh);
    // A release without data is a load of an empty buffer: "only elf files are supported".
    let st = d.status();
    assert_eq!(st.state, "offline");
    assert_eq!(
        st.last_error.unwrap().legacy_message.as_deref(),
        Some(MSG_NOT_ELF)
    );
}

#[test]
fn a_read_only_open_stops_nothing_and_loads_nothing() {
    let d = sim_device(Config::default(), false);
    cat(&d, &fixture("hello.be.o"));
    let before = d.status();
    let fh = d.open(Node::Vpe1, libc::O_RDONLY).unwrap();
    assert_eq!(state(&d), "running");
    assert_eq!(
        d.read(fh, 0, 1),
        Err(Errno(libc::EINVAL)),
        "vpe.c has no read"
    );
    assert_eq!(d.fsync(fh), Ok(()));
    d.release(fh);
    assert_eq!(d.status(), before, "not even a failed load");
}

#[test]
fn open_calls_stop_once_and_never_fails_even_if_stop_does() {
    let (mut m, calls) = Mock::new();
    m.fail_stop = true;
    let d = Device::new(Config::default(), Box::new(m));
    let a = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    let b = d.open(Node::Vpe1, libc::O_RDWR).unwrap();
    assert_ne!(a, b);
    assert_eq!(calls.lock().unwrap().calls, ["stop", "stop"]);
    let st = d.status();
    assert_eq!(st.last_error.as_ref().unwrap().phase, Phase::Stop);
    assert_eq!(st.loads_failed, 0, "a failed stop is not a failed load");
}

#[test]
fn writes_append_up_to_the_limit_and_an_overflowing_write_consumes_nothing() {
    let hello = fixture("hello.be.o");
    let cfg = Config {
        max_image: hello.len(),
        ..Config::default()
    };
    let d = sim_device(cfg, false);
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    let (a, b) = hello.split_at(hello.len() / 2);
    assert_eq!(d.write(fh, a, ME), Ok(a.len()));
    // One byte too many: refused whole.
    let mut over = b.to_vec();
    over.push(0);
    assert_eq!(d.write(fh, &over, ME), Err(Errno(libc::ENOMEM)));
    // Exactly the limit is allowed (vpe_write: strictly greater fails).
    assert_eq!(d.write(fh, b, ME), Ok(b.len()));
    assert_eq!(d.write(fh, &[0], ME), Err(Errno(libc::ENOMEM)));
    // A refused write poisons the open (the kernel splits one large write(2) into several
    // requests: the accepted head alone must not start): nothing loads.
    assert_eq!(d.fsync(fh), Err(Errno(libc::ENOMEM)));
    d.release(fh);
    let st = d.status();
    assert_eq!(st.state, "offline", "{st:?}");
    assert_eq!((st.loads_ok, st.loads_failed), (0, 1));
    let e = st.last_error.unwrap();
    assert_eq!((e.phase, e.errno), (Phase::Write, libc::ENOMEM));
    assert_eq!(e.legacy_message.as_deref(), Some(MSG_TOO_BIG));
    assert!(e.message.contains("nothing was loaded"), "{}", e.message);
    // An open whose writes all fit loads as before.
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    assert_eq!(d.write(fh, a, ME), Ok(a.len()));
    assert_eq!(d.write(fh, b, ME), Ok(b.len()));
    d.release(fh);
    let st = d.status();
    assert_eq!(st.state, "running", "{st:?}");
    assert_eq!(st.sha256, Some(convert::sha256_hex(&hello)));
}

#[test]
fn all_opens_together_are_bounded_by_max_buffered_and_release_gives_it_back() {
    let cfg = Config {
        max_image: 1000,
        max_buffered: 2500,
        ..Config::default()
    };
    let (m, calls) = Mock::new();
    let d = Device::new(cfg, Box::new(m));
    let fhs: Vec<u64> = (0..3)
        .map(|_| d.open(Node::Vpe1, libc::O_WRONLY).unwrap())
        .collect();
    assert_eq!(d.write(fhs[0], &[1; 1000], ME), Ok(1000));
    assert_eq!(d.write(fhs[1], &[1; 1000], ME), Ok(1000));
    assert_eq!(d.buffered(), 2000);
    // The third open may not grow past the budget, even with a write its own limit allows.
    assert_eq!(d.write(fhs[2], &[1; 600], ME), Err(Errno(libc::ENOMEM)));
    assert_eq!(
        d.write(fhs[2], &[1; 10], ME),
        Ok(10),
        "small writes still fit"
    );
    for &fh in &fhs {
        d.release(fh);
    }
    assert_eq!(d.buffered(), 0);
    let st = d.status();
    assert_eq!(st.loads_failed, 3, "two junk images and the refused open");
    assert!(calls.lock().unwrap().firmware.is_empty());
    // Many small writes grow one buffer geometrically, never past max_image.
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    for _ in 0..100 {
        d.write(fh, &[0; 10], ME).unwrap();
    }
    assert!(d.buffered() <= 1000, "{}", d.buffered());
    d.release(fh);
}

#[test]
fn opens_past_max_open_are_enfile_until_one_is_released() {
    let cfg = Config {
        max_open: 3,
        ..Config::default()
    };
    let d = sim_device(cfg, false);
    let fhs: Vec<u64> = (0..3)
        .map(|_| d.open(Node::Status, libc::O_RDONLY).unwrap())
        .collect();
    assert_eq!(
        d.open(Node::Status, libc::O_RDONLY),
        Err(Errno(libc::ENFILE))
    );
    assert_eq!(d.open(Node::Vpe1, libc::O_WRONLY), Err(Errno(libc::ENFILE)));
    d.release(fhs[0]);
    assert!(d.open(Node::StatusJson, libc::O_RDONLY).is_ok());
}

#[test]
fn status_opens_share_one_rendering_until_the_status_changes() {
    let d = sim_device(Config::default(), false);
    let text = |fh| match lock(&d.handles).map.get(&fh) {
        Some(Handle::Text(t)) => t.clone(),
        _ => panic!("not a text handle"),
    };
    let a = d.open(Node::Status, libc::O_RDONLY).unwrap();
    let b = d.open(Node::Status, libc::O_RDONLY).unwrap();
    let j = d.open(Node::StatusJson, libc::O_RDONLY).unwrap();
    assert!(Arc::ptr_eq(&text(a), &text(b)));
    assert!(!Arc::ptr_eq(&text(a), &text(j)));
    cat(&d, b"junk");
    let c = d.open(Node::Status, libc::O_RDONLY).unwrap();
    assert!(
        !Arc::ptr_eq(&text(a), &text(c)),
        "a new status, a new rendering"
    );
    assert!(String::from_utf8_lossy(&text(c)).contains("loads_failed: 1\n"));
}

#[test]
fn a_failed_load_from_another_fd_keeps_what_runs() {
    let hello = fixture("hello.be.o");
    let d = sim_device(Config::default(), false);
    let a = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    let b = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(a, &hello, ME).unwrap();
    d.release(a);
    let ok = d.status();
    assert_eq!(ok.state, "running");
    d.write(b, b"junk", ME).unwrap();
    d.release(b);
    let st = d.status();
    assert_eq!(st.state, "running");
    assert_eq!(
        (
            &st.firmware,
            &st.entry,
            &st.vpe_shared,
            &st.sha256,
            st.image_size
        ),
        (
            &ok.firmware,
            &ok.entry,
            &ok.vpe_shared,
            &ok.sha256,
            ok.image_size
        ),
        "{st:?}"
    );
    assert!(st.entry.is_some() && st.vpe_shared.is_some());
    assert_eq!(st.last_result.as_deref(), Some("failed"));
    assert_eq!(st.last_attempt_sha256, Some(convert::sha256_hex(b"junk")));
    assert_eq!(st.last_attempt_size, Some(4));
}

#[test]
fn errors_on_close_ignores_the_close_of_a_process_that_wrote_nothing() {
    let cfg = Config {
        errors_on_close: true,
        ..Config::default()
    };
    let (m, calls) = Mock::new();
    let d = Device::new(cfg, Box::new(m));
    let me = std::process::id();
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, b"\x7fELF partial", me).unwrap();
    // pid 1 (init) is never this process: a child that inherited the descriptor.
    assert_eq!(d.flush(fh, 1), Ok(()));
    assert_eq!(
        d.status().last_result,
        None,
        "the child's close loaded nothing"
    );
    assert_eq!(
        d.flush(fh, me),
        Err(Errno(libc::ENOEXEC)),
        "the writer's close loads"
    );
    d.release(fh);
    assert_eq!(d.status().loads_failed, 1);
    assert!(calls.lock().unwrap().firmware.is_empty());
}

#[test]
fn a_single_write_over_the_default_limit_fails() {
    let d = sim_device(Config::default(), false);
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    assert_eq!(
        d.write(fh, &vec![0u8; P_SIZE + 1], ME),
        Err(Errno(libc::ENOMEM))
    );
    assert_eq!(d.write(fh, &vec![0u8; P_SIZE], ME), Ok(P_SIZE));
    d.release(fh);
}

#[test]
fn truncate_to_zero_is_accepted_other_sizes_are_not() {
    let d = sim_device(Config::default(), false);
    assert_eq!(d.truncate(Node::Vpe1, 0), Ok(()));
    assert_eq!(d.truncate(Node::Vpe1, 10), Err(Errno(libc::EINVAL)));
    assert_eq!(d.truncate(Node::Kill, 0), Ok(()));
    assert_eq!(d.truncate(Node::Status, 0), Err(Errno(libc::EACCES)));
}

#[test]
fn garbage_is_refused_with_the_legacy_message_and_close_still_succeeds() {
    let d = sim_device(Config::default(), false);
    cat(&d, b"hello, world\n");
    let st = d.status();
    assert_eq!(st.state, "offline");
    assert_eq!(st.last_result.as_deref(), Some("failed"));
    let e = st.last_error.unwrap();
    assert_eq!(e.phase, Phase::Check);
    assert_eq!(e.errno, libc::ENOEXEC);
    assert!(e.message.starts_with(MSG_NOT_ELF), "{}", e.message);
    assert!(e.message.contains("68 65 6c 6c"), "{}", e.message);
}

#[test]
fn a_bad_elf_gives_the_loader_message_then_elf_load_failed() {
    let d = sim_device(Config::default(), false);
    cat(&d, &fixture("no_start.be.o"));
    let e = d.status().last_error.unwrap();
    assert_eq!(e.phase, Phase::Convert);
    assert!(
        e.message
            .contains("VPE loader: program does not contain a __start symbol"),
        "{}",
        e.message
    );
    assert_eq!(e.legacy_message.as_deref(), Some(MSG_LOAD_FAILED));
    assert_eq!(d.status().state, "offline");
}

#[test]
fn fsync_loads_now_and_reports_enoexec_or_eio() {
    let hello = fixture("hello.be.o");
    // Rejected image.
    let d = sim_device(Config::default(), false);
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, b"\x7fELF but not really", ME).unwrap();
    assert_eq!(d.fsync(fh), Err(Errno(libc::ENOEXEC)));
    assert_eq!(
        d.fsync(fh),
        Err(Errno(libc::ENOEXEC)),
        "same result, no new load"
    );
    d.release(fh);
    assert_eq!(
        d.status().loads_failed,
        1,
        "release does not load the same bytes again"
    );

    // Good image: fsync starts it, release does not start it a second time.
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, &hello, ME).unwrap();
    assert_eq!(d.fsync(fh), Ok(()));
    assert_eq!(state(&d), "running");
    d.release(fh);
    assert_eq!(d.status().loads_ok, 1);

    // Failed start.
    let d = sim_device(Config::default(), true);
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, &hello, ME).unwrap();
    assert_eq!(d.fsync(fh), Err(Errno(libc::EIO)));
    d.release(fh);
    let st = d.status();
    assert_eq!(st.last_error.unwrap().phase, Phase::Start);
    assert_ne!(st.state, "running");
}

#[test]
fn writes_after_fsync_are_loaded_again_at_release() {
    let hello = fixture("hello.be.o");
    let (m, calls) = Mock::new();
    let d = Device::new(Config::default(), Box::new(m));
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, &hello, ME).unwrap();
    assert_eq!(d.fsync(fh), Ok(()));
    d.write(fh, &[0; 4], ME).unwrap();
    d.release(fh);
    let c = calls.lock().unwrap();
    assert_eq!(c.calls.len(), 3, "{:?}", c.calls);
    let mut longer = hello.clone();
    longer.extend_from_slice(&[0; 4]);
    let fw = convert::convert(&longer, &Config::default().convert)
        .unwrap()
        .firmware;
    assert_eq!(c.calls[2], format!("start {}", convert::sha256_hex(&fw)));
    assert_eq!(c.firmware[1], fw);
}

#[test]
fn errors_on_close_reports_through_flush_and_ignores_empty_flushes() {
    let cfg = Config {
        errors_on_close: true,
        ..Config::default()
    };
    let (m, calls) = Mock::new();
    let d = Device::new(cfg, Box::new(m));
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    assert_eq!(d.flush(fh, ME), Ok(()));
    assert_eq!(
        d.status().last_result,
        None,
        "the empty flush loaded nothing"
    );
    d.write(fh, b"garbage", ME).unwrap();
    assert_eq!(d.flush(fh, ME), Err(Errno(libc::ENOEXEC)));
    d.release(fh);
    assert_eq!(d.status().loads_failed, 1);

    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, &fixture("hello.be.o"), ME).unwrap();
    assert_eq!(d.flush(fh, ME), Ok(()));
    d.release(fh);
    assert_eq!(d.status().loads_ok, 1);
    let starts = calls
        .lock()
        .unwrap()
        .calls
        .iter()
        .filter(|c| c.starts_with("start"))
        .count();
    assert_eq!(starts, 1);
}

#[test]
fn without_errors_on_close_flush_never_loads() {
    let (m, calls) = Mock::new();
    let d = Device::new(Config::default(), Box::new(m));
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, &fixture("hello.be.o"), ME).unwrap();
    assert_eq!(d.flush(fh, ME), Ok(()));
    assert_eq!(calls.lock().unwrap().calls, ["stop"]);
    d.release(fh);
    assert_eq!(calls.lock().unwrap().calls.len(), 2);
}

#[test]
fn failed_start_is_eio_and_recorded() {
    let (mut m, _calls) = Mock::new();
    m.fail_start = true;
    let d = Device::new(Config::default(), Box::new(m));
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, &fixture("hello.be.o"), ME).unwrap();
    assert_eq!(d.fsync(fh), Err(Errno(libc::EIO)));
    d.release(fh);
    let e = d.status().last_error.unwrap();
    assert!(e.message.contains("Boot failed: -12"), "{}", e.message);
    assert_eq!(e.errno, libc::EIO);
}

#[test]
fn a_rolled_back_start_is_a_failure_showing_both_outcomes() {
    let (mut m, _calls) = Mock::new();
    m.roll_back = true;
    let d = Device::new(Config::default(), Box::new(m));
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, &fixture("hello.be.o"), ME).unwrap();
    assert_eq!(d.fsync(fh), Err(Errno(libc::EIO)));
    d.release(fh);
    let st = d.status();
    assert_eq!(st.firmware.as_deref(), Some("vpe-compat/old.elf"));
    assert_eq!(st.entry, None, "the new program is not the one running");
    let e = st.last_error.as_ref().unwrap();
    assert_eq!(
        (e.phase, e.message.as_str()),
        (Phase::Start, "Boot failed: -16")
    );
    let r = st.rollback.as_ref().unwrap();
    assert_eq!(r.restored_state, RprocState::Running);
    let text = st.to_text();
    assert!(
        text.contains("rollback_restored_firmware: vpe-compat/old.elf\n"),
        "{text}"
    );
}

#[test]
fn concurrent_openers_have_their_own_buffers() {
    let hello = fixture("hello.be.o");
    let (m, calls) = Mock::new();
    let d = Device::new(Config::default(), Box::new(m));
    let a = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    let b = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    // Interleaved writes: in vpe.c both would land in one buffer.
    let (h1, h2) = hello.split_at(100);
    d.write(a, h1, ME).unwrap();
    d.write(b, b"junk", ME).unwrap();
    d.write(a, h2, ME).unwrap();
    d.release(a);
    let st = d.status();
    assert_eq!(st.last_result.as_deref(), Some("ok"));
    assert_eq!(st.sha256, Some(convert::sha256_hex(&hello)));
    d.release(b);
    let st = d.status();
    assert_eq!(st.last_attempt_sha256, Some(convert::sha256_hex(b"junk")));
    assert_eq!(st.sha256, Some(convert::sha256_hex(&hello)), "what runs");
    assert_eq!((st.loads_ok, st.loads_failed), (1, 1));
    let c = calls.lock().unwrap();
    assert_eq!(c.calls[..2], ["stop", "stop"]);
    let fw = convert::convert(&hello, &Config::default().convert)
        .unwrap()
        .firmware;
    assert_eq!(c.calls[2], format!("start {}", convert::sha256_hex(&fw)));
    assert_eq!(c.firmware, [fw], "only A's bytes were started");
    assert_eq!(c.calls.len(), 3);
}

#[test]
fn concurrent_loads_from_threads_are_serialised() {
    let hello = fixture("hello.be.o");
    let d = Arc::new(sim_device(Config::default(), false));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let d = d.clone();
            let hello = hello.clone();
            std::thread::spawn(move || cat(&d, &hello))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let st = d.status();
    assert_eq!(st.loads_ok, 4, "{st:?}");
    assert_eq!(st.loads_failed, 0);
    assert_eq!(st.state, "running");
}

#[test]
fn kill_stops_always_succeeds_and_keeps_vpe_shared() {
    let d = sim_device(Config::default(), false);
    cat(&d, &fixture("hello.be.o"));
    let shared = d.status().vpe_shared;
    assert!(shared.is_some());
    let fh = d.open(Node::Kill, libc::O_WRONLY | libc::O_TRUNC).unwrap();
    assert_eq!(d.write(fh, b"1\n", ME), Ok(2));
    assert_eq!(state(&d), "offline");
    assert_eq!(d.status().vpe_shared, shared);
    // Again while offline: still fine.
    assert_eq!(d.write(fh, b"x", ME), Ok(1));
    d.release(fh);
    assert_eq!(d.open(Node::Kill, libc::O_RDONLY), Err(Errno(libc::EACCES)));
}

#[test]
fn kstrtoul_matches_the_kernel() {
    let ok: &[(&[u8], u64)] = &[
        (b"2", 2),
        (b"2\n", 2),
        (b"0x2\n", 2),
        (b"0X1f", 31),
        (b"010", 8),
        (b"0", 0),
        (b"+3", 3),
        (b"4294967295", 4_294_967_295),
    ];
    for (s, v) in ok {
        assert_eq!(kstrtoul(s), Ok(*v), "{:?}", String::from_utf8_lossy(s));
    }
    let bad: &[(&[u8], ParseError)] = &[
        (b"", ParseError::Invalid),
        (b"\n", ParseError::Invalid),
        (b"abc", ParseError::Invalid),
        (b"2\n\n", ParseError::Invalid),
        (b" 2", ParseError::Invalid),
        (b"2 ", ParseError::Invalid),
        (b"-1", ParseError::Invalid),
        (b"0x", ParseError::Invalid),
        (b"08", ParseError::Invalid),
        (b"0xg", ParseError::Invalid),
        (b"4294967296", ParseError::Range),
        (b"99999999999999999999999", ParseError::Range),
    ];
    for (s, e) in bad {
        assert_eq!(kstrtoul(s), Err(*e), "{:?}", String::from_utf8_lossy(s));
    }
}

#[test]
fn ntcs_reads_and_writes_like_the_sysfs_attribute() {
    let cfg = Config {
        max_tcs: 3,
        ..Config::default()
    };
    let d = sim_device(cfg, false);
    let r = d.open(Node::Ntcs, libc::O_RDONLY).unwrap();
    assert_eq!(d.read(r, 0, 100).unwrap(), b"1\n");
    assert_eq!(d.read(r, 1, 100).unwrap(), b"\n");
    assert_eq!(d.read(r, 9, 100).unwrap(), b"");
    d.release(r);
    let w = d.open(Node::Ntcs, libc::O_WRONLY).unwrap();
    assert_eq!(d.write(w, b"0x2\n", ME), Ok(4));
    assert_eq!(d.ntcs_text(), "2\n");
    for bad in [&b"0"[..], b"4", b"abc", b"0x"] {
        assert_eq!(d.write(w, bad, ME), Err(Errno(libc::EINVAL)), "{bad:?}");
    }
    assert_eq!(d.write(w, b"3", ME), Ok(1));
    d.release(w);
    assert_eq!(d.status().ntcs, 3);
}

#[test]
fn ntcs_is_the_a2_of_the_next_load() {
    let hello = fixture("hello.be.o");
    let (m, calls) = Mock::new();
    let d = Device::new(Config::default(), Box::new(m));
    d.set_ntcs(b"3\n").unwrap();
    cat(&d, &hello);
    let fw = calls.lock().unwrap().firmware[0].clone();
    // The same conversion done directly with ntcs = 3 gives the same bytes, and ntcs = 1
    // gives different ones (the trampoline's `li a2`).
    let opts = |ntcs| ConvertOptions {
        ntcs,
        ..Config::default().convert
    };
    assert_eq!(fw, convert::convert(&hello, &opts(3)).unwrap().firmware);
    assert_ne!(fw, convert::convert(&hello, &opts(1)).unwrap().firmware);
}

#[test]
fn status_files_snapshot_at_open_and_refuse_writes() {
    let d = sim_device(Config::default(), false);
    assert_eq!(
        d.open(Node::Status, libc::O_WRONLY),
        Err(Errno(libc::EACCES))
    );
    assert_eq!(
        d.open(Node::StatusJson, libc::O_RDWR),
        Err(Errno(libc::EACCES))
    );
    let t = d.open(Node::Status, libc::O_RDONLY).unwrap();
    let j = d.open(Node::StatusJson, libc::O_RDONLY).unwrap();
    cat(&d, b"nope");
    let text = String::from_utf8(d.read(t, 0, 65536).unwrap()).unwrap();
    assert!(text.contains("backend: sim\n"), "{text}");
    assert!(
        text.contains("last_error: -\n"),
        "snapshot taken before the load: {text}"
    );
    let json: serde_json::Value = serde_json::from_slice(&d.read(j, 0, 65536).unwrap()).unwrap();
    assert_eq!(json["state"], "offline");
    d.release(t);
    d.release(j);
    let text = d.status().to_text();
    assert!(text.contains("last_error_legacy: VPE loader: only elf files are supported\n"));
    assert_eq!(d.read(t, 0, 1), Err(Errno(libc::EBADF)), "released handle");
}

#[test]
fn timings_are_recorded_per_phase() {
    let hello = fixture("hello.be.o");
    let d = sim_device(Config::default(), false);
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, &hello[..64], ME).unwrap();
    std::thread::sleep(Duration::from_millis(5));
    d.write(fh, &hello[64..], ME).unwrap();
    d.release(fh);
    let t = d.status().timings;
    assert!(t.receive_us >= 5000, "{t:?}");
    assert!(t.convert_us > 0, "{t:?}");
    // The simulated start runs the kernel's rules over the whole firmware.
    assert!(t.start_us > 0, "{t:?}");
}

#[test]
fn node_names_and_modes() {
    for n in Node::ALL {
        assert_eq!(Node::from_name(n.name().as_bytes()), Some(n));
    }
    assert_eq!(Node::from_name(b"vpe0"), None);
    assert_eq!(Node::Vpe1.perm(false), 0o600);
    assert_eq!(Node::Vpe1.perm(true), 0o660);
    assert_eq!(Node::Kill.perm(false), 0o200);
    assert_eq!(Node::Ntcs.perm(false), 0o644);
    assert_eq!(Node::StatusJson.perm(false), 0o444);
}

#[test]
fn lantiq_mode_limits_writes_to_vpe1_mem_and_starts_at_kseg1_without_vpe_shared() {
    let cfg = Config::default().lantiq(0x83e0_0000, 0x1_0000, true);
    let d = sim_device(cfg, false);
    assert_eq!(d.max_image(), 0x1_0000);
    // vpe1_mem bounds the buffer: exactly the limit is fine, one more byte is ENOMEM.
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    assert_eq!(d.write(fh, &vec![0u8; 0x1_0000], ME), Ok(0x1_0000));
    assert_eq!(d.write(fh, &[0], ME), Err(Errno(libc::ENOMEM)));
    lock(&d.handles).map.remove(&fh);
    // No vpe_shared: the Lantiq loader's quirk starts at KSEG1(vpe1_load_addr).
    cat(&d, &fixture("no_shared.be.o"));
    let st = d.status();
    assert_eq!(st.state, "running", "{st:?}");
    assert_eq!(st.entry.as_deref(), Some("0xa3e00000"), "{st:?}");
    assert!(
        st.warnings
            .iter()
            .any(|w| w.starts_with("LANTIQ LOADER QUIRK")),
        "{:?}",
        st.warnings
    );
    // A program without __start, refused by mainline, runs too.
    cat(&d, &fixture("no_start.be.o"));
    assert_eq!(d.status().entry.as_deref(), Some("0xa3e00000"));
}

/// Blocks in `install` until told to go, so a test can act while a load holds the buffer.
struct Gate {
    entered: std::sync::mpsc::Sender<()>,
    go: std::sync::mpsc::Receiver<()>,
}

impl Backend for Gate {
    fn kind(&self) -> &'static str {
        "gate"
    }
    fn state(&mut self) -> vpe::Result<RprocState> {
        Ok(RprocState::Offline)
    }
    fn stop(&mut self) -> vpe::Result<()> {
        Ok(())
    }
    fn install(&mut self, _firmware: &[u8], sha256: &str) -> vpe::Result<String> {
        let _ = self.entered.send(());
        let _ = self.go.recv();
        Ok(format!("vpe-compat/{sha256}.elf"))
    }
    fn start(&mut self, name: &str) -> vpe::Result<StartOutcome> {
        Ok(StartOutcome {
            firmware: name.to_string(),
            state: RprocState::Running,
            rolled_back: None,
        })
    }
    fn firmware_name(&mut self) -> Option<String> {
        None
    }
}

#[test]
fn a_write_during_a_load_counts_against_the_limit_and_follows_the_loaded_bytes() {
    let hello = fixture("hello.be.o");
    let (entered_tx, entered) = std::sync::mpsc::channel();
    let (go, go_rx) = std::sync::mpsc::channel();
    let cfg = Config {
        max_image: hello.len() + 4,
        ..Config::default()
    };
    let d = Arc::new(Device::new(
        cfg,
        Box::new(Gate {
            entered: entered_tx,
            go: go_rx,
        }),
    ));
    let fh = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.write(fh, &hello, ME).unwrap();
    let loader = {
        let d = d.clone();
        std::thread::spawn(move || d.fsync(fh))
    };
    entered.recv().unwrap();
    // The load has the buffer; its bytes still count.
    assert_eq!(d.write(fh, &[0; 5], ME), Err(Errno(libc::ENOMEM)));
    go.send(()).unwrap();
    assert_eq!(loader.join().unwrap(), Ok(()));
    let held = d.buffered();
    assert!(held >= hello.len(), "{held}");
    let fh2 = d.open(Node::Vpe1, libc::O_WRONLY).unwrap();
    d.release(fh2);
    d.release(fh);
    assert_eq!(d.buffered(), 0, "accounting back to zero");
}
