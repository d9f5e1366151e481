//! remoteproc firmware: the resource table, the entry trampoline, the provenance note, the
//! firmware writer, the kernel-rule checker and the legacy-equivalence verifier.
//!
//! Byte order is always the ELF's (`EI_DATA`): the kernel reads the table with native loads
//! and refuses firmware whose `EI_DATA` differs from the host (remoteproc_elf_loader.c).

pub mod check;
pub mod firmware;
pub mod mips_tlb;
pub mod note;
pub mod table;
pub mod trampoline;
pub mod verify;
