//! NVENC through a fake NVML: every way opening NVML fails, encoder capacities and sessions, and
//! the match of NVML's GPUs with the PCI inventory.

use rstest::rstest;

use super::{alder_lake, gpu, one, require_nvenc, rtx3060};
use crate::check::gpu::nvenc;
use crate::host::nvml::{self, NvmlDevices, NvmlLibrary};
use crate::model::expectations::GpuExpectation;
use crate::model::finding::{Finding, RemedyKind, Status};
use crate::model::gpu::{LoadAttempt, NvmlError, NvmlOpenError};
use crate::model::inventory::{GpuDevice, GpuVendor, VideoCodec};

#[derive(Clone)]
struct FakeGpu {
    name: &'static str,
    bus_id: &'static str,
    h264: Result<u32, NvmlError>,
    hevc: Result<u32, NvmlError>,
    sessions: Result<u32, NvmlError>,
}

struct FakeNvml {
    open: Result<(), NvmlOpenError>,
    count: Result<u32, NvmlError>,
    gpus: Vec<FakeGpu>,
}

impl FakeNvml {
    fn with(gpus: Vec<FakeGpu>) -> Self {
        FakeNvml { open: Ok(()), count: Ok(gpus.len() as u32), gpus }
    }
    fn failing(e: NvmlOpenError) -> Self {
        FakeNvml { open: Err(e), count: Ok(0), gpus: Vec::new() }
    }
}

impl NvmlLibrary for FakeNvml {
    fn open(&self) -> Result<Box<dyn NvmlDevices + '_>, NvmlOpenError> {
        self.open.clone().map(|()| Box::new(self) as Box<dyn NvmlDevices>)
    }
}

impl NvmlDevices for &FakeNvml {
    fn library(&self) -> String {
        "libnvidia-ml.so.1".into()
    }
    fn driver_version(&self) -> Result<String, NvmlError> {
        Ok("550.54.14".into())
    }
    fn device_count(&self) -> Result<u32, NvmlError> {
        self.count.clone()
    }
    fn name(&self, i: u32) -> Result<String, NvmlError> {
        Ok(self.gpus[i as usize].name.into())
    }
    fn uuid(&self, i: u32) -> Result<String, NvmlError> {
        Ok(format!("GPU-0000000{i}-fake"))
    }
    fn pci_bus_id(&self, i: u32) -> Result<String, NvmlError> {
        Ok(self.gpus[i as usize].bus_id.into())
    }
    fn encoder_capacity(&self, i: u32, codec: VideoCodec) -> Result<u32, NvmlError> {
        match codec {
            VideoCodec::H264 => self.gpus[i as usize].h264.clone(),
            VideoCodec::Hevc => self.gpus[i as usize].hevc.clone(),
            VideoCodec::Av1 => Err(NvmlError::NotSupported),
        }
    }
    fn encoder_sessions(&self, i: u32) -> Result<u32, NvmlError> {
        self.gpus[i as usize].sessions.clone()
    }
}

fn geforce(h264: Result<u32, NvmlError>, hevc: Result<u32, NvmlError>, sessions: u32) -> FakeGpu {
    FakeGpu { name: "NVIDIA GeForce RTX 3060", bus_id: "00000000:01:00.0", h264, hevc, sessions: Ok(sessions) }
}

fn h100() -> FakeGpu {
    FakeGpu {
        name: "NVIDIA H100 PCIe",
        bus_id: "00000000:C1:00.0",
        h264: Err(NvmlError::NotSupported),
        hevc: Err(NvmlError::NotSupported),
        sessions: Err(NvmlError::NotSupported),
    }
}

fn nvenc_findings(gpus: &[GpuDevice], fake: &FakeNvml, exp: &GpuExpectation) -> Vec<Finding> {
    let report = nvml::gather(fake);
    nvenc::decide(true, gpus, Some(&report), exp)
}

fn library_missing() -> NvmlOpenError {
    NvmlOpenError::Library {
        attempts: vec![LoadAttempt {
            library: "libnvidia-ml.so.1".into(),
            error: "libnvidia-ml.so.1: cannot open shared object file: No such file or directory".into(),
        }],
    }
}

fn init(error: NvmlError) -> NvmlOpenError {
    NvmlOpenError::Init { library: "libnvidia-ml.so.1".into(), error }
}

/// (open error, host has an NVIDIA GPU, required) -> nvml status and remedy kind.
#[rstest]
#[case::absent_no_gpu(library_missing(), false, false, Status::Skip, None)]
#[case::absent_with_gpu(library_missing(), true, false, Status::Warn, Some(RemedyKind::Nixos))]
#[case::absent_required(library_missing(), false, true, Status::Fail, Some(RemedyKind::Manual))]
#[case::absent_required_with_gpu(library_missing(), true, true, Status::Fail, Some(RemedyKind::Nixos))]
#[case::driver_not_loaded(init(NvmlError::DriverNotLoaded), true, false, Status::Warn, Some(RemedyKind::Nixos))]
#[case::driver_not_loaded_no_gpu(init(NvmlError::DriverNotLoaded), false, false, Status::Skip, None)]
#[case::no_permission(init(NvmlError::NoPermission), true, false, Status::Skip, None)]
#[case::no_permission_required(init(NvmlError::NoPermission), true, true, Status::Fail, Some(RemedyKind::Manual))]
#[case::version_mismatch(init(NvmlError::VersionMismatch), true, false, Status::Warn, Some(RemedyKind::Command))]
#[case::other(init(NvmlError::Other("Unknown Error".into())), true, false, Status::Warn, Some(RemedyKind::Manual))]
#[case::disabled(NvmlOpenError::Disabled, true, false, Status::Skip, None)]
#[case::disabled_required(NvmlOpenError::Disabled, true, true, Status::Fail, Some(RemedyKind::Manual))]
fn nvml_open_failures(
    #[case] error: NvmlOpenError,
    #[case] has_gpu: bool,
    #[case] required: bool,
    #[case] status: Status,
    #[case] remedy: Option<RemedyKind>,
) {
    let gpus = if has_gpu { vec![rtx3060()] } else { vec![alder_lake()] };
    let exp = if required { require_nvenc(&[VideoCodec::Hevc]) } else { GpuExpectation::default() };
    let f = nvenc_findings(&gpus, &FakeNvml::failing(error), &exp);
    let nvml = one(&f, "nvml");
    assert_eq!(nvml.status, status, "{nvml:#?}");
    assert_eq!(nvml.remedy.as_ref().map(|r| r.kind), remedy, "{nvml:#?}");
    if required {
        let codec = one(&f, "nvenc_codec");
        assert_eq!((codec.status, codec.subject.as_str()), (Status::Fail, "NVENC hevc"));
        assert!(codec.remedy.is_some());
    }
}

#[test]
fn nvml_reasons_are_precise() {
    let f = nvenc_findings(&[alder_lake()], &FakeNvml::failing(library_missing()), &GpuExpectation::default());
    assert_eq!(
        one(&f, "nvml").message,
        "no NVIDIA GPU: no PCI device with vendor id 0x10de, and NVML (libnvidia-ml.so.1, part of NVIDIA's driver) is not installed (libnvidia-ml.so.1: cannot open shared object file: No such file or directory)"
    );
    let f =
        nvenc_findings(&[rtx3060()], &FakeNvml::failing(init(NvmlError::DriverNotLoaded)), &GpuExpectation::default());
    assert_eq!(
        one(&f, "nvml").message,
        "the NVIDIA kernel driver is not loaded (libnvidia-ml.so.1: nvmlInit: the NVIDIA kernel driver is not loaded), so NVML cannot see 0000:01:00.0 NVIDIA [10de:2504] (driver nvidia)"
    );
    let f =
        nvenc_findings(&[rtx3060()], &FakeNvml::failing(init(NvmlError::VersionMismatch)), &GpuExpectation::default());
    assert!(one(&f, "nvml").remedy.as_ref().unwrap().text.starts_with("systemctl reboot"));
}

#[test]
fn geforce_with_nvenc_matches_the_inventory_by_pci_address() {
    let fake = FakeNvml::with(vec![geforce(Ok(100), Ok(100), 0)]);
    let f = nvenc_findings(&[rtx3060()], &fake, &require_nvenc(&[VideoCodec::H264, VideoCodec::Hevc]));
    assert_eq!(one(&f, "nvml").message, "NVML (libnvidia-ml.so.1), driver 550.54.14: 1 GPU");
    let g = one(&f, "nvenc");
    assert_eq!((g.status, g.subject.as_str()), (Status::Pass, "0000:01:00.0"));
    assert_eq!(
        g.message,
        "NVIDIA GeForce RTX 3060: NVENC H.264 100% free, HEVC 100% free, 0 encoder sessions; driver 550.54.14"
    );
    assert_eq!(g.evidence["render_node"], "/dev/dri/renderD129");
    assert_eq!(g.evidence["gpu"]["pci_bus_id"]["value"], "00000000:01:00.0");
    let codecs: Vec<Status> = f.iter().filter(|x| x.check == "nvenc_codec").map(|x| x.status).collect();
    assert_eq!(codecs, [Status::Pass, Status::Pass]);
}

#[test]
fn h100_has_no_nvenc_and_that_is_a_finding_not_an_error() {
    let h = gpu(GpuVendor::Nvidia, "0000:c1:00.0", ("0x10de", "0x2331"), Some("nvidia"), None);
    let f = nvenc_findings(std::slice::from_ref(&h), &FakeNvml::with(vec![h100()]), &GpuExpectation::default());
    let g = one(&f, "nvenc");
    assert_eq!((g.status, g.subject.as_str()), (Status::Skip, "0000:c1:00.0"));
    assert_eq!(
        g.message,
        "NVIDIA H100 PCIe has no NVENC (encoder capacity: not supported): data-centre GPUs such as A100 and H100 have no video encoder; driver 550.54.14"
    );
    let f = nvenc_findings(&[h], &FakeNvml::with(vec![h100()]), &require_nvenc(&[VideoCodec::H264]));
    let c = one(&f, "nvenc_codec");
    assert_eq!(c.status, Status::Fail);
    assert_eq!(c.message, "NVENC H.264 encode is required, but no GPU offers it (NVIDIA H100 PCIe: none)");
}

#[rstest]
#[case::zero_idle(Ok(0), Ok(0), 0, Status::Skip, Status::Fail)]
#[case::zero_busy(Ok(0), Ok(0), 3, Status::Warn, Status::Pass)]
#[case::h264_only(Ok(100), Err(NvmlError::NotSupported), 0, Status::Pass, Status::Pass)]
#[case::unknown(Err(NvmlError::GpuLost), Ok(100), 0, Status::Warn, Status::Fail)]
fn encoder_states(
    #[case] h264: Result<u32, NvmlError>,
    #[case] hevc: Result<u32, NvmlError>,
    #[case] sessions: u32,
    #[case] gpu_status: Status,
    #[case] h264_required: Status,
) {
    let fake = FakeNvml::with(vec![geforce(h264, hevc, sessions)]);
    let f = nvenc_findings(&[rtx3060()], &fake, &require_nvenc(&[VideoCodec::H264]));
    assert_eq!(one(&f, "nvenc").status, gpu_status, "{f:#?}");
    assert_eq!(one(&f, "nvenc_codec").status, h264_required, "{f:#?}");
}

#[test]
fn nvml_sees_fewer_gpus_than_the_host_has() {
    let mut fake = FakeNvml::with(Vec::new());
    let f = nvenc_findings(&[rtx3060()], &fake, &GpuExpectation::default());
    assert_eq!(one(&f, "nvml").status, Status::Warn);
    fake.count = Err(NvmlError::Other("Unknown Error".into()));
    let f = nvenc_findings(&[rtx3060()], &fake, &GpuExpectation::default());
    assert_eq!(one(&f, "nvml").status, Status::Warn);
}

#[test]
fn sysroot_requirements_use_the_inventory() {
    let exp = require_nvenc(&[VideoCodec::Hevc]);
    let f = nvenc::decide(false, &[alder_lake()], None, &exp);
    assert_eq!(one(&f, "nvml").status, Status::Skip);
    assert_eq!(one(&f, "nvenc_codec").status, Status::Fail);
    let mut nouveau = rtx3060();
    nouveau.kernel_driver = Some("nouveau".into());
    let f = nvenc::decide(false, &[nouveau], None, &exp);
    let c = one(&f, "nvenc_codec");
    assert_eq!(c.status, Status::Fail);
    assert!(c.remedy.as_ref().unwrap().text.contains("services.xserver.videoDrivers = [ \"nvidia\" ];"));
    let f = nvenc::decide(false, &[rtx3060()], None, &exp);
    assert_eq!(one(&f, "nvenc_codec").status, Status::Skip);
}
