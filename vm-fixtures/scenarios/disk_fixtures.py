"""The harness's own disks, as the guest kernel sees them: each image shows up with the UUID,
label, filesystem type and GPT partition it was made with (lsblk in the guest), and its files have exactly the
declared owners, modes and types (find on the disk mounted read-only in the guest). The mount,
drift and capture scenarios build on this."""

import dataclasses

from harness import Break, Disk, Entry, Partition, Scenario, expect

MEDIA = Disk(
    name="media",
    uuid="3f6c1c1e-8b1a-4d55-9a0e-5e0c1a2b3c4d",
    label="PlexStorage",
    entries=(
        Entry("media", 1000, 110, 0o2775, kind="dir"),
        Entry("media/movies", 1000, 110, 0o775, kind="dir"),
        Entry("media/movies/a.mkv", 1000, 110, 0o664, content="a\n"),
        Entry("media/movies/b.mkv", 0, 0, 0o644, content="b\n"),  # written by root: drifted
        Entry("media/tv/ep1.mkv", 100000, 100000, 0o600, content="e\n"),  # a user-namespace uid
        Entry("media/tv/latest", 1000, 110, kind="symlink", content="ep1.mkv"),
    ),
)
# In a GPT partition, so PARTUUID and PARTLABEL exist too.
BACKUP = Disk(name="backup", uuid="0b5e7c2a-1d4f-4c3b-8e6a-7f9d0a1b2c3e", label="Backup",
              entries=(Entry("README", 0, 0, 0o444, content="backups\n"),),
              partition=Partition(name="Backup Part", uuid="9d1c6a0e-4b7f-4e2a-b3c5-1a2b3c4d5e6f"))

GUEST = rf"""
oracle lsblk lsblk -J -o NAME,UUID,LABEL,FSTYPE,PARTUUID,PARTLABEL,SERIAL
mkdir -p /run/vm-fixtures/media
mount -o ro /dev/disk/by-label/{MEDIA.label} /run/vm-fixtures/media
oracle owners find /run/vm-fixtures/media -mindepth 1 -printf '%U %G %m %y %P\n'
umount /run/vm-fixtures/media
"""


def expected_tree(disk):
    """`find -printf '%U %G %m %y %P'` lines the disk must show (lost+found comes from mkfs)."""
    kinds = {"file": "f", "dir": "d", "symlink": "l"}
    lines = {"0 0 700 d lost+found"}
    declared = {e.path for e in disk.entries}
    for e in disk.entries:
        lines.add(f"{e.uid} {e.gid} {e.perm():o} {kinds[e.kind]} {e.path}")
        parent = e.path.rsplit("/", 1)[0] if "/" in e.path else None
        while parent and parent not in declared:
            lines.add(f"0 0 755 d {parent}")
            declared.add(parent)
            parent = parent.rsplit("/", 1)[0] if "/" in parent else None
    return lines


def flatten(devices):
    for d in devices:
        yield d
        yield from flatten(d.get("children") or [])


def check(r):
    devices = list(flatten(r.json_out("lsblk")["blockdevices"]))
    for disk, name in ((MEDIA, "vda"), (BACKUP, "vdb1")):
        found = [d for d in devices if d.get("uuid") == disk.uuid]
        seen_all = [(d["name"], d["uuid"], d["label"]) for d in devices]
        expect(len(found) == 1, f"lsblk in the guest shows no single device with UUID {disk.uuid}: {seen_all}")
        d = found[0]
        part = disk.partition
        seen = (d["name"], d["label"], d["fstype"], d["partuuid"], d["partlabel"])
        want = (name, disk.label, "ext4", part and part.uuid, part and part.name)
        expect(seen == want, f"lsblk: (name, label, fstype, partuuid, partlabel) = {seen}, expected {want}")
    seen = set(r.out("owners").splitlines())
    want = expected_tree(MEDIA)
    expect(seen == want, "the media disk's owners in the guest differ from the declared ones:\n"
           f"  missing: {sorted(want - seen)}\n  unexpected: {sorted(seen - want)}")


def disks(brk):
    media = MEDIA
    if brk == "owners_not_set":
        media = dataclasses.replace(media, entries=tuple(dataclasses.replace(e, uid=0, gid=0) for e in media.entries))
    if brk == "wrong_uuid":
        media = dataclasses.replace(media, uuid="3f6c1c1e-8b1a-4d55-9a0e-000000000000")
    return (media, BACKUP)


SCENARIO = Scenario(
    name="disk_fixtures",
    title="harness self-test: the guest sees each disk's UUID, label and the declared owners",
    order=20,
    disks=disks,
    guest=GUEST,
    check=check,
    breaks={
        "owners_not_set": Break("make the media disk without setting the declared owners (all 0:0)"),
        "wrong_uuid": Break("format the media disk with another UUID than the declared one"),
    },
)
