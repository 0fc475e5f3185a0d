"""The mount probe on a real kernel, real udev and real ext4 disks: the runbook's two data disks
in the guest's /etc/fstab by UUID (nofail) plus a `[[mounts]]` expectations file (PlexStorage by
UUID, PlexDrive by its label with a space), then the states a migration gets into, one after
another in one boot, each checked with `homelab-verify check --format json` and compared with
`findmnt`/`lsblk` in the same VM:

1. both mounted from fstab by mount(8) -> every mount check passes (with and without the
   expectations file); the report's device, UUID, label, fstype (none from a verifier built
   without the `udev` feature: the portable release binary), major:minor and rw agree with
   lsblk and findmnt, and our mount table and udev reads agree with them wholesale (the
   `mount_oracle` tests run in the guest, with a real udev database);
2. PlexStorage remounted read-only -> `mount_options` fails with the remount remedy;
3. a tmpfs mounted on top of PlexStorage -> `mount_covered`, `mount_source`, `mount_fstype` fail;
4. PlexDrive unmounted and files written into its bare directory -> `mounted` and
   `shadowed_data` fail, with the count and the first five names that `find` shows;
5. `check --wait` while the remedy is carried out (files moved aside, the disk mounted once the
   verifier says it waits) -> passes, with a `mount_wait` finding;
6. PlexStorage's disk detached (virtio_blk unbound: the kernel removes the device, udev its
   links) -> `mount_device` and `mounted` fail, with and without the expectations file.
"""


from harness import Break, Control, Disk, Entry, Partition, Scenario, expect

STORAGE = "/mnt/PlexStorage"
DRIVE = "/mnt/PlexDrive"

# The runbook's disks (the UUIDs of docs/mounts.md): PlexStorage in a GPT partition, PlexDrive
# a whole-disk filesystem whose label has a space (udev escapes it in /dev/disk/by-label).
PLEX = Disk(
    name="plexstorage",
    uuid="7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10",
    label="PlexData",
    entries=(Entry("Movies", 1000, 110, 0o2775, kind="dir"), Entry("Movies/a.mkv", 1000, 110, 0o664, content="a\n")),
    partition=Partition(name="Plex Storage", uuid="0e6b0f61-aaaa-4bbb-8ccc-123456789abc",
                        table_uuid="5e1f0000-0000-4000-8000-0000000000a1"),
)
DRIVE_DISK = Disk(
    name="plexdrive",
    uuid="3b5e8d21-6c0f-4a7e-9d12-8f4a6b2c1e07",
    label="Plex Drive",
    entries=(Entry("TV Shows", 1000, 110, 0o2775, kind="dir"),),
)
WRONG_UUID = "7c1f0b7e-2d4a-4f61-9a53-000000000000"

FSTAB = f"""\
# The runbook's data disks, by UUID, nofail (written by the vm-fixtures mounts scenario).
UUID={PLEX.uuid} {STORAGE} ext4 defaults,nofail 0 2
UUID={DRIVE_DISK.uuid} {DRIVE} ext4 noatime,nofail 0 2
"""

EXPECT_STORAGE = """\
[[mounts]]
path = "/mnt/PlexStorage"
uuid = "{uuid}"
fstype = "ext4"
options = ["rw"]
"""
EXPECT_DRIVE = """\
[[mounts]]
path = "/mnt/PlexDrive"
label = "Plex Drive"
fstype = "ext4"
options = ["rw", "noatime"]
"""

# Names written into PlexDrive's bare directory (step 4): seven entries, the report shows the
# first five in byte order.
SHADOWED = ["TV Shows", ".plexmatch", "Movies", "downloads.part", "a.nfo", "b.nfo", "c.nfo"]

GUEST = rf"""
FINDMNT="findmnt -J -k --list -o ID,TARGET,SOURCE,FSTYPE,VFS-OPTIONS,FS-OPTIONS,MAJ:MIN"
restore_fstab=
detached=
cleanup() {{
  # Leave the VM as it was for whatever runs after this scenario in the same boot.
  set +e
  if [ -n "$detached" ]; then virtio_attach "$detached"; fi
  local d i
  for d in {STORAGE} {DRIVE}; do
    for i in 1 2 3; do mountpoint -q $d && umount $d; done  # stacked mounts: a few times, bounded
    mountpoint -q $d || rm -rf $d
  done
  rm -rf {DRIVE}.shadowed
  if [ -n "$restore_fstab" ]; then cat fstab.orig >/etc/fstab; fi
}}
trap cleanup EXIT
cat /etc/fstab >fstab.orig
restore_fstab=1
oracle hv_version "$HV" --version
cat fstab >/etc/fstab
mkdir -p {STORAGE} {DRIVE}
udev_settle

# 1. Both disks mounted the way the host mounts them: mount(8) reading fstab's UUID= entries.
mount {STORAGE}
mount {DRIVE}
verify mounted --expect mounts.toml
verify mounted_fstab
oracle findmnt_mounted $FINDMNT
oracle lsblk_mounted lsblk -J -o NAME,MAJ:MIN,UUID,LABEL,FSTYPE,PARTUUID,PARTLABEL,MOUNTPOINTS
oracle mount_oracle "$CARGO_TEST_mount_oracle" --nocapture --test-threads 1 this_machines

# 2. Read-only where rw is expected.
mount -o remount,ro {STORAGE}
verify readonly --expect mounts.toml
oracle findmnt_ro $FINDMNT
mount -o remount,rw {STORAGE}

# 3. Something mounted on top of the disk.
mount -t tmpfs scratch {STORAGE}
verify covered --expect mounts.toml
oracle findmnt_covered $FINDMNT
umount {STORAGE}

# 4. PlexDrive not mounted, and something wrote into the bare directory on the root disk.
umount {DRIVE}
mkdir -p "{DRIVE}/TV Shows/Severance" {DRIVE}/Movies
echo x >"{DRIVE}/TV Shows/Severance/S01E01.mkv"
for f in .plexmatch downloads.part a.nfo b.nfo c.nfo; do echo x >"{DRIVE}/$f"; done
verify shadowed --expect mounts.toml
oracle bare find {DRIVE} -mindepth 1 -maxdepth 1 -printf '%P\n'

# 5. The remedy, carried out while `check --wait` waits: once the verifier says it is waiting,
# the files are moved aside (nothing deleted) and the disk is mounted.
(
  for i in $(seq 1 600); do
    if grep -q 'waiting for {DRIVE}' waited.stderr 2>/dev/null; then break; fi
    sleep 0.1
  done
  mv -T {DRIVE} {DRIVE}.shadowed && mkdir {DRIVE} && mount {DRIVE}
) &
verify waited --expect wait.toml --wait 60s
wait $!
oracle moved_aside find {DRIVE}.shadowed -mindepth 1 -maxdepth 1 -printf '%P\n'

# 6. PlexStorage's disk is gone: unmounted, then detached (the kernel removes it, udev its links).
umount {STORAGE}
if [ "$BREAK" != keep_disk ]; then detached=$(virtio_detach {PLEX.uuid}); fi
verify absent --expect mounts.toml
verify absent_fstab
oracle lsblk_absent lsblk -J -o NAME,MAJ:MIN,UUID,LABEL,FSTYPE,PARTUUID,PARTLABEL,MOUNTPOINTS
"""


def flatten(devices):
    for d in devices:
        yield d
        yield from flatten(d.get("children") or [])


def lsblk_by_uuid(r, record, uuid):
    found = [d for d in flatten(r.json_out(record)["blockdevices"]) if d.get("uuid") == uuid]
    return found


def mounts_at(r, record, target):
    """findmnt's entries at `target`, bottom first (mount ids grow)."""
    fs = [f for f in r.json_out(record)["filesystems"] if f["target"] == target]
    return sorted(fs, key=lambda f: int(f["id"]))


def check_against_oracles(r, rep, path, disk, lsblk, findmnt):
    """The report's device and mount evidence for `path` (the `mounted` finding) against lsblk
    and findmnt run in the same state: name, device number, UUID, label, type, partition; mount
    id, source, type, device number, VFS and superblock options."""
    devs = lsblk_by_uuid(r, lsblk, disk.uuid)
    expect(len(devs) == 1, f"{lsblk}: expected one device with UUID {disk.uuid}, found {devs}")
    dev = devs[0]
    expect(dev["mountpoints"] == [path], f"{lsblk}: {dev['name']} is mounted at {dev['mountpoints']}, expected [{path}]")
    ev = rep.one("mounted", path, "pass")["evidence"]
    d = ev["device"]
    seen = (d["devnode"], f"{d['devnum']['major']}:{d['devnum']['minor']}", d.get("uuid"), d.get("label"), d.get("fstype"),
            d.get("partuuid"), d.get("partlabel"))
    # Only libudev knows the filesystem type of a device (the portable build has none).
    fstype = dev["fstype"] if r.verifier_reads_udev() else None
    want = ("/dev/" + dev["name"], dev["maj:min"], dev["uuid"], dev["label"], fstype, dev["partuuid"], dev["partlabel"])
    expect(seen == want, f"{path}: the report's device (node, maj:min, uuid, label, fstype, partuuid, partlabel) is "
           f"{seen}, lsblk says {want}")
    fms = mounts_at(r, findmnt, path)
    expect(len(fms) == 1, f"{findmnt}: expected one mount at {path}, found {fms}")
    fm, m = fms[0], ev["mount"]
    seen = (m["mount_id"], m["source"], m["fstype"], f"{m['major']}:{m['minor']}", m["mount_options"], m["super_options"])
    want = (int(fm["id"]), fm["source"], fm["fstype"], fm["maj:min"], fm["vfs-options"].split(","),
            fm["fs-options"].split(","))
    expect(seen == want, f"{path}: the report's mount (id, source, fstype, maj:min, vfs options, fs options) is {seen}, "
           f"findmnt says {want}")
    return ev


def check(r):
    # 1. Mounted: every mount check passes, with and without the expectations file.
    rep = r.report("mounted")
    rep.ok()
    for path in (STORAGE, DRIVE):
        for c in ("mount_declared", "mount_device", "mounted", "mount_source", "mount_fstype", "mount_options",
                  "mount_covered"):
            rep.one(c, path, "pass")
        rep.none("shadowed_data", path)
    check_against_oracles(r, rep, STORAGE, PLEX, "lsblk_mounted", "findmnt_mounted")
    ev = check_against_oracles(r, rep, DRIVE, DRIVE_DISK, "lsblk_mounted", "findmnt_mounted")
    expect("noatime" in ev["mount"]["mount_options"], f"{DRIVE}: fstab says noatime, the mount has {ev['mount']}")
    fstab_only = r.report("mounted_fstab")
    fstab_only.ok()
    fstab_only.one("fstab", "/etc/fstab", "pass")
    for path in (STORAGE, DRIVE):
        fstab_only.one("mounted", path, "pass")
        fstab_only.one("mount_source", path, "pass")
    # The oracle tests, in this guest: our mountinfo against findmnt -k, our udev reads against lsblk.
    out = r.out("mount_oracle")
    expect(r.rc("mount_oracle") == 0, f"the mount_oracle tests failed in the guest:\n{out[-3000:]}\n{r.err('mount_oracle')[-2000:]}")
    expect("udev database: true" in out, f"mount_oracle ran without a udev database in the guest:\n{out[-2000:]}")
    expect("2 passed" in out, f"mount_oracle: expected the 2 live tests to run:\n{out[-2000:]}")

    # 2. Read-only where rw is expected.
    rep = r.report("readonly")
    rep.exit_code(1)
    f = rep.one("mount_options", STORAGE, "fail", remedy_kind="command",
                remedy_contains=[f"mount -o remount,rw {STORAGE}"], message_contains=["mounted ro, expected rw"])
    expect(len(rep.select(status="fail")) == 1, f"readonly: expected only mount_options to fail:\n{rep.describe()}")
    [fm] = mounts_at(r, "findmnt_ro", STORAGE) or [None]
    expect(fm is not None and fm["vfs-options"].split(",")[0] == "ro" and fm["fs-options"].split(",")[0] == "ro",
           f"findmnt: {STORAGE} is not ro: {fm}")
    seen = (f["evidence"]["mount_options"], f["evidence"]["super_options"])
    want = (fm["vfs-options"].split(","), fm["fs-options"].split(","))
    expect(seen == want, f"readonly: the report's (mount, super) options are {seen}, findmnt says {want}")

    # 3. A tmpfs on top of the disk.
    rep = r.report("covered")
    rep.exit_code(1)
    under, top = (mounts_at(r, "findmnt_covered", STORAGE) + [None, None])[:2]
    expect(under is not None and top is not None and top["fstype"] == "tmpfs",
           f"findmnt: expected the disk and a tmpfs on top of it at {STORAGE}: {mounts_at(r, 'findmnt_covered', STORAGE)}")
    f = rep.one("mount_covered", STORAGE, "fail", remedy_kind="command", remedy_contains=[f"umount {STORAGE}"],
                message_contains=[f"{under['source']}", "scratch (tmpfs, rw) was mounted on top of it"])
    ev = f["evidence"]
    seen = ([(m["mount_id"], m["source"], m["fstype"]) for m in ev["hidden"]],
            (ev["on_top"]["mount_id"], ev["on_top"]["source"], ev["on_top"]["fstype"]))
    want = ([(int(under["id"]), under["source"], under["fstype"])], (int(top["id"]), top["source"], top["fstype"]))
    expect(seen == want, f"covered: the report's (hidden, on top) mounts are {seen}, findmnt says {want}")
    rep.one("mount_source", STORAGE, "fail")
    rep.one("mount_fstype", STORAGE, "fail", message_contains=["is tmpfs, expected ext4"])
    rep.none("shadowed_data", DRIVE)

    # 4. Not mounted, files in the bare directory.
    rep = r.report("shadowed")
    rep.exit_code(1)
    rep.one("mounted", DRIVE, "fail")
    f = rep.one("shadowed_data", DRIVE, "fail", remedy_kind="manual",
                remedy_contains=[f"mv -T {DRIVE} {DRIVE}.shadowed && mkdir {DRIVE}", "RequiresMountsFor"])
    bare = sorted(r.out("bare").splitlines(), key=lambda n: n.encode())
    expect(sorted(SHADOWED) == sorted(bare), f"find in the bare directory: {bare}, expected {SHADOWED}")
    ev = f["evidence"]
    seen = (ev["entries"], ev["entries_is_lower_bound"], ev["names"])
    want = (len(bare), False, bare[:5])
    expect(seen == want, f"shadowed_data evidence (entries, lower bound, names) is {seen}, find says {want}")
    rep.one("mounted", STORAGE, "pass")

    # 5. --wait while the remedy is carried out.
    rep = r.report("waited")
    rep.ok()
    w = rep.one("mount_wait", "mount readiness", "pass")
    expect(w["evidence"]["rechecks"] >= 1, f"mount_wait: {w['evidence']}: the disk was mounted before the first check")
    rep.one("mounted", DRIVE, "pass")
    rep.none("shadowed_data", DRIVE)
    moved = sorted(r.out("moved_aside").splitlines())
    expect(moved == sorted(SHADOWED), f"after the remedy {DRIVE}.shadowed holds {moved}, expected {SHADOWED}")

    # 6. The disk is gone.
    # The devices lsblk still shows with a UUID are exactly the ones the report says it knows.
    present = sorted(d["uuid"] for d in flatten(r.json_out("lsblk_absent")["blockdevices"]) if d.get("uuid"))
    for name in ("absent", "absent_fstab"):
        rep = r.report(name)
        rep.exit_code(1)
        f = rep.one("mount_device", STORAGE, "fail", remedy_kind="manual",
                    message_contains=[f"no block device has UUID={PLEX.uuid}"])
        known = sorted(k.split("UUID=", 1)[1].split(",")[0] for k in f["evidence"]["known_devices"])
        expect(known == present, f"{name}: the report knows devices with UUIDs {known}, lsblk shows {present}")
        rep.one("mounted", STORAGE, "fail", message_contains=["is not mounted", "is not present"])
        rep.one("shadowed_data", STORAGE, "pass")
        rep.one("mounted", DRIVE, "pass")
        expect(len(rep.select(status="fail")) == 2, f"{name}: expected only the two failures:\n{rep.describe()}")
    expect(PLEX.uuid not in present, f"lsblk still shows UUID {PLEX.uuid} after the detach: {present}")


def files(brk):
    uuid = WRONG_UUID if brk == "wrong_uuid" else PLEX.uuid
    return {
        "fstab": FSTAB,
        "mounts.toml": "version = 1\n\n" + EXPECT_STORAGE.format(uuid=uuid) + "\n" + EXPECT_DRIVE,
        # Step 5 waits only for PlexDrive (fstab still declares PlexStorage), so that a break of
        # PlexStorage's expectation does not keep it waiting until the deadline.
        "wait.toml": "version = 1\n\n" + EXPECT_DRIVE,
    }


SCENARIO = Scenario(
    name="mounts",
    title="fstab by UUID + [[mounts]]: mounted, read-only, covered, shadowed data, --wait, disk detached",
    order=90,  # writes /etc/fstab (restored at its end) and detaches a disk: after everything else
    overlays=("/etc", "/mnt"),
    disks=(PLEX, DRIVE_DISK),
    files=files,
    cargo_tests=(("homelab-probe", "mount_oracle"),),
    guest=GUEST,
    check=check,
    breaks={
        "wrong_uuid": Break("the expectations want another UUID at /mnt/PlexStorage than the disk mounted there"),
        "keep_disk": Break("step 6 does not detach PlexStorage's disk: it is only unmounted"),
    },
    controls=(
        Control("never remounted ro: the mounted report stands in for the read-only one",
                {"readonly": "mounted", "findmnt_ro": "findmnt_mounted"}),
        Control("nothing on top: the mounted report stands in for the covered one", {"covered": "mounted"}),
        Control("nothing written into the bare directory: the waited report stands in for the shadowed one",
                {"shadowed": "waited"}),
        Control("the disk still attached: the read-only report stands in for the absent one", {"absent": "readonly"}),
    ),
)
