//! `vpe`: pure models for moving legacy MIPS VPE ("SP") programs to remoteproc.
//!
//! The pipeline reads like the data flows (see `docs/ARCHITECTURE.md`):
//! bytes → [`elf::read`] → [`legacy`] (what `vpe_elfload` would have put in memory) →
//! [`image::Image`] → [`rproc::firmware`] (remoteproc ELF) → [`rproc::check`] (the kernel's
//! rules) → [`image::Image`] again (what remoteproc would load). `verify` compares the two.
//!
//! Nothing in this crate parses command lines or talks FUSE; the only device I/O is the
//! sysfs remoteproc backend (`remoteproc::sysfs`), behind a small attribute-I/O trait.

pub mod convert;
pub mod elf;
#[cfg(feature = "emulate")]
pub mod emu;
pub mod error;
pub mod image;
pub mod inspect;
pub mod legacy;
pub mod memory;
pub mod remoteproc;
pub mod rproc;
pub mod rtlx;
pub mod spmem;
pub mod synth;
pub mod voice;

/// The old path of the Lantiq items, kept so that callers need not change: the loader
/// variant ([`legacy::lantiq`]) and the voice format ([`voice`]). New code uses those.
pub mod lantiq {
    pub use crate::legacy::lantiq::*;
    pub use crate::voice::*;
}

pub use error::{Error, Result};
pub use image::Image;
