//! systemd naming rules used in remedies: the unit name of a mount point
//! (`/mnt/PlexStorage` -> `mnt-PlexStorage.mount`), as `systemd-escape --path --suffix=mount`
//! computes it (systemd.unit(5), "STRING ESCAPING FOR INCLUSION IN UNIT NAMES"). Checked
//! against the real `systemd-escape` in the tests.

/// Escapes an absolute path for a unit name like `systemd-escape --path`: repeated and
/// trailing slashes are dropped, `/` itself becomes `-`, the leading `/` is removed, every
/// other `/` becomes `-`, and bytes outside `[A-Za-z0-9:_.]` (and a leading `.`) become
/// `\xNN`.
pub fn escape_path(path: &str) -> String {
    let parts: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if parts.is_empty() {
        return "-".to_owned();
    }
    let joined = parts.join("/");
    let mut out = String::with_capacity(joined.len());
    for (i, &b) in joined.as_bytes().iter().enumerate() {
        match b {
            b'/' => out.push('-'),
            b'.' if i == 0 => out.push_str("\\x2e"),
            b if b.is_ascii_alphanumeric() || b":_.".contains(&b) => out.push(b as char),
            b => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out
}

/// The mount unit systemd makes for mount point `path`: `mnt-PlexStorage.mount`.
pub fn mount_unit(path: &str) -> String {
    format!("{}.mount", escape_path(path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rstest::rstest;

    #[rstest]
    #[case("/mnt/PlexStorage", "mnt-PlexStorage")]
    #[case("/", "-")]
    #[case("/srv", "srv")]
    #[case("/mnt/Plex Drive", "mnt-Plex\\x20Drive")]
    #[case("/srv/a-b", "srv-a\\x2db")]
    #[case("/mnt/.hidden", "mnt-.hidden")]
    #[case("/.hidden", "\\x2ehidden")]
    #[case("/mnt/ü", "mnt-\\xc3\\xbc")]
    #[case("//mnt//x/", "mnt-x")]
    fn escapes(#[case] path: &str, #[case] want: &str) {
        assert_eq!(escape_path(path), want);
    }
}
