//! util-linux is the oracle for the mount tables: our fstab(5) and mountinfo parsers read the
//! same files as `findmnt --tab-file FILE -J` in the same test, field by field; on this
//! machine, our read of `/proc/self/mountinfo` is compared with `findmnt -k`, and our block
//! device identity with `lsblk`. procfs-core is a second reader of the mountinfo fixture.
//!
//! The tools are required (scripts/setup-debian --test installs util-linux): a missing tool
//! fails the test instead of skipping it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use homelab_probe::Host;
use homelab_probe::host::blockdev::BlockDevices;
use homelab_probe::sources::mountinfo::{self, MountInfo};
use homelab_probe::sources::{fstab, mangle};
use serde_json::Value;

fn table(name: &str) -> PathBuf {
    homelab_test_support::fixture(&format!("tables/{name}"))
}

/// Runs a util-linux tool; returns its JSON (invalid UTF-8 replaced, as our parsers do) and
/// the line numbers it reported as parse errors on stderr.
fn util_linux(tool: &str, args: &[&str]) -> (Value, BTreeSet<usize>) {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {tool} ({e}): install util-linux (scripts/setup-debian --test does)"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() || !out.stdout.is_empty(), "{tool} {args:?} failed: {stderr}");
    let rejected = stderr
        .lines()
        .filter_map(|l| l.split("parse error at line ").nth(1)?.split_whitespace().next()?.parse().ok())
        .collect();
    let json = serde_json::from_str(&String::from_utf8_lossy(&out.stdout))
        .unwrap_or_else(|e| panic!("{tool} printed no JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    (json, rejected)
}

fn s(v: &Value) -> Option<String> {
    v.as_str().map(str::to_owned)
}

/// Lines of an fstab that are neither blank nor comments, as libmount counts them.
fn content_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_matches(|c: char| c == ' ' || c == '\t' || c == '\r');
            !t.is_empty() && !t.starts_with('#')
        })
        .map(|(i, _)| i + 1)
        .collect()
}

#[test]
fn fstab_fixture_agrees_with_findmnt() {
    let file = table("tricky.fstab");
    let text = std::fs::read_to_string(&file).unwrap();
    let ours = fstab::parse(&text, Path::new("tricky.fstab"));
    let (json, rejected) = util_linux(
        "findmnt",
        &["--tab-file", file.to_str().unwrap(), "-J", "-o", "SOURCE,TARGET,FSTYPE,OPTIONS,FREQ,PASSNO"],
    );
    let theirs = json["filesystems"].as_array().expect("filesystems");
    let our_errors: BTreeMap<usize, &str> = ours.errors.iter().map(|e| (e.line, e.message.as_str())).collect();
    println!("findmnt rejected lines {rejected:?}; we rejected {:?}", our_errors.keys().collect::<Vec<_>>());

    // Whatever libmount rejects, we reject too.
    for l in &rejected {
        assert!(our_errors.contains_key(l), "findmnt rejects line {l}, we accept it: {:?}", text.lines().nth(l - 1));
    }
    // We are stricter only where documented (fs_freq/fs_passno must be numbers below 2^32).
    let stricter: Vec<usize> = our_errors.keys().filter(|l| !rejected.contains(l)).copied().collect();
    for l in &stricter {
        let line = text.lines().nth(l - 1).unwrap();
        assert!(line.contains("STRICTER"), "we reject line {l} that findmnt accepts: {line:?}: {}", our_errors[l]);
    }
    assert_eq!(stricter.len(), 2, "the fixture's two STRICTER lines");

    // findmnt lists the accepted content lines in order: pair them with ours by line number.
    let accepted: Vec<usize> = content_lines(&text).into_iter().filter(|l| !rejected.contains(l)).collect();
    assert_eq!(accepted.len(), theirs.len(), "line accounting: {accepted:?}");
    let by_line: BTreeMap<usize, &fstab::FstabEntry> = ours.entries.iter().map(|(l, e)| (*l, e)).collect();
    let mut compared = 0;
    for (line, fm) in accepted.iter().zip(theirs) {
        if stricter.contains(line) {
            println!("line {line}: skipped (we are stricter: {})", our_errors[line]);
            continue;
        }
        let e = by_line.get(line).unwrap_or_else(|| panic!("line {line} missing from our parse"));
        assert_eq!(s(&fm["source"]).as_deref(), Some(e.spec.as_str()), "source, line {line}");
        assert_eq!(s(&fm["target"]).as_deref(), Some(e.target.as_str()), "target, line {line}");
        assert_eq!(s(&fm["fstype"]).as_deref(), Some(e.fstype.as_str()), "fstype, line {line}");
        let options = (!e.options.is_empty()).then(|| e.options.join(","));
        assert_eq!(s(&fm["options"]), options, "options, line {line}");
        assert_eq!(fm["freq"].as_u64(), Some(u64::from(e.freq.unwrap_or(0))), "freq, line {line}");
        assert_eq!(fm["passno"].as_u64(), Some(u64::from(e.passno.unwrap_or(0))), "passno, line {line}");
        compared += 1;
    }
    println!("compared {compared} lines field by field");
    assert!(compared >= 30, "only {compared} lines compared");
}

const MOUNTINFO_COLUMNS: &str = "ID,PARENT,MAJ:MIN,FSROOT,SOURCE,TARGET,FSTYPE,VFS-OPTIONS,FS-OPTIONS,OPT-FIELDS";

/// Compares our parse of a mountinfo text with findmnt's JSON for it, by mount id; returns how
/// many mounts were compared.
fn compare_mountinfo(ours: &[MountInfo], json: &Value) -> usize {
    let theirs = json["filesystems"].as_array().expect("filesystems");
    let by_id: BTreeMap<u64, &MountInfo> = ours.iter().map(|m| (u64::from(m.mount_id), m)).collect();
    assert_eq!(by_id.len(), theirs.len(), "same mounts: ours {:?}", by_id.keys().collect::<Vec<_>>());
    for fm in theirs {
        let id = fm["id"].as_u64().expect("id");
        let m = by_id.get(&id).unwrap_or_else(|| panic!("findmnt has mount {id}, we do not"));
        let ctx = format!("mount {id} ({})", m.mount_point);
        assert_eq!(fm["parent"].as_u64(), Some(u64::from(m.parent_id)), "parent, {ctx}");
        assert_eq!(s(&fm["maj:min"]), Some(m.dev()), "maj:min, {ctx}");
        let root = if m.root_deleted { format!("{}//deleted", m.root) } else { m.root.clone() };
        assert_eq!(s(&fm["fsroot"]), Some(root), "fsroot, {ctx}");
        assert_eq!(s(&fm["source"]), m.source, "source, {ctx}");
        assert_eq!(s(&fm["target"]).as_deref(), Some(m.mount_point.as_str()), "target, {ctx}");
        assert_eq!(s(&fm["fstype"]).as_deref(), Some(m.fstype.as_str()), "fstype, {ctx}");
        assert_eq!(s(&fm["vfs-options"]), Some(m.mount_options.join(",")), "vfs-options, {ctx}");
        assert_eq!(s(&fm["fs-options"]), Some(m.super_options.join(",")), "fs-options, {ctx}");
        let fields: Vec<String> = m.optional_fields.iter().map(ToString::to_string).collect();
        let fields = (!fields.is_empty()).then(|| fields.join(" "));
        assert_eq!(s(&fm["opt-fields"]), fields, "opt-fields, {ctx}");
    }
    theirs.len()
}

#[test]
fn mountinfo_fixture_agrees_with_findmnt_and_procfs() {
    let file = table("tricky.mountinfo");
    let text = std::fs::read_to_string(&file).unwrap();
    let ours = mountinfo::parse(&text, Path::new("tricky.mountinfo"));
    let (json, rejected) = util_linux(
        "findmnt",
        &["--tab-file", file.to_str().unwrap(), "-J", "--list", "--nofsroot", "-o", MOUNTINFO_COLUMNS],
    );
    let our_rejected: BTreeSet<usize> = ours.errors.iter().map(|e| e.line).collect();
    assert_eq!(our_rejected, rejected, "the same lines are rejected");
    let mounts: Vec<MountInfo> = ours.entries.iter().map(|(_, m)| m.clone()).collect();
    let compared = compare_mountinfo(&mounts, &json);
    assert!(compared >= 20, "only {compared} mounts compared");

    // procfs-core on the same lines: the fields it keeps must agree (it does not unescape,
    // and folds an empty source and "none" into None: see the mountinfo module docs).
    for (line, m) in &ours.entries {
        let raw = text.lines().nth(line - 1).unwrap();
        let p = procfs_core::process::MountInfo::from_line(raw)
            .unwrap_or_else(|e| panic!("procfs-core rejects line {line} that we accept: {e:?}"));
        assert_eq!((p.mnt_id, p.pid), (m.mount_id as i32, m.parent_id as i32), "line {line}");
        assert_eq!(p.majmin, m.dev(), "line {line}");
        assert_eq!(p.fs_type, m.fstype, "line {line}");
        assert_eq!(mangle::unmangle(&p.mount_point.to_string_lossy()), m.mount_point, "line {line}");
        let folded = m.source.clone().filter(|s| s != "none");
        assert_eq!(p.mount_source.map(|s| mangle::unmangle(&s)), folded, "line {line}");
        let set = |o: &[String]| o.iter().cloned().collect::<BTreeSet<_>>();
        let theirs = |h: &std::collections::HashMap<String, Option<String>>| {
            h.iter().map(|(k, v)| v.as_ref().map_or(k.clone(), |v| format!("{k}={v}"))).collect::<BTreeSet<_>>()
        };
        assert_eq!(theirs(&p.mount_options), set(&m.mount_options), "line {line}");
        assert_eq!(theirs(&p.super_options), set(&m.super_options), "line {line}");
    }
}

#[test]
fn this_machines_mount_table_agrees_with_findmnt() {
    // Both read /proc/self/mountinfo of the same mount namespace; retry if a mount changed
    // between the reads (other work on the machine may mount things).
    for attempt in 1..=3 {
        let before = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        let (json, rejected) = util_linux("findmnt", &["-J", "-k", "--list", "--nofsroot", "-o", MOUNTINFO_COLUMNS]);
        let after = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
        if before != after {
            println!("attempt {attempt}: the mount table changed while reading, again");
            continue;
        }
        assert!(rejected.is_empty(), "findmnt rejected lines of the kernel's table: {rejected:?}");
        let ours = mountinfo::parse(&before, Path::new("/proc/self/mountinfo"));
        assert!(ours.errors.is_empty(), "{:?}", ours.errors);
        let mounts: Vec<MountInfo> = ours.entries.into_iter().map(|(_, m)| m).collect();
        let n = compare_mountinfo(&mounts, &json);
        println!("compared {n} live mounts field by field");
        assert!(n > 0);
        return;
    }
    panic!("the mount table kept changing");
}

#[test]
fn this_machines_block_devices_agree_with_lsblk() {
    let (json, _) = util_linux("lsblk", &["-J", "-o", "NAME,UUID,LABEL,FSTYPE,PARTUUID,PARTLABEL"]);
    let mut theirs = Vec::new();
    fn flatten<'a>(v: &'a Value, out: &mut Vec<&'a Value>) {
        for d in v.as_array().into_iter().flatten() {
            out.push(d);
            flatten(&d["children"], out);
        }
    }
    flatten(&json["blockdevices"], &mut theirs);
    let ours = BlockDevices::load(&Host::live());
    // lsblk reads identity from the udev database; without one (no udev running, e.g. a
    // container) it probes the devices itself with libblkid, which we never do: then we must
    // report no identity at all rather than a wrong one.
    let udev_db = Path::new("/run/udev/data").is_dir();
    println!("udev database: {udev_db}; lsblk: {} devices; ours: {}", theirs.len(), ours.devices.len());
    assert!(!theirs.is_empty(), "lsblk lists no block device");
    let mut compared = 0;
    for d in &theirs {
        let name = d["name"].as_str().unwrap();
        let mine = ours.by_name(name).unwrap_or_else(|| panic!("lsblk lists {name}, we do not: {:#?}", ours.devices));
        if udev_db {
            assert_eq!(s(&d["uuid"]), mine.uuid, "uuid of {name}");
            assert_eq!(s(&d["label"]), mine.label, "label of {name}");
            assert_eq!(s(&d["partuuid"]), mine.partuuid, "partuuid of {name}");
            assert_eq!(s(&d["partlabel"]), mine.partlabel, "partlabel of {name}");
            if cfg!(feature = "udev") {
                assert_eq!(s(&d["fstype"]), mine.fstype, "fstype of {name}");
            }
        } else {
            assert_eq!(
                (&mine.uuid, &mine.label, &mine.fstype),
                (&None, &None, &None),
                "{name}: nothing to read it from"
            );
        }
        compared += 1;
    }
    // And every device we know an identity of is one lsblk lists.
    for d in ours.devices.iter().filter(|d| d.uuid.is_some() || d.label.is_some()) {
        assert!(
            theirs.iter().any(|t| t["name"] == d.name.as_str()),
            "{} has an identity but lsblk does not list it",
            d.name
        );
    }
    println!("compared {compared} devices with lsblk");
    assert!(compared > 0);
}
