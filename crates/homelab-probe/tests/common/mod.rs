//! What the fixture-sysroot tests of this crate share: running probes over a fixture sysroot,
//! finding a finding, the invariants every finding keeps, a GPU as the inventory reports one.
//! Each test target uses a part of it; what both crates' tests share is in
//! `homelab-test-support`.
#![allow(dead_code)]

pub use homelab_test_support::{fixture, sysroot};

use homelab_probe::model::inventory::{GpuDevice, GpuVendor, PciDevice};
use homelab_probe::{Expectations, Finding, Host, check};

/// `tests/fixtures/expect/<e>`, or the built-in expectations for `None`.
pub fn expectations(expect: Option<&str>) -> Expectations {
    match expect {
        Some(e) => Expectations::load(&fixture(&format!("expect/{e}"))).unwrap(),
        None => Expectations::builtin(),
    }
}

/// Every probe's findings on the fixture sysroot `root`.
pub fn run(root: &str, expect: Option<&str>) -> Vec<Finding> {
    let host = Host::at(sysroot(root)).unwrap();
    check::run(&host, &expectations(expect))
}

/// The finding of `check` on `subject`; the test fails with all findings when there is none.
pub fn find<'a>(findings: &'a [Finding], check: &str, subject: &str) -> &'a Finding {
    findings
        .iter()
        .find(|f| f.check == check && f.subject == subject)
        .unwrap_or_else(|| panic!("no {check} finding for {subject} in {findings:#?}"))
}

/// A display-class PCI GPU at 0000:01:00.0 with `renderD128`, as the inventory reports one.
pub fn gpu(vendor: GpuVendor, vendor_id: &str, device_id: &str, driver: &str) -> GpuDevice {
    GpuDevice {
        pci: Some(PciDevice {
            address: "0000:01:00.0".into(),
            vendor: Some(vendor_id.into()),
            device: Some(device_id.into()),
        }),
        pci_class: Some("0x030000".into()),
        vendor,
        kernel_driver: Some(driver.into()),
        drm_driver: None,
        render_node: Some("/dev/dri/renderD128".into()),
        card_node: None,
    }
}
