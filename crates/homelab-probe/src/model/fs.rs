//! Facts about a file as `lstat(2)` gives them: type, owner, group, mode, device number. The
//! host layer gathers them (from the kernel or a sysroot's manifest); probes and snapshots
//! carry them.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The type of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// Regular file.
    File,
    /// Directory.
    Dir,
    /// Symbolic link (the host layer never follows one when it stats a path).
    Symlink,
    /// Character device (render nodes are these).
    Char,
    /// Block device.
    Block,
    /// Named pipe.
    Fifo,
    /// Unix socket.
    Socket,
}

/// A device number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct DevNumber {
    /// Major number (226 for DRM).
    pub major: u32,
    /// Minor number (128 and up for render nodes).
    pub minor: u32,
}

/// Type, owner, group and mode of a path, as `lstat(2)` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStat {
    /// File type.
    pub kind: FileKind,
    /// Owner uid.
    pub uid: u32,
    /// Group gid.
    pub gid: u32,
    /// Permission bits, `0o7777` at most.
    pub mode: FileMode,
    /// Device number of a character or block device.
    pub rdev: Option<DevNumber>,
}

/// Unix permission bits (`0o7777` at most), written in TOML as an octal string (`"0660"`) or
/// an octal integer (`0o660`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FileMode(pub u32);

impl FileMode {
    /// Parses `0660`, `660` or `0o660`.
    pub fn parse(s: &str) -> Option<Self> {
        let digits = s.strip_prefix("0o").unwrap_or(s);
        if digits.is_empty() || digits.len() > 5 || !digits.bytes().all(|b| (b'0'..=b'7').contains(&b)) {
            return None;
        }
        let v = u32::from_str_radix(digits, 8).ok()?;
        (v <= 0o7777).then_some(FileMode(v))
    }
}

impl fmt::Display for FileMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:04o}", self.0)
    }
}

impl Serialize for FileMode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de> Deserialize<'de> for FileMode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Str(String),
            Int(i64),
        }
        let bad = || serde::de::Error::custom("a mode is an octal string such as \"0660\" (or 0o660), at most 0o7777");
        match Raw::deserialize(d)? {
            Raw::Str(s) => FileMode::parse(&s).ok_or_else(bad),
            Raw::Int(i) if (0..=0o7777).contains(&i) => Ok(FileMode(i as u32)),
            Raw::Int(_) => Err(bad()),
        }
    }
}
