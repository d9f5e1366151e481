//! Issue 14.2 through the binary: `--cma-align ORDER` bounds the carveouts the converter
//! makes, and `check --profile mips-rproc --cma-align ORDER` replays the MIPS driver's TLB
//! mapping for every physical address CMA may return.

mod common;

use std::process::Output;

use common::{bin, fixture};

fn run(args: &[&std::ffi::OsStr]) -> Output {
    bin().args(args).output().expect("run vpe-migrate")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn cma_align_bounds_carveouts_and_check_replays_the_mapping() {
    let dir = tempfile::tempdir().unwrap();
    let input = fixture("bigbss.be.o");
    let small = dir.path().join("small.fw");
    let default = dir.path().join("default.fw");
    let o = run(&[
        "--cma-align".as_ref(),
        "4".as_ref(),
        input.as_os_str(),
        small.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run(&[input.as_os_str(), default.as_os_str()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let check = |fw: &std::path::Path, order: &str| {
        run(&[
            "check".as_ref(),
            fw.as_os_str(),
            "--profile".as_ref(),
            "mips-rproc".as_ref(),
            "--cma-align".as_ref(),
            order.as_ref(),
        ])
    };
    // 64 KiB carveouts map under any CMA alignment from 4 up.
    for order in ["4", "8", "12"] {
        let o = check(&small, order);
        assert_eq!(o.status.code(), Some(0), "{order}: {}", stderr(&o));
    }
    // 1 MiB carveouts need CONFIG_CMA_ALIGNMENT=8.
    let o = check(&default, "8");
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    // 8 carveouts of 1 MiB (2 entries each) and one of 8 KiB: 17 wired entries.
    assert!(
        stderr(&o)
            .contains("warning: profile mips-rproc: mapping needs up to 17 wired TLB entries"),
        "{}",
        stderr(&o)
    );
    let o = check(&default, "4");
    assert_eq!(o.status.code(), Some(1));
    let first = stderr(&o).lines().next().unwrap_or_default().to_string();
    assert!(
        first.starts_with("error: profile mips-rproc: carveout entry 0 \"vpe1\"")
            && first.contains("would be mapped wrongly by the MIPS driver")
            && first.contains("CONFIG_CMA_ALIGNMENT=4"),
        "{first}"
    );
    // Outside Kconfig's range: a usage error.
    let o = run(&[
        "--cma-align".as_ref(),
        "1".as_ref(),
        input.as_os_str(),
        small.as_os_str(),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
}
