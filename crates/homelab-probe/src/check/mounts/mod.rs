//! The mount probe: is every data disk mounted where it should be, by the right UUID, with the
//! right type and rw/ro, with nothing mounted over it, and, when it is not mounted, did
//! something write into the bare directory (data that lands on the root disk and "disappears"
//! once the disk is mounted over it)?
//!
//! What is expected comes from two places (docs/mounts.md):
//! - every `/etc/fstab` entry that is not `noauto` and not swap (the host's own declaration,
//!   checked with or without an expectations file, like `findmnt --verify`; `nofail` does not
//!   make a missing disk acceptable: that is exactly when containers write to the root disk);
//! - `[[mounts]]` of the expectations file, which replaces the fstab-derived expectation for
//!   the same path (it may pin a UUID, a type, options, or `required = false`).
//!
//! `noauto` entries and swap are checked only for their device (a warning when absent, as
//! `findmnt --verify` does).
//!
//! Facts: fstab through [`crate::sources::fstab`], the mount table through
//! [`crate::host::mounts`] and [`crate::sources::mountinfo::visibility`], device identity
//! through [`crate::host::blockdev`]. Check ids are stable (docs/report.md).
//!
//! The checks are split along their seams: this file plans the expected mounts and runs the
//! decisions in order; `device.rs` tells which block device a source names (`mount_declared`,
//! `mount_device`, `bind_source`, the devices of swap and `noauto` entries), `mounted.rs` judges
//! what is mounted at the path (`mounted`, `mount_source`, `mount_fstype`, `mount_options`,
//! `mount_covered`), `shadowed.rs` what lies there when nothing is (`shadowed_data`), and
//! `remedy.rs` writes the remedies they share. `wait.rs` re-runs failing checks (`--wait`).

mod device;
mod mounted;
mod remedy;
mod shadowed;
pub mod wait;

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::host::blockdev::BlockDevices;
use crate::host::mounts::mount_table;
use crate::host::{Host, HostError};
use crate::model::expectations::Expectations;
use crate::model::finding::{Finding, Probe, Remedy};
use crate::model::mounts::MountExpectation;
use crate::model::source::Source;
use crate::sources::Parsed;
use crate::sources::fstab::{self, FSTAB, FstabEntry};
use crate::sources::mountinfo::{MountInfo, SELF_MOUNTINFO, visibility};

use device::device_only;

const P: Probe = Probe::Mounts;

/// How many entries of a bare directory are read at most (the count is "at least" beyond).
pub const SAMPLE_LIMIT: usize = 10_000;
/// How many names of a bare directory a finding shows.
pub const SAMPLE_NAMES: usize = 5;

/// Where an expected mount comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `[[mounts]]` of the expectations file.
    Expectations,
    /// An `/etc/fstab` entry (no `[[mounts]]` for its path).
    Fstab,
}

/// One mount the probe checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpectedMount {
    /// The mount point.
    pub path: String,
    /// The device that must be mounted there, if one is named.
    pub source: Option<Source>,
    /// How the source is written (`UUID=...`), for messages.
    pub spec: Option<String>,
    /// Filesystem types allowed (any of them); empty: any.
    pub fstypes: Vec<String>,
    /// Whether it must be read-only (`ro`) rather than read-write.
    pub read_only: bool,
    /// Other kernel options that must be present (explicit expectations only).
    pub options: Vec<String>,
    /// Not mounted is a failure (else a warning).
    pub required: bool,
    /// Where the expectation comes from.
    pub origin: Origin,
    /// The fstab entry for this path and its line, if there is one.
    pub fstab: Option<(usize, FstabEntry)>,
}

impl ExpectedMount {
    fn from_fstab(line: usize, e: &FstabEntry) -> Self {
        ExpectedMount {
            path: normalise(&e.target),
            source: Some(e.source.clone()),
            spec: Some(e.spec.clone()),
            fstypes: e.fstypes().into_iter().filter(|t| *t != "none").map(str::to_owned).collect(),
            read_only: e.read_only(),
            options: Vec::new(),
            required: true,
            origin: Origin::Fstab,
            fstab: Some((line, e.clone())),
        }
    }

    fn from_expectation(m: &MountExpectation, fstab: Option<(usize, FstabEntry)>) -> Self {
        ExpectedMount {
            path: m.path.clone(),
            source: m.source(),
            spec: m.spec(),
            fstypes: m.fstype.iter().cloned().collect(),
            read_only: m.options.iter().any(|o| o == "ro"),
            options: m.options.iter().filter(|o| *o != "ro" && *o != "rw").cloned().collect(),
            required: m.required,
            origin: Origin::Expectations,
            fstab,
        }
    }

    fn is_bind(&self) -> bool {
        self.fstab.as_ref().is_some_and(|(_, e)| e.is_bind())
    }

    fn declared(&self) -> bool {
        self.fstab.is_some()
    }

    /// The expected source for a person: `UUID=...` also for `/dev/disk/by-uuid/...`.
    fn shown(&self) -> String {
        match &self.source {
            Some(s) => shown_source(s, self.spec.as_deref().unwrap_or_default()),
            None => "the expected filesystem".into(),
        }
    }
}

/// `UUID=x` for `UUID=x` and `/dev/disk/by-uuid/x`; the spec as written otherwise.
fn shown_source(s: &Source, spec: &str) -> String {
    match s.tag() {
        Some((k, v)) => format!("{}={v}", k.name()),
        None => spec.to_owned(),
    }
}

/// `/mnt/x/` -> `/mnt/x`, `//a//b` -> `/a/b` (fstab targets are compared as strings, as systemd
/// does; symbolic links are not followed, so a hung network mount cannot hang the probe).
fn normalise(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty() && *c != ".").collect();
    if path.starts_with('/') { format!("/{}", parts.join("/")) } else { path.to_owned() }
}

/// The host's facts the probe decides on.
#[derive(Debug)]
pub struct MountFacts {
    /// `/etc/fstab`, parsed; `None` when the file does not exist.
    pub fstab: Option<Parsed<FstabEntry>>,
    /// Why `/etc/fstab` could not be read (other than not existing).
    pub fstab_error: Option<HostError>,
    /// The mount table, or why it could not be read.
    pub table: Result<Parsed<MountInfo>, HostError>,
    /// Block devices and their identity.
    pub devices: BlockDevices,
}

impl MountFacts {
    /// Gathers the facts from `host`.
    pub fn gather(host: &Host) -> Self {
        let (fstab, fstab_error) = match host.read_to_string(FSTAB) {
            Ok(t) => (Some(fstab::parse(&t, Path::new(FSTAB))), None),
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => (None, None),
            Err(e) => (None, Some(e)),
        };
        MountFacts { fstab, fstab_error, table: mount_table(host), devices: BlockDevices::load(host) }
    }

    fn fstab_entries(&self) -> &[(usize, FstabEntry)] {
        self.fstab.as_ref().map_or(&[], |p| &p.entries)
    }
}

/// The mounts to check: every `[[mounts]]` entry, then every fstab entry that is not swap or
/// `noauto` and whose path has no `[[mounts]]` entry. When fstab lists a path twice, the last
/// entry counts (as with systemd).
pub fn plan(facts: &MountFacts, exp: &Expectations) -> Vec<ExpectedMount> {
    let entries = facts.fstab_entries();
    let fstab_for = |path: &str| entries.iter().rev().find(|(_, e)| !e.is_swap() && normalise(&e.target) == path);
    let mut out: Vec<ExpectedMount> =
        exp.mounts.iter().map(|m| ExpectedMount::from_expectation(m, fstab_for(&m.path).cloned())).collect();
    let explicit: BTreeSet<&str> = exp.mounts.iter().map(|m| m.path.as_str()).collect();
    let mut seen = BTreeSet::new();
    for (line, e) in entries.iter().rev() {
        let path = normalise(&e.target);
        if e.is_swap()
            || e.is_noauto()
            || !path.starts_with('/')
            || explicit.contains(path.as_str())
            || !seen.insert(path)
        {
            continue;
        }
        out.push(ExpectedMount::from_fstab(*line, e));
    }
    let n = exp.mounts.len();
    out[n..].reverse();
    out
}

/// Runs the mount probe.
pub fn check(host: &Host, exp: &Expectations) -> Vec<Finding> {
    let facts = MountFacts::gather(host);
    decide(host, &facts, exp, None)
}

/// Runs only the per-mount checks of the mounts at `paths` (fresh facts), for `--wait`.
pub fn recheck(host: &Host, exp: &Expectations, paths: &BTreeSet<String>) -> Vec<Finding> {
    let facts = MountFacts::gather(host);
    decide(host, &facts, exp, Some(paths))
}

/// The paths [`recheck`] can re-run: those of [`plan`].
pub fn checkable_paths(host: &Host, exp: &Expectations) -> BTreeSet<String> {
    plan(&MountFacts::gather(host), exp).into_iter().map(|m| m.path).collect()
}

/// The decisions over gathered facts. With `only`, just the per-mount checks of those paths.
pub fn decide(host: &Host, facts: &MountFacts, exp: &Expectations, only: Option<&BTreeSet<String>>) -> Vec<Finding> {
    let mut out = Vec::new();
    let planned = plan(facts, exp);
    if only.is_none() {
        file_findings(facts, &planned, &mut out);
    }
    let table: Option<Vec<MountInfo>> =
        facts.table.as_ref().ok().map(|p| p.entries.iter().map(|(_, m)| m.clone()).collect());
    for m in &planned {
        if only.is_some_and(|o| !o.contains(&m.path)) {
            continue;
        }
        Ctx { host, facts, table: table.as_deref(), m }.check(&mut out);
    }
    if only.is_none() {
        for (line, e) in facts.fstab_entries() {
            if e.is_swap() || e.is_noauto() {
                out.extend(device_only(host, facts, *line, e));
            }
        }
    }
    out
}

/// `fstab`, `fstab_line` and `mount_table` findings.
fn file_findings(facts: &MountFacts, planned: &[ExpectedMount], out: &mut Vec<Finding>) {
    match (&facts.fstab, &facts.fstab_error) {
        (_, Some(e)) => out.push(Finding::fail(
            P,
            "fstab",
            FSTAB,
            format!("cannot read {FSTAB}: {e}"),
            Remedy::command(format!(
                "ls -l {FSTAB}  # it must be a readable file (on NixOS a link to /etc/static/fstab)"
            )),
        )),
        (None, None) => out.push(Finding::skip(
            P,
            "fstab",
            FSTAB,
            if planned.is_empty() {
                format!("no {FSTAB} and no [[mounts]] expectations: no mount to check")
            } else {
                format!("no {FSTAB}: only the [[mounts]] expectations are checked")
            },
        )),
        (Some(p), None) => {
            let entries = &p.entries;
            let swap = entries.iter().filter(|(_, e)| e.is_swap()).count();
            let noauto = entries.iter().filter(|(_, e)| !e.is_swap() && e.is_noauto()).count();
            let mounts = entries.len() - swap - noauto;
            let mut msg =
                format!("{} entries: {mounts} to be mounted at boot, {swap} swap, {noauto} noauto", entries.len());
            if !p.errors.is_empty() {
                msg.push_str(&format!(", {} bad lines (reported below; the rest is checked)", p.errors.len()));
            }
            out.push(
                Finding::pass(P, "fstab", FSTAB, msg)
                    .evidence("entries", entries.len())
                    .evidence("swap", swap)
                    .evidence("noauto", noauto)
                    .evidence("bad_lines", p.errors.iter().map(|e| e.line).collect::<Vec<_>>()),
            );
            for (line, e) in entries.iter().filter(|(_, e)| !e.is_swap() && !e.target.starts_with('/')) {
                out.push(
                    Finding::warn(
                        P,
                        "fstab_line",
                        format!("{FSTAB}:{line}"),
                        format!("mount point {:?} is not an absolute path: systemd ignores this entry", e.target),
                    )
                    .evidence("line", line)
                    .remedy(Remedy::manual(format!(
                        "write the mount point of line {line} of {FSTAB} as an absolute path"
                    ))),
                );
            }
            for e in &p.errors {
                out.push(
                    Finding::fail(P, "fstab_line", format!("{}:{}", e.file.display(), e.line), format!("not a valid fstab(5) entry: {}", e.message), Remedy::manual(format!(
                            "fix line {} of {FSTAB} (fs_spec fs_file fs_vfstype [fs_mntops [fs_freq [fs_passno]]], blanks in names written as \\040), or comment it out with '#'; on NixOS /etc/fstab is generated from fileSystems and swapDevices. `findmnt --verify` checks the whole file",
                            e.line
                        )))
                        .evidence("line", e.line),
                );
            }
        }
    }
    match &facts.table {
        Ok(p) => {
            for e in &p.errors {
                out.push(
                    Finding::warn(P, "mount_table", format!("{}:{}", e.file.display(), e.line), format!("line not understood, ignored: {}", e.message))
                        .evidence("line", e.line),
                );
            }
        }
        Err(e) if !planned.is_empty() => out.push(Finding::skip(
            P,
            "mount_table",
            SELF_MOUNTINFO,
            format!("cannot read the mount table ({e}), so whether anything is mounted cannot be checked (a sysroot of a disk has no /proc; devices are still checked)"),
        )),
        Err(_) => {}
    }
}

/// What is known about one expected mount while deciding.
struct Ctx<'a> {
    host: &'a Host,
    facts: &'a MountFacts,
    table: Option<&'a [MountInfo]>,
    m: &'a ExpectedMount,
}

impl<'a> Ctx<'a> {
    fn subject(&self) -> &str {
        &self.m.path
    }

    fn pass(&self, check: &str, msg: impl Into<String>) -> Finding {
        self.decorate(Finding::pass(P, check, self.subject(), msg))
    }

    fn warn(&self, check: &str, msg: impl Into<String>) -> Finding {
        self.decorate(Finding::warn(P, check, self.subject(), msg))
    }

    fn skip(&self, check: &str, msg: impl Into<String>) -> Finding {
        self.decorate(Finding::skip(P, check, self.subject(), msg))
    }

    fn fail(&self, check: &str, msg: impl Into<String>, remedy: Remedy) -> Finding {
        self.decorate(Finding::fail(P, check, self.subject(), msg, remedy))
    }

    /// A failure when the mount is required, else a warning (`required = false`).
    fn fail_unless_optional(&self, check: &str, msg: impl Into<String>, remedy: Remedy) -> Finding {
        self.decorate(Finding::fail_or_warn(self.m.required, P, check, self.subject(), msg, remedy))
    }

    fn decorate(&self, f: Finding) -> Finding {
        let f = f.evidence("origin", self.m.origin);
        match &self.m.fstab {
            Some((line, _)) => f.evidence("fstab_line", line),
            None => f,
        }
    }

    fn check(&self, out: &mut Vec<Finding>) {
        if self.m.origin == Origin::Expectations {
            out.push(self.declared());
        }
        let device = self.device(out);
        let Some(table) = self.table else {
            return;
        };
        let Some(vis) = visibility(table, &self.m.path) else {
            out.push(
                self.skip(
                    "mounted",
                    format!("the mount table has no root mount, so {} cannot be resolved", self.m.path),
                ),
            );
            return;
        };
        if vis.at_path {
            self.mounted(&vis, &device, out);
        } else {
            self.not_mounted(&vis, &device, out);
        }
    }
}
