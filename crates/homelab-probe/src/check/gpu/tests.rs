//! The GPU decisions on every error branch, with fake NVML and libva layers. The fakes only
//! stand in for the libraries' answers; the real libraries are exercised in
//! tests/gpu_live.rs and (by hand, under QEMU) in docs/gpu.md.

use std::collections::BTreeMap;

use rstest::rstest;

use super::container::{self, ContainerFacts};
use super::{nvenc, vaapi};
use crate::host::Host;
use crate::host::nvml::{self, NvmlDevices, NvmlLibrary};
use crate::host::vaapi::{VaEnv, VaapiLibrary, VaapiLoader, display_info, va};
use crate::model::expectations::{GpuExpectation, VaapiExpectation};
use crate::model::finding::{Finding, RemedyKind, Status};
use crate::model::gpu::{
    CdiDevice, CdiSpecSummary, DockerGpuConfig, LoadAttempt, NvmlError, NvmlOpenError, VaDisplayInfo, VaLoadError,
    VaQueryError,
};
use crate::model::inventory::{GpuDevice, GpuVendor, PciDevice, VideoCodec};
use crate::model::text::ParseError;

fn gpu(vendor: GpuVendor, address: &str, ids: (&str, &str), driver: Option<&str>, render: Option<&str>) -> GpuDevice {
    GpuDevice {
        pci: Some(PciDevice { address: address.into(), vendor: Some(ids.0.into()), device: Some(ids.1.into()) }),
        pci_class: Some("0x030000".into()),
        vendor,
        kernel_driver: driver.map(str::to_owned),
        drm_driver: None,
        render_node: render.map(str::to_owned),
        card_node: None,
    }
}

fn rtx3060() -> GpuDevice {
    gpu(GpuVendor::Nvidia, "0000:01:00.0", ("0x10de", "0x2504"), Some("nvidia"), Some("/dev/dri/renderD129"))
}

fn alder_lake() -> GpuDevice {
    gpu(GpuVendor::Intel, "0000:00:02.0", ("0x8086", "0x46a6"), Some("i915"), Some("/dev/dri/renderD128"))
}

fn one<'a>(findings: &'a [Finding], check: &str) -> &'a Finding {
    let all: Vec<&Finding> = findings.iter().filter(|f| f.check == check).collect();
    assert_eq!(all.len(), 1, "one {check} finding expected in {findings:#?}");
    all[0]
}

fn require_nvenc(codecs: &[VideoCodec]) -> GpuExpectation {
    GpuExpectation { nvenc: codecs.to_vec(), ..GpuExpectation::default() }
}

// ---------------------------------------------------------------------------------------------
// NVML

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

// ---------------------------------------------------------------------------------------------
// libva

struct FakeVa {
    load: Result<(), VaLoadError>,
    answers: BTreeMap<&'static str, Result<VaDisplayInfo, VaQueryError>>,
}

impl VaapiLoader for FakeVa {
    fn load(&self) -> Result<&dyn VaapiLibrary, VaLoadError> {
        self.load.clone().map(|()| self as &dyn VaapiLibrary)
    }
}

impl VaapiLibrary for FakeVa {
    fn libraries(&self) -> String {
        "libva.so.2 + libva-drm.so.2".into()
    }
    fn query(&self, node: &str) -> Result<VaDisplayInfo, VaQueryError> {
        self.answers.get(node).cloned().unwrap_or(Err(VaQueryError::NoDisplay))
    }
}

/// iHD on Alder Lake as Debian 12's intel-media-va-driver reports it (subset).
fn ihd() -> VaDisplayInfo {
    use va::{ENTRYPOINT_ENC_SLICE as ENC, ENTRYPOINT_ENC_SLICE_LP as LP, ENTRYPOINT_VLD as VLD};
    display_info(
        "1.17".into(),
        Some("Intel iHD driver for Intel(R) Gen Graphics - 23.1.1 ()".into()),
        vec![(7, vec![VLD, ENC, LP]), (17, vec![VLD, LP]), (32, vec![VLD])],
        vec!["VA-API version 1.17.0".into(), "Trying to open /run/opengl-driver/lib/dri/iHD_drv_video.so".into()],
    )
}

/// A sysroot holding only the files `files` (driver files for the resolution).
fn sysroot(files: &[&str]) -> (tempfile::TempDir, Host) {
    let t = tempfile::tempdir().unwrap();
    for f in files {
        let p = t.path().join(f.trim_start_matches('/'));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, "").unwrap();
    }
    let host = Host::at(t.path()).unwrap();
    (t, host)
}

fn va_findings(files: &[&str], gpus: &[GpuDevice], fake: Option<&FakeVa>, exp: &GpuExpectation) -> Vec<Finding> {
    let (_t, host) = sysroot(files);
    let facts = vaapi::gather_from(&host, gpus, fake.map(|f| f.load()), &VaEnv::default());
    vaapi::decide(&facts, gpus, exp)
}

fn require_vaapi(codecs: &[VideoCodec], node: Option<&str>) -> GpuExpectation {
    GpuExpectation {
        vaapi: Some(VaapiExpectation { encode: codecs.to_vec(), node: node.map(str::to_owned) }),
        ..GpuExpectation::default()
    }
}

const IHD: &str = "/run/opengl-driver/lib/dri/iHD_drv_video.so";

#[test]
fn answered_node_lists_codecs_and_meets_requirements() {
    let fake = FakeVa { load: Ok(()), answers: BTreeMap::from([("/dev/dri/renderD128", Ok(ihd()))]) };
    let exp = require_vaapi(&[VideoCodec::H264, VideoCodec::Hevc, VideoCodec::Av1], Some("/dev/dri/renderD128"));
    let f = va_findings(&[IHD], &[alder_lake()], Some(&fake), &exp);
    let n = one(&f, "vaapi");
    assert_eq!(n.status, Status::Pass);
    assert_eq!(
        n.message,
        "iHD_drv_video.so (Intel iHD driver for Intel(R) Gen Graphics - 23.1.1 ()): encode H.264, HEVC (low-power); decode H.264, HEVC, AV1"
    );
    let req: Vec<(&str, Status)> =
        f.iter().filter(|x| x.check == "vaapi_encode").map(|x| (x.subject.as_str(), x.status)).collect();
    assert_eq!(
        req,
        [
            ("VA-API h264 encode on /dev/dri/renderD128", Status::Pass),
            ("VA-API hevc encode on /dev/dri/renderD128", Status::Pass),
            ("VA-API av1 encode on /dev/dri/renderD128", Status::Fail),
        ]
    );
    let hevc = f.iter().find(|x| x.subject == "VA-API hevc encode on /dev/dri/renderD128").unwrap();
    assert_eq!(hevc.message, "iHD_drv_video.so encodes HEVC on /dev/dri/renderD128 (EncSliceLP: HEVCMain)");
    let av1 = f.iter().find(|x| x.subject == "VA-API av1 encode on /dev/dri/renderD128").unwrap();
    assert_eq!(
        av1.message,
        "VA-API AV1 encode is required, but /dev/dri/renderD128 (iHD_drv_video.so) offers AV1 decode only"
    );
    assert!(av1.remedy.as_ref().unwrap().text.contains("AV1 encode needs Arc"));
}

#[test]
fn i965_on_a_new_intel_gpu_points_to_intel_media_driver() {
    use va::{ENTRYPOINT_ENC_SLICE as ENC, ENTRYPOINT_VLD as VLD};
    let i965 = display_info(
        "1.17".into(),
        Some("Intel i965 driver".into()),
        vec![(7, vec![VLD, ENC]), (17, vec![VLD])],
        vec!["Trying to open /usr/lib/x86_64-linux-gnu/dri/i965_drv_video.so".into()],
    );
    let fake = FakeVa { load: Ok(()), answers: BTreeMap::from([("/dev/dri/renderD128", Ok(i965))]) };
    let f = va_findings(&[], &[alder_lake()], Some(&fake), &require_vaapi(&[VideoCodec::Hevc], None));
    let r = one(&f, "vaapi_encode");
    assert_eq!(r.status, Status::Fail);
    assert!(r.remedy.as_ref().unwrap().text.contains("pkgs.intel-media-driver"), "{r:#?}");
}

#[rstest]
#[case::missing_driver_not_required(&[], false, Status::Warn, "pkgs.intel-media-driver")]
#[case::missing_driver_required(&[], true, Status::Fail, "pkgs.intel-media-driver")]
#[case::driver_present_but_failing(&[IHD], false, Status::Warn, "vainfo --display drm --device /dev/dri/renderD128")]
fn initialize_failures(#[case] files: &[&str], #[case] required: bool, #[case] status: Status, #[case] remedy: &str) {
    let err = VaQueryError::Initialize {
        status: -1,
        status_text: va::status_text(-1).into(),
        log: vec!["VA-API version 1.17.0".into(), "va_openDriver() returns -1".into()],
    };
    let fake = FakeVa { load: Ok(()), answers: BTreeMap::from([("/dev/dri/renderD128", Err(err))]) };
    let exp = if required { require_vaapi(&[VideoCodec::H264], None) } else { GpuExpectation::default() };
    let f = va_findings(files, &[alder_lake()], Some(&fake), &exp);
    let n = one(&f, "vaapi");
    assert_eq!(n.status, status, "{n:#?}");
    assert!(n.remedy.as_ref().unwrap().text.contains(remedy), "{n:#?}");
    assert!(n.message.starts_with(
        "libva cannot use /dev/dri/renderD128: vaInitialize failed with status -1 (unknown libva error); "
    ));
    if files.is_empty() {
        assert!(
            n.message.contains(
                "looked for iHD_drv_video.so, i965_drv_video.so (DRM driver i915) in /run/opengl-driver/lib/dri, "
            ),
            "{}",
            n.message
        );
    }
    if required {
        assert_eq!(one(&f, "vaapi_encode").status, Status::Fail);
    }
}

#[test]
fn virtio_gpu_without_virgl() {
    // What libva 2.17 said under QEMU with -device virtio-gpu-pci (docs/gpu.md).
    let err = VaQueryError::Initialize {
        status: 2,
        status_text: va::status_text(2).into(),
        log: vec![
            "VA-API version 1.17.0".into(),
            "Trying to open /usr/lib/x86_64-linux-gnu/dri/virtio_gpu_drv_video.so".into(),
            "Found init function __vaDriverInit_1_17".into(),
            "/usr/lib/x86_64-linux-gnu/dri/virtio_gpu_drv_video.so init failed".into(),
            "va_openDriver() returns 2".into(),
        ],
    };
    let mut virtio =
        gpu(GpuVendor::Virtio, "0000:00:0a.0", ("0x1af4", "0x1050"), Some("virtio_gpu"), Some("/dev/dri/renderD128"));
    virtio.drm_driver = Some("virtio_gpu".into());
    let fake = FakeVa { load: Ok(()), answers: BTreeMap::from([("/dev/dri/renderD128", Err(err))]) };
    let f = va_findings(
        &["/usr/lib/x86_64-linux-gnu/dri/virtio_gpu_drv_video.so"],
        &[virtio],
        Some(&fake),
        &GpuExpectation::default(),
    );
    let n = one(&f, "vaapi");
    assert_eq!(n.status, Status::Warn);
    assert_eq!(
        n.message,
        "libva cannot use /dev/dri/renderD128: vaInitialize failed with status 2 (resource allocation failed); libva tried /usr/lib/x86_64-linux-gnu/dri/virtio_gpu_drv_video.so"
    );
    assert!(n.remedy.as_ref().unwrap().text.contains("virgl"));
}

#[test]
fn a_forced_libva_driver_is_named() {
    // Under QEMU, LIBVA_DRIVER_NAME=radeonsi made libva try radeonsi on virtio-gpu (docs/gpu.md).
    let err = VaQueryError::Initialize {
        status: 2,
        status_text: va::status_text(2).into(),
        log: vec!["Trying to open /usr/lib/x86_64-linux-gnu/dri/radeonsi_drv_video.so".into()],
    };
    let mut virtio =
        gpu(GpuVendor::Virtio, "0000:00:0a.0", ("0x1af4", "0x1050"), Some("virtio_gpu"), Some("/dev/dri/renderD128"));
    virtio.drm_driver = Some("virtio_gpu".into());
    let (_t, host) = sysroot(&["/usr/lib/x86_64-linux-gnu/dri/radeonsi_drv_video.so"]);
    let fake = FakeVa { load: Ok(()), answers: BTreeMap::from([("/dev/dri/renderD128", Err(err))]) };
    let env = VaEnv { driver_name: Some("radeonsi".into()), drivers_path: None };
    let facts = vaapi::gather_from(&host, std::slice::from_ref(&virtio), Some(fake.load()), &env);
    let f = vaapi::decide(&facts, &[virtio], &require_vaapi(&[VideoCodec::H264], None));
    for check in ["vaapi", "vaapi_encode"] {
        let r = one(&f, check).remedy.as_ref().unwrap();
        assert_eq!(
            (r.kind, r.text.as_str()),
            (
                RemedyKind::Command,
                "unset LIBVA_DRIVER_NAME  # it forces radeonsi; for DRM driver virtio_gpu libva would pick virtio_gpu"
            )
        );
    }
}

#[test]
fn open_and_nvidia_failures_skip_unless_required() {
    let open = VaQueryError::Open { error: "Permission denied (os error 13)".into() };
    let fake = FakeVa {
        load: Ok(()),
        answers: BTreeMap::from([
            ("/dev/dri/renderD128", Err(open)),
            ("/dev/dri/renderD129", Err(VaQueryError::NoDisplay)),
        ]),
    };
    let gpus = [alder_lake(), rtx3060()];
    let f = va_findings(&[], &gpus, Some(&fake), &GpuExpectation::default());
    let st: Vec<(&str, Status)> = f.iter().map(|x| (x.subject.as_str(), x.status)).collect();
    assert_eq!(st, [("/dev/dri/renderD128", Status::Skip), ("/dev/dri/renderD129", Status::Skip)]);
    assert!(f[1].message.contains("NVIDIA GPUs encode through NVENC"), "{}", f[1].message);
    let f = va_findings(&[], &gpus, Some(&fake), &require_vaapi(&[VideoCodec::H264], Some("/dev/dri/renderD128")));
    let st: Vec<(&str, &str, Status)> = f.iter().map(|x| (x.check.as_str(), x.subject.as_str(), x.status)).collect();
    assert_eq!(
        st,
        [
            ("vaapi", "/dev/dri/renderD128", Status::Fail),
            ("vaapi", "/dev/dri/renderD129", Status::Skip),
            ("vaapi_encode", "VA-API h264 encode on /dev/dri/renderD128", Status::Fail),
        ]
    );
}

#[test]
fn libva_missing() {
    let fake = FakeVa {
        load: Err(VaLoadError::Library {
            attempts: vec![LoadAttempt {
                library: "libva.so.2".into(),
                error: "libva.so.2: cannot open shared object file: No such file or directory".into(),
            }],
        }),
        answers: BTreeMap::new(),
    };
    let f = va_findings(&[IHD], &[alder_lake()], Some(&fake), &GpuExpectation::default());
    let l = one(&f, "libva");
    assert_eq!(l.status, Status::Skip);
    assert_eq!(
        l.message,
        "libva could not be loaded (libva.so.2: cannot open shared object file: No such file or directory), so no render node's VA-API entrypoints can be listed"
    );
    assert_eq!(one(&f, "vaapi").status, Status::Skip);
    let f = va_findings(&[IHD], &[alder_lake()], Some(&fake), &require_vaapi(&[VideoCodec::Hevc], None));
    assert_eq!(one(&f, "libva").status, Status::Fail);
    let r = one(&f, "vaapi_encode");
    assert_eq!(r.status, Status::Fail);
    assert!(r.remedy.as_ref().unwrap().text.contains("libva"), "{r:#?}");
    let disabled = FakeVa { load: Err(VaLoadError::Disabled), answers: BTreeMap::new() };
    let f = va_findings(&[], &[alder_lake()], Some(&disabled), &GpuExpectation::default());
    assert!(one(&f, "libva").message.contains("without the `vaapi` feature"));
}

#[test]
fn no_render_node() {
    let f = va_findings(&[], &[], None, &require_vaapi(&[VideoCodec::Hevc], None));
    assert_eq!(
        one(&f, "vaapi").message,
        "no render node under /dev/dri (no GPU driver is loaded), so there is no device for VA-API to open"
    );
    assert_eq!(one(&f, "vaapi_encode").status, Status::Fail);
    let mut headless = rtx3060();
    headless.render_node = None;
    let f = va_findings(&[], &[headless], None, &GpuExpectation::default());
    assert_eq!(
        one(&f, "vaapi").message,
        "no GPU has a render node (0000:01:00.0 NVIDIA [10de:2504] (driver nvidia)), so there is no device for VA-API to open"
    );
}

#[test]
fn sysroot_predictions() {
    let exp = require_vaapi(&[VideoCodec::Hevc], None);
    let f = va_findings(&[IHD], &[alder_lake()], None, &exp);
    assert_eq!(
        one(&f, "vaapi").message,
        "libva is asked only on the live host (this is a sysroot); libva would load /run/opengl-driver/lib/dri/iHD_drv_video.so"
    );
    assert_eq!(one(&f, "vaapi_encode").status, Status::Skip);
    let f = va_findings(&[], &[alder_lake()], None, &exp);
    assert_eq!(one(&f, "vaapi").status, Status::Fail);
    assert_eq!(one(&f, "vaapi_encode").status, Status::Fail);
    // A Haswell needs the old driver.
    let haswell =
        gpu(GpuVendor::Intel, "0000:00:02.0", ("0x8086", "0x0412"), Some("i915"), Some("/dev/dri/renderD128"));
    let f = va_findings(&[], &[haswell], None, &GpuExpectation::default());
    let n = one(&f, "vaapi");
    assert_eq!(n.status, Status::Warn);
    assert!(n.remedy.as_ref().unwrap().text.contains("pkgs.intel-vaapi-driver"));
    // A node that is not there.
    let f =
        va_findings(&[IHD], &[alder_lake()], None, &require_vaapi(&[VideoCodec::Hevc], Some("/dev/dri/renderD130")));
    let r = one(&f, "vaapi_encode");
    assert_eq!(r.status, Status::Fail);
    assert!(r.message.contains("/dev/dri/renderD130, which does not exist"), "{}", r.message);
}

// ---------------------------------------------------------------------------------------------
// Containers

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
