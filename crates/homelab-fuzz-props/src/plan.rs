//! The snapshot's JSON and `plan`.

use std::path::Path;

use arbitrary::Unstructured;
use homelab_probe::plan::{PlanError, plan};
use homelab_probe::{Expectations, Snapshot, SnapshotError};

use crate::{arb, assert_line_within, text};

/// The snapshot JSON: a snapshot or an error naming a line and column of the input; a
/// snapshot serialised, parsed and serialised again gives the same text; then `plan`.
pub fn snapshot_json(data: &[u8]) {
    let text = text(data);
    let file = Path::new("snapshot.json");
    match Snapshot::from_json_str(&text, file) {
        Ok(s) => {
            check_json_round_trip(&s);
            check_plan(&s);
        }
        Err(SnapshotError::Invalid { file: f, line, column, message }) => {
            assert_eq!(f, file);
            assert!(!message.is_empty());
            assert_line_within(line, &text, &message);
            assert!(column >= 1, "{message}: column {column}");
        }
        Err(e) => panic!("not a parse error: {e}"),
    }
}

/// A snapshot built from the bytes (see [`arb`]), through its JSON round trip and `plan`.
pub fn plan_structured(data: &[u8]) {
    let Ok(s) = arb::snapshot(&mut Unstructured::new(data)) else { return };
    check_json_round_trip(&s);
    check_plan(&s);
}

/// Serialise, parse, serialise: the same snapshot and the same text.
pub fn check_json_round_trip(s: &Snapshot) {
    let first = serde_json::to_string_pretty(s).expect("a snapshot serialises");
    let back = Snapshot::from_json_str(&first, Path::new("snapshot.json"))
        .unwrap_or_else(|e| panic!("a written snapshot does not read back: {e}\n{first}"));
    assert_eq!(&back, s, "the snapshot reads back differently");
    let second = serde_json::to_string_pretty(&back).expect("a snapshot serialises");
    assert_eq!(first, second, "serialise, parse, serialise is not stable");
}

/// `plan`: a module that parses as Nix (rnix) and expectations whose TOML reads back as the
/// same expectations; or a refusal with conflicts that name a subject, a message and
/// choices; a render error only for a string Nix cannot hold (a NUL byte).
pub fn check_plan(s: &Snapshot) {
    match plan(s) {
        Ok(p) => {
            let parsed = rnix::Root::parse(&p.module);
            let errors = parsed.errors();
            assert!(errors.is_empty(), "hardware-parity.nix does not parse: {errors:?}\n{}", p.module);
            let back = Expectations::from_toml_str(&p.expectations_toml, Some(Path::new("homelab-probe.toml")))
                .unwrap_or_else(|e| panic!("homelab-probe.toml does not read back: {e}\n{}", p.expectations_toml));
            assert_eq!(back, p.expectations, "homelab-probe.toml reads back differently\n{}", p.expectations_toml);
            assert!(!p.migration.is_empty(), "an empty MIGRATION.md");
        }
        Err(PlanError::Refused { conflicts }) => {
            assert!(!conflicts.is_empty(), "a refusal without a conflict");
            for c in &conflicts {
                assert!(!c.subject.is_empty() && !c.message.is_empty() && !c.choices.is_empty(), "{c:?}");
            }
        }
        Err(e @ PlanError::Render(_)) => {
            let json = serde_json::to_string(s).expect("a snapshot serialises");
            assert!(json.contains("\\u0000"), "{e}, but the snapshot holds no NUL byte");
        }
        Err(e) => panic!("{e}"),
    }
}
