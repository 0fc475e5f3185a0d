//! VA-API through libva: which driver libva picks for a render node, its vendor string, and
//! which encode (`EncSlice`, `EncSliceLP`) and decode (`VLD`) entrypoints it offers for H.264,
//! HEVC and AV1. The query runs on the live host only.
//!
//! `libva.so.2` and `libva-drm.so.2` are loaded at run time with `libloading` (cargo feature
//! `vaapi`), so the crate builds without libva's headers or libclang. The binding is the few
//! calls the probe needs, declared by hand from libva's `va/va.h` and `va/va_drm.h`
//! (libva 2.17, VA-API 1.17): `vaGetDisplayDRM`, `vaInitialize`, `vaQueryVendorString`,
//! `vaMaxNumProfiles`, `vaMaxNumEntrypoints`, `vaQueryConfigProfiles`,
//! `vaQueryConfigEntrypoints`, `vaTerminate`, plus `vaSetErrorCallback` and
//! `vaSetInfoCallback` (libva >= 2.0, the first `libva.so.2`). The callbacks are needed because
//! libva otherwise prints its messages to stdout, which would break `--format json`; they also
//! say which driver file libva opened.
//!
//! Where libva looks is predicted without it by [`resolve_driver`], which works in a sysroot
//! too: the DRM driver name maps to VA driver names as libva's `va/drm/va_drm_utils.c` does
//! (`i915` -> `iHD`, `i965`; `xe` -> `iHD`; `amdgpu` -> `radeonsi`; `radeon` -> `r600`,
//! `radeonsi`; `nvidia-drm` -> `nvidia`; anything else keeps its own name), `LIBVA_DRIVER_NAME`
//! replaces the candidates and `LIBVA_DRIVERS_PATH` the search path, and the default search
//! path covers NixOS (`/run/opengl-driver/lib/dri`) and the common distribution directories.
//!
//! The decisions work on [`VaDisplayInfo`] gathered through the small [`VaapiLoader`] and
//! [`VaapiLibrary`] traits, so tests can drive every error branch with a fake.

use std::collections::BTreeMap;

use crate::host::Host;
use crate::model::gpu::{
    CodecSupport, VaDisplayInfo, VaDriverResolution, VaLoadError, VaProfileEntrypoints, VaQueryError,
};
use crate::model::inventory::VideoCodec;

/// Numeric values from libva's `va/va.h` (libva 2.17.0, Debian 12's `libva-dev`;
/// `VAProfileH264High10 = 36` from later libva). Enums are C `int`s.
pub mod va {
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
}

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

/// `LIBVA_DRIVER_NAME` and `LIBVA_DRIVERS_PATH`, as libva reads them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VaEnv {
    /// `LIBVA_DRIVER_NAME`: replaces the driver names libva derives from the DRM driver.
    pub driver_name: Option<String>,
    /// `LIBVA_DRIVERS_PATH`: colon-separated directories that replace the default search path.
    pub drivers_path: Option<String>,
}

impl VaEnv {
    /// This process's environment (what libva will see when the probe calls it).
    pub fn from_process() -> Self {
        let get = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        VaEnv { driver_name: get("LIBVA_DRIVER_NAME"), drivers_path: get("LIBVA_DRIVERS_PATH") }
    }
}

/// NixOS's driver directory: `/run/opengl-driver` links to the `graphics-drivers` environment
/// of `hardware.graphics` (mesa and every `hardware.graphics.extraPackages` entry).
pub const NIXOS_DRIVER_LINK: &str = "/run/opengl-driver";

/// The default VA driver search path: NixOS's driver link, then the directories distributions
/// compile into libva (Debian/Ubuntu multiarch, Fedora with RPM Fusion, Arch/Alpine).
pub fn default_search_path() -> Vec<String> {
    vec![
        format!("{NIXOS_DRIVER_LINK}/lib/dri"),
        format!("/usr/lib/{}-linux-gnu/dri", std::env::consts::ARCH),
        "/usr/lib64/dri-nonfree".into(),
        "/usr/lib64/dri-freeworld".into(),
        "/usr/lib64/dri".into(),
        "/usr/lib/dri".into(),
    ]
}

/// VA driver names for a DRM driver, in libva's order (libva's `va/drm/va_drm_utils.c`).
pub fn driver_candidates(drm_driver: &str) -> Vec<String> {
    let names: &[&str] = match drm_driver {
        "i915" => &["iHD", "i965"],
        "xe" => &["iHD"],
        "amdgpu" => &["radeonsi"],
        "radeon" => &["r600", "radeonsi"],
        "pvrsrvkm" => &["pvr"],
        "nvidia-drm" => &["nvidia"],
        other => return vec![other.to_owned()],
    };
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// Where NixOS's `/run/opengl-driver` points in a sysroot whose `/run` is empty (a mounted
/// disk): the `L+` rule in `/etc/tmpfiles.d/graphics-driver.conf` that creates the link.
pub fn nixos_driver_link_target(host: &Host) -> Option<String> {
    let text = host.read_to_string("/etc/tmpfiles.d/graphics-driver.conf").ok()?;
    text.lines().find_map(|l| {
        let fields: Vec<&str> = l.split_whitespace().collect();
        let path = fields.get(1)?.trim_matches(|c| c == '\'' || c == '"');
        (fields.first()?.starts_with('L') && path == NIXOS_DRIVER_LINK && fields.len() >= 7)
            .then(|| fields[6].to_owned())
    })
}

/// Predicts which driver file libva loads for a render node whose DRM driver is `drm_driver`.
pub fn resolve_driver(host: &Host, drm_driver: Option<&str>, env: &VaEnv) -> VaDriverResolution {
    let candidates = match (&env.driver_name, drm_driver) {
        (Some(name), _) => vec![name.clone()],
        (None, Some(d)) => driver_candidates(d),
        (None, None) => Vec::new(),
    };
    let mut search_path: Vec<String> = match &env.drivers_path {
        Some(p) => p.split(':').filter(|d| !d.is_empty()).map(str::to_owned).collect(),
        None => default_search_path(),
    };
    if env.drivers_path.is_none() && !host.is_live() && !host.exists(NIXOS_DRIVER_LINK) {
        if let Some(target) = nixos_driver_link_target(host) {
            let nixos = format!("{NIXOS_DRIVER_LINK}/lib/dri");
            for d in &mut search_path {
                if *d == nixos {
                    *d = format!("{target}/lib/dri");
                }
            }
        }
    }
    let found = candidates.iter().find_map(|c| {
        search_path.iter().find_map(|dir| {
            let file = format!("{}/{c}_drv_video.so", dir.trim_end_matches('/'));
            host.resolve(&file, true).exists().then_some(file)
        })
    });
    VaDriverResolution {
        drm_driver: drm_driver.map(str::to_owned),
        candidates,
        driver_name_env: env.driver_name.clone(),
        search_path,
        found,
    }
}

#[cfg(feature = "vaapi")]
mod ffi {
    //! The hand-written binding. Every `unsafe` block is one C call whose contract is stated
    //! in its SAFETY comment; nothing unsafe leaves this module.

    use std::ffi::{CStr, c_char, c_int, c_void};
    use std::os::fd::AsRawFd;
    use std::sync::{Mutex, OnceLock};

    use libloading::Library;

    use super::{LIBVA_CANDIDATES, VaapiLibrary, VaapiLoader, va};
    use crate::model::gpu::{LoadAttempt, VaDisplayInfo, VaLoadError, VaQueryError};

    type VaDisplay = *mut c_void;
    type VaStatus = c_int;
    /// `typedef void (*VAMessageCallback)(void *user_context, const char *message);`
    type VaMessageCallback = unsafe extern "C" fn(*mut c_void, *const c_char);

    /// The functions, copied out of the libraries, which stay loaded for the process's life.
    struct LibVa {
        libraries: String,
        // `VADisplay vaGetDisplayDRM(int fd);` (va_drm.h)
        get_display_drm: unsafe extern "C" fn(c_int) -> VaDisplay,
        // `VAStatus vaInitialize(VADisplay dpy, int *major_version, int *minor_version);`
        initialize: unsafe extern "C" fn(VaDisplay, *mut c_int, *mut c_int) -> VaStatus,
        // `VAStatus vaTerminate(VADisplay dpy);`
        terminate: unsafe extern "C" fn(VaDisplay) -> VaStatus,
        // `const char *vaQueryVendorString(VADisplay dpy);`
        query_vendor_string: unsafe extern "C" fn(VaDisplay) -> *const c_char,
        // `int vaMaxNumProfiles(VADisplay dpy);`
        max_num_profiles: unsafe extern "C" fn(VaDisplay) -> c_int,
        // `int vaMaxNumEntrypoints(VADisplay dpy);`
        max_num_entrypoints: unsafe extern "C" fn(VaDisplay) -> c_int,
        // `VAStatus vaQueryConfigProfiles(VADisplay dpy, VAProfile *profile_list, int *num_profiles);`
        query_config_profiles: unsafe extern "C" fn(VaDisplay, *mut c_int, *mut c_int) -> VaStatus,
        // `VAStatus vaQueryConfigEntrypoints(VADisplay dpy, VAProfile profile,
        //      VAEntrypoint *entrypoint_list, int *num_entrypoints);`
        query_config_entrypoints: unsafe extern "C" fn(VaDisplay, c_int, *mut c_int, *mut c_int) -> VaStatus,
        // `VAMessageCallback vaSetErrorCallback(VADisplay dpy, VAMessageCallback callback, void *user_context);`
        set_error_callback:
            unsafe extern "C" fn(VaDisplay, Option<VaMessageCallback>, *mut c_void) -> Option<VaMessageCallback>,
        // `VAMessageCallback vaSetInfoCallback(VADisplay dpy, VAMessageCallback callback, void *user_context);`
        set_info_callback:
            unsafe extern "C" fn(VaDisplay, Option<VaMessageCallback>, *mut c_void) -> Option<VaMessageCallback>,
    }

    static LIBVA: OnceLock<Result<LibVa, VaLoadError>> = OnceLock::new();

    impl VaapiLoader for super::SystemLibva {
        fn load(&self) -> Result<&dyn VaapiLibrary, VaLoadError> {
            match LIBVA.get_or_init(LibVa::load) {
                Ok(lib) => Ok(lib),
                Err(e) => Err(e.clone()),
            }
        }
    }

    /// Loads `name`. Loading a library runs its initialisers; libva's and libva-drm's only set
    /// up their own state.
    fn open(name: &str) -> Result<Library, String> {
        // SAFETY: libva.so.2 and libva-drm.so.2 have no initialisers with preconditions on the
        // caller; loading them is what every VA-API application does.
        unsafe { Library::new(name) }.map_err(|e| e.to_string())
    }

    /// Copies the function pointer of `symbol` out of `lib`.
    ///
    /// # Safety
    /// `T` must be the exact C signature of `symbol`, and `lib` must stay loaded for as long
    /// as the pointer is used (here: forever, see [`LibVa::load`]).
    unsafe fn symbol<T: Copy>(lib: &Library, symbol: &str) -> Result<T, String> {
        // SAFETY: forwarded to the caller: `T` is the symbol's C type.
        unsafe { lib.get::<T>(symbol.as_bytes()) }.map(|s| *s).map_err(|e| e.to_string())
    }

    impl LibVa {
        fn load() -> Result<LibVa, VaLoadError> {
            let mut attempts = Vec::new();
            for &(va_name, drm_name) in LIBVA_CANDIDATES {
                let va = match open(va_name) {
                    Ok(l) => l,
                    Err(error) => {
                        attempts.push(LoadAttempt { library: va_name.to_owned(), error });
                        continue;
                    }
                };
                let drm = match open(drm_name) {
                    Ok(l) => l,
                    Err(error) => {
                        attempts.push(LoadAttempt { library: drm_name.to_owned(), error });
                        continue;
                    }
                };
                match Self::bind(&va, &drm, format!("{va_name} + {drm_name}")) {
                    Ok(lib) => {
                        // Never unloaded: the copied function pointers must stay valid, and
                        // VA drivers loaded by libva do not expect their libva to go away.
                        std::mem::forget(va);
                        std::mem::forget(drm);
                        return Ok(lib);
                    }
                    Err(error) => attempts.push(LoadAttempt { library: va_name.to_owned(), error }),
                }
            }
            Err(VaLoadError::Library { attempts })
        }

        fn bind(va: &Library, drm: &Library, libraries: String) -> Result<LibVa, String> {
            // SAFETY: each type below is the C prototype of the symbol as declared in libva
            // 2.17's va.h / va_drm.h (quoted beside the struct fields); the libraries are
            // never unloaded once bound (see `load`).
            unsafe {
                Ok(LibVa {
                    libraries,
                    get_display_drm: symbol(drm, "vaGetDisplayDRM")?,
                    initialize: symbol(va, "vaInitialize")?,
                    terminate: symbol(va, "vaTerminate")?,
                    query_vendor_string: symbol(va, "vaQueryVendorString")?,
                    max_num_profiles: symbol(va, "vaMaxNumProfiles")?,
                    max_num_entrypoints: symbol(va, "vaMaxNumEntrypoints")?,
                    query_config_profiles: symbol(va, "vaQueryConfigProfiles")?,
                    query_config_entrypoints: symbol(va, "vaQueryConfigEntrypoints")?,
                    set_error_callback: symbol(va, "vaSetErrorCallback")?,
                    set_info_callback: symbol(va, "vaSetInfoCallback")?,
                })
            }
        }
    }

    /// Collects libva's messages into the `Mutex<Vec<String>>` passed as user context.
    unsafe extern "C" fn collect_message(context: *mut c_void, message: *const c_char) {
        if context.is_null() || message.is_null() {
            return;
        }
        // SAFETY: `context` is the `&Mutex<Vec<String>>` registered in `query`, which outlives
        // the display (it is dropped after `vaTerminate`); `message` is a NUL-terminated string
        // valid for the duration of this call (va.h, VAMessageCallback).
        let (log, message) = unsafe { (&*(context as *const Mutex<Vec<String>>), CStr::from_ptr(message)) };
        if let Ok(mut log) = log.lock() {
            log.push(message.to_string_lossy().trim_end().to_owned());
        }
    }

    /// A display that is terminated when dropped.
    struct Display<'a> {
        lib: &'a LibVa,
        dpy: VaDisplay,
    }

    impl Drop for Display<'_> {
        fn drop(&mut self) {
            // SAFETY: `dpy` came from vaGetDisplayDRM and is terminated exactly once; libva
            // allows vaTerminate after a failed vaInitialize (it frees the display either way).
            unsafe { (self.lib.terminate)(self.dpy) };
        }
    }

    impl Display<'_> {
        fn max(&self, f: unsafe extern "C" fn(VaDisplay) -> c_int) -> usize {
            // SAFETY: `dpy` is an initialised display; the call only reads driver limits.
            usize::try_from(unsafe { f(self.dpy) }).unwrap_or(0)
        }

        fn vendor(&self) -> Option<String> {
            // SAFETY: `dpy` is initialised; libva returns NULL or a NUL-terminated string owned
            // by the driver, valid until vaTerminate, which is copied right away.
            let p = unsafe { (self.lib.query_vendor_string)(self.dpy) };
            // SAFETY: see above: non-null means a valid C string.
            (!p.is_null()).then(|| unsafe { CStr::from_ptr(p) }.to_string_lossy().trim().to_owned())
        }

        fn profiles(&self) -> Result<Vec<i32>, VaQueryError> {
            let max = self.max(self.lib.max_num_profiles);
            let mut list = vec![0 as c_int; max.max(1)];
            let mut n: c_int = 0;
            // SAFETY: `list` holds vaMaxNumProfiles() entries, as va.h requires of
            // `profile_list`; `n` receives the count.
            let status = unsafe { (self.lib.query_config_profiles)(self.dpy, list.as_mut_ptr(), &mut n) };
            if status != va::STATUS_SUCCESS {
                return Err(VaQueryError::Query { call: "vaQueryConfigProfiles".into(), status });
            }
            list.truncate(usize::try_from(n).unwrap_or(0).min(max));
            Ok(list)
        }

        fn entrypoints(&self, profile: i32) -> Result<Vec<i32>, VaQueryError> {
            let max = self.max(self.lib.max_num_entrypoints);
            let mut list = vec![0 as c_int; max.max(1)];
            let mut n: c_int = 0;
            // SAFETY: `list` holds vaMaxNumEntrypoints() entries, as va.h requires of
            // `entrypoint_list`; `n` receives the count.
            let status = unsafe { (self.lib.query_config_entrypoints)(self.dpy, profile, list.as_mut_ptr(), &mut n) };
            if status != va::STATUS_SUCCESS {
                return Err(VaQueryError::Query { call: format!("vaQueryConfigEntrypoints({profile})"), status });
            }
            list.truncate(usize::try_from(n).unwrap_or(0).min(max));
            Ok(list)
        }
    }

    impl VaapiLibrary for LibVa {
        fn libraries(&self) -> String {
            self.libraries.clone()
        }

        fn query(&self, node: &str) -> Result<VaDisplayInfo, VaQueryError> {
            // Declared first so it is dropped last: the fd must outlive the display.
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(node)
                .map_err(|e| VaQueryError::Open { error: e.to_string() })?;
            // Declared before the display so it outlives vaTerminate (which may still log).
            let log: Mutex<Vec<String>> = Mutex::new(Vec::new());
            // SAFETY: the fd is open for the whole life of the display (see `file` above).
            let dpy = unsafe { (self.get_display_drm)(file.as_raw_fd()) };
            if dpy.is_null() {
                return Err(VaQueryError::NoDisplay);
            }
            let display = Display { lib: self, dpy };
            let context = &log as *const Mutex<Vec<String>> as *mut c_void;
            // SAFETY: `dpy` is a valid display; `collect_message` matches VAMessageCallback and
            // never unwinds; `context` points to `log`, alive until after vaTerminate.
            unsafe {
                (self.set_error_callback)(dpy, Some(collect_message), context);
                (self.set_info_callback)(dpy, Some(collect_message), context);
            }
            let (mut major, mut minor): (c_int, c_int) = (0, 0);
            // SAFETY: `dpy` is valid and not yet initialised; the out-pointers are valid ints.
            let status = unsafe { (self.initialize)(dpy, &mut major, &mut minor) };
            let result = if status == va::STATUS_SUCCESS {
                let vendor = display.vendor();
                display.profiles().and_then(|profiles| {
                    let raw = profiles
                        .into_iter()
                        .map(|p| display.entrypoints(p).map(|e| (p, e)))
                        .collect::<Result<Vec<_>, _>>()?;
                    Ok((vendor, raw))
                })
            } else {
                Err(VaQueryError::Initialize { status, status_text: va::status_text(status).into(), log: Vec::new() })
            };
            drop(display);
            drop(file);
            let log = log.into_inner().unwrap_or_else(|e| e.into_inner());
            match result {
                Ok((vendor, raw)) => Ok(super::display_info(format!("{major}.{minor}"), vendor, raw, log)),
                Err(VaQueryError::Initialize { status, status_text, .. }) => {
                    Err(VaQueryError::Initialize { status, status_text, log })
                }
                Err(e) => Err(e),
            }
        }
    }
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
    use rstest::rstest;

    #[rstest]
    #[case("i915", &["iHD", "i965"])]
    #[case("xe", &["iHD"])]
    #[case("amdgpu", &["radeonsi"])]
    #[case("radeon", &["r600", "radeonsi"])]
    #[case("nvidia-drm", &["nvidia"])]
    #[case("virtio_gpu", &["virtio_gpu"])]
    fn candidates(#[case] drm: &str, #[case] want: &[&str]) {
        assert_eq!(driver_candidates(drm), want);
    }

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

    #[test]
    fn resolution_honours_the_environment_and_nixos_tmpfiles() {
        let t = tempfile::tempdir().unwrap();
        let r = t.path();
        std::fs::create_dir_all(r.join("etc/tmpfiles.d")).unwrap();
        std::fs::create_dir_all(r.join("nix/store/abc-graphics-drivers/lib/dri")).unwrap();
        std::fs::create_dir_all(r.join("opt/va")).unwrap();
        std::fs::write(r.join("nix/store/abc-graphics-drivers/lib/dri/iHD_drv_video.so"), "").unwrap();
        std::fs::write(r.join("opt/va/radeonsi_drv_video.so"), "").unwrap();
        std::fs::write(
            r.join("etc/tmpfiles.d/graphics-driver.conf"),
            "L+ '/run/opengl-driver' - - - - /nix/store/abc-graphics-drivers\nr '/run/opengl-driver-32' - - - - -\n",
        )
        .unwrap();
        let host = Host::at(r).unwrap();
        let res = resolve_driver(&host, Some("i915"), &VaEnv::default());
        assert_eq!(res.candidates, ["iHD", "i965"]);
        assert_eq!(res.found.as_deref(), Some("/nix/store/abc-graphics-drivers/lib/dri/iHD_drv_video.so"));

        let env = VaEnv { driver_name: Some("radeonsi".into()), drivers_path: Some("/opt/va:/nowhere".into()) };
        let res = resolve_driver(&host, Some("i915"), &env);
        assert_eq!(res.candidates, ["radeonsi"]);
        assert_eq!(res.search_path, ["/opt/va", "/nowhere"]);
        assert_eq!(res.found.as_deref(), Some("/opt/va/radeonsi_drv_video.so"));

        let res = resolve_driver(&host, Some("amdgpu"), &VaEnv::default());
        assert_eq!(res.found, None);
    }
}
