"""`capture` on a real kernel with real udev, then `plan` and `check` on the same machine.

The guest is made into a small old host: the runbook's user palav (1000, in render and docker),
an /etc/fstab that names one data disk by PARTUUID and the other by a label with a space, both
mounted by mount(8), and a compose stack on the media disk with PUID=1000, PGID = render's gid
and /dev/dri. Then:

1. `homelab-verify capture --data-root ... --compose-dir ... -o snapshot.json`: the snapshot's
   block devices equal `lsblk -J -a` in the same guest device by device (name, path, UUID,
   label, fstype, PARTUUID, mount points; no fstype from a verifier built without the `udev`
   feature, such as the portable release binary), its mounts of the data disks equal `findmnt -k`, its
   render and card nodes have the owner, group, mode and device number `stat` shows, its GPU is
   the virtio GPU sysfs shows (vendor 0x1af4, driver virtio_gpu, the PCI function), the user
   and groups are what `getent` says, the stack has the PUID/PGID and /dev/dri of the file, and
   and the owners of the data root (the media disk's top directory, mkfs's root-owned
   `lost+found` left out) are what `find` counts;
2. `homelab-verify plan` on that snapshot: the `[[mounts]]` name the disks by the UUIDs lsblk
   shows (the PARTUUID= and LABEL= fstab specs resolved through the captured devices), and
   `hardware-parity.nix` parses with `nix-instantiate --parse` (on the host);
3. `homelab-verify check --expect plan/homelab-probe.toml` in the same guest passes: the guest
   IS the old host, so what the plan expects of the new one holds on it;
4. the render node's group changed after the capture (`chgrp video`, undone at once): the same
   check fails on `render_group` (kept as a record for the negative controls).
"""

import json
import shutil
import subprocess
import tomllib

from harness import VIRTIO_GPU, Break, Control, Disk, Entry, Partition, Scenario, ScenarioFailure, expect

MEDIA = "/mnt/Media"
BACKUP = "/mnt/Backup"
RENDER = "/dev/dri/renderD128"
CARD = "/dev/dri/card0"
UID = 1000  # palav, and palav's group

COMPOSE = """\
# The runbook's Plex stack: PUID/PGID and the render node; PGID comes from .env (written in the
# guest: it is render's gid there).
services:
  plex:
    image: lscr.io/linuxserver/plex:latest
    environment:
      - PUID=1000
      - PGID=${PGID}
      - PLEX_CLAIM=claim-not-in-the-snapshot
    devices:
      - /dev/dri:/dev/dri
    volumes:
      - ./config:/config
      - /mnt/Media/Movies:/movies
      - /mnt/Backup:/backup:ro
"""

# The media disk, in a GPT partition (fstab names it by PARTUUID): the stack and the data root.
MEDIA_DISK = Disk(
    name="capmedia",
    uuid="a5c0e1d2-4b3f-4e6a-8d9c-2f1e0b7a6c51",
    label="CapMedia",
    entries=(
        Entry("docker", UID, UID, 0o755, kind="dir"),
        Entry("docker/plex", UID, UID, 0o755, kind="dir"),
        Entry("docker/plex/compose.yaml", UID, UID, 0o644, content=COMPOSE),
        Entry("docker/plex/config", UID, UID, 0o755, kind="dir"),
        Entry("Movies", UID, UID, 0o2775, kind="dir"),
        Entry("Movies/Heat (1995).mkv", UID, UID, 0o664, content="heat\n"),
        Entry("Movies/Alien (1979)", UID, UID, 0o2775, kind="dir"),
        Entry("Movies/Alien (1979)/Alien (1979).mkv", UID, UID, 0o664, content="alien\n"),
        Entry("Movies/Alien (1979)/poster.jpg", UID, UID, 0o664, content="jpg\n"),
    ),
    partition=Partition(name="media data", uuid="c0ffee00-1d2e-4f3a-9b8c-7d6e5f4a3b2c",
                        table_uuid="5e1f0000-0000-4000-8000-0000000000c1"),
)
# The backup disk, whole-disk ext4 with a label that has a space (fstab: LABEL=Cap\040Backup).
BACKUP_DISK = Disk(
    name="capbackup",
    uuid="b7d2f3a4-5c6e-4f70-8192-a3b4c5d6e7f8",
    label="Cap Backup",
    entries=(Entry("README", 0, 0, 0o444, content="backups\n"),),
)
CHANGED_UUID = "b7d2f3a4-5c6e-4f70-8192-000000000000"  # the uuid_changed break

FSTAB = f"""\
# The old host's data disks (written by the vm-fixtures capture scenario).
PARTUUID={MEDIA_DISK.partition.uuid} {MEDIA} ext4 defaults,nofail 0 2
LABEL=Cap\\040Backup {BACKUP} ext4 noatime,nofail 0 2
"""

LSBLK = "lsblk -J -a -o NAME,PATH,UUID,LABEL,FSTYPE,PARTUUID,PARTLABEL,MOUNTPOINTS"
FINDMNT = "findmnt -J -k --list -o TARGET,SOURCE,FSTYPE,VFS-OPTIONS,FS-OPTIONS"
# name, uid, gid, mode (octal), major:minor (hex), type
STAT_DRI = f"stat -c '%n %u %g %a %t:%T %F' {CARD} {RENDER}"

GUEST = rf"""
ETC_SAVE=/run/vm-fixtures/capture-etc   # the guest's tmpfs: /etc/shadow stays out of the share
restore_etc=
regroup=
cleanup() {{
  # Leave the VM as it was for the scenarios after this one in the same boot.
  set +e
  if [ -n "$regroup" ]; then chgrp "$regroup" {RENDER}; fi
  local d
  for d in {MEDIA} {BACKUP}; do
    mountpoint -q $d && umount $d
    if [ -d $d ] && ! mountpoint -q $d; then rmdir $d; fi
  done
  if [ -n "$restore_etc" ]; then
    for f in $(ls $ETC_SAVE); do cat $ETC_SAVE/$f >/etc/$f; done
  fi
}}
trap cleanup EXIT
mkdir -p $ETC_SAVE
for f in passwd group shadow gshadow subuid subgid fstab; do
  if [ -e /etc/$f ]; then cp -p /etc/$f $ETC_SAVE/; fi
done
restore_etc=1
oracle hv_version "$HV" --version

# The old host's people: palav (1000) alone, in render and docker, as in the runbook. The
# machine's own accounts with uid or gid 1000..59999 are left out of the guest's /etc (a
# copy-on-write overlay, restored at the end), so the snapshot does not depend on who has an
# account on the machine that runs the test.
# (useradd is not used: it fails to write /etc/shadow in the guest, which capture does not read.)
awk -F: '!($3 >= 1000 && $3 <= 59999)' $ETC_SAVE/passwd >/etc/passwd
echo 'palav:x:{UID}:{UID}:Palav:/home/palav:/bin/bash' >>/etc/passwd
awk -F: '!($3 >= 1000 && $3 <= 59999)' $ETC_SAVE/group >/etc/group
echo 'palav:x:{UID}:' >>/etc/group
getent group docker >/dev/null || groupadd --system docker
gpasswd -a palav render
gpasswd -a palav docker
render_gid=$(getent group render | cut -d: -f3)

# Its data disks, mounted by mount(8) from fstab (PARTUUID= and LABEL= specs).
cat fstab >/etc/fstab
mkdir -p {MEDIA} {BACKUP}
udev_settle
mount {MEDIA}
mount {BACKUP}
printf 'PGID=%s\n' "$render_gid" >{MEDIA}/docker/plex/.env
chown {UID}:{UID} {MEDIA}/docker/plex/.env

# 1. Capture, and the oracles in the same state.
# The disk's top directory is palav's, as on the runbook's host; lost+found stays mkfs's (root).
chown {UID}:{UID} {MEDIA}
oracle lost_found stat -c '%u %g %a %F' {MEDIA}/lost+found
oracle capture "$HV" capture -o "$PWD/snapshot.json" --data-root {MEDIA} --compose-dir {MEDIA}/docker
# What Docker answers in the guest, as capture asked it (the machine's docker command, if it
# has one, with no daemon in the guest): the oracle for the snapshot's gaps. 127: no command.
oracle docker_ps docker ps -aq --no-trunc
if [ "$BREAK" = uuid_changed ]; then
  # The backup disk gets a new filesystem UUID after the capture (tune2fs -U, as a reformat or
  # a restore onto another disk would): the snapshot no longer describes this machine.
  dev=$(readlink -f /dev/disk/by-uuid/{BACKUP_DISK.uuid})
  umount {BACKUP}
  e2fsck -f -p "$dev"
  tune2fs -U {CHANGED_UUID} "$dev"
  udevadm trigger --action=change "$dev"
  udev_settle
  mount {BACKUP}
fi
oracle lsblk {LSBLK}
oracle findmnt {FINDMNT}
oracle stat_dri {STAT_DRI}
oracle gpu_sysfs gpu_sysfs {RENDER}
oracle passwd getent passwd palav
oracle groups getent group render docker palav video
oracle id_palav id -G palav
oracle owners find {MEDIA} -xdev -path {MEDIA}/lost+found -prune -o -printf '%U:%G\n'

# 2. Plan from the snapshot; 3. check its expectations on the same machine.
oracle plan "$HV" plan "$PWD/snapshot.json" --out "$PWD/plan"
verify planned --expect plan/homelab-probe.toml

# 4. The render node's group changed after the capture (put back at once).
regroup=render
chgrp video {RENDER}
oracle stat_dri_chgrp {STAT_DRI}
verify planned_chgrp --expect plan/homelab-probe.toml
chgrp render {RENDER}
regroup=
"""

# What sysfs says about the GPU behind a DRM node: the driver bound to its device, the driver
# bound to the virtio device under it (a virtio GPU's PCI function is bound to virtio-pci, the GPU
# driver virtio_gpu to its virtio<N> child), and the PCI function above it (the first directory up
# the device path that has a PCI class).
GPU_SYSFS = r"""
gpu_sysfs() {
  local d
  d=$(readlink -f "/sys/class/drm/$(basename "$1")/device")
  echo "pci_driver $(basename "$(readlink -f "$d/driver")")"
  local c
  for c in "$d"/virtio*; do
    if [ -e "$c/driver" ]; then echo "virtio_driver $(basename "$(readlink -f "$c/driver")")"; fi
  done
  while [ "$d" != / ] && [ ! -e "$d/class" ]; do d=$(dirname "$d"); done
  echo "pci $(basename "$d") $(cat "$d/vendor") $(cat "$d/device") $(cat "$d/class")"
}
"""


def flatten(devices):
    for d in devices:
        yield d
        yield from flatten(d.get("children") or [])


def lsblk_devices(r):
    """lsblk's devices by name: (path, uuid, label, fstype, partuuid, sorted mount points)."""
    out = {}
    for d in flatten(r.json_out("lsblk")["blockdevices"]):
        mps = sorted(m for m in d.get("mountpoints") or [] if m)
        out[d["name"]] = (d["path"], d["uuid"], d["label"], d["fstype"], d["partuuid"], mps)
    return out


def snapshot_devices(snap):
    out = {}
    for d in snap["block_devices"]:
        out[d["name"]] = (d["path"], d.get("uuid"), d.get("label"), d.get("fstype"), d.get("partuuid"),
                          sorted(d.get("mountpoints") or []))
    return out


def stat_lines(r, record):
    """`stat -c '%n %u %g %a %t:%T %F'` lines by path: (uid, gid, mode, major, minor, kind)."""
    out = {}
    for line in r.out(record).splitlines():
        path, uid, gid, mode, rdev, kind = line.split(" ", 5)
        major, minor = (int(x, 16) for x in rdev.split(":"))
        out[path] = (int(uid), int(gid), int(mode, 8), major, minor,
                     "char" if kind == "character special file" else kind)
    return out


def load_snapshot(r):
    expect(r.rc("capture") == 0, f"capture exited {r.rc('capture')}:\n{r.err('capture')}")
    text = r.file("snapshot.json")
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise ScenarioFailure(f"snapshot.json is not JSON ({e}):\n{text[:2000]}") from None


def check_snapshot(r, snap):
    # Block devices: exactly lsblk's, device by device.
    seen, want = snapshot_devices(snap), lsblk_devices(r)
    if not r.verifier_reads_udev():
        # Only libudev knows the filesystem type (the portable build): the rest from the links.
        want = {n: (p, u, l, None, pu, m) for n, (p, u, l, _, pu, m) in want.items()}
    diff = sorted(set(seen) ^ set(want))
    expect(not diff, f"the snapshot lists devices {sorted(seen)}, lsblk -a lists {sorted(want)}")
    wrong = {n: (seen[n], want[n]) for n in want if seen[n] != want[n]}
    expect(not wrong, "the snapshot's block devices differ from lsblk's (path, uuid, label, fstype, partuuid, "
           "mount points), snapshot then lsblk:\n" + "\n".join(f"  {n}: {s}\n  {' ' * len(n)}  {w}"
                                                                 for n, (s, w) in wrong.items()))
    for disk, path in ((MEDIA_DISK, MEDIA), (BACKUP_DISK, BACKUP)):
        found = [n for n, d in seen.items() if d[1] == disk.uuid]
        expect(len(found) == 1 and seen[found[0]][2] == disk.label and seen[found[0]][5] == [path],
               f"the snapshot has no single device with UUID {disk.uuid}, label {disk.label!r}, mounted at {path}: "
               f"{[(n, d[1], d[2], d[5]) for n, d in seen.items()]}")

    # The data disks' mounts: as findmnt shows them.
    mounts = {m["target"]: m for m in snap["mounts"]}
    for fm in r.json_out("findmnt")["filesystems"]:
        if fm["target"] not in (MEDIA, BACKUP):
            continue
        m = mounts.get(fm["target"])
        want = (fm["source"], fm["fstype"], fm["vfs-options"].split(",") + fm["fs-options"].split(","))
        got = m and (m["source"], m["fstype"], m["options"])
        expect(got == want, f"{fm['target']}: the snapshot's mount (source, fstype, options) is {got}, findmnt says {want}")

    # The DRM nodes, as the kernel and udev made them.
    stats = stat_lines(r, "stat_dri")
    nodes = {n["path"]: n for n in snap["drm_nodes"]}
    expect(sorted(nodes) == sorted(stats), f"the snapshot's DRM nodes are {sorted(nodes)}, stat saw {sorted(stats)}")
    groups = {line.split(":")[0]: int(line.split(":")[2]) for line in r.out("groups").splitlines()}
    for path, want in stats.items():
        st = nodes[path]["stat"]
        got = (st["uid"], st["gid"], int(st["mode"], 8), st["rdev"]["major"], st["rdev"]["minor"], st["kind"])
        expect(got == want, f"{path}: the snapshot says (uid, gid, mode, major, minor, kind) = {got}, stat says {want}")
    expect(nodes[RENDER]["group_name"] == "render" and nodes[RENDER]["stat"]["gid"] == groups["render"],
           f"{RENDER}: {nodes[RENDER]}, expected group render ({groups['render']})")

    # The GPU: the virtio GPU sysfs shows.
    gpu = dict(line.split(" ", 1) for line in r.out("gpu_sysfs").splitlines())
    address, vendor, device, pci_class = gpu["pci"].split()
    driver = gpu.get("virtio_driver", gpu["pci_driver"])
    want = [{"pci": {"address": address, "vendor": vendor, "device": device}, "pci_class": pci_class,
             "vendor": "virtio", "kernel_driver": driver, "render_node": RENDER, "card_node": CARD}]
    got = [{k: g.get(k) for k in want[0]} for g in snap["gpus"]]
    expect(got == want, f"the snapshot's GPUs are {got}, sysfs says {want}")
    expect((gpu["pci_driver"], driver, vendor) == ("virtio-pci", "virtio_gpu", "0x1af4"),
           f"sysfs: {gpu}, expected virtio_gpu on a virtio-pci function of vendor 0x1af4")
    for path in (RENDER, CARD):
        n = nodes[path]
        expect((n["kernel_driver"], (n["pci"] or {}).get("vendor")) == ("virtio_gpu", "0x1af4"),
               f"{path}: driver {n['kernel_driver']}, pci {n['pci']}, expected virtio_gpu on 0x1af4")

    # palav and the groups that matter.
    name, _, uid, gid, _, home, shell = r.out("passwd").strip().split(":")
    ids = {int(g) for g in r.out("id_palav").split()}
    users = snap["identities"]["users"]
    expect([(u["name"], u["uid"], u["gid"], u["home"], u["shell"]) for u in users] ==
           [(name, int(uid), int(gid), home, shell)],
           f"the snapshot's human users are {users}, getent says {r.out('passwd').strip()}")
    got = {groups[g] for g in users[0]["groups"]} | {users[0]["gid"]}
    expect(got == ids, f"palav's groups in the snapshot are {users[0]['groups']} (gids {sorted(got)}), id -G says {sorted(ids)}")
    captured = {g["name"]: g["gid"] for g in snap["identities"]["groups"]}
    for g in ("render", "docker", "palav"):
        expect(captured.get(g) == groups[g], f"group {g}: the snapshot says {captured.get(g)}, getent says {groups[g]}")

    # The stack on the media disk: PUID, PGID (render's gid, from .env) and /dev/dri; no secret.
    [stack] = snap["compose"]["stacks"] or [None]
    expect(stack is not None and stack["owner"] == "palav" and stack["dir"] == f"{MEDIA}/docker/plex",
           f"the snapshot's stack: {stack}")
    [svc] = stack["services"]
    expect(svc["environment"] == {"PUID": str(UID), "PGID": str(groups["render"])},
           f"plex's environment in the snapshot is {svc['environment']}, expected PUID {UID}, PGID {groups['render']}")
    expect([(d["source"], d["target"]) for d in svc["devices"]] == [("/dev/dri", "/dev/dri")],
           f"plex's devices in the snapshot: {svc['devices']}")

    # The data root: the owners find counts.
    [root] = snap["data_roots"]
    # mkfs.ext4's lost+found, root's, left out of the walk: else no ext4 disk has one owner.
    expect(r.out("lost_found").split() == ["0", "0", "700", "directory"],
           f"{MEDIA}/lost+found in the guest: {r.out('lost_found')!r}, expected mkfs's: root's, mode 700")
    expect(root["path"] == MEDIA and root.get("exclude") == ["/lost+found"],
           f"the snapshot's data root: {root['path']}, exclude {root.get('exclude')}; expected {MEDIA}, ['/lost+found']")
    counts = {}
    for line in r.out("owners").splitlines():
        counts[line] = counts.get(line, 0) + 1
    o = root["ownership"]
    got = {f"{c['uid']}:{c['gid']}": c["entries"] for c in o["by_owner"]}
    expect((o["entries"], o["complete"], got) == (sum(counts.values()), True, counts),
           f"{root['path']}: the snapshot counts {o}, find counts {counts}")
    # No gaps, except the one Docker's own answer calls for: a docker command without a daemon
    # (the machine that runs the VM may have one; the guest starts none) is a gap, and its
    # reason carries docker's first line of stderr.
    gaps = snap.get("gaps") or []
    docker_rc = r.rc("docker_ps")
    if docker_rc in (0, 127):
        expect(not gaps, f"the snapshot has gaps: {gaps} (docker ps -aq in the guest: exit {docker_rc})")
    else:
        first = next((line.strip() for line in r.err("docker_ps").splitlines() if line.strip()), "no message")
        expect(len(gaps) == 1 and gaps[0]["section"] == "compose"
               and gaps[0]["reason"].startswith("Docker did not answer") and first in gaps[0]["reason"],
               f"docker ps -aq in the guest exited {docker_rc} ({first!r}): expected exactly that gap, "
               f"the snapshot has {gaps}")
    return groups


def check_plan(r, groups):
    expect(r.rc("plan") == 0, f"plan exited {r.rc('plan')}:\n{r.err('plan')}")
    toml = r.file("plan/homelab-probe.toml")
    # The fstab specs PARTUUID=... and LABEL=Cap\040Backup, resolved through the captured
    # devices to the filesystem UUIDs lsblk shows.
    for disk in (MEDIA_DISK, BACKUP_DISK):
        expect(f'uuid = "{disk.uuid}"' in toml, f"plan/homelab-probe.toml has no [[mounts]] with uuid {disk.uuid}:\n{toml}")
    for line in (f"render = {groups['render']}", f"gid = {groups['render']}"):
        expect(line in toml, f"plan/homelab-probe.toml has no line {line!r}:\n{toml}")
    drift = tomllib.loads(toml).get("drift")
    want = [{"root": MEDIA, "uid": UID, "gid": UID, "exclude": ["/lost+found"]}]
    expect(drift == want, f"plan/homelab-probe.toml's [[drift]] is {drift}, expected {want}")
    nix = r.dir / "plan" / "hardware-parity.nix"
    tool = shutil.which("nix-instantiate")
    expect(tool is not None, "nix-instantiate not found (package nix-bin; scripts/setup-debian --test installs it)")
    p = subprocess.run([tool, "--option", "build-users-group", "", "--parse", str(nix)],
                       capture_output=True, text=True, check=False)
    expect(p.returncode == 0, f"nix-instantiate --parse {nix} failed ({p.returncode}):\n{p.stderr}")
    for disk in (MEDIA_DISK, BACKUP_DISK):
        expect(f'device = "/dev/disk/by-uuid/{disk.uuid}";' in r.file("plan/hardware-parity.nix"),
               f"hardware-parity.nix does not mount /dev/disk/by-uuid/{disk.uuid}")


def check(r):
    snap = load_snapshot(r)
    groups = check_snapshot(r, snap)
    check_plan(r, groups)

    # 3. The generated expectations hold on the machine they were captured from.
    rep = r.report("planned")
    rep.ok()
    rep.one("group_gid", "group render", "pass")
    rep.one("user_groups", "user palav", "pass")
    rep.one("render_group", RENDER, "pass")
    rep.one("render_access", RENDER, "pass", message_contains=["plex/plex", "via group bits"])
    for path, disk in ((MEDIA, MEDIA_DISK), (BACKUP, BACKUP_DISK)):
        rep.one("mount_declared", path, "pass")
        rep.one("mount_device", path, "pass", message_contains=[disk.uuid])
        rep.one("mounted", path, "pass")
    rep.one("drift_owner", MEDIA, "pass")

    # 4. The render node's group changed: the same expectations fail on it.
    chgrp = stat_lines(r, "stat_dri_chgrp")[RENDER]
    expect(chgrp[1] == groups["video"] if "video" in groups else chgrp[1] != groups["render"],
           f"after chgrp video: {RENDER} has gid {chgrp[1]}")
    rep = r.report("planned_chgrp")
    rep.exit_code(1)
    rep.one("render_group", RENDER, "fail")


SCENARIO = Scenario(
    name="capture",
    title="capture in the VM equals lsblk, stat and sysfs; plan; its expectations pass on the same machine",
    order=30,  # reads the render node as udev made it (before render_node); restores /etc, unmounts
    devices=(VIRTIO_GPU,),
    overlays=("/etc", "/mnt"),
    disks=(MEDIA_DISK, BACKUP_DISK),
    files={"fstab": FSTAB},
    guest=GPU_SYSFS + GUEST,
    check=check,
    breaks={
        "uuid_changed": Break("the backup disk gets a new filesystem UUID (tune2fs -U) after the capture"),
    },
    controls=(
        Control("the render node's group changed after the capture: the stat after chgrp video stands in",
                {"stat_dri": "stat_dri_chgrp"}),
        Control("the render node's group changed: the check after chgrp video stands in for the planned one",
                {"planned": "planned_chgrp"}),
    ),
)
