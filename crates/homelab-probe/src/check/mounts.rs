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

use std::collections::BTreeSet;
use std::path::Path;

use serde::Serialize;

use crate::host::blockdev::{BlockDevice, BlockDevices};
use crate::host::mounts::{DirSample, mount_table};
use crate::host::{Host, HostError};
use crate::model::expectations::Expectations;
use crate::model::finding::{Finding, Probe, Remedy, Status};
use crate::model::mounts::MountExpectation;
use crate::model::source::{Source, encode_udev_name};
use crate::sources::Parsed;
use crate::sources::fstab::{self, FSTAB, FstabEntry};
use crate::sources::mountinfo::{MountInfo, SELF_MOUNTINFO, Visibility, visibility};
use crate::{nix_expr, shell, systemd};

const P: Probe = Probe::Mounts;

/// How many entries of a bare directory are read at most (the count is "at least" beyond).
pub const SAMPLE_LIMIT: usize = 10_000;
/// How many names of a bare directory a finding shows.
pub const SAMPLE_NAMES: usize = 5;

/// Options that only userspace (mount(8), systemd) reads: they never show in the mount table.
const USERSPACE_OPTIONS: &[&str] =
    &["defaults", "auto", "noauto", "nofail", "user", "users", "nouser", "owner", "group", "_netdev", "bind", "rbind"];

fn is_userspace_option(o: &str) -> bool {
    USERSPACE_OPTIONS.contains(&o) || o.starts_with("x-") || o.starts_with("comment=")
}

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

/// The device check of a swap or `noauto` entry: absent is a warning, as in `findmnt --verify`.
fn device_only(host: &Host, facts: &MountFacts, line: usize, e: &FstabEntry) -> Option<Finding> {
    let spec = shown_source(&e.source, &e.spec);
    let (check, subject) =
        if e.is_swap() { ("swap_device", format!("swap {spec}")) } else { ("mount_device", normalise(&e.target)) };
    let what = if e.is_swap() { "swap" } else { "noauto entry" };
    let f = if e.source.is_block_device() {
        match facts.devices.find(host, &e.source) {
            Some(d) => Finding::pass(P, check, subject, format!("{spec} is {}", d.describe())),
            None if !has_identity(&facts.devices) && e.source.tag().is_some() => Finding::skip(
                P,
                check,
                subject,
                format!(
                    "no /dev/disk/by-* links and no udev database on this host, so whether {spec} exists cannot be told"
                ),
            ),
            None => Finding::warn(P, check, subject, format!("{spec} ({what}, {FSTAB}:{line}) does not exist"))
                .remedy(missing_device_remedy(e.spec.as_str(), &normalise(&e.target), e.is_swap())),
        }
    } else if e.is_swap() && e.spec.starts_with('/') {
        if host.exists(&e.spec) {
            Finding::pass(P, check, subject, format!("swap file {} exists", e.spec))
        } else {
            Finding::warn(P, check, subject, format!("swap file {} ({FSTAB}:{line}) does not exist", e.spec)).remedy(
                Remedy::nixos(format!(
                    "swapDevices = [ {{ device = {}; size = 8192; }} ];  # NixOS creates the file (size in MiB)",
                    nix_expr::string(&e.spec).unwrap_or_default()
                )),
            )
        }
    } else {
        return None;
    };
    Some(f.evidence("fstab_line", line))
}

fn has_identity(devs: &BlockDevices) -> bool {
    devs.devices.iter().any(|d| d.uuid.is_some() || d.label.is_some() || d.partuuid.is_some() || d.partlabel.is_some())
}

/// What is known about one expected mount while deciding.
struct Ctx<'a> {
    host: &'a Host,
    facts: &'a MountFacts,
    table: Option<&'a [MountInfo]>,
    m: &'a ExpectedMount,
}

/// The result of the device check.
enum Device<'a> {
    /// Not a block device (tmpfs, NFS, bind) or no source named.
    NotApplicable,
    /// Found.
    Found(&'a BlockDevice),
    /// Not found.
    Missing,
    /// Cannot be told (no identity on this host).
    Unknown,
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

    /// `mount_declared`: an expected mount has an fstab entry naming the same device.
    fn declared(&self) -> Finding {
        let m = self.m;
        match &m.fstab {
            None => self
                .warn(
                    "mount_declared",
                    format!(
                        "{} is not in {FSTAB}, so nothing mounts it at boot (unless a systemd mount unit or ZFS does)",
                        m.path
                    ),
                )
                .remedy(self.nixos_remedy(None)),
            Some((line, e)) => {
                let same = match (&m.source, &e.source) {
                    (Some(want), have) => same_source(self.host, &self.facts.devices, want, have),
                    (None, _) => Some(true),
                };
                if same.is_none() {
                    self.skip("mount_declared",
                        format!(
                            "declared in {FSTAB}:{line} as {}; whether that is {} cannot be told while neither is present",
                            shown_source(&e.source, &e.spec),
                            m.shown()
                        ),
                    )
                } else if same == Some(true) {
                    self.pass(
                        "mount_declared",
                        format!("declared in {FSTAB}:{line}: {} {} {}", e.spec, e.fstype, join_options(&e.options)),
                    )
                } else {
                    self.fail(
                        "mount_declared",
                        format!(
                            "{FSTAB}:{line} mounts {} at {}, but {} is expected there",
                            e.spec,
                            m.path,
                            m.spec.as_deref().unwrap_or("another device")
                        ),
                        self.nixos_remedy(None),
                    )
                    .evidence("fstab_spec", &e.spec)
                }
            }
        }
    }

    /// `mount_device` (block devices) or `bind_source` (bind mounts).
    fn device(&self, out: &mut Vec<Finding>) -> Device<'a> {
        let Some(src) = &self.m.source else { return Device::NotApplicable };
        let spec = self.m.shown();
        let spec = spec.as_str();
        if self.m.is_bind() {
            if let Source::Path(p) = src {
                out.push(if self.host.exists(p) {
                    self.pass("bind_source", format!("bind source {p} exists"))
                } else {
                    self.fail("bind_source", format!("bind source {p} does not exist, so the bind mount has nothing to show"), Remedy::manual(format!("restore {p} (from the old host or a backup), or point the bind mount at where the data lives now")))
                });
            }
            return Device::NotApplicable;
        }
        if !src.is_block_device() {
            return Device::NotApplicable;
        }
        match self.facts.devices.find(self.host, src) {
            Some(d) => {
                out.push(self.pass("mount_device", format!("{spec} is {}", d.describe())).evidence("device", d));
                Device::Found(d)
            }
            None if !has_identity(&self.facts.devices) && src.tag().is_some() => {
                out.push(self.skip("mount_device",
                    format!("no /dev/disk/by-* links and no udev database on this host, so whether {spec} exists cannot be told"),
                ));
                Device::Unknown
            }
            None => {
                // UUID=ABCD-1234 for a disk that has abcd-1234 (or the other way round): mount(8),
                // udev's /dev/disk/by-* links and this probe compare the value exactly.
                let twin = src.tag().and_then(|(kind, want)| {
                    self.facts.devices.devices.iter().find_map(|d| {
                        let have = d.tag(kind)?;
                        (have != want && have.eq_ignore_ascii_case(&want)).then(|| (d, kind, have.to_owned()))
                    })
                });
                if let Some((d, kind, have)) = twin {
                    let exact = format!("{}={have}", kind.name());
                    out.push(
                        self.fail_unless_optional("mount_device",
                            format!(
                                "no block device has {spec}, but {} has {exact}: the value differs only in letter case, and mount(8), udev's /dev/disk/by-* links and this check compare it exactly",
                                d.devnode
                            ), Remedy::manual(format!("write {exact} exactly as `lsblk -f` shows it, in the expectations and in fileSystems/fstab")))
                        .evidence("device", d),
                    );
                    return Device::Missing;
                }
                let known: Vec<String> = self
                    .facts
                    .devices
                    .devices
                    .iter()
                    .filter(|d| d.uuid.is_some() || d.label.is_some())
                    .map(BlockDevice::describe)
                    .collect();
                out.push(
                    self.fail_unless_optional("mount_device",
                        format!("no block device has {spec}: the disk is missing, not detected yet, or was reformatted (a new filesystem has a new UUID)"), missing_device_remedy(spec, &self.m.path, false))
                    .evidence("known_devices", known),
                );
                Device::Missing
            }
        }
    }

    /// Findings when something is mounted at the path itself.
    fn mounted(&self, vis: &Visibility<'_>, device: &Device<'_>, out: &mut Vec<Finding>) {
        let top = vis.holder;
        let path = &self.m.path;
        let actual = self.facts.devices.of_mount(self.host, top.major, top.minor, top.source.as_deref());
        let shown = describe_mount(top, actual);
        if top.fstype == "autofs" {
            // x-systemd.automount: systemd's autofs trigger sits there until the first access
            // mounts the filesystem on top of it. The probe never triggers it (reading must
            // not mount disks), so the filesystem itself cannot be checked yet.
            out.push(
                self.pass(
                    "mounted",
                    format!(
                        "{path} is an automount point ({}): the filesystem is mounted on first access",
                        top.source.as_deref().unwrap_or("autofs")
                    ),
                )
                .evidence("mount", top),
            );
            let why = format!("not mounted until first access (automount); `ls {}` mounts it", shell::quote(path));
            for check in ["mount_source", "mount_fstype", "mount_options"] {
                out.push(self.skip(check, why.clone()));
            }
            out.push(self.covered_when_mounted(vis, device));
            return;
        }
        out.push(
            self.pass("mounted", format!("{path} is mounted: {shown}"))
                .evidence("mount", top)
                .evidence("device", actual),
        );
        // mount_source: when the expected filesystem is underneath, taking the top one off
        // is the whole fix.
        let below = vis.hidden.iter().any(|h| h.fstype != "autofs" && self.is_expected(h, device));
        let wrong_source = match self.source_finding(top, actual, device) {
            Some(f) if f.status == Status::Fail && below => {
                out.push(f.remedy(self.unstack_remedy(top)));
                true
            }
            Some(f) => {
                let wrong = f.status == Status::Fail;
                out.push(f);
                wrong
            }
            None => false,
        };
        // mount_fstype
        if !self.m.fstypes.is_empty() {
            let want = self.m.fstypes.join(" or ");
            out.push(if self.m.fstypes.contains(&top.fstype) {
                self.pass("mount_fstype", format!("{path} is {}", top.fstype))
            } else {
                self.fail("mount_fstype", format!("{path} is {}, expected {want}", top.fstype), if wrong_source && below { self.unstack_remedy(top) } else if wrong_source { self.remount_remedy() } else { Remedy::manual(format!(
                        "check with `lsblk -f` that the right disk is mounted at {path}; if the disk was reformatted as {}, set fileSystems.{}.fsType = {};",
                        top.fstype,
                        nix_expr::string(path).unwrap_or_default(),
                        nix_expr::string(&top.fstype).unwrap_or_default()
                    )) })
                    .evidence("fstype", &top.fstype)
                    .evidence("expected_fstype", &self.m.fstypes)
            });
        }
        out.push(self.options_finding(top, self_bind_under(vis)));
        out.push(self.covered_when_mounted(vis, device));
    }

    fn source_finding(&self, top: &MountInfo, actual: Option<&BlockDevice>, device: &Device<'_>) -> Option<Finding> {
        let src = self.m.source.as_ref()?;
        let raw_spec = self.m.spec.as_deref().unwrap_or_default();
        let spec = self.m.shown();
        let spec = spec.as_str();
        let path = &self.m.path;
        let shown = describe_mount(top, actual);
        if self.m.is_bind() {
            let Source::Path(p) = src else { return None };
            let table = self.table?;
            let ok = bind_matches(table, top, p);
            return Some(if ok {
                self.pass("mount_source", format!("{path} shows {p} (bind mount)"))
            } else {
                self.fail("mount_source", format!("{path} is {shown}, not a bind mount of {p}"), self.remount_remedy())
            });
        }
        if !src.is_block_device() {
            let have = top.source.as_deref().unwrap_or("");
            return Some(if have == raw_spec {
                self.pass("mount_source", format!("{path} is mounted from {raw_spec}"))
            } else {
                self.warn("mount_source", format!("{path} is mounted from {have:?}, {raw_spec:?} expected"))
                    .remedy(self.remount_remedy())
            });
        }
        let matches = match (actual, device) {
            (Some(a), Device::Found(want)) => a.name == want.name,
            (Some(a), _) => match src.tag() {
                Some((k, v)) => a.tag(k) == Some(v.as_str()),
                None => false,
            },
            (None, Device::Found(want)) => top.source.as_deref() == Some(want.devnode.as_str()),
            (None, _) => {
                return Some(
                    self.skip("mount_source",
                        format!("{path} is {shown}, and this host gives no identity for it, so whether it is {spec} cannot be told"),
                    )
                    .evidence("mount", top),
                );
            }
        };
        Some(if matches {
            self.pass("mount_source", format!("{path} is {spec}"))
        } else {
            let expected_there = match device {
                Device::Found(d) => format!(" ({}{})", d.devnode, self.mounted_elsewhere(d)),
                Device::Missing => " (not present)".to_owned(),
                _ => String::new(),
            };
            self.fail(
                "mount_source",
                format!("{path} is {shown}, expected {spec}{expected_there}"),
                self.remount_remedy(),
            )
            .evidence("device", actual)
            .evidence("expected", spec)
        })
    }

    /// ` and mounted at /mnt/x` when device `d` is mounted somewhere visible.
    fn mounted_elsewhere(&self, d: &BlockDevice) -> String {
        let Some(table) = self.table else { return String::new() };
        let at: Vec<&str> = table
            .iter()
            .filter(|t| {
                d.devnum.is_some_and(|n| n.major == t.major && n.minor == t.minor)
                    || t.source.as_deref() == Some(d.devnode.as_str())
            })
            .map(|t| t.mount_point.as_str())
            .collect();
        if at.is_empty() { ", not mounted".into() } else { format!(", mounted at {}", at.join(", ")) }
    }

    /// `mount_options`. With a bind of the mount onto itself stacked on top (`self_bind`, the
    /// mount underneath), the declared mount's own options are compared, and a read-only bind
    /// on a read-write mount is reported as such: intended for `/nix/store` (NixOS makes the
    /// store read-only that way), a warning anywhere else (nothing can write there).
    fn options_finding(&self, top: &MountInfo, self_bind: Option<&MountInfo>) -> Finding {
        let path = &self.m.path;
        if let Some(under) = self_bind.filter(|u| top.read_only() && !u.read_only() && !self.m.read_only) {
            let f = self.options_finding(under, None);
            if f.status != Status::Pass {
                return f;
            }
            let f = if path == NIX_STORE {
                self.pass("mount_options",
                    format!("{path} is rw, and read-only through a bind of itself on top, as NixOS makes the store read-only"),
                )
            } else {
                self.warn("mount_options",
                    format!("{path} is mounted rw, but a read-only bind of itself is mounted on top: nothing can write there"),
                )
                .remedy(Remedy::command(format!("umount {}  # takes the read-only bind off; find what made it first", shell::quote(path))))
            };
            return f.evidence("mount_options", &under.mount_options).evidence("bind_options", &top.mount_options);
        }
        let state = if top.read_only() { "ro" } else { "rw" };
        let want = if self.m.read_only { "ro" } else { "rw" };
        let (checkable, skipped): (Vec<&String>, Vec<&String>) =
            self.m.options.iter().partition(|o| !is_userspace_option(o));
        let missing: Vec<&str> = checkable.iter().filter(|o| !option_present(top, o)).map(|o| o.as_str()).collect();
        let f = if state != want {
            let why = if top.super_options.iter().any(|o| o == "ro") && !self.m.read_only {
                " (the filesystem itself is read-only: remounted so, or switched by the kernel after a filesystem error when errors=remount-ro is set)"
            } else {
                ""
            };
            let fstab_says_ro = self.m.fstab.as_ref().is_some_and(|(_, e)| e.read_only());
            let remedy = if fstab_says_ro && !self.m.read_only {
                self.nixos_remedy(Some(false))
            } else {
                Remedy::command(format!(
                    "mount -o remount,{want} {}{}",
                    shell::quote(path),
                    if want == "rw" && !why.is_empty() {
                        "  # first check `dmesg` for filesystem errors and fsck the unmounted device"
                    } else {
                        ""
                    }
                ))
            };
            self.fail("mount_options", format!("{path} is mounted {state}, expected {want}{why}"), remedy)
        } else if !missing.is_empty() {
            self.fail(
                "mount_options",
                format!("{path} is {state} but lacks {}", missing.join(", ")),
                self.nixos_remedy(None),
            )
            .evidence("missing", &missing)
        } else {
            let extra = if checkable.is_empty() {
                String::new()
            } else {
                format!(", with {}", checkable.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", "))
            };
            self.pass("mount_options", format!("{path} is {state}{extra}"))
        };
        let f = f.evidence("mount_options", &top.mount_options).evidence("super_options", &top.super_options);
        if skipped.is_empty() { f } else { f.evidence("not_checkable", skipped) }
    }

    /// `mount_covered` when the path is a mount point: something stacked on top?
    fn covered_when_mounted(&self, vis: &Visibility<'_>, device: &Device<'_>) -> Finding {
        let path = &self.m.path;
        // An automount trigger under the filesystem it mounted is how automounts look.
        let hidden: Vec<&MountInfo> = vis.hidden.iter().copied().filter(|h| h.fstype != "autofs").collect();
        let vis = &Visibility { holder: vis.holder, at_path: vis.at_path, hidden };
        if vis.hidden.is_empty() {
            return self.pass("mount_covered", format!("nothing is mounted over {path}"));
        }
        if vis.hidden.len() == 1 && self_bind_under(vis).is_some() {
            return self.pass(
                "mount_covered",
                format!(
                    "only a bind of {path} onto itself is mounted over it (same filesystem and root: nothing is hidden)"
                ),
            );
        }
        let top = vis.holder;
        let top_dev = self.facts.devices.of_mount(self.host, top.major, top.minor, top.source.as_deref());
        let expected_below = vis.hidden.iter().find(|h| self.is_expected(h, device));
        let under: Vec<String> = vis
            .hidden
            .iter()
            .map(|h| describe_mount(h, self.facts.devices.of_mount(self.host, h.major, h.minor, h.source.as_deref())))
            .collect();
        match expected_below {
            Some(h) if !self.is_expected(top, device) => self.fail("mount_covered",
                    format!(
                        "{} is mounted at {path} but hidden: {} was mounted on top of it later",
                        describe_mount(h, self.facts.devices.of_mount(self.host, h.major, h.minor, h.source.as_deref())),
                        describe_mount(top, top_dev)
                    ), self.unstack_remedy(top))
                .evidence("hidden", &vis.hidden)
                .evidence("on_top", top),
            _ => self
                .warn("mount_covered", format!("{path} has more mounts underneath the visible one: {}", under.join("; ")))
                .evidence("hidden", &vis.hidden)
                .remedy(Remedy::manual(format!(
                    "look at `findmnt {}`: the same mount point was mounted {} times; unmount the extra ones if they are not intended",
                    shell::quote(path),
                    vis.hidden.len() + 1
                ))),
        }
    }

    /// Whether mount `t` is the expected device.
    fn is_expected(&self, t: &MountInfo, device: &Device<'_>) -> bool {
        let actual = self.facts.devices.of_mount(self.host, t.major, t.minor, t.source.as_deref());
        match (actual, device, self.m.source.as_ref()) {
            (Some(a), Device::Found(d), _) => a.name == d.name,
            (Some(a), _, Some(src)) => src.tag().is_some_and(|(k, v)| a.tag(k) == Some(v.as_str())),
            (_, _, Some(src)) => t.source.as_deref() == self.m.spec.as_deref() && !src.is_block_device(),
            (_, _, None) => true,
        }
    }

    /// Findings when the path is not a mount point (or its mount is hidden by a parent).
    fn not_mounted(&self, vis: &Visibility<'_>, device: &Device<'_>, out: &mut Vec<Finding>) {
        let path = &self.m.path;
        let holder = vis.holder;
        let on = format!(
            "the filesystem of {} ({})",
            holder.mount_point,
            holder.source.as_deref().unwrap_or(&holder.fstype)
        );
        // Data in the bare directory first: the `mounted` remedy depends on it.
        let sample = self.host.sample_dir(path, SAMPLE_LIMIT, SAMPLE_NAMES);
        let shadowed = matches!(&sample, Ok(s) if s.count > 0);
        if !vis.hidden.is_empty() {
            let h = vis.hidden[vis.hidden.len() - 1];
            let hd = describe_mount(h, self.facts.devices.of_mount(self.host, h.major, h.minor, h.source.as_deref()));
            let cover = holder.source.as_deref().unwrap_or(&holder.fstype);
            let remedy = Remedy::manual(format!(
                "`umount {}` (the later mount that hides it) shows {path} again; to keep the order at boot, declare {} in fileSystems too, so systemd mounts it before {path}",
                shell::quote(&holder.mount_point),
                holder.mount_point
            ));
            out.push(
                self.fail(
                    "mounted",
                    format!("{path} is mounted but hidden: {cover} was mounted on {} after it", holder.mount_point),
                    remedy.clone(),
                )
                .evidence("hidden", &vis.hidden)
                .evidence("covered_by", holder),
            );
            out.push(
                self.fail("mount_covered",
                    format!("{hd} is mounted at {path}, but {cover} was mounted on {} after it, so {path} is now a directory on {cover}", holder.mount_point), remedy)
                .evidence("covered_by", holder),
            );
        } else {
            let mut msg = format!("{path} is not mounted");
            if matches!(device, Device::Missing) {
                msg.push_str(&format!(" and {} is not present", self.m.shown()));
            }
            if self.m.fstab.as_ref().is_some_and(|(_, e)| e.is_nofail()) {
                msg.push_str(" (nofail let the boot go on without it)");
            }
            let unit = systemd::mount_unit(path);
            let mut steps = Vec::new();
            if matches!(device, Device::Missing) {
                steps.push(format!("connect the disk with {}", self.m.shown()));
            }
            if shadowed {
                steps.push("move aside what was written into the bare directory (see shadowed_data)".to_owned());
            }
            let remedy = if !self.m.declared() {
                self.nixos_remedy(None)
            } else if steps.is_empty() {
                Remedy::command(format!("systemctl start {unit}  # or: mount {}", shell::quote(path)))
            } else {
                steps.push(format!("`systemctl start {unit}`"));
                Remedy::manual(steps.join(", then "))
            };
            out.push(self.fail_unless_optional("mounted", msg, remedy).evidence("directory_on", holder));
        }
        out.push(self.shadow_finding(sample, &on));
    }

    /// `shadowed_data`: what lies in the bare directory while nothing is mounted there.
    fn shadow_finding(&self, sample: Result<DirSample, HostError>, on: &str) -> Finding {
        let path = &self.m.path;
        match sample {
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => {
                self.pass("shadowed_data", format!("{path} does not exist: nothing was written in its place"))
            }
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotADirectory) => self.fail(
                "shadowed_data",
                format!("{path} is a file, not a directory: nothing can be mounted there"),
                Remedy::manual(format!(
                    "move the file aside (nothing is deleted): mv -T {q} {q2} && mkdir {q}",
                    q = shell::quote(path),
                    q2 = shell::quote(&format!("{path}.shadowed"))
                )),
            ),
            Err(e) => self.skip("shadowed_data", format!("cannot list {path}: {e}")),
            Ok(s) if s.count == 0 => self.pass(
                "shadowed_data",
                format!("{path} is an empty directory on {on}: nothing was written in its place"),
            ),
            Ok(s) => {
                let count = if s.truncated { format!("at least {}", s.count) } else { s.count.to_string() };
                let names: Vec<String> = s.names.iter().map(|n| n.to_string_lossy().into_owned()).collect();
                let more = if s.count > names.len() { ", ..." } else { "" };
                let noun = if s.count == 1 && !s.truncated { "entry" } else { "entries" };
                self.fail("shadowed_data",
                    format!(
                        "{path} is not mounted, but the bare directory on {on} holds {count} {noun} ({}{more}): whatever wrote there wrote to the wrong disk, and mounting the disk will hide it",
                        names.join(", ")
                    ), self.shadow_remedy())
                .evidence("entries", s.count)
                .evidence("entries_is_lower_bound", s.truncated)
                .evidence("names", &names)
            }
        }
    }

    fn shadow_remedy(&self) -> Remedy {
        let path = &self.m.path;
        let q = shell::quote(path);
        let aside = shell::quote(&format!("{path}.shadowed"));
        let unit = systemd::mount_unit(path);
        Remedy::manual(format!(
            "stop what writes to {path} (e.g. `docker compose stop` in the stacks that use it), then move the files aside (nothing is deleted) and mount:\n\
             mv -T {q} {aside} && mkdir {q} && systemctl start {unit}\n\
             review {path}.shadowed and copy what belongs on the disk: rsync -a --ignore-existing {aside}/ {q}/\n\
             so it cannot happen again, let Docker start only with the disk: systemd.services.docker.unitConfig.RequiresMountsFor = [ {} ];",
            nix_expr::string(path).unwrap_or_default()
        ))
    }

    /// `umount` of the top mount of a stack, so the one underneath shows again.
    fn unstack_remedy(&self, top: &MountInfo) -> Remedy {
        Remedy::command(format!(
            "umount {}  # removes only the top mount ({}); the one underneath shows again",
            shell::quote(&self.m.path),
            top.source.as_deref().unwrap_or(&top.fstype)
        ))
    }

    /// Unmount what is there and mount the declared device; or fix the declaration first when
    /// fstab names another device than the expectation.
    fn remount_remedy(&self) -> Remedy {
        let fstab_ok = match (&self.m.fstab, &self.m.source) {
            (Some((_, e)), Some(want)) => same_source(self.host, &self.facts.devices, want, &e.source) != Some(false),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if fstab_ok {
            Remedy::command(format!(
                "umount {} && systemctl start {}",
                shell::quote(&self.m.path),
                systemd::mount_unit(&self.m.path)
            ))
        } else {
            self.nixos_remedy(None)
        }
    }

    /// `fileSystems."<path>" = { device = ...; fsType = ...; options = [ ... ]; };`, from the
    /// expectation, completed by the fstab entry. `read_only` overrides rw/ro in the options.
    fn nixos_remedy(&self, read_only: Option<bool>) -> Remedy {
        let m = self.m;
        let fstab = m.fstab.as_ref().map(|(_, e)| e);
        let device = match &m.source {
            Some(s) => nixos_device(s),
            None => fstab.map(|e| e.spec.clone()),
        };
        let fstype = m.fstypes.first().cloned().or_else(|| fstab.map(|e| e.fstype.clone()));
        let mut options: Vec<String> = fstab.map(|e| e.options.clone()).unwrap_or_default();
        for o in &m.options {
            if !options.contains(o) {
                options.push(o.clone());
            }
        }
        if m.origin == Origin::Expectations && !m.required && !options.iter().any(|o| o == "nofail") {
            options.push("nofail".into());
        }
        let ro = read_only.unwrap_or(m.read_only);
        options.retain(|o| o != "ro" && o != "rw");
        if ro {
            options.push("ro".into());
        }
        if options.len() > 1 {
            options.retain(|o| o != "defaults");
        }
        let mut lines = vec![format!("{} = {{", nix_expr::attr_path(&["fileSystems", &m.path]).unwrap_or_default())];
        if let Some(d) = device {
            lines.push(format!("  device = {};", nix_expr::string(&d).unwrap_or_default()));
        }
        if let Some(t) = fstype {
            lines.push(format!("  fsType = {};", nix_expr::string(&t).unwrap_or_default()));
        }
        if !options.is_empty() && options != ["defaults"] {
            lines.push(format!("  options = {};", nix_expr::string_list(&options).unwrap_or_default()));
        }
        lines.push("};".into());
        Remedy::nixos(lines.join("\n"))
    }
}

/// The `device` NixOS should get for a source: the udev link for tags (the link name is
/// udev-escaped, which is also what keeps a label with blanks working: NixOS writes `\040`
/// into fstab only for blanks, and the `\x20` of the link passes through unchanged).
/// The Nix store, which NixOS bind-mounts read-only onto itself at boot.
const NIX_STORE: &str = "/nix/store";

/// The mount directly under the visible one at the same path, when the visible one is a bind
/// of it onto itself (same filesystem, same root, same type): a bind like that hides nothing.
/// NixOS's stage 2 does this to `/nix/store` to make it read-only (`boot.readOnlyNixStore`),
/// which test VMs show as a read-write store in fstab with a read-only bind on top.
fn self_bind_under<'v>(vis: &Visibility<'v>) -> Option<&'v MountInfo> {
    let top = vis.holder;
    let under = vis.hidden.iter().rev().find(|h| h.mount_point == top.mount_point)?;
    (under.major == top.major && under.minor == top.minor && under.root == top.root && under.fstype == top.fstype)
        .then_some(*under)
}

fn nixos_device(s: &Source) -> Option<String> {
    match s.tag() {
        Some((k, v)) if !matches!(s, Source::Path(_)) => Some(format!("{}{}", k.dir(), encode_udev_name(&v))),
        _ => match s {
            Source::Path(p) | Source::Other(p) => Some(p.clone()),
            _ => None,
        },
    }
}

/// Whether two sources name the same device: equal tags, or both resolving to one device.
/// `None` when it cannot be told (neither is present).
fn same_source(host: &Host, devs: &BlockDevices, a: &Source, b: &Source) -> Option<bool> {
    if a == b || a.tag().is_some_and(|t| b.tag() == Some(t)) {
        return Some(true);
    }
    match (devs.find(host, a), devs.find(host, b)) {
        (Some(x), Some(y)) => Some(x.name == y.name),
        (None, None) => None,
        _ => Some(false),
    }
}

/// Whether bind mount `m` shows directory `source`: same filesystem, and its root is the
/// source's path inside that filesystem.
fn bind_matches(table: &[MountInfo], m: &MountInfo, source: &str) -> bool {
    let Some(v) = visibility(table, &normalise(source)) else { return false };
    let h = v.holder;
    let rel = normalise(source);
    let rel = rel.strip_prefix(h.mount_point.trim_end_matches('/')).unwrap_or(&rel);
    let want_root = normalise(&format!("{}/{}", h.root, rel));
    (h.major, h.minor) == (m.major, m.minor) && normalise(&m.root) == want_root
}

/// Whether kernel option `want` is on mount `m`: `key=value` exactly, a bare `key` alone or
/// with any value.
fn option_present(m: &MountInfo, want: &str) -> bool {
    if want.contains('=') {
        m.mount_options.iter().chain(&m.super_options).any(|o| o == want)
    } else {
        m.has_option(want)
    }
}

fn join_options(o: &[String]) -> String {
    if o.is_empty() { "defaults".into() } else { o.join(",") }
}

/// `/dev/sdb1 (UUID=..., ext4, rw)`.
fn describe_mount(m: &MountInfo, dev: Option<&BlockDevice>) -> String {
    let state = if m.read_only() { "ro" } else { "rw" };
    match dev {
        Some(d) => {
            let tag = d
                .uuid
                .as_ref()
                .map(|u| format!("UUID={u}, "))
                .or_else(|| d.label.as_ref().map(|l| format!("LABEL={l}, ")))
                .unwrap_or_default();
            format!("{} ({tag}{}, {state})", d.devnode, m.fstype)
        }
        None => format!("{} ({}, {state})", m.source.as_deref().unwrap_or("no source"), m.fstype),
    }
}

fn missing_device_remedy(spec: &str, path: &str, swap: bool) -> Remedy {
    let spec = shown_source(&Source::parse(spec), spec);
    let option = if swap { "swapDevices" } else { "fileSystems" };
    let attr = if swap { String::new() } else { format!(".{}.device", nix_expr::string(path).unwrap_or_default()) };
    Remedy::manual(format!(
        "connect the disk that has {spec} and check `lsblk -f`; if it was reformatted it has a new UUID: point {option}{attr} at it"
    ))
}
