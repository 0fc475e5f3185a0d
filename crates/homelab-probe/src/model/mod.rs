//! Serde types that form the project's contracts, and the pure value logic that goes with
//! them: what the host must satisfy ([`expectations`]), what a probe decided ([`finding`]),
//! what `check` prints ([`report`]), what `capture` records ([`snapshot`], [`compose`]), and
//! the facts probes gather about files and devices ([`fs`], [`acl`], [`inventory`], [`gpu`],
//! [`source`]). The bottom layer: nothing here reads a file or names another part of the crate.

pub mod acl;
pub mod baseline;
pub mod compose;
pub mod exclude;
pub mod expectations;
pub mod finding;
pub mod fs;
pub mod gpu;
pub mod inventory;
pub mod mounts;
pub mod report;
pub mod snapshot;
pub mod source;
pub mod text;
pub mod userns;
