//! VA-API through a fake libva: answered nodes and their codecs, every load and initialise
//! failure, forced drivers, and the driver-file predictions made in a sysroot.

use std::collections::BTreeMap;

use rstest::rstest;

use super::{alder_lake, gpu, one, rtx3060};
use crate::check::gpu::vaapi;
use crate::host::Host;
use crate::host::vaapi::{VaEnv, VaapiLibrary, VaapiLoader, display_info, va};
use crate::model::expectations::{GpuExpectation, VaapiExpectation};
use crate::model::finding::{Finding, RemedyKind, Status};
use crate::model::gpu::{LoadAttempt, VaDisplayInfo, VaLoadError, VaQueryError};
use crate::model::inventory::{GpuDevice, GpuVendor, VideoCodec};

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
