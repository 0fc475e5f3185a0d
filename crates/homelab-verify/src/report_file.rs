//! `--json-report FILE`: the JSON report written to a file beside whatever `--format` prints,
//! so the NixOS unit can log the human report to the journal and leave the JSON for other
//! tools (`/var/lib/homelab-probe/report.json`).
//!
//! The file is replaced atomically (written to a temporary file in the same directory, synced,
//! then renamed over FILE), so a reader never sees half a report.

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use homelab_probe::Report;

/// Writes `report` as pretty JSON to `path`, replacing it atomically.
pub fn write(path: &Path, report: &Report) -> anyhow::Result<()> {
    let tmp = temporary_name(path)?;
    let result = (|| -> anyhow::Result<()> {
        let file = File::create(&tmp).with_context(|| format!("cannot create {}", tmp.display()))?;
        let mut w = BufWriter::new(file);
        serde_json::to_writer_pretty(&mut w, report)?;
        writeln!(w)?;
        let file = w.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot rename {} to {}", tmp.display(), path.display()))
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write the JSON report to {}", path.display()))
}

/// `DIR/.NAME.tmp-PID` next to `path`, so the rename stays on one file system.
fn temporary_name(path: &Path) -> anyhow::Result<PathBuf> {
    let name = path
        .file_name()
        .with_context(|| format!("cannot write the JSON report to {}: not a file name", path.display()))?;
    let mut tmp = std::ffi::OsString::from(".");
    tmp.push(name);
    tmp.push(format!(".tmp-{}", std::process::id()));
    Ok(path.with_file_name(tmp))
}
