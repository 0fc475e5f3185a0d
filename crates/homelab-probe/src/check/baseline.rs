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
        return vec![
            Finding::fail(
                P,
                "baseline_file",
                &b.file,
                format!("the baseline {} {why}, so owners and modes cannot be checked against it", b.file),
                Remedy::manual(format!(
                    "take it on the old host before the copy (homelab-verify baseline take ROOT... -o {}) and copy it here, or fix `file` in the [[baseline]] section",
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
    opts.map = match live_map(host, &file, b) {
        Ok(m) => m,
        Err(e) => return vec![cannot(b, &e.to_string())],
    };
    match baseline::compare::check_at(host, &opts) {
        Ok(r) => decide(&b.file, &r),
        Err(e) => vec![cannot(b, &e.to_string())],
    }
}

/// The section's `map`, and in a sysroot each root resolved inside it: a map that names every
/// root of the baseline once (`mapped_roots` checks every map applies to some root).
fn live_map(
    host: &Host,
    file: &std::path::Path,
    b: &BaselineExpectation,
) -> Result<Vec<(PathBuf, PathBuf)>, baseline::BaselineError> {
    let user = b.map_pairs();
    if host.is_live() {
        return Ok(user);
    }
    let header = baseline::open(file)?.header().clone();
    let mapped = baseline::mapped_roots(&header, file, &user)?;
    let mut out = Vec::new();
    for (recorded, now) in header.roots.iter().zip(mapped) {
        let recorded = crate::scan::escape::unescape_path(recorded).unwrap_or_else(|_| PathBuf::from(recorded));
        out.push((recorded, host.resolve(&now, true)));
    }
    Ok(out)
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
    }
}
