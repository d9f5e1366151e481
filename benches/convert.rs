//! In-process cost of each conversion stage on a typical 256 KiB SP object (`vpe::synth`),
//! and of the whole conversion. Run: `cargo bench --bench convert` (see docs/PERFORMANCE.md).
//!
//! Stages as `vpe::convert::convert` runs them: parse (sniff the ELF header, read the section
//! header table and names), relocate (the legacy model: layout, copy, symbols, relocations both
//! ways), build (firmware writer), check (the kernel's rules on the firmware), verify (legacy
//! image vs loaded image), convert (all of it, plus the input's sha256).

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use vpe::convert::{self, DEFAULT_BASE};
use vpe::elf::Endian;
use vpe::image::RelocSemantics;
use vpe::rproc::{check, firmware, note::Provenance, verify};
use vpe::synth;

/// The typical image: 256 KiB, big-endian.
const SIZE: usize = 256 * 1024;

fn stages(c: &mut Criterion) {
    let input = synth::generate(&synth::Options {
        size: SIZE,
        endian: Endian::Big,
        seed: 1,
    });
    let opts = convert::Options::default();
    let conv = convert::convert(&input, &opts).expect("the synthetic object converts");
    let legacy = conv.legacy.clone();
    let fw_opts = firmware::Options {
        profile: opts.profile,
        ntcs: opts.ntcs,
        memsize: opts.memsize,
        extra_mem: opts.extra_mem,
        trace: opts.trace,
        trampoline: opts.trampoline,
        provenance: Provenance {
            input_sha256: conv.input_sha256.clone(),
            input_kind: "ET_REL".into(),
            base: DEFAULT_BASE,
            profile: opts.profile.name().into(),
            relocs: opts.semantics.as_str().into(),
            ntcs: opts.ntcs,
            memsize: opts.memsize,
            trampoline: opts.trampoline,
            tool: "bench".into(),
            ..Default::default()
        },
        cma_align: opts.cma_align,
    };
    let fw = firmware::build(&legacy, &fw_opts).expect("build");
    let check_opts = check::Options {
        profile: Some(opts.profile),
        ..Default::default()
    };
    let loaded = check::check(&fw, &check_opts).expect("check");

    let mut g = c.benchmark_group("stage-256k");
    g.throughput(Throughput::Bytes(input.len() as u64));
    g.bench_function("parse", |b| {
        b.iter(|| {
            (
                convert::sniff(black_box(&input)),
                convert::section_names(black_box(&input)),
            )
        })
    });
    g.bench_function("relocate", |b| {
        b.iter(|| {
            convert::load_legacy(black_box(&input), DEFAULT_BASE, RelocSemantics::Strict)
                .expect("load")
        })
    });
    g.bench_function("build", |b| {
        b.iter(|| firmware::build(black_box(&legacy), &fw_opts).expect("build"))
    });
    g.bench_function("check", |b| {
        b.iter(|| check::check(black_box(&fw), &check_opts).expect("check"))
    });
    g.bench_function("verify", |b| {
        b.iter(|| verify::verify(black_box(&legacy), black_box(&loaded)))
    });
    g.bench_function("convert", |b| {
        b.iter(|| convert::convert(black_box(&input), &opts).expect("convert"))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(std::time::Duration::from_millis(500))
        .measurement_time(std::time::Duration::from_secs(2));
    targets = stages
}
criterion_main!(benches);
