//! Serde types that form the project's contracts: what the host must satisfy
//! ([`expectations`]), what a probe decided ([`finding`]), what `check` prints ([`report`]),
//! and the facts probes gather about devices ([`inventory`], [`gpu`]).

pub mod compose;
pub mod expectations;
pub mod finding;
pub mod gpu;
pub mod inventory;
pub mod mounts;
pub mod report;
pub mod snapshot;
