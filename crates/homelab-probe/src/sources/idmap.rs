//! `/proc/PID/uid_map` and `/proc/PID/gid_map`, as user_namespaces(7) ("User and group ID
//! mappings") defines them: one range a line, three numbers separated by blanks, `ID-inside-ns
//! ID-outside-ns length`. The initial namespace's map is `0 0 4294967295`.

use std::path::Path;

use crate::model::text::ParseError;
use crate::model::userns::IdRange;

/// Parses a uid or gid map.
pub fn parse_map(text: &str, file: &Path) -> Result<Vec<IdRange>, ParseError> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let nums: Vec<Option<u32>> = line.split_whitespace().map(|w| w.parse().ok()).collect();
        match nums.as_slice() {
            [Some(inside), Some(outside), Some(count)] => {
                out.push(IdRange { inside: *inside, outside: *outside, count: *count })
            }
            _ => {
                return Err(ParseError {
                    file: file.to_path_buf(),
                    line: i + 1,
                    message: format!("{line:?} is not three numbers (inside, outside, count)"),
                });
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::userns::UserNamespace;

    #[test]
    fn maps_parse_and_the_identity_is_the_initial_namespace() {
        let f = Path::new("/proc/self/gid_map");
        let id = parse_map("         0          0 4294967295\n", f).unwrap();
        let ns = UserNamespace { uid_map: id.clone(), gid_map: id, overflow_gid: 65534 };
        assert!(ns.is_initial());
        let lxc = parse_map("0 100000 65536\n", f).unwrap();
        let ns = UserNamespace { gid_map: lxc, ..ns };
        assert!(!ns.is_initial());
        assert_eq!(ns.gid_map_text(), "0 100000 65536");
        assert_eq!(
            parse_map("0 x 1\n", f).unwrap_err().to_string(),
            "/proc/self/gid_map:1: \"0 x 1\" is not three numbers (inside, outside, count)"
        );
    }
}
