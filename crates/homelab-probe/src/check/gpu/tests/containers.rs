//! Container GPU access from fake facts: CDI specs (broken, stale, missing nodes) and Docker's
//! `features.cdi` and nvidia runtime.

use rstest::rstest;

use super::{alder_lake, one, rtx3060};
use crate::check::gpu::container::{self, ContainerFacts};
use crate::model::expectations::GpuExpectation;
use crate::model::finding::Status;
use crate::model::gpu::{CdiDevice, CdiSpecSummary, DockerGpuConfig};
use crate::model::text::ParseError;

fn nvidia_spec(file: &str, nodes: &[&str]) -> CdiSpecSummary {
    CdiSpecSummary {
        file: file.into(),
        cdi_version: "0.5.0".into(),
        kind: "nvidia.com/gpu".into(),
        devices: ["0", "all"]
            .iter()
            .map(|n| CdiDevice {
                qualified_name: format!("nvidia.com/gpu={n}"),
                device_nodes: nodes.iter().map(|s| (*s).to_owned()).collect(),
            })
            .collect(),
        common_device_nodes: vec!["/dev/nvidiactl".into()],
    }
}

fn docker(cdi: Option<bool>, runtime: bool) -> Option<Result<DockerGpuConfig, ParseError>> {
    Some(Ok(DockerGpuConfig {
        file: "/etc/docker/daemon.json".into(),
        found_via: "default".into(),
        exists: true,
        runtimes: if runtime { vec!["nvidia".into()] } else { Vec::new() },
        nvidia_runtime_path: runtime.then(|| "nvidia-container-runtime".into()),
        default_runtime: None,
        features_cdi: cdi,
        cdi_spec_dirs: None,
    }))
}

fn facts(
    specs: Vec<Result<CdiSpecSummary, ParseError>>,
    docker: Option<Result<DockerGpuConfig, ParseError>>,
) -> ContainerFacts {
    ContainerFacts { cdi_dirs: vec!["/etc/cdi".into(), "/var/run/cdi".into()], specs, docker }
}

/// (has NVIDIA GPU, CDI spec, docker features.cdi, nvidia runtime, required) -> summary status.
#[rstest]
#[case::cdi_on(true, true, Some(true), false, false, Status::Pass)]
#[case::cdi_unset(true, true, None, false, false, Status::Warn)]
#[case::cdi_off(true, true, Some(false), false, true, Status::Fail)]
#[case::cdi_no_docker_config(true, true, None, false, false, Status::Warn)]
#[case::runtime_only(true, false, None, true, true, Status::Pass)]
#[case::nothing(true, false, None, false, false, Status::Skip)]
#[case::nothing_required(true, false, None, false, true, Status::Fail)]
#[case::no_gpu(false, false, None, false, false, Status::Skip)]
#[case::no_gpu_required(false, false, None, false, true, Status::Fail)]
#[case::stale_config(false, true, Some(true), true, false, Status::Warn)]
fn nvidia_containers(
    #[case] has_gpu: bool,
    #[case] spec: bool,
    #[case] cdi: Option<bool>,
    #[case] runtime: bool,
    #[case] required: bool,
    #[case] want: Status,
) {
    let gpus = if has_gpu { vec![rtx3060()] } else { vec![alder_lake()] };
    let specs = if spec {
        vec![Ok(nvidia_spec("/var/run/cdi/nvidia-container-toolkit.json", &["/dev/nvidia0"]))]
    } else {
        Vec::new()
    };
    let exp = GpuExpectation { nvidia_containers: required, ..GpuExpectation::default() };
    let f = container::decide(&gpus, &facts(specs, docker(cdi, runtime)), &exp, None);
    let s = one(&f, "nvidia_containers");
    assert_eq!(s.status, want, "{s:#?}");
    if want == Status::Fail {
        assert!(s.remedy.is_some());
    }
    if has_gpu && !spec && !runtime && required {
        assert!(s.remedy.as_ref().unwrap().text.starts_with("hardware.nvidia-container-toolkit.enable = true;"));
    }
}

#[test]
fn broken_and_stale_specs() {
    let broken = ParseError {
        file: "/etc/cdi/nvidia.yaml".into(),
        line: 7,
        message: "did not find expected key (column 4)".into(),
    };
    let stale = nvidia_spec("/var/run/cdi/nvidia-container-toolkit.json", &["/dev/nvidia0", "/dev/nvidia1"]);
    let exists = |p: &str| p != "/dev/nvidia1";
    let f = container::decide(
        &[rtx3060()],
        &facts(vec![Err(broken), Ok(stale)], docker(Some(true), false)),
        &GpuExpectation::default(),
        Some(&exists),
    );
    let b = f.iter().find(|x| x.check == "cdi_spec" && x.status == Status::Fail).unwrap();
    assert_eq!(b.message, "/etc/cdi/nvidia.yaml:7: did not find expected key (column 4)");
    assert!(b.remedy.as_ref().unwrap().text.contains("nvidia-container-toolkit-cdi-generator"));
    let s = one(&f, "cdi_device_node");
    assert_eq!(s.status, Status::Warn);
    assert_eq!(
        s.message,
        "/var/run/cdi/nvidia-container-toolkit.json injects device nodes that do not exist: /dev/nvidia1 (nvidia.com/gpu=0) (the spec is stale: a GPU or driver changed since it was generated)"
    );
    assert_eq!(one(&f, "docker_daemon").message, "no nvidia runtime, features.cdi = true");
}

#[test]
fn missing_nodes_are_listed_once_each() {
    let spec = nvidia_spec("/etc/cdi/nvidia.yaml", &["/dev/nvidia1", "/dev/nvidia10"]);
    let exists = |p: &str| p == "/dev/nvidiactl";
    let exp = GpuExpectation { nvidia_containers: true, ..GpuExpectation::default() };
    let f = container::decide(&[rtx3060()], &facts(vec![Ok(spec)], None), &exp, Some(&exists));
    let s = one(&f, "cdi_device_node");
    assert_eq!(s.status, Status::Fail);
    assert_eq!(
        s.evidence["missing"],
        serde_json::json!(["/dev/nvidia1 (nvidia.com/gpu=0)", "/dev/nvidia10 (nvidia.com/gpu=0)"])
    );
    assert_eq!(
        one(&f, "nvidia_containers").message,
        "0000:01:00.0 NVIDIA [10de:2504] (driver nvidia): containers can be given it through CDI devices nvidia.com/gpu=0, nvidia.com/gpu=all (Docker is not installed; Podman and containerd read the same specs)"
    );
}
