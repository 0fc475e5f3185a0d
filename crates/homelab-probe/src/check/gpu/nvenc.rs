//! NVENC decisions over what NVML said ([`NvmlReport`]) and the GPU inventory.
//!
//! `nvmlDeviceGetEncoderCapacity` answers, per codec, the share of the encoder that is still
//! free (0 to 100). `NOT_SUPPORTED`, or 0 while no session runs, means the GPU has no NVENC for
//! that codec (data-centre parts such as A100 and H100 have none): a finding, not an error. 0
//! while sessions run means the encoder is busy, not absent.

use crate::check::gpu::{P, gpu_text, nvidia_gpus, remedy};
use crate::host::nvml::{NVML_CODECS, NVML_LIBRARY_CANDIDATES};
use crate::model::expectations::GpuExpectation;
use crate::model::finding::{Finding, Remedy};
use crate::model::gpu::{NvmlError, NvmlGpu, NvmlOpenError, NvmlReport, Probed};
use crate::model::inventory::{GpuDevice, VideoCodec};

/// What one GPU's encoder can do for one codec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoder {
    /// NVENC exists and this share (percent) is free.
    Free(u32),
    /// NVENC exists and is fully used by running sessions.
    Busy,
    /// No NVENC for this codec.
    Absent,
    /// NVML could not say.
    Unknown,
}

/// What GPU `g`'s encoder can do for `codec`.
pub fn encoder(g: &NvmlGpu, codec: VideoCodec) -> Encoder {
    let sessions = g.encoder_sessions.value().copied().unwrap_or(0);
    match g.encoder_capacity.get(&codec) {
        Some(Probed::Value(0)) if sessions > 0 => Encoder::Busy,
        Some(Probed::Value(0)) | Some(Probed::Error(NvmlError::NotSupported)) => Encoder::Absent,
        Some(Probed::Value(c)) => Encoder::Free(*c),
        Some(Probed::Error(_)) | None => Encoder::Unknown,
    }
}

/// The NVENC findings: `nvml` (could NVML be asked), `nvenc` per GPU NVML sees, and
/// `nvenc_codec` per codec the expectations require.
pub fn decide(
    live: bool,
    gpus: &[GpuDevice],
    nvml: Option<&Result<NvmlReport, NvmlOpenError>>,
    exp: &GpuExpectation,
) -> Vec<Finding> {
    let required = !exp.nvenc.is_empty();
    let nvidia = nvidia_gpus(gpus);
    let mut out = Vec::new();
    let report = match nvml {
        None => {
            out.push(not_asked(live, &nvidia));
            out.extend(exp.nvenc.iter().map(|&c| sysroot_requirement(c, &nvidia)));
            return out;
        }
        Some(Err(e)) => {
            out.push(open_failure(e, &nvidia, required));
            out.extend(exp.nvenc.iter().map(|&c| {
                Finding::fail(
                    P,
                    "nvenc_codec",
                    format!("NVENC {}", c.key()),
                    format!(
                        "NVENC {} encode is required, but NVML could not be asked (see the nvml finding)",
                        c.label()
                    ),
                    open_remedy(e, &nvidia),
                )
            }));
            return out;
        }
        Some(Ok(r)) => r,
    };
    out.push(opened(report, &nvidia, required));
    for g in &report.gpus {
        out.push(gpu_finding(g, report, gpus));
    }
    for &codec in &exp.nvenc {
        out.push(requirement(codec, report));
    }
    out
}

fn driver_version(r: &NvmlReport) -> String {
    match &r.driver_version {
        Probed::Value(v) => v.clone(),
        Probed::Error(e) => format!("unknown ({e})"),
    }
}

/// The `nvml` finding when NVML was not asked: a sysroot.
fn not_asked(live: bool, nvidia: &[&GpuDevice]) -> Finding {
    let why = if live { "NVML was not asked" } else { "NVML is asked only on the live host (this is a sysroot)" };
    let reason = if nvidia.is_empty() {
        "no NVIDIA GPU: no PCI device with vendor id 0x10de, so there is no NVENC to check".to_owned()
    } else {
        format!("{why}: {}", nvidia.iter().map(|g| gpu_text(g)).collect::<Vec<_>>().join("; "))
    };
    Finding::skip(P, "nvml", "NVML", reason)
}

/// A required codec in a sysroot: decided as far as the inventory allows.
fn sysroot_requirement(codec: VideoCodec, nvidia: &[&GpuDevice]) -> Finding {
    let subject = format!("NVENC {}", codec.key());
    if nvidia.is_empty() {
        return Finding::fail(
            P,
            "nvenc_codec",
            subject,
            format!("NVENC {} encode is required, but the host has no NVIDIA GPU", codec.label()),
            Remedy::manual("NVENC needs an NVIDIA GPU with video encoders (GeForce, RTX/Quadro, T4, L4, L40)"),
        );
    }
    if let Some(g) = nvidia.iter().find(|g| g.kernel_driver.as_deref() != Some("nvidia")) {
        return Finding::fail(
            P,
            "nvenc_codec",
            subject,
            format!("NVENC {} encode is required, but {} is not driven by NVIDIA's driver", codec.label(), gpu_text(g)),
            remedy::nvidia_driver(),
        );
    }
    Finding::skip(
        P,
        "nvenc_codec",
        subject,
        format!("NVENC {} can only be verified on the live host (NVML is not asked in a sysroot)", codec.label()),
    )
}

fn attempts_text(e: &NvmlOpenError) -> String {
    match e {
        NvmlOpenError::Library { attempts } => attempts.iter().map(|a| a.error.clone()).collect::<Vec<_>>().join("; "),
        NvmlOpenError::Init { library, error } => format!("{library}: nvmlInit: {error}"),
        NvmlOpenError::Disabled => "homelab-probe was built without the `nvml` feature".into(),
    }
}

fn open_remedy(e: &NvmlOpenError, nvidia: &[&GpuDevice]) -> Remedy {
    match e {
        _ if nvidia.is_empty() => {
            Remedy::manual("NVENC needs an NVIDIA GPU with video encoders (GeForce, RTX/Quadro, T4, L4, L40)")
        }
        NvmlOpenError::Library { .. } | NvmlOpenError::Init { error: NvmlError::DriverNotLoaded, .. } => {
            remedy::nvidia_driver()
        }
        NvmlOpenError::Init { error: NvmlError::NoPermission, .. } => Remedy::manual(
            "run homelab-verify as root or as a user who can open /dev/nvidiactl (NixOS creates it 0666)",
        ),
        NvmlOpenError::Init { error: NvmlError::VersionMismatch, .. } => Remedy::command(
            "systemctl reboot  # the loaded NVIDIA kernel module is older than libnvidia-ml after a driver update",
        ),
        NvmlOpenError::Init { .. } => {
            Remedy::manual("see `journalctl -k | grep -i nvrm` for what the NVIDIA driver reports")
        }
        NvmlOpenError::Disabled => Remedy::manual("build homelab-verify with the `nvml` cargo feature (on by default)"),
    }
}

/// The `nvml` finding when NVML could not be opened.
fn open_failure(e: &NvmlOpenError, nvidia: &[&GpuDevice], required: bool) -> Finding {
    let detail = attempts_text(e);
    let gpus = nvidia.iter().map(|g| gpu_text(g)).collect::<Vec<_>>().join("; ");
    let (message, problem) = match e {
        NvmlOpenError::Library { .. } if nvidia.is_empty() => (
            format!(
                "no NVIDIA GPU: no PCI device with vendor id 0x10de, and NVML (libnvidia-ml.so.1, part of NVIDIA's driver) is not installed ({detail})"
            ),
            false,
        ),
        NvmlOpenError::Library { .. } => (
            format!(
                "NVML (libnvidia-ml.so.1, part of NVIDIA's driver) could not be loaded ({detail}), but the host has {gpus}"
            ),
            true,
        ),
        NvmlOpenError::Init { error: NvmlError::DriverNotLoaded, .. } if nvidia.is_empty() => {
            (format!("no NVIDIA GPU: NVML is installed but the NVIDIA kernel driver is not loaded ({detail})"), false)
        }
        NvmlOpenError::Init { error: NvmlError::DriverNotLoaded, .. } => {
            (format!("the NVIDIA kernel driver is not loaded ({detail}), so NVML cannot see {gpus}"), true)
        }
        NvmlOpenError::Init { error: NvmlError::NoPermission, .. } => {
            (format!("no permission to talk to the NVIDIA driver ({detail}): NVENC could not be checked"), false)
        }
        NvmlOpenError::Init { error: NvmlError::VersionMismatch, .. } => (
            format!(
                "the NVIDIA kernel module and libnvidia-ml are different versions ({detail}): NVIDIA's driver is unusable until a reboot"
            ),
            true,
        ),
        NvmlOpenError::Init { .. } => (format!("NVML failed to initialise ({detail})"), !nvidia.is_empty()),
        NvmlOpenError::Disabled => (format!("NVML was not asked: {detail}"), false),
    };
    let f = if required {
        Finding::fail(P, "nvml", "NVML", format!("NVENC is required, but {message}"), open_remedy(e, nvidia))
    } else if problem {
        Finding::warn(P, "nvml", "NVML", message).remedy(open_remedy(e, nvidia))
    } else {
        Finding::skip(P, "nvml", "NVML", message)
    };
    f.evidence("error", e).evidence("tried", NVML_LIBRARY_CANDIDATES)
}

/// The `nvml` finding when NVML answered.
fn opened(r: &NvmlReport, nvidia: &[&GpuDevice], required: bool) -> Finding {
    let count = match &r.device_count {
        Probed::Value(n) => format!("{n} GPU{}", if *n == 1 { "" } else { "s" }),
        Probed::Error(e) => format!("GPU count unknown ({e})"),
    };
    let msg = format!("NVML ({}), driver {}: {count}", r.library, driver_version(r));
    let f = match (&r.device_count, nvidia.is_empty()) {
        (Probed::Value(0), false) | (Probed::Error(_), false) => Finding::warn(
            P,
            "nvml",
            "NVML",
            format!("{msg}, but the host has {}", nvidia.iter().map(|g| gpu_text(g)).collect::<Vec<_>>().join("; ")),
        )
        .remedy(remedy::nvidia_driver()),
        (Probed::Value(0), true) if required => Finding::fail(
            P,
            "nvml",
            "NVML",
            format!("NVENC is required, but {msg}"),
            Remedy::manual("NVENC needs an NVIDIA GPU with video encoders (GeForce, RTX/Quadro, T4, L4, L40)"),
        ),
        _ => Finding::pass(P, "nvml", "NVML", msg),
    };
    f.evidence("library", &r.library)
        .evidence("driver_version", &r.driver_version)
        .evidence("device_count", &r.device_count)
}

fn encoder_text(e: Encoder) -> String {
    match e {
        Encoder::Free(c) => format!("{c}% free"),
        Encoder::Busy => "busy (0% free)".into(),
        Encoder::Absent => "none".into(),
        Encoder::Unknown => "unknown".into(),
    }
}

/// The `nvenc` finding of one GPU NVML sees.
fn gpu_finding(g: &NvmlGpu, r: &NvmlReport, gpus: &[GpuDevice]) -> Finding {
    let subject = g.pci_address.clone().unwrap_or_else(|| format!("NVIDIA GPU {}", g.index));
    let encoders: Vec<(VideoCodec, Encoder)> = NVML_CODECS.iter().map(|&c| (c, encoder(g, c))).collect();
    let sessions = match &g.encoder_sessions {
        Probed::Value(n) => format!("{n} encoder session{}", if *n == 1 { "" } else { "s" }),
        Probed::Error(e) => format!("encoder sessions unknown ({e})"),
    };
    let per_codec =
        encoders.iter().map(|(c, e)| format!("{} {}", c.label(), encoder_text(*e))).collect::<Vec<_>>().join(", ");
    let name = g.display_name();
    let driver = driver_version(r);
    let f = if encoders.iter().all(|(_, e)| *e == Encoder::Absent) {
        let why = match g.encoder_capacity.values().next() {
            Some(Probed::Error(NvmlError::NotSupported)) => "encoder capacity: not supported",
            _ => "encoder capacity 0 with no session running",
        };
        Finding::skip(
            P,
            "nvenc",
            &subject,
            format!(
                "{name} has no NVENC ({why}): data-centre GPUs such as A100 and H100 have no video encoder; driver {driver}"
            ),
        )
    } else if encoders.iter().any(|(_, e)| *e == Encoder::Unknown) {
        let errors: Vec<String> = g
            .encoder_capacity
            .iter()
            .filter_map(|(c, p)| match p {
                Probed::Error(e) if *e != NvmlError::NotSupported => Some(format!("{}: {e}", c.label())),
                _ => None,
            })
            .collect();
        Finding::warn(
            P,
            "nvenc",
            &subject,
            format!(
                "{name}: NVENC {per_codec}, {sessions}; NVML could not report the encoder ({}); driver {driver}",
                errors.join(", ")
            ),
        )
        .remedy(Remedy::manual("see `nvidia-smi -q -d ENCODER_STATS` and `journalctl -k | grep -i nvrm`"))
    } else if encoders.iter().any(|(_, e)| *e == Encoder::Busy) {
        Finding::warn(
            P,
            "nvenc",
            &subject,
            format!("{name}: NVENC {per_codec}, {sessions}: the encoder is fully in use; driver {driver}"),
        )
        .remedy(Remedy::manual("see which processes encode with `nvidia-smi --query-encoder-sessions`"))
    } else {
        Finding::pass(P, "nvenc", &subject, format!("{name}: NVENC {per_codec}, {sessions}; driver {driver}"))
    };
    let inventory =
        g.pci_address.as_ref().and_then(|a| gpus.iter().find(|x| x.pci.as_ref().is_some_and(|p| &p.address == a)));
    f.evidence("gpu", g)
        .evidence("driver_version", &r.driver_version)
        .evidence("render_node", inventory.and_then(|x| x.render_node.clone()))
}

/// The `nvenc_codec` finding for one required codec.
fn requirement(codec: VideoCodec, r: &NvmlReport) -> Finding {
    let subject = format!("NVENC {}", codec.key());
    let able: Vec<String> = r
        .gpus
        .iter()
        .filter_map(|g| match encoder(g, codec) {
            Encoder::Free(c) => Some(format!("{} ({c}% free)", g.display_name())),
            Encoder::Busy => Some(format!("{} (busy)", g.display_name())),
            Encoder::Absent | Encoder::Unknown => None,
        })
        .collect();
    if !able.is_empty() {
        return Finding::pass(
            P,
            "nvenc_codec",
            subject,
            format!("NVENC encodes {} on {}", codec.label(), able.join(", ")),
        );
    }
    let seen = if r.gpus.is_empty() {
        "NVML sees no GPU".to_owned()
    } else {
        r.gpus
            .iter()
            .map(|g| format!("{}: {}", g.display_name(), encoder_text(encoder(g, codec))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    Finding::fail(
        P,
        "nvenc_codec",
        subject,
        format!("NVENC {} encode is required, but no GPU offers it ({seen})", codec.label()),
        Remedy::manual(
            "NVENC needs an NVIDIA GPU with video encoders (GeForce, RTX/Quadro, T4, L4, L40); data-centre parts such as A100/H100 have none",
        ),
    )
}
