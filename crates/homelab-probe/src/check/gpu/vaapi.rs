//! VA-API decisions: per render node, the driver libva picks and the H.264, HEVC and AV1
//! encode (`EncSlice`, `EncSliceLP`) and decode (`VLD`) entrypoints it offers; per required
//! codec, whether some node (or the required node) can encode it.
//!
//! On the live host libva is asked. In a sysroot (or without libva) the probe still predicts
//! which driver file libva would load ([`resolve_driver`]): a missing driver is a finding with
//! the NixOS package that provides it.

use crate::check::gpu::{P, gpu_text, remedy};
use crate::host::Host;
use crate::host::drm::DRI_DIR;
use crate::host::vaapi::{LIBVA_CANDIDATES, VaEnv, VaapiLibrary, VaapiLoader, driver_candidates, resolve_driver};
use crate::model::expectations::{GpuExpectation, VaapiExpectation};
use crate::model::finding::{Finding, Remedy};
use crate::model::gpu::{VaDisplayInfo, VaDriverResolution, VaLoadError, VaQueryError};
use crate::model::inventory::{GpuDevice, GpuVendor, IntelGeneration, VideoCodec};

/// What libva said about one render node.
#[derive(Debug, Clone, PartialEq)]
pub enum VaQuery {
    /// libva was not asked; why.
    NotQueried(String),
    /// libva was asked and failed.
    Failed(VaQueryError),
    /// libva's answer.
    Answered(VaDisplayInfo),
}

/// Facts about one render node.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeFacts {
    /// `/dev/dri/renderD128`.
    pub node: String,
    /// The GPU behind it.
    pub gpu: GpuDevice,
    /// Where libva would look for its driver.
    pub resolution: VaDriverResolution,
    /// What libva said.
    pub query: VaQuery,
}

/// Everything the VA-API decisions need.
#[derive(Debug, Clone, PartialEq)]
pub struct VaapiFacts {
    /// Whether libva could be loaded (`None`: not tried, in a sysroot or without render nodes).
    pub libva: Option<Result<String, VaLoadError>>,
    /// One entry per render node.
    pub nodes: Vec<NodeFacts>,
}

/// Asks libva (live host only) about every render node of `gpus`.
pub fn gather(host: &Host, gpus: &[GpuDevice], loader: &dyn VaapiLoader, env: &VaEnv) -> VaapiFacts {
    // The process's LIBVA_* variables say nothing about a sysroot's own environment.
    let env = if host.is_live() { env.clone() } else { VaEnv::default() };
    let has_render = gpus.iter().any(|g| g.render_node.is_some());
    let lib = (host.is_live() && has_render).then(|| loader.load());
    gather_from(host, gpus, lib, &env)
}

/// [`gather`] with libva already loaded (`Some`) or not asked (`None`: a sysroot); `host` is
/// only used to find driver files.
pub fn gather_from(
    host: &Host,
    gpus: &[GpuDevice],
    lib: Option<Result<&dyn VaapiLibrary, VaLoadError>>,
    env: &VaEnv,
) -> VaapiFacts {
    let nodes = gpus
        .iter()
        .filter(|g| g.render_node.is_some())
        .map(|g| {
            let node = g.render_node.clone().unwrap_or_default();
            let query = match &lib {
                None => VaQuery::NotQueried("libva is asked only on the live host (this is a sysroot)".into()),
                Some(Err(_)) => VaQuery::NotQueried("libva could not be loaded (see the libva finding)".into()),
                Some(Ok(lib)) => match lib.query(&node) {
                    Ok(info) => VaQuery::Answered(info),
                    Err(e) => VaQuery::Failed(e),
                },
            };
            NodeFacts {
                resolution: resolve_driver(host, g.drm_driver_name().as_deref(), env),
                node,
                gpu: g.clone(),
                query,
            }
        })
        .collect();
    VaapiFacts { libva: lib.map(|r| r.map(|l| l.libraries())), nodes }
}

/// `iHD_drv_video.so` from a driver path.
fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `encode H.264, HEVC (low-power); decode H.264, HEVC, AV1`.
pub fn codecs_text(info: &VaDisplayInfo) -> String {
    let mut enc = Vec::new();
    let mut dec = Vec::new();
    for c in VideoCodec::ALL {
        let Some(s) = info.codecs.get(&c) else { continue };
        if s.can_encode() {
            enc.push(if s.encode.is_empty() { format!("{} (low-power)", c.label()) } else { c.label().to_owned() });
        }
        if s.can_decode() {
            dec.push(c.label().to_owned());
        }
    }
    let list = |v: Vec<String>| if v.is_empty() { "none".to_owned() } else { v.join(", ") };
    format!("encode {}; decode {}", list(enc), list(dec))
}

fn driver_of(n: &NodeFacts, info: &VaDisplayInfo) -> String {
    info.driver_path
        .as_deref()
        .or(n.resolution.found.as_deref())
        .map_or_else(|| "the VA driver".to_owned(), |p| file_name(p).to_owned())
}

fn search_text(r: &VaDriverResolution) -> String {
    let name = match (&r.driver_name_env, &r.drm_driver) {
        (Some(env), _) => format!("LIBVA_DRIVER_NAME={env}"),
        (None, Some(d)) => format!("DRM driver {d}"),
        (None, None) => "unknown DRM driver".into(),
    };
    format!("looked for {} ({name}) in {}", r.candidate_files(), r.search_path.join(", "))
}

/// The decisions: `libva`, `vaapi` per render node, `vaapi_encode` per required codec.
pub fn decide(facts: &VaapiFacts, gpus: &[GpuDevice], exp: &GpuExpectation) -> Vec<Finding> {
    let req = exp.vaapi.as_ref();
    let mut out = Vec::new();
    if facts.nodes.is_empty() {
        let why = if gpus.is_empty() {
            format!(
                "no render node under {DRI_DIR} (no GPU driver is loaded), so there is no device for VA-API to open"
            )
        } else {
            format!(
                "no GPU has a render node ({}), so there is no device for VA-API to open",
                gpus.iter().map(gpu_text).collect::<Vec<_>>().join("; ")
            )
        };
        out.push(Finding::skip(P, "vaapi", DRI_DIR, why.clone()));
        if let Some(r) = req {
            let fix = gpus.iter().find(|g| g.vendor != GpuVendor::Nvidia).map_or_else(
                || Remedy::manual("VA-API encode needs an Intel or AMD GPU with its driver (i915/xe, amdgpu) loaded"),
                remedy::vaapi_driver,
            );
            for &c in &r.encode {
                out.push(Finding::fail(
                    P,
                    "vaapi_encode",
                    subject(c, r),
                    format!("VA-API {} encode is required, but {why}", c.label()),
                    fix.clone(),
                ));
            }
        }
        return out;
    }
    if let Some(Err(e)) = &facts.libva {
        out.push(libva_finding(e, req.is_some()));
    }
    for n in &facts.nodes {
        let required = req.is_some_and(|r| r.node.as_ref().is_none_or(|want| *want == n.node));
        out.push(node_finding(n, required));
    }
    if let Some(r) = req {
        for &c in &r.encode {
            out.push(requirement(c, r, facts));
        }
    }
    out
}

fn libva_remedy() -> Remedy {
    Remedy::manual(
        "make libva.so.2 and libva-drm.so.2 loadable: on NixOS run homelab-verify from its Nix package or with LD_LIBRARY_PATH=${pkgs.libva}/lib; on Debian/Ubuntu: apt-get install libva2 libva-drm2",
    )
}

fn libva_finding(e: &VaLoadError, required: bool) -> Finding {
    let msg = match e {
        VaLoadError::Library { attempts } => format!(
            "libva could not be loaded ({}), so no render node's VA-API entrypoints can be listed",
            attempts.iter().map(|a| a.error.clone()).collect::<Vec<_>>().join("; ")
        ),
        VaLoadError::Disabled => "libva was not asked: homelab-probe was built without the `vaapi` feature".into(),
    };
    let f = if required {
        Finding::fail(P, "libva", "libva", format!("VA-API encode is required, but {msg}"), libva_remedy())
    } else {
        Finding::skip(P, "libva", "libva", msg)
    };
    f.evidence("error", e).evidence("tried", LIBVA_CANDIDATES)
}

fn node_finding(n: &NodeFacts, required: bool) -> Finding {
    let nvidia = n.gpu.vendor == GpuVendor::Nvidia;
    let nvidia_note =
        "NVIDIA GPUs encode through NVENC, not VA-API; VA-API on NVIDIA is nvidia-vaapi-driver, which decodes only";
    let f = match &n.query {
        VaQuery::Answered(info) => {
            let vendor = info.vendor.as_deref().map(|v| format!(" ({v})")).unwrap_or_default();
            Finding::pass(P, "vaapi", &n.node, format!("{}{vendor}: {}", driver_of(n, info), codecs_text(info)))
                .evidence("vaapi", info)
        }
        VaQuery::Failed(VaQueryError::Open { error }) => {
            let msg = format!("cannot open {} to ask libva: {error}", n.node);
            if required {
                Finding::fail(
                    P,
                    "vaapi",
                    &n.node,
                    msg,
                    Remedy::manual("run homelab-verify as root, or as a user who can open the render node read/write"),
                )
            } else {
                Finding::skip(P, "vaapi", &n.node, msg)
            }
        }
        VaQuery::Failed(e) => {
            let tried: Vec<&str> = match e {
                VaQueryError::Initialize { log, .. } => {
                    log.iter().filter_map(|l| l.strip_prefix("Trying to open ")).map(str::trim).collect()
                }
                _ => Vec::new(),
            };
            let tried = if tried.is_empty() {
                match &n.resolution.found {
                    Some(f) => format!("libva would load {f}"),
                    None => search_text(&n.resolution),
                }
            } else {
                format!("libva tried {}", tried.join(", "))
            };
            let msg = format!("libva cannot use {}: {e}; {tried}", n.node);
            let f = if nvidia && !required {
                Finding::skip(P, "vaapi", &n.node, format!("{msg}. {nvidia_note}"))
            } else {
                let fix = if let Some(forced) = forced_driver(&n.resolution) {
                    forced
                } else if n.resolution.found.is_none() || matches!(n.gpu.vendor, GpuVendor::Virtio | GpuVendor::Nvidia)
                {
                    remedy::vaapi_driver(&n.gpu)
                } else {
                    Remedy::command(format!(
                        "vainfo --display drm --device {}  # shows the VA driver's own error (package libva-utils)",
                        n.node
                    ))
                };
                Finding::fail_or_warn(required, P, "vaapi", &n.node, msg, fix)
            };
            f.evidence("error", e)
        }
        VaQuery::NotQueried(why) => match &n.resolution.found {
            Some(path) => Finding::skip(P, "vaapi", &n.node, format!("{why}; libva would load {path}")),
            None if n.resolution.candidates.is_empty() => Finding::skip(
                P,
                "vaapi",
                &n.node,
                format!("{why}; the DRM driver of {} is unknown, so its VA-API driver cannot be predicted", n.node),
            ),
            None if nvidia && !required => Finding::skip(
                P,
                "vaapi",
                &n.node,
                format!("{why}; no VA-API driver: {}. {nvidia_note}", search_text(&n.resolution)),
            ),
            None => {
                let msg = format!("{why}; no VA-API driver for {}: {}", n.node, search_text(&n.resolution));
                Finding::fail_or_warn(required, P, "vaapi", &n.node, msg, remedy::vaapi_driver(&n.gpu))
            }
        },
    };
    f.evidence("gpu", &n.gpu).evidence("driver_resolution", &n.resolution)
}

/// When `LIBVA_DRIVER_NAME` forces a driver that libva would not pick for this DRM driver, the
/// fix is to unset it.
fn forced_driver(r: &VaDriverResolution) -> Option<Remedy> {
    let (env, drm) = (r.driver_name_env.as_ref()?, r.drm_driver.as_ref()?);
    let natural = driver_candidates(drm);
    (!natural.contains(env)).then(|| {
        Remedy::command(format!(
            "unset LIBVA_DRIVER_NAME  # it forces {env}; for DRM driver {drm} libva would pick {}",
            natural.join(" or ")
        ))
    })
}

fn subject(c: VideoCodec, r: &VaapiExpectation) -> String {
    match &r.node {
        Some(node) => format!("VA-API {} encode on {node}", c.key()),
        None => format!("VA-API {} encode", c.key()),
    }
}

/// Why `codec` cannot be encoded with VA-API on this GPU, and what might help.
fn codec_missing_remedy(gpu: &GpuDevice, info: Option<&VaDisplayInfo>, codec: VideoCodec) -> Remedy {
    let i965 = info.and_then(|i| i.driver_path.as_deref()).is_some_and(|p| file_name(p).starts_with("i965"));
    match gpu.vendor {
        GpuVendor::Intel if i965 && gpu.intel_generation() == IntelGeneration::Gen8OrNewer => remedy::vaapi_driver(gpu),
        GpuVendor::Intel => Remedy::manual(format!(
            "this Intel GPU or its driver has no {} encoder: HEVC encode needs Skylake (Gen9) or newer, AV1 encode needs Arc (DG2) or Meteor Lake or newer; on Gen9 to Gen11, low-power encode also needs the HuC firmware: boot.kernelParams = [ \"i915.enable_guc=2\" ];",
            codec.label()
        )),
        GpuVendor::Amd => Remedy::manual(format!(
            "this AMD GPU has no {} encoder in VA-API (AV1 encode needs RDNA3, RX 7000, or newer); NixOS's mesa is built with every codec",
            codec.label()
        )),
        GpuVendor::Nvidia => {
            Remedy::manual("NVIDIA encodes through NVENC, not VA-API: require it with [gpu] nvenc = [...] instead")
        }
        GpuVendor::Virtio | GpuVendor::Other => remedy::vaapi_driver(gpu),
    }
}

fn requirement(codec: VideoCodec, r: &VaapiExpectation, facts: &VaapiFacts) -> Finding {
    let subject = subject(codec, r);
    let candidates: Vec<&NodeFacts> =
        facts.nodes.iter().filter(|n| r.node.as_ref().is_none_or(|want| *want == n.node)).collect();
    if candidates.is_empty() {
        let have = facts.nodes.iter().map(|n| n.node.as_str()).collect::<Vec<_>>().join(", ");
        return Finding::fail(
            P,
            "vaapi_encode",
            subject,
            format!(
                "VA-API {} encode is required on {}, which does not exist (render nodes: {have})",
                codec.label(),
                r.node.as_deref().unwrap_or("?")
            ),
            Remedy::manual(format!("name an existing render node in [gpu.vaapi] node (render nodes: {have})")),
        );
    }
    let mut reasons = Vec::new();
    for n in &candidates {
        match &n.query {
            VaQuery::Answered(info) => {
                let support = info.codecs.get(&codec).cloned().unwrap_or_default();
                if support.can_encode() {
                    let mut how = Vec::new();
                    if !support.encode.is_empty() {
                        how.push(format!("EncSlice: {}", support.encode.join(", ")));
                    }
                    if !support.encode_low_power.is_empty() {
                        how.push(format!("EncSliceLP: {}", support.encode_low_power.join(", ")));
                    }
                    return Finding::pass(
                        P,
                        "vaapi_encode",
                        subject,
                        format!("{} encodes {} on {} ({})", driver_of(n, info), codec.label(), n.node, how.join("; ")),
                    )
                    .evidence("support", support);
                }
                let what = if support.can_decode() { "decode only" } else { "neither encode nor decode" };
                reasons.push(format!("{} ({}) offers {} {what}", n.node, driver_of(n, info), codec.label()));
            }
            VaQuery::Failed(e) => reasons.push(format!("{}: {e}", n.node)),
            VaQuery::NotQueried(why) => match &n.resolution.found {
                Some(_) if why.contains("sysroot") => {
                    return Finding::skip(
                        P,
                        "vaapi_encode",
                        subject,
                        format!(
                            "VA-API {} encode can only be verified on the live host; in this sysroot {} has its driver ({})",
                            codec.label(),
                            n.node,
                            n.resolution.found.as_deref().unwrap_or_default()
                        ),
                    );
                }
                Some(f) => reasons.push(format!("{}: {why} (its driver would be {f})", n.node)),
                None => reasons.push(format!("{}: no VA-API driver ({})", n.node, search_text(&n.resolution))),
            },
        }
    }
    let first = candidates[0];
    let forced = forced_driver(&first.resolution);
    let fix = match (&first.query, &first.resolution.found) {
        (VaQuery::Failed(_), _) if forced.is_some() => forced.unwrap_or_else(|| remedy::vaapi_driver(&first.gpu)),
        (VaQuery::Answered(info), _) => codec_missing_remedy(&first.gpu, Some(info), codec),
        (VaQuery::NotQueried(_), Some(_)) => libva_remedy(),
        _ => remedy::vaapi_driver(&first.gpu),
    };
    Finding::fail(
        P,
        "vaapi_encode",
        subject,
        format!("VA-API {} encode is required, but {}", codec.label(), reasons.join("; ")),
        fix,
    )
}
