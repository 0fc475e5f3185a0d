//! A Compose project: its files come from the fuzz input, served through the reader callback
//! the loader reads every file with (`.env`, overrides, `include:`, `extends:`, `env_file:`).
//!
//! The input is the main `compose.yaml`, followed by more files, each after a line
//! `#@ NAME` ([`crate::files`]; a YAML comment, so a seed reads as the files it holds). NAME is
//! a path relative to the project directory `/srv/stack` (`.env`, `compose.override.yaml`,
//! `common/base.yaml`, `../shared/compose.yaml`).

use std::io;
use std::path::{Path, PathBuf};

use homelab_probe::model::compose::ComposeStack;
use homelab_probe::sources::compose::{ProjectSource, load_project, project_files};

use crate::{assert_yaml_line_within, files, text};

/// The project directory the files are served from.
pub const PROJECT_DIR: &str = "/srv/stack";

/// Loads the project and checks: every problem names a served file and a line of it (line 0
/// only for a file-level problem: a file that cannot be read, or one included twice), every
/// service names a served file and a line of it, and the stack's JSON reads back as itself.
pub fn compose(data: &[u8]) {
    let text = text(data);
    let served = files::files(&text, Path::new(PROJECT_DIR), "compose.yaml");
    let dir = PathBuf::from(PROJECT_DIR);
    let names: Vec<String> = served
        .keys()
        .filter(|p| p.parent() == Some(&dir))
        .filter_map(|p| p.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let read = |p: &Path| served.get(p).cloned().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound));
    let no_env = |_: &str| None;
    let src = ProjectSource {
        dir: dir.clone(),
        files: project_files(&dir, &names).unwrap_or_else(|| vec![dir.join("compose.yaml")]),
        env_files: None,
        home: Some(PathBuf::from("/home/alice")),
        outer_env: &no_env,
        read: &read,
    };
    let stack = load_project(&src);
    for p in &stack.problems {
        assert!(!p.message.is_empty(), "{p}: empty message");
        match served.get(&p.file) {
            Some(t) if p.line == 0 => {
                assert!(p.message.starts_with("included more than once"), "{p}: no line ({} lines)", t.lines().count());
            }
            Some(t) => assert_yaml_line_within(p.line, t, p),
            None => assert!(p.line == 0 && p.message.starts_with("cannot read"), "{p}: names a file not served"),
        }
    }
    for s in &stack.services {
        let Some(t) = served.get(Path::new(&s.file)) else { panic!("service {} names {}, not served", s.name, s.file) };
        assert_yaml_line_within(s.line, t, &format!("service {} in {}", s.name, s.file));
    }
    let json = serde_json::to_string(&stack).expect("a stack serialises");
    let back: ComposeStack = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{json}: {e}"));
    assert_eq!(back, stack, "the stack's JSON reads back differently");
}
