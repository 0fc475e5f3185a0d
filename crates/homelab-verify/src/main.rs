//! `homelab-verify`: checks that a homelab host is what its owner expects after a move to
//! NixOS. A thin command line over the `homelab-probe` library.
//!
//! Exit codes: 0 all checks passed (warnings and skips allowed), 1 at least one check failed,
//! 2 bad usage or bad input (the message names the file and line).

// The doc comments of the clap types are the command's --help text, not rustdoc: `<UTC time>`
// there is a placeholder for the reader, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]

mod baseline;
mod drift;
mod formats;
mod human;
mod migrate;
mod packaging;
mod report_file;
mod serve;

use std::io::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use formats::{Format, ReportTarget};
use homelab_probe::{Expectations, Host, Probe, Report, check};

/// Verify a homelab host after a move to NixOS: user and group ids, render nodes and who can
/// open them, mounts, GPU encoders (NVENC, VA-API) and whether containers can get the GPU.
///
/// With no command, runs `check` on this machine with built-in defaults.
#[derive(Debug, Parser)]
#[command(name = "homelab-verify", version = packaging::VERSION, long_version = packaging::LONG_VERSION)]
#[command(args_conflicts_with_subcommands = true, after_help = EXIT_CODES)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    check: CheckArgs,
}

const EXIT_CODES: &str =
    "Exit codes: 0 all checks passed (warnings allowed), 1 a check failed, 2 bad usage or bad input.";
/// `capture` and `plan` check nothing: they succeed or meet bad input; `plan` also refuses a
/// snapshot no NixOS module can keep (exit 2, nothing written).
const EXIT_CODES_CAPTURE: &str = "Exit codes: 0 the files were written, 2 bad usage or bad input; with --baseline, 1: \
     written, but some directories under a data root could not be read (recorded as unknown).";
const EXIT_CODES_PLAN: &str = "Exit codes: 0 the files were written, 2 bad usage or bad input, or a refusal: no \
     NixOS module keeps what the snapshot needs (the message names the conflict and the choices; nothing is written).";

#[derive(Debug, Subcommand)]
enum Command {
    /// Check the host against expectations (the post-switch verification).
    #[command(after_help = EXIT_CODES)]
    Check(CheckArgs),
    /// Find files whose owner or group is not the expected uid/gid; plan, apply and undo a fix.
    Drift(drift::DriftArgs),
    /// Record owners and modes of mixed-owner trees; check against the record; put owners back.
    Baseline(baseline::BaselineArgs),
    /// Snapshot the old host before the move: users, groups, GPUs, render nodes, compose stacks.
    #[command(after_help = EXIT_CODES_CAPTURE)]
    Capture(migrate::CaptureArgs),
    /// From a snapshot, write hardware-parity.nix, homelab-probe.toml and MIGRATION.md.
    #[command(after_help = EXIT_CODES_PLAN)]
    Plan(migrate::PlanArgs),
    /// Print the shell completion script for SHELL (bash, zsh, fish, elvish, powershell).
    Completions(packaging::CompletionsArgs),
    /// Write the man pages, one per command, into a directory (for packagers).
    #[command(hide = true)]
    Man(packaging::ManArgs),
    /// Keep checking: answer /healthz, /readyz?probe=P, /metrics and /report.json over HTTP.
    #[command(after_help = serve::EXIT_CODES)]
    Serve(serve::ServeArgs),
}

#[derive(Debug, Args)]
struct CheckArgs {
    /// Expectations file (`homelab-probe.toml`); without it, built-in defaults: every render
    /// node present is usable by the `render` group and the host's users and groups are
    /// consistent; GPUs are reported, not required.
    #[arg(long, value_name = "FILE")]
    expect: Option<PathBuf>,
    /// Root directory of the host to check: `/` for this machine, or a sysroot (a mounted
    /// disk, a fixture). Only `/` uses NSS and device ioctls.
    #[arg(long, value_name = "DIR", default_value = "/")]
    root: PathBuf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    format: Format,
    /// Also write the report in FORMAT to FILE, whatever `--format` prints (repeatable;
    /// replaced atomically; written when checks fail too, not on bad input), e.g.
    /// `prometheus:/var/lib/prometheus-node-exporter/homelab_probe.prom` for node_exporter's
    /// textfile collector or `junit:report.xml` for CI.
    #[arg(long, value_name = "FORMAT:FILE", value_parser = formats::parse_report_target)]
    report: Vec<ReportTarget>,
    /// Also write the JSON report to FILE: the same as `--report json:FILE`. The NixOS module
    /// uses it for /var/lib/homelab-probe/report.json.
    #[arg(long, value_name = "FILE")]
    json_report: Option<PathBuf>,
    /// Boot-time readiness: re-run the failing mount checks until they pass or DURATION
    /// (`90s`, `2m`, `1m30s`) is up, pausing 250 ms at first and at most 4 s between tries.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    wait: Option<std::time::Duration>,
}

fn main() -> ExitCode {
    // The matches, not only the parsed values: `capture --env-file` belongs to the
    // `--compose-file` before it, which only the arguments' positions tell.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let result = match cli.command {
        Some(Command::Check(a)) => run_check(&a),
        Some(Command::Drift(a)) => drift::run(&a),
        Some(Command::Baseline(a)) => baseline::run(&a),
        Some(Command::Capture(a)) => migrate::run_capture(&a, matches.subcommand_matches("capture")),
        Some(Command::Plan(a)) => migrate::run_plan(&a),
        Some(Command::Completions(a)) => packaging::completions(&a, Cli::command()),
        Some(Command::Man(a)) => packaging::man(&a, Cli::command()),
        Some(Command::Serve(a)) => serve::run(&a),
        None => run_check(&cli.check),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("homelab-verify: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run_check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let host = Host::at(&args.root)?;
    let (expectations, source) = match &args.expect {
        Some(file) => (Expectations::load(file)?, file.display().to_string()),
        None => (Expectations::builtin(), "built-in defaults".to_owned()),
    };
    let started = std::time::Instant::now();
    let (mut findings, probes) = formats::run_probes_timed(&host, &expectations, &Probe::ALL);
    if let Some(timeout) = args.wait {
        let mut last = std::collections::BTreeSet::new();
        let mut clock = check::wait::SystemClock::start();
        check::wait::wait_for_mounts(&host, &expectations, &mut findings, timeout, &mut clock, |failing, elapsed| {
            if *failing != last {
                let paths: Vec<&str> = failing.iter().map(String::as_str).collect();
                eprintln!("homelab-verify: {:.1} s: waiting for {}", elapsed.as_secs_f64(), paths.join(", "));
                last = failing.clone();
            }
        });
    }
    let run = formats::Run {
        report: Report::new(host.info(), source, findings),
        probes,
        pending: vec![],
        duration: started.elapsed(),
        expectations_valid: None,
    };
    let printed = (|| -> anyhow::Result<()> {
        let bytes = formats::render(args.format, &run, true)?;
        // Only the human format goes through anstream, which strips its colours off a
        // terminal; it would strip control characters out of the other formats' data too.
        if args.format == Format::Human {
            let mut out = anstream::stdout();
            out.write_all(&bytes)?;
            out.flush()?;
        } else {
            let mut out = std::io::stdout().lock();
            out.write_all(&bytes)?;
            out.flush()?;
        }
        Ok(())
    })();
    // A reader that stopped early (`homelab-verify | head`) does not change what the check
    // found: the exit code and the report files still tell it.
    if let Err(e) = printed {
        match e.downcast_ref::<std::io::Error>() {
            Some(io) if io.kind() == std::io::ErrorKind::BrokenPipe => {}
            _ => return Err(e),
        }
    }
    let json = args.json_report.iter().map(|path| ReportTarget { format: Format::Json, path: path.clone() });
    for target in args.report.iter().cloned().chain(json) {
        let what = match target.format {
            Format::Human => "human",
            Format::Json => "JSON",
            Format::Prometheus => "Prometheus",
            Format::Junit => "JUnit",
        };
        report_file::write(&target.path, &formats::render(target.format, &run, false)?, what)?;
    }
    Ok(if run.report.summary.ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
