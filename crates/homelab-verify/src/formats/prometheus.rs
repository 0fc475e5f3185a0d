//! The Prometheus text exposition format (version 0.0.4, prometheus.io/docs/instrumenting/
//! exposition_formats), written by the `prometheus` crate's `TextEncoder`, which escapes label
//! values (`\`, `"`, line feed) as the format requires. (`prometheus-client` 0.24 writes label
//! values as they are, so a subject with a `"` would break the whole scrape.)
//!
//! Every family is a gauge. Cardinality is bounded by the findings: at most one series per
//! finding, and for drift at most [`DRIFT_OWNERS`] owners per root plus `other`; no path from a
//! drift sample becomes a label. The families are listed in docs/monitoring.md.

use homelab_probe::{Finding, Probe, Status};
use prometheus::{Encoder as _, Gauge, GaugeVec, IntCounterVec, Opts, Registry, TextEncoder};
use serde_json::Value;

use super::{Run, unix_seconds};

/// The Content-Type of what [`render`] writes.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Owners of offending entries exported per drift root (the most frequent ones); the rest are
/// summed under `owner="other"`.
pub const DRIFT_OWNERS: usize = 10;

const STATUSES: [Status; 4] = [Status::Pass, Status::Warn, Status::Skip, Status::Fail];

fn status_name(s: Status) -> &'static str {
    match s {
        Status::Pass => "pass",
        Status::Warn => "warn",
        Status::Skip => "skip",
        Status::Fail => "fail",
    }
}

fn gauge(registry: &Registry, name: &str, help: &str) -> prometheus::Result<Gauge> {
    let g = Gauge::new(name, help)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> prometheus::Result<GaugeVec> {
    let g = GaugeVec::new(Opts::new(name, help), labels)?;
    registry.register(Box::new(g.clone()))?;
    Ok(g)
}

/// The families for `run`, as Prometheus text.
pub fn render(run: &Run) -> anyhow::Result<Vec<u8>> {
    let r = Registry::new();
    let report = &run.report;

    gauge(
        &r,
        "homelab_probe_check_ok",
        "1 when every check passed (warnings and skips allowed), 0 when one failed or a probe has not run yet.",
    )?
    .set(if run.ok() { 1.0 } else { 0.0 });

    let finding = gauge_vec(
        &r,
        "homelab_probe_finding",
        "One series per finding, value 1; the status label is its outcome (pass, warn, skip, fail).",
        &["probe", "check", "subject", "status"],
    )?;
    for f in &report.findings {
        finding
            .with_label_values(&[f.probe.name(), f.check.as_str(), f.subject.as_str(), status_name(f.status)])
            .set(1.0);
    }

    let findings = gauge_vec(&r, "homelab_probe_findings", "Findings per status.", &["status"])?;
    for s in STATUSES {
        let n = report.findings.iter().filter(|f| f.status == s).count();
        findings.with_label_values(&[status_name(s)]).set(n as f64);
    }

    if let Some(t) = run.finished() {
        gauge(
            &r,
            "homelab_probe_run_timestamp_seconds",
            "Unix time of the oldest probe result in this report (for check: when its first probe ended).",
        )?
        .set(unix_seconds(t));
    }
    gauge(&r, "homelab_probe_run_duration_seconds", "Seconds the probes of this report took to run.")?
        .set(run.duration.as_secs_f64());

    let duration =
        gauge_vec(&r, "homelab_probe_probe_duration_seconds", "Seconds the probe's latest run took.", &["probe"])?;
    let timestamp =
        gauge_vec(&r, "homelab_probe_probe_timestamp_seconds", "Unix time the probe's latest run ended.", &["probe"])?;
    let runs = IntCounterVec::new(
        Opts::new("homelab_probe_probe_runs_total", "Runs of the probe since the process started (check: 1)."),
        &["probe"],
    )?;
    r.register(Box::new(runs.clone()))?;
    for p in &run.probes {
        duration.with_label_values(&[p.probe.name()]).set(p.duration.as_secs_f64());
        timestamp.with_label_values(&[p.probe.name()]).set(unix_seconds(p.finished));
        runs.with_label_values(&[p.probe.name()]).inc_by(p.runs);
    }
    if !run.pending.is_empty() {
        let pending = gauge_vec(
            &r,
            "homelab_probe_probe_pending",
            "1 for a probe that has no result yet (serve: the drift probe before its first scan ended).",
            &["probe"],
        )?;
        for p in &run.pending {
            pending.with_label_values(&[p.name()]).set(1.0);
        }
    }

    drift(&r, &report.findings)?;

    if let Some(valid) = run.expectations_valid {
        gauge(
            &r,
            "homelab_probe_expectations_valid",
            "serve: 1 when the expectations file read last (at start or on SIGHUP) was valid; 0 when it was not and the last good one is still in use.",
        )?
        .set(if valid { 1.0 } else { 0.0 });
    }

    let mut out = Vec::new();
    TextEncoder::new().encode(&r.gather(), &mut out)?;
    Ok(out)
}

/// `homelab_probe_drift_entries{root,owner}` and `homelab_probe_drift_scanned_entries{root}`
/// from the `drift_owner` findings' evidence (counts only, never the sample paths).
fn drift(r: &Registry, findings: &[Finding]) -> anyhow::Result<()> {
    let owners: Vec<&Finding> =
        findings.iter().filter(|f| f.probe == Probe::Drift && f.check == "drift_owner").collect();
    if owners.is_empty() {
        return Ok(());
    }
    let entries = gauge_vec(
        r,
        "homelab_probe_drift_entries",
        "Entries under a drift root whose owner (uid:gid) is not the expected one, per owner: the most frequent owners, the rest as owner=\"other\".",
        &["root", "owner"],
    )?;
    let scanned =
        gauge_vec(r, "homelab_probe_drift_scanned_entries", "Entries the latest drift scan examined.", &["root"])?;
    for f in owners {
        if let Some(n) = f.evidence.get("entries").and_then(Value::as_f64) {
            scanned.with_label_values(&[f.subject.as_str()]).set(n);
        }
        let by_owner = f.evidence.get("by_owner").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
        let mut other = 0.0;
        for (i, c) in by_owner.iter().enumerate() {
            let count = c.get("count").and_then(Value::as_f64).unwrap_or(0.0);
            match (i < DRIFT_OWNERS, c.get("uid").and_then(Value::as_u64), c.get("gid").and_then(Value::as_u64)) {
                (true, Some(uid), Some(gid)) => {
                    entries.with_label_values(&[f.subject.as_str(), &format!("{uid}:{gid}")]).set(count)
                }
                _ => other += count,
            }
        }
        if other > 0.0 {
            entries.with_label_values(&[f.subject.as_str(), "other"]).set(other);
        }
    }
    Ok(())
}
