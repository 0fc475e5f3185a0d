//! VA-API through libva: which driver libva picks for a render node, its vendor string, and
//! which encode (`EncSlice`, `EncSliceLP`) and decode (`VLD`) entrypoints it offers for H.264,
//! HEVC and AV1. The query runs on the live host only.
//!
//! Three parts live apart: the hand-written binding (`ffi.rs`, cargo feature `vaapi`: all of the
//! crate's unsafe code, in one place), the numbers and names of libva's `va/va.h` ([`va`]), and
//! the prediction of the driver file libva loads ([`resolve_driver`], which reads only files and
//! so works in a sysroot and without the feature).
//!
//! The decisions work on [`VaDisplayInfo`] gathered through the small [`VaapiLoader`] and
//! [`VaapiLibrary`] traits, so tests can drive every error branch with a fake.

mod driver;
#[cfg(feature = "vaapi")]
mod ffi;
pub mod va;

use std::collections::BTreeMap;

use crate::model::gpu::{CodecSupport, VaDisplayInfo, VaLoadError, VaProfileEntrypoints, VaQueryError};
use crate::model::inventory::VideoCodec;

pub use driver::{
    NIXOS_DRIVER_LINK, VaEnv, default_search_path, driver_candidates, nixos_driver_link_target, resolve_driver,
};

/// Pairs of libraries tried, in order: by name through the dynamic loader, then NixOS's
/// `/run/opengl-driver/lib` (where libva is found when a driver package carries it).
pub const LIBVA_CANDIDATES: &[(&str, &str)] =
    &[("libva.so.2", "libva-drm.so.2"), ("/run/opengl-driver/lib/libva.so.2", "/run/opengl-driver/lib/libva-drm.so.2")];

/// A way to load libva: the real one, or a fake in tests.
pub trait VaapiLoader {
    /// Loads libva.
    fn load(&self) -> Result<&dyn VaapiLibrary, VaLoadError>;
}

/// A loaded libva.
pub trait VaapiLibrary {
    /// Which libraries were loaded (`libva.so.2 + libva-drm.so.2`).
    fn libraries(&self) -> String;
    /// Opens `node`, initialises VA-API on it and lists its profiles and entrypoints.
    fn query(&self, node: &str) -> Result<VaDisplayInfo, VaQueryError>;
}

/// The system's libva (cargo feature `vaapi`). Loaded once per process and never unloaded:
/// VA drivers (Mesa's above all) do not expect to be unloaded while their process runs.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemLibva;

/// Builds the per-codec view of a `(VAProfile, [VAEntrypoint])` list.
pub fn codec_support(raw: &[(i32, Vec<i32>)]) -> BTreeMap<VideoCodec, CodecSupport> {
    let mut out: BTreeMap<VideoCodec, CodecSupport> = BTreeMap::new();
    for (profile, entrypoints) in raw {
        let Some(codec) = va::profile_codec(*profile) else { continue };
        let name = va::profile_name(*profile).map_or_else(|| profile.to_string(), str::to_owned);
        let s = out.entry(codec).or_default();
        for &e in entrypoints {
            let list = match e {
                va::ENTRYPOINT_VLD => &mut s.decode,
                va::ENTRYPOINT_ENC_SLICE => &mut s.encode,
                va::ENTRYPOINT_ENC_SLICE_LP => &mut s.encode_low_power,
                _ => continue,
            };
            if !list.contains(&name) {
                list.push(name.clone());
            }
        }
    }
    out
}

/// Builds a [`VaDisplayInfo`] from raw query results.
pub fn display_info(
    api_version: String,
    vendor: Option<String>,
    raw: Vec<(i32, Vec<i32>)>,
    log: Vec<String>,
) -> VaDisplayInfo {
    let profiles: Vec<VaProfileEntrypoints> = raw
        .iter()
        .map(|(p, es)| VaProfileEntrypoints {
            profile: *p,
            profile_name: va::profile_name(*p).map(str::to_owned),
            entrypoints: es
                .iter()
                .map(|e| va::entrypoint_name(*e).map_or_else(|| e.to_string(), str::to_owned))
                .collect(),
        })
        .collect();
    let codecs = codec_support(&raw);
    VaDisplayInfo { api_version, vendor, driver_path: opened_driver(&log), profiles, codecs, log }
}

/// The driver file libva opened last, from its info messages (`Trying to open <path>`).
pub fn opened_driver(log: &[String]) -> Option<String> {
    log.iter().rev().find_map(|l| l.trim().strip_prefix("Trying to open ").map(|p| p.trim().to_owned()))
}

#[cfg(not(feature = "vaapi"))]
impl VaapiLoader for SystemLibva {
    fn load(&self) -> Result<&dyn VaapiLibrary, VaLoadError> {
        Err(VaLoadError::Disabled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    #[test]
    fn codecs_from_profiles() {
        let raw = vec![
            (7, vec![va::ENTRYPOINT_VLD, va::ENTRYPOINT_ENC_SLICE, va::ENTRYPOINT_ENC_SLICE_LP]),
            (17, vec![va::ENTRYPOINT_VLD, va::ENTRYPOINT_ENC_SLICE_LP]),
            (32, vec![va::ENTRYPOINT_VLD]),
            (12, vec![va::ENTRYPOINT_VLD, va::ENTRYPOINT_ENC_PICTURE]),
            (99, vec![va::ENTRYPOINT_VLD]),
        ];
        let info = display_info("1.17".into(), None, raw, vec!["Trying to open /x/iHD_drv_video.so".into()]);
        let h264 = &info.codecs[&VideoCodec::H264];
        assert_eq!(
            (h264.decode.clone(), h264.encode.clone()),
            (vec!["H264High".to_owned()], vec!["H264High".to_owned()])
        );
        assert!(info.codecs[&VideoCodec::Hevc].can_encode());
        assert!(info.codecs[&VideoCodec::Hevc].encode.is_empty());
        assert!(!info.codecs[&VideoCodec::Av1].can_encode());
        assert!(info.codecs[&VideoCodec::Av1].can_decode());
        assert_eq!(info.profiles[4].profile_name, None);
        assert_eq!(info.profiles[3].entrypoints, ["VLD", "EncPicture"]);
        assert_eq!(info.driver_path.as_deref(), Some("/x/iHD_drv_video.so"));
    }

    #[test]
    fn status_texts_follow_va_h() {
        assert_eq!(va::status_text(2), "resource allocation failed");
        assert_eq!(va::status_text(-1), "unknown libva error");
    }
}
