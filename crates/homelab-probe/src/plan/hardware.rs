//! What the plan needs to know about GPU generations, from their PCI device ids (Intel's is
//! the GPU probe's [`crate::model::inventory::GpuDevice::intel_generation`]).

/// Parses a PCI id written `0x46a6` or `46a6`.
pub fn pci_id(s: &str) -> Option<u16> {
    u16::from_str_radix(s.trim().trim_start_matches("0x"), 16).ok()
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
    #[case("0x1b80", false)] // GTX 1080
    #[case("0x1db4", false)] // V100
    #[case("0x1e84", true)] // RTX 2070 Super
    #[case("0x2184", true)] // GTX 1660
    #[case("0x2684", true)] // RTX 4090
    fn nvidia_generations(#[case] id: &str, #[case] want: bool) {
        assert_eq!(nvidia_turing_or_newer(Some(id)), Some(want));
    }
}
