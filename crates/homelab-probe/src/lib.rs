//! # homelab-probe
//!
//! Typed probes that prove a homelab host is what its owner thinks it is after a move to NixOS:
//! user and group ids (UID/GID parity), render-node ownership and access, GPU encoders (NVENC
//! through NVML, VA-API through libva) and container GPU access, mount readiness, and
//! file-ownership drift under data roots.
//!
//! The library never prints and never exits. A caller builds a [`Host`] (the live system or a
//! sysroot directory), loads [`Expectations`] (or uses [`Expectations::builtin`]), runs
//! [`check::run`] and gets [`Finding`]s, which a [`Report`] carries:
//!
//! ```
//! use homelab_probe::{Expectations, Host, Report, Status, check};
//!
//! // Inline expectations: render must be gid 110 (the PGID of a Plex container).
//! let expectations: Expectations = "version = 1\n[groups]\nrender = 110\n".parse()?;
//! let host = Host::live();
//! let findings = check::run(&host, &expectations);
//! let report = Report::new(host.info(), "inline", findings);
//! for f in report.findings.iter().filter(|f| f.status == Status::Fail) {
//!     println!("{}: {}", f.subject, f.message);
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! The migration pair is [`capture()`] (the old host -> a [`Snapshot`]) and [`plan()`] (a
//! snapshot -> a NixOS module, expectations and a checklist, or [`PlanError::Refused`] when no
//! NixOS module can keep what the snapshot needs). File-ownership drift is
//! [`drift::scan`], [`drift::fix::apply`] and [`drift::fix::undo`].
//!
//! ## The contract
//! What this crate root and its public modules name is the API: [`model`] (every serde type:
//! expectations, findings, reports, snapshots and the facts they carry, versioned and
//! documented), [`check`], [`capture`](mod@capture), [`plan`](mod@plan) and [`drift`]. Public
//! types that will grow are `#[non_exhaustive]`. Modules hidden from these docs (`host`,
//! `sources`, `scan`, `nix_expr`, ...) are public only so this workspace's integration tests,
//! benchmarks and fuzz targets can reach them; they are not part of the API and change in any
//! release.
//!
//! ## Layers
//! One direction of dependency, bottom to top (a test keeps it so): [`model`] (types and pure
//! value logic; no I/O, imports nothing else of the crate) <- `sources` (pure parsers of system
//! files) <- `host` (the root every read goes through and the live-only facilities: NSS, DRM
//! ioctls, NVML, libva, udev; `scan`, the ownership walker) <- [`check`], [`drift`],
//! [`capture`](mod@capture), [`plan`](mod@plan).

pub mod baseline;
pub mod capture;
pub mod check;
pub mod drift;
pub mod model;
pub mod plan;

// Internals: reachable for this workspace's tests, benchmarks and fuzz targets, not the API.
#[doc(hidden)]
pub mod host;
#[doc(hidden)]
pub mod nix_expr;
#[doc(hidden)]
pub mod nixos;
#[doc(hidden)]
pub mod scan;
#[doc(hidden)]
pub mod sources;
#[doc(hidden)]
pub mod systemd;

mod shell;

pub use capture::{CaptureOptions, capture};
pub use host::{Host, HostError};
pub use model::expectations::{EXPECTATIONS_VERSION, Expectations, ExpectationsError};
pub use model::finding::{Finding, Probe, Remedy, RemedyKind, Status};
pub use model::report::{HostInfo, REPORT_SCHEMA_VERSION, Report, Summary};
pub use model::snapshot::{SNAPSHOT_SCHEMA_VERSION, Snapshot, SnapshotError};
pub use plan::{Plan, PlanError, plan};
