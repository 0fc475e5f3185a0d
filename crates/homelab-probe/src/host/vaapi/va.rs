//! Numeric values from libva's `va/va.h` (libva 2.17.0, Debian 12's `libva-dev`;
//! `VAProfileH264High10 = 36` from later libva). Enums are C `int`s.

use crate::model::inventory::VideoCodec;

/// `VAEntrypointVLD`: decode.
pub const ENTRYPOINT_VLD: i32 = 1;
/// `VAEntrypointEncSlice`: slice-level (full-power, shader-assisted) encode.
pub const ENTRYPOINT_ENC_SLICE: i32 = 6;
/// `VAEntrypointEncPicture`: picture-level encode (JPEG).
pub const ENTRYPOINT_ENC_PICTURE: i32 = 7;
/// `VAEntrypointEncSliceLP`: low-power (fixed-function VDEnc) encode.
pub const ENTRYPOINT_ENC_SLICE_LP: i32 = 8;

/// `VA_STATUS_SUCCESS`.
pub const STATUS_SUCCESS: i32 = 0;

/// The name of a `VAProfile` without its `VAProfile` prefix.
pub fn profile_name(p: i32) -> Option<&'static str> {
    Some(match p {
        -1 => "None",
        0 => "MPEG2Simple",
        1 => "MPEG2Main",
        2 => "MPEG4Simple",
        3 => "MPEG4AdvancedSimple",
        4 => "MPEG4Main",
        5 => "H264Baseline",
        6 => "H264Main",
        7 => "H264High",
        8 => "VC1Simple",
        9 => "VC1Main",
        10 => "VC1Advanced",
        11 => "H263Baseline",
        12 => "JPEGBaseline",
        13 => "H264ConstrainedBaseline",
        14 => "VP8Version0_3",
        15 => "H264MultiviewHigh",
        16 => "H264StereoHigh",
        17 => "HEVCMain",
        18 => "HEVCMain10",
        19 => "VP9Profile0",
        20 => "VP9Profile1",
        21 => "VP9Profile2",
        22 => "VP9Profile3",
        23 => "HEVCMain12",
        24 => "HEVCMain422_10",
        25 => "HEVCMain422_12",
        26 => "HEVCMain444",
        27 => "HEVCMain444_10",
        28 => "HEVCMain444_12",
        29 => "HEVCSccMain",
        30 => "HEVCSccMain10",
        31 => "HEVCSccMain444",
        32 => "AV1Profile0",
        33 => "AV1Profile1",
        34 => "HEVCSccMain444_10",
        35 => "Protected",
        36 => "H264High10",
        _ => return None,
    })
}

/// The codec a `VAProfile` belongs to, for the three codecs the probe reports.
pub fn profile_codec(p: i32) -> Option<VideoCodec> {
    match p {
        5 | 6 | 7 | 13 | 15 | 16 | 36 => Some(VideoCodec::H264),
        17 | 18 | 23..=31 | 34 => Some(VideoCodec::Hevc),
        32 | 33 => Some(VideoCodec::Av1),
        _ => None,
    }
}

/// The name of a `VAEntrypoint` without its `VAEntrypoint` prefix.
pub fn entrypoint_name(e: i32) -> Option<&'static str> {
    Some(match e {
        1 => "VLD",
        2 => "IZZ",
        3 => "IDCT",
        4 => "MoComp",
        5 => "Deblocking",
        6 => "EncSlice",
        7 => "EncPicture",
        8 => "EncSliceLP",
        10 => "VideoProc",
        11 => "FEI",
        12 => "Stats",
        13 => "ProtectedTEEComm",
        14 => "ProtectedContent",
        _ => return None,
    })
}

/// What a `VAStatus` means, from the `VA_STATUS_ERROR_*` definitions.
pub fn status_text(s: i32) -> &'static str {
    match s as u32 {
        0x00 => "success",
        0x01 => "operation failed",
        0x02 => "resource allocation failed",
        0x03 => "invalid VADisplay",
        0x04 => "invalid VAConfigID",
        0x05 => "invalid VAContextID",
        0x06 => "invalid VASurfaceID",
        0x07 => "invalid VABufferID",
        0x08 => "invalid VAImageID",
        0x09 => "invalid VASubpictureID",
        0x0a => "attribute not supported",
        0x0b => "list argument exceeds maximum number",
        0x0c => "the requested VAProfile is not supported",
        0x0d => "the requested VAEntryPoint is not supported",
        0x0e => "the requested RT Format is not supported",
        0x0f => "the requested VABufferType is not supported",
        0x10 => "surface is in use",
        0x11 => "flag not supported",
        0x12 => "invalid parameter",
        0x13 => "resolution not supported",
        0x14 => "the requested function is not implemented",
        0x15 => "surface is in displaying (may by overlay)",
        0x16 => "invalid VAImageFormat",
        0x17 => "internal decoding error",
        0x18 => "internal encoding error",
        0x19 => "an invalid/unsupported value was supplied",
        0x20 => "an unsupported filter was supplied",
        0x21 => "an invalid filter chain was supplied",
        0x22 => "HW busy now",
        0x24 => "an unsupported memory type was supplied",
        0xFFFF_FFFF => "unknown libva error",
        _ => "unknown VAStatus",
    }
}
