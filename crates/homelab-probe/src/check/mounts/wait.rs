//! Boot-time readiness (`homelab-verify check --wait 90s`): re-run the failing mount checks
//! until they pass or the time is up. Disks appear late at boot (USB enclosures, LUKS, RAID
//! assembly), so a check right after boot may fail for a moment only.
//!
//! Polling is bounded: the first re-check comes after 250 ms, each pause doubles up to 4 s, and
//! no pause goes past the deadline. Only mount findings are re-run; the clock is a parameter so
//! tests can drive the loop without sleeping.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use crate::check::mounts;
use crate::host::Host;
use crate::model::expectations::Expectations;
use crate::model::finding::{Finding, Probe, Remedy, Status};
use crate::systemd;

/// The first pause between attempts.
pub const FIRST_PAUSE: Duration = Duration::from_millis(250);
/// The longest pause between attempts.
pub const MAX_PAUSE: Duration = Duration::from_secs(4);

/// Time for [`wait_for_mounts`]: real in the CLI ([`SystemClock`]), simulated in tests.
pub trait Clock {
    /// Time since the wait started.
    fn elapsed(&self) -> Duration;
    /// Pauses for `d`.
    fn sleep(&mut self, d: Duration);
}

/// The real clock.
#[derive(Debug, Clone, Copy)]
pub struct SystemClock(Instant);

impl SystemClock {
    /// Starts now.
    pub fn start() -> Self {
        SystemClock(Instant::now())
    }
}

impl Clock for SystemClock {
    fn elapsed(&self) -> Duration {
        self.0.elapsed()
    }

    fn sleep(&mut self, d: Duration) {
        std::thread::sleep(d);
    }
}

/// How a wait ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitOutcome {
    /// Whether every re-checkable mount finding passed in time.
    pub ready: bool,
    /// How many times the failing checks were re-run.
    pub rechecks: u32,
    /// Time spent.
    pub waited: Duration,
    /// Mount points still failing (empty when ready).
    pub failing: Vec<String>,
}

/// The mount points whose findings fail and can be re-run.
fn failing(findings: &[Finding], checkable: &BTreeSet<String>) -> BTreeSet<String> {
    findings
        .iter()
        .filter(|f| f.probe == Probe::Mounts && f.status == Status::Fail && checkable.contains(&f.subject))
        .map(|f| f.subject.clone())
        .collect()
}

/// Re-runs the failing mount checks of `findings` (in place) until they pass or `timeout`
/// is spent, then appends a `mount_wait` finding. `progress` is told which mount points are
/// still failing before each pause (the library never prints; the CLI may).
pub fn wait_for_mounts(
    host: &Host,
    exp: &Expectations,
    findings: &mut Vec<Finding>,
    timeout: Duration,
    clock: &mut impl Clock,
    mut progress: impl FnMut(&BTreeSet<String>, Duration),
) -> WaitOutcome {
    let checkable = mounts::checkable_paths(host, exp);
    let mut pause = FIRST_PAUSE;
    let mut rechecks = 0;
    loop {
        let now_failing = failing(findings, &checkable);
        let elapsed = clock.elapsed();
        if now_failing.is_empty() || elapsed >= timeout {
            let outcome = WaitOutcome {
                ready: now_failing.is_empty(),
                rechecks,
                waited: elapsed,
                failing: now_failing.into_iter().collect(),
            };
            findings.push(wait_finding(&outcome, timeout));
            return outcome;
        }
        progress(&now_failing, elapsed);
        clock.sleep(pause.min(timeout - elapsed));
        pause = (pause * 2).min(MAX_PAUSE);
        rechecks += 1;
        let fresh = mounts::recheck(host, exp, &now_failing);
        replace(findings, &now_failing, fresh);
    }
}

/// Replaces the mount findings about `subjects` with `fresh`, where the first of them was.
fn replace(findings: &mut Vec<Finding>, subjects: &BTreeSet<String>, fresh: Vec<Finding>) {
    let stale = |f: &Finding| f.probe == Probe::Mounts && subjects.contains(&f.subject);
    let at = findings.iter().position(stale).unwrap_or(findings.len());
    findings.retain(|f| !stale(f));
    let at = at.min(findings.len());
    findings.splice(at..at, fresh);
}

fn rechecks(n: u32) -> String {
    if n == 1 { "1 re-check".into() } else { format!("{n} re-checks") }
}

fn wait_finding(o: &WaitOutcome, timeout: Duration) -> Finding {
    let secs = |d: Duration| format!("{:.1} s", d.as_secs_f64());
    let subject = "mount readiness";
    let f = if o.ready && o.rechecks == 0 {
        Finding::pass(Probe::Mounts, "mount_wait", subject, "every mount check passed at the first try")
    } else if o.ready {
        Finding::pass(
            Probe::Mounts,
            "mount_wait",
            subject,
            format!("every mount check passed after {} ({})", secs(o.waited), rechecks(o.rechecks)),
        )
    } else {
        let units: Vec<String> = o.failing.iter().map(|p| systemd::mount_unit(p)).collect();
        Finding::fail(
            Probe::Mounts,
            "mount_wait",
            subject,
            format!(
                "still failing after waiting {} of {} ({}): {}",
                secs(o.waited),
                secs(timeout),
                rechecks(o.rechecks),
                o.failing.join(", ")
            ),
            Remedy::command(format!("systemctl status {0}; journalctl -b -u {0}", units.join(" "))),
        )
    };
    f.evidence("waited_ms", o.waited.as_millis() as u64)
        .evidence("rechecks", o.rechecks)
        .evidence("timeout_ms", timeout.as_millis() as u64)
        .evidence("failing", &o.failing)
}
