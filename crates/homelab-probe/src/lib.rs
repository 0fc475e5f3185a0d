//! # homelab-probe
//!
//! Typed probes that prove a homelab host is what its owner thinks it is after a move to NixOS:
//! user and group ids (UID/GID parity), render-node ownership and access, GPU encoders (NVENC
//! through NVML, VA-API through libva) and container GPU access, mount readiness, and
//! file-ownership drift under data roots.
//!
//! The library never prints and never exits. A caller builds a [`Host`] (the live system or a
//! sysroot directory), loads [`Expectations`] (or uses [`Expectations::builtin`]), runs
//! [`check::run`] and gets a [`Report`] of [`Finding`]s.
//!
//! ```no_run
//! use homelab_probe::{check, Expectations, Host, Report};
//!
//! let host = Host::live();
//! let expectations = Expectations::builtin();
//! let findings = check::run(&host, &expectations);
//! let report = Report::new(&host, "built-in defaults", findings);
//! assert_eq!(report.schema_version, homelab_probe::REPORT_SCHEMA_VERSION);
//! ```
//!
//! Layers, top to bottom: [`check`] (probes: host + expectations -> findings), [`drift`]
//! (file-ownership drift reports, the journaled fix and its undo), [`model`] (serde types:
//! expectations, findings, report), [`scan`] (the parallel ownership scanner), [`host`] (the
//! root every read goes through, plus the live-only facilities: NSS, DRM ioctls, NVML, libva,
//! udev), [`sources`] (pure parsers of system files), [`nix_expr`] (safe rendering of Nix values
//! for remedies and generated modules).
#![deny(missing_docs)]
#![forbid(unsafe_op_in_unsafe_fn)]

pub mod capture;
pub mod check;
pub mod drift;
pub mod host;
pub mod model;
pub mod nix_expr;
pub mod nixos;
pub mod plan;
pub mod scan;
pub mod shell;
pub mod sources;
pub mod systemd;

pub use host::Host;
pub use model::expectations::{EXPECTATIONS_VERSION, Expectations, ExpectationsError};
pub use model::finding::{Finding, Probe, Remedy, RemedyKind, Status};
pub use model::report::{REPORT_SCHEMA_VERSION, Report, Summary};
