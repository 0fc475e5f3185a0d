//! Several files in one fuzz input, for the targets whose reader opens more files than the
//! one it starts from (compose, quadlet): the main file first, then each further file after a
//! line `#@ NAME`, NAME relative to the directory the files are served from. `#` starts a
//! comment in YAML and in unit files, so a seed reads as the files it holds.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use homelab_probe::sources::compose::clean_path;

/// The line that starts another file.
pub const FILE_MARK: &str = "#@ ";

/// The files of an input served from `dir`: host path -> text. The text before the first mark
/// is the file `main`.
pub fn files(text: &str, dir: &Path, main: &str) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut name = dir.join(main);
    let mut body = String::new();
    for line in text.split_inclusive('\n') {
        if let Some(next) = line.strip_prefix(FILE_MARK) {
            out.insert(std::mem::replace(&mut name, clean_path(&dir.join(next.trim_end()))), std::mem::take(&mut body));
        } else {
            body.push_str(line);
        }
    }
    out.insert(name, body);
    out
}

/// Writes files as one input (the inverse of [`files`] for the seeds): the main file first,
/// the others after their `#@` line.
pub fn archive(main: &str, others: &[(String, String)]) -> String {
    let mut out = main.to_owned();
    for (name, text) in others {
        if !out.is_empty() && !out.ends_with('\n') {
            out.push('\n');
        }
        out.push_str(FILE_MARK);
        out.push_str(name);
        out.push('\n');
        out.push_str(text);
    }
    out
}
