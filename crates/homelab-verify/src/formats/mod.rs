//! The output formats: `check --format F` (stdout), `check --report F:FILE` (files, written
//! atomically) and the bodies `serve` answers with. Rendering is the command line's job; the
//! library only decides (docs/architecture.md).

pub mod junit;
pub mod prometheus;

use std::io::Write as _;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use clap::ValueEnum;
use homelab_probe::{Expectations, Finding, Host, Probe, Report, check};

/// How a report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// One line per finding, grouped by probe, with a summary (colours only on a terminal and
    /// never with NO_COLOR; never in a file).
    Human,
    /// The Report as JSON (schema in docs/report.md).
    Json,
    /// Prometheus text exposition format 0.0.4 (docs/monitoring.md): for node_exporter's
    /// textfile collector, or what `serve` answers on /metrics.
    Prometheus,
    /// JUnit XML: one testsuite per probe, one testcase per finding (docs/report.md).
    Junit,
}

/// `--report FORMAT:FILE`: a report file written whatever stdout gets.
#[derive(Debug, Clone)]
pub struct ReportTarget {
    /// How to write it.
    pub format: Format,
    /// Where; replaced atomically (report_file.rs).
    pub path: PathBuf,
}

/// Parses `FORMAT:FILE` (clap value parser of `--report`).
pub fn parse_report_target(s: &str) -> Result<ReportTarget, String> {
    let names =
        || Format::value_variants().iter().filter_map(|f| f.to_possible_value()).map(|v| v.get_name().to_owned());
    let Some((format, path)) = s.split_once(':') else {
        return Err(format!("expected FORMAT:FILE, FORMAT one of {}", names().collect::<Vec<_>>().join(", ")));
    };
    let format = Format::from_str(format, false).map_err(|_| {
        format!("unknown format `{format}`: expected one of {}", names().collect::<Vec<_>>().join(", "))
    })?;
    if path.is_empty() {
        return Err("the FILE after FORMAT: is empty".to_owned());
    }
    Ok(ReportTarget { format, path: PathBuf::from(path) })
}

/// When and for how long one probe ran.
#[derive(Debug, Clone)]
pub struct ProbeRun {
    /// The probe.
    pub probe: Probe,
    /// When its findings were made.
    pub finished: SystemTime,
    /// How long it took.
    pub duration: Duration,
    /// How many times the probe has run in this process (`check`: 1; `serve`: since start).
    pub runs: u64,
}

/// One report with its timings, as the formats render it. `check` makes one run of every
/// probe; `serve` puts together each probe's latest cached result.
#[derive(Debug, Clone)]
pub struct Run {
    /// The report (findings in probe order, summary).
    pub report: Report,
    /// The probes that ran, in order, with their timings.
    pub probes: Vec<ProbeRun>,
    /// Probes that were asked for but have no result yet (`serve`: the drift probe before its
    /// first scan ended). A report with one is not `ok`.
    pub pending: Vec<Probe>,
    /// Wall time of the whole run (`serve`: the sum of the probes' times).
    pub duration: Duration,
    /// Whether the expectations file was read without error the last time it was read
    /// (`serve` reloads it on SIGHUP and keeps the last good one); `None` for `check`.
    pub expectations_valid: Option<bool>,
}

impl Run {
    /// Every check passed and no probe is pending.
    pub fn ok(&self) -> bool {
        self.report.summary.ok && self.pending.is_empty()
    }

    /// The oldest probe result of the report (`check`: when its first probe ended).
    pub fn finished(&self) -> Option<SystemTime> {
        self.probes.iter().map(|p| p.finished).min()
    }
}

/// Runs `probes` one at a time, timing each (for the per-probe durations of the metrics and
/// the JUnit suites).
pub fn run_probes_timed(host: &Host, expectations: &Expectations, probes: &[Probe]) -> (Vec<Finding>, Vec<ProbeRun>) {
    let mut findings = Vec::new();
    let mut runs = Vec::new();
    for &probe in probes {
        let start = Instant::now();
        findings.extend(check::run_probes(host, expectations, &[probe]));
        runs.push(ProbeRun { probe, finished: SystemTime::now(), duration: start.elapsed(), runs: 1 });
    }
    (findings, runs)
}

/// Renders `run` in `format`. `color` keeps the human format's ANSI colours (for a terminal
/// through anstream, which strips them elsewhere); files never get them.
pub fn render(format: Format, run: &Run, color: bool) -> anyhow::Result<Vec<u8>> {
    let mut out = Vec::new();
    match format {
        Format::Human => {
            crate::human::write(&mut out, &run.report)?;
            if !color {
                out = anstream::adapter::strip_bytes(&out).into_vec();
            }
        }
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &run.report)?;
            writeln!(out)?;
        }
        Format::Prometheus => out = prometheus::render(run)?,
        Format::Junit => out = junit::render(run)?,
    }
    Ok(out)
}

/// Seconds since the Unix epoch, for timestamps in the formats.
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn report_targets_parse_format_colon_file() {
        let t = parse_report_target("prometheus:/var/lib/node/homelab_probe.prom").unwrap();
        assert_eq!((t.format, t.path), (Format::Prometheus, PathBuf::from("/var/lib/node/homelab_probe.prom")));
        // Only the first colon separates: a file name may hold more.
        let t = parse_report_target("junit:a:b.xml").unwrap();
        assert_eq!((t.format, t.path), (Format::Junit, PathBuf::from("a:b.xml")));
        assert!(parse_report_target("report.json").unwrap_err().contains("expected FORMAT:FILE"));
        assert!(parse_report_target("xml:r.xml").unwrap_err().contains("unknown format `xml`"));
        assert!(parse_report_target("json:").unwrap_err().contains("empty"));
    }
}
