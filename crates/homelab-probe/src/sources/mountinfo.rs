//! `/proc/<pid>/mountinfo`, as proc_pid_mountinfo(5) defines it: one mount per line,
//!
//! ```text
//! 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//! (1)(2)(3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//! ```
//!
//! mount id, parent id, `major:minor` of the filesystem, root of the mount within the
//! filesystem, mount point, per-mount options, zero or more optional fields, a `-` separator,
//! filesystem type, mount source, per-superblock options. Fields are separated by single
//! spaces, so an empty field shows as two spaces in a row.
//!
//! Edge cases handled (and compared with `findmnt --tab-file` in the oracle tests):
//! - the kernel escapes space, tab, newline and backslash in paths and the source as `\040`,
//!   `\011`, `\012`, `\134`; root, mount point and source are unescaped here;
//! - optional fields `shared:N`, `master:N`, `propagate_from:N`, `unbindable`, and tags this
//!   parser does not know (kept as [`OptionalField::Other`]; the man page says to ignore them);
//! - an empty source (two spaces: `- tmpfs  rw`) is `None`; the word `none` is kept as it is
//!   (it is what a mount made with source `none` shows, and what `findmnt` prints);
//! - a root whose directory was deleted ends in `//deleted` (the kernel's `dentry_path`); it is
//!   cut off and flagged in [`MountInfo::root_deleted`];
//! - `fuse.sshfs`-style types with a subtype are kept whole.
//!
//! Why not `procfs_core::process::MountInfo`: it can parse text from any source (so sysroot
//! fixtures would work), but it keeps options in a `HashMap` (order and duplicates lost, and
//! the order is what `findmnt` prints), turns both an empty source and the word `none` into
//! `None`, drops optional fields it does not know, does not unescape `\040`, and its errors are
//! "Internal Unwrap Error" without the field. The oracle tests still compare our fields with
//! procfs-core's on the same text, where it keeps them.

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::mangle::unmangle;
use super::{ParseError, Parsed};

/// The mount table of the process reading it.
pub const SELF_MOUNTINFO: &str = "/proc/self/mountinfo";

/// One line of a mountinfo file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountInfo {
    /// (1) Unique id of the mount (may be reused after unmount).
    pub mount_id: u32,
    /// (2) Id of the parent mount (itself, or a mount outside the table, for the root).
    pub parent_id: u32,
    /// (3) Major number of `st_dev` for files on this filesystem.
    pub major: u32,
    /// (3) Minor number of `st_dev`.
    pub minor: u32,
    /// (4) The directory of the filesystem that is the root of this mount (`/` unless a bind
    /// mount or a btrfs subvolume), unescaped, without a `//deleted` suffix.
    pub root: String,
    /// Whether (4) ended in `//deleted`: the bind-mounted directory was deleted.
    pub root_deleted: bool,
    /// (5) The mount point, relative to the process's root, unescaped.
    pub mount_point: String,
    /// (6) Per-mount options, in order (`rw`, `nosuid`, `relatime`).
    pub mount_options: Vec<String>,
    /// (7) Optional fields (propagation).
    pub optional_fields: Vec<OptionalField>,
    /// (9) Filesystem type, `type[.subtype]`.
    pub fstype: String,
    /// (10) Mount source, unescaped; `None` when the field is empty.
    pub source: Option<String>,
    /// (11) Per-superblock options, in order.
    pub super_options: Vec<String>,
}

/// An optional field (7) of a mountinfo line: mount propagation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OptionalField {
    /// `shared:N`: shared in peer group N.
    Shared(u32),
    /// `master:N`: slave to shared peer group N.
    Master(u32),
    /// `propagate_from:N`: slave, receives propagation from peer group N.
    PropagateFrom(u32),
    /// `unbindable`.
    Unbindable,
    /// A tag this parser does not know, as written.
    Other(String),
}

impl std::fmt::Display for OptionalField {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptionalField::Shared(n) => write!(f, "shared:{n}"),
            OptionalField::Master(n) => write!(f, "master:{n}"),
            OptionalField::PropagateFrom(n) => write!(f, "propagate_from:{n}"),
            OptionalField::Unbindable => f.write_str("unbindable"),
            OptionalField::Other(s) => f.write_str(s),
        }
    }
}

impl MountInfo {
    /// Whether the mount is read-only: `ro` in the per-mount options (a read-only bind or
    /// remount) or in the superblock options (the filesystem itself, e.g. after
    /// `errors=remount-ro` struck).
    pub fn read_only(&self) -> bool {
        self.mount_options.iter().any(|o| o == "ro") || self.super_options.iter().any(|o| o == "ro")
    }

    /// Whether option `name` is present (alone or as `name=value`) in the per-mount or the
    /// superblock options.
    pub fn has_option(&self, name: &str) -> bool {
        self.mount_options
            .iter()
            .chain(&self.super_options)
            .any(|o| o == name || o.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
    }

    /// `major:minor`.
    pub fn dev(&self) -> String {
        format!("{}:{}", self.major, self.minor)
    }
}

/// Parses the text of a mountinfo file; `file` names it in errors.
pub fn parse(text: &str, file: &Path) -> Parsed<MountInfo> {
    let mut out = Parsed::default();
    for (i, l) in text.lines().enumerate() {
        if l.is_empty() {
            continue;
        }
        match parse_line(l) {
            Ok(m) => out.entries.push((i + 1, m)),
            Err(message) => out.errors.push(ParseError { file: file.to_path_buf(), line: i + 1, message }),
        }
    }
    out
}

fn parse_line(l: &str) -> Result<MountInfo, String> {
    let f: Vec<&str> = l.split(' ').collect();
    let sep = f.iter().position(|&x| x == "-").ok_or("no \"-\" separator before the filesystem type")?;
    if sep < 6 {
        return Err(format!("expected 6 fields before the \"-\" separator, found {sep}"));
    }
    if f.len() != sep + 4 {
        return Err(format!("expected 3 fields after the \"-\" separator, found {}", f.len() - sep - 1));
    }
    let num = |s: &str, what: &str| s.parse::<u32>().map_err(|_| format!("{what} {s:?} is not a number"));
    let (major, minor) = f[2].split_once(':').ok_or_else(|| format!("major:minor {:?} has no ':'", f[2]))?;
    let (root, root_deleted) = match f[3].strip_suffix("//deleted") {
        Some(r) => (r, true),
        None => (f[3], false),
    };
    if f[4].is_empty() || f[sep + 1].is_empty() {
        return Err("empty mount point or filesystem type".into());
    }
    let optional_fields = f[6..sep].iter().filter(|s| !s.is_empty()).map(|s| optional_field(s)).collect();
    Ok(MountInfo {
        mount_id: num(f[0], "mount id")?,
        parent_id: num(f[1], "parent id")?,
        major: num(major, "major")?,
        minor: num(minor, "minor")?,
        root: unmangle(root),
        root_deleted,
        mount_point: unmangle(f[4]),
        mount_options: options(f[5]),
        optional_fields,
        fstype: unmangle(f[sep + 1]),
        source: Some(f[sep + 2]).filter(|s| !s.is_empty()).map(unmangle),
        super_options: options(f[sep + 3]),
    })
}

fn options(field: &str) -> Vec<String> {
    if field.is_empty() { Vec::new() } else { field.split(',').map(unmangle).collect() }
}

fn optional_field(s: &str) -> OptionalField {
    let (tag, n) = match s.split_once(':') {
        Some((t, n)) => (t, n.parse::<u32>().ok()),
        None => (s, None),
    };
    match (tag, n) {
        ("shared", Some(n)) => OptionalField::Shared(n),
        ("master", Some(n)) => OptionalField::Master(n),
        ("propagate_from", Some(n)) => OptionalField::PropagateFrom(n),
        ("unbindable", None) => OptionalField::Unbindable,
        _ => OptionalField::Other(s.to_owned()),
    }
}

/// What a path lookup of `path` meets in a mount table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Visibility<'a> {
    /// The mount whose filesystem holds `path` for a process that looks it up now: the
    /// topmost mount at `path` itself, or the mount of the nearest parent directory.
    pub holder: &'a MountInfo,
    /// Whether `holder` is mounted at `path` itself (`path` is a mount point).
    pub at_path: bool,
    /// Other mounts at `path` that a lookup does not reach: stacked under `holder` (a later
    /// mount on the same mount point), or cut off because a parent directory was mounted over
    /// after them. In table order.
    pub hidden: Vec<&'a MountInfo>,
}

/// Resolves `path` (absolute, normalised: no `.`, `..` or repeated `/`) through the mount
/// tree of `mounts` as the kernel's path lookup would: from the root mount, at each prefix of
/// the path, step onto the topmost mount whose parent is the current mount. `None` when the
/// table has no mount at `/`.
pub fn visibility<'a>(mounts: &'a [MountInfo], path: &str) -> Option<Visibility<'a>> {
    let ids: std::collections::HashSet<u32> = mounts.iter().map(|m| m.mount_id).collect();
    // The namespace's root: mounted at "/" with a parent outside the table (or itself).
    let mut cur = mounts
        .iter()
        .position(|m| m.mount_point == "/" && (m.parent_id == m.mount_id || !ids.contains(&m.parent_id)))
        .or_else(|| mounts.iter().position(|m| m.mount_point == "/"))?;
    let climb = |mut cur: usize, at: &str| {
        // Bounded: a table with a cycle of parents (never written by a kernel) cannot hang us.
        for _ in 0..mounts.len() {
            match mounts
                .iter()
                .rposition(|m| m.mount_point == at && m.parent_id == mounts[cur].mount_id && m.mount_id != m.parent_id)
            {
                Some(next) if next != cur => cur = next,
                _ => break,
            }
        }
        cur
    };
    cur = climb(cur, "/");
    let mut prefix = String::new();
    for comp in path.split('/').filter(|c| !c.is_empty()) {
        prefix.push('/');
        prefix.push_str(comp);
        cur = climb(cur, &prefix);
    }
    let holder = &mounts[cur];
    let at_path = holder.mount_point == path;
    let hidden = mounts.iter().filter(|m| m.mount_point == path && !std::ptr::eq(*m, holder)).collect();
    Some(Visibility { holder, at_path, hidden })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn file() -> &'static Path {
        Path::new("/proc/self/mountinfo")
    }

    fn one(line: &str) -> MountInfo {
        let p = parse(line, file());
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        p.entries.into_iter().next().unwrap().1
    }

    #[test]
    fn man_page_example() {
        let m = one("36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue");
        assert_eq!((m.mount_id, m.parent_id, m.major, m.minor), (36, 35, 98, 0));
        assert_eq!((m.root.as_str(), m.mount_point.as_str()), ("/mnt1", "/mnt2"));
        assert_eq!(m.mount_options, ["rw", "noatime"]);
        assert_eq!(m.optional_fields, [OptionalField::Master(1)]);
        assert_eq!((m.fstype.as_str(), m.source.as_deref()), ("ext3", Some("/dev/root")));
        assert_eq!(m.super_options, ["rw", "errors=continue"]);
        assert!(!m.read_only() && m.has_option("errors") && m.has_option("noatime"));
    }

    #[rstest]
    #[case::escaped_space(
        "41 22 8:33 / /mnt/Plex\\040Drive ro,relatime shared:31 master:2 - ext4 /dev/sdc1 ro",
        "/mnt/Plex Drive"
    )]
    #[case::tab("47 22 0:48 / /mnt/tab\\011x rw - fuse.sshfs user@host:/a\\040b rw", "/mnt/tab\tx")]
    #[case::newline("49 22 0:50 / /mnt/nl\\012x rw - tmpfs tmpfs rw", "/mnt/nl\nx")]
    #[case::backslash("48 22 0:49 / /mnt/back\\134slash rw - tmpfs tmp\\134fs rw", "/mnt/back\\slash")]
    fn unescapes_mount_points(#[case] line: &str, #[case] want: &str) {
        assert_eq!(one(line).mount_point, want);
    }

    #[test]
    fn forms() {
        let m = one("47 22 0:48 / /mnt/x rw - fuse.sshfs user@host:/a\\040b rw,user_id=0");
        assert_eq!((m.fstype.as_str(), m.source.as_deref()), ("fuse.sshfs", Some("user@host:/a b")));
        let m = one("44 22 0:46 / /mnt/empty rw,relatime - tmpfs  rw");
        assert_eq!(m.source, None);
        let m = one("45 22 0:47 / /mnt/none rw,relatime unbindable - tmpfs none rw");
        assert_eq!(m.source.as_deref(), Some("none"));
        assert_eq!(m.optional_fields, [OptionalField::Unbindable]);
        let m = one("46 22 8:2 /var/lib/docker/x//deleted /mnt/deleted rw propagate_from:1 - ext4 /dev/sda2 rw");
        assert!(m.root_deleted);
        assert_eq!(m.root, "/var/lib/docker/x");
        assert_eq!(m.optional_fields, [OptionalField::PropagateFrom(1)]);
        let m = one("49 22 0:50 / /x rw shared:5 master:7 propagate_from:9 unbindable future:3 - tmpfs tmpfs rw");
        assert_eq!(
            m.optional_fields,
            [
                OptionalField::Shared(5),
                OptionalField::Master(7),
                OptionalField::PropagateFrom(9),
                OptionalField::Unbindable,
                OptionalField::Other("future:3".into())
            ]
        );
        let m = one("41 22 8:33 / /mnt/ro rw,relatime - ext4 /dev/sdc1 ro,errors=remount-ro");
        assert!(m.read_only(), "a superblock made read-only after errors counts");
        let m = one("41 22 8:33 / /mnt/ro ro,relatime - ext4 /dev/sdc1 rw");
        assert!(m.read_only(), "a read-only bind counts");
    }

    #[rstest]
    #[case::garbage("bogus line", "no \"-\" separator")]
    #[case::no_super_options("52 22 0:52 / /mnt/x rw - tmpfs", "expected 3 fields after")]
    #[case::no_separator("53 22 0:53 / /mnt/y rw shared:1", "no \"-\" separator")]
    #[case::short("53 22 0:53 / - tmpfs tmpfs rw", "expected 6 fields before")]
    #[case::bad_id("x 22 0:53 / /y rw - tmpfs tmpfs rw", "mount id \"x\"")]
    #[case::bad_dev("5 22 0-53 / /y rw - tmpfs tmpfs rw", "major:minor \"0-53\"")]
    fn bad_lines(#[case] bad: &str, #[case] needle: &str) {
        let text = format!("22 1 8:2 / / rw - ext4 /dev/sda2 rw\n{bad}\n23 22 0:21 / /proc rw - proc proc rw\n");
        let p = parse(&text, file());
        assert_eq!(p.entries.len(), 2);
        assert_eq!(p.errors.len(), 1);
        assert!(p.errors[0].to_string().starts_with("/proc/self/mountinfo:2: "), "{}", p.errors[0]);
        assert!(p.errors[0].message.contains(needle), "{}", p.errors[0].message);
    }

    fn table(text: &str) -> Vec<MountInfo> {
        let p = parse(text, file());
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        p.entries.into_iter().map(|(_, m)| m).collect()
    }

    const BASE: &str = "22 1 8:2 / / rw - ext4 /dev/sda2 rw\n23 22 0:21 / /proc rw - proc proc rw\n";

    #[test]
    fn visibility_of_a_plain_mount() {
        let t = table(&format!("{BASE}40 22 8:17 / /mnt/PlexStorage rw - ext4 /dev/sdb1 rw\n"));
        let v = visibility(&t, "/mnt/PlexStorage").unwrap();
        assert!(v.at_path && v.hidden.is_empty());
        assert_eq!(v.holder.mount_id, 40);
        let v = visibility(&t, "/mnt/PlexStorage/Movies").unwrap();
        assert!(!v.at_path);
        assert_eq!(v.holder.mount_id, 40);
        let v = visibility(&t, "/mnt/PlexDrive").unwrap();
        assert!(!v.at_path && v.hidden.is_empty());
        assert_eq!(v.holder.mount_id, 22);
        assert_eq!(visibility(&t, "/").unwrap().holder.mount_id, 22);
    }

    #[test]
    fn visibility_of_a_stacked_mount() {
        let t = table(&format!(
            "{BASE}40 22 8:17 / /mnt/PlexStorage rw - ext4 /dev/sdb1 rw\n51 40 8:49 / /mnt/PlexStorage rw - ext4 /dev/sdd1 rw\n"
        ));
        let v = visibility(&t, "/mnt/PlexStorage").unwrap();
        assert!(v.at_path);
        assert_eq!(v.holder.mount_id, 51);
        assert_eq!(v.hidden.iter().map(|m| m.mount_id).collect::<Vec<_>>(), [40]);
    }

    #[test]
    fn visibility_under_a_parent_mounted_later() {
        let t = table(&format!(
            "{BASE}40 22 8:17 / /mnt/PlexStorage rw - ext4 /dev/sdb1 rw\n60 22 0:60 / /mnt rw - tmpfs tmpfs rw\n"
        ));
        let v = visibility(&t, "/mnt/PlexStorage").unwrap();
        assert!(!v.at_path);
        assert_eq!(v.holder.mount_id, 60);
        assert_eq!(v.hidden.iter().map(|m| m.mount_id).collect::<Vec<_>>(), [40]);
        // Mounted again on the new /mnt: visible, and the old one is hidden.
        let t = table(&format!(
            "{BASE}40 22 8:17 / /mnt/PlexStorage rw - ext4 /dev/sdb1 rw\n60 22 0:60 / /mnt rw - tmpfs tmpfs rw\n61 60 8:17 / /mnt/PlexStorage rw - ext4 /dev/sdb1 rw\n"
        ));
        let v = visibility(&t, "/mnt/PlexStorage").unwrap();
        assert!(v.at_path);
        assert_eq!(v.holder.mount_id, 61);
    }

    #[test]
    fn visibility_with_the_root_stacked_and_no_root() {
        // A container: the root's parent is outside the table; something stacked on "/".
        let t = table("27 1 254:0 / / rw - ext4 /dev/vda rw\n90 27 0:90 / / rw - overlay overlay rw\n");
        assert_eq!(visibility(&t, "/etc").unwrap().holder.mount_id, 90);
        assert!(visibility(&table("40 22 8:17 / /mnt rw - ext4 /dev/sdb1 rw\n"), "/mnt").is_none());
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            let p = parse(&text, file());
            for e in &p.errors {
                prop_assert!(e.line >= 1);
            }
        }

        #[test]
        fn escaped_paths_round_trip(path in "/[^\0]{0,30}") {
            let line = format!("40 22 8:17 / {} rw - ext4 /dev/sdb1 rw", crate::sources::mangle::mangle(&path));
            prop_assert_eq!(one(&line).mount_point, path);
        }
    }
}
