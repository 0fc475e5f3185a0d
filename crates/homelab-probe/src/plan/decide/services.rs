//! Graphics drivers, the units that start Compose stacks, and the render-node expectations of
//! the services that map `/dev/dri`.

use std::collections::{BTreeMap, BTreeSet};

use super::super::hardware::nvidia_turing_or_newer;
use super::{Decisions, GraphicsPackage, NvidiaPlan, StackUnit, credentials, runs_docker, systemd_path_ok};
use crate::model::compose::{ComposeService, ComposeStack, KEEP_GROUPS, StackKind};
use crate::model::expectations::{AccessExpectation, RenderExpectation, VaapiExpectation, VideoCodec};
use crate::model::inventory::IntelGeneration;
use crate::model::inventory::{DrmNodeKind, GpuVendor, is_render_node};
use crate::model::snapshot::Snapshot;

pub(super) fn graphics(snapshot: &Snapshot, d: &mut Decisions) {
    let mut nvidia_gpus = Vec::new();
    for g in &snapshot.gpus {
        let ids = format!("{} {}", g.subject(), g.describe());
        match g.vendor {
            GpuVendor::Intel => {
                d.graphics = true;
                // Package names as of nixpkgs 25.11+: the old aliases vaapiIntel/vaapiVdpau throw.
                let (attr, expr, why) = match g.intel_generation() {
                    IntelGeneration::PreBroadwell(platform) => (
                        "intel-vaapi-driver",
                        "pkgs.intel-vaapi-driver",
                        format!("{platform}, older than Broadwell: i965 driver"),
                    ),
                    IntelGeneration::Gen8OrNewer => (
                        "intel-media-driver",
                        "pkgs.intel-media-driver",
                        "Gen8 (Broadwell) or newer: iHD driver".into(),
                    ),
                };
                if !d.graphics_packages.iter().any(|p| p.attr == attr) {
                    d.graphics_packages.push(GraphicsPackage { attr, expr, reason: format!("{ids}, {why}") });
                }
            }
            GpuVendor::Amd => {
                d.graphics = true;
                d.graphics_notes.push(format!("{ids}: VA-API comes with mesa (radeonsi), no extra package"));
            }
            GpuVendor::Nvidia => {
                d.graphics = true;
                let device = g.pci.as_ref().and_then(|p| p.device.clone());
                nvidia_gpus.push((ids, nvidia_turing_or_newer(device.as_deref())));
            }
            GpuVendor::Virtio => d.graphics_notes.push(format!("{ids}: a virtual GPU, nothing to install")),
            GpuVendor::Other => d.graphics_notes.push(format!("{ids}: unknown vendor, no driver chosen")),
        }
    }
    let mut toolkit_for = Vec::new();
    let mut legacy_runtime = Vec::new();
    let mut nvenc_for = Vec::new();
    for stack in &snapshot.compose.stacks {
        for svc in stack.services.iter().filter(|s| s.is_active(&stack.active_profiles)) {
            let why = svc.nvidia_reasons();
            if !why.is_empty() {
                toolkit_for.push(format!("{}/{} ({})", stack.name, svc.name, why.join(", ")));
                if svc.wants_nvidia_video() {
                    nvenc_for.push(format!("{}/{}", stack.name, svc.name));
                }
            }
            if svc.runtime.as_deref() == Some("nvidia") {
                legacy_runtime.push(format!("{}/{}", stack.name, svc.name));
            }
        }
    }
    if nvidia_gpus.is_empty() {
        if !toolkit_for.is_empty() {
            d.warn(
                "NVIDIA",
                format!(
                    "stacks ask for an NVIDIA GPU but none was found on the old host, so no driver is configured: {}",
                    toolkit_for.join("; ")
                ),
            );
        }
        return;
    }
    let all_new = nvidia_gpus.iter().all(|(_, t)| *t == Some(true));
    let any_unknown = nvidia_gpus.iter().any(|(_, t)| t.is_none());
    let names: Vec<&str> = nvidia_gpus.iter().map(|(n, _)| n.as_str()).collect();
    let open_reason = if all_new {
        format!("{}: Turing or newer, NVIDIA's open kernel modules support it", names.join(", "))
    } else if any_unknown {
        format!("{}: generation unknown, the proprietary modules work on every generation", names.join(", "))
    } else {
        format!("{}: older than Turing, only the proprietary kernel modules support it", names.join(", "))
    };
    for svc in &legacy_runtime {
        d.warn(
            svc.clone(),
            "uses `runtime: nvidia`; NixOS's nvidia-container-toolkit gives Docker CDI devices and registers no \
             `nvidia` runtime: replace it with `devices: [nvidia.com/gpu=all]`, or set the deprecated \
             virtualisation.docker.enableNvidia = true (it needs hardware.graphics.enable32Bit = true)",
        );
    }
    d.gpu.nvidia_containers = !toolkit_for.is_empty();
    if !nvenc_for.is_empty() {
        d.gpu.nvenc = vec![VideoCodec::H264];
    }
    d.nvidia = Some(NvidiaPlan { open: all_new, open_reason, toolkit_for });
}

/// The unit name of a stack: `homelab-compose-<name>`, the name kept to the characters a unit
/// name and a store path name both allow (NixOS builds each unit into a derivation named after
/// it), others as `-`, at most 64 of them; `-2`, `-3`... when taken.
fn unit_name(stack: &ComposeStack, taken: &BTreeSet<String>) -> String {
    let part: String = stack
        .name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') { c } else { '-' })
        .take(64)
        .collect();
    let part = part.trim_start_matches('.');
    let base = format!("homelab-compose-{}", if part.is_empty() { "stack" } else { part });
    let mut name = base.clone();
    let mut n = 2;
    while taken.contains(&name) {
        name = format!("{base}-{n}");
        n += 1;
    }
    name
}

pub(super) fn stacks(snapshot: &Snapshot, d: &mut Decisions) {
    d.docker = runs_docker(snapshot);
    let data_mounts: Vec<String> = d.filesystems.iter().map(|f| f.mount_point.clone()).collect();
    let mut taken = BTreeSet::new();
    for stack in &snapshot.compose.stacks {
        if stack.kind == StackKind::Quadlet {
            // Podman's quadlet generator makes the units; the files move as they are.
            d.warn(
                format!("stack {}", stack.name),
                format!(
                    "quadlet units in {}: plan writes no unit for them; copy the .container files (and their drop-ins) to the same directory on NixOS, with virtualisation.podman.enable, or declare them with quadlet-nix",
                    stack.dir
                ),
            );
            continue;
        }
        for p in &stack.problems {
            d.warn(format!("stack {}", stack.name), format!("{p} (the rest of the stack is planned)"));
        }
        if !stack.unset_variables.is_empty() {
            d.warn(
                format!("stack {}", stack.name),
                format!(
                    "variables used but not set in .env (Compose uses an empty string): {}",
                    stack.unset_variables.join(", ")
                ),
            );
        }
        let unit = unit_name(stack, &taken);
        taken.insert(unit.clone());
        let mut mounts = vec![stack.dir.clone()];
        for svc in stack.services.iter().filter(|s| s.is_active(&stack.active_profiles)) {
            for v in &svc.volumes {
                let Some(hp) = &v.host_path else { continue };
                // The data mount that holds this path (the longest mount point prefix).
                let holder = data_mounts
                    .iter()
                    .filter(|m| hp == *m || hp.starts_with(&format!("{}/", m.trim_end_matches('/'))))
                    .max_by_key(|m| m.len());
                if let Some(m) = holder {
                    if !mounts.iter().any(|x| x == m) {
                        mounts.push((*m).to_owned());
                    }
                }
            }
        }
        let (ok, bad): (Vec<String>, Vec<String>) = mounts.into_iter().partition(|m| systemd_path_ok(m));
        for b in bad {
            d.warn(
                format!("stack {}", stack.name),
                format!("{b:?} cannot be written in RequiresMountsFor (whitespace, quotes or control characters): the unit does not wait for it"),
            );
        }
        let user = match &stack.owner {
            Some(o) if o == "root" || d.users.iter().any(|u| &u.name == o) => o.clone(),
            Some(o) => match snapshot.user(o) {
                // systemd takes a numeric uid in User=: the account the module leaves out.
                Some(u) => {
                    d.warn(
                        format!("stack {}", stack.name),
                        format!(
                            "its owner {o} is not declared by the module: its unit runs docker compose as uid {}",
                            u.uid
                        ),
                    );
                    u.uid.to_string()
                }
                None => {
                    d.warn(
                        format!("stack {}", stack.name),
                        format!("its owner {o} is not a captured user: declare {o} on NixOS or its unit cannot start"),
                    );
                    o.clone()
                }
            },
            None => {
                d.warn(format!("stack {}", stack.name), "no owner found: its unit runs docker compose as root");
                "root".into()
            }
        };
        d.units.push(StackUnit {
            unit,
            stack: stack.name.clone(),
            dir: stack.dir.clone(),
            user,
            files: stack.command_files.clone(),
            mounts: ok,
        });
    }
}

pub(super) fn render(snapshot: &Snapshot, d: &mut Decisions) {
    let mut nodes = BTreeSet::new();
    for stack in &snapshot.compose.stacks {
        for svc in stack.services.iter().filter(|s| s.is_active(&stack.active_profiles)) {
            let dri = svc.dri_devices();
            if dri.is_empty() {
                continue;
            }
            for n in dri.iter().filter(|n| n.starts_with("/dev/dri/renderD")) {
                nodes.insert((*n).to_owned());
            }
            let label = format!("{}/{}", stack.name, svc.name);
            if stack.rootless {
                rootless_access(snapshot, stack, svc, label, d);
                continue;
            }
            match credentials(svc, snapshot) {
                Ok(c) => {
                    if !c.named_groups.is_empty() {
                        d.warn(
                            label.clone(),
                            format!(
                                "group_add names {} resolve inside the container image, not on the host: not checked",
                                c.named_groups.join(", ")
                            ),
                        );
                    }
                    d.access.push(AccessExpectation {
                        name: Some(label),
                        uid: c.uid,
                        gid: c.gid,
                        groups: c.groups,
                        rootless: None,
                        keep_groups: false,
                    });
                }
                Err(why) => d.unchecked.push((label, why)),
            }
        }
    }
    // A stack that maps /dev/dri on an Intel or AMD GPU transcodes through VA-API: H.264 encode
    // must work on the new host (every VA-API generation has it; HEVC does not).
    let va_gpus: Vec<_> =
        snapshot.gpus.iter().filter(|g| matches!(g.vendor, GpuVendor::Intel | GpuVendor::Amd)).collect();
    let maps_dri = !d.access.is_empty() || !d.unchecked.is_empty();
    if maps_dri && !va_gpus.is_empty() {
        // The expectations accept only `/dev/dri/renderD<n>` here; a snapshot from elsewhere (or
        // edited by hand) may name anything, and the written file must read back.
        let node = match va_gpus.as_slice() {
            [one] => match &one.render_node {
                Some(n) if is_render_node(n) => Some(n.clone()),
                Some(n) => {
                    d.warn(
                        one.subject(),
                        format!("the snapshot names {n:?} as this GPU's render node, which is not /dev/dri/renderD<n>: VA-API is checked on any render node"),
                    );
                    None
                }
                None => None,
            },
            _ => None,
        };
        d.gpu.vaapi = Some(VaapiExpectation { encode: vec![VideoCodec::H264], node });
    }
    let had_render = snapshot.drm_nodes.iter().any(|n| n.kind == DrmNodeKind::Render);
    if !had_render && d.access.is_empty() {
        return;
    }
    let existed: BTreeMap<&str, ()> = snapshot.drm_nodes.iter().map(|n| (n.path.as_str(), ())).collect();
    for n in &nodes {
        if !existed.contains_key(n.as_str()) {
            d.warn(n.clone(), "a stack maps this node but the old host did not have it");
        }
    }
    d.render = Some(RenderExpectation {
        group: "render".into(),
        mode: None,
        required: had_render,
        nodes: nodes.into_iter().filter(|n| existed.contains_key(n.as_str())).collect(),
        access: d.access.clone(),
    });
}

/// A rootless service (`ComposeStack::rootless`): its PUID/PGID are ids inside the owner's user
/// namespace, which `/etc/subuid` and `/etc/subgid` map to ids no host group has. Only with
/// keep-groups (`GroupAdd=keep-groups`, `--group-add keep-groups`, or the runtime annotation
/// `run.oci.keep_original_groups=1`) does the process keep the owner's host groups, `render`
/// included. The entry says so (`rootless`, `keep_groups`) and check decides it: without
/// keep-groups a `root:render 0660` node is a Fail whose remedy says what to add.
fn rootless_access(snapshot: &Snapshot, stack: &ComposeStack, svc: &ComposeService, label: String, d: &mut Decisions) {
    let keeps = svc.keep_groups || svc.group_add.iter().any(|g| g == KEEP_GROUPS);
    let Some(owner) = stack.owner.as_deref().filter(|o| snapshot.user(o).is_some()) else {
        d.unchecked.push((
            label,
            "rootless, but its owner is not a captured user: whose user namespace and groups it has is unknown".into(),
        ));
        return;
    };
    match credentials(svc, snapshot) {
        Ok(c) => {
            if !keeps {
                d.warn(
                    label.clone(),
                    format!(
                        "runs rootless without keep-groups: inside {owner}'s user namespace its PUID/PGID map through /etc/subgid to ids of no host group, so it cannot open a render node of group render (0660) whatever PGID says; check fails it until GroupAdd=keep-groups (quadlet), --group-add keep-groups (podman run) or group_add: [ keep-groups ] (compose, crun) is added, or the node has a mode that others may open"
                    ),
                );
            }
            // Numeric group_add entries are gids of the namespace too: no host group.
            d.access.push(AccessExpectation {
                name: Some(label),
                uid: c.uid,
                gid: c.gid,
                groups: Vec::new(),
                rootless: Some(owner.to_owned()),
                keep_groups: keeps,
            });
        }
        Err(why) => d.unchecked.push((label, why)),
    }
}
