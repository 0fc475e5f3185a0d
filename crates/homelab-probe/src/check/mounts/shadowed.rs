//! When nothing is mounted at an expected path (or its mount is hidden by a later one): the
//! `mounted` failure, and `shadowed_data`, whether something wrote into the bare directory
//! (data that lands on the root disk and "disappears" once the disk is mounted over it).

use super::device::{Device, describe_mount};
use super::{Ctx, SAMPLE_LIMIT, SAMPLE_NAMES};
use crate::host::HostError;
use crate::host::mounts::DirSample;
use crate::model::finding::{Finding, Remedy};
use crate::sources::mountinfo::Visibility;
use crate::{shell, systemd};

impl Ctx<'_> {
    /// Findings when the path is not a mount point (or its mount is hidden by a parent).
    pub(super) fn not_mounted(&self, vis: &Visibility<'_>, device: &Device<'_>, out: &mut Vec<Finding>) {
        let path = &self.m.path;
        let holder = vis.holder;
        let on = format!(
            "the filesystem of {} ({})",
            holder.mount_point,
            holder.source.as_deref().unwrap_or(&holder.fstype)
        );
        // Data in the bare directory first: the `mounted` remedy depends on it.
        let sample = self.host.sample_dir(path, SAMPLE_LIMIT, SAMPLE_NAMES);
        let shadowed = matches!(&sample, Ok(s) if s.count > 0);
        if !vis.hidden.is_empty() {
            let h = vis.hidden[vis.hidden.len() - 1];
            let hd = describe_mount(h, self.facts.devices.of_mount(self.host, h.major, h.minor, h.source.as_deref()));
            let cover = holder.source.as_deref().unwrap_or(&holder.fstype);
            let remedy = Remedy::manual(format!(
                "`umount {}` (the later mount that hides it) shows {path} again; to keep the order at boot, declare {} in fileSystems too, so systemd mounts it before {path}",
                shell::quote(&holder.mount_point),
                holder.mount_point
            ));
            out.push(
                self.fail(
                    "mounted",
                    format!("{path} is mounted but hidden: {cover} was mounted on {} after it", holder.mount_point),
                    remedy.clone(),
                )
                .evidence("hidden", &vis.hidden)
                .evidence("covered_by", holder),
            );
            out.push(
                self.fail("mount_covered",
                    format!("{hd} is mounted at {path}, but {cover} was mounted on {} after it, so {path} is now a directory on {cover}", holder.mount_point), remedy)
                .evidence("covered_by", holder),
            );
        } else {
            let mut msg = format!("{path} is not mounted");
            if matches!(device, Device::Missing) {
                msg.push_str(&format!(" and {} is not present", self.m.shown()));
            }
            if self.m.fstab.as_ref().is_some_and(|(_, e)| e.is_nofail()) {
                msg.push_str(" (nofail let the boot go on without it)");
            }
            let unit = systemd::mount_unit(path);
            let mut steps = Vec::new();
            if matches!(device, Device::Missing) {
                steps.push(format!("connect the disk with {}", self.m.shown()));
            }
            if shadowed {
                steps.push("move aside what was written into the bare directory (see shadowed_data)".to_owned());
            }
            let remedy = if !self.m.declared() {
                self.nixos_remedy(None)
            } else if steps.is_empty() {
                Remedy::command(format!("systemctl start {unit}  # or: mount {}", shell::quote(path)))
            } else {
                steps.push(format!("`systemctl start {unit}`"));
                Remedy::manual(steps.join(", then "))
            };
            out.push(self.fail_unless_optional("mounted", msg, remedy).evidence("directory_on", holder));
        }
        out.push(self.shadow_finding(sample, &on));
    }

    /// `shadowed_data`: what lies in the bare directory while nothing is mounted there.
    fn shadow_finding(&self, sample: Result<DirSample, HostError>, on: &str) -> Finding {
        let path = &self.m.path;
        match sample {
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotFound) => {
                self.pass("shadowed_data", format!("{path} does not exist: nothing was written in its place"))
            }
            Err(e) if e.io_kind() == Some(std::io::ErrorKind::NotADirectory) => self.fail(
                "shadowed_data",
                format!("{path} is a file, not a directory: nothing can be mounted there"),
                Remedy::manual(format!(
                    "move the file aside (nothing is deleted): mv -T {q} {q2} && mkdir {q}",
                    q = shell::quote(path),
                    q2 = shell::quote(&format!("{path}.shadowed"))
                )),
            ),
            Err(e) => self.skip("shadowed_data", format!("cannot list {path}: {e}")),
            Ok(s) if s.count == 0 => self.pass(
                "shadowed_data",
                format!("{path} is an empty directory on {on}: nothing was written in its place"),
            ),
            Ok(s) => {
                let count = if s.truncated { format!("at least {}", s.count) } else { s.count.to_string() };
                let names: Vec<String> = s.names.iter().map(|n| n.to_string_lossy().into_owned()).collect();
                let more = if s.count > names.len() { ", ..." } else { "" };
                let noun = if s.count == 1 && !s.truncated { "entry" } else { "entries" };
                self.fail("shadowed_data",
                    format!(
                        "{path} is not mounted, but the bare directory on {on} holds {count} {noun} ({}{more}): whatever wrote there wrote to the wrong disk, and mounting the disk will hide it",
                        names.join(", ")
                    ), self.shadow_remedy())
                .evidence("entries", s.count)
                .evidence("entries_is_lower_bound", s.truncated)
                .evidence("names", &names)
            }
        }
    }
}
