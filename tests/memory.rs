//! `vpe::memory::reuse_freed_memory`: a freed large buffer is reused by the next one instead
//! of being returned to the kernel and faulted in afresh. Its own test binary: the allocator
//! settings are process-wide.

/// Minor page faults of this process so far.
fn minor_faults() -> i64 {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) };
    assert_eq!(rc, 0);
    // SAFETY: initialised by the successful call above.
    unsafe { u.assume_init() }.ru_minflt
}

/// Allocate `len` bytes, write every page, return the buffer.
fn touched(len: usize) -> Vec<u8> {
    let mut v = Vec::<u8>::with_capacity(len);
    v.resize(len, 1);
    std::hint::black_box(v)
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[test]
fn a_freed_buffer_is_reused_without_new_page_faults() {
    const LEN: usize = 4 << 20;
    vpe::memory::reuse_freed_memory();
    drop(touched(LEN));
    let before = minor_faults();
    let again = touched(LEN);
    let faults = minor_faults() - before;
    drop(again);
    // Fresh memory would fault once per 4 KiB page (1 024 here); reused memory hardly at all.
    assert!(
        faults < 64,
        "{faults} page faults writing a 4 MiB buffer after freeing one"
    );
}
