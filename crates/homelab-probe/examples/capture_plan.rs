//! Embedding the migration pair: capture a host into a snapshot, plan the NixOS move from it,
//! and write the three files into a fresh temporary directory.
//!
//! ```sh
//! cargo run -p homelab-probe --example capture_plan             # this machine
//! cargo run -p homelab-probe --example capture_plan -- SYSROOT  # the old host's disk
//! ```

use std::path::{Path, PathBuf};

use homelab_probe::{CaptureOptions, Host, capture, plan};

/// Captures the host at `root`, plans the move and writes the files into a new directory under
/// `out_parent`; returns that directory.
pub fn run(root: &Path, out_parent: &Path) -> Result<PathBuf, Box<dyn std::error::Error>> {
    let host = Host::at(root)?;
    let snapshot = capture(&host, &CaptureOptions::default());
    for gap in &snapshot.gaps {
        eprintln!("not captured: {}: {}", gap.section, gap.reason);
    }
    let plan = plan(&snapshot)?;
    let out = tempfile::Builder::new().prefix("homelab-plan-").tempdir_in(out_parent)?.keep();
    for (name, text) in plan.files() {
        std::fs::write(out.join(name), text)?;
    }
    for w in &plan.warnings {
        eprintln!("warning: {}: {}", w.subject, w.message);
    }
    Ok(out)
}

/// Plans from the host named on the command line (default `/`) into the system's temporary
/// directory and prints where the files went.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "/".to_owned());
    let out = run(Path::new(&root), &std::env::temp_dir())?;
    println!("{}", out.display());
    Ok(())
}
