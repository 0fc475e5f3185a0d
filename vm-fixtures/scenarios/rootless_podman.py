"""A real rootless Podman (Debian 12's podman 4.3 with crun) as the oracle of plan's rootless
decision. A user of the guest (podtest, in the render group, with /etc/subuid and /etc/subgid
ranges; the guest's /etc is a copy-on-write overlay, put back at the end) runs a busybox image
made offline with `podman import`, with `--device /dev/dri/renderD128` and the PUID/PGID a
linuxserver image would drop to (1000 and render's gid, ids of the user's namespace), once
without and once with `--group-add keep-groups`. Opening the node inside the container is the
oracle. The same two containers as quadlet units in the user's ~/.config/containers/systemd are
captured and planned: each unit is a rootless [[render.access]] entry, and `check` decides each
as open(2) did: with keep-groups it passes (podtest's host render), without it fails and its fix
names keep-groups."""

from harness import VIRTIO_GPU, Break, Control, Scenario, expect

RENDER = "/dev/dri/renderD128"
UID = 1500

GUEST = rf"""
ETC_SAVE=/run/vm-fixtures/podman-etc
P=/run/vm-fixtures/podman
H=$P/home
X=$P/xdg
restore_etc=
cleanup() {{
  set +e
  # podman's rootless pause process (it holds podtest's namespace), by its pid file.
  if [ -s $X/libpod/tmp/pause.pid ]; then kill "$(cat $X/libpod/tmp/pause.pid)"; fi
  if [ -n "$restore_etc" ]; then
    for f in $(ls $ETC_SAVE); do cat $ETC_SAVE/$f >/etc/$f; done
  fi
}}
trap cleanup EXIT
rm -rf $ETC_SAVE $P
mkdir -p $ETC_SAVE
for f in passwd group subuid subgid; do
  if [ -e /etc/$f ]; then cp -p /etc/$f $ETC_SAVE/; fi
done
restore_etc=1
R=$(getent group render | cut -d: -f3)
echo "$R" >render_gid.txt

# podtest: uid {UID}, home on the guest's tmpfs, in render, with 65536 subordinate ids each.
# (useradd fails to write /etc/shadow in the guest; podman does not need it.)
echo "podtest:x:{UID}:{UID}:podtest:$H:/bin/sh" >>/etc/passwd
echo "podtest:x:{UID}:" >>/etc/group
if [ "$BREAK" != no_render ]; then gpasswd -a podtest render; fi
echo "podtest:200000:65536" >>/etc/subuid
echo "podtest:200000:65536" >>/etc/subgid
mkdir -p $H/rootfs/bin $H/tmp $X $H/.config/containers/systemd
cp /bin/busybox $H/rootfs/bin/busybox
# Debian's busybox package is dynamic, busybox-static is not: take its libraries along if any.
for lib in $(ldd /bin/busybox 2>/dev/null | grep -o '/[^ ]*' || true); do
  mkdir -p "$H/rootfs$(dirname "$lib")"
  cp -L "$lib" "$H/rootfs$lib"
done
ln -s busybox $H/rootfs/bin/sh
tar -C $H/rootfs -cf $H/bb.tar .
chown -R {UID}:{UID} $P
chmod 0700 $X

as_podtest() {{
  # In podtest's home: the scenario's directory (the share) is not podtest's to enter.
  (cd $H && setpriv --reuid={UID} --regid={UID} --init-groups -- env -i HOME=$H XDG_RUNTIME_DIR=$X TMPDIR=$H/tmp \
    PATH=/usr/sbin:/usr/bin:/sbin:/bin "$@")
}}
POD="podman --root $H/storage --runroot $X/run --storage-driver vfs --cgroup-manager cgroupfs --events-backend file --runtime crun"
oracle podtest_id as_podtest id
oracle podman_version as_podtest $POD version
oracle podman_import as_podtest $POD import $H/bb.tar localhost/bb
open_node='id; stat -c "%u %g %a" /dev/dri/renderD128; exec 3<>/dev/dri/renderD128 && echo opened'
RUN="$POD run --rm --network none --cgroups disabled --log-driver k8s-file --user 1000:$R --device /dev/dri/renderD128 localhost/bb"
oracle kernel_without as_podtest $RUN sh -c "$open_node"
KEEP="--group-add keep-groups"
if [ "$BREAK" = no_keep_groups ]; then KEEP=; fi
oracle kernel_keep as_podtest $POD run --rm --network none --cgroups disabled --log-driver k8s-file $KEEP --user 1000:$R --device /dev/dri/renderD128 localhost/bb sh -c "$open_node"

# The same two containers as quadlet units of podtest's.
unit() {{
  printf '[Container]\nImage=localhost/bb\nUser=1000\nGroup=%s\nAddDevice=/dev/dri/renderD128\n%b' "$R" "$2" >$H/.config/containers/systemd/$1.container
}}
unit plex-keep 'GroupAdd=keep-groups\n'
unit plex-plain ''
chown -R {UID}:{UID} $H/.config
oracle capture "$HV" capture -o "$PWD/snapshot.json" --force --compose-dir /nonexistent
oracle plan "$HV" plan "$PWD/snapshot.json" --out "$PWD/plan"
verify planned --expect plan/homelab-probe.toml
"""


def check(r):
    gid = int((r.dir / "render_gid.txt").read_text().strip())
    expect(r.rc("podman_import") == 0, f"podman import failed: {r.err('podman_import')[-1500:]}")
    # Inside, PGID is render's number, but a gid of podtest's namespace: the node shows as
    # nogroup, and only the kept host groups (shown as 65534 too) reach it.
    expect(r.out("kernel_without").startswith(f"uid=1000 gid={gid} groups={gid}\n65534 65534 660"),
           f"rootless without keep-groups: the container's id and node: {r.out('kernel_without')!r}")
    # The kernel: without keep-groups the container cannot open the node, with it it can.
    expect(r.rc("kernel_without") != 0 and "Permission denied" in r.out("kernel_without") + r.err("kernel_without"),
           f"rootless without keep-groups: rc {r.rc('kernel_without')}, {r.out('kernel_without')!r} {r.err('kernel_without')[-1500:]!r}")
    expect(r.rc("kernel_keep") == 0 and "opened" in r.out("kernel_keep"),
           f"rootless with keep-groups: rc {r.rc('kernel_keep')}, {r.out('kernel_keep')!r} {r.err('kernel_keep')[-1500:]!r}")
    # The plan: both units are [[render.access]] entries in podtest's namespace (uid 1000, gid
    # render's number there), marked rootless, one with keep-groups; plex-plain also warned.
    expect(r.rc("plan") == 0, f"plan exited {r.rc('plan')}: {r.err('plan')}")
    toml = r.file("plan/homelab-probe.toml")
    for unit, keep in (("plex-keep", "\nkeep_groups = true"), ("plex-plain", "")):
        entry = f'name = "quadlet-podtest/{unit}"\nuid = 1000\ngid = {gid}\nrootless = "podtest"{keep}\n\n'
        expect(entry in toml + "\n", f"{unit}'s access entry is not {entry!r}:\n{toml}")
    expect("quadlet-podtest/plex-plain: runs rootless without keep-groups" in r.err("plan"),
           f"plan does not warn about plex-plain:\n{r.err('plan')}")
    # Group=<render's number> in a rootless unit is a gid of podtest's namespace: no reason for
    # a host group to keep its gid.
    kept = [l for l in r.file("plan/MIGRATION.md").splitlines() if "keeps gid" in l and "quadlet-podtest" in l]
    expect(not kept, f"plan counts a rootless unit's Group= as a host gid use: {kept}")
    rep = r.report("planned")
    # Nothing else fails: podtest's groups are what they are (plan once wanted docker for the
    # owner of Podman units).
    others = [f for f in rep.select(status="fail") if f["check"] != "render_access"]
    expect(not others, f"planned: a failure other than render_access:\n{rep.describe()}")
    # The check's verdict is open(2)'s, for each container.
    for unit, oracle in (("plex-keep", "kernel_keep"), ("plex-plain", "kernel_without")):
        opened = r.rc(oracle) == 0 and "opened" in r.out(oracle)
        got = [f for f in rep.select("render_access", RENDER) if f"quadlet-podtest/{unit} (" in f["message"]]
        expect(len(got) == 1, f"no single render_access finding for {unit}:\n{rep.describe()}")
        status = got[0]["status"]
        expect(status == ("pass" if opened else "fail"),
               f"check says {status} for {unit}, but open(2) {'opened' if opened else 'was refused'}:\n{rep.describe()}")
        if not opened:
            fix = (got[0].get("remedy") or {}).get("text", "")
            expect("keep-groups" in fix or "put podtest in group render" in fix, f"{unit}'s fix names neither keep-groups nor render: {fix}")

SCENARIO = Scenario(
    name="rootless_podman",
    title="real rootless podman (crun) with --device renderD128: keep-groups opens it, without is refused; plan agrees",
    order=88,  # changes /etc (restored at its end): before mounts, which goes last
    repeatable=True,
    devices=(VIRTIO_GPU,),
    overlays=("/etc",),
    guest=GUEST,
    check=check,
    breaks={
        "no_keep_groups": Break("the keep-groups container runs without --group-add keep-groups"),
        "no_render": Break("podtest is not in the render group"),
    },
    controls=(
        Control("the refused container's answer in place of the keep-groups one", {"kernel_keep": "kernel_without"}),
    ),
)
