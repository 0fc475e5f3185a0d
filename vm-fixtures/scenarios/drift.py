"""The drift scanner, fix and undo on a real ext4 disk in the guest: the disk's entries have
exact owners (set by debugfs when the image is made), mostly the expected 1000:110 and a known
set of others. `homelab-verify drift --format json` must count exactly what the declared entries
say and what `find -xdev \\( ! -uid 1000 -o ! -gid 110 \\)` finds in the same VM
(`--format paths0` against `find -print0`, path by path, a Latin-1 name included); `--fix` alone
changes nothing and lists the set-user-ID file and the file with a capability, which
`--fix --apply` leaves alone (chown would clear those bits); `--fix --apply --allow-setid`
changes them and reports what chown cleared; then nothing is left for find or a re-scan;
`drift undo` of both journals puts every owner, mode (set-user-ID bits that chown cleared) and
file capability back exactly as before (a `find -printf '%U %G %m %y %p'` listing, before and
after). `check` with a `[[drift]]` section fails before the fix and passes after it. A bind
mount of `/` (the guest's read-only root) is refused as a root and inside a root, in a dry
run."""

from harness import Break, Control, Disk, Entry, Scenario, expect

ROOT = "/run/vm-fixtures/drift"
UID, GID = 1000, 110
HOOK = f"{ROOT}/bin/transcode-hook"
CAPPED = f"{ROOT}/bin/capture-hook"

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
# A tmpfs of the guest's own holding bind mounts of `/` (the guest's root is read-only).
BINDS = "/run/vm-fixtures/binds"

GUEST = rf"""
D={ROOT}
mkdir -p $D
mount /dev/disk/by-uuid/{DRIFT.uuid} $D
mkdir -p {BINDS}
mount -t tmpfs -o size=1m tmpfs {BINDS}
trap 'cd /; umount {BINDS}/tree/host {BINDS}/root {BINDS} || true; umount {ROOT}' EXIT
touch "$D/$(printf 'Movies/Am\xe9lie (2001).mkv')"
# cap_net_raw=ep (VFS_CAP_REVISION_2, effective): chown drops security.capability; undo must
# put it back.
python3 -c 'import os,sys; os.setxattr(sys.argv[1], "security.capability", bytes.fromhex("0100000200200000000000000000000000000000"))' $D/bin/capture-hook
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

# --fix without --apply: the plan only, which names the set-id file and the capability.
oracle plan "$HV" drift $D --uid {UID} --gid {GID} --fix --no-progress
oracle plan_json "$HV" drift $D --uid {UID} --gid {GID} --fix --format json --no-progress
oracle listing_after_plan listing

# Applied: the two are left alone (chown would clear their bits).
oracle fix "$HV" drift $D --uid {UID} --gid {GID} --fix --apply --journal $PWD/fix.journal --format json --no-progress
oracle listing_fixed listing
oracle caps_fixed caps
oracle find_fixed {FIND_DRIFT} -print0
# Allowed: changed, and what chown cleared is reported.
oracle fix_setid "$HV" drift $D --uid {UID} --gid {GID} --fix --apply --allow-setid --journal $PWD/fix-setid.journal --format json --no-progress
oracle listing_setid listing
oracle caps_setid caps
oracle find_setid {FIND_DRIFT} -print0
oracle rescan "$HV" drift $D --uid {UID} --gid {GID} --format json --no-progress
verify check_fixed --expect drift.toml

if [ "$BREAK" != skip_undo ]; then
  oracle undo_setid "$HV" drift undo $PWD/fix-setid.journal --format json
  oracle undo "$HV" drift undo $PWD/fix.journal --format json
fi
oracle listing_undone listing
oracle caps_undone caps
oracle find_undone {FIND_DRIFT} -print0

# A bind mount of `/`, as a root and inside a root (a container's view of its host): refused by
# what it is, whatever its path. Dry runs only (and the guest's root is read-only).
mkdir {BINDS}/root {BINDS}/tree {BINDS}/tree/host
mount --bind -o ro / {BINDS}/root
mount --bind -o ro / {BINDS}/tree/host
oracle bind_stat stat -L -c '%d %i' / {BINDS}/root {BINDS}/tree/host
oracle bind_opts sh -c 'findmnt -no OPTIONS -M {BINDS}/root && findmnt -no OPTIONS -M {BINDS}/tree/host'
oracle bindroot "$HV" drift {BINDS}/root --uid 0 --gid 0 --fix --no-progress
oracle bindtree "$HV" drift {BINDS}/tree --uid 0 --gid 0 --fix --no-progress
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

    # --fix alone changes nothing, and names the two files whose bits chown would clear.
    before = r.out("listing_before")
    plan = r.out("plan")
    expect(r.rc("plan") == 1 and "Nothing was changed" in plan, f"drift --fix: rc {r.rc('plan')}: {plan[-800:]}")
    for line in [f"set-id files: 1, left alone: chown would clear the set-id bits",
                 f"    {HOOK}  (mode 4755 (set-user-ID))",
                 f"files with capabilities: 1, left alone: chown would remove the capabilities",
                 f"    {CAPPED}  (cap_net_raw=ep)",
                 f"plan: change the owner of {want_total - 2} of these {want_total} entries to {UID}:{GID}"]:
        expect(line in plan, f"the plan does not say {line!r}:\n{plan}")
    p = r.json_out("plan_json")["plan"]
    expect((p["changes"], p["held"], p["setid"]["count"], p["capabilities"]["count"], p["outside_links"]["count"])
           == (want_total - 2, 2, 1, 1, 0), f"the JSON plan: {p}")
    expect(r.out("listing_after_plan") == before, "drift --fix without --apply changed owners:\n" + diff(before, r.out("listing_after_plan")))

    # --fix --apply: every other entry fixed; the two left alone keep owner, bit and capability.
    fix = r.json_out("fix")["fix"]
    expect(r.rc("fix") == 1 and (fix["changed"], fix["held_setid"], fix["failed"]) == (want_total - 2, 2, 0),
           f"drift --fix --apply: rc {r.rc('fix')} (1: drift is left), fix {fix}; expected {want_total - 2} changed, 2 held")
    leftover = nul_list(r, "find_fixed")
    expect(leftover == sorted([HOOK.encode(), CAPPED.encode()]), f"after the fix find finds {leftover}, expected only the two hooks")
    fixed = r.out("listing_fixed")
    for line in [f"0 0 4755 f {HOOK}", f"0 0 755 f {CAPPED}"]:
        expect(line in fixed.splitlines(), f"after the default fix {line!r} is not in the listing:\n{diff(before, fixed)}")
    expect(r.out("caps_fixed") == r.out("caps_before"), f"the default fix removed the capability: {r.err('caps_fixed')!r}")
    records = (r.dir / "fix.journal").read_bytes().splitlines()[1:]
    expect(len(records) == want_total - 2, f"the journal holds {len(records)} records, expected {want_total - 2}")

    # --allow-setid: the two change; chown really cleared the bit and the capability, as reported.
    fs = r.json_out("fix_setid")["fix"]
    expect(r.rc("fix_setid") == 0 and (fs["changed"], fs["held_setid"], fs["cleared_setid"], fs["cleared_capabilities"]) == (2, 0, 1, 1),
           f"drift --fix --apply --allow-setid: rc {r.rc('fix_setid')}, fix {fs}; expected 2 changed, 1 set-id bit and 1 capability cleared")
    expect(f"{HOOK}: mode 4755 -> 0755" in fs["cleared"] and f"{CAPPED}: capabilities removed" in fs["cleared"],
           f"what was cleared: {fs['cleared']}")
    expect(f"1000 110 755 f {HOOK}" in r.out("listing_setid").splitlines(),
           f"after --allow-setid transcode-hook is not 1000:110 0755:\n{diff(before, r.out('listing_setid'))}")
    expect(r.rc("caps_setid") != 0 and "No data available" in r.err("caps_setid"),
           f"after --allow-setid capture-hook still has capabilities {r.out('caps_setid')!r} ({r.err('caps_setid')[-200:]!r})")
    leftover = nul_list(r, "find_setid")
    expect(not leftover, f"after both fixes find still finds {leftover}")
    rescan = r.json_out("rescan")
    expect(r.rc("rescan") == 0 and rescan["offending"] == 0 and rescan["stats"]["entries"] == want_entries,
           f"re-scan after the fix: rc {r.rc('rescan')}, offending {rescan['offending']}, entries {rescan['stats']['entries']}")
    rep = r.report("check_fixed")
    rep.ok()
    rep.one("drift_owner", ROOT, "pass")

    # undo, the last fix first: every owner, mode and capability as before (the state first,
    # then what undo said).
    after = r.out("listing_undone")
    expect(after == before, "after undo the listing differs from the one before the fix:\n" + diff(before, after))
    expect(r.out("caps_undone") == r.out("caps_before"),
           f"capabilities: before {r.out('caps_before')!r}, after undo {r.out('caps_undone')!r} ({r.err('caps_undone')!r})")
    expect(nul_list(r, "find_undone") == theirs, "after undo find finds other offending paths than before")
    for rec, n in [("undo_setid", 2), ("undo", want_total - 2)]:
        expect(r.rc(rec) == 0, f"drift undo ({rec}) exited {r.rc(rec)}: {r.out(rec)} {r.err(rec)}")
        u = r.json_out(rec)
        expect((u["records"], u["restored"], u["failed"], u["skipped"]) == (n, n, 0, 0),
               f"drift undo ({rec}): {u}; expected {n} records, all restored")

    # A bind mount of `/` is `/`: refused as a root and where a walk reaches it, before any plan.
    ids = r.out("bind_stat").split("\n")
    expect(len(set(l for l in ids if l)) == 1, f"the bind mounts are not `/` ({ids}): the test did not test")
    opts = r.out("bind_opts").splitlines()
    expect(len(opts) == 2 and all(o.split(",")[0] == "ro" for o in opts),
           f"the bind mounts of / are not read-only: {opts} ({r.err('bind_opts')!r})")
    for rec, path in [("bindroot", f"{BINDS}/root"), ("bindtree", f"{BINDS}/tree/host")]:
        expect(r.rc(rec) == 2 and f"{path} is `/`: refusing to scan or fix a system directory" in r.err(rec)
               and "plan:" not in r.out(rec),
               f"drift of a bind mount of / ({rec}): rc {r.rc(rec)}, stderr {r.err(rec)[-300:]!r}, stdout {r.out(rec)[-300:]!r}")


def diff(a, b):
    la, lb = set(a.splitlines()), set(b.splitlines())
    return f"  only before: {sorted(la - lb)}\n  only after: {sorted(lb - la)}"


SCENARIO = Scenario(
    name="drift",
    title="drift on a disk with known owners: counts equal find; set-id left alone unless allowed; undo restores all; / by bind mount refused",
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
        Control("no undo: the fixed listing stands in for the undone one", {"listing_undone": "listing_setid"}),
        Control("--fix applied: the fixed listing stands in for the one after the plan", {"listing_after_plan": "listing_fixed"}),
        Control("set-id changed without --allow-setid: the listing after it stands in for the default fix's",
                {"listing_fixed": "listing_setid"}),
        Control("nothing cleared: the default fix's report stands in for the --allow-setid one", {"fix_setid": "fix"}),
        Control("a bind mount of / planned: the plan of the disk stands in for the refusal", {"bindroot": "plan"}),
    ),
)
