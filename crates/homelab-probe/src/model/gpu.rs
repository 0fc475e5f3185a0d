//! Facts the GPU probes gather: what NVML says about NVENC, what libva says about a render
//! node, and the Docker/CDI configuration that decides whether a container can get a GPU.
//! Serde types, so they can be carried as finding evidence and (later) in snapshots.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::model::inventory::VideoCodec;

/// An NVML error, in NVML's own terms (`nvmlReturn_t`), reduced to what the probe decides on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum NvmlError {
    /// `NVML_ERROR_NOT_SUPPORTED`: the device cannot do it (no NVENC on A100/H100).
    NotSupported,
    /// `NVML_ERROR_NO_PERMISSION`: the process may not talk to the driver (`/dev/nvidiactl`).
    NoPermission,
    /// `NVML_ERROR_DRIVER_NOT_LOADED`: the NVIDIA kernel module is not loaded.
    DriverNotLoaded,
    /// `NVML_ERROR_LIB_RM_VERSION_MISMATCH`: libnvidia-ml and the loaded kernel module are
    /// different versions (a driver update without a reboot).
    VersionMismatch,
    /// `NVML_ERROR_GPU_IS_LOST`: the GPU fell off the bus.
    GpuLost,
    /// A symbol or library NVML needs is missing (`FUNCTION_NOT_FOUND`, `LIBRARY_NOT_FOUND`).
    Missing(String),
    /// Anything else, with NVML's message.
    Other(String),
}

impl fmt::Display for NvmlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NvmlError::NotSupported => f.write_str("not supported"),
            NvmlError::NoPermission => f.write_str("no permission"),
            NvmlError::DriverNotLoaded => f.write_str("the NVIDIA kernel driver is not loaded"),
            NvmlError::VersionMismatch => f.write_str("driver/library version mismatch"),
            NvmlError::GpuLost => f.write_str("the GPU has fallen off the bus"),
            NvmlError::Missing(m) | NvmlError::Other(m) => f.write_str(m),
        }
    }
}

/// The answer to one query: a value or the error NVML gave.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Probed<T> {
    /// The value.
    Value(T),
    /// The error.
    Error(NvmlError),
}

impl<T> Probed<T> {
    /// The value, if there is one.
    pub fn value(&self) -> Option<&T> {
        match self {
            Probed::Value(v) => Some(v),
            Probed::Error(_) => None,
        }
    }
}

impl<T> From<Result<T, NvmlError>> for Probed<T> {
    fn from(r: Result<T, NvmlError>) -> Self {
        match r {
            Ok(v) => Probed::Value(v),
            Err(e) => Probed::Error(e),
        }
    }
}

/// One attempt to load a shared library.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoadAttempt {
    /// The name or path given to the dynamic loader.
    pub library: String,
    /// The loader's error (`dlerror()`).
    pub error: String,
}

/// Why NVML could not be used at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum NvmlOpenError {
    /// No candidate library could be loaded.
    Library {
        /// Every attempt, in order.
        attempts: Vec<LoadAttempt>,
    },
    /// `library` loaded, but `nvmlInit_v2` failed.
    Init {
        /// The library that loaded.
        library: String,
        /// NVML's error.
        error: NvmlError,
    },
    /// homelab-probe was built without the `nvml` feature.
    Disabled,
}

/// What NVML reported about one GPU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvmlGpu {
    /// NVML's device index.
    pub index: u32,
    /// `nvmlDeviceGetName`: `NVIDIA GeForce RTX 3060`.
    pub name: Probed<String>,
    /// `nvmlDeviceGetUUID`: `GPU-5b2c...`.
    pub uuid: Probed<String>,
    /// `nvmlDeviceGetPciInfo_v3` bus id as NVML writes it: `00000000:01:00.0`.
    pub pci_bus_id: Probed<String>,
    /// The bus id in sysfs form (`0000:01:00.0`), to match the GPU inventory.
    pub pci_address: Option<String>,
    /// `nvmlDeviceGetEncoderCapacity` per codec: the share of the encoder still free, in
    /// percent (0 to 100). `not_supported` means the GPU has no NVENC for that codec.
    pub encoder_capacity: BTreeMap<VideoCodec, Probed<u32>>,
    /// `nvmlDeviceGetEncoderStats`: encoder sessions running now.
    pub encoder_sessions: Probed<u32>,
}

impl NvmlGpu {
    /// The GPU's name, or `GPU <index>`.
    pub fn display_name(&self) -> String {
        self.name.value().cloned().unwrap_or_else(|| format!("GPU {}", self.index))
    }
}

/// What NVML reported about the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NvmlReport {
    /// The library that was loaded (`libnvidia-ml.so.1` or a full path).
    pub library: String,
    /// `nvmlSystemGetDriverVersion`: `550.54.14`.
    pub driver_version: Probed<String>,
    /// `nvmlDeviceGetCount_v2`.
    pub device_count: Probed<u32>,
    /// Each GPU NVML can see.
    pub gpus: Vec<NvmlGpu>,
}

/// What VA-API can do for one codec on one render node.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CodecSupport {
    /// Profiles of the codec with a `VAEntrypointVLD` (decode) entrypoint.
    pub decode: Vec<String>,
    /// Profiles of the codec with a `VAEntrypointEncSlice` (full-power) encode entrypoint.
    pub encode: Vec<String>,
    /// Profiles of the codec with a `VAEntrypointEncSliceLP` (low-power, VDEnc) encode entrypoint.
    pub encode_low_power: Vec<String>,
}

impl CodecSupport {
    /// Whether any encode entrypoint exists.
    pub fn can_encode(&self) -> bool {
        !self.encode.is_empty() || !self.encode_low_power.is_empty()
    }

    /// Whether a decode entrypoint exists.
    pub fn can_decode(&self) -> bool {
        !self.decode.is_empty()
    }
}

/// What libva reported for one render node after a successful `vaInitialize`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaDisplayInfo {
    /// The VA-API version `vaInitialize` returned (`1.17`).
    pub api_version: String,
    /// `vaQueryVendorString`: `Intel iHD driver for Intel(R) Gen Graphics - 23.1.1 ()`.
    pub vendor: Option<String>,
    /// The driver file libva opened, from its own log (`Trying to open ...`).
    pub driver_path: Option<String>,
    /// Every profile with its entrypoints, as numbers from va.h and names where known.
    pub profiles: Vec<VaProfileEntrypoints>,
    /// Support per codec, derived from `profiles`.
    pub codecs: BTreeMap<VideoCodec, CodecSupport>,
    /// libva's info and error messages during the query (it would otherwise print them).
    pub log: Vec<String>,
}

/// One `VAProfile` and its `VAEntrypoint`s.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaProfileEntrypoints {
    /// The `VAProfile` value.
    pub profile: i32,
    /// Its va.h name without the prefix (`H264High`), when known.
    pub profile_name: Option<String>,
    /// The `VAEntrypoint` names without the prefix (`VLD`, `EncSlice`), or numbers.
    pub entrypoints: Vec<String>,
}

/// Why libva gave no answer for a render node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VaQueryError {
    /// The node could not be opened.
    Open {
        /// The OS error.
        error: String,
    },
    /// `vaGetDisplayDRM` returned no display.
    NoDisplay,
    /// `vaInitialize` failed: libva found no driver, or the driver could not start.
    Initialize {
        /// The `VAStatus`.
        status: i32,
        /// Its meaning from va.h.
        status_text: String,
        /// libva's messages (which driver files it tried).
        log: Vec<String>,
    },
    /// A query after `vaInitialize` failed.
    Query {
        /// The call.
        call: String,
        /// The `VAStatus`.
        status: i32,
    },
}

impl fmt::Display for VaQueryError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VaQueryError::Open { error } => write!(f, "cannot open the node: {error}"),
            VaQueryError::NoDisplay => f.write_str("vaGetDisplayDRM returned no display"),
            VaQueryError::Initialize { status, status_text, .. } => {
                write!(f, "vaInitialize failed with status {status} ({status_text})")
            }
            VaQueryError::Query { call, status } => write!(f, "{call} failed with status {status}"),
        }
    }
}

/// Why libva could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum VaLoadError {
    /// No candidate pair of libraries could be loaded.
    Library {
        /// Every attempt, in order.
        attempts: Vec<LoadAttempt>,
    },
    /// homelab-probe was built without the `vaapi` feature.
    Disabled,
}

/// Where libva would look for a render node's driver, and what it would find.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VaDriverResolution {
    /// The DRM driver name libva maps from (`i915`, `amdgpu`, `nvidia-drm`).
    pub drm_driver: Option<String>,
    /// Driver names to try, in libva's order (`iHD`, `i965`), or `LIBVA_DRIVER_NAME`.
    pub candidates: Vec<String>,
    /// `LIBVA_DRIVER_NAME`, when set (live host only).
    pub driver_name_env: Option<String>,
    /// Directories searched, in order (`LIBVA_DRIVERS_PATH` when set).
    pub search_path: Vec<String>,
    /// The first `<dir>/<name>_drv_video.so` that exists.
    pub found: Option<String>,
}

impl VaDriverResolution {
    /// `iHD_drv_video.so, i965_drv_video.so`.
    pub fn candidate_files(&self) -> String {
        self.candidates.iter().map(|c| format!("{c}_drv_video.so")).collect::<Vec<_>>().join(", ")
    }
}

/// One device of a CDI spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdiDevice {
    /// The fully qualified name containers ask for: `nvidia.com/gpu=0`.
    pub qualified_name: String,
    /// Device nodes the spec injects (`/dev/nvidia0`, `/dev/dri/renderD128`).
    pub device_nodes: Vec<String>,
}

/// One parsed CDI spec file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CdiSpecSummary {
    /// The file, as the host names it.
    pub file: String,
    /// `cdiVersion`.
    pub cdi_version: String,
    /// `kind`: `nvidia.com/gpu`.
    pub kind: String,
    /// Its devices.
    pub devices: Vec<CdiDevice>,
    /// Device nodes in the spec-wide `containerEdits`.
    pub common_device_nodes: Vec<String>,
}

/// What Docker's daemon configuration says about GPUs.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DockerGpuConfig {
    /// The configuration file read (`/etc/docker/daemon.json`, or NixOS's `--config-file`).
    pub file: String,
    /// Where the file's path came from: `default` or the unit file that passes `--config-file`.
    pub found_via: String,
    /// Whether the file exists (Docker runs with defaults when it does not).
    pub exists: bool,
    /// Names of the configured runtimes (`nvidia`).
    pub runtimes: Vec<String>,
    /// `runtimes.nvidia.path`.
    pub nvidia_runtime_path: Option<String>,
    /// `default-runtime`.
    pub default_runtime: Option<String>,
    /// `features.cdi`, when set.
    pub features_cdi: Option<bool>,
    /// `cdi-spec-dirs`, when set (Docker's default is `/etc/cdi` and `/var/run/cdi`).
    pub cdi_spec_dirs: Option<Vec<String>>,
}
