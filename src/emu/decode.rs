//! Just enough MIPS32 decoding to name the instruction that faulted. Unicorn reports an
//! exception without its EPC, so the core remembers the translation block it was in and
//! this finds the faulting instruction inside it from the fault's kind and address.

/// Effective address of a load/store/cache/pref word at the given registers, if it is one.
pub fn mem_access(word: u32, gpr: &[u32; 32]) -> Option<u32> {
    let op = word >> 26;
    let is_mem = matches!(
        op,
        0x20..=0x26 | 0x28..=0x2b | 0x2e | 0x2f | 0x30 | 0x31 | 0x33 | 0x35 | 0x38 | 0x39 | 0x3d
    );
    if !is_mem {
        return None;
    }
    let base = ((word >> 21) & 31) as usize;
    let off = (word & 0xffff) as i16 as i32;
    Some(gpr[base].wrapping_add(off as u32))
}

/// `break` (SPECIAL, funct 0x0d).
pub fn is_break(word: u32) -> bool {
    word >> 26 == 0 && word & 0x3f == 0x0d
}

/// `syscall` (SPECIAL, funct 0x0c).
pub fn is_syscall(word: u32) -> bool {
    word >> 26 == 0 && word & 0x3f == 0x0c
}

/// Trap instructions: SPECIAL tge..tne (0x30-0x36), REGIMM tgei..tnei (0x08-0x0e).
pub fn is_trap(word: u32) -> bool {
    (word >> 26 == 0 && (0x30..=0x36).contains(&(word & 0x3f)))
        || (word >> 26 == 1 && (0x08..=0x0e).contains(&((word >> 16) & 31)))
}

/// Signed add/sub that can overflow: add, sub (SPECIAL 0x20/0x22), addi (0x08).
pub fn can_overflow(word: u32) -> bool {
    (word >> 26 == 0 && matches!(word & 0x3f, 0x20 | 0x22)) || word >> 26 == 0x08
}

/// Coprocessor instructions (COP0..COP3, LWC/SWC/LDC/SDC 1-2).
pub fn is_cop(word: u32) -> bool {
    matches!(
        word >> 26,
        0x10..=0x13 | 0x31 | 0x32 | 0x35 | 0x36 | 0x39 | 0x3a | 0x3d | 0x3e
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_what_gcc_emits() {
        let mut r = [0u32; 32];
        r[4] = 0x1000_0000;
        // lw v0,-4(a0) = 8c82fffc; sw a1,8(a0) = ac850008; addu = 00851021 (not memory).
        assert_eq!(mem_access(0x8c82_fffc, &r), Some(0x0fff_fffc));
        assert_eq!(mem_access(0xac85_0008, &r), Some(0x1000_0008));
        assert_eq!(mem_access(0x0085_1021, &r), None);
        assert!(is_break(0x0000_000d));
        assert!(is_syscall(0x0000_000c));
        assert!(is_trap(0x0085_0034)); // teq a0,a1
        assert!(can_overflow(0x0085_1020)); // add v0,a0,a1
        assert!(is_cop(0x4200_0002)); // tlbwi
    }
}
