//! The properties the fuzz targets of homelab-probe check, one function per target, each
//! taking the fuzzer's bytes and panicking when a property fails (a panic is what libFuzzer
//! records as a crash). Shared by `fuzz/` (cargo-fuzz, nightly) and by the stable test
//! `crates/homelab-fuzz-props/tests/fuzz_replay.rs`, which replays every file of
//! `tests/fuzz-regressions/<target>/` and every seed through the same function.
//!
//! Adding a target: a property function here, a line in [`TARGETS`], a `[[bin]]` entry in
//! `fuzz/Cargo.toml` (every target binary is `fuzz/fuzz_targets/target.rs`, which finds its
//! property by its binary name), its seeds in [`seeds`] and its dictionary in `fuzz/dicts/`.
//! The stable test fails when the two lists differ or a target has no seed.
//!
//! The properties, beyond "does not panic or hang" (the hang limit is libFuzzer's `-timeout`):
//! - every parser returns entries and errors whose line lies within the input (the baseline,
//!   a binary format: a byte offset within it);
//! - round trips where a writer exists: passwd, group and fstab lines, expectations TOML,
//!   the snapshot's JSON (serialise, parse, serialise is stable), the drift journal (write,
//!   then read back, also cut at any byte as a crash would leave it), the ownership baseline
//!   (write, then read back as the stream and as the zstd file; cut at any byte it is an
//!   error, never a shorter baseline);
//! - `plan`: the module parses with rnix (a Nix parser in-process; the real evaluator judges
//!   the modules in tests/plan_total.rs), the expectations TOML parses back as the same
//!   `Expectations`, and a refusal names conflicts with choices.

pub mod arb;
pub mod baseline;
pub mod compose;
pub mod files;
pub mod journal;
pub mod parsers;
pub mod plan;
pub mod quadlet;
pub mod seeds;

/// One fuzz target: its name (the `[[bin]]` of `fuzz/Cargo.toml` and the directory of its
/// regression files), the property, and the dictionaries (`fuzz/dicts/<name>.dict`) it uses.
#[derive(Clone, Copy)]
pub struct Target {
    /// The name.
    pub name: &'static str,
    /// The property: panics when it does not hold for the input.
    pub run: fn(&[u8]),
    /// Dictionaries in `fuzz/dicts/`, by file stem.
    pub dicts: &'static [&'static str],
}

/// Every target.
pub const TARGETS: &[Target] = &[
    Target { name: "fstab", run: parsers::fstab, dicts: &["fstab"] },
    Target { name: "mountinfo", run: parsers::mountinfo, dicts: &["fstab"] },
    Target { name: "group", run: parsers::group, dicts: &["colon"] },
    Target { name: "passwd", run: parsers::passwd, dicts: &["colon"] },
    Target { name: "os_release", run: parsers::os_release, dicts: &[] },
    Target { name: "sysroot_manifest", run: parsers::sysroot_manifest, dicts: &["toml", "manifest"] },
    Target { name: "expectations", run: parsers::expectations, dicts: &["toml", "expectations"] },
    Target { name: "compose", run: compose::compose, dicts: &["yaml", "compose"] },
    Target { name: "compose_env", run: parsers::compose_env, dicts: &["compose"] },
    Target { name: "cdi", run: parsers::cdi, dicts: &["json", "yaml", "cdi"] },
    Target { name: "docker", run: parsers::docker, dicts: &["json", "docker"] },
    Target { name: "snapshot", run: plan::snapshot_json, dicts: &["json", "snapshot"] },
    Target { name: "journal", run: journal::journal, dicts: &["json", "journal"] },
    Target { name: "plan", run: plan::plan_structured, dicts: &[] },
    Target { name: "quadlet", run: quadlet::quadlet, dicts: &["quadlet"] },
    Target { name: "baseline", run: baseline::baseline, dicts: &["json", "baseline"] },
];

/// The target called `name`.
pub fn target(name: &str) -> Option<&'static Target> {
    TARGETS.iter().find(|t| t.name == name)
}

/// The fuzzer's bytes as text: the files these parsers read are text, and lossy conversion
/// lets every input reach the parser rather than stop at UTF-8 validation.
pub(crate) fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// The number of lines a position in `text` can be on: a position after the last newline is
/// on the line after it (where a YAML or JSON reader reports "unexpected end").
pub(crate) fn line_positions(text: &str) -> usize {
    text.split('\n').count()
}

/// The number of lines a YAML reader can report in `text`: YAML 1.2 (5.4, line break
/// characters) breaks lines at CR LF, a lone CR and LF, so a file with old Mac line ends has
/// lines that a count of LF misses (found by the compose target: an error on line 2 of a file
/// with a CR and no LF; tests/fuzz-regressions/compose/).
pub(crate) fn yaml_line_positions(text: &str) -> usize {
    text.replace("\r\n", "\n").replace('\r', "\n").split('\n').count()
}

/// Asserts that `line` (1-based) is a line of the YAML text `text` (see
/// [`yaml_line_positions`]).
#[track_caller]
pub(crate) fn assert_yaml_line_within(line: usize, text: &str, what: &dyn std::fmt::Display) {
    assert!(
        line >= 1 && line <= yaml_line_positions(text).max(line_positions(text)),
        "{what}: line {line} is not within the input ({} lines)",
        yaml_line_positions(text)
    );
}

/// Asserts that `line` (1-based) is a line of `text` as a reader that reports positions sees
/// it.
#[track_caller]
pub(crate) fn assert_line_within(line: usize, text: &str, what: &dyn std::fmt::Display) {
    assert!(
        line >= 1 && line <= line_positions(text),
        "{what}: line {line} is not within the input ({} lines)",
        line_positions(text)
    );
}
