//! Synthetic SP objects: valid relocatable MIPS ELFs of a chosen size for benchmarks, scale
//! measurements and tests (`benches/`, `scripts/bench-*`, `tests/synth.rs`).
//!
//! An object has `n` "chunks", each a `.text.K` (16 KiB of instructions), a `.rodata.K` and a
//! `.data.K` (4 KiB each) with their `.rel.text.K` / `.rel.data.K`, plus one `.sdata` (with
//! `_gp`) and one `.bss`. The text uses all seven relocation types the legacy loader handles:
//! `lui`/`addiu` pairs (R_MIPS_HI16 immediately followed by its R_MIPS_LO16, against global
//! data symbols, `.bss` symbols and section symbols with an addend), `jal` (R_MIPS_26 to local
//! functions in any text section), `b` (R_MIPS_PC16 with the `-1` in-place addend gas emits,
//! to a local function of the same section), `lw $t1, 0($gp)` (R_MIPS_GPREL16, zero addend)
//! and R_MIPS_NONE; `.data.K` holds R_MIPS_32 pointers. Every relocation means the same under
//! the legacy arithmetic and the MIPS ELF ABI, so the default strict conversion succeeds and
//! GNU ld produces the same bytes.
//!
//! `__start` (in `.text.0`) is runnable: it calls a function that loads `vpe_shared` (42) and
//! exits with it through the o32 Linux `exit` syscall, so a converted object runs under
//! qemu-user with exit code [`EXIT_CODE`].
//!
//! Deterministic: the same [`Options`] give the same bytes.

use crate::elf::read::{Ehdr, Shdr, Sym};
use crate::elf::write::{ehdr_bytes, shdr_bytes, sym_bytes, StringTable};
use crate::elf::{
    Endian, ELFCLASS32, EM_MIPS, ET_REL, EV_CURRENT, R_MIPS_26, R_MIPS_32, R_MIPS_GPREL16,
    R_MIPS_HI16, R_MIPS_LO16, R_MIPS_NONE, R_MIPS_PC16, SHDR32_SIZE, SHF_ALLOC, SHF_EXECINSTR,
    SHF_WRITE, SHT_NOBITS, SHT_PROGBITS, SHT_REL, SHT_STRTAB, SHT_SYMTAB, STB_GLOBAL, STB_LOCAL,
    STT_FUNC, STT_OBJECT, STT_SECTION,
};

/// Bytes of instructions per `.text.K`.
pub const TEXT_CHUNK: u32 = 16 * 1024;
/// Bytes per `.rodata.K` and per `.data.K`.
pub const DATA_CHUNK: u32 = 4 * 1024;
/// Bytes of `.bss` per chunk.
pub const BSS_CHUNK: u32 = 1024;
/// Size of `.sdata`; `_gp` is at its middle.
pub const SDATA_SIZE: u32 = 4096;
/// What a converted object's `__start` exits with (the initial value of `vpe_shared`).
pub const EXIT_CODE: u32 = 42;
/// `e_flags`: MIPS32r2, o32, noreorder (what `gcc -march=mips32r2 -mno-abicalls` gives).
pub const E_FLAGS: u32 = 0x7000_1001;

/// File bytes one chunk adds, a little over the measured ~52.8 KB (so the chunks fit).
const EST_CHUNK_BYTES: usize = 53_500;
/// File bytes of everything but the chunks, a little over the measured ~10 KB.
const EST_FIXED_BYTES: usize = 10_500;

/// Spacing of the local function symbols in text.
const FUNC_STRIDE: u32 = 256;
/// Spacing of the global data objects in `.data.K`.
const OBJ_STRIDE: u32 = 128;
/// Spacing of the local objects in `.rodata.K`.
const RO_STRIDE: u32 = 512;
/// Spacing of the global objects in `.sdata` and `.bss`.
const SMALL_STRIDE: u32 = 16;

/// What to generate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// File size in bytes: as many chunks as fit, then a non-ALLOC `.comment` pads the file
    /// to exactly `size` (rounded up to 4). At least one chunk (about 62 KB).
    pub size: usize,
    pub endian: Endian,
    /// Seed of the pseudo-random choice of instructions and targets.
    pub seed: u64,
}

impl Options {
    /// `size` bytes, big-endian, seed 1.
    pub fn new(size: usize) -> Self {
        Options {
            size,
            endian: Endian::Big,
            seed: 1,
        }
    }
}

/// Counts of what a generated object contains.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub chunks: usize,
    /// Section headers, including the null one.
    pub sections: usize,
    /// Symbols, including the null one.
    pub symbols: usize,
    /// Relocations per type, indexed by `r_type` (0..=10).
    pub relocs_by_type: [usize; 11],
    /// Bytes of ALLOC sections (file-backed and `.bss`).
    pub alloc_bytes: usize,
}

impl Stats {
    /// All relocations.
    pub fn relocations(&self) -> usize {
        self.relocs_by_type.iter().sum()
    }
}

/// splitmix64: small, deterministic, good enough to scatter targets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n.max(1))) as u32
    }
}

/// A section being built.
struct Sec {
    name: String,
    sh_type: u32,
    flags: u32,
    align: u32,
    data: Vec<u8>,
    /// `sh_size` of a NOBITS section.
    nobits: u32,
    link: u32,
    info: u32,
    entsize: u32,
}

impl Sec {
    fn new(name: String, sh_type: u32, flags: u32, align: u32) -> Self {
        Sec {
            name,
            sh_type,
            flags,
            align,
            data: Vec::new(),
            nobits: 0,
            link: 0,
            info: 0,
            entsize: 0,
        }
    }
}

// A few MIPS32 instruction words.
const NOP: u32 = 0x0000_0000;
const LUI_T0: u32 = 0x3c08_0000; // lui $t0, 0
const ADDIU_T0_T0: u32 = 0x2508_0000; // addiu $t0, $t0, imm
const LW_A0_T0: u32 = 0x8d04_0000; // lw $a0, imm($t0)
const LW_T1_GP: u32 = 0x8f89_0000; // lw $t1, 0($gp)
const JAL: u32 = 0x0c00_0000; // jal 0
const B_MINUS_1: u32 = 0x1000_ffff; // beq $zero, $zero, . (REL addend -1, as gas emits)
const ADDIU_V0_EXIT: u32 = 0x2402_0fa1; // addiu $v0, $zero, 4001 (o32 __NR_exit)
const SYSCALL: u32 = 0x0000_000c;
const ADDU_T2: u32 = 0x014b_5021; // addu $t2, $t2, $t3

/// Generate an object (see the module documentation).
pub fn generate(opts: &Options) -> Vec<u8> {
    generate_with_stats(opts).0
}

/// Generate an object and say what is in it.
pub fn generate_with_stats(opts: &Options) -> (Vec<u8>, Stats) {
    generate_inner(opts, 0)
}

/// Generate an object whose `.bss` has `extra_bss` more bytes than the chunks give it (at the
/// end of the image): fine control over where the image ends, and big `.bss` objects.
pub fn generate_with_extra_bss(opts: &Options, extra_bss: u32) -> Vec<u8> {
    generate_inner(opts, extra_bss).0
}

fn generate_inner(opts: &Options, extra_bss: u32) -> (Vec<u8>, Stats) {
    let n = (opts.size.saturating_sub(EST_FIXED_BYTES) / EST_CHUNK_BYTES).max(1);
    let e = opts.endian;
    let mut rng = Rng(opts.seed ^ 0x5eed_0f5e_ed0f_5eed);
    let mut stats = Stats {
        chunks: n,
        ..Stats::default()
    };

    // Section indices: 0 null; per chunk text, rodata, data; .sdata; .bss; per chunk
    // .rel.text.K, .rel.data.K (from bss_idx + 1); .symtab; .strtab; .shstrtab; .comment
    // (padding, last so its size can be chosen at the end).
    let text_idx = |k: usize| 1 + 3 * k;
    let ro_idx = |k: usize| 2 + 3 * k;
    let data_idx = |k: usize| 3 + 3 * k;
    let sdata_idx = 1 + 3 * n;
    let bss_idx = sdata_idx + 1;
    let symtab_idx = bss_idx + 1 + 2 * n;
    let strtab_idx = symtab_idx + 1;
    let shstrtab_idx = strtab_idx + 1;
    let comment_idx = shstrtab_idx + 1;
    let shnum = comment_idx + 1;
    assert!(shnum < 0xff00, "too many sections for one ELF32 e_shnum");

    // Symbols. Locals first: null, one section symbol per ALLOC section, local functions,
    // local read-only objects; then the globals.
    let mut strtab = StringTable::new();
    let mut syms: Vec<Sym> = vec![Sym {
        st_name: 0,
        st_value: 0,
        st_size: 0,
        st_info: 0,
        st_other: 0,
        st_shndx: 0,
    }];
    let sym = |name: u32, value: u32, size: u32, bind: u8, typ: u8, shndx: usize| Sym {
        st_name: name,
        st_value: value,
        st_size: size,
        st_info: (bind << 4) | typ,
        st_other: 0,
        st_shndx: shndx as u16,
    };
    let section_sym = |syms: &mut Vec<Sym>, shndx: usize| {
        syms.push(sym(0, 0, 0, STB_LOCAL, STT_SECTION, shndx));
        syms.len() - 1
    };
    let mut ro_secsym = Vec::with_capacity(n);
    let mut text_secsym = Vec::with_capacity(n);
    for k in 0..n {
        text_secsym.push(section_sym(&mut syms, text_idx(k)));
        ro_secsym.push(section_sym(&mut syms, ro_idx(k)));
        section_sym(&mut syms, data_idx(k));
    }
    section_sym(&mut syms, sdata_idx);
    section_sym(&mut syms, bss_idx);
    let funcs_per = (TEXT_CHUNK / FUNC_STRIDE) as usize;
    let first_func = syms.len();
    for k in 0..n {
        for j in 0..funcs_per {
            let name = strtab.add(&format!("f_{k}_{j}"));
            let v = j as u32 * FUNC_STRIDE;
            syms.push(sym(name, v, FUNC_STRIDE, STB_LOCAL, STT_FUNC, text_idx(k)));
        }
    }
    let func_sym = |k: usize, j: usize| first_func + k * funcs_per + j;
    // The function `__start` calls (offset 8 of .text.0).
    let exit_fn = syms.len();
    let name = strtab.add("sp_exit");
    syms.push(sym(name, 8, 20, STB_LOCAL, STT_FUNC, text_idx(0)));
    for k in 0..n {
        for j in 0..DATA_CHUNK / RO_STRIDE {
            let name = strtab.add(&format!("ro_{k}_{j}"));
            syms.push(sym(
                name,
                j * RO_STRIDE,
                RO_STRIDE,
                STB_LOCAL,
                STT_OBJECT,
                ro_idx(k),
            ));
        }
    }
    let first_global = syms.len();
    let objs_per = (DATA_CHUNK / OBJ_STRIDE) as usize;
    for k in 0..n {
        for j in 0..objs_per {
            let name = if k == 0 && j == 0 {
                strtab.add("vpe_shared")
            } else {
                strtab.add(&format!("obj_{k}_{j}"))
            };
            syms.push(sym(
                name,
                j as u32 * OBJ_STRIDE,
                OBJ_STRIDE,
                STB_GLOBAL,
                STT_OBJECT,
                data_idx(k),
            ));
        }
    }
    let obj_sym = |k: usize, j: usize| first_global + k * objs_per + j;
    let vpe_shared = obj_sym(0, 0);
    let first_small = syms.len();
    let small = (SDATA_SIZE / SMALL_STRIDE) as usize;
    for j in 0..small {
        let name = strtab.add(&format!("sd_{j}"));
        syms.push(sym(
            name,
            j as u32 * SMALL_STRIDE,
            SMALL_STRIDE,
            STB_GLOBAL,
            STT_OBJECT,
            sdata_idx,
        ));
    }
    let name = strtab.add("_gp");
    syms.push(sym(
        name,
        SDATA_SIZE / 2,
        0,
        STB_GLOBAL,
        STT_OBJECT,
        sdata_idx,
    ));
    let bss_size = BSS_CHUNK * n as u32;
    let first_bss = syms.len();
    let nbss = (bss_size / SMALL_STRIDE) as usize;
    for j in 0..nbss {
        let name = strtab.add(&format!("bss_{j}"));
        syms.push(sym(
            name,
            j as u32 * SMALL_STRIDE,
            SMALL_STRIDE,
            STB_GLOBAL,
            STT_OBJECT,
            bss_idx,
        ));
    }
    let name = strtab.add("__start");
    syms.push(sym(name, 0, 8, STB_GLOBAL, STT_FUNC, text_idx(0)));

    // Sections.
    let mut secs: Vec<Sec> = Vec::with_capacity(shnum);
    secs.push(Sec::new(String::new(), 0, 0, 0));
    for k in 0..n {
        secs.push(Sec::new(
            format!(".text.{k}"),
            SHT_PROGBITS,
            SHF_ALLOC | SHF_EXECINSTR,
            16,
        ));
        secs.push(Sec::new(
            format!(".rodata.{k}"),
            SHT_PROGBITS,
            SHF_ALLOC,
            16,
        ));
        secs.push(Sec::new(
            format!(".data.{k}"),
            SHT_PROGBITS,
            SHF_ALLOC | SHF_WRITE,
            16,
        ));
    }
    secs.push(Sec::new(
        ".sdata".into(),
        SHT_PROGBITS,
        SHF_ALLOC | SHF_WRITE,
        16,
    ));
    let mut bss = Sec::new(".bss".into(), SHT_NOBITS, SHF_ALLOC | SHF_WRITE, 16);
    bss.nobits = bss_size.saturating_add(extra_bss);
    secs.push(bss);
    let mut rels: Vec<Sec> = Vec::with_capacity(2 * n);

    let put = |buf: &mut Vec<u8>, w: u32| buf.extend_from_slice(&e.u32_bytes(w));
    let rel = |buf: &mut Vec<u8>, stats: &mut Stats, off: u32, s: usize, t: u8| {
        buf.extend_from_slice(&e.u32_bytes(off));
        buf.extend_from_slice(&e.u32_bytes(((s as u32) << 8) | u32::from(t)));
        stats.relocs_by_type[usize::from(t)] += 1;
    };

    for k in 0..n {
        // .text.K
        let mut text = Vec::with_capacity(TEXT_CHUNK as usize);
        let mut rt = Vec::new();
        if k == 0 {
            // __start: jal sp_exit; nop.  sp_exit: lui/lw vpe_shared; exit(vpe_shared).
            rel(&mut rt, &mut stats, 0, exit_fn, R_MIPS_26);
            put(&mut text, JAL);
            put(&mut text, NOP);
            rel(&mut rt, &mut stats, 8, vpe_shared, R_MIPS_HI16);
            put(&mut text, LUI_T0);
            rel(&mut rt, &mut stats, 12, vpe_shared, R_MIPS_LO16);
            put(&mut text, LW_A0_T0);
            put(&mut text, ADDIU_V0_EXIT);
            put(&mut text, SYSCALL);
            put(&mut text, NOP);
            put(&mut text, NOP);
        }
        while (text.len() as u32) < TEXT_CHUNK {
            let off = text.len() as u32;
            let room = (TEXT_CHUNK - off) / 4;
            let pick = rng.below(100);
            match pick {
                // lui/addiu pair: data object, .bss object, or rodata section symbol + addend.
                0..=29 if room >= 2 => {
                    let (s, addend) = match rng.below(3) {
                        0 => (
                            obj_sym(
                                rng.below(n as u32) as usize,
                                rng.below(objs_per as u32) as usize,
                            ),
                            rng.below(OBJ_STRIDE / 4) * 4,
                        ),
                        1 => (first_bss + rng.below(nbss as u32) as usize, 0),
                        _ => (
                            ro_secsym[rng.below(n as u32) as usize],
                            rng.below(DATA_CHUNK / 4) * 4,
                        ),
                    };
                    rel(&mut rt, &mut stats, off, s, R_MIPS_HI16);
                    put(&mut text, LUI_T0);
                    rel(&mut rt, &mut stats, off + 4, s, R_MIPS_LO16);
                    put(&mut text, ADDIU_T0_T0 | addend);
                }
                // jal f_K'_J; nop
                30..=44 if room >= 2 => {
                    let s = func_sym(
                        rng.below(n as u32) as usize,
                        rng.below(funcs_per as u32) as usize,
                    );
                    rel(&mut rt, &mut stats, off, s, R_MIPS_26);
                    put(&mut text, JAL);
                    put(&mut text, NOP);
                }
                // b f_K_J (same section); nop
                45..=59 if room >= 2 => {
                    let s = func_sym(k, rng.below(funcs_per as u32) as usize);
                    rel(&mut rt, &mut stats, off, s, R_MIPS_PC16);
                    put(&mut text, B_MINUS_1);
                    put(&mut text, NOP);
                }
                60..=69 => {
                    let s = first_small + rng.below(small as u32) as usize;
                    rel(&mut rt, &mut stats, off, s, R_MIPS_GPREL16);
                    put(&mut text, LW_T1_GP);
                }
                70..=74 => {
                    rel(&mut rt, &mut stats, off, text_secsym[k], R_MIPS_NONE);
                    put(&mut text, NOP);
                }
                _ => put(&mut text, ADDU_T2),
            }
        }
        secs[text_idx(k)].data = text;
        // .rodata.K: text-like bytes.
        let ro = &mut secs[ro_idx(k)].data;
        ro.reserve(DATA_CHUNK as usize);
        while (ro.len() as u32) < DATA_CHUNK {
            let b = b'a' + (rng.below(26) as u8);
            ro.push(if ro.len() % 32 == 31 { 0 } else { b });
        }
        // .data.K: every 4th word an R_MIPS_32 pointer (with a small addend), the rest values.
        let mut data = Vec::with_capacity(DATA_CHUNK as usize);
        let mut rd = Vec::new();
        while (data.len() as u32) < DATA_CHUNK {
            let off = data.len() as u32;
            if k == 0 && off == 0 {
                put(&mut data, EXIT_CODE); // vpe_shared
            } else if off % 16 == 12 {
                let s = obj_sym(
                    rng.below(n as u32) as usize,
                    rng.below(objs_per as u32) as usize,
                );
                rel(&mut rd, &mut stats, off, s, R_MIPS_32);
                put(&mut data, rng.below(OBJ_STRIDE / 4) * 4);
            } else {
                put(&mut data, rng.next() as u32);
            }
        }
        secs[data_idx(k)].data = data;
        let mut s = Sec::new(format!(".rel.text.{k}"), SHT_REL, 0, 4);
        s.data = rt;
        s.link = symtab_idx as u32;
        s.info = text_idx(k) as u32;
        s.entsize = 8;
        rels.push(s);
        let mut s = Sec::new(format!(".rel.data.{k}"), SHT_REL, 0, 4);
        s.data = rd;
        s.link = symtab_idx as u32;
        s.info = data_idx(k) as u32;
        s.entsize = 8;
        rels.push(s);
    }
    // .sdata: small values.
    let mut sdata = Vec::with_capacity(SDATA_SIZE as usize);
    while (sdata.len() as u32) < SDATA_SIZE {
        let v = sdata.len() as u32;
        put(&mut sdata, v);
    }
    secs[sdata_idx].data = sdata;
    secs.extend(rels);
    let mut symtab = Sec::new(".symtab".into(), SHT_SYMTAB, 0, 4);
    symtab.data.reserve(syms.len() * 16);
    for s in &syms {
        symtab.data.extend_from_slice(&sym_bytes(e, s));
    }
    symtab.link = strtab_idx as u32;
    symtab.info = first_global as u32;
    symtab.entsize = 16;
    secs.push(symtab);
    let mut st = Sec::new(".strtab".into(), SHT_STRTAB, 0, 1);
    st.data = strtab.bytes().to_vec();
    secs.push(st);
    let mut shstrtab = StringTable::new();
    let mut names: Vec<u32> = secs.iter().map(|s| shstrtab.add(&s.name)).collect();
    names.push(shstrtab.add(".shstrtab"));
    names.push(shstrtab.add(".comment"));
    let mut sh = Sec::new(".shstrtab".into(), SHT_STRTAB, 0, 1);
    sh.data = shstrtab.bytes().to_vec();
    secs.push(sh);
    secs.push(Sec::new(".comment".into(), SHT_PROGBITS, 0, 1));
    debug_assert_eq!(secs.len(), shnum);

    // File: header, contents in section order, section header table.
    let total: usize = 52 + secs.iter().map(|s| s.data.len() + 16).sum::<usize>() + 40 * shnum;
    let mut out = vec![0u8; 52];
    out.reserve(total);
    let mut shdrs = Vec::with_capacity(shnum);
    for (i, s) in secs.iter().enumerate() {
        if i == 0 {
            shdrs.push(Shdr {
                sh_name: 0,
                sh_type: 0,
                sh_flags: 0,
                sh_addr: 0,
                sh_offset: 0,
                sh_size: 0,
                sh_link: 0,
                sh_info: 0,
                sh_addralign: 0,
                sh_entsize: 0,
            });
            continue;
        }
        let align = s.align.max(1) as usize;
        while out.len() % align != 0 {
            out.push(0);
        }
        let offset = out.len() as u32;
        if i == comment_idx {
            // Pad to the size asked for: what is left after this and the header table.
            let rest = out.len() + SHDR32_SIZE * shnum;
            let want = opts.size.max(rest).next_multiple_of(4);
            let mut c = b"vpe::synth padding\0".to_vec();
            c.resize(c.len().max(want - rest), 0);
            out.extend_from_slice(&c);
        } else {
            out.extend_from_slice(&s.data);
        }
        let size = if s.sh_type == SHT_NOBITS {
            s.nobits
        } else {
            out.len() as u32 - offset
        };
        if s.flags & SHF_ALLOC != 0 {
            stats.alloc_bytes += size as usize;
        }
        shdrs.push(Shdr {
            sh_name: names[i],
            sh_type: s.sh_type,
            sh_flags: s.flags,
            sh_addr: 0,
            sh_offset: offset,
            sh_size: size,
            sh_link: s.link,
            sh_info: s.info,
            sh_addralign: s.align,
            sh_entsize: s.entsize,
        });
    }
    while out.len() % 4 != 0 {
        out.push(0);
    }
    let shoff = out.len() as u32;
    for s in &shdrs {
        out.extend_from_slice(&shdr_bytes(e, s));
    }
    let h = Ehdr {
        class: ELFCLASS32,
        data: e.ei_data(),
        ident_version: EV_CURRENT,
        endian: e,
        e_type: ET_REL,
        e_machine: EM_MIPS,
        e_version: 1,
        e_entry: 0,
        e_phoff: 0,
        e_shoff: shoff,
        e_flags: E_FLAGS,
        e_ehsize: 52,
        e_phentsize: 0,
        e_phnum: 0,
        e_shentsize: SHDR32_SIZE as u16,
        e_shnum: shnum as u16,
        e_shstrndx: shstrtab_idx as u16,
    };
    out[..52].copy_from_slice(&ehdr_bytes(&h));
    stats.sections = shnum;
    stats.symbols = syms.len();
    (out, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_the_size_asked() {
        let o = Options::new(200 * 1024);
        let (a, st) = generate_with_stats(&o);
        assert_eq!(a.len(), 200 * 1024);
        assert_eq!(st.chunks, 3);
        assert_eq!(a, generate(&o));
        assert!(st.relocations() > 1000, "{st:?}");
        for t in [0, 2, 4, 5, 6, 7, 10] {
            assert!(st.relocs_by_type[t] > 0, "type {t}: {st:?}");
        }
        let b = generate(&Options { seed: 2, ..o });
        assert_ne!(a, b);
        assert_eq!(a.len(), b.len());
    }
}
