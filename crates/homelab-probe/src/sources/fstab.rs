//! `/etc/fstab`, as fstab(5) (util-linux) defines it: one filesystem per line,
//! `fs_spec fs_file fs_vfstype fs_mntops fs_freq fs_passno`, fields separated by blanks.
//!
//! Parsed the way libmount (`mount`, `findmnt`, systemd's fstab generator) parses it, and
//! checked against `findmnt --tab-file` in the oracle tests:
//! - blank lines and lines whose first non-blank character is `#` are skipped; a `#` later in a
//!   line is not a comment (a trailing `# note` after the options makes the line invalid, as in
//!   libmount);
//! - fields are split on blanks (spaces and tabs; white space at the end of a line, such as the
//!   `\r` of a CRLF file, is cut first, but a `\r` inside a line is part of a field);
//!   each field is unescaped with [`unmangle`] (`\040` space, `\011`
//!   tab, `\012` newline, `\134` backslash);
//! - `fs_spec`, `fs_file` and `fs_vfstype` are required; `fs_mntops` is optional (an empty
//!   option list, which mount(8) treats as `defaults`); `fs_freq` and `fs_passno` are optional
//!   and default to 0; fields after the sixth are ignored, as libmount ignores them;
//! - `fs_spec` is kept as written and also classified as a [`Source`]: `UUID=`, `LABEL=`,
//!   `PARTUUID=`, `PARTLABEL=` tags (case-sensitive; a value in double or single quotes is
//!   unquoted, as libblkid does), an absolute path (a device node, `/dev/disk/by-*/...`, the
//!   source directory of a bind mount, a swap file), or anything else (`tmpfs`, `proc`,
//!   `nas:/export`, `//nas/share`);
//! - `fs_vfstype` may list several types (`udf,iso9660`), `auto`, `none` (bind mounts) or
//!   `swap`; options keep their order (`noauto`, `nofail`, `bind`, `x-systemd.*` are options
//!   like any other).
//!
//! Stricter than libmount in one way: `fs_freq` and `fs_passno` must be decimal numbers below
//! 2^32. libmount reads them with `sscanf("%d")`, which accepts `-1` and wraps numbers that
//! overflow; such a line here is reported as an error (it is a typo either way).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::mangle::{mangle, unmangle};
use super::{ParseError, Parsed};
use crate::model::source::Source;

/// The default location.
pub const FSTAB: &str = "/etc/fstab";

/// One line of an fstab(5) file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FstabEntry {
    /// `fs_spec` as written (unescaped, tag quotes kept): `UUID=7c1f...`, `/dev/sdb1`, `tmpfs`.
    pub spec: String,
    /// `fs_spec` classified.
    pub source: Source,
    /// `fs_file`, the mount point (unescaped); `none` or `swap` for swap entries.
    pub target: String,
    /// `fs_vfstype` as written: `ext4`, `udf,iso9660`, `auto`, `none`, `swap`.
    pub fstype: String,
    /// `fs_mntops` split at commas, in order (unescaped); empty when the field is absent.
    pub options: Vec<String>,
    /// `fs_freq` (dump), when present.
    pub freq: Option<u32>,
    /// `fs_passno` (fsck order), when present.
    pub passno: Option<u32>,
}

impl FstabEntry {
    /// Whether option `name` is present, alone or as `name=value`.
    pub fn has_option(&self, name: &str) -> bool {
        self.options.iter().any(|o| o == name || o.strip_prefix(name).is_some_and(|r| r.starts_with('=')))
    }

    /// The value of the last `name=value` option.
    pub fn option_value(&self, name: &str) -> Option<&str> {
        self.options.iter().rev().find_map(|o| o.strip_prefix(name)?.strip_prefix('='))
    }

    /// A swap entry (`fs_vfstype` is `swap`).
    pub fn is_swap(&self) -> bool {
        self.fstype == "swap"
    }

    /// Not mounted at boot or by `mount -a` (`noauto`).
    pub fn is_noauto(&self) -> bool {
        self.has_option("noauto")
    }

    /// Boot goes on when it cannot be mounted (`nofail`).
    pub fn is_nofail(&self) -> bool {
        self.has_option("nofail")
    }

    /// A bind mount (`bind` or `rbind`).
    pub fn is_bind(&self) -> bool {
        self.has_option("bind") || self.has_option("rbind")
    }

    /// Whether the options ask for a read-only mount: the last of `ro`/`rw` wins; `defaults`
    /// and no option mean read-write.
    pub fn read_only(&self) -> bool {
        self.options.iter().rev().find(|o| *o == "ro" || *o == "rw").is_some_and(|o| o == "ro")
    }

    /// The filesystem types `fs_vfstype` allows; empty for `auto` (any type).
    pub fn fstypes(&self) -> Vec<&str> {
        if self.fstype == "auto" { Vec::new() } else { self.fstype.split(',').filter(|t| !t.is_empty()).collect() }
    }

    /// Renders the entry as one fstab(5) line (fields escaped, all six fields written).
    pub fn to_line(&self) -> String {
        let options = if self.options.is_empty() { "defaults".to_owned() } else { self.options.join(",") };
        format!(
            "{} {} {} {} {} {}",
            mangle(&self.spec),
            mangle(&self.target),
            mangle(&self.fstype),
            mangle(&options),
            self.freq.unwrap_or(0),
            self.passno.unwrap_or(0)
        )
    }
}

/// Parses the text of an fstab(5) file; `file` names it in errors.
pub fn parse(text: &str, file: &Path) -> Parsed<FstabEntry> {
    let mut out = Parsed::default();
    for (i, l) in text.lines().enumerate() {
        let line = i + 1;
        // libmount: leading blanks are skipped, trailing white space (a CRLF file's `\r`) is cut.
        let t = l
            .trim_start_matches(is_blank)
            .trim_end_matches(|c: char| is_blank(c) || matches!(c, '\r' | '\x0b' | '\x0c'));
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        match parse_line(t) {
            Ok(e) => out.entries.push((line, e)),
            Err(message) => out.errors.push(ParseError { file: file.to_path_buf(), line, message }),
        }
    }
    out
}

/// The field separators of libmount (`isblank`): space and tab only.
fn is_blank(c: char) -> bool {
    matches!(c, ' ' | '\t')
}

fn parse_line(l: &str) -> Result<FstabEntry, String> {
    let f: Vec<&str> = l.split(is_blank).filter(|s| !s.is_empty()).collect();
    if f.len() < 3 {
        return Err(format!(
            "expected at least 3 fields (fs_spec fs_file fs_vfstype [fs_mntops [fs_freq [fs_passno]]]), found {}",
            f.len()
        ));
    }
    let number = |i: usize, what: &str| -> Result<Option<u32>, String> {
        match f.get(i) {
            None => Ok(None),
            Some(s) => match s.parse::<u32>() {
                Ok(v) => Ok(Some(v)),
                Err(_) if s.starts_with('#') => {
                    Err(format!("{what} {s:?} is not a number (a comment must be on a line of its own)"))
                }
                Err(_) => Err(format!("{what} {s:?} is not a decimal number")),
            },
        }
    };
    let spec = unmangle(f[0]);
    let options = match f.get(3) {
        Some(o) => unmangle(o).split(',').map(str::to_owned).collect(),
        None => Vec::new(),
    };
    Ok(FstabEntry {
        source: Source::parse(&spec),
        spec,
        target: unmangle(f[1]),
        fstype: unmangle(f[2]),
        options,
        freq: number(4, "fs_freq (5th field)")?,
        passno: number(5, "fs_passno (6th field)")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rstest::rstest;

    fn file() -> &'static Path {
        Path::new("/etc/fstab")
    }

    fn one(line: &str) -> FstabEntry {
        let p = parse(line, file());
        assert!(p.errors.is_empty(), "{:?}", p.errors);
        assert_eq!(p.entries.len(), 1);
        p.entries.into_iter().next().unwrap().1
    }

    #[test]
    fn popos_fstab() {
        let text = "# /etc/fstab: static file system information.\n\
                    #\n\
                    # <file system>  <mount point>  <type>  <options>  <dump>  <pass>\n\
                    PARTUUID=9f3c1b2a-7d4e-4b8f-a1c2-3d4e5f6a7b8c  /boot/efi  vfat  umask=0077  0  0\n\
                    UUID=0a3407de-014b-458b-b5c1-848e92a327a3  /  ext4  noatime,errors=remount-ro  0  0\n\
                    /dev/mapper/cryptswap  none  swap  defaults  0  0\n\
                    \n\
                    UUID=7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10 /mnt/PlexStorage ext4 defaults,nofail 0 2\n\
                    UUID=3b5e8d21-6c0f-4a7e-9d12-8f4a6b2c1e07 /mnt/PlexDrive ext4 defaults,nofail 0 2\n";
        let p = parse(text, file());
        assert!(p.errors.is_empty());
        let lines: Vec<usize> = p.entries.iter().map(|(l, _)| *l).collect();
        assert_eq!(lines, [4, 5, 6, 8, 9]);
        let plex = &p.entries[3].1;
        assert_eq!(plex.source, Source::Uuid("7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10".into()));
        assert_eq!(plex.target, "/mnt/PlexStorage");
        assert!(plex.is_nofail() && !plex.is_noauto() && !plex.read_only());
        assert_eq!((plex.freq, plex.passno), (Some(0), Some(2)));
        assert!(p.entries[2].1.is_swap());
        assert_eq!(p.entries[0].1.source, Source::PartUuid("9f3c1b2a-7d4e-4b8f-a1c2-3d4e5f6a7b8c".into()));
    }

    #[rstest]
    #[case::uuid("UUID=7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10", Source::Uuid("7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10".into()))]
    #[case::quoted_uuid("UUID=\"5E2A-9A3B\"", Source::Uuid("5E2A-9A3B".into()))]
    #[case::single_quoted("LABEL='data'", Source::Label("data".into()))]
    #[case::label_with_equals("LABEL=a=b", Source::Label("a=b".into()))]
    #[case::label_escaped("LABEL=Plex\\040Drive", Source::Label("Plex Drive".into()))]
    #[case::partuuid("PARTUUID=0e6b0f61-01", Source::PartUuid("0e6b0f61-01".into()))]
    #[case::partlabel("PARTLABEL=data", Source::PartLabel("data".into()))]
    #[case::lowercase_is_no_tag("uuid=abc", Source::Other("uuid=abc".into()))]
    #[case::by_uuid("/dev/disk/by-uuid/7c1f", Source::Path("/dev/disk/by-uuid/7c1f".into()))]
    #[case::devnode("/dev/sdb1", Source::Path("/dev/sdb1".into()))]
    #[case::bind_source("/srv/data", Source::Path("/srv/data".into()))]
    #[case::tmpfs("tmpfs", Source::Other("tmpfs".into()))]
    #[case::nfs("nas:/export", Source::Other("nas:/export".into()))]
    #[case::cifs("//nas/media", Source::Other("//nas/media".into()))]
    fn sources(#[case] spec: &str, #[case] want: Source) {
        let e = one(&format!("{spec} /mnt/x ext4 defaults 0 0"));
        assert_eq!(e.source, want);
        assert_eq!(e.spec, unmangle(spec));
    }

    #[test]
    fn forms_of_the_issue() {
        let e = one("LABEL=Plex\\040Drive /mnt/Plex\\040Drive ext4 nofail,x-systemd.device-timeout=10s");
        assert_eq!(e.target, "/mnt/Plex Drive");
        assert_eq!(e.options, ["nofail", "x-systemd.device-timeout=10s"]);
        assert_eq!((e.freq, e.passno), (None, None));
        assert_eq!(e.option_value("x-systemd.device-timeout"), Some("10s"));
        assert!(e.has_option("x-systemd.device-timeout") && !e.has_option("x-systemd"));

        let e = one("/dev/sr0 /media/cdrom0 udf,iso9660 user,noauto 0 0");
        assert_eq!(e.fstypes(), ["udf", "iso9660"]);
        assert!(e.is_noauto());

        let e = one("/srv/data /export/data none bind,nofail 0 0");
        assert!(e.is_bind() && e.is_nofail());
        assert_eq!(e.source, Source::Path("/srv/data".into()));

        let e = one("/mnt/a\\134b /mnt/tab\\011x\\012y none rbind");
        assert_eq!((e.spec.as_str(), e.target.as_str()), ("/mnt/a\\b", "/mnt/tab\tx\ny"));
        assert!(e.is_bind());

        let e = one("/dev/sdc1 /mnt/y ext4");
        assert!(e.options.is_empty() && !e.read_only());

        let e = one("/dev/sdd1\t/mnt/tabs\text4\tro,noatime\t0\t0   \r");
        assert!(e.read_only());
        assert_eq!(e.passno, Some(0));
        assert!(one("/dev/sdd1 /x ext4 ro,rw").options.len() == 2 && !one("/dev/sdd1 /x ext4 ro,rw").read_only());
        assert!(one("/dev/sde1 /x auto defaults").fstypes().is_empty());
        // Like libmount, fields after the sixth are ignored.
        assert_eq!(one("UUID=abc /mnt/z ext4 defaults 0 2 extra").passno, Some(2));
    }

    #[rstest]
    #[case::two_fields("/dev/sdb1 /mnt/x", "expected at least 3 fields")]
    #[case::one_field("/dev/sdb1", "found 1")]
    #[case::trailing_comment("/dev/sde1 /x ext4 defaults # note", "a comment must be on a line of its own")]
    #[case::bad_freq("/dev/sdf1 /w ext4 defaults x 2", "fs_freq (5th field) \"x\"")]
    #[case::bad_pass("/dev/sdf1 /w ext4 defaults 0 two", "fs_passno (6th field) \"two\"")]
    #[case::negative("/dev/sda2 /f ext4 defaults -1 2", "fs_freq (5th field) \"-1\"")]
    #[case::overflow("/dev/sda4 /h ext4 defaults 99999999999 2", "\"99999999999\"")]
    fn bad_lines_are_reported_and_the_rest_is_kept(#[case] bad: &str, #[case] needle: &str) {
        let text = format!("# head\nUUID=a / ext4 defaults 0 1\n{bad}\ntmpfs /tmp tmpfs mode=1777\n");
        let p = parse(&text, file());
        assert_eq!(p.entries.len(), 2, "{:?}", p.entries);
        assert_eq!(p.errors.len(), 1);
        assert_eq!(p.errors[0].line, 3);
        assert!(p.errors[0].to_string().starts_with("/etc/fstab:3: "), "{}", p.errors[0]);
        assert!(p.errors[0].message.contains(needle), "{}", p.errors[0].message);
        assert_eq!(p.entries[1].0, 4);
    }

    #[test]
    fn comments_and_blanks() {
        let p = parse("# a\n\n   # indented\n\t\n \r\n# UNCONFIGURED FSTAB FOR BASE SYSTEM\n", file());
        assert!(p.entries.is_empty() && p.errors.is_empty());
    }

    fn field() -> impl Strategy<Value = String> {
        // Anything but an empty field; a leading '#' is escaped by mangle, so it is allowed.
        "[^\0]{1,16}"
    }

    fn entry() -> impl Strategy<Value = FstabEntry> {
        (
            field(),
            field(),
            "[a-z0-9.,]{1,10}",
            proptest::collection::vec("[^,\0]{1,12}", 1..4),
            any::<u32>(),
            any::<u32>(),
        )
            .prop_filter("fstype with an empty element is not round-trippable", |(_, _, t, _, _, _)| {
                !t.starts_with(',') || t.len() > 1
            })
            .prop_map(|(spec, target, fstype, options, freq, passno)| FstabEntry {
                source: Source::parse(&spec),
                spec,
                target,
                fstype,
                options,
                freq: Some(freq),
                passno: Some(passno),
            })
    }

    proptest! {
        #[test]
        fn round_trip(entries in proptest::collection::vec(entry(), 0..10)) {
            let text: String = entries.iter().map(|e| e.to_line() + "\n").collect();
            let p = parse(&text, file());
            prop_assert!(p.errors.is_empty(), "{:?}", p.errors);
            let got: Vec<FstabEntry> = p.entries.into_iter().map(|(_, e)| e).collect();
            prop_assert_eq!(got, entries);
        }

        #[test]
        fn never_panics(text in "\\PC{0,300}") {
            let p = parse(&text, file());
            for e in &p.errors {
                prop_assert!(e.line >= 1);
            }
        }
    }
}
