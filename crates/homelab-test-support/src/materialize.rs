//! Fixture sysroots built from layers, so that each fixture directory holds only what makes
//! its host different (see `crates/homelab-probe/tests/fixtures/README.md`).
//!
//! A fixture directory is a sysroot, or a layer when it sits under `layers/`, when it holds
//! `fixture.toml`:
//!
//! ```toml
//! from = ["layers/intel-igpu", "debian12-intel"]   # built first, in this order
//! empty = ["dev/dri/renderD128", "run/.keep"]      # empty files: placeholders
//! ```
//!
//! A fixture is built by building each `from` entry (a layer or another sysroot, by its path
//! under the fixtures directory) into the same directory, in order, then copying the
//! directory's own files (all but `fixture.toml`) and creating its `empty` files on top. A later
//! file or symbolic link replaces an earlier one at the same path; a directory never replaces
//! a file or a link, nor the other way round (that is an error, not a silent merge). Nothing
//! else is special: `homelab-sysroot.toml` is copied like any file and read by the library.
//!
//! Used by this crate's build script (which builds every sysroot once into `OUT_DIR`) and by
//! its tests. Everything it writes or replaces lies under a directory it created itself.

use std::collections::hash_map::DefaultHasher;
use std::fmt;
use std::fs;
use std::hash::Hasher;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

/// The file that makes a directory a fixture, and says what it is built from.
pub const DESCRIPTION: &str = "fixture.toml";

/// The directory of layers: fixtures that are parts of sysroots, never sysroots themselves.
pub const LAYERS: &str = "layers";

/// What a fixture's `fixture.toml` says.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Description {
    /// Fixtures (layers or sysroots) built first, in order.
    #[serde(default)]
    from: Vec<String>,
    /// Empty files created on top (device nodes that `homelab-sysroot.toml` types, driver
    /// libraries that only need to exist, `.keep` files).
    #[serde(default)]
    empty: Vec<String>,
}

/// Why a fixture could not be built: the file or directory, and what is wrong with it.
#[derive(Debug)]
pub struct Error {
    path: PathBuf,
    message: String,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for Error {}

fn err(path: &Path, message: impl fmt::Display) -> Error {
    Error { path: path.to_path_buf(), message: message.to_string() }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |e| err(path, e)
}

/// Names of every sysroot under `fixtures` (directories with a `fixture.toml`, outside
/// `layers/`), as paths relative to it with `/` (`nixos-default`, `migration/oldhost`), sorted.
pub fn sysroot_names(fixtures: &Path) -> Result<Vec<String>, Error> {
    let mut names = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        if rel.starts_with(LAYERS) {
            continue;
        }
        let dir = fixtures.join(&rel);
        if !rel.as_os_str().is_empty() && dir.join(DESCRIPTION).is_file() {
            names.push(name_of(&rel)?);
            continue;
        }
        for (name, kind) in sorted_entries(&dir)? {
            if kind.is_dir() {
                stack.push(rel.join(name));
            }
        }
    }
    names.sort();
    Ok(names)
}

fn name_of(rel: &Path) -> Result<String, Error> {
    rel.to_str().map(str::to_owned).ok_or_else(|| err(rel, "fixture names must be UTF-8"))
}

/// Builds every sysroot under `fixtures` into `out/<name>`; `out` must be an empty directory.
/// Returns the names built.
pub fn build_all(fixtures: &Path, out: &Path) -> Result<Vec<String>, Error> {
    if fs::read_dir(out).map_err(io(out))?.next().is_some() {
        return Err(err(out, "must be an empty directory"));
    }
    let names = sysroot_names(fixtures)?;
    for name in &names {
        build(fixtures, name, &out.join(name))?;
    }
    Ok(names)
}

/// Builds the fixture `name` (a path under `fixtures`) into `dest`, which must not exist yet.
pub fn build(fixtures: &Path, name: &str, dest: &Path) -> Result<(), Error> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(err(dest, "already exists: a fixture is built into a new directory"));
    }
    if let Some(parent) = dest.parent() {
        fs::create_dir_all(parent).map_err(io(parent))?;
    }
    fs::create_dir(dest).map_err(io(dest))?;
    let mut building = Vec::new();
    apply(fixtures, name, dest, &mut building)
}

/// Puts fixture `name` (its `from` chain, its files, its empty files) into `dest`.
fn apply(fixtures: &Path, name: &str, dest: &Path, building: &mut Vec<String>) -> Result<(), Error> {
    let dir = fixtures.join(name);
    let file = dir.join(DESCRIPTION);
    if building.iter().any(|b| b == name) {
        return Err(err(&file, format!("`from` loops: {} -> {name}", building.join(" -> "))));
    }
    let text = fs::read_to_string(&file).map_err(|e| err(&file, format!("{e} (is `{name}` a fixture?)")))?;
    let desc: Description = toml::from_str(&text).map_err(|e| err(&file, e.message()))?;
    building.push(name.to_owned());
    for base in &desc.from {
        if !is_relative_below(Path::new(base)) {
            return Err(err(&file, format!("from: `{base}` must be a path under the fixtures directory")));
        }
        apply(fixtures, base, dest, building)?;
    }
    building.pop();
    copy_tree(&dir, Path::new(""), dest)?;
    for empty in &desc.empty {
        let rel = Path::new(empty);
        if !is_relative_below(rel) {
            return Err(err(&file, format!("empty: `{empty}` must be a relative path inside the sysroot")));
        }
        if fs::symlink_metadata(dir.join(rel)).is_ok() {
            return Err(err(&file, format!("empty: `{empty}` is also a file of {name}")));
        }
        let target = dest.join(rel);
        let put = || -> Result<(), Error> {
            ensure_parent(dest, &target)?;
            remove_leaf(dest, &target)?;
            fs::write(&target, "").map_err(io(&target))
        };
        put().map_err(|e| err(&file, format!("empty: `{empty}`: {e}")))?;
    }
    Ok(())
}

/// Whether `p` is relative and stays below where it starts (no `..`, no root).
fn is_relative_below(p: &Path) -> bool {
    !p.as_os_str().is_empty() && p.components().all(|c| matches!(c, Component::Normal(_)))
}

/// Copies the entries of `src/rel` (all but the top `fixture.toml`) into `dest/rel`.
fn copy_tree(src: &Path, rel: &Path, dest: &Path) -> Result<(), Error> {
    for (name, kind) in sorted_entries(&src.join(rel))? {
        let rel = rel.join(&name);
        if rel.as_os_str() == DESCRIPTION {
            continue;
        }
        let (from, to) = (src.join(&rel), dest.join(&rel));
        if kind.is_dir() {
            ensure_dir(dest, &to).map_err(|e| err(&from, e))?;
            copy_tree(src, &rel, dest)?;
            continue;
        }
        let put = || -> Result<(), Error> {
            ensure_parent(dest, &to)?;
            remove_leaf(dest, &to)?;
            if kind.is_symlink() {
                let target = fs::read_link(&from).map_err(io(&from))?;
                std::os::unix::fs::symlink(&target, &to).map_err(io(&to))
            } else if kind.is_file() {
                fs::copy(&from, &to).map_err(io(&from))?;
                let mode = fs::metadata(&from).map_err(io(&from))?.permissions().mode();
                fs::set_permissions(&to, fs::Permissions::from_mode(mode & 0o755)).map_err(io(&to))
            } else {
                Err(err(&from, "a fixture holds only directories, files and symbolic links"))
            }
        };
        put().map_err(|e| if e.path == from { e } else { err(&from, e) })?;
    }
    Ok(())
}

/// Directory entries with their types (symbolic links not followed), sorted by name.
fn sorted_entries(dir: &Path) -> Result<Vec<(std::ffi::OsString, fs::FileType)>, Error> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).map_err(io(dir))? {
        let e = e.map_err(io(dir))?;
        v.push((e.file_name(), e.file_type().map_err(io(&e.path()))?));
    }
    v.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(v)
}

/// Makes `path` (under `root`) a directory, creating what is missing; a file or a symbolic link
/// on the way is an error (never followed: a layer's link must not lead a write elsewhere).
fn ensure_dir(root: &Path, path: &Path) -> Result<(), Error> {
    let rel = path.strip_prefix(root).map_err(|_| err(path, format!("outside {}", root.display())))?;
    let mut cur = root.to_path_buf();
    for c in rel.components() {
        cur.push(c);
        match fs::symlink_metadata(&cur) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err(err(&cur, "a lower fixture has a file or link here, and this one a directory")),
            Err(_) => fs::create_dir(&cur).map_err(io(&cur))?,
        }
    }
    Ok(())
}

fn ensure_parent(root: &Path, path: &Path) -> Result<(), Error> {
    match path.parent() {
        Some(parent) => ensure_dir(root, parent),
        None => Err(err(path, "has no parent directory")),
    }
}

/// Removes the file or symbolic link at `path` (under `root`) that a lower fixture put there; a
/// directory there is an error.
fn remove_leaf(root: &Path, path: &Path) -> Result<(), Error> {
    if !path.starts_with(root) || path == root {
        return Err(err(path, format!("outside {}", root.display())));
    }
    match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => Err(err(path, "a lower fixture has a directory here, and this one a file or link")),
        Ok(_) => fs::remove_file(path).map_err(io(path)),
        Err(_) => Ok(()),
    }
}

/// A digest of everything under `fixtures` (names, types, contents, link targets, the
/// executable bit): the build script names its output after it, so that an unchanged checkout
/// reuses what it built.
pub fn digest(fixtures: &Path) -> Result<u64, Error> {
    let mut h = DefaultHasher::new();
    digest_dir(fixtures, Path::new(""), &mut h)?;
    Ok(h.finish())
}

fn digest_dir(root: &Path, rel: &Path, h: &mut DefaultHasher) -> Result<(), Error> {
    for (name, kind) in sorted_entries(&root.join(rel))? {
        let rel = rel.join(name);
        let path = root.join(&rel);
        h.write(rel.as_os_str().as_encoded_bytes());
        if kind.is_dir() {
            h.write_u8(b'd');
            digest_dir(root, &rel, h)?;
        } else if kind.is_symlink() {
            h.write_u8(b'l');
            h.write(fs::read_link(&path).map_err(io(&path))?.as_os_str().as_encoded_bytes());
        } else {
            let exec = fs::metadata(&path).map_err(io(&path))?.permissions().mode() & 0o111 != 0;
            h.write_u8(if exec { b'x' } else { b'f' });
            let bytes = fs::read(&path).map_err(io(&path))?;
            h.write_usize(bytes.len());
            h.write(&bytes);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fixtures directory with the given files (`path`, content) and links (`path`, target).
    fn tree(files: &[(&str, &str)], links: &[(&str, &str)]) -> tempfile::TempDir {
        let t = tempfile::tempdir().unwrap();
        for (p, text) in files {
            let p = t.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            fs::write(p, text).unwrap();
        }
        for (p, target) in links {
            let p = t.path().join(p);
            fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::os::unix::fs::symlink(target, p).unwrap();
        }
        t
    }

    fn built(fixtures: &Path, name: &str) -> Result<(tempfile::TempDir, PathBuf), Error> {
        let out = tempfile::tempdir().unwrap();
        let dest = out.path().join("root");
        build(fixtures, name, &dest).map(|()| (out, dest))
    }

    #[test]
    fn later_layers_and_own_files_win_and_empty_files_are_made() {
        let f = tree(
            &[
                ("layers/base/fixture.toml", "empty = [\"dev/dri/renderD128\"]\n"),
                ("layers/base/etc/group", "render:x:108:\n"),
                ("layers/base/etc/hostname", "deb12\n"),
                ("layers/users/fixture.toml", ""),
                ("layers/users/etc/passwd", "palav:x:1000:1000::/home/palav:/bin/bash\n"),
                ("host/fixture.toml", "from = [\"layers/base\", \"layers/users\"]\nempty = [\"run/.keep\"]\n"),
                ("host/etc/group", "render:x:110:\n"),
                ("other/fixture.toml", "from = [\"host\"]\n"),
                ("other/etc/hostname", "other\n"),
            ],
            &[("layers/base/sys/class/drm/renderD128", "../../devices/x")],
        );
        let (_out, root) = built(f.path(), "other").unwrap();
        let read = |p: &str| fs::read_to_string(root.join(p)).unwrap();
        assert_eq!(read("etc/group"), "render:x:110:\n");
        assert_eq!(read("etc/hostname"), "other\n");
        assert_eq!(read("etc/passwd"), "palav:x:1000:1000::/home/palav:/bin/bash\n");
        assert_eq!(read("dev/dri/renderD128"), "");
        assert_eq!(read("run/.keep"), "");
        assert_eq!(fs::read_link(root.join("sys/class/drm/renderD128")).unwrap(), Path::new("../../devices/x"));
        assert!(!root.join("fixture.toml").exists());
        assert_eq!(sysroot_names(f.path()).unwrap(), ["host", "other"]);
    }

    #[test]
    fn conflicts_loops_and_bad_descriptions_are_errors_naming_the_file() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[("a/fixture.toml", "from = [\"b\"]\n"), ("b/fixture.toml", "from = [\"a\"]\n")], "loops: a -> b -> a"),
            (&[("a/fixture.toml", "form = []\n")], "unknown field `form`"),
            (&[("a/fixture.toml", "from = [\"nope\"]\n")], "is `nope` a fixture?"),
            (&[("a/fixture.toml", "from = [\"../x\"]\n")], "must be a path under the fixtures directory"),
            (&[("a/fixture.toml", "empty = [\"/etc/x\"]\n")], "must be a relative path inside the sysroot"),
            (&[("a/fixture.toml", "empty = [\"etc/x\"]\n"), ("a/etc/x", "1")], "is also a file of a"),
            (
                &[("b/fixture.toml", ""), ("b/etc", "a file"), ("a/fixture.toml", "from = [\"b\"]\n"), ("a/etc/x", "")],
                "a lower fixture has a file or link here",
            ),
            (
                &[("b/fixture.toml", ""), ("b/etc/x", ""), ("a/fixture.toml", "from = [\"b\"]\nempty = [\"etc\"]\n")],
                "a lower fixture has a directory here",
            ),
        ];
        for (files, want) in cases {
            let f = tree(files, &[]);
            let e = built(f.path(), "a").unwrap_err().to_string();
            assert!(e.contains(want), "{e}\n(expected {want:?})");
            assert!(e.contains(&f.path().display().to_string()), "{e}");
        }
    }

    #[test]
    fn a_lower_link_is_never_followed_by_a_write() {
        // A layer's link to a directory outside the sysroot, then a file below the same path:
        // following it would write outside the new directory.
        let outside = tempfile::tempdir().unwrap();
        let f = tree(
            &[("b/fixture.toml", ""), ("a/fixture.toml", "from = [\"b\"]\n"), ("a/var/run/x", "")],
            &[("b/var/run", outside.path().to_str().unwrap())],
        );
        let e = built(f.path(), "a").unwrap_err().to_string();
        assert!(e.contains("a lower fixture has a file or link here"), "{e}");
        assert_eq!(fs::read_dir(outside.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_digest_follows_contents_names_and_links() {
        let a = tree(&[("x/fixture.toml", ""), ("x/etc/group", "render:x:110:\n")], &[("x/l", "t")]);
        let d = digest(a.path()).unwrap();
        assert_eq!(d, digest(a.path()).unwrap());
        fs::write(a.path().join("x/etc/group"), "render:x:303:\n").unwrap();
        let d2 = digest(a.path()).unwrap();
        assert_ne!(d, d2);
        fs::remove_file(a.path().join("x/l")).unwrap();
        std::os::unix::fs::symlink("u", a.path().join("x/l")).unwrap();
        assert_ne!(d2, digest(a.path()).unwrap());
    }
}
