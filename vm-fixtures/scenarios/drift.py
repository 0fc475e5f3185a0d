"""The drift scanner, fix and undo on a real ext4 disk in the guest: the disk's entries have
exact owners (set by debugfs when the image is made), mostly the expected 1000:110 and a known
set of others. `homelab-verify drift --format json` must count exactly what the declared entries
say and what `find -xdev \\( ! -uid 1000 -o ! -gid 110 \\)` finds in the same VM
(`--format paths0` against `find -print0`, path by path, a Latin-1 name included); `--fix` alone
changes nothing; `--fix --apply` leaves nothing for find or a re-scan; `drift undo` puts every
owner, mode (set-user-ID bits that chown cleared) and file capability back exactly as before
(a `find -printf '%U %G %m %y %p'` listing, before and after). `check` with a `[[drift]]` section
fails before the fix and passes after it."""

from harness import Break, Control, Disk, Entry, Scenario, expect

ROOT = "/run/vm-fixtures/drift"
UID, GID = 1000, 110

DRIFT = Disk(
    name="drift",
    uuid="d41f7a0c-6b2e-4c8d-9f3a-1e5b7c9d2a40",
    label="DriftData",
    entries=(
        Entry("Movies", UID, GID, 0o2775, kind="dir"),
        Entry("Movies/Heat (1995).mkv", UID, GID, 0o664, content="heat\n"),
        Entry("Movies/Alien (1979).mkv", 0, 0, 0o644, content="alien\n"),  # restored from a backup as root
        Entry("Movies/Alien (1979).srt", UID, 1000, 0o644, content="subs\n"),  # the user's own group
        Entry("TV", 100000, 100000, 0o755, kind="dir"),  # a directory from a user-namespaced container
        Entry("TV/Severance/S01E01.mkv", 100000, 100000, 0o600, content="e1\n"),
        Entry("TV/Severance/S01E02.mkv", UID, GID, 0o664, content="e2\n"),
        Entry("TV/latest", 0, 0, kind="symlink", content="Severance/S01E02.mkv"),  # the link itself counts
        Entry("Music", UID, GID, 0o2775, kind="dir"),
        Entry("Music/a.flac", UID, GID, 0o664, content="a\n"),
        Entry("Music/b.flac", 65534, 65534, 0o644, content="b\n"),  # nobody:nogroup (an NFS squash)
        Entry("Music/c.flac", 0, GID, 0o664, content="c\n"),  # only the uid is wrong
        Entry("bin/transcode-hook", 0, 0, 0o4755, content="#!/bin/sh\n"),  # set-user-ID: chown clears it
        Entry("bin/capture-hook", 0, 0, 0o755, content="#!/bin/sh\n"),  # gets a file capability in the guest
    ),
)

# Made in the guest by root: a Latin-1 name copied from an old NAS, not valid UTF-8. Movies is
# set-group-ID, so the kernel gives the new file the directory's group: 0:110.
LATIN1 = b"Movies/Am\xe9lie (2001).mkv"
# `find -printf` format of the full listings: owner, group, mode, type, path.
LISTING = "%U %G %m %y %p\\n"
FIND_DRIFT = rf"find {ROOT} -xdev \( ! -uid {UID} -o ! -gid {GID} \)"

GUEST = rf"""
D={ROOT}
mkdir -p $D
mount /dev/disk/by-uuid/{DRIFT.uuid} $D
trap 'cd /; umount {ROOT}' EXIT
touch "$D/$(printf 'Movies/Am\xe9lie (2001).mkv')"
# cap_net_raw+ep (VFS_CAP_REVISION_2): chown drops security.capability; undo must put it back.
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "security.capability", bytes.fromhex("0000000200200000000000000000000000000000"))' $D/bin/capture-hook
if [ "$BREAK" = extra_drift ]; then chown 0:0 $D/Music/a.flac; fi

listing() {{ find $D -printf '{LISTING}' | LC_ALL=C sort; }}
caps() {{ python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "security.capability", follow_symlinks=False).hex())' $D/bin/capture-hook; }}

oracle listing_before listing
oracle caps_before caps
oracle find_all find $D -xdev -print0
oracle find_before {FIND_DRIFT} -print0
oracle find_owners_before {FIND_DRIFT} -printf '%U:%G\n'
oracle scan "$HV" drift $D --uid {UID} --gid {GID} --format json --no-progress
oracle scan_paths "$HV" drift $D --uid {UID} --gid {GID} --format paths0 --no-progress
verify check_before --expect drift.toml

# --fix without --apply: the plan only.
oracle plan "$HV" drift $D --uid {UID} --gid {GID} --fix --no-progress
oracle listing_after_plan listing

oracle fix "$HV" drift $D --uid {UID} --gid {GID} --fix --apply --journal $PWD/fix.journal --format json --no-progress
oracle listing_fixed listing
oracle caps_fixed caps
oracle find_fixed {FIND_DRIFT} -print0
oracle rescan "$HV" drift $D --uid {UID} --gid {GID} --format json --no-progress
verify check_fixed --expect drift.toml

if [ "$BREAK" != skip_undo ]; then
  oracle undo "$HV" drift undo $PWD/fix.journal --format json
fi
oracle listing_undone listing
oracle caps_undone caps
oracle find_undone {FIND_DRIFT} -print0
"""

DRIFT_TOML = f"""\
version = 1

[[drift]]
root = "{ROOT}"
uid = {UID}
gid = {GID}
"""


def declared_offending():
    """(uid, gid) -> count of the entries that must be found, from the disk's declaration: the
    declared entries, the parents made implicitly (0:0), the filesystem root and lost+found
    (mkfs makes both 0:0) and the Latin-1 file made in the guest (root)."""
    owners = {}
    paths = {e.path: (e.uid, e.gid) for e in DRIFT.entries}
    for e in DRIFT.entries:
        parent = e.path.rsplit("/", 1)[0] if "/" in e.path else None
        while parent and parent not in paths:
            paths[parent] = (0, 0)
            parent = parent.rsplit("/", 1)[0] if "/" in parent else None
    paths["."] = (0, 0)
    paths["lost+found"] = (0, 0)
    paths[LATIN1.decode("latin-1")] = (0, GID)
    for owner in paths.values():
        if owner != (UID, GID):
            owners[owner] = owners.get(owner, 0) + 1
    return owners, len(paths)


def nul_list(r, record):
    """A `-print0`/`paths0` output as a sorted list of raw paths."""
    return sorted(p for p in r.out_bytes(record).split(b"\0") if p)


def check(r):
    want_owners, want_entries = declared_offending()
    want_total = sum(want_owners.values())

    # The scan: exit 1, exact counts per owner, equal to the declaration and to find.
    expect(r.rc("scan") == 1, f"drift scan exited {r.rc('scan')}, expected 1 (drift found): {r.err('scan')}")
    scan = r.json_out("scan")
    seen_owners = {(o["uid"], o["gid"]): o["count"] for o in scan["by_owner"]}
    expect(scan["offending"] == want_total and seen_owners == want_owners,
           f"drift found {scan['offending']} offending entries by owner {seen_owners}; the disk was made with "
           f"{want_total}: {want_owners}")
    expect(scan["stats"]["entries"] == want_entries,
           f"drift examined {scan['stats']['entries']} entries, the disk has {want_entries}")
    expect(scan["errors"] == 0 and scan["stats"]["stopped"] is None, f"scan errors or stopped: {scan['stats']}")
    # find, in the same VM.
    find_all = nul_list(r, "find_all")
    expect(scan["stats"]["entries"] == len(find_all),
           f"drift examined {scan['stats']['entries']} entries, find -xdev lists {len(find_all)}")
    find_owners = {}
    for line in r.out("find_owners_before").splitlines():
        uid, gid = (int(x) for x in line.split(":"))
        find_owners[(uid, gid)] = find_owners.get((uid, gid), 0) + 1
    expect(find_owners == seen_owners, f"by owner: drift says {seen_owners}, find says {find_owners}")
    ours, theirs = nul_list(r, "scan_paths"), nul_list(r, "find_before")
    expect(ours == theirs, f"offending paths: drift --format paths0 and find -print0 differ:\n"
           f"  only drift: {sorted(set(ours) - set(theirs))}\n  only find: {sorted(set(theirs) - set(ours))}")
    expect(f"{ROOT}/{LATIN1.decode('latin-1')}".encode("latin-1") in ours, f"the Latin-1 name is not among {ours}")

    # check with [[drift]]: fails before the fix with the same counts.
    rep = r.report("check_before")
    rep.exit_code(1)
    f = rep.one("drift_owner", ROOT, "fail", remedy_kind="command",
                remedy_contains=[f"homelab-verify drift {ROOT} --uid {UID} --gid {GID} --fix"])
    ev = f["evidence"]
    expect((ev["offending"], ev["entries"]) == (want_total, want_entries),
           f"drift_owner evidence offending {ev['offending']}, entries {ev['entries']}; expected {want_total}, {want_entries}")

    # --fix alone changes nothing.
    before = r.out("listing_before")
    expect(r.rc("plan") == 1 and "Nothing was changed" in r.out("plan"), f"drift --fix: rc {r.rc('plan')}: {r.out('plan')[-800:]}")
    expect(r.out("listing_after_plan") == before, "drift --fix without --apply changed owners:\n" + diff(before, r.out("listing_after_plan")))

    # --fix --apply: nothing left, by find and by a re-scan; the journal has one record per change.
    fix = r.json_out("fix")
    expect(r.rc("fix") == 0 and fix["fix"]["changed"] == want_total and fix["fix"]["failed"] == 0,
           f"drift --fix --apply: rc {r.rc('fix')}, fix {fix.get('fix')}; expected {want_total} changed")
    leftover = nul_list(r, "find_fixed")
    expect(not leftover, f"after the fix find still finds {leftover}")
    rescan = r.json_out("rescan")
    expect(r.rc("rescan") == 0 and rescan["offending"] == 0 and rescan["stats"]["entries"] == want_entries,
           f"re-scan after the fix: rc {r.rc('rescan')}, offending {rescan['offending']}, entries {rescan['stats']['entries']}")
    records = (r.dir / "fix.journal").read_bytes().splitlines()[1:]
    expect(len(records) == want_total, f"the journal holds {len(records)} records, expected {want_total}")
    rep = r.report("check_fixed")
    rep.ok()
    rep.one("drift_owner", ROOT, "pass")
    # What chown took away and undo must put back: the set-user-ID bit and the capability.
    hook = f" f {ROOT}/bin/transcode-hook"
    modes = [l.split()[2] for l in r.out("listing_fixed").splitlines() if l.endswith(hook)]
    expect(modes == ["755"], f"after the fix transcode-hook has modes {modes}: chown did not clear set-user-ID?")
    expect(r.rc("caps_fixed") != 0 and "No data available" in r.err("caps_fixed"),
           f"after the fix capture-hook still has capabilities {r.out('caps_fixed')!r} ({r.err('caps_fixed')[-200:]!r})")

    # undo: every owner, mode and capability as before (the state first, then what undo said).
    after = r.out("listing_undone")
    expect(after == before, "after undo the listing differs from the one before the fix:\n" + diff(before, after))
    expect(r.out("caps_undone") == r.out("caps_before"),
           f"capabilities: before {r.out('caps_before')!r}, after undo {r.out('caps_undone')!r} ({r.err('caps_undone')!r})")
    expect(nul_list(r, "find_undone") == theirs, "after undo find finds other offending paths than before")
    expect(r.rc("undo") == 0, f"drift undo exited {r.rc('undo')}: {r.out('undo')} {r.err('undo')}")
    undo = r.json_out("undo")
    expect((undo["records"], undo["restored"], undo["failed"], undo["skipped"]) == (want_total, want_total, 0, 0),
           f"drift undo: {undo}; expected {want_total} records, all restored")


def diff(a, b):
    la, lb = set(a.splitlines()), set(b.splitlines())
    return f"  only before: {sorted(la - lb)}\n  only after: {sorted(lb - la)}"


SCENARIO = Scenario(
    name="drift",
    title="drift on a disk with known owners: counts equal find; --fix --apply leaves none; undo restores all",
    order=60,
    disks=(DRIFT,),
    files={"drift.toml": DRIFT_TOML},
    guest=GUEST,
    check=check,
    breaks={
        "skip_undo": Break("the undo is not run: the owners stay as the fix set them"),
        "extra_drift": Break("one more file (Music/a.flac) is chowned to 0:0 in the guest before the scan"),
    },
    controls=(
        Control("no fix: the first scan stands in for the re-scan", {"rescan": "scan"}),
        Control("no undo: the fixed listing stands in for the undone one", {"listing_undone": "listing_fixed"}),
        Control("--fix applied: the fixed listing stands in for the one after the plan", {"listing_after_plan": "listing_fixed"}),
    ),
)
