//! `/etc/passwd`, as passwd(5) defines it: one user per line,
//! `name:password:UID:GID:GECOS:directory:shell`.
//!
//! Handled like glibc's nss_files: blank lines and `#` comments are skipped; NIS compat lines
//! (`+...`, `-...`) are skipped; a line with the wrong number of fields, an invalid name, or a
//! UID/GID that is not a decimal number below 2^32-1 is reported and skipped. GECOS may hold
//! any text except `:` (commas separate its sub-fields, which we keep as one string).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{Parsed, parse_colon_file, parse_id, validate_name};

/// One line of `/etc/passwd`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswdEntry {
    /// Login name.
    pub name: String,
    /// Numeric user id.
    pub uid: u32,
    /// Primary group id.
    pub gid: u32,
    /// The GECOS field (full name and so on), unparsed.
    pub gecos: String,
    /// Home directory.
    pub home: String,
    /// Login shell.
    pub shell: String,
}

impl PasswdEntry {
    /// Renders the entry as a passwd(5) line (password field `x`), without newline.
    pub fn to_line(&self) -> String {
        format!("{}:x:{}:{}:{}:{}:{}", self.name, self.uid, self.gid, self.gecos, self.home, self.shell)
    }
}

/// Parses the text of a passwd(5) file; `file` names it in errors.
pub fn parse(text: &str, file: &Path) -> Parsed<PasswdEntry> {
    parse_colon_file(text, file, parse_line)
}

fn parse_line(l: &str) -> Result<PasswdEntry, String> {
    let f: Vec<&str> = l.split(':').collect();
    if f.len() != 7 {
        return Err(format!("expected 7 fields (name:password:UID:GID:GECOS:directory:shell), found {}", f.len()));
    }
    validate_name(f[0]).map_err(|e| format!("user name {:?}: {e}", f[0]))?;
    Ok(PasswdEntry {
        name: f[0].to_owned(),
        uid: parse_id(f[2], "UID")?,
        gid: parse_id(f[3], "GID")?,
        gecos: f[4].to_owned(),
        home: f[5].to_owned(),
        shell: f[6].to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn file() -> &'static Path {
        Path::new("/etc/passwd")
    }

    #[test]
    fn pop_os_passwd() {
        let text = "root:x:0:0:root:/root:/bin/bash\npalav:x:1000:1000:Palav,,,:/home/palav:/bin/bash\n\
                    systemd-journal-gateway:x:110:110::/:/usr/sbin/nologin\n";
        let p = parse(text, file());
        assert!(p.errors.is_empty());
        let u = &p.entries[1].1;
        assert_eq!(
            (u.name.as_str(), u.uid, u.gid, u.gecos.as_str(), u.home.as_str()),
            ("palav", 1000, 1000, "Palav,,,", "/home/palav")
        );
    }

    #[rstest]
    #[case::truncated("palav:x:1000:1000", "expected 7 fields")]
    #[case::bad_uid("palav:x:one:1000::/home/palav:/bin/sh", "UID \"one\"")]
    #[case::bad_gid("palav:x:1000:-5::/home/palav:/bin/sh", "GID \"-5\"")]
    #[case::numeric_name("1000:x:1000:1000::/:/bin/sh", "all digits")]
    fn bad_lines_are_reported_with_line(#[case] bad: &str, #[case] needle: &str) {
        let text = format!("root:x:0:0:root:/root:/bin/bash\n\n{bad}\n");
        let p = parse(&text, file());
        assert_eq!(p.entries.len(), 1);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 3);
        assert!(p.errors[0].to_string().starts_with("/etc/passwd:3: "));
        assert!(p.errors[0].message.contains(needle), "{}", p.errors[0].message);
    }

    fn entry() -> impl Strategy<Value = PasswdEntry> {
        ("[a-z_][a-z0-9_-]{0,31}", 0u32..u32::MAX, 0u32..u32::MAX, "[^:\n]{0,20}", "/[a-z/]{0,20}", "/[a-z/]{0,20}")
            .prop_map(|(name, uid, gid, gecos, home, shell)| PasswdEntry { name, uid, gid, gecos, home, shell })
            // A GECOS of only blanks or starting with '#' would make a line glibc skips too.
            .prop_filter("line must not look like a comment", |e| !e.name.starts_with('#'))
    }

    proptest! {
        #[test]
        fn round_trip(entries in proptest::collection::vec(entry(), 0..20)) {
            let text: String = entries.iter().map(|e| e.to_line() + "\n").collect();
            let p = parse(&text, file());
            prop_assert!(p.errors.is_empty(), "{:?}", p.errors);
            let got: Vec<PasswdEntry> = p.entries.into_iter().map(|(_, e)| e).collect();
            prop_assert_eq!(got, entries);
        }

        #[test]
        fn never_panics(text in "\\PC{0,200}") {
            let p = parse(&text, file());
            for e in &p.errors {
                prop_assert!(e.line >= 1);
            }
        }
    }
}
