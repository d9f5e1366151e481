//! `vpe-migrate`: convert legacy MIPS VPE ("SP") programs into remoteproc firmware.
//!
//! Exit status: 0 success, 1 input rejected (first line of stderr `error: ...`), 2 usage.

mod batch;
mod cli;

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use thiserror::Error;

use cli::{Cli, Cmd, ConvertArgs};
use vpe::convert::{self, Conversion};
use vpe::inspect;

#[global_allocator]
static ALLOC: vpe::memory::HugePageHint = vpe::memory::HugePageHint;
use vpe::rproc::{check, verify};

/// The one error type of `vpe-migrate`.
#[derive(Debug, Error)]
enum CliError {
    #[error("{0}")]
    Vpe(#[from] vpe::Error),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("refusing to overwrite the input {path} with the output")]
    OutputIsInput { path: PathBuf },
    #[error("not every image converted: {summary}")]
    BatchIncomplete { summary: String },
    #[error("{path}: not equivalent to {old}: {summary}")]
    NotEquivalent {
        path: PathBuf,
        old: PathBuf,
        summary: String,
    },
}

fn main() -> ExitCode {
    vpe::memory::reuse_freed_memory();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let matches = Cli::command().get_matches();
    let mut cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    if cli.command.is_none() && cli.convert.is_none() {
        // clap's Option<flatten> does not see the nested ConversionFlags group; the
        // arguments are all there, so read them directly.
        cli.convert = Some(ConvertArgs::from_arg_matches(&matches).unwrap_or_else(|e| e.exit()));
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        None => {
            let args = cli
                .convert
                .expect("clap requires OLD and NEW without a subcommand");
            do_convert(&args)
        }
        Some(Cmd::Convert(args)) => do_convert(&args),
        Some(Cmd::Batch(args)) => {
            let opts = args.flags.options()?;
            let report = batch::run(&args, &opts)?;
            if report.all_converted() {
                Ok(())
            } else {
                Err(CliError::BatchIncomplete {
                    summary: report.summary(),
                })
            }
        }
        Some(Cmd::Inspect {
            file,
            base,
            relocs,
            lantiq_voice,
            endian,
            json,
        }) => {
            let bytes = read(&file)?;
            let opts = inspect::Options {
                base: base.0,
                semantics: relocs.into(),
                lantiq_voice,
                voice_endian: endian.map(Into::into),
            };
            let ins = inspect::inspect(&bytes, &opts)?;
            let text = if json {
                inspect::render_json(&ins)
            } else {
                inspect::render_text(&ins)
            };
            print!("{text}");
            if json {
                println!();
            }
            Ok(())
        }
        Some(Cmd::Check {
            file,
            host,
            profile,
            kernel,
            json,
        }) => {
            let bytes = read(&file)?;
            let opts = check::Options {
                host: host.map(Into::into),
                profile: profile.map(Into::into),
                kernel: kernel.into(),
            };
            let loaded = check::check(&bytes, &opts)?;
            for w in &loaded.warnings {
                eprintln!("warning: {w}");
            }
            if json {
                println!(
                    "{}",
                    serde_json::json!({"ok": true, "warnings": loaded.warnings})
                );
            } else {
                println!("{}: ok", file.display());
            }
            Ok(())
        }
        Some(Cmd::Verify {
            old,
            new,
            base,
            json,
        }) => {
            let old_bytes = read(&old)?;
            let new_bytes = read(&new)?;
            let loaded = check::check(&new_bytes, &check::Options::default())?;
            // The note says how NEW was made; explicit flags win.
            let (note_base, note_relocs) = loaded
                .provenance
                .as_ref()
                .map(|p| (Some(p.base), p.relocs.parse().ok()))
                .unwrap_or((None, None));
            let base = base
                .map(|b| b.0)
                .or(note_base)
                .unwrap_or(convert::DEFAULT_BASE);
            let semantics = note_relocs.unwrap_or_default();
            let legacy =
                legacy_for_verify(&old_bytes, loaded.provenance.as_ref(), base, semantics)?;
            let report = verify::verify(&legacy, &loaded);
            let summary = convert::report_summary(&report);
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&report).unwrap_or_default()
                );
            }
            if report.equivalent && report.entry_ok {
                if !json {
                    println!("equivalent");
                    eprintln!("{summary}");
                }
                Ok(())
            } else {
                Err(CliError::NotEquivalent {
                    path: new,
                    old,
                    summary,
                })
            }
        }
        Some(Cmd::Man { dir }) => {
            let cmd = Cli::command();
            std::fs::create_dir_all(&dir).map_err(|source| CliError::Write {
                path: dir.clone(),
                source,
            })?;
            let path = dir.join("vpe-migrate.1");
            let mut buf = Vec::new();
            clap_mangen::Man::new(cmd)
                .render(&mut buf)
                .map_err(|source| CliError::Write {
                    path: path.clone(),
                    source,
                })?;
            write_atomic(&path, &buf, None)
        }
        Some(Cmd::Completions { shell }) => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "vpe-migrate", &mut std::io::stdout());
            Ok(())
        }
        Some(Cmd::GenSynth {
            size,
            endian,
            seed,
            out,
        }) => {
            let opts = vpe::synth::Options {
                size: size as usize,
                endian: endian.into(),
                seed,
            };
            let (bytes, st) = vpe::synth::generate_with_stats(&opts);
            std::fs::write(&out, &bytes).map_err(|source| CliError::Write {
                path: out.clone(),
                source,
            })?;
            println!(
                "{}: {} bytes, {} sections, {} symbols, {} relocations",
                out.display(),
                bytes.len(),
                st.sections,
                st.symbols,
                st.relocations()
            );
            Ok(())
        }
    }
}

/// OLD as the loader recorded in NEW's note saw it: a voice image through the voice driver,
/// an ELF through the Lantiq-patched or the mainline loader.
fn legacy_for_verify(
    old: &[u8],
    note: Option<&vpe::rproc::note::Provenance>,
    base: u32,
    semantics: vpe::image::RelocSemantics,
) -> Result<vpe::Image, CliError> {
    let get = |k: &str| {
        note.and_then(|p| p.extra.iter().find(|(key, _)| key == k))
            .map(|(_, v)| v.clone())
    };
    if note.is_some_and(|p| p.input_kind == "voice") {
        let load_addr = get("voice_load_addr")
            .and_then(|v| u32::from_str_radix(v.trim_start_matches("0x"), 16).ok())
            .unwrap_or(0);
        let opts = vpe::lantiq::VoiceOptions {
            load_addr,
            // The memory limit was checked at conversion; here only the bytes matter.
            vpe1_mem: Some(u32::MAX),
            platform: None,
            endian: match get("voice_endian").as_deref() {
                Some("little") => Some(vpe::elf::Endian::Little),
                Some("big") => Some(vpe::elf::Endian::Big),
                _ => None,
            },
            old_format: get("voice_format").as_deref() == Some("old"),
        };
        return Ok(vpe::lantiq::load_voice(old, &opts)?.1);
    }
    if let Some(l) = note.and_then(convert::lantiq_from_note) {
        let opts = vpe::legacy::Options {
            base: l.vpe1_load_addr,
            semantics,
            capacity: None,
            lantiq: Some(l),
        };
        return Ok(vpe::legacy::load(old, &opts)?);
    }
    Ok(convert::load_legacy(old, base, semantics)?)
}

fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    read_input(path).map_err(|source| CliError::Read {
        path: path.to_owned(),
        source,
    })
}

/// The largest input: ELF32 offsets and sizes are 32-bit, and so is a voice image's footer.
const MAX_INPUT: u64 = u32::MAX as u64;

/// A whole input file, refused by its size before anything is read: on a 32-bit board a
/// file of 4 GiB or more does not even fit the address space (`std::fs::read` would grow its
/// buffer until the allocator aborts).
pub(crate) fn read_input(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read as _;
    let f = std::fs::File::open(path)?;
    let size = f.metadata()?.len();
    if size > MAX_INPUT {
        return Err(std::io::Error::other(format!(
            "it is {size} bytes; an ELF32 or voice image is at most {MAX_INPUT} bytes"
        )));
    }
    // At most 4 GiB - 1, which fits a 32-bit usize; an allocation that fails is an error.
    let mut buf = Vec::new();
    buf.try_reserve_exact(size as usize)
        .map_err(|_| std::io::Error::other(format!("no memory for its {size} bytes")))?;
    f.take(MAX_INPUT + 1).read_to_end(&mut buf)?;
    if buf.len() as u64 > MAX_INPUT {
        return Err(std::io::Error::other(format!(
            "it grew past {MAX_INPUT} bytes while being read"
        )));
    }
    Ok(buf)
}

fn do_convert(args: &ConvertArgs) -> Result<(), CliError> {
    let bytes = read(&args.old)?;
    let conv: Conversion = convert::convert_owned(bytes, &args.options()?)?;
    for w in conv.warnings() {
        for (i, line) in w.lines().enumerate() {
            if i == 0 {
                eprintln!("warning: {line}");
            } else {
                eprintln!("         {line}");
            }
        }
    }
    write_atomic(&args.new, &conv.firmware, Some(&args.old))?;
    if args.json {
        let v = serde_json::json!({
            "output": args.new,
            "sha256": convert::sha256_hex(&conv.firmware),
            "input_sha256": conv.input_sha256,
            "entry": format!("{:#010x}", conv.loaded.image.entry),
            "start": format!("{:#010x}", conv.legacy.entry),
            "vpe_shared": conv.legacy.shared.map(|a| format!("{a:#010x}")),
            "verify": convert::report_summary(&conv.report),
            "warnings": conv.warnings(),
        });
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else if let Some(v) = &conv.voice {
        println!(
            "{}: remoteproc firmware from a Lantiq voice image ({} bytes copied at {:#010x}), entry {:#010x} (KSEG1, no trampoline), {} resource entries, {}",
            args.new.display(),
            v.copy_len,
            conv.legacy.base,
            conv.loaded.image.entry,
            conv.loaded.table.entries.len(),
            convert::report_summary(&conv.report)
        );
    } else {
        println!(
            "{}: remoteproc firmware, entry {:#010x} -> __start {:#010x}, {} resource entries, {}",
            args.new.display(),
            conv.loaded.image.entry,
            conv.legacy.entry,
            conv.loaded.table.entries.len(),
            convert::report_summary(&conv.report)
        );
    }
    Ok(())
}

/// Write `data` to `path` via a temporary file in the same directory, fsync, rename. Never
/// replaces `input` (same file by identity, not just by name).
pub(crate) fn write_atomic(path: &Path, data: &[u8], input: Option<&Path>) -> Result<(), CliError> {
    if let Some(input) = input {
        if same_file(input, path) {
            return Err(CliError::OutputIsInput {
                path: path.to_owned(),
            });
        }
    }
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_owned(),
        _ => PathBuf::from("."),
    };
    let werr = |source| CliError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp = tempfile::Builder::new()
        .prefix(".vpe-migrate.")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .map_err(werr)?;
    tmp.write_all(data).map_err(werr)?;
    {
        use std::os::unix::fs::PermissionsExt as _;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644))
            .map_err(werr)?;
    }
    tmp.as_file().sync_all().map_err(werr)?;
    tmp.persist(path).map_err(|e| werr(e.error))?;
    // Make the rename itself durable.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt as _;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(x), Ok(y)) => x.dev() == y.dev() && x.ino() == y.ino(),
        _ => false,
    }
}
