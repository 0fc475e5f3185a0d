//! Probes: each takes the host's facts and the expectations and returns [`Finding`]s. No
//! printing, no exiting.

pub mod access;
mod baseline;
mod drift;
#[doc(hidden)]
pub mod gpu;
mod identity;
#[doc(hidden)]
pub mod mounts;
mod render_node;
pub use mounts::wait;

use crate::host::Host;
use crate::host::identity::IdentityDb;
use crate::model::expectations::Expectations;
use crate::model::finding::{Finding, Probe};

/// Runs every probe against `host` and returns their findings in probe order.
pub fn run(host: &Host, expectations: &Expectations) -> Vec<Finding> {
    run_probes(host, expectations, &Probe::ALL)
}

/// Runs the probes in `probes` (in that order) against `host`: one probe's findings without
/// paying for the others (a readiness check of the mounts need not wait for NVML).
pub fn run_probes(host: &Host, expectations: &Expectations, probes: &[Probe]) -> Vec<Finding> {
    // The users and groups are read once, and only for the probes that use them.
    let ids = std::cell::OnceCell::new();
    let ids = || ids.get_or_init(|| IdentityDb::load(host));
    let mut findings = Vec::new();
    for probe in probes {
        findings.extend(match probe {
            Probe::Identity => identity::check(ids(), expectations, host.is_nixos()),
            Probe::RenderNode => render_node::check(host, ids(), expectations),
            Probe::Gpu => gpu::check(host, ids(), expectations),
            Probe::Mounts => mounts::check(host, expectations),
            Probe::Drift => {
                let mut f = drift::check(host, expectations);
                f.extend(baseline::check(host, expectations));
                f
            }
        });
    }
    findings
}
