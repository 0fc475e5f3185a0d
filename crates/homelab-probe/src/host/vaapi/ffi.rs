//! The hand-written libva binding, in a file of its own because it is all of the crate's unsafe
//! code. Every `unsafe` block is one C call whose contract is stated in its SAFETY comment;
//! nothing unsafe leaves this module.
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
