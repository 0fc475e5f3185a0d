//! What the plan needs to know about GPU generations, from their PCI device ids.

/// Intel GPUs older than Gen8 (Broadwell): every device id the Linux kernel's
/// `include/drm/i915_pciids.h` lists before `INTEL_BDW_IDS` (i810 .. Haswell, Valleyview).
/// `intel-media-driver` (iHD) supports Broadwell and newer; these need `intel-vaapi-driver`
/// (i965), as nixpkgs' `hardware.graphics.extraPackages` documentation says.
const INTEL_PRE_GEN8: &[u16] = &[
    0x7121, 0x7123, 0x7125, 0x1132, 0x3577, 0x2562, 0x3582, 0x358e, 0x2572, 0x2582, 0x258a, 0x2592, 0x2772, 0x27a2,
    0x27ae, 0x2972, 0x2982, 0x2992, 0x29a2, 0x29b2, 0x29c2, 0x29d2, 0x2a02, 0x2a12, 0x2a42, 0x2e02, 0x2e12, 0x2e22,
    0x2e32, 0x2e42, 0x2e92, 0xa001, 0xa011, 0x0042, 0x0046, 0x0102, 0x010a, 0x0112, 0x0122, 0x0106, 0x0116, 0x0126,
    0x0156, 0x0166, 0x0152, 0x015a, 0x0162, 0x016a, 0x0a02, 0x0a06, 0x0a0a, 0x0a0b, 0x0a0e, 0x0402, 0x0406, 0x040a,
    0x040b, 0x040e, 0x0c02, 0x0c06, 0x0c0a, 0x0c0b, 0x0c0e, 0x0d02, 0x0d06, 0x0d0a, 0x0d0b, 0x0d0e, 0x0a12, 0x0a16,
    0x0a1a, 0x0a1b, 0x0a1e, 0x0412, 0x0416, 0x041a, 0x041b, 0x041e, 0x0c12, 0x0c16, 0x0c1a, 0x0c1b, 0x0c1e, 0x0d12,
    0x0d16, 0x0d1a, 0x0d1b, 0x0d1e, 0x0a22, 0x0a26, 0x0a2a, 0x0a2b, 0x0a2e, 0x0422, 0x0426, 0x042a, 0x042b, 0x042e,
    0x0c22, 0x0c26, 0x0c2a, 0x0c2b, 0x0c2e, 0x0d22, 0x0d26, 0x0d2a, 0x0d2b, 0x0d2e, 0x0f30, 0x0f31, 0x0f32, 0x0f33,
    0x0155, 0x0157,
];

/// Parses a PCI id written `0x46a6` or `46a6`.
pub fn pci_id(s: &str) -> Option<u16> {
    u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
}

/// Whether an Intel GPU with this device id predates Gen8 (Broadwell). `None`: unknown id.
pub fn intel_pre_gen8(device_id: Option<&str>) -> Option<bool> {
    device_id.and_then(pci_id).map(|id| INTEL_PRE_GEN8.contains(&id))
}

/// Whether an NVIDIA GPU is Turing (GTX 16xx, RTX 20xx) or newer, the generations NVIDIA's
/// open kernel modules support. NVIDIA numbers device ids by generation: Turing starts at
/// 0x1e00 (TU102), everything older (Volta 0x1dbx, Pascal 0x15f0-0x1d8x, Maxwell, Kepler) is
/// below. `None`: unknown id.
pub fn nvidia_turing_or_newer(device_id: Option<&str>) -> Option<bool> {
    device_id.and_then(pci_id).map(|id| id >= 0x1e00)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case(Some("0x46a6"), Some(false))] // Alder Lake-P
    #[case(Some("0x3e92"), Some(false))] // Coffee Lake UHD 630
    #[case(Some("0x0a84"), Some(false))] // Broxton, among the Haswell-looking ids
    #[case(Some("0x1616"), Some(false))] // Broadwell GT2
    #[case(Some("0x0412"), Some(true))] // Haswell GT2
    #[case(Some("0x0166"), Some(true))] // Ivy Bridge
    #[case(Some("0x0f31"), Some(true))] // Bay Trail
    #[case(Some("0x2e32"), Some(true))] // G41
    #[case(None, None)]
    #[case(Some("zz"), None)]
    fn intel_generations(#[case] id: Option<&str>, #[case] want: Option<bool>) {
        assert_eq!(intel_pre_gen8(id), want);
    }

    #[rstest]
    #[case("0x1b80", false)] // GTX 1080
    #[case("0x1db4", false)] // V100
    #[case("0x1e84", true)] // RTX 2070 Super
    #[case("0x2184", true)] // GTX 1660
    #[case("0x2684", true)] // RTX 4090
    fn nvidia_generations(#[case] id: &str, #[case] want: bool) {
        assert_eq!(nvidia_turing_or_newer(Some(id)), Some(want));
    }
}
