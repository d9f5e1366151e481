//! Hosted mode's o32 Linux syscalls: the three a freestanding test program needs to run the
//! same under qemu-user and here. Number in $v0, arguments in $a0..$a2; the result in $v0
//! with $a3 = 0, or an errno in $v0 with $a3 = 1 (the o32 convention).

use super::memory::Memory;
use super::Output;

pub const SYS_EXIT: u32 = 4001;
pub const SYS_WRITE: u32 = 4004;
pub const SYS_EXIT_GROUP: u32 = 4246;
const EBADF: u32 = 9;
const EFAULT: u32 = 14;

/// What a syscall asks of the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Continue with `$v0`, `$a3` set to these.
    Return {
        v0: u32,
        a3: u32,
    },
    Exit(i32),
    /// Not served: a fault naming the number.
    Unknown(u32),
}

/// Serve syscall `nr` with arguments `a`.
pub fn syscall(nr: u32, a: [u32; 3], memory: &Memory, output: &Output) -> Outcome {
    match nr {
        SYS_WRITE => {
            let (fd, buf, len) = (a[0], a[1], a[2]);
            if fd != 1 && fd != 2 {
                return Outcome::Return { v0: EBADF, a3: 1 };
            }
            let mut bytes = vec![0u8; len as usize];
            if len > 0 && memory.read_va(buf, &mut bytes).is_none() {
                return Outcome::Return { v0: EFAULT, a3: 1 };
            }
            output(fd, &bytes);
            Outcome::Return { v0: len, a3: 0 }
        }
        // exit(status): the low 8 bits, as the kernel reports them.
        SYS_EXIT | SYS_EXIT_GROUP => Outcome::Exit((a[0] & 0xff) as i32),
        n => Outcome::Unknown(n),
    }
}
