//! The [`Report`]: the stable JSON contract of `homelab-verify check`.
//!
//! Consumers (CI, NixOS VM tests, monitoring) may rely on every field documented here for a
//! given [`REPORT_SCHEMA_VERSION`]. Fields are only ever added within a version; a removal or a
//! change of meaning bumps the version.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::model::finding::{Finding, Status};

/// Version of the report's JSON shape.
pub const REPORT_SCHEMA_VERSION: u32 = 1;

/// The result of one `check` run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Report {
    /// [`REPORT_SCHEMA_VERSION`] of the writer.
    pub schema_version: u32,
    /// The program and version that wrote the report.
    pub tool: ToolInfo,
    /// The host that was checked.
    pub host: HostInfo,
    /// When the report was made, RFC 3339 in UTC.
    pub generated_at: String,
    /// Where the expectations came from: a file path or `built-in defaults`.
    pub expectations: String,
    /// Every finding, in the order the probes made them.
    pub findings: Vec<Finding>,
    /// Counts per status.
    pub summary: Summary,
}

/// Name and version of the writer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ToolInfo {
    /// `homelab-probe`.
    pub name: String,
    /// The library's version.
    pub version: String,
}

/// Which host a report describes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host name (`/proc/sys/kernel/hostname` on the live host, `etc/hostname` in a sysroot).
    pub hostname: Option<String>,
    /// The root every file was read from.
    pub root: PathBuf,
    /// Whether this is the running system (NSS look-ups and device ioctls were used).
    pub live: bool,
    /// Kernel release of the running system; `None` for a sysroot.
    pub kernel: Option<String>,
}

impl ToolInfo {
    /// This library: `homelab-probe` and its version.
    pub fn this() -> Self {
        ToolInfo { name: "homelab-probe".into(), version: env!("CARGO_PKG_VERSION").into() }
    }
}

/// The current time in RFC 3339, UTC, to the second: the stamp of reports and snapshots.
pub fn now_rfc3339() -> String {
    let now = jiff::Timestamp::now();
    now.round(jiff::Unit::Second).unwrap_or(now).to_string()
}

/// Counts of findings per status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Summary {
    /// All findings.
    pub total: usize,
    /// Passed.
    pub pass: usize,
    /// Warnings.
    pub warn: usize,
    /// Skipped (each with its reason).
    pub skip: usize,
    /// Failed.
    pub fail: usize,
    /// True when nothing failed (warnings and skips allowed).
    pub ok: bool,
}

impl Summary {
    /// Counts `findings`.
    pub fn of(findings: &[Finding]) -> Self {
        let mut s = Summary { total: findings.len(), ..Summary::default() };
        for f in findings {
            match f.status {
                Status::Pass => s.pass += 1,
                Status::Warn => s.warn += 1,
                Status::Skip => s.skip += 1,
                Status::Fail => s.fail += 1,
            }
        }
        s.ok = s.fail == 0;
        s
    }
}

impl Report {
    /// Builds a report about `host` (see `Host::info`) from `findings`, stamped now.
    pub fn new(host: HostInfo, expectations: impl Into<String>, findings: Vec<Finding>) -> Self {
        Report {
            schema_version: REPORT_SCHEMA_VERSION,
            tool: ToolInfo::this(),
            host,
            generated_at: now_rfc3339(),
            expectations: expectations.into(),
            summary: Summary::of(&findings),
            findings,
        }
    }

    /// The worst status among the findings (`Pass` when there are none).
    pub fn worst(&self) -> Status {
        self.findings.iter().map(|f| f.status).max().unwrap_or(Status::Pass)
    }
}
