//! The entry trampoline: MIPS32 code at `e_entry` that bridges the remoteproc entry ABI to the
//! legacy VPE one.
//!
//! The MIPS remoteproc driver calls `e_entry` with `$a0 = -3`, `$a1`/`$a2` = IPI hwirqs and
//! `$a3 = 0` (spec §4.5); the legacy loader started `__start` with `$a2 = ntcs` and
//! `$a3 = physical memsize` (`arch/mips/kernel/vpe-mt.c`, `vpe_run`). The trampoline saves the
//! incoming `$a0..$a3` in `vpe_boot_args` (so a ported program can still find its IPIs), loads
//! the legacy values and jumps to `__start`:
//!
//! ```text
//! lui  $t0, %hi(vpe_boot_args)    ; ori $t0, $t0, %lo(vpe_boot_args)
//! sw   $a0, 0($t0)  ; sw $a1, 4($t0) ; sw $a2, 8($t0) ; sw $a3, 12($t0)
//! lui  $a2, NTCS>>16    ; ori $a2, $a2, NTCS & 0xffff
//! lui  $a3, MEMSIZE>>16 ; ori $a3, $a3, MEMSIZE & 0xffff
//! lui  $t9, __start>>16 ; ori $t9, $t9, __start & 0xffff
//! jalr $zero, $t9       ; nop
//! ```
//!
//! Every constant is loaded with `lui`+`ori` (zero-extending halves, no `%hi` carry), so the
//! length never depends on the values. `jalr $zero, $t9` (0x03200009) is an absolute jump that
//! is valid from MIPS32r1 to r6 (r6 removed the `jr` encoding; `jr` is an alias of this), and
//! it leaves `$t9` = `__start` as PIC-style code expects.

use serde::Serialize;

use crate::elf::Endian;

// Register numbers (o32 names).
const ZERO: u32 = 0;
const A0: u32 = 4;
const A2: u32 = 6;
const A3: u32 = 7;
const T0: u32 = 8;
const T9: u32 = 25;

/// Number of instructions.
pub const WORDS: usize = 14;
/// Size of the code in bytes.
pub const SIZE: usize = WORDS * 4;

/// What a trampoline does, as decoded from the code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Trampoline {
    /// Address of the 16-byte `vpe_boot_args` block the incoming `$a0..$a3` are stored to.
    pub boot_args: u32,
    /// Value passed in `$a2` (legacy `ntcs`).
    pub ntcs: u32,
    /// Value passed in `$a3` (legacy `physical_memsize`).
    pub memsize: u32,
    /// Where it jumps (`__start`).
    pub target: u32,
}

fn lui(rt: u32, imm: u32) -> u32 {
    (0x0f << 26) | (rt << 16) | (imm & 0xffff)
}
fn ori(rt: u32, rs: u32, imm: u32) -> u32 {
    (0x0d << 26) | (rs << 21) | (rt << 16) | (imm & 0xffff)
}
fn sw(rt: u32, off: u32, base: u32) -> u32 {
    (0x2b << 26) | (base << 21) | (rt << 16) | (off & 0xffff)
}
fn jalr(rd: u32, rs: u32) -> u32 {
    (rs << 21) | (rd << 11) | 0x09
}
const NOP: u32 = 0;

fn words(t: &Trampoline) -> [u32; WORDS] {
    let li = |r: u32, v: u32| [lui(r, v >> 16), ori(r, r, v)];
    let [a, b] = li(T0, t.boot_args);
    let [c, d] = li(A2, t.ntcs);
    let [e, f] = li(A3, t.memsize);
    let [g, h] = li(T9, t.target);
    [
        a,
        b,
        sw(A0, 0, T0),
        sw(A0 + 1, 4, T0),
        sw(A2, 8, T0),
        sw(A3, 12, T0),
        c,
        d,
        e,
        f,
        g,
        h,
        jalr(ZERO, T9),
        NOP,
    ]
}

/// The trampoline's machine code, each word in `endian` (the ELF's byte order).
pub fn encode(boot_args: u32, ntcs: u32, memsize: u32, target: u32, endian: Endian) -> Vec<u8> {
    words(&Trampoline {
        boot_args,
        ntcs,
        memsize,
        target,
    })
    .iter()
    .flat_map(|w| endian.u32_bytes(*w))
    .collect()
}

/// Recognize exactly the sequence [`encode`] writes at the start of `code`, and recover its
/// constants. Anything else (including other code that happens to start the same) is `None`.
pub fn decode(code: &[u8], endian: Endian) -> Option<Trampoline> {
    let bytes = code.get(..SIZE)?;
    let mut w = [0u32; WORDS];
    for (slot, c) in w.iter_mut().zip(bytes.chunks_exact(4)) {
        *slot = endian.read_u32([c[0], c[1], c[2], c[3]]);
    }
    let pair = |i: usize| (w[i] & 0xffff) << 16 | (w[i + 1] & 0xffff);
    let t = Trampoline {
        boot_args: pair(0),
        ntcs: pair(6),
        memsize: pair(8),
        target: pair(10),
    };
    (words(&t) == w).then_some(t)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Assembled once with `mips-linux-gnu-as -march=mips32` (and `-march=mips32r6`, same
    /// words; r6 objdump prints the jump as `jr t9`) from:
    /// ```text
    /// lui $t0,0x1001 ; ori $t0,$t0,0x2340
    /// sw $a0,0($t0) ; sw $a1,4($t0) ; sw $a2,8($t0) ; sw $a3,12($t0)
    /// lui $a2,0x0 ; ori $a2,$a2,0x1
    /// lui $a3,0x1234 ; ori $a3,$a3,0x5678
    /// lui $t9,0x1000 ; ori $t9,$t9,0x400
    /// jalr $zero,$t9 ; nop
    /// ```
    const EXPECTED: [u32; WORDS] = [
        0x3c08_1001,
        0x3508_2340,
        0xad04_0000,
        0xad05_0004,
        0xad06_0008,
        0xad07_000c,
        0x3c06_0000,
        0x34c6_0001,
        0x3c07_1234,
        0x34e7_5678,
        0x3c19_1000,
        0x3739_0400,
        0x0320_0009,
        0x0000_0000,
    ];

    #[test]
    fn matches_the_assembler_in_both_orders() {
        let be = encode(0x1001_2340, 1, 0x1234_5678, 0x1000_0400, Endian::Big);
        let le = encode(0x1001_2340, 1, 0x1234_5678, 0x1000_0400, Endian::Little);
        assert_eq!(be.len(), SIZE);
        let exp_be: Vec<u8> = EXPECTED.iter().flat_map(|w| w.to_be_bytes()).collect();
        let exp_le: Vec<u8> = EXPECTED.iter().flat_map(|w| w.to_le_bytes()).collect();
        assert_eq!(be, exp_be);
        assert_eq!(le, exp_le);
        // `mips-linux-gnu-as -EL` emitted these first bytes for `lui $t0,0x1001`.
        assert_eq!(&le[..4], &[0x01, 0x10, 0x08, 0x3c]);
    }

    #[test]
    fn decode_recovers_values_and_rejects_other_code() {
        for e in [Endian::Big, Endian::Little] {
            let code = encode(0x8000_fff0, 0xffff_ffff, 0, 0x7fff_0004, e);
            let t = decode(&code, e).unwrap();
            assert_eq!(
                t,
                Trampoline {
                    boot_args: 0x8000_fff0,
                    ntcs: 0xffff_ffff,
                    memsize: 0,
                    target: 0x7fff_0004
                }
            );
            // Extra bytes after the code are fine.
            let mut longer = code.clone();
            longer.extend_from_slice(&[0xff; 8]);
            assert_eq!(decode(&longer, e), Some(t));
            // Wrong order, truncation, or any changed instruction is not our trampoline.
            let other = if e == Endian::Big {
                Endian::Little
            } else {
                Endian::Big
            };
            assert_eq!(decode(&code, other), None);
            assert_eq!(decode(&code[..SIZE - 1], e), None);
            for i in 0..WORDS {
                let mut bad = code.clone();
                // Flip a register/opcode bit (bit 16 of the word: the rt field's low bit).
                let byte = if e == Endian::Big {
                    i * 4 + 1
                } else {
                    i * 4 + 2
                };
                bad[byte] ^= 0x01;
                assert_eq!(decode(&bad, e), None, "word {i}");
            }
        }
    }
}
