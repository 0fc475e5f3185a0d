"""The ownership baseline on a real ext4 disk in the guest: a data disk with mixed owners
(appdata of a database, Plex and a web app, and `/var/lib`-like service state with a
set-user-ID helper, a set-group-ID directory and a symbolic link) is recorded with
`baseline take` while good. Then the disaster: `chown -R 1234:1234` over the whole disk.
`baseline check` must report every entry whose owner changed (the count equals what
`find -printf '%U %G %m %y %p'` listings before and after differ in), and `check` with a
`[[baseline]]` section must fail; `baseline restore` alone changes nothing; `restore --apply
--allow-setid` must put every owner and mode back, set-user-ID included (the listing equals the
one taken while good), so check passes again; `baseline undo` must return the disk to the
broken state exactly."""

from harness import Break, Control, Disk, Entry, Scenario, expect

ROOT = "/run/vm-fixtures/baseline"

DATA = Disk(
    name="baseline",
    uuid="b7a5e1c2-3d4f-4a6b-8c9d-0e1f2a3b4c5d",
    label="BaselineData",
    entries=(
        Entry("appdata", 0, 0, 0o755, kind="dir"),
        Entry("appdata/postgres", 999, 999, 0o700, kind="dir"),
        Entry("appdata/postgres/PG_VERSION", 999, 999, 0o600, content="16\n"),
        Entry("appdata/postgres/base/1/1259", 999, 999, 0o600, content="rel\n"),
        Entry("appdata/postgres/base", 999, 999, 0o700, kind="dir"),
        Entry("appdata/postgres/base/1", 999, 999, 0o700, kind="dir"),
        Entry("appdata/plex", 1000, 110, 0o2775, kind="dir"),  # set-group-ID directory
        Entry("appdata/plex/Preferences.xml", 1000, 110, 0o664, content="<Preferences/>\n"),
        Entry("appdata/plex/Logs", 1000, 110, 0o775, kind="dir"),
        Entry("appdata/plex/Logs/Plex Media Server.log", 1000, 110, 0o644, content="log\n"),
        Entry("appdata/web", 33, 33, 0o755, kind="dir"),
        Entry("appdata/web/index.php", 33, 33, 0o644, content="<?php\n"),
        Entry("appdata/web/current", 33, 33, kind="symlink", content="index.php"),
        Entry("var-lib", 0, 0, 0o755, kind="dir"),
        Entry("var-lib/redis", 100, 102, 0o750, kind="dir"),
        Entry("var-lib/redis/dump.rdb", 100, 102, 0o640, content="REDIS\n"),
        Entry("var-lib/helper", 0, 0, 0o4755, content="#!/bin/sh\n"),  # set-user-ID: chown clears it
        Entry("var-lib/tmp", 0, 0, 0o1777, kind="dir"),  # sticky
    ),
)

LISTING = "%U %G %m %y %p\\n"

GUEST = rf"""
D={ROOT}
mkdir -p $D
mount /dev/disk/by-uuid/{DATA.uuid} $D
trap 'cd /; umount {ROOT}' EXIT
listing() {{ find $D -printf '{LISTING}' | LC_ALL=C sort; }}
printf 'version = 1\n\n[[baseline]]\nfile = "%s"\n' "$PWD/good.baseline" > baseline.toml

oracle listing_good listing
oracle take "$HV" baseline take $D -o $PWD/good.baseline --format json --no-progress
oracle check_good "$HV" baseline check $PWD/good.baseline --format json --no-progress
verify toml_good --expect baseline.toml

# The disaster, on this disk only.
chown -R 1234:1234 $D
oracle listing_broken listing
oracle check_broken "$HV" baseline check $PWD/good.baseline --format json --no-progress
verify toml_broken --expect baseline.toml

oracle plan "$HV" baseline restore $PWD/good.baseline --no-progress
oracle listing_after_plan listing
if [ "$BREAK" != skip_restore ]; then
  oracle restore "$HV" baseline restore $PWD/good.baseline --apply --allow-setid --journal $PWD/restore.journal --format json --no-progress
fi
oracle listing_restored listing
oracle check_restored "$HV" baseline check $PWD/good.baseline --format json --no-progress
verify toml_restored --expect baseline.toml

oracle undo "$HV" baseline undo $PWD/restore.journal --format json
oracle listing_undone listing
"""


def rows(text):
    """A `find -printf LISTING` output as path -> (uid, gid, mode, type)."""
    out = {}
    for line in text.splitlines():
        uid, gid, mode, kind, path = line.split(" ", 4)
        out[path] = (uid, gid, mode, kind)
    return out


def check(r):
    good, broken = rows(r.out("listing_good")), rows(r.out("listing_broken"))
    expect(good.keys() == broken.keys(), "chown -R changed the set of entries?")
    owner_changed = sum(1 for p in good if good[p][:2] != broken[p][:2])
    mode_changed = sum(1 for p in good if good[p][2] != broken[p][2])
    expect(owner_changed >= len(DATA.entries), f"only {owner_changed} owners changed by chown -R")
    expect(mode_changed >= 1, "chown -R cleared no set-user-ID bit (var-lib/helper)")

    take = r.json_out("take")
    expect(r.rc("take") == 0 and take["recorded"]["entries"] == len(good),
           f"baseline take: rc {r.rc('take')}, {take.get('recorded')}; find lists {len(good)} entries")
    good_check = r.json_out("check_good")
    expect(r.rc("check_good") == 0 and good_check["same"] == len(good),
           f"check while good: rc {r.rc('check_good')}, same {good_check['same']} of {len(good)}")
    r.report("toml_good").ok()

    # The broken disk: exactly the entries find saw change.
    br = r.json_out("check_broken")
    expect(r.rc("check_broken") == 1, f"check after chown -R exited {r.rc('check_broken')}, expected 1")
    expect((br["owner"], br["mode"], br["missing"], br["kind"]) == (owner_changed, mode_changed, 0, 0),
           f"check after chown -R: owner {br['owner']}, mode {br['mode']}, missing {br['missing']}, type {br['kind']}; "
           f"the listings differ in {owner_changed} owners and {mode_changed} modes")
    to = {c["to"] for c in br["changes"] if c["change"] == "owner"}
    expect(to == {"1234:1234"}, f"owner changes go to {to}, expected only 1234:1234")
    rep = r.report("toml_broken")
    rep.exit_code(1)
    fails = [f for f in rep.findings if f["check"] == "baseline_owner" and f["status"] == "fail"]
    expect(len(fails) == 1 and "baseline restore" in fails[0]["remedy"]["text"],
           f"check with [[baseline]] after chown -R: {fails}")

    # The plan changes nothing.
    expect(r.out("listing_after_plan") == r.out("listing_broken"), "restore without --apply changed the disk")
    expect(r.rc("plan") == 1, f"restore (plan) exited {r.rc('plan')}, expected 1: {r.out('plan')[-600:]}")

    # Restore: the good listing again, set-user-ID included; check passes.
    restored = r.out("listing_restored")
    expect(restored == r.out("listing_good"), "after restore the disk differs from the baseline:\n" +
           diff(r.out("listing_good"), restored))
    rc = r.json_out("check_restored")
    expect(r.rc("check_restored") == 0 and rc["same"] == len(good),
           f"check after restore: rc {r.rc('check_restored')}, {rc['owner']} owner, {rc['mode']} mode differ")
    r.report("toml_restored").ok()

    # Undo: the broken state exactly.
    expect(r.rc("undo") == 0, f"baseline undo exited {r.rc('undo')}: {r.out('undo')} {r.err('undo')}")
    undone = r.out("listing_undone")
    expect(undone == r.out("listing_broken"), "after undo the disk differs from the broken state:\n" +
           diff(r.out("listing_broken"), undone))


def diff(a, b):
    la, lb = set(a.splitlines()), set(b.splitlines())
    return f"  only expected: {sorted(la - lb)}\n  only now: {sorted(lb - la)}"


SCENARIO = Scenario(
    name="baseline",
    title="baseline of a mixed-owner disk: chown -R 1234:1234 reported exactly; restore puts every owner back; undo reverses",
    order=65,
    disks=(DATA,),
    files={},
    guest=GUEST,
    check=check,
    breaks={
        "skip_restore": Break("the restore is not run: the owners stay as chown -R set them"),
    },
    controls=(
        Control("no restore: the broken listing stands in for the restored one", {"listing_restored": "listing_broken"}),
        Control("restore applied: the restored listing stands in for the one after the plan",
                {"listing_after_plan": "listing_restored"}),
    ),
)
