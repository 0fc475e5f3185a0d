//! Which driver file libva would load for a render node. Apart from the binding because it only
//! reads files: it needs neither libva nor the `vaapi` feature.
//!
//! Where libva looks is predicted without it by [`resolve_driver`], which works in a sysroot
//! too: the DRM driver name maps to VA driver names as libva's `va/drm/va_drm_utils.c` does
//! (`i915` -> `iHD`, `i965`; `xe` -> `iHD`; `amdgpu` -> `radeonsi`; `radeon` -> `r600`,
//! `radeonsi`; `nvidia-drm` -> `nvidia`; anything else keeps its own name), `LIBVA_DRIVER_NAME`
//! replaces the candidates and `LIBVA_DRIVERS_PATH` the search path, and the default search
//! path covers NixOS (`/run/opengl-driver/lib/dri`) and the common distribution directories.

use crate::host::Host;
use crate::model::gpu::VaDriverResolution;

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
