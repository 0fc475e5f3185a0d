//! The drift probe: for each `[[drift]]` section, a bounded scan of its root (see
//! [`crate::drift`]) and a decision: every entry has the expected owner (pass), some do not
//! (fail, with counts per owner and per top-level directory, sample paths and the command
//! that fixes them with an undo journal), some paths could not be examined or the scan hit
//! its limit (warn: the answer covers only part of the root).
//!
//! In a sysroot, roots are resolved inside it, like every other path.

use std::path::PathBuf;
use std::time::Duration;

use crate::drift::{self, DriftOptions, DriftReport};
use crate::host::Host;
use crate::model::expectations::{DriftExpectation, Expectations};
use crate::model::finding::{Finding, Probe, Remedy};
use crate::scan::Owner;

const P: Probe = Probe::Drift;

/// Sample paths kept per owner in a finding's evidence.
const SAMPLES: usize = 5;

/// Runs the drift probe: one scan per `[[drift]]` section.
pub fn check(host: &Host, exp: &Expectations) -> Vec<Finding> {
    exp.drift.iter().flat_map(|d| check_one(host, d)).collect()
}

/// `'...'` for a POSIX shell.
fn sh_quote(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b"/._-+:,=@%".contains(&b)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

fn check_one(host: &Host, d: &DriftExpectation) -> Vec<Finding> {
    let real: PathBuf = host.resolve(&d.root, true);
    let owner = Owner { uid: d.uid, gid: d.gid };
    if !real.is_dir() {
        let why = if host.exists(&d.root) { "is not a directory" } else { "does not exist" };
        return vec![
            Finding::fail(P, "drift_root", &d.root, format!("{} {why}, so its ownership cannot be checked", d.root), Remedy::manual(format!(
                    "mount the disk that holds {} (a missing data disk makes containers write to the root disk), or fix `root` in the [[drift]] section",
                    d.root
                )))
                .evidence("path", real.display().to_string()),
        ];
    }
    let mut opts = DriftOptions::new(vec![real.clone()], owner);
    opts.exclude = d.exclude.clone();
    opts.cross_mounts = d.cross_mounts;
    opts.samples = SAMPLES;
    opts.max_entries = d.max_entries;
    opts.max_duration = Some(Duration::from_secs(d.max_seconds.unwrap_or(DriftExpectation::DEFAULT_MAX_SECONDS)));
    let report = match drift::scan(&opts, None) {
        Ok(r) => r,
        Err(e @ drift::DriftError::SystemDirectory(_)) => {
            return vec![Finding::fail(
                P,
                "drift_root",
                &d.root,
                format!("{e}"),
                Remedy::manual(format!(
                    "a system directory must never be checked (or fixed) against one owner: point `root` at the data directory, or unmount (or `exclude`) the bind mount under {} that leads to it",
                    d.root
                )),
            )];
        }
        Err(e) => {
            return vec![Finding::fail(
                P,
                "drift_root",
                &d.root,
                format!("cannot scan {}: {e}", d.root),
                Remedy::manual(format!("check that {} is a readable directory", d.root)),
            )];
        }
    };
    decide(&d.root, &real, owner, &report)
}

/// The findings for one scanned root (separate from scanning, so any report can be decided).
pub fn decide(root: &str, real: &std::path::Path, owner: Owner, r: &DriftReport) -> Vec<Finding> {
    let mut out = Vec::new();
    let st = &r.stats;
    let scope = if st.stopped.is_some() { "scanned so far" } else { "under it" };
    let fix_cmd = format!(
        "homelab-verify drift {} --uid {} --gid {} --fix   # the plan; then add --apply (journaled; undo: homelab-verify drift undo JOURNAL)",
        sh_quote(&real.to_string_lossy()),
        owner.uid,
        owner.gid
    );
    if r.offending > 0 {
        let worst =
            r.by_owner.first().map(|c| format!("; most are {}:{} ({})", c.uid, c.gid, c.count)).unwrap_or_default();
        out.push(
            Finding::fail(
                P,
                "drift_owner",
                root,
                format!("{} of {} entries {scope} are not owned by {owner}{worst}", r.offending, st.entries),
                Remedy::command(fix_cmd.clone()),
            )
            .evidence("expected", owner)
            .evidence("entries", st.entries)
            .evidence("offending", r.offending)
            .evidence("by_owner", &r.by_owner)
            .evidence("by_top_level", r.by_top_level.iter().take(10).collect::<Vec<_>>()),
        );
    } else {
        out.push(
            Finding::pass(P, "drift_owner", root, format!("all {} entries {scope} are owned by {owner}", st.entries))
                .evidence("expected", owner)
                .evidence("entries", st.entries),
        );
    }
    if r.errors > 0 {
        out.push(
            Finding::warn(P, "drift_errors", root, format!("{} paths under {root} could not be examined", r.errors))
                .evidence("errors", &r.error_samples)
                .remedy(Remedy::manual(
                    "run the check as root (the NixOS unit does), or look at why these paths are unreadable",
                )),
        );
    }
    if let Some(why) = st.stopped {
        let limit = match why {
            crate::scan::StopReason::MaxEntries => "max_entries",
            crate::scan::StopReason::Deadline => "max_seconds",
            // drift::scan returns a refusal as an error (a drift_root failure above).
            crate::scan::StopReason::Refused => "refusal",
        };
        out.push(
            Finding::warn(
                P,
                "drift_bounded",
                root,
                format!(
                    "the scan stopped at its {limit} limit after {} entries in {:.0} s: the rest of {root} is unchecked",
                    st.entries, r.elapsed_seconds
                ),
            )
            .evidence("limit", limit)
            .remedy(Remedy::command(format!(
                "homelab-verify drift {} --uid {} --gid {}   # a full scan, no limit",
                sh_quote(&real.to_string_lossy()),
                owner.uid,
                owner.gid
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
    fn drift_sections_parse_and_bad_input_names_the_line() {
        let e = parse(
            "version = 1\n[[drift]]\nroot = \"/mnt/media\"\nuid = 1000\ngid = 110\nexclude = [\"*.part\"]\nmax_entries = 5\n",
        )
        .unwrap();
        assert_eq!(e.drift[0].root, "/mnt/media");
        assert_eq!(e.drift[0].max_entries, Some(5));
        let err = |t: &str| parse(t).unwrap_err().to_string();
        assert!(err("version = 1\n[[drift]]\nroot = \"/\"\nuid = 1\ngid = 1\n").contains("homelab-probe.toml:3:"));
        assert!(err("version = 1\n[[drift]]\nroot = \"media\"\nuid = 1\ngid = 1\n").contains("absolute"));
        assert!(err("version = 1\n[[drift]]\nroot = \"/m\"\nuid = 1\n").contains("missing field `gid`"));
        assert!(err("version = 1\n[[drift]]\nroot = \"/m\"\nuid = 1\ngid = 1\nexclude = [\"[\"]\n").contains(":6:"));
        assert!(
            err("version = 1\n[[drift]]\nroot = \"/m\"\nuid = 1\ngid = 1\nmax_files = 1\n").contains("unknown field")
        );
    }

    #[test]
    fn sysroot_roots_resolve_inside_and_decide_pass_fail_missing() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(t.path().join("data/a")).unwrap();
        std::fs::write(t.path().join("data/a/f"), "").unwrap();
        let host = Host::at(t.path()).unwrap();
        let me = rustix::process::geteuid().as_raw();
        let my_gid = rustix::process::getegid().as_raw();
        let exp = |uid: u32, root: &str| {
            parse(&format!("version = 1\n[[drift]]\nroot = \"{root}\"\nuid = {uid}\ngid = {my_gid}\n")).unwrap()
        };
        let f = check(&host, &exp(me, "/data"));
        assert_eq!((f[0].check.as_str(), f[0].status), ("drift_owner", Status::Pass), "{f:?}");
        assert_eq!(f[0].evidence["entries"], 3);
        let f = check(&host, &exp(me + 1, "/data"));
        assert_eq!((f[0].check.as_str(), f[0].status), ("drift_owner", Status::Fail));
        assert_eq!(f[0].evidence["offending"], 3);
        assert!(f[0].remedy.as_ref().unwrap().text.contains("--fix"));
        let f = check(&host, &exp(me, "/missing"));
        assert_eq!((f[0].check.as_str(), f[0].status), ("drift_root", Status::Fail));
        assert!(f[0].remedy.is_some());
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("/mnt/PlexStorage"), "/mnt/PlexStorage");
        assert_eq!(sh_quote("/mnt/My Media"), "'/mnt/My Media'");
        assert_eq!(sh_quote("/mnt/it's"), r"'/mnt/it'\''s'");
    }
}
