"""The NixOS VM test nixos-tests/mounts.nix, rehearsed on a real kernel: the same blank data disk
declared by UUID (the fstab line NixOS writes for that test's fileSystems entry), the same
expectations (nixos-tests/lib/mounts.toml, which a test keeps equal to what the module renders
from the test's settings), the same steps, and the same verdicts after each step, read from the
file the NixOS test reads (nixos-tests/lib/mounts.json). What differs is the machine: a Debian
guest without systemd as PID 1, so `mount` instead of mount units and an edited /etc/fstab
instead of a switch into a specialisation."""

import json

from harness import REPO, Break, Control, Disk, Scenario, expect

SHARED = json.loads((REPO / "nixos-tests" / "lib" / "mounts.json").read_text())
EXPECT = (REPO / "nixos-tests" / "lib" / "mounts.toml").read_text()
PATH, UUID, MEDIA = SHARED["path"], SHARED["uuid"], SHARED["media"]

# The harness formats every disk; the guest wipes this one first, so it starts blank like an
# emptyDiskImages disk. Its own UUID only serves to find it.
DISK = Disk(name="nixosdata", uuid="6e0d5a1f-0b3c-4c1d-9e2f-7a8b9c0d1e2f", label="nixosdata", size_mib=32)
# Stands for the test VM's root disk (label `nixos`): with no block device that has a UUID or a
# label, the probe cannot tell a missing disk from a host without identities, and mount_device
# skips instead of failing. Never mounted.
ROOT = Disk(name="nixosroot", uuid="6e0d5a1f-0b3c-4c1d-9e2f-000000000001", label="nixos")

# The line NixOS writes into /etc/fstab for the test's virtualisation.fileSystems entry.
FSTAB = f"/dev/disk/by-uuid/{UUID} {PATH} ext4 nofail,x-systemd.device-timeout=5s 0 2"

GUEST = rf"""
disk=$(readlink -f /dev/disk/by-uuid/{DISK.uuid})
wipefs -a -q "$disk"
udevadm trigger --action=change "$disk"
udev_settle
oracle blank_uuid lsblk -n -d -o UUID "$disk"
echo '{FSTAB}' > /etc/fstab
mkdir -p {PATH}
verify blank --expect expect.toml

mkfs.ext4 -q -F -U {UUID} "$disk"
udevadm trigger --action=change "$disk"
udev_settle
mount {PATH}
oracle mounted_uuid findmnt -n -o UUID {PATH}
install -d -o 1000 -g 110 {MEDIA} {MEDIA}/movies
install -o 1000 -g 110 -m 644 /dev/null {MEDIA}/movies/a.mkv
verify mounted --expect expect.toml

touch {MEDIA}/movies/root-wrote-this.mkv
verify drifted --expect expect.toml
if [ "$BREAK" != no_drift_fix ]; then
  oracle drift_fix "$HV" drift {MEDIA} --uid 1000 --gid 110 --fix --apply --journal "$PWD/drift.journal"
fi
oracle owner_after_fix stat -c %u:%g {MEDIA}/movies/root-wrote-this.mkv
verify fixed --expect expect.toml

# The specialisation without the mount: the switch unmounts the disk and drops its fstab line.
umount {PATH}
: > /etc/fstab
verify undeclared --expect expect.toml
mkdir -p {MEDIA}
touch {MEDIA}/oops.mkv
verify shadowed --expect expect.toml
rm -r {MEDIA}

# Back to the generation with the mount.
echo '{FSTAB}' > /etc/fstab
mount {PATH}
verify back --expect expect.toml
umount {PATH}
: > /etc/fstab
"""

EXIT_CODES = {"blank": 1, "mounted": 0, "drifted": 1, "fixed": 0, "undeclared": 1, "shadowed": 1, "back": 0}


def check(r):
    for step, want_rc in EXIT_CODES.items():
        rep = r.report(step)
        for subject, want in SHARED["steps"][step].items():
            found = rep.select(subject=subject)
            seen = {f["check"]: f["status"] for f in found}
            expect(seen == want and len(seen) == len(found),
                   f"step {step}, {subject}: {seen}, nixos-tests/lib/mounts.json says {want}:\n{rep.describe(subject)}")
        rep.exit_code(want_rc)
    # Details the NixOS test asserts too.
    blank = r.report("blank")
    blank.one("mounted", PATH, "fail", remedy_contains=[f"systemctl start mnt-PlexStorage.mount"])
    blank.one("mount_device", PATH, "fail", message_contains=[f"UUID={UUID}"])
    f = r.report("drifted").one("drift_owner", MEDIA, "fail", remedy_kind="command",
                                remedy_contains=[f"homelab-verify drift {MEDIA} --uid 1000 --gid 110 --fix"])
    ev = f["evidence"]
    expect((ev["entries"], ev["offending"]) == (4, 1), f"drift evidence {ev}")
    expect(ev["by_owner"] == [{"uid": 0, "gid": 0, "count": 1, "samples": [f"{MEDIA}/movies/root-wrote-this.mkv"]}],
           f"by_owner {ev['by_owner']}")
    r.report("undeclared").one("mounted", PATH, "fail", remedy_kind="nixos",
                               remedy_contains=[f'fileSystems."{PATH}" = {{', f'device = "/dev/disk/by-uuid/{UUID}";'])
    s = r.report("shadowed").one("shadowed_data", PATH, "fail", remedy_contains=[f"mv -T {PATH} {PATH}.shadowed"])
    expect((s["evidence"]["entries"], s["evidence"]["names"]) == (1, ["media"]), f"shadowed evidence {s['evidence']}")
    # The oracles: the disk was blank, then had the UUID; the fix changed the owner.
    expect(r.out("blank_uuid").strip() == "", f"the wiped disk still has a UUID: {r.out('blank_uuid')!r}")
    expect(r.out("mounted_uuid").strip() == UUID, f"findmnt: {r.out('mounted_uuid')!r}, expected {UUID}")
    expect(r.out("owner_after_fix").strip() == "1000:110", f"after the fix: {r.out('owner_after_fix')!r}")


SCENARIO = Scenario(
    name="nixos_mounts",
    title="nixos-tests/mounts.nix rehearsed: blank disk, formatted, drifted and fixed, undeclared, shadowed, back",
    order=60,
    overlays=("/etc", "/mnt"),
    disks=(ROOT, DISK),
    files={"expect.toml": EXPECT},
    guest=GUEST,
    check=check,
    breaks={"no_drift_fix": Break("leave the root-owned file as it is instead of applying the drift fix")},
    controls=(Control("the report before the remount in place of the one after it", {"back": "undeclared"}),),
)
