//! Shared by the tests of the output formats: where the fixtures are, reading a sample out of
//! Prometheus text.

#![allow(dead_code)] // each test binary uses its own part of this

use std::path::{Path, PathBuf};

/// A fixture sysroot or expectations file (`expect/NAME.toml`) by name: the one place that
/// knows where the fixtures are.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../homelab-probe/tests/fixtures").join(name)
}

/// The value of the sample `series` (`name{labels}` exactly as written) in Prometheus text.
pub fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')).map(|v| v.parse().unwrap()))
}
