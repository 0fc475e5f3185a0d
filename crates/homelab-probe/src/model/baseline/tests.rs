use super::*;
use proptest::prelude::*;

struct Names;
impl IdNames for Names {
    fn user(&mut self, uid: u32) -> Option<String> {
        (uid < 2000).then(|| format!("user{uid}"))
    }
    fn group(&mut self, gid: u32) -> Option<String> {
        (gid < 2000).then(|| format!("group{gid}"))
    }
}

/// A decoded baseline: per root, its stat and its blocks (path, entries).
type Blocks = Vec<(Vec<Vec<u8>>, Vec<(Vec<u8>, EntryStat)>)>;

fn st(kind: FileKind, uid: u32, gid: u32, mode: u32) -> EntryStat {
    EntryStat { kind, uid, gid, mode: if kind == FileKind::Symlink { 0o777 } else { mode } }
}

fn header(roots: usize) -> Header {
    Header::new(
        "homelab-verify test".into(),
        Some("oldhost".into()),
        "2026-01-01T00:00:00Z".into(),
        (0..roots).map(|i| format!("/mnt/r{i}")).collect(),
    )
}

fn encode(roots: &[(EntryStat, Blocks)]) -> Vec<u8> {
    let mut e = Encoder::new(Vec::new(), &header(roots.len())).unwrap();
    for (i, (stat, blocks)) in roots.iter().enumerate() {
        e.root(i, *stat, &mut Names).unwrap();
        for (path, entries) in blocks {
            let p: Vec<&[u8]> = path.iter().map(Vec::as_slice).collect();
            e.dir(&p, entries.iter().map(|(n, s)| (n.as_slice(), *s)), &mut Names).unwrap();
        }
        e.end_root().unwrap();
    }
    e.finish().unwrap().0
}

fn decode(bytes: &[u8]) -> Result<(Header, Vec<(EntryStat, Blocks)>), FormatError> {
    let mut p = Parser::new(bytes)?;
    let mut out: Vec<(EntryStat, Blocks)> = Vec::new();
    while let Some(r) = p.next_record()? {
        match r {
            Record::Root { stat, .. } => out.push((stat, Vec::new())),
            Record::Dir { path, block } => {
                let entries = block.iter().map(|(n, s)| (n.to_vec(), s)).collect();
                out.last_mut().unwrap().1.push((path.to_vec(), entries));
            }
            Record::Unreadable { .. } | Record::EndRoot { .. } | Record::End(_) => {}
        }
    }
    Ok((p.header().clone(), out))
}

fn sample() -> Vec<(EntryStat, Blocks)> {
    let f = |u, g, m| st(FileKind::File, u, g, m);
    vec![(
        st(FileKind::Dir, 1000, 110, 0o2775),
        vec![
            (
                vec![],
                vec![
                    (b"appdata".to_vec(), st(FileKind::Dir, 1000, 1000, 0o755)),
                    (b"caf\xe9.mkv".to_vec(), f(1000, 110, 0o644)),
                    (b"link".to_vec(), st(FileKind::Symlink, 0, 0, 0)),
                    (b"new\nline".to_vec(), f(999, 999, 0o4755)),
                ],
            ),
            (vec![b"appdata".to_vec()], vec![(b"postgres".to_vec(), st(FileKind::Dir, 999, 999, 0o700))]),
            (vec![b"appdata".to_vec(), b"postgres".to_vec()], vec![]),
        ],
    )]
}

#[test]
fn round_trip_keeps_names_owners_modes_and_id_names() {
    let roots = sample();
    let bytes = encode(&roots);
    let (h, got) = decode(&bytes).unwrap();
    assert_eq!(h, header(1));
    assert_eq!(got, roots);
    let mut p = Parser::new(&bytes[..]).unwrap();
    while p.next_record().unwrap().is_some() {}
    assert_eq!(p.user_name(999), Some("user999"));
    assert_eq!(p.group_name(110), Some("group110"));
    assert_eq!(validate(&bytes).unwrap().1, Totals { entries: 6, directories: 3, unreadable: 0 });
}

#[test]
fn every_truncation_is_an_error_never_a_shorter_baseline() {
    let bytes = encode(&sample());
    for n in 0..bytes.len() {
        let err = validate(&bytes[..n]).expect_err(&format!("a baseline cut at {n} bytes was accepted"));
        let off = err.offset().unwrap();
        assert!(off <= n as u64, "cut at {n}: error names offset {off}: {err}");
    }
}

#[test]
fn bad_input_names_the_offset() {
    let bytes = encode(&sample());
    // Another version.
    let mut v2 = bytes.clone();
    v2[MAGIC.len()] = 2;
    assert!(matches!(validate(&v2), Err(FormatError::Version { found: 2 })));
    // Not a baseline at all.
    let err = validate(b"hello world, this is not it").unwrap_err();
    assert_eq!(err.offset(), Some(0), "{err}");
    // An unknown tag right after the header.
    let (mut p, hdr_end) = {
        let p = Parser::new(&bytes[..]).unwrap();
        let off = p.offset() as usize;
        (bytes.clone(), off)
    };
    p[hdr_end] = 0x7f;
    let err = validate(&p).unwrap_err();
    assert_eq!(err.offset(), Some(hdr_end as u64), "{err}");
    assert!(err.to_string().contains("unknown record tag 0x7f"), "{err}");
    // Trailing data.
    let mut t = bytes.clone();
    t.push(b'x');
    let err = validate(&t).unwrap_err();
    assert_eq!(err.offset(), Some(bytes.len() as u64), "{err}");
}

#[test]
fn the_encoder_refuses_out_of_order_input() {
    let mut e = Encoder::new(Vec::new(), &header(1)).unwrap();
    e.root(0, st(FileKind::Dir, 0, 0, 0o755), &mut Names).unwrap();
    assert!(e.dir(&[b"a"], std::iter::empty(), &mut Names).is_err(), "first block must be the root's");
    e.dir(&[], std::iter::empty(), &mut Names).unwrap();
    e.dir(&[b"b"], std::iter::empty(), &mut Names).unwrap();
    assert!(e.dir(&[b"a"], std::iter::empty(), &mut Names).is_err());
    let f = st(FileKind::File, 0, 0, 0o644);
    assert!(e.dir(&[b"c"], [(&b"y"[..], f), (&b"x"[..], f)].into_iter(), &mut Names).is_err());
}

#[test]
fn walk_order_is_depth_first_with_sorted_names() {
    use std::cmp::Ordering::*;
    let p = |s: &str| s.split('/').filter(|c| !c.is_empty()).map(|c| c.as_bytes().to_vec()).collect::<Vec<_>>();
    assert_eq!(walk_order(&p("a/b"), &p("a-c")), Less, "a's subtree comes before a-c");
    assert_eq!(walk_order(&p("a"), &p("a/b")), Less);
    assert_eq!(walk_order(&p(""), &p("a")), Less);
    assert_eq!(walk_order(&p("b"), &p("a/z/z")), Greater);
}

#[test]
fn defaults_are_the_most_common_values() {
    let e = [
        st(FileKind::File, 1, 1, 0o600),
        st(FileKind::File, 2, 2, 0o644),
        st(FileKind::File, 2, 2, 0o644),
        st(FileKind::Dir, 2, 2, 0o700),
    ];
    let d = Defaults::of(e.iter());
    assert_eq!(d, Defaults { uid: 2, gid: 2, file_mode: 0o644, dir_mode: 0o700 });
    // Ties go to the smallest value, so the encoding does not depend on anything but the tree.
    let d = Defaults::of(e[..2].iter());
    assert_eq!((d.uid, d.gid, d.file_mode), (1, 1, 0o600));
    // More distinct owners than the short list holds.
    let many: Vec<EntryStat> = (0..100).map(|i| st(FileKind::File, i % 40, 0, 0o644)).collect();
    assert_eq!(Defaults::of(many.iter()).uid, 0);
}

fn arb_name() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[a-c]{1,3}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>().prop_filter("no / or NUL", |b| *b != b'/' && *b != 0), 1..6),
    ]
    .prop_filter("not . or ..", |n| n != b"." && n != b"..")
}

fn arb_stat() -> impl Strategy<Value = EntryStat> {
    let kinds = prop_oneof![
        4 => Just(FileKind::File),
        2 => Just(FileKind::Dir),
        1 => Just(FileKind::Symlink),
        1 => Just(FileKind::Fifo),
        1 => Just(FileKind::Socket),
        1 => Just(FileKind::Char),
        1 => Just(FileKind::Block),
    ];
    (
        kinds,
        prop_oneof![Just(0u32), Just(1000), Just(999), any::<u32>()],
        prop_oneof![Just(110u32), any::<u32>()],
        0u32..=0o7777,
    )
        .prop_map(|(k, u, g, m)| st(k, u, g, m))
}

fn arb_block() -> impl Strategy<Value = Vec<(Vec<u8>, EntryStat)>> {
    proptest::collection::btree_map(arb_name(), arb_stat(), 0..12).prop_map(|m| m.into_iter().collect())
}

/// Random roots, each with blocks in walk order (random paths, sorted).
fn arb_roots() -> impl Strategy<Value = Vec<(EntryStat, Blocks)>> {
    let root = (
        arb_stat().prop_map(|s| EntryStat { kind: FileKind::Dir, ..s }),
        proptest::collection::btree_set(proptest::collection::vec(arb_name(), 1..4), 0..6),
        proptest::collection::vec(arb_block(), 7),
    )
        .prop_map(|(stat, paths, blocks)| {
            let mut paths: Vec<Vec<Vec<u8>>> = paths.into_iter().collect();
            paths.sort_by(|a, b| walk_order(a, b));
            let mut all = vec![Vec::new()];
            all.extend(paths);
            let blocks: Blocks = all.into_iter().zip(blocks.into_iter().cycle()).collect();
            (stat, blocks)
        });
    proptest::collection::vec(root, 1..3)
}

proptest! {
    #[test]
    fn random_baselines_round_trip(roots in arb_roots()) {
        let bytes = encode(&roots);
        let (_, got) = decode(&bytes).unwrap();
        prop_assert_eq!(got, roots);
    }

    /// Any bytes: an error or a whole baseline, never a panic.
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200), cut in 0usize..400) {
        let mut b = MAGIC.to_vec();
        b.push(1);
        b.extend_from_slice(&bytes);
        let _ = validate(&b);
        let good = encode(&sample());
        let mut flipped = good.clone();
        let i = cut % flipped.len();
        flipped[i] ^= 0x55;
        let _ = validate(&flipped);
    }
}
