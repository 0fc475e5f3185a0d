//! The human report: one line per finding, grouped by probe, then a summary line.

use std::io::{self, Write};

use anstyle::{AnsiColor, Style};
use homelab_probe::{Probe, Report, Status};

fn style(status: Status) -> Style {
    let color = match status {
        Status::Pass => AnsiColor::Green,
        Status::Skip => AnsiColor::Cyan,
        Status::Warn => AnsiColor::Yellow,
        Status::Fail => AnsiColor::Red,
    };
    Style::new().fg_color(Some(color.into())).bold()
}

/// Writes `report` for a person. Colours are written as ANSI codes; the `anstream` writer
/// strips them when the output is not a terminal or `NO_COLOR` is set.
pub fn write(out: &mut impl Write, report: &Report) -> io::Result<()> {
    let bold = Style::new().bold();
    let host = report.host.hostname.as_deref().unwrap_or("unknown host");
    let kind = if report.host.live { "live system" } else { "sysroot" };
    writeln!(
        out,
        "homelab-verify {}: {host} ({kind} at {}), expectations: {}",
        report.tool.version,
        report.host.root.display(),
        report.expectations
    )?;
    let width = report.findings.iter().map(|f| f.subject.chars().count()).max().unwrap_or(0).min(40);
    let mut current: Option<Probe> = None;
    for f in &report.findings {
        if current != Some(f.probe) {
            writeln!(out, "\n{bold}{}{bold:#}", f.probe)?;
            current = Some(f.probe);
        }
        let s = style(f.status);
        writeln!(out, "  {s}{}{s:#}  {:width$}  {}", f.status.label(), f.subject, f.message)?;
        if let Some(r) = &f.remedy {
            let kind = r.kind.label();
            let mut lines = r.text.lines();
            if let Some(first) = lines.next() {
                writeln!(out, "        fix ({kind}): {first}")?;
            }
            for l in lines {
                writeln!(out, "        {:>width$}  {l}", "", width = kind.len() + 5)?;
            }
        }
    }
    let sm = &report.summary;
    let verdict = if sm.ok { style(Status::Pass) } else { style(Status::Fail) };
    writeln!(
        out,
        "\nsummary: {} pass, {} warn, {} skip, {} fail: {verdict}{}{verdict:#}",
        sm.pass,
        sm.warn,
        sm.skip,
        sm.fail,
        if sm.ok { "OK" } else { "FAILED" }
    )
}
