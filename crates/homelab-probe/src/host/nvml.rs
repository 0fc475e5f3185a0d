//! NVIDIA's management library (NVML), asked about NVENC: per GPU its name, UUID, PCI bus id,
//! encoder capacity for H.264 and HEVC and the encoder sessions running now; and the driver
//! version. Live host only.
//!
//! The library is `libnvidia-ml.so.1`, part of the NVIDIA driver, loaded at run time through
//! `nvml-wrapper` (cargo feature `nvml`): first by name through the dynamic loader (which
//! honours `LD_LIBRARY_PATH` and the loader cache), then from NixOS's
//! `/run/opengl-driver/lib`, where the driver's user-space libraries live on NixOS.
//!
//! The probe's decisions work on [`NvmlReport`] gathered through the small [`NvmlLibrary`] and
//! [`NvmlDevices`] traits, so tests can drive every error branch with a fake library.

use crate::model::gpu::{NvmlError, NvmlGpu, NvmlOpenError, NvmlReport, Probed};
use crate::model::inventory::{PciDevice, VideoCodec};

/// Where `libnvidia-ml.so.1` is looked for, in order.
pub const NVML_LIBRARY_CANDIDATES: &[&str] = &["libnvidia-ml.so.1", "/run/opengl-driver/lib/libnvidia-ml.so.1"];

/// The codecs NVML reports encoder capacity for (`nvmlEncoderType_t`: H264, HEVC).
pub const NVML_CODECS: [VideoCodec; 2] = [VideoCodec::H264, VideoCodec::Hevc];

/// A way to open NVML: the real library, or a fake in tests.
pub trait NvmlLibrary {
    /// Loads and initialises NVML.
    fn open(&self) -> Result<Box<dyn NvmlDevices + '_>, NvmlOpenError>;
}

/// An initialised NVML: the queries the probe makes.
pub trait NvmlDevices {
    /// The library that was loaded.
    fn library(&self) -> String;
    /// `nvmlSystemGetDriverVersion`.
    fn driver_version(&self) -> Result<String, NvmlError>;
    /// `nvmlDeviceGetCount_v2`.
    fn device_count(&self) -> Result<u32, NvmlError>;
    /// `nvmlDeviceGetName`.
    fn name(&self, index: u32) -> Result<String, NvmlError>;
    /// `nvmlDeviceGetUUID`.
    fn uuid(&self, index: u32) -> Result<String, NvmlError>;
    /// `nvmlDeviceGetPciInfo_v3`, the bus id as NVML writes it (`00000000:01:00.0`).
    fn pci_bus_id(&self, index: u32) -> Result<String, NvmlError>;
    /// `nvmlDeviceGetEncoderCapacity` for `codec` (H.264 or HEVC), in percent.
    fn encoder_capacity(&self, index: u32, codec: VideoCodec) -> Result<u32, NvmlError>;
    /// `nvmlDeviceGetEncoderStats`: active encoder sessions.
    fn encoder_sessions(&self, index: u32) -> Result<u32, NvmlError>;
}

/// Asks `lib` everything the NVENC probe needs.
pub fn gather(lib: &dyn NvmlLibrary) -> Result<NvmlReport, NvmlOpenError> {
    let nvml = lib.open()?;
    let device_count: Probed<u32> = nvml.device_count().into();
    let count = device_count.value().copied().unwrap_or(0);
    let gpus = (0..count)
        .map(|index| {
            let pci_bus_id: Probed<String> = nvml.pci_bus_id(index).into();
            let pci_address = pci_bus_id.value().and_then(|b| PciDevice::normalise_address(b));
            NvmlGpu {
                index,
                name: nvml.name(index).into(),
                uuid: nvml.uuid(index).into(),
                pci_bus_id,
                pci_address,
                encoder_capacity: NVML_CODECS.iter().map(|&c| (c, nvml.encoder_capacity(index, c).into())).collect(),
                encoder_sessions: nvml.encoder_sessions(index).into(),
            }
        })
        .collect();
    Ok(NvmlReport { library: nvml.library(), driver_version: nvml.driver_version().into(), device_count, gpus })
}

/// The system's NVML through `nvml-wrapper`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemNvml;

#[cfg(feature = "nvml")]
mod real {
    use std::ffi::OsStr;

    use nvml_wrapper::enum_wrappers::device::EncoderType;
    use nvml_wrapper::error::NvmlError as WrapperError;

    use super::*;
    use crate::model::gpu::LoadAttempt;

    impl From<WrapperError> for NvmlError {
        fn from(e: WrapperError) -> Self {
            match e {
                WrapperError::NotSupported => NvmlError::NotSupported,
                WrapperError::NoPermission => NvmlError::NoPermission,
                WrapperError::DriverNotLoaded => NvmlError::DriverNotLoaded,
                WrapperError::LibRmVersionMismatch => NvmlError::VersionMismatch,
                WrapperError::GpuLost => NvmlError::GpuLost,
                e @ (WrapperError::FunctionNotFound
                | WrapperError::LibraryNotFound
                | WrapperError::FailedToLoadSymbol(_)
                | WrapperError::LibloadingError(_)) => NvmlError::Missing(e.to_string()),
                e => NvmlError::Other(e.to_string()),
            }
        }
    }

    struct Open {
        nvml: nvml_wrapper::Nvml,
        library: String,
    }

    impl NvmlLibrary for SystemNvml {
        fn open(&self) -> Result<Box<dyn NvmlDevices + '_>, NvmlOpenError> {
            let mut attempts = Vec::new();
            for &library in NVML_LIBRARY_CANDIDATES {
                match nvml_wrapper::Nvml::builder().lib_path(OsStr::new(library)).init() {
                    Ok(nvml) => return Ok(Box::new(Open { nvml, library: library.to_owned() })),
                    // The library did not load: try the next place.
                    Err(WrapperError::LibloadingError(e)) => {
                        attempts.push(LoadAttempt { library: library.to_owned(), error: e.to_string() })
                    }
                    // The library loaded, so this is the driver's answer: stop here.
                    Err(e) => return Err(NvmlOpenError::Init { library: library.to_owned(), error: e.into() }),
                }
            }
            Err(NvmlOpenError::Library { attempts })
        }
    }

    fn codec_type(codec: VideoCodec) -> Result<EncoderType, NvmlError> {
        match codec {
            VideoCodec::H264 => Ok(EncoderType::H264),
            VideoCodec::Hevc => Ok(EncoderType::HEVC),
            VideoCodec::Av1 => Err(NvmlError::Other("NVML's encoder capacity query covers H.264 and HEVC only".into())),
        }
    }

    impl NvmlDevices for Open {
        fn library(&self) -> String {
            self.library.clone()
        }
        fn driver_version(&self) -> Result<String, NvmlError> {
            Ok(self.nvml.sys_driver_version()?)
        }
        fn device_count(&self) -> Result<u32, NvmlError> {
            Ok(self.nvml.device_count()?)
        }
        fn name(&self, index: u32) -> Result<String, NvmlError> {
            Ok(self.nvml.device_by_index(index)?.name()?)
        }
        fn uuid(&self, index: u32) -> Result<String, NvmlError> {
            Ok(self.nvml.device_by_index(index)?.uuid()?)
        }
        fn pci_bus_id(&self, index: u32) -> Result<String, NvmlError> {
            Ok(self.nvml.device_by_index(index)?.pci_info()?.bus_id)
        }
        fn encoder_capacity(&self, index: u32, codec: VideoCodec) -> Result<u32, NvmlError> {
            Ok(self.nvml.device_by_index(index)?.encoder_capacity(codec_type(codec)?)?)
        }
        fn encoder_sessions(&self, index: u32) -> Result<u32, NvmlError> {
            Ok(self.nvml.device_by_index(index)?.encoder_stats()?.session_count)
        }
    }
}

#[cfg(not(feature = "nvml"))]
impl NvmlLibrary for SystemNvml {
    fn open(&self) -> Result<Box<dyn NvmlDevices + '_>, NvmlOpenError> {
        Err(NvmlOpenError::Disabled)
    }
}
