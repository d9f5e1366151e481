#!/usr/bin/env python3
"""Generate the hostile corpus: malformed inputs derived from the MIPS fixtures.

Run from anywhere: `python3 tests/hostile/gen.py`. The output (`tests/hostile/cases/*.elf`)
is committed; this script only documents and reproduces it (it is deterministic). Every case
is one precise corruption of a valid fixture, so each exercises one check. The expected
one-line error of each is in `tests/snapshots/hostile__hostile_errors.snap`. A few cases
(marked `accepted` there) are refused by nothing because the legacy kernel ignored the field
too (relocation sections whose sh_link/sh_info it skipped, e_phentsize, ...): the converter
follows the kernel, and the tests check those convert cleanly instead.
"""
import os
import random
import shutil
import struct

HERE = os.path.dirname(os.path.abspath(__file__))
FIX = os.path.join(HERE, "..", "fixtures", "bin")
OUT = os.path.join(HERE, "cases")

EHDR = 52
SHDR = 40
PHDR = 32


def load(name):
    with open(os.path.join(FIX, name), "rb") as f:
        return bytearray(f.read())


class Elf:
    def __init__(self, name):
        self.b = load(name)
        self.e = ">" if self.b[5] == 2 else "<"

    def u16(self, off):
        return struct.unpack_from(self.e + "H", self.b, off)[0]

    def u32(self, off):
        return struct.unpack_from(self.e + "I", self.b, off)[0]

    def p16(self, off, v):
        struct.pack_into(self.e + "H", self.b, off, v & 0xFFFF)

    def p32(self, off, v):
        struct.pack_into(self.e + "I", self.b, off, v & 0xFFFFFFFF)

    @property
    def shoff(self):
        return self.u32(32)

    @property
    def shnum(self):
        return self.u16(48)

    @property
    def phoff(self):
        return self.u32(28)

    def sh(self, i):
        return self.shoff + i * SHDR

    def name_of(self, i):
        strndx = self.u16(50)
        stroff = self.u32(self.sh(strndx) + 16)
        n = self.u32(self.sh(i))
        end = self.b.index(0, stroff + n)
        return self.b[stroff + n:end].decode()

    def find(self, name):
        for i in range(self.shnum):
            if self.name_of(i) == name:
                return i
        raise KeyError(name)

    # Field offsets inside a section header.
    def sh_field(self, i, field):
        return self.sh(i) + {
            "name": 0, "type": 4, "flags": 8, "addr": 12, "offset": 16,
            "size": 20, "link": 24, "info": 28, "addralign": 32, "entsize": 36,
        }[field]

    def set_sh(self, name, field, v):
        self.p32(self.sh_field(self.find(name), field), v)
        return self

    def get_sh(self, name, field):
        return self.u32(self.sh_field(self.find(name), field))

    def ph_field(self, k, field):
        return self.phoff + k * PHDR + {
            "type": 0, "offset": 4, "vaddr": 8, "paddr": 12, "filesz": 16,
            "memsz": 20, "flags": 24, "align": 28,
        }[field]


cases = {}


def case(name, data):
    assert name not in cases, name
    cases[name] = bytes(data)


def rel(base="hello.be.o"):
    return Elf(base)


def main():
    if os.path.isdir(OUT):
        shutil.rmtree(OUT)
    os.makedirs(OUT)

    # ---- not ELF / wrong kind -------------------------------------------------------------
    case("empty", b"")
    case("one-byte", b"\x7f")
    case("magic-only", b"\x7fELF")
    rng = random.Random(0x5EED)
    case("random-64", bytes(rng.randrange(256) for _ in range(64)))
    case("random-4k", bytes(rng.randrange(256) for _ in range(4096)))
    case("magic-then-random", b"\x7fELF" + bytes(rng.randrange(256) for _ in range(1024)))
    case("text-file", b"#!/bin/sh\necho hello\n")

    e = rel()
    e.b[4] = 2
    case("elf64-class", e.b)
    e = rel()
    e.b[4] = 0
    case("class-none", e.b)
    e = rel()
    e.p16(18, 3)
    case("machine-i386", e.b)
    e = rel()
    e.p16(18, 40)
    case("machine-arm", e.b)
    e = rel()
    e.b[5] = 1  # says little-endian, data is big-endian
    case("byte-order-flipped-be-as-le", e.b)
    e = rel("hello.le.o")
    e.b[5] = 2
    case("byte-order-flipped-le-as-be", e.b)
    e = rel()
    e.b[5] = 0
    case("byte-order-none", e.b)
    e = rel()
    e.b[5] = 3
    case("byte-order-invalid", e.b)
    e = rel()
    e.p16(16, 3)
    case("type-dyn", e.b)
    e = rel()
    e.p16(16, 4)
    case("type-core", e.b)
    e = rel()
    e.p16(46, 64)
    case("shentsize-64", e.b)
    e = rel()
    e.p16(46, 0)
    case("shentsize-0", e.b)

    # ---- truncations at every header boundary ---------------------------------------------
    full = rel().b
    for n in (16, 24, 36, 51, 52):
        case(f"trunc-ehdr-{n}", full[:n])
    e = rel()
    for k in range(e.shnum):
        case(f"trunc-shdr-{k:02}", full[: e.shoff + k * SHDR])
    case("trunc-last-shdr-minus-1", full[: e.shoff + e.shnum * SHDR - 1])
    x = Elf("hello.be.exe")
    for n in (x.phoff, x.phoff + PHDR - 1, x.shoff, x.shoff + 3 * SHDR):
        case(f"trunc-exec-{n:#x}", x.b[:n])
    # A section's contents past the end (headers intact).
    e = rel()
    e.set_sh(".text", "offset", len(e.b) - 4)
    case("section-past-eof", e.b)

    # ---- offsets and sizes that overflow 32 bits ------------------------------------------
    e = rel()
    e.p32(32, 0xFFFFFFF0)
    case("shoff-overflow", e.b)
    e = rel()
    e.p32(32, 0xFFFFFFFF)
    case("shoff-max", e.b)
    e = rel()
    e.p16(48, 0xFFFF)
    case("shnum-max", e.b)
    e = rel()
    e.set_sh(".text", "offset", 0xFFFFFFF0).set_sh(".text", "size", 0x20)
    case("text-offset-plus-size-overflow", e.b)
    e = rel()
    e.set_sh(".text", "size", 0xFFFFFFFF)
    case("text-huge-size", e.b)
    e = rel()
    e.set_sh(".bss", "size", 0xFFFFFFF0)
    case("bss-huge-size", e.b)
    e = rel()
    e.set_sh(".bss", "size", 0x7FFFFFFF)
    case("bss-2g", e.b)
    e = rel()
    e.set_sh(".data", "addralign", 0x80000000)
    case("data-align-2g", e.b)
    e = rel()
    e.set_sh(".symtab", "size", 0xFFFFFFF0)
    case("symtab-huge-size", e.b)
    e = rel()
    e.set_sh(".rel.text", "size", 0xFFFFFFF8)
    case("rel-huge-size", e.b)
    e = rel()
    e.set_sh(".strtab", "offset", 0xFFFFFFFF)
    case("strtab-offset-max", e.b)
    x = Elf("hello.be.exe")
    x.p32(x.ph_field(0, "offset"), 0xFFFFF000)
    case("exec-phdr-offset-overflow", x.b)
    x = Elf("hello.be.exe")
    x.p32(x.ph_field(0, "filesz"), 0xFFFFFFFF)
    case("exec-phdr-filesz-huge", x.b)
    x = Elf("hello.be.exe")
    x.p32(x.ph_field(0, "memsz"), 0xFFFFFFFF)
    case("exec-phdr-memsz-huge", x.b)
    x = Elf("hello.be.exe")
    x.p32(x.ph_field(0, "vaddr"), 0xFFFFF000)
    x.p32(x.ph_field(0, "paddr"), 0xFFFFF000)
    case("exec-phdr-vaddr-wraps", x.b)
    x = Elf("hello.be.exe")
    x.p32(28, 0xFFFFFFF0)
    case("exec-phoff-overflow", x.b)
    x = Elf("hello.be.exe")
    x.p16(44, 0xFFFF)
    case("exec-phnum-max", x.b)
    x = Elf("hello.be.exe")
    x.p16(42, 16)
    case("exec-phentsize-16", x.b)

    # ---- indices out of range -------------------------------------------------------------
    e = rel()
    e.p16(50, e.shnum)
    case("shstrndx-eq-shnum", e.b)
    e = rel()
    e.p16(50, 0xFFFF)
    case("shstrndx-max", e.b)
    e = rel()
    e.p32(e.sh_field(e.find(".text"), "name"), 0xFFFFFF00)
    case("sh-name-out-of-range", e.b)
    e = rel()
    e.set_sh(".rel.text", "link", 99)
    case("rel-sh-link-out-of-range", e.b)
    e = rel()
    e.set_sh(".rel.text", "link", e.find(".text"))
    case("rel-sh-link-not-symtab", e.b)
    e = rel()
    e.set_sh(".rel.text", "info", 99)
    case("rel-sh-info-out-of-range", e.b)
    e = rel()
    e.set_sh(".rel.text", "info", 0xFFFFFFFF)
    case("rel-sh-info-max", e.b)
    e = rel()
    e.set_sh(".symtab", "link", 77)
    case("symtab-sh-link-out-of-range", e.b)
    e = rel()
    e.set_sh(".symtab", "size", e.get_sh(".symtab", "size") - 3)
    case("symtab-size-not-multiple", e.b)
    e = rel()
    r0 = e.get_sh(".rel.text", "offset")
    e.p32(r0 + 4, (0xFFFFFF << 8) | 4)
    case("reloc-symbol-index-out-of-range", e.b)
    e = rel()
    nsyms = e.get_sh(".symtab", "size") // 16
    e.p32(r0 + 4, (nsyms << 8) | 4)
    case("reloc-symbol-index-eq-count", e.b)
    # A symbol whose st_shndx is out of range: the one `main` (R_MIPS_26 target) refers to.
    e = rel()
    st = e.get_sh(".symtab", "offset")
    sym = e.u32(r0 + 16 + 4) >> 8
    e.p16(st + sym * 16 + 14, 200)
    case("symbol-shndx-out-of-range", e.b)
    e = rel()
    e.p32(st + sym * 16, 0xFFFFFFF0)
    case("symbol-name-out-of-range", e.b)
    e = rel()
    for i in range(nsyms):
        if e.u32(st + i * 16) and e.b[st + i * 16 + 12] >> 4 == 1:
            e.p16(st + i * 16 + 14, 0xFF00)  # SHN_LORESERVE, not ABS/COMMON/UNDEF
    case("symbols-shndx-reserved", e.b)

    # ---- overlapping sections -------------------------------------------------------------
    e = rel()
    e.set_sh(".rel.text", "offset", e.get_sh(".symtab", "offset"))
    case("rel-overlaps-symtab", e.b)
    e = rel()
    e.set_sh(".shstrtab", "offset", e.shoff)
    case("shstrtab-overlaps-shdrs", e.b)
    x = Elf("hello.be.exe")
    x.p32(x.ph_field(0, "offset"), 0)
    case("exec-segment-covers-headers", x.b)

    # ---- relocation offsets outside their section -----------------------------------------
    for label, off in (("at-end", 0xC0), ("straddles-end", 0xBE), ("max", 0xFFFFFFFC)):
        e = rel()
        e.p32(r0 + 16, off)  # entry 2: R_MIPS_26 main
        case(f"reloc-offset-{label}", e.b)
    e = rel()
    e.p32(r0 + 16, 0x0A)  # unaligned inside the section
    case("reloc-offset-unaligned", e.b)

    # ---- every relocation type the legacy loader had no handler for -----------------------
    supported = {0, 2, 4, 5, 6, 7, 10}
    for t in sorted(set(range(0, 52)) | {126, 127, 248, 249, 250, 255}):
        if t in supported:
            continue
        e = rel()
        e.p32(r0 + 16 + 4, (sym << 8) | t)
        case(f"reloc-type-{t:03}", e.b)

    # ---- RELA, missing symbol table -------------------------------------------------------
    e = rel()
    e.set_sh(".rel.text", "type", 4)
    case("rela-text", e.b)
    e = rel()
    e.set_sh(".symtab", "type", 1)
    case("no-symtab", e.b)
    e = rel()
    e.set_sh(".symtab", "type", 0)
    e.set_sh(".rel.text", "link", 0)
    e.set_sh(".rel.text.startup", "link", 0)
    e.set_sh(".rel.pdr", "link", 0)
    case("no-symtab-links-zero", e.b)

    for name, data in cases.items():
        with open(os.path.join(OUT, name + ".elf"), "wb") as f:
            f.write(data)
    print(f"{len(cases)} cases in {OUT}")


if __name__ == "__main__":
    main()
