//! ELF32 writer (reserve every file range first, then write in the same order). Owned by the
//! firmware writer; see `rproc::firmware`.
