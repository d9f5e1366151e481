//! `vpe-migrate`: convert legacy MIPS VPE ("SP") programs into remoteproc firmware.
//!
//! Exit status: 0 success, 1 input rejected (first line of stderr `error: ...`), 2 usage.

mod batch;
mod cli;
mod files;
mod run;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use thiserror::Error;

use cli::{Cli, Cmd, ConvertArgs};
use files::write_atomic;
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
    #[error("cannot read {path}: it is {kind}, not a regular file")]
    InputNotRegular { path: PathBuf, kind: &'static str },
    #[error("{path} is {size}: larger than any input vpe-migrate accepts ({limit} bytes, 256 MiB)", limit = files::MAX_INPUT)]
    InputTooBig { path: PathBuf, size: String },
    #[error("cannot read {path}: it was replaced while being opened")]
    InputChanged { path: PathBuf },
    #[error("refusing to overwrite the input {path} with the output")]
    OutputIsInput { path: PathBuf },
    #[error("cannot write {path}: it is a directory; give the name of the file to write (e.g. DIR/NAME.fw)")]
    OutputIsDir { path: PathBuf },
    #[error("refusing to write {path}: it is a symbolic link (to {target}); give the path it points to, or remove the link")]
    OutputIsSymlink { path: PathBuf, target: PathBuf },
    #[error("refusing to replace {path}: it is {kind}, not a regular file")]
    OutputNotRegular { path: PathBuf, kind: &'static str },
    #[error("cannot write {path}: its directory {dir} {why}")]
    OutputNoDir {
        path: PathBuf,
        dir: PathBuf,
        why: String,
    },
    #[error("{path} is {kind}, not a directory")]
    NotADirectory { path: PathBuf, kind: &'static str },
    /// A usage error found after parsing (flags that contradict each other or the input):
    /// reported the way clap reports its own, exit 2.
    #[error("{message}")]
    Usage { message: String },
    #[error("{message}")]
    VerifyArgs { message: String },
    /// A failure after warnings were found: the error comes first, the warnings follow.
    #[error("{error}\n{warnings}")]
    AfterWarnings {
        error: Box<CliError>,
        warnings: String,
    },
    #[error("--report {path}: {why}; nothing was converted")]
    BadReport { path: PathBuf, why: String },
    #[error("refusing to write {path}: this run already wrote the firmware of {other} there (the file system folds the two names into one)")]
    OutputCollision { path: PathBuf, other: String },
    #[error("not every image converted: {summary}")]
    BatchIncomplete { summary: String },
    /// The program ran and ended with this status (`run`); nothing more to say.
    #[cfg_attr(not(feature = "emulate"), allow(dead_code))]
    #[error("exit status {code}")]
    ProgramExit { code: u8 },
    /// The emulated core faulted: the summary line, then the registers.
    #[cfg_attr(not(feature = "emulate"), allow(dead_code))]
    #[error("fault: {summary}\n{regs}")]
    Fault { summary: String, regs: String },
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
    let json = wants_json(&cli);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(CliError::Usage { message }) => Cli::command()
            .error(clap::error::ErrorKind::ArgumentConflict, message)
            .exit(),
        Err(CliError::ProgramExit { code }) => ExitCode::from(code),
        Err(e) => {
            // A --json caller gets JSON on stdout whatever failed (verify has printed its
            // report already).
            if json && !matches!(e, CliError::NotEquivalent { .. }) {
                println!(
                    "{}",
                    serde_json::json!({"ok": false, "error": e.to_string()})
                );
            }
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn wants_json(cli: &Cli) -> bool {
    match &cli.command {
        None => cli.convert.as_ref().is_some_and(|c| c.json),
        Some(Cmd::Convert(c)) => c.json,
        Some(Cmd::Inspect { json, .. } | Cmd::Check { json, .. } | Cmd::Verify { json, .. }) => {
            *json
        }
        Some(_) => false,
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
            let opts = args.flags.options().map_err(usage)?;
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
            voice_flags_need_a_voice_image(
                &[
                    (lantiq_voice, "--lantiq-voice"),
                    (endian.is_some(), "--endian"),
                ],
                &file,
                &bytes,
            )?;
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
            cma_align,
            json,
        }) => {
            let opts = check::Options {
                host: host.map(Into::into),
                profile: profile.map(Into::into),
                kernel: kernel.into(),
                cma_align: Some(cma_align),
            };
            let bytes = read(&file)?;
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
            run,
            timeout,
        }) => {
            let old_bytes = read(&old)?;
            let new_bytes = read(&new)?;
            verify_args(&old, &old_bytes, &new, &new_bytes)?;
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
            if run {
                let (ntcs, memsize) = loaded
                    .provenance
                    .as_ref()
                    .map(|p| (p.ntcs, p.memsize))
                    .unwrap_or((1, 0));
                run::verify_run(&legacy, &loaded, ntcs, memsize, timeout, &new, &old)?;
            }
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
        Some(Cmd::Run(args)) => run::run(&args),
        Some(Cmd::Man { dir }) => {
            let cmd = Cli::command();
            match std::fs::metadata(&dir) {
                Ok(m) if !m.is_dir() => {
                    return Err(CliError::NotADirectory {
                        path: dir,
                        kind: files::kind(m.file_type()),
                    })
                }
                _ => std::fs::create_dir_all(&dir).map_err(|source| CliError::Write {
                    path: dir.clone(),
                    source,
                })?,
            }
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
            write_atomic(&out, &bytes, None)?;
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

/// Flag combinations refused by `ConversionFlags::options` are usage errors.
fn usage(e: vpe::Error) -> CliError {
    CliError::Usage {
        message: match e {
            vpe::Error::Convert { message } => message,
            other => other.to_string(),
        },
    }
}

/// `verify OLD NEW` needs a legacy program and a remoteproc firmware, in that order.
fn verify_args(old: &Path, old_bytes: &[u8], new: &Path, new_bytes: &[u8]) -> Result<(), CliError> {
    use convert::Format;
    let fw = |b: &[u8]| convert::sniff(b) == Format::Firmware;
    let message = match (fw(old_bytes), fw(new_bytes)) {
        (false, true) => return Ok(()),
        (true, false) => format!(
            "the arguments look swapped: OLD {} is a remoteproc firmware and NEW {} is not (verify OLD NEW: the legacy program first, then the firmware made from it)",
            old.display(),
            new.display()
        ),
        (true, true) => format!(
            "OLD {} is a remoteproc firmware, not a legacy SP program: give the program NEW {} was converted from",
            old.display(),
            new.display()
        ),
        (false, false) => format!(
            "NEW {} is not a remoteproc firmware (no .resource_table): give the firmware converted from OLD {}",
            new.display(),
            old.display()
        ),
    };
    Err(CliError::VerifyArgs { message })
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
            // verify compares bytes; the CRC was judged at conversion.
            crc: vpe::lantiq::VoiceCrcPolicy::Warn,
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
            max_mem: Some(u32::MAX), // as in convert::load_legacy
        };
        return Ok(vpe::legacy::load(old, &opts)?);
    }
    Ok(convert::load_legacy(old, base, semantics)?)
}

pub(crate) fn read(path: &Path) -> Result<Vec<u8>, CliError> {
    files::read_input(path)
}

/// `--platform`, `--lantiq-voice` and `--endian` describe a voice image; given with an ELF
/// they would be silently ignored. `given`: (flag set, its name).
fn voice_flags_need_a_voice_image(
    given: &[(bool, &str)],
    file: &Path,
    bytes: &[u8],
) -> Result<(), CliError> {
    let names: Vec<&str> = given
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, name)| *name)
        .collect();
    if names.is_empty() || !bytes.starts_with(b"\x7fELF") {
        return Ok(());
    }
    Err(CliError::Usage {
        message: format!(
            "{} only {} to Lantiq voice images, and {} is an ELF file",
            names.join(", "),
            if names.len() == 1 { "applies" } else { "apply" },
            file.display()
        ),
    })
}

fn do_convert(args: &ConvertArgs) -> Result<(), CliError> {
    let opts = args.options().map_err(usage)?;
    // What is at NEW is refused before anything is read or converted.
    if files::same_file(&args.old, &args.new) {
        return Err(CliError::OutputIsInput {
            path: args.new.clone(),
        });
    }
    files::check_output(&args.new)?;
    let bytes = read(&args.old)?;
    let f = &args.flags;
    voice_flags_need_a_voice_image(
        &[
            (f.platform.is_some(), "--platform"),
            (f.lantiq_voice, "--lantiq-voice"),
            (f.endian.is_some(), "--endian"),
        ],
        &args.old,
        &bytes,
    )?;
    let conv: Conversion = convert::convert_owned(bytes, &opts)?;
    let mut warnings = String::new();
    for w in conv.warnings() {
        for (i, line) in w.lines().enumerate() {
            warnings.push_str(if i == 0 { "warning: " } else { "         " });
            warnings.push_str(line);
            warnings.push('\n');
        }
    }
    if let Err(error) = write_atomic(&args.new, &conv.firmware, Some(&args.old)) {
        // `error:` stays the first line of stderr.
        return Err(if warnings.is_empty() {
            error
        } else {
            CliError::AfterWarnings {
                error: Box::new(error),
                warnings: warnings.trim_end().to_owned(),
            }
        });
    }
    eprint!("{warnings}");
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
        // The Lantiq loader's fallback starts at KSEG1(vpe1_load_addr), not at __start.
        let fallback = args
            .options()?
            .lantiq
            .map(|l| vpe::lantiq::kseg1(l.vpe1_load_addr));
        let target = if fallback == Some(conv.legacy.entry) {
            "KSEG1(vpe1_load_addr)"
        } else {
            "__start"
        };
        println!(
            "{}: remoteproc firmware, entry {:#010x} -> {target} {:#010x}, {} resource entries, {}",
            args.new.display(),
            conv.loaded.image.entry,
            conv.legacy.entry,
            conv.loaded.table.entries.len(),
            convert::report_summary(&conv.report)
        );
    }
    Ok(())
}
