//! `--report FORMAT:FILE` (and its alias for JSON, `--json-report FILE`): a report written to a
//! file beside whatever `--format` prints, so the NixOS unit can log the human report to the
//! journal and leave the JSON for other tools (`/var/lib/homelab-probe/report.json`) and the
//! metrics for node_exporter's textfile collector.
//!
//! The file is replaced atomically (written to a temporary file in the same directory, synced,
//! then renamed over FILE), so a reader never sees half a report. The temporary name starts
//! with `.` and does not end in `.prom`, so the textfile collector never reads it.

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

/// Writes `bytes` to `path`, replacing it atomically; `what` names the report in errors.
pub fn write(path: &Path, bytes: &[u8], what: &str) -> anyhow::Result<()> {
    let tmp = temporary_name(path, what)?;
    let result = (|| -> anyhow::Result<()> {
        let mut file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write the {what} report to {}", path.display()))
}

/// `DIR/.NAME.tmp-PID` next to `path`, so the rename stays on one file system.
fn temporary_name(path: &Path, what: &str) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("cannot write the {what} report to {}: not a file name", path.display()))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp-{}", std::process::id()));
    Ok(path.with_file_name(tmp))
}
