//! The baseline part of the drift probe: for each `[[baseline]]` section, a bounded check of
//! the tree against the baseline file (see [`crate::baseline`]) and a decision: every
//! recorded entry has its owner, mode and type (pass), some differ or are missing (fail, with
//! counts per change, samples and the restore command), some paths could not be examined or
//! the check hit its limit (warn: the answer covers only part of the tree).
//!
//! In a sysroot, the file and the baseline's roots are resolved inside it.

use std::path::PathBuf;
use std::time::Duration;

use crate::baseline::{self, BaselineReport, CheckOptions};
use crate::host::Host;
use crate::model::expectations::{BaselineExpectation, DriftExpectation, Expectations};
use crate::model::finding::{Finding, Probe, Remedy};
use crate::scan::escape::escape_path;

const P: Probe = Probe::Drift;

/// Sample paths kept per change in a finding's evidence.
const SAMPLES: usize = 5;

/// One check per `[[baseline]]` section.
pub fn check(host: &Host, exp: &Expectations) -> Vec<Finding> {
    exp.baseline.iter().flat_map(|b| check_one(host, b)).collect()
}

fn check_one(host: &Host, b: &BaselineExpectation) -> Vec<Finding> {
    let file = host.resolve(&b.file, true);
    if !file.is_file() {
        let why = if host.exists(&b.file) { "is not a regular file" } else { "does not exist" };
        // Most often the file was not copied yet: `plan` writes the section before the new host
        // has it, and MIGRATION.md names the file to copy and its checksum.
        return vec![
            Finding::fail(
                P,
                "baseline_file",
                &b.file,
                format!("the baseline {} {why}, so owners and modes cannot be checked against it", b.file),
                Remedy::manual(format!(
                    "copy the baseline taken on the old host here (the plan's MIGRATION.md names it, with its SHA-256 to compare), or take one there (homelab-verify baseline take ROOT... -o {}) and copy it; or fix `file` in the [[baseline]] section",
                    b.file
                )),
            )
            .evidence("path", escape_path(&file)),
        ];
    }
    let mut opts = CheckOptions::new(file.clone());
    opts.by_name = b.by_name;
    opts.samples = SAMPLES;
    opts.max_entries = b.max_entries;
    opts.max_duration = Some(Duration::from_secs(b.max_seconds.unwrap_or(DriftExpectation::DEFAULT_MAX_SECONDS)));
    let roots = match roots(host, &file, b) {
        Ok(r) => r,
        Err(e) => return vec![cannot(b, &e.to_string())],
    };
    let absent: Vec<Finding> = roots.iter().filter_map(|r| absent_root(b, r)).collect();
    if !absent.is_empty() {
        return absent;
    }
    opts.map = if host.is_live() { b.map_pairs() } else { roots.into_iter().map(|r| (r.recorded, r.real)).collect() };
    match baseline::compare::check_at(host, &opts) {
        Ok(r) => decide(&b.file, &r),
        Err(e) => vec![cannot(b, &e.to_string())],
    }
}

/// A root of the baseline as this check walks it.
struct Root {
    /// As the baseline records it.
    recorded: PathBuf,
    /// On this host, after the section's `map`.
    host: PathBuf,
    /// Where that is here (inside a sysroot, resolved in it).
    real: PathBuf,
}

/// The baseline's roots, with the section's `map` applied (`mapped_roots` checks every map
/// applies to some root) and, in a sysroot, resolved inside it.
fn roots(host: &Host, file: &std::path::Path, b: &BaselineExpectation) -> Result<Vec<Root>, baseline::BaselineError> {
    let header = baseline::open(file)?.header().clone();
    let mapped = baseline::mapped_roots(&header, file, &b.map_pairs())?;
    Ok(header
        .roots
        .iter()
        .zip(mapped)
        .map(|(recorded, now)| Root {
            recorded: crate::scan::escape::unescape_path(recorded).unwrap_or_else(|_| PathBuf::from(recorded)),
            real: host.resolve(&now, true),
            host: now,
        })
        .collect())
}

/// A root that is not a directory here: the data was not copied (or its disk is not mounted)
/// yet, or it lives elsewhere now. Not a reason to take the baseline again.
fn absent_root(b: &BaselineExpectation, r: &Root) -> Option<Finding> {
    if r.real.is_dir() {
        return None;
    }
    let shown = escape_path(&r.host);
    let why = if r.real.symlink_metadata().is_ok() { "is not a directory" } else { "does not exist" };
    Some(
        Finding::fail(
            P,
            "baseline_root",
            &shown,
            format!(
                "{shown}, a root of the baseline {}, {why}, so the owners and modes under it cannot be checked",
                b.file
            ),
            Remedy::manual(format!(
                "copy the data to {shown} (then `homelab-verify baseline restore {}` shows the owners the copy lost) or mount the disk that holds it; if it now lives elsewhere, add map = [\"{}=NEW\"] to the [[baseline]] section",
                sh_quote(&b.file),
                escape_path(&r.recorded)
            )),
        )
        .evidence("baseline", b.file.as_str())
        .evidence("path", escape_path(&r.real)),
    )
}

fn cannot(b: &BaselineExpectation, why: &str) -> Finding {
    Finding::fail(
        P,
        "baseline_file",
        &b.file,
        format!("cannot check against the baseline {}: {why}", b.file),
        Remedy::manual(format!(
            "take the baseline again on a good host (homelab-verify baseline take ROOT... -o {}), or fix the [[baseline]] section",
            b.file
        )),
    )
}

/// `'...'` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@%".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The findings of one checked baseline (separate from checking, so any report can be decided).
pub fn decide(file: &str, r: &BaselineReport) -> Vec<Finding> {
    let mut out = Vec::new();
    let scope = if r.complete() { "recorded" } else { "checked so far" };
    let roots: Vec<&str> = r.roots.iter().map(|p| p.live.as_str()).collect();
    let differ = r.owner + r.mode + r.kind + r.missing;
    if differ > 0 {
        let top: Vec<String> = r
            .changes
            .iter()
            .filter(|c| c.change != baseline::compare::Change::New)
            .take(3)
            .map(|c| {
                let under = if c.under.is_empty() { c.root.clone() } else { format!("{}/{}", c.root, c.under) };
                match c.change {
                    baseline::compare::Change::Missing => format!("{} missing under {under}", c.count),
                    _ => format!("{} {} -> {} under {under}", c.count, c.from, c.to),
                }
            })
            .collect();
        let restore = format!(
            "homelab-verify baseline restore {}   # the plan; then add --apply (journaled; undo: homelab-verify baseline undo JOURNAL)",
            sh_quote(file)
        );
        out.push(
            Finding::fail(
                P,
                "baseline_owner",
                file,
                format!(
                    "{differ} {} under {} from the baseline ({} owner, {} mode, {} type, {} missing): {}",
                    if differ == 1 { "entry differs" } else { "entries differ" },
                    roots.join(", "),
                    r.owner,
                    r.mode,
                    r.kind,
                    r.missing,
                    top.join("; ")
                ),
                Remedy::command(restore),
            )
            .evidence("owner", r.owner)
            .evidence("mode", r.mode)
            .evidence("type", r.kind)
            .evidence("missing", r.missing)
            .evidence("new", r.new)
            .evidence("changes", r.changes.iter().take(10).collect::<Vec<_>>()),
        );
    } else {
        out.push(
            Finding::pass(
                P,
                "baseline_owner",
                file,
                format!(
                    "all {} entries {scope} under {} have the owner, mode and type of the baseline ({} new)",
                    r.same,
                    roots.join(", "),
                    r.new
                ),
            )
            .evidence("same", r.same)
            .evidence("new", r.new),
        );
    }
    if r.errors > 0 || r.unchecked > 0 {
        out.push(
            Finding::warn(
                P,
                "baseline_errors",
                file,
                format!(
                    "{} paths could not be examined and {} recorded entries lie under them: they are unchecked",
                    r.errors, r.unchecked
                ),
            )
            .evidence("errors", &r.error_samples)
            .remedy(Remedy::manual(
                "run the check as root (the NixOS unit does), or look at why these paths are unreadable",
            )),
        );
    }
    if let Some(why) = r.stats.stopped {
        let limit = baseline::compare::limit_name(why);
        out.push(
            Finding::warn(
                P,
                "baseline_bounded",
                file,
                format!(
                    "the check stopped at its {limit} limit after {} entries in {:.0} s: the rest is unchecked",
                    r.stats.entries, r.elapsed_seconds
                ),
            )
            .evidence("limit", limit)
            .remedy(Remedy::command(format!(
                "homelab-verify baseline check {}   # a full check, no limit",
                sh_quote(file)
            ))),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::finding::Status;
    use std::path::Path;

    fn parse(text: &str) -> Result<Expectations, crate::ExpectationsError> {
        Expectations::from_toml_str(text, Some(Path::new("homelab-probe.toml")))
    }

    #[test]
    fn sections_parse_and_bad_ones_name_the_line() {
        let e = parse(
            "version = 1\n[[baseline]]\nfile = \"/var/lib/b.baseline\"\nmap = [\"/srv=/mnt/srv\"]\nby_name = true\nmax_seconds = 5\n",
        )
        .unwrap();
        assert_eq!(e.baseline[0].map_pairs(), vec![(PathBuf::from("/srv"), PathBuf::from("/mnt/srv"))]);
        let err = |t: &str| parse(t).unwrap_err().to_string();
        assert!(err("version = 1\n[[baseline]]\nfile = \"b\"\n").contains("homelab-probe.toml:3:"), "absolute");
        assert!(err("version = 1\n[[baseline]]\nfile = \"/b\"\nmap = [\"/a\"]\n").contains("OLD=NEW"));
        assert!(err("version = 1\n[[baseline]]\nfile = \"/b\"\nroots = []\n").contains("unknown field"));
    }

    #[test]
    fn a_missing_baseline_file_fails_with_the_take_command() {
        let e = parse("version = 1\n[[baseline]]\nfile = \"/nonexistent/b.baseline\"\n").unwrap();
        let f = check(&Host::live(), &e);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].status, Status::Fail);
        assert!(f[0].message.contains("does not exist"), "{}", f[0].message);
        let remedy = &f[0].remedy.as_ref().unwrap().text;
        assert!(remedy.contains("copy the baseline taken on the old host here"), "{remedy}");
    }

    #[test]
    fn a_root_that_is_not_here_yet_fails_as_a_missing_root_not_a_bad_baseline() {
        let t = tempfile::tempdir().unwrap();
        let root = t.path().join("appdata");
        std::fs::create_dir_all(root.join("db")).unwrap();
        std::fs::write(root.join("db/PG_VERSION"), "16\n").unwrap();
        let file = t.path().join("owners.baseline");
        baseline::take(&baseline::TakeOptions::new(vec![root.clone()]), &file).unwrap();
        let section = |extra: &str| {
            parse(&format!(
                "version = 1\n[[baseline]]\nfile = {}\n{extra}",
                toml::Value::String(file.display().to_string())
            ))
            .unwrap()
        };
        let f = check(&Host::live(), &section(""));
        assert_eq!((f[0].check.as_str(), f[0].status), ("baseline_owner", Status::Pass), "{f:#?}");

        // The data is not copied yet (or lives elsewhere): named as such, with the map to add.
        let moved = t.path().join("moved");
        std::fs::rename(&root, &moved).unwrap();
        let f = check(&Host::live(), &section(""));
        assert_eq!(f.len(), 1, "{f:#?}");
        assert_eq!((f[0].check.as_str(), f[0].status), ("baseline_root", Status::Fail), "{f:#?}");
        assert_eq!(f[0].subject, root.display().to_string());
        let remedy = &f[0].remedy.as_ref().unwrap().text;
        assert!(remedy.contains(&format!("map = [\"{}=NEW\"]", root.display())), "{remedy}");
        assert!(!remedy.contains("take the baseline again"), "{remedy}");

        // Mapped to where it is now, it is checked there; mapped to nowhere, that is named.
        let to = |p: &std::path::Path| {
            format!("map = [{}]\n", toml::Value::String(format!("{}={}", root.display(), p.display())))
        };
        let f = check(&Host::live(), &section(&to(&moved)));
        assert_eq!((f[0].check.as_str(), f[0].status), ("baseline_owner", Status::Pass), "{f:#?}");
        let nowhere = t.path().join("nowhere");
        let f = check(&Host::live(), &section(&to(&nowhere)));
        assert_eq!(
            (f[0].check.as_str(), f[0].subject.as_str()),
            ("baseline_root", nowhere.to_str().unwrap()),
            "{f:#?}"
        );
    }
}
