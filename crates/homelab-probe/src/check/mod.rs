//! Probes: each takes the host's facts and the expectations and returns [`Finding`]s. No
//! printing, no exiting.

pub mod access;
pub mod drift;
pub mod gpu;
pub mod identity;
pub mod mounts;
pub mod render_node;
pub mod wait;

use crate::host::Host;
use crate::host::identity::IdentityDb;
use crate::model::expectations::Expectations;
use crate::model::finding::Finding;

/// Runs every probe against `host` and returns their findings in probe order.
pub fn run(host: &Host, expectations: &Expectations) -> Vec<Finding> {
    let ids = IdentityDb::load(host);
    let mut findings = identity::check(&ids, expectations);
    findings.extend(render_node::check(host, &ids, expectations));
    findings.extend(gpu::check(host, &ids, expectations));
    findings.extend(mounts::check(host, expectations));
    findings.extend(drift::check(host, expectations));
    findings
}
