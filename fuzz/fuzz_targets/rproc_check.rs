//! The kernel-rule checker. The kernel era, the profile geometry and the host byte order are
//! chosen by the input length (one check per execution, every configuration explored).
#![no_main]

use libfuzzer_sys::fuzz_target;
use vpe::elf::Endian;
use vpe::rproc::check::{self, KernelEra, Options};
use vpe::rproc::firmware::Profile;

fuzz_target!(|data: &[u8]| {
    let n = data.len();
    let kernel = KernelEra::ALL[n % KernelEra::ALL.len()];
    let profile = [None, Some(Profile::MipsRproc), Some(Profile::Fixed)][(n / 3) % 3];
    let host = [None, Some(Endian::Big), Some(Endian::Little)][(n / 9) % 3];
    let opts = Options {
        host,
        profile,
        kernel,
    };
    match check::check(data, &opts) {
        Ok(loaded) => {
            let _ = loaded.warnings.len() + loaded.image.segments.len();
        }
        Err(e) => {
            one_line(&e);
        }
    }
});

/// A rejection is one line (the semantics-difference report is the documented exception).
fn one_line(e: &vpe::Error) {
    let s = e.to_string();
    if !matches!(e, vpe::Error::SemanticsDiffer { .. }) {
        assert!(!s.contains('\n'), "multi-line error: {s}");
    }
}
