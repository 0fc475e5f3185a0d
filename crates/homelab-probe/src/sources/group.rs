//! `/etc/group`, as group(5) defines it: one group per line,
//! `group_name:password:GID:user_list`, where `user_list` is a comma-separated list of member
//! user names (possibly empty).
//!
//! Handled like glibc's nss_files: blank lines and lines starting with `#` are skipped; NIS
//! compat lines (`+...`, `-...`) are skipped (they are not groups of this file); a line with the
//! wrong number of fields, an empty or invalid name, or a GID that is not a decimal number
//! below 2^32-1 is reported and skipped. Empty members (`a,,b`, a trailing comma) are ignored.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Parsed, parse_colon_file, parse_id, validate_name};

/// One line of `/etc/group`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupEntry {
    /// Group name.
    pub name: String,
    /// Numeric group id.
    pub gid: u32,
    /// Supplementary members, by user name.
    pub members: Vec<String>,
}

impl GroupEntry {
    /// Renders the entry as a group(5) line (password field `x`), without newline.
    pub fn to_line(&self) -> String {
        format!("{}:x:{}:{}", self.name, self.gid, self.members.join(","))
    }
}

/// Parses the text of a group(5) file; `file` names it in errors.
pub fn parse(text: &str, file: &Path) -> Parsed<GroupEntry> {
    parse_colon_file(text, file, parse_line)
}

fn parse_line(l: &str) -> Result<GroupEntry, String> {
    let fields: Vec<&str> = l.split(':').collect();
    if fields.len() != 4 {
        return Err(format!("expected 4 fields (name:password:GID:members), found {}", fields.len()));
    }
    let name = fields[0];
    validate_name(name).map_err(|e| format!("group name {name:?}: {e}"))?;
    let gid = parse_id(fields[2], "GID")?;
    let members = fields[3].split(',').filter(|m| !m.is_empty()).map(str::to_owned).collect();
    Ok(GroupEntry { name: name.to_owned(), gid, members })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn file() -> &'static Path {
        Path::new("/etc/group")
    }

    #[test]
    fn debian_group_file() {
        let text = "root:x:0:\nvideo:x:44:palav\n# comment\n\nrender:x:108:\ndocker:x:999:palav,jellyfin,\n";
        let p = parse(text, file());
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        let names: Vec<_> = p.entries.iter().map(|(l, e)| (*l, e.name.as_str(), e.gid)).collect();
        assert_eq!(names, vec![(1, "root", 0), (2, "video", 44), (5, "render", 108), (6, "docker", 999)]);
        assert_eq!(p.entries[3].1.members, vec!["palav", "jellyfin"]);
    }

    #[rstest]
    #[case::truncated("render:x:10", "expected 4 fields")]
    #[case::too_many("render:x:110::extra", "expected 4 fields")]
    #[case::bad_gid("render:x:abc:", "not a decimal number")]
    #[case::empty_gid("render:x::", "not a decimal number")]
    #[case::gid_overflow("render:x:4294967295:", "out of range")]
    #[case::empty_name(":x:110:", "cannot be empty")]
    fn bad_lines_are_reported_with_line(#[case] bad: &str, #[case] needle: &str) {
        let text = format!("root:x:0:\n{bad}\nvideo:x:44:\n");
        let p = parse(&text, file());
        assert_eq!(p.entries.len(), 2, "good lines survive");
        assert_eq!(p.errors.len(), 1);
        let e = &p.errors[0];
        assert_eq!(e.line, 2);
        assert!(e.to_string().starts_with("/etc/group:2: "), "{e}");
        assert!(e.message.contains(needle), "{}", e.message);
    }

    #[test]
    fn nis_compat_lines_are_skipped() {
        let p = parse("+:::\n-badgroup\nusers:x:100:\n", file());
        assert!(p.errors.is_empty());
        assert_eq!(p.entries.len(), 1);
    }

    fn name() -> impl Strategy<Value = String> {
        "[a-z_][a-z0-9_-]{0,31}"
    }

    fn entry() -> impl Strategy<Value = GroupEntry> {
        (name(), 0u32..u32::MAX, proptest::collection::vec(name(), 0..5)).prop_map(|(name, gid, members)| GroupEntry {
            name,
            gid,
            members,
        })
    }

    proptest! {
        #[test]
        fn round_trip(entries in proptest::collection::vec(entry(), 0..20)) {
            let text: String = entries.iter().map(|e| e.to_line() + "\n").collect();
            let p = parse(&text, file());
            prop_assert!(p.errors.is_empty());
            let got: Vec<GroupEntry> = p.entries.into_iter().map(|(_, e)| e).collect();
            prop_assert_eq!(got, entries);
        }

        #[test]
        fn never_panics_and_accounts_for_every_line(text in "(([a-z0-9:,#+ x-]{0,20})\n){0,20}") {
            let p = parse(&text, file());
            let content = crate::sources::content_lines(&text).filter(|(_, l)| !l.starts_with('+') && !l.starts_with('-')).count();
            prop_assert_eq!(p.entries.len() + p.errors.len(), content);
            for e in &p.errors {
                prop_assert!(e.line >= 1 && e.line <= text.lines().count());
            }
        }
    }
}
