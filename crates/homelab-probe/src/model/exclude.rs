//! The exclude globs of a drift scan (`[[drift]] exclude`, `drift --exclude`): compiled once,
//! matched against entry names or paths below the root while the scanner walks.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// Entries the walk skips: globs on names (`*.part`, `.snapshots`) or, when the pattern holds
/// a `/`, on the path relative to the root (`Movies/**/extras`, `/incoming`: a leading `/`
/// anchors at the root). `*` does not cross `/`; `**` does. An excluded directory is not
/// descended.
#[derive(Debug, Clone, Default)]
pub struct Exclude {
    names: Option<globset::GlobSet>,
    paths: Option<globset::GlobSet>,
    patterns: Vec<String>,
}

impl Exclude {
    /// Compiles `patterns`; the error names the bad pattern.
    pub fn new<S: AsRef<str>>(patterns: &[S]) -> Result<Self, globset::Error> {
        let (mut names, mut paths) = (globset::GlobSetBuilder::new(), globset::GlobSetBuilder::new());
        let (mut n_names, mut n_paths) = (0, 0);
        for p in patterns {
            let p = p.as_ref();
            let trimmed = p.trim_end_matches('/');
            let glob = |s: &str| globset::GlobBuilder::new(s).literal_separator(true).backslash_escape(true).build();
            if trimmed.contains('/') {
                paths.add(glob(trimmed.trim_start_matches('/'))?);
                n_paths += 1;
            } else {
                names.add(glob(trimmed)?);
                n_names += 1;
            }
        }
        Ok(Exclude {
            names: if n_names > 0 { Some(names.build()?) } else { None },
            paths: if n_paths > 0 { Some(paths.build()?) } else { None },
            patterns: patterns.iter().map(|p| p.as_ref().to_owned()).collect(),
        })
    }

    /// Whether no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.names.is_none() && self.paths.is_none()
    }

    /// Whether some pattern matches paths below the root (holds a `/`): the walker then keeps
    /// each directory's relative path at hand.
    pub fn has_path_patterns(&self) -> bool {
        self.paths.is_some()
    }

    /// The patterns as given.
    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }

    /// Whether the entry `name` in directory `rel_dir` (relative to the root) is excluded;
    /// `scratch` is reused for the joined path.
    pub(crate) fn matches(&self, name: &[u8], rel_dir: &[u8], scratch: &mut Vec<u8>) -> bool {
        if let Some(n) = &self.names
            && n.is_match(Path::new(OsStr::from_bytes(name)))
        {
            return true;
        }
        if let Some(p) = &self.paths {
            scratch.clear();
            scratch.extend_from_slice(rel_dir);
            if !scratch.is_empty() {
                scratch.push(b'/');
            }
            scratch.extend_from_slice(name);
            return p.is_match(Path::new(OsStr::from_bytes(scratch)));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn excluded(patterns: &[&str], rel_dir: &str, name: &str) -> bool {
        Exclude::new(patterns).unwrap().matches(name.as_bytes(), rel_dir.as_bytes(), &mut Vec::new())
    }

    #[test]
    fn exclude_names_and_paths() {
        assert!(excluded(&["*.part"], "Movies/x", "a.part"));
        assert!(excluded(&[".Trash-*"], "", ".Trash-1000"));
        assert!(!excluded(&["*.part"], "", "a.mkv"));
        // A pattern with `/` is a path below the root; a leading `/` anchors there too.
        assert!(excluded(&["Movies/*/extras"], "Movies/Heat (1995)", "extras"));
        assert!(!excluded(&["Movies/*/extras"], "Movies/a/b", "extras"), "* does not cross /");
        assert!(excluded(&["Movies/**/extras"], "Movies/a/b", "extras"));
        assert!(excluded(&["/incoming"], "", "incoming"));
        assert!(!excluded(&["/incoming"], "x", "incoming"));
        assert!(excluded(&["tmp/"], "a", "tmp"), "a trailing / is ignored");
        assert!(Exclude::new(&["["]).is_err());
        assert!(Exclude::default().is_empty());
    }
}
