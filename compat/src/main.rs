//! `vpe-compat`: the FUSE `/dev/vpe1` daemon. Not built yet (issue "vpe-compat: a FUSE
//! /dev/vpe1"); this placeholder refuses to run rather than pretend to work.

fn main() {
    eprintln!("error: vpe-compat is not implemented yet; use vpe-migrate to convert images");
    std::process::exit(2);
}
