"""The render node seen from a user namespace, as inside an unprivileged LXC container: the
guest's real virtio-gpu node (root:render 0660, set by real udev) and `check` run inside `unshare
--user` with the maps an unprivileged LXC container gets (`0 100000 65536` for uids and gids),
which leave out the host's render gid. The kernel shows the node as the overflow gid (`stat` in
the namespace), and the probe must fail with `render_idmap` and the Proxmox / `lxc.idmap`
remedy. Then the gid map the remedy's `lxc.idmap` lines describe (render's gid mapped to itself)
is the negative control: no `render_idmap`, the node is render again, and the kernel lets a
render member in the namespace open it (`setpriv` + open(2) in the same namespace) and keeps one
without the group out."""

from harness import VIRTIO_GPU, Break, Control, Scenario, ScenarioFailure, expect

RENDER = "/dev/dri/renderD128"

GUEST = r"""
R=$(getent group render | cut -d: -f3)
echo "$R" >render_gid.txt
# The expectations: the render group, and plex (PUID 1000, PGID render) must open the node.
printf 'version = 1\n\n[render]\ngroup = "render"\nmode = "0660"\nrequired = true\nnodes = ["/dev/dri/renderD128"]\n\n[[render.access]]\nname = "plex"\nuid = 1000\ngid = %s\n' "$R" >expect.toml

ns=/run/vm-fixtures/userns
rm -rf "$ns"
mkdir -p "$ns"
chmod 0755 "$ns"
cp expect.toml "$ns/expect.toml"
chmod 0644 "$ns/expect.toml"

# in_userns NAME UID_MAP GID_MAP CMD...: runs CMD in a new user namespace whose maps this (the
# initial namespace's) root writes, as LXC does for an unprivileged container; CMD starts only
# after the maps are written. NAME.out/.err/.rc as `oracle` writes them (the redirections are
# opened here, outside the namespace, whose root may not write to this directory).
in_userns() {
  local name=$1 umap=$2 gmap=$3 pid rc=0 i
  shift 3
  rm -f "$ns/go"
  mkfifo -m 0666 "$ns/go"
  # The namespace's first process is host uid and gid 100000 (its root, as LXC starts one), so
  # that it is the namespace's root once the maps are written.
  setpriv --reuid=100000 --regid=100000 --clear-groups -- \
    unshare --user -- sh -c 'read _ <"$0"; exec "$@"' "$ns/go" "$@" >"$name.out" 2>"$name.err" &
  pid=$!
  for i in $(seq 1 100); do
    [ "$(readlink /proc/$pid/ns/user)" != "$(readlink /proc/self/ns/user)" ] && break
    sleep 0.1
  done
  # Each map in one write(2), as the kernel requires (user_namespaces(7)).
  printf "$umap" >"$ns/uid_map"
  printf "$gmap" >"$ns/gid_map"
  cat "$ns/uid_map" >/proc/$pid/uid_map
  cat "$ns/gid_map" >/proc/$pid/gid_map
  echo go >"$ns/go"
  wait $pid || rc=$?
  echo "$rc" >"$name.rc"
  echo "in_userns $name: exit $rc" >&2
}

# What an unprivileged LXC container (Proxmox, incus) gets: 65536 ids from 100000, render's
# host gid not among them.
LXC='0 100000 65536\n'
# The remedy's lxc.idmap lines: the same, with render's gid mapped to the host's render gid.
COVER="0 100000 $R\n$R $R 1\n$((R + 1)) $((100000 + R + 1)) $((65536 - R - 1))\n"
if [ "$BREAK" = covered_map ]; then LXC=$COVER; fi

open_node='exec 3<>/dev/dri/renderD128'
oracle stat_host stat -c '%u %g %a' /dev/dri/renderD128
if [ "$BREAK" = no_namespace ]; then
  oracle lxc_gid_map cat /proc/self/gid_map
  oracle lxc_stat stat -c '%u %g %a' /dev/dri/renderD128
  verify lxc --expect "$ns/expect.toml"
  oracle lxc_kernel_root setpriv --clear-groups -- sh -c "$open_node"
else
  in_userns lxc_gid_map "$LXC" "$LXC" cat /proc/self/gid_map
  in_userns lxc_stat "$LXC" "$LXC" stat -c '%u %g %a' /dev/dri/renderD128
  in_userns lxc_report "$LXC" "$LXC" "$HV" check --format json --expect "$ns/expect.toml"
  cp lxc_report.out lxc.json; cp lxc_report.err lxc.stderr; cp lxc_report.rc lxc.rc
  # The same as a user reads it (docs/render-node.md shows it).
  in_userns lxc_text "$LXC" "$LXC" "$HV" check --expect "$ns/expect.toml"
  # The container's root, with its own groups only: the kernel's answer.
  in_userns lxc_kernel_root "$LXC" "$LXC" setpriv --clear-groups -- sh -c "$open_node"
fi

# Negative control: the map the remedy describes.
in_userns covered_gid_map "$LXC" "$COVER" cat /proc/self/gid_map
in_userns covered_stat "$LXC" "$COVER" stat -c '%u %g %a' /dev/dri/renderD128
in_userns covered_report "$LXC" "$COVER" "$HV" check --format json --expect "$ns/expect.toml"
cp covered_report.out covered.json; cp covered_report.err covered.stderr; cp covered_report.rc covered.rc
# plex (1000, PGID render) and the container's root without the group, in that namespace.
in_userns covered_kernel_plex "$LXC" "$COVER" setpriv --reuid=1000 --regid="$R" --clear-groups -- sh -c "$open_node"
in_userns covered_kernel_root "$LXC" "$COVER" setpriv --clear-groups -- sh -c "$open_node"
"""


def three(r, record):
    """`stat -c '%u %g %a'` output as (uid, gid, mode)."""
    text = r.out(record).strip()
    try:
        uid, gid, mode = text.split()
        return int(uid), int(gid), mode
    except ValueError:
        raise ScenarioFailure(f"record {record!r}: not 'uid gid mode': {text!r} (stderr {r.err(record)!r})") from None


def check(r):
    gid = int((r.dir / "render_gid.txt").read_text().strip())

    # 1. LXC-like maps: the probe names the cause and both fixes.
    rep = r.report("lxc")
    rep.exit_code(1)
    f = rep.one("render_idmap", RENDER, "fail", remedy_kind="manual",
                remedy_contains=[f"devN: {RENDER},gid={gid}", f"lxc.idmap: g {gid} <host render gid> 1"],
                message_contains=["gid 65534, the kernel's overflow gid", "gid map 0 100000 65536"])
    expect(f["evidence"]["gid"] == 65534 and f["evidence"]["gid_map"] == [{"inside": 0, "outside": 100000, "count": 65536}],
           f"render_idmap evidence {f['evidence']}")
    for wrong in ("render_group", "stale_gid", "render_mode"):
        rep.none(wrong, RENDER)
    # The oracles: the namespace's map, the node as the kernel shows it there, and open(2).
    expect(r.out("lxc_gid_map").split() == ["0", "100000", "65536"], f"gid_map in the namespace: {r.out('lxc_gid_map')!r}")
    expect(three(r, "lxc_stat")[1] == 65534, f"in the namespace the kernel shows {RENDER} as {three(r, 'lxc_stat')}, expected gid 65534")
    expect(three(r, "stat_host")[1] == gid, f"outside: {RENDER} is {three(r, 'stat_host')}, render is {gid}")
    expect(r.rc("lxc_kernel_root") != 0 and "Permission denied" in r.err("lxc_kernel_root"),
           f"the container's root opened {RENDER}: rc {r.rc('lxc_kernel_root')} {r.err('lxc_kernel_root')!r}; the probe says nothing here can")

    # 2. The remedy's map: the node is render, plex can open it, and the kernel agrees.
    rep = r.report("covered")
    rep.none("render_idmap")
    rep.one("render_group", RENDER, "pass")
    rep.one("render_access", RENDER, "pass", message_contains=["plex"])
    expect(three(r, "covered_stat")[1] == gid, f"with render mapped the kernel shows {RENDER} as {three(r, 'covered_stat')}, expected gid {gid}")
    expect(r.rc("covered_kernel_plex") == 0,
           f"the probe says plex (1000/{gid}) can open {RENDER}, the kernel said rc {r.rc('covered_kernel_plex')} {r.err('covered_kernel_plex')!r}")
    expect(r.rc("covered_kernel_root") != 0 and "Permission denied" in r.err("covered_kernel_root"),
           f"without the render group the namespace's root opened {RENDER}: rc {r.rc('covered_kernel_root')}: the "
           "access came from something other than the group")


SCENARIO = Scenario(
    name="render_userns",
    title="render node in a user namespace (LXC-like maps via unshare): render_idmap with the Proxmox/lxc.idmap remedy; the remedy's map passes, as the kernel says",
    order=85,  # reads render's gid as it is (render_node may have moved it); changes nothing outside /run
    repeatable=True,
    devices=(VIRTIO_GPU,),
    guest=GUEST,
    check=check,
    breaks={
        "covered_map": Break("the LXC-like namespace gets the remedy's gid map, which covers render"),
        "no_namespace": Break("the LXC check runs in the initial namespace"),
    },
    controls=(
        Control("the report with the covering map stands in for the LXC one", {"lxc": "covered", "lxc_stat": "covered_stat"}),
        Control("the kernel's answer for plex is the denied one", {"covered_kernel_plex": "lxc_kernel_root"}),
    ),
)
