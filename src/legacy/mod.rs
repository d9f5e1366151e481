//! Model of `vpe_elfload` (arch/mips/kernel/vpe.c). Being written.
