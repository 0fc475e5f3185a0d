//! Deterministic directory trees for the drift scanner: the same arguments always give the
//! same names, the same owners and the same drifted entries, so a benchmark can be re-run
//! on a fresh machine and a test can compare against `find` on a known tree.
//!
//! Every entry gets the base owner, except the drifted ones: whether an entry drifts, and to
//! which owner, is a hash of its path below the root and the seed (order-independent, so the
//! generator can run on several threads). Needs root (it `chown`s and `mknod`s).

use std::ffi::{CStr, CString, OsStr};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fd::{AsFd, OwnedFd};
use rustix::fs::{AtFlags, CWD, FileType, Gid, Mode, OFlags, Uid};

/// Owners and drift.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    /// The expected (base) owner: uid, gid.
    pub owner: (u32, u32),
    /// Drifted entries per million (1500 = 0.15 %).
    pub drift_ppm: u32,
    /// Seed of the drift choice.
    pub seed: u64,
    /// Every directory's entries get their own base owner (a hash of the directory's path:
    /// uid = gid = 2000 + 0..1000) instead of `owner`: the mixed trees of a baseline
    /// (`appdata/`, `/var/lib`). Drifted entries still take a [`DRIFT_OWNERS`] owner.
    pub per_dir_owners: bool,
}

impl Default for Spec {
    fn default() -> Self {
        Spec { owner: (1000, 110), drift_ppm: 1500, seed: 1, per_dir_owners: false }
    }
}

/// Owners a drifted entry gets (one is chosen per entry; never the base owner).
pub const DRIFT_OWNERS: [(u32, u32); 5] = [(0, 0), (1000, 1000), (0, 110), (1000, 100), (65534, 65534)];

/// What a generator made.
#[derive(Debug, Default)]
pub struct Made {
    /// Entries created, the root included (what `find ROOT | wc -l` counts).
    pub entries: AtomicU64,
    /// Entries given a drift owner.
    pub offending: AtomicU64,
}

impl Made {
    /// (entries, offending).
    pub fn counts(&self) -> (u64, u64) {
        (self.entries.load(Ordering::Relaxed), self.offending.load(Ordering::Relaxed))
    }
}

fn splitmix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3))
}

impl Spec {
    /// The owner of the entry at `rel` (path below the root; empty for the root).
    pub fn owner_of(&self, rel: &[u8]) -> (u32, u32) {
        let h = splitmix(fnv(rel) ^ self.seed);
        let base = self.base_owner(rel);
        if h % 1_000_000 < u64::from(self.drift_ppm) {
            let candidates: Vec<_> = DRIFT_OWNERS.iter().filter(|o| **o != base).collect();
            *candidates[((h >> 32) as usize) % candidates.len()]
        } else {
            base
        }
    }

    /// The owner of `rel` when it is not drifted: `owner`, or with `per_dir_owners` the
    /// owner of its directory's entries.
    pub fn base_owner(&self, rel: &[u8]) -> (u32, u32) {
        if !self.per_dir_owners {
            return self.owner;
        }
        let parent = rel.iter().rposition(|&b| b == b'/').map_or(&rel[..0], |i| &rel[..i]);
        let id = 2000 + (splitmix(fnv(parent) ^ self.seed.rotate_left(17)) % 1000) as u32;
        (id, id)
    }
}

/// Creates entries below one root and gives each its owner.
pub struct Gen<'a> {
    spec: Spec,
    made: &'a Made,
}

fn cstr(b: &[u8]) -> io::Result<CString> {
    CString::new(b).map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in a name"))
}

impl<'a> Gen<'a> {
    /// A generator with `spec`, counting into `made`.
    pub fn new(spec: Spec, made: &'a Made) -> Self {
        Gen { spec, made }
    }

    fn own(&self, dir: impl AsFd, name: &CStr, rel: &[u8]) -> io::Result<()> {
        let (u, g) = self.spec.owner_of(rel);
        rustix::fs::chownat(dir, name, Some(Uid::from_raw(u)), Some(Gid::from_raw(g)), AtFlags::SYMLINK_NOFOLLOW)?;
        self.made.entries.fetch_add(1, Ordering::Relaxed);
        if (u, g) != self.spec.base_owner(rel) {
            self.made.offending.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Creates (or reuses) the root directory `root` and owns it; returns it open.
    pub fn root(&self, root: &Path) -> io::Result<OwnedFd> {
        std::fs::create_dir_all(root)?;
        let fd = open_dir(CWD, &cstr(root.as_os_str().as_bytes())?)?;
        self.own(&fd, c".", b"")?;
        Ok(fd)
    }

    /// Makes directory `name` in `dir` (`rel` is its path below the root) and opens it.
    pub fn dir(&self, dir: impl AsFd, name: &[u8], rel: &[u8]) -> io::Result<OwnedFd> {
        let c = cstr(name)?;
        match rustix::fs::mkdirat(dir.as_fd(), &c, Mode::from_raw_mode(0o755)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        self.own(dir.as_fd(), &c, rel)?;
        open_dir(dir, &c)
    }

    /// Makes an empty regular file.
    pub fn file(&self, dir: impl AsFd, name: &[u8], rel: &[u8]) -> io::Result<()> {
        let c = cstr(name)?;
        let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        drop(rustix::fs::openat(dir.as_fd(), &c, flags, Mode::from_raw_mode(0o644))?);
        self.own(dir, &c, rel)
    }

    /// Makes a symbolic link `name` -> `target` (never followed: its own owner is set).
    pub fn symlink(&self, dir: impl AsFd, name: &[u8], target: &[u8], rel: &[u8]) -> io::Result<()> {
        let c = cstr(name)?;
        match rustix::fs::symlinkat(&*cstr(target)?, dir.as_fd(), &c) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        self.own(dir, &c, rel)
    }

    /// Makes a special file (FIFO or character device).
    pub fn node(&self, dir: impl AsFd, name: &[u8], kind: FileType, dev: u64, rel: &[u8]) -> io::Result<()> {
        let c = cstr(name)?;
        match rustix::fs::mknodat(dir.as_fd(), &c, kind, Mode::from_raw_mode(0o644), dev) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
        self.own(dir, &c, rel)
    }
}

fn open_dir(dir: impl AsFd, name: &CStr) -> io::Result<OwnedFd> {
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    Ok(rustix::fs::openat(dir, name, flags, Mode::empty())?)
}

fn join(a: &[u8], b: &[u8]) -> Vec<u8> {
    let mut v = a.to_vec();
    if !v.is_empty() {
        v.push(b'/');
    }
    v.extend_from_slice(b);
    v
}

/// A media library: `shows` x `seasons` x `episodes` empty files,
/// `show0001/Season 01/S01E001 - Episode.mkv`. 1000 x 10 x 100 is 1,011,001 entries.
/// Runs on `threads` threads.
pub fn media(root: &Path, shows: u32, seasons: u32, episodes: u32, spec: Spec, threads: usize) -> io::Result<Made> {
    let made = Made::default();
    let g = Gen::new(spec, &made);
    let rootfd = g.root(root)?;
    let threads = threads.max(1) as u32;
    std::thread::scope(|s| -> io::Result<()> {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (g, rootfd) = (&g, &rootfd);
                s.spawn(move || -> io::Result<()> {
                    let mut name = Vec::with_capacity(64);
                    for show in (0..shows).filter(|s| s % threads == t) {
                        let sname = format!("show{:04}", show + 1);
                        let sfd = g.dir(rootfd, sname.as_bytes(), sname.as_bytes())?;
                        for season in 1..=seasons {
                            let dname = format!("Season {season:02}");
                            let drel = join(sname.as_bytes(), dname.as_bytes());
                            let dfd = g.dir(&sfd, dname.as_bytes(), &drel)?;
                            for ep in 1..=episodes {
                                name.clear();
                                name.extend_from_slice(format!("S{season:02}E{ep:03} - Episode.mkv").as_bytes());
                                g.file(&dfd, &name, &join(&drel, &name))?;
                            }
                        }
                    }
                    Ok(())
                })
            })
            .collect();
        for h in handles {
            h.join().map_err(|_| io::Error::other("generator thread panicked"))??;
        }
        Ok(())
    })?;
    Ok(made)
}

/// `dirs` directories `flatNN` each holding `entries` empty files.
pub fn flat(root: &Path, dirs: u32, entries: u32, spec: Spec) -> io::Result<Made> {
    let made = Made::default();
    let g = Gen::new(spec, &made);
    let rootfd = g.root(root)?;
    for d in 0..dirs {
        let dname = format!("flat{d:02}");
        let dfd = g.dir(&rootfd, dname.as_bytes(), dname.as_bytes())?;
        for i in 0..entries {
            let n = format!("file{i:07}.jpg");
            g.file(&dfd, n.as_bytes(), &join(dname.as_bytes(), n.as_bytes()))?;
        }
    }
    Ok(made)
}

/// A narrow chain `d/d/d/...` `depth` levels deep with `files` files and one side
/// directory (with one file) at each level: deep enough to need more descriptors than a
/// walker may keep open at once when `depth` is in the thousands.
pub fn deep(root: &Path, depth: u32, files: u32, spec: Spec) -> io::Result<Made> {
    let made = Made::default();
    let g = Gen::new(spec, &made);
    let mut cur = g.root(root)?;
    let mut rel: Vec<u8> = Vec::new();
    for level in 0..depth {
        for f in 0..files {
            let n = format!("f{f}");
            g.file(&cur, n.as_bytes(), &join(&rel, n.as_bytes()))?;
        }
        let side = join(&rel, b"side");
        let sfd = g.dir(&cur, b"side", &side)?;
        g.file(&sfd, format!("s{level}").as_bytes(), &join(&side, format!("s{level}").as_bytes()))?;
        rel = join(&rel, b"d");
        cur = g.dir(&cur, b"d", &rel)?;
    }
    Ok(made)
}

/// Names and file types a walker must survive: names that are not UTF-8, hold newlines,
/// backslashes, glob characters or 255 bytes; symbolic link loops, links to `/`, to `..`,
/// dangling links; FIFOs, a character device, a socket-like FIFO, hard links; empty
/// directories; a 120-level chain; a directory of `wide` entries (more than the scanner's
/// split threshold); a directory only root can read (`locked`, mode 0700, owner 0:0).
pub fn edge(root: &Path, wide: u32, spec: Spec) -> io::Result<Made> {
    let made = Made::default();
    let g = Gen::new(spec, &made);
    let r = g.root(root)?;

    let names = g.dir(&r, b"names", b"names")?;
    let odd: [&[u8]; 12] = [
        b"caf\xe9.mkv",
        b"\xff\xfe",
        b"new\nline.mkv",
        b"tab\there",
        b" leading space",
        b"-dash",
        b"back\\slash",
        b"*glob?[x]",
        "émoji 🎬.mkv".as_bytes(),
        b"trailing space ",
        b"ctrl\x01\x7f",
        b"percent%41",
    ];
    for n in odd {
        g.file(&names, n, &join(b"names", n))?;
    }
    let long = vec![b'L'; 255];
    g.file(&names, &long, &join(b"names", &long))?;
    let latin_dir = g.dir(&names, b"d\xe9j\xe0 vu", b"names/d\xe9j\xe0 vu")?;
    g.file(&latin_dir, b"inside", b"names/d\xe9j\xe0 vu/inside")?;

    let links = g.dir(&r, b"links", b"links")?;
    for (n, t) in [
        (&b"loop1"[..], &b"loop2"[..]),
        (b"loop2", b"loop1"),
        (b"self", b"."),
        (b"up", b".."),
        (b"root", b"/"),
        (b"gone", b"/nonexistent/target"),
        (b"todir", b"../names"),
    ] {
        g.symlink(&links, n, t, &join(b"links", n))?;
    }

    let special = g.dir(&r, b"special", b"special")?;
    g.node(&special, b"fifo", FileType::Fifo, 0, b"special/fifo")?;
    g.node(&special, b"null", FileType::CharacterDevice, rustix::fs::makedev(1, 3), b"special/null")?;
    g.file(&special, b"hard1", b"special/hard1")?;
    match rustix::fs::linkat(&special, c"hard1", &special, c"hard2", AtFlags::empty()) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e.into()),
    }
    made.entries.fetch_add(1, Ordering::Relaxed);
    // hard2 shares hard1's inode, and so its owner.
    if spec.owner_of(b"special/hard1") != spec.owner {
        made.offending.fetch_add(1, Ordering::Relaxed);
    }

    let empty = g.dir(&r, b"empty", b"empty")?;
    drop(empty);
    let mut cur = g.dir(&r, b"chain", b"chain")?;
    let mut rel = b"chain".to_vec();
    for level in 0..120 {
        rel = join(&rel, b"c");
        cur = g.dir(&cur, b"c", &rel)?;
        let n = format!("at{level}");
        g.file(&cur, n.as_bytes(), &join(&rel, n.as_bytes()))?;
    }

    let w = g.dir(&r, b"wide", b"wide")?;
    for i in 0..wide {
        let n = format!("w{i:06}");
        if i % 500 == 0 {
            let sub = g.dir(&w, n.as_bytes(), &join(b"wide", n.as_bytes()))?;
            g.file(&sub, b"x", &join(&join(b"wide", n.as_bytes()), b"x"))?;
        } else {
            g.file(&w, n.as_bytes(), &join(b"wide", n.as_bytes()))?;
        }
    }

    // A directory only root can enter: a scan as another user gets EACCES here.
    let locked = g.dir(&r, b"locked", b"locked")?;
    g.file(&locked, b"secret", b"locked/secret")?;
    drop(locked);
    rustix::fs::chmodat(&r, c"locked", Mode::from_raw_mode(0o700), AtFlags::empty())?;
    rustix::fs::chownat(&r, c"locked", Some(Uid::from_raw(0)), Some(Gid::from_raw(0)), AtFlags::SYMLINK_NOFOLLOW)?;
    if spec.owner_of(b"locked") == spec.owner {
        made.offending.fetch_add(1, Ordering::Relaxed);
    }
    Ok(made)
}

/// The path of `rel` below `root`, as an `OsStr` path (for tests).
pub fn path_of(root: &Path, rel: &[u8]) -> std::path::PathBuf {
    root.join(OsStr::from_bytes(rel))
}
