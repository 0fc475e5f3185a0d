//! Every fuzz target: the property of `homelab-fuzz-props` named by this binary's name (the
//! `[[bin]]` of fuzz/Cargo.toml).
#![no_main]

use std::sync::OnceLock;

static RUN: OnceLock<fn(&[u8])> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let run = RUN.get_or_init(|| match homelab_fuzz_props::target(env!("CARGO_BIN_NAME")) {
        Some(t) => t.run,
        None => panic!("no property for fuzz target {}", env!("CARGO_BIN_NAME")),
    });
    run(data);
});
