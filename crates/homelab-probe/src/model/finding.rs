//! A [`Finding`] is one decision one probe made about one subject.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// The outcome of one decision.
///
/// Ordered by severity (`Pass < Skip < Warn < Fail`) so a caller can take the maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// The host satisfies the expectation.
    Pass,
    /// The check could not run; the finding's message says why.
    Skip,
    /// Not a failure, but worth a look (e.g. more permissive than expected).
    Warn,
    /// The host does not satisfy the expectation.
    Fail,
}

impl Status {
    /// Upper-case label used in human output (`PASS`, `SKIP`, `WARN`, `FAIL`).
    pub fn label(self) -> &'static str {
        match self {
            Status::Pass => "PASS",
            Status::Skip => "SKIP",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// Which probe made a finding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Probe {
    /// UID/GID parity: names and numbers of users and groups.
    Identity,
    /// Render and card nodes under `/dev/dri`: owner, group, mode, who can open them.
    RenderNode,
    /// GPUs: inventory, NVENC (NVML), VA-API encode/decode, container GPU readiness.
    Gpu,
    /// Mount readiness: fstab entries and expected mounts by UUID, fstype, rw/ro, shadowed data.
    Mounts,
    /// File ownership: drift under data roots (`[[drift]]`) and owners and modes against a
    /// baseline (`[[baseline]]`).
    Drift,
}

impl Probe {
    /// Every probe, in the order `check` runs them.
    pub const ALL: [Probe; 5] = [Probe::Identity, Probe::RenderNode, Probe::Gpu, Probe::Mounts, Probe::Drift];

    /// The probe called `name` ([`Probe::name`]).
    pub fn from_name(name: &str) -> Option<Probe> {
        Probe::ALL.into_iter().find(|p| p.name() == name)
    }

    /// The name used in JSON and human output (`identity`, `render_node`, `gpu`).
    pub fn name(self) -> &'static str {
        match self {
            Probe::Identity => "identity",
            Probe::RenderNode => "render_node",
            Probe::Gpu => "gpu",
            Probe::Mounts => "mounts",
            Probe::Drift => "drift",
        }
    }
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of action a [`Remedy`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum RemedyKind {
    /// A NixOS configuration snippet to add to the host's configuration.
    Nixos,
    /// A shell command to run on the host.
    Command,
    /// Something a person has to do that is neither of the above.
    Manual,
}

impl RemedyKind {
    /// The name used in JSON and human output: `nixos`, `command`, `manual`.
    pub fn label(self) -> &'static str {
        match self {
            RemedyKind::Nixos => "nixos",
            RemedyKind::Command => "command",
            RemedyKind::Manual => "manual",
        }
    }
}

impl fmt::Display for RemedyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.label())
    }
}

/// A concrete way to fix a failed finding.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Remedy {
    /// NixOS snippet, command or manual step.
    pub kind: RemedyKind,
    /// The snippet or command itself, ready to paste.
    pub text: String,
}

impl Remedy {
    /// A NixOS configuration snippet, e.g. `users.groups.render.gid = lib.mkForce 110;`.
    pub fn nixos(text: impl Into<String>) -> Self {
        Remedy { kind: RemedyKind::Nixos, text: text.into() }
    }

    /// A shell command.
    pub fn command(text: impl Into<String>) -> Self {
        Remedy { kind: RemedyKind::Command, text: text.into() }
    }

    /// A manual step.
    pub fn manual(text: impl Into<String>) -> Self {
        Remedy { kind: RemedyKind::Manual, text: text.into() }
    }
}

/// One decision a probe made about one subject.
///
/// Built only with [`Finding::pass`], [`Finding::warn`], [`Finding::skip`] (which takes its
/// reason) and [`Finding::fail`] / [`Finding::fail_or_warn`] (which take their remedy), so no
/// skip lacks a reason and no failure lacks a remedy; then decorated with
/// [`Finding::evidence`] (and [`Finding::remedy`] for a warning's optional fix).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Finding {
    /// The probe that made the decision.
    pub probe: Probe,
    /// A stable identifier of the decision within the probe (`group_gid`, `render_access`...),
    /// for machines that assert on findings.
    pub check: String,
    /// The thing decided about, in the user's words: `group render`, `/dev/dri/renderD128`.
    pub subject: String,
    /// The outcome.
    pub status: Status,
    /// One sentence for a person. For a skip, the reason.
    pub message: String,
    /// The facts behind the decision (observed and expected values), keyed by name.
    pub evidence: BTreeMap<String, serde_json::Value>,
    /// How to fix it, when the status is fail or warn and a fix is known.
    pub remedy: Option<Remedy>,
}

impl Finding {
    fn new(probe: Probe, check: &str, subject: impl Into<String>, status: Status, message: impl Into<String>) -> Self {
        Finding {
            probe,
            check: check.to_owned(),
            subject: subject.into(),
            status,
            message: message.into(),
            evidence: BTreeMap::new(),
            remedy: None,
        }
    }

    /// A passed check.
    pub fn pass(probe: Probe, check: &str, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(probe, check, subject, Status::Pass, message)
    }

    /// A failed check, with the concrete way to fix it: a failure without a remedy cannot be
    /// built (the remedy can be replaced later, never removed).
    pub fn fail(
        probe: Probe,
        check: &str,
        subject: impl Into<String>,
        message: impl Into<String>,
        remedy: Remedy,
    ) -> Self {
        Self::new(probe, check, subject, Status::Fail, message).remedy(remedy)
    }

    /// A failure when `required`, else a warning; either way with `remedy`.
    pub fn fail_or_warn(
        required: bool,
        probe: Probe,
        check: &str,
        subject: impl Into<String>,
        message: impl Into<String>,
        remedy: Remedy,
    ) -> Self {
        let status = if required { Status::Fail } else { Status::Warn };
        Self::new(probe, check, subject, status, message).remedy(remedy)
    }

    /// A warning.
    pub fn warn(probe: Probe, check: &str, subject: impl Into<String>, message: impl Into<String>) -> Self {
        Self::new(probe, check, subject, Status::Warn, message)
    }

    /// A check that could not run; `reason` says why (not applicable, not permitted, absent).
    pub fn skip(probe: Probe, check: &str, subject: impl Into<String>, reason: impl Into<String>) -> Self {
        Self::new(probe, check, subject, Status::Skip, reason)
    }

    /// Adds one piece of evidence.
    pub fn evidence(mut self, key: &str, value: impl Serialize) -> Self {
        // Serialising our own plain types cannot fail; fall back to null rather than panic.
        let value = serde_json::to_value(value).unwrap_or(serde_json::Value::Null);
        self.evidence.insert(key.to_owned(), value);
        self
    }

    /// Sets (or replaces) the remedy.
    pub fn remedy(mut self, remedy: Remedy) -> Self {
        self.remedy = Some(remedy);
        self
    }
}
