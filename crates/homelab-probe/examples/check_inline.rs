//! Embedding the probes: check a host against expectations written inline, and act on the
//! failures yourself.
//!
//! ```sh
//! cargo run -p homelab-probe --example check_inline             # this machine
//! cargo run -p homelab-probe --example check_inline -- SYSROOT  # a mounted disk or a fixture
//! ```

use std::path::Path;

use homelab_probe::{Expectations, Host, Report, Status, check};

/// What the new host must satisfy: render at gid 110 (the PGID of a Plex container on the old
/// host) and every render node usable by that group.
const EXPECTATIONS: &str = r#"
version = 1

[groups]
render = 110

[render]
group = "render"
"#;

/// Checks the host rooted at `root` and returns the report.
pub fn run(root: &Path) -> Result<Report, Box<dyn std::error::Error>> {
    let host = Host::at(root)?;
    let expectations: Expectations = EXPECTATIONS.parse()?;
    let findings = check::run(&host, &expectations);
    Ok(Report::new(host.info(), "inline", findings))
}

/// Prints each failure with its remedy and exits 1 when something failed.
pub fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = std::env::args().nth(1).unwrap_or_else(|| "/".to_owned());
    let report = run(Path::new(&root))?;
    for f in report.findings.iter().filter(|f| f.status == Status::Fail) {
        println!("{} {}: {}", f.probe, f.subject, f.message);
        if let Some(r) = &f.remedy {
            println!("    fix: {}", r.text);
        }
    }
    let s = report.summary;
    println!("{} pass, {} warn, {} skip, {} fail", s.pass, s.warn, s.skip, s.fail);
    if !s.ok {
        std::process::exit(1);
    }
    Ok(())
}
