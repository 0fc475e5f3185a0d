//! Container GPU readiness, by reading configuration only (nothing is executed): the CDI specs
//! in `/etc/cdi` and `/var/run/cdi` (which `nvidia.com/gpu=...` devices a container can ask
//! for, and whether the device nodes they inject exist), and Docker's daemon configuration
//! (`runtimes.nvidia`, `features.cdi`), so a stack that reserves an NVIDIA GPU can be told
//! whether the host can give it one.
//!
//! Docker reads `/etc/docker/daemon.json` unless `docker.service` starts dockerd with
//! `--config-file` (NixOS does: `virtualisation.docker.daemon.settings` becomes a Nix store
//! file). CDI is on by default from Docker 28.2 (release notes); Docker 25 to 28.1 need
//! `features.cdi = true`, which NixOS's `hardware.nvidia-container-toolkit` sets itself.

use std::path::Path;

use crate::check::gpu::{P, gpu_text, nvidia_gpus, remedy};
use crate::host::Host;
use crate::model::expectations::GpuExpectation;
use crate::model::finding::{Finding, Remedy};
use crate::model::gpu::{CdiSpecSummary, DockerGpuConfig};
use crate::model::inventory::GpuDevice;
use crate::model::text::ParseError;
use crate::sources::{cdi, docker};

/// The directories the CDI registry reads by default (Docker, Podman, containerd).
pub const CDI_SPEC_DIRS: &[&str] = &["/etc/cdi", "/var/run/cdi"];

/// Where systemd looks for `docker.service`, highest precedence first (systemd.unit(5)).
const UNIT_DIRS: &[&str] =
    &["/etc/systemd/system", "/run/systemd/system", "/usr/lib/systemd/system", "/lib/systemd/system"];

/// Docker's default daemon configuration file.
pub const DOCKER_DAEMON_JSON: &str = "/etc/docker/daemon.json";

/// What the host's container configuration says.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerFacts {
    /// The CDI spec directories read.
    pub cdi_dirs: Vec<String>,
    /// Every CDI spec file found, parsed or not.
    pub specs: Vec<Result<CdiSpecSummary, ParseError>>,
    /// Docker's configuration; `None` when Docker is not installed (no unit, no daemon.json).
    pub docker: Option<Result<DockerGpuConfig, ParseError>>,
}

impl ContainerFacts {
    /// CDI devices of kind `nvidia.com/gpu`.
    pub fn nvidia_devices(&self) -> Vec<String> {
        self.specs
            .iter()
            .flatten()
            .filter(|s| s.kind == "nvidia.com/gpu")
            .flat_map(|s| s.devices.iter().map(|d| d.qualified_name.clone()))
            .collect()
    }
}

/// Reads the CDI specs and Docker's configuration of `host`.
pub fn gather(host: &Host) -> ContainerFacts {
    let docker = docker_config(host);
    let mut cdi_dirs: Vec<String> = CDI_SPEC_DIRS.iter().map(|d| (*d).to_owned()).collect();
    if let Some(Ok(DockerGpuConfig { cdi_spec_dirs: Some(dirs), .. })) = &docker {
        for d in dirs {
            if !cdi_dirs.contains(d) {
                cdi_dirs.push(d.clone());
            }
        }
    }
    let mut specs = Vec::new();
    for dir in &cdi_dirs {
        for name in host.read_dir(dir).unwrap_or_default() {
            let Some(name) = name.to_str().filter(|n| cdi::is_spec_file(n)) else { continue };
            let file = format!("{}/{name}", dir.trim_end_matches('/'));
            specs.push(match host.read_to_string(&file) {
                Ok(text) => cdi::parse(&text, Path::new(&file)),
                Err(e) => Err(ParseError { file: file.into(), line: 1, message: format!("cannot read: {e}") }),
            });
        }
    }
    ContainerFacts { cdi_dirs, specs, docker }
}

/// Finds and reads Docker's daemon configuration.
fn docker_config(host: &Host) -> Option<Result<DockerGpuConfig, ParseError>> {
    let unit_dir = UNIT_DIRS.iter().find(|d| host.exists(format!("{d}/docker.service")));
    let mut units: Vec<(String, String)> = Vec::new();
    if let Some(dir) = unit_dir {
        let file = format!("{dir}/docker.service");
        if let Ok(text) = host.read_to_string(&file) {
            units.push((file, text));
        }
    }
    let mut dropins: Vec<(String, String)> = Vec::new();
    for dir in UNIT_DIRS {
        let d = format!("{dir}/docker.service.d");
        for name in host.read_dir(&d).unwrap_or_default() {
            let Some(name) = name.to_str().filter(|n| n.ends_with(".conf")) else { continue };
            if dropins.iter().any(|(f, _)| f.ends_with(&format!("/{name}"))) {
                continue;
            }
            let file = format!("{d}/{name}");
            if let Ok(text) = host.read_to_string(&file) {
                dropins.push((file, text));
            }
        }
    }
    dropins.sort_by(|a, b| a.0.rsplit('/').next().cmp(&b.0.rsplit('/').next()));
    units.extend(dropins);
    let from_unit = docker::config_file_from_exec_start(units.iter().map(|(_, t)| t.as_str()));
    let (file, found_via) = match &from_unit {
        Some(f) => {
            let unit = units
                .iter()
                .rev()
                .find(|(_, t)| t.contains("--config-file"))
                .map_or("docker.service", |(f, _)| f.as_str());
            (f.clone(), format!("--config-file in {unit}"))
        }
        None => (DOCKER_DAEMON_JSON.to_owned(), "default".to_owned()),
    };
    let exists = host.exists(&file);
    if units.is_empty() && !exists {
        return None;
    }
    let mut cfg = DockerGpuConfig { file: file.clone(), found_via, exists, ..DockerGpuConfig::default() };
    if exists {
        let text = match host.read_to_string(&file) {
            Ok(t) => t,
            Err(e) => {
                return Some(Err(ParseError { file: file.into(), line: 1, message: format!("cannot read: {e}") }));
            }
        };
        let s = match docker::parse_daemon_json(&text, Path::new(&file)) {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        cfg.nvidia_runtime_path = s.runtimes.get("nvidia").cloned().flatten();
        cfg.runtimes = s.runtimes.into_keys().collect();
        cfg.default_runtime = s.default_runtime;
        cfg.features_cdi = s.features_cdi;
        cfg.cdi_spec_dirs = s.cdi_spec_dirs;
    }
    Some(Ok(cfg))
}

fn docker_text(c: &DockerGpuConfig) -> String {
    if !c.exists {
        return format!("{} does not exist: Docker runs with its defaults", c.file);
    }
    let mut parts = Vec::new();
    match &c.nvidia_runtime_path {
        Some(p) => parts.push(format!("runtime nvidia ({p})")),
        None if c.runtimes.iter().any(|r| r == "nvidia") => parts.push("runtime nvidia".into()),
        None => parts.push("no nvidia runtime".into()),
    }
    if let Some(d) = &c.default_runtime {
        parts.push(format!("default-runtime {d}"));
    }
    parts.push(match c.features_cdi {
        Some(v) => format!("features.cdi = {v}"),
        None => "features.cdi not set".into(),
    });
    parts.join(", ")
}

/// The decisions: `cdi_spec` per spec file, `cdi_device_node` for specs whose device nodes are
/// missing (live host only: `exists` is `None` in a sysroot), `docker_daemon`, and the summary
/// `nvidia_containers`.
pub fn decide(
    gpus: &[GpuDevice],
    facts: &ContainerFacts,
    exp: &GpuExpectation,
    exists: Option<&dyn Fn(&str) -> bool>,
) -> Vec<Finding> {
    let required = exp.nvidia_containers;
    let mut out = Vec::new();
    for spec in &facts.specs {
        match spec {
            Err(e) => {
                let fix = if e.file.to_string_lossy().contains("nvidia") {
                    remedy::regenerate_cdi()
                } else {
                    Remedy::manual(format!(
                        "fix or remove {}: the CDI registry skips a spec it cannot parse",
                        e.file.display()
                    ))
                };
                out.push(
                    Finding::fail(P, "cdi_spec", e.file.display().to_string(), format!("{e}"), fix)
                        .evidence("error", e),
                );
            }
            Ok(s) => {
                let names: Vec<&str> =
                    s.devices.iter().map(|d| d.qualified_name.split_once('=').map_or("", |(_, n)| n)).collect();
                out.push(
                    Finding::pass(
                        P,
                        "cdi_spec",
                        &s.file,
                        format!("{}: {} (CDI {})", s.kind, names.join(", "), s.cdi_version),
                    )
                    .evidence("spec", s),
                );
                if let Some(exists) = exists {
                    out.extend(missing_nodes(s, exists, required));
                }
            }
        }
    }
    match &facts.docker {
        Some(Err(e)) => out.push(
            Finding::fail(
                P,
                "docker_daemon",
                e.file.display().to_string(),
                format!("{e} (dockerd refuses to start with an invalid configuration)"),
                if e.file.starts_with("/nix/store") {
                    Remedy::manual("check virtualisation.docker.daemon.settings, which NixOS writes to this file")
                } else {
                    Remedy::manual(format!("fix the JSON in {}", e.file.display()))
                },
            )
            .evidence("error", e),
        ),
        Some(Ok(c)) if c.exists => {
            out.push(Finding::pass(P, "docker_daemon", &c.file, docker_text(c)).evidence("docker", c));
        }
        _ => {}
    }
    out.push(summary(gpus, facts, required));
    out
}

fn missing_nodes(s: &CdiSpecSummary, exists: &dyn Fn(&str) -> bool, required: bool) -> Option<Finding> {
    // (path, the device that injects it; none for the spec-wide edits), each path once.
    let mut gone: Vec<(&str, Option<&str>)> = Vec::new();
    let common = s.common_device_nodes.iter().map(|p| (p.as_str(), None));
    let per_device =
        s.devices.iter().flat_map(|d| d.device_nodes.iter().map(|p| (p.as_str(), Some(d.qualified_name.as_str()))));
    for (path, device) in common.chain(per_device) {
        if !exists(path) && !gone.iter().any(|(p, _)| *p == path) {
            gone.push((path, device));
        }
    }
    if gone.is_empty() {
        return None;
    }
    let missing: Vec<String> = gone
        .iter()
        .map(|(p, d)| match d {
            Some(d) => format!("{p} ({d})"),
            None => (*p).to_owned(),
        })
        .collect();
    let msg = format!(
        "{} injects device nodes that do not exist: {} (the spec is stale: a GPU or driver changed since it was generated)",
        s.file,
        missing.join(", ")
    );
    let fix = if s.kind.starts_with("nvidia.com/") {
        remedy::regenerate_cdi()
    } else {
        Remedy::manual(format!("regenerate {} with its vendor's tool", s.file))
    };
    let required = required && s.kind == "nvidia.com/gpu";
    Some(Finding::fail_or_warn(required, P, "cdi_device_node", &s.file, msg, fix).evidence("missing", missing))
}

fn summary(gpus: &[GpuDevice], facts: &ContainerFacts, required: bool) -> Finding {
    const SUBJECT: &str = "NVIDIA GPU in containers";
    let nvidia = nvidia_gpus(gpus);
    let devices = facts.nvidia_devices();
    let docker = facts.docker.as_ref().and_then(|d| d.as_ref().ok());
    let runtime = docker.is_some_and(|d| d.runtimes.iter().any(|r| r == "nvidia"));
    let cdi_off = docker.is_some_and(|d| d.features_cdi == Some(false));
    let evidence = |f: Finding| {
        f.evidence("nvidia_cdi_devices", &devices)
            .evidence("cdi_dirs", &facts.cdi_dirs)
            .evidence("docker", docker)
            .evidence("nvidia_gpus", nvidia.iter().map(|g| g.subject()).collect::<Vec<_>>())
    };
    if nvidia.is_empty() && devices.is_empty() && !runtime {
        let why = "no NVIDIA GPU, no nvidia.com/gpu CDI device and no nvidia Docker runtime";
        return evidence(if required {
            Finding::fail(
                P,
                "nvidia_containers",
                SUBJECT,
                format!("a stack reserves an NVIDIA GPU, but this host has {why}"),
                Remedy::manual("the host needs an NVIDIA GPU for a stack that reserves one"),
            )
        } else {
            Finding::skip(P, "nvidia_containers", SUBJECT, format!("{why}: nothing to hand to a container"))
        });
    }
    if nvidia.is_empty() {
        let msg = format!(
            "containers are configured for NVIDIA ({}) but the host has no NVIDIA GPU",
            if devices.is_empty() { "nvidia runtime".to_owned() } else { devices.join(", ") }
        );
        return evidence(if required {
            Finding::fail(
                P,
                "nvidia_containers",
                SUBJECT,
                msg,
                Remedy::manual("the host needs an NVIDIA GPU for a stack that reserves one"),
            )
        } else {
            Finding::warn(P, "nvidia_containers", SUBJECT, msg)
                .remedy(Remedy::manual("remove the stale NVIDIA container configuration, or install the GPU"))
        });
    }
    let gpus_text = nvidia.iter().map(|g| gpu_text(g)).collect::<Vec<_>>().join("; ");
    let via_cdi = !devices.is_empty() && !cdi_off;
    if via_cdi || runtime {
        let mut how = Vec::new();
        if via_cdi {
            let dirs = if facts.docker.is_none() {
                " (Docker is not installed; Podman and containerd read the same specs)"
            } else {
                ""
            };
            how.push(format!("CDI devices {}{dirs}", devices.join(", ")));
        }
        if runtime {
            how.push("Docker's nvidia runtime".to_owned());
        }
        let msg = format!("{gpus_text}: containers can be given it through {}", how.join(" and "));
        let needs_cdi_flag = via_cdi && !runtime && docker.is_some_and(|d| d.features_cdi.is_none());
        return evidence(if needs_cdi_flag {
            Finding::warn(
                P,
                "nvidia_containers",
                SUBJECT,
                format!("{msg}, but Docker's features.cdi is not set: Docker 25 to 28.1 ignore CDI devices without it (28.2 and newer enable CDI by default)"),
            )
            .remedy(remedy::docker_cdi())
        } else {
            Finding::pass(P, "nvidia_containers", SUBJECT, msg)
        });
    }
    let why = if !devices.is_empty() && cdi_off {
        format!(
            "{gpus_text}, and CDI devices {} exist, but Docker has features.cdi = false and no nvidia runtime",
            devices.join(", ")
        )
    } else {
        format!(
            "{gpus_text}, but no nvidia.com/gpu CDI device in {} and no nvidia runtime in Docker's configuration",
            facts.cdi_dirs.join(" or ")
        )
    };
    evidence(if required {
        Finding::fail(
            P,
            "nvidia_containers",
            SUBJECT,
            format!("a stack reserves an NVIDIA GPU: the host has {why}"),
            remedy::nvidia_container_toolkit(),
        )
    } else {
        Finding::skip(
            P,
            "nvidia_containers",
            SUBJECT,
            format!(
                "the host has {why}: containers cannot be given the GPU (set [gpu] nvidia_containers = true when a stack reserves it)"
            ),
        )
    })
}
