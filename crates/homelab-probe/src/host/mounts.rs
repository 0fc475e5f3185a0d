//! The host's mount table and what lies in a directory: where the mount probe reads
//! `/proc/self/mountinfo` (in a sysroot: the sysroot's own `proc/self/mountinfo`, a fixture
//! or a capture) and lists a bare mount-point directory without reading all of a huge one.

use std::ffi::OsString;
use std::path::Path;

use super::{Host, HostError};
use crate::sources::Parsed;
use crate::sources::mountinfo::{self, MountInfo, SELF_MOUNTINFO};

/// Reads and parses the mount table of `host` (lenient: bad lines come back as errors).
pub fn mount_table(host: &Host) -> Result<Parsed<MountInfo>, HostError> {
    let text = host.read_to_string(SELF_MOUNTINFO)?;
    Ok(mountinfo::parse(&text, Path::new(SELF_MOUNTINFO)))
}

/// A bounded listing of a directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirSample {
    /// How many entries were seen (all of them unless `truncated`).
    pub count: usize,
    /// Whether the listing stopped at the limit: `count` is then a lower bound.
    pub truncated: bool,
    /// The first few names, sorted, of those seen.
    pub names: Vec<OsString>,
}

impl Host {
    /// Lists directory `path`, reading at most `limit` entries and keeping the `keep` first
    /// names (sorted among those read), so a directory with millions of files costs little.
    pub fn sample_dir(&self, path: impl AsRef<Path>, limit: usize, keep: usize) -> Result<DirSample, HostError> {
        let path = path.as_ref();
        let err = |source| HostError::Io { path: self.resolve(path, false), source };
        let mut names = Vec::new();
        let mut count = 0;
        let mut truncated = false;
        for entry in std::fs::read_dir(self.resolve(path, true)).map_err(err)? {
            if count == limit {
                truncated = true;
                break;
            }
            names.push(entry.map_err(err)?.file_name());
            count += 1;
        }
        names.sort();
        names.truncate(keep);
        Ok(DirSample { count, truncated, names })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sample_is_bounded_and_honest() {
        let t = tempfile::tempdir().unwrap();
        std::fs::create_dir(t.path().join("d")).unwrap();
        for i in 0..25 {
            std::fs::write(t.path().join(format!("d/f{i:02}")), "").unwrap();
        }
        let host = Host::at(t.path()).unwrap();
        let s = host.sample_dir("/d", 10, 3).unwrap();
        assert_eq!((s.count, s.truncated, s.names.len()), (10, true, 3));
        let s = host.sample_dir("/d", 100, 3).unwrap();
        assert_eq!((s.count, s.truncated), (25, false));
        assert_eq!(s.names, ["f00", "f01", "f02"]);
        assert!(host.sample_dir("/nope", 10, 3).unwrap_err().io_kind() == Some(std::io::ErrorKind::NotFound));
    }
}
