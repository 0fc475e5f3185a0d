//! The remedies the mount checks share: take a stacked mount off, remount the declared device,
//! move shadowed data aside, the `fileSystems` entry NixOS needs, and what to do about a missing
//! disk. Apart so that a check names its fix without carrying how it is written.

use super::device::same_source;
use super::{Ctx, Origin, shown_source};
use crate::model::finding::Remedy;
use crate::model::source::{Source, encode_udev_name};
use crate::sources::mountinfo::MountInfo;
use crate::{nix_expr, shell, systemd};

impl Ctx<'_> {
    pub(super) fn shadow_remedy(&self) -> Remedy {
        let path = &self.m.path;
        let q = shell::quote(path);
        let aside = shell::quote(&format!("{path}.shadowed"));
        let unit = systemd::mount_unit(path);
        Remedy::manual(format!(
            "stop what writes to {path} (e.g. `docker compose stop` in the stacks that use it), then move the files aside (nothing is deleted) and mount:\n\
             mv -T {q} {aside} && mkdir {q} && systemctl start {unit}\n\
             review {path}.shadowed and copy what belongs on the disk: rsync -a --ignore-existing {aside}/ {q}/\n\
             so it cannot happen again, let Docker start only with the disk: systemd.services.docker.unitConfig.RequiresMountsFor = [ {} ];",
            nix_expr::string(path).unwrap_or_default()
        ))
    }

    /// `umount` of the top mount of a stack, so the one underneath shows again.
    pub(super) fn unstack_remedy(&self, top: &MountInfo) -> Remedy {
        Remedy::command(format!(
            "umount {}  # removes only the top mount ({}); the one underneath shows again",
            shell::quote(&self.m.path),
            top.source.as_deref().unwrap_or(&top.fstype)
        ))
    }

    /// Unmount what is there and mount the declared device; or fix the declaration first when
    /// fstab names another device than the expectation.
    pub(super) fn remount_remedy(&self) -> Remedy {
        let fstab_ok = match (&self.m.fstab, &self.m.source) {
            (Some((_, e)), Some(want)) => same_source(self.host, &self.facts.devices, want, &e.source) != Some(false),
            (Some(_), None) => true,
            (None, _) => false,
        };
        if fstab_ok {
            Remedy::command(format!(
                "umount {} && systemctl start {}",
                shell::quote(&self.m.path),
                systemd::mount_unit(&self.m.path)
            ))
        } else {
            self.nixos_remedy(None)
        }
    }

    /// `fileSystems."<path>" = { device = ...; fsType = ...; options = [ ... ]; };`, from the
    /// expectation, completed by the fstab entry. `read_only` overrides rw/ro in the options.
    pub(super) fn nixos_remedy(&self, read_only: Option<bool>) -> Remedy {
        let m = self.m;
        let fstab = m.fstab.as_ref().map(|(_, e)| e);
        let device = match &m.source {
            Some(s) => nixos_device(s),
            None => fstab.map(|e| e.spec.clone()),
        };
        let fstype = m.fstypes.first().cloned().or_else(|| fstab.map(|e| e.fstype.clone()));
        let mut options: Vec<String> = fstab.map(|e| e.options.clone()).unwrap_or_default();
        for o in &m.options {
            if !options.contains(o) {
                options.push(o.clone());
            }
        }
        if m.origin == Origin::Expectations && !m.required && !options.iter().any(|o| o == "nofail") {
            options.push("nofail".into());
        }
        let ro = read_only.unwrap_or(m.read_only);
        options.retain(|o| o != "ro" && o != "rw");
        if ro {
            options.push("ro".into());
        }
        if options.len() > 1 {
            options.retain(|o| o != "defaults");
        }
        let mut lines = vec![format!("{} = {{", nix_expr::attr_path(&["fileSystems", &m.path]).unwrap_or_default())];
        if let Some(d) = device {
            lines.push(format!("  device = {};", nix_expr::string(&d).unwrap_or_default()));
        }
        if let Some(t) = fstype {
            lines.push(format!("  fsType = {};", nix_expr::string(&t).unwrap_or_default()));
        }
        if !options.is_empty() && options != ["defaults"] {
            lines.push(format!("  options = {};", nix_expr::string_list(&options).unwrap_or_default()));
        }
        lines.push("};".into());
        Remedy::nixos(lines.join("\n"))
    }
}

/// The `device` NixOS should get for a source: the udev link for tags (the link name is
/// udev-escaped, which is also what keeps a label with blanks working: NixOS writes `\040`
/// into fstab only for blanks, and the `\x20` of the link passes through unchanged).
fn nixos_device(s: &Source) -> Option<String> {
    match s.tag() {
        Some((k, v)) if !matches!(s, Source::Path(_)) => Some(format!("{}{}", k.dir(), encode_udev_name(&v))),
        _ => match s {
            Source::Path(p) | Source::Other(p) => Some(p.clone()),
            _ => None,
        },
    }
}

pub(super) fn missing_device_remedy(spec: &str, path: &str, swap: bool) -> Remedy {
    let spec = shown_source(&Source::parse(spec), spec);
    let option = if swap { "swapDevices" } else { "fileSystems" };
    let attr = if swap { String::new() } else { format!(".{}.device", nix_expr::string(path).unwrap_or_default()) };
    Remedy::manual(format!(
        "connect the disk that has {spec} and check `lsblk -f`; if it was reformatted it has a new UUID: point {option}{attr} at it"
    ))
}
