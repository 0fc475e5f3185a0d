//! `plan`: a [`Snapshot`] of the old host in, three files out:
//! - `hardware-parity.nix`, a NixOS module that pins what must stay the same (gids, uids,
//!   data disks by UUID, GPU drivers, Docker with log rotation, compose stacks started after
//!   their data disks);
//! - `homelab-probe.toml`, the [`Expectations`] `check` verifies on the new host;
//! - `MIGRATION.md`, a short checklist.
//!
//! The decisions are made once ([`decide`]) and the three renderers only write them, so the
//! module and the expectations can never disagree. Nothing here touches the host or prints.
//!
//! NixOS option names and types are those of current nixpkgs (cited in docs/migration.md):
//! `users.groups.<g>.gid` (`nullOr int`, pinned groups need `lib.mkForce`), `users.users.<u>.{uid,
//! isNormalUser, group, extraGroups, home}`, `fileSystems.<path>.{device, fsType, options}`,
//! `hardware.graphics.{enable, extraPackages}`, `services.xserver.videoDrivers`,
//! `hardware.nvidia.open`, `hardware.nvidia-container-toolkit.enable`,
//! `virtualisation.docker.{enable, daemon.settings}`, `systemd.services.<n>.{unitConfig,
//! serviceConfig, script, path, restartIfChanged}`, `warnings`.

#[doc(hidden)]
pub mod decide;
mod hardware;
mod migration;
mod module;

use serde::Serialize;

use crate::model::expectations::Expectations;
use crate::model::snapshot::Snapshot;
use crate::nix_expr::NixRenderError;

pub use decide::BASELINE_DIR;

/// File name of the generated NixOS module.
pub const MODULE_FILE: &str = "hardware-parity.nix";
/// File name of the generated expectations.
pub const EXPECTATIONS_FILE: &str = "homelab-probe.toml";
/// File name of the generated checklist.
pub const MIGRATION_FILE: &str = "MIGRATION.md";

/// Something the person migrating must look at: a collision, a container setting NixOS
/// handles differently, a part of the snapshot that was missing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PlanWarning {
    /// What it is about (`group render`, `plex/plex`, `/mnt/PlexStorage`).
    pub subject: String,
    /// What to do or know.
    pub message: String,
}

/// Why no sound module exists for a snapshot: the two groups (or ids) that cannot both be kept,
/// and what the person migrating can do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Conflict {
    /// What it is about (`group media`).
    pub subject: String,
    /// What collides with what, naming both sides.
    pub message: String,
    /// What the person migrating can do, one way each.
    pub choices: Vec<String>,
}

/// Why [`plan()`] wrote nothing.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// No NixOS module can keep what the snapshot needs (the CLI's exit code 2): each conflict
    /// names both sides and the choices.
    #[error("{}", refusal_text(.conflicts))]
    Refused {
        /// Every conflict found.
        conflicts: Vec<Conflict>,
    },
    /// A captured string cannot be written as Nix at all (a NUL byte).
    #[error(transparent)]
    Render(#[from] NixRenderError),
}

/// The refusal, one line per conflict and per choice (no trailing newline).
fn refusal_text(conflicts: &[Conflict]) -> String {
    let mut lines = vec![format!(
        "no NixOS module keeps what this snapshot needs ({} conflict{}); nothing was written:",
        conflicts.len(),
        if conflicts.len() == 1 { "" } else { "s" }
    )];
    for c in conflicts {
        lines.push(format!("  {}: {}", one_line(&c.subject), one_line(&c.message)));
        for choice in &c.choices {
            lines.push(format!("    - {}", one_line(choice)));
        }
    }
    lines.join("\n")
}

/// The three generated files.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `hardware-parity.nix`.
    pub module: String,
    /// The expectations (also rendered in [`Plan::expectations_toml`]).
    pub expectations: Expectations,
    /// `homelab-probe.toml`.
    pub expectations_toml: String,
    /// `MIGRATION.md`.
    pub migration: String,
    /// Everything to look at, also written into the module (comments) and the checklist.
    pub warnings: Vec<PlanWarning>,
}

impl Plan {
    /// The files as (name, contents), in the order they are written.
    pub fn files(&self) -> [(&'static str, &str); 3] {
        [
            (MODULE_FILE, self.module.as_str()),
            (EXPECTATIONS_FILE, self.expectations_toml.as_str()),
            (MIGRATION_FILE, self.migration.as_str()),
        ]
    }
}

/// `s` without line breaks or other control characters, for a `#` comment line.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// Plans the move described by `snapshot`: a module NixOS accepts, or [`PlanError::Refused`]
/// when none can keep what the snapshot needs (the message names both sides and the choices).
/// [`PlanError::Render`] when a captured string cannot be held by a Nix string at all (a NUL
/// byte).
pub fn plan(snapshot: &Snapshot) -> Result<Plan, PlanError> {
    let d = decide::decide(snapshot);
    if !d.conflicts.is_empty() {
        return Err(PlanError::Refused { conflicts: d.conflicts });
    }
    let expectations = d.expectations();
    let expectations_toml = format!(
        "# homelab-probe.toml: what `homelab-verify check` must find on the new host.\n\
         # Generated by homelab-verify plan from the snapshot of {} taken {}.\n\
         # Run: homelab-verify check --expect homelab-probe.toml\n\n{}",
        one_line(snapshot.host.hostname.as_deref().unwrap_or("the old host")),
        one_line(&snapshot.captured_at),
        expectations.to_toml_string()
    );
    Ok(Plan {
        module: module::render(snapshot, &d)?,
        expectations,
        expectations_toml,
        migration: migration::render(snapshot, &d),
        warnings: d.warnings.clone(),
    })
}
