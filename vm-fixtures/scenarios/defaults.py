"""`homelab-verify` with no expectations on a guest with a virtio GPU: the check passes, and the
render node's inventory is what the kernel and udev made (compared with `stat` in the guest)."""

from harness import VIRTIO_GPU, Break, Scenario, expect

RENDER = "/dev/dri/renderD128"
CARD = "/dev/dri/card0"

GUEST = r"""
verify default
oracle kernel uname -r
oracle render_group getent group render
# %g gid, %a mode (octal), %t:%T major:minor (hex), %F type
oracle stat_render stat -c '%u %g %a %t:%T %F' /dev/dri/renderD128
oracle stat_card stat -c '%u %g %a %t:%T %F' /dev/dri/card0
"""


def check_node(r, report, path, stat_record):
    f = report.one("node", path, "pass")
    node = f["evidence"]["node"]
    expect(node["kernel_driver"] == "virtio_gpu",
           f"{path}: kernel_driver is {node['kernel_driver']!r}, expected 'virtio_gpu'")
    expect(node["pci"] is not None and node["pci"]["vendor"] == "0x1af4",
           f"{path}: pci is {node['pci']}, expected vendor 0x1af4 (virtio)")
    uid, gid, mode, rdev, kind = r.out(stat_record).strip().split(" ", 4)
    st = node["stat"]
    major, minor = (int(x, 16) for x in rdev.split(":"))
    seen = (st["uid"], st["gid"], int(st["mode"], 8), st["rdev"]["major"], st["rdev"]["minor"], st["kind"])
    want = (int(uid), int(gid), int(mode, 8), major, minor, "char" if kind == "character special file" else kind)
    expect(seen == want, f"{path}: the report says (uid, gid, mode, major, minor, kind) = {seen}, stat says {want}")
    return node


def check(r):
    rep = r.report("default")
    rep.ok()
    expect(rep.data["expectations"] == "built-in defaults", f"expectations: {rep.data['expectations']!r}")
    host = rep.data["host"]
    kernel = r.out("kernel").strip()
    expect(host["live"] is True and host["kernel"] == kernel,
           f"host is {host}, expected live with kernel {kernel!r} (uname -r in the guest)")
    render_gid = int(r.out("render_group").split(":")[2])
    node = check_node(r, rep, RENDER, "stat_render")
    expect(node["kind"] == "render" and node["group_name"] == "render" and node["stat"]["gid"] == render_gid,
           f"{RENDER}: {node}, expected kind render, group render ({render_gid})")
    check_node(r, rep, CARD, "stat_card")
    rep.one("render_group", RENDER, "pass")
    rep.one("render_group_access", RENDER, "pass", message_contains=[f"render ({render_gid})"])
    rep.none("render_present")
    rep.none("stale_gid")


SCENARIO = Scenario(
    name="defaults",
    title="no expectations file: passes, and the node inventory shows virtio_gpu as stat sees it",
    order=10,
    devices=(VIRTIO_GPU,),
    guest=GUEST,
    check=check,
    breaks={
        "no_gpu": Break("boot without the virtio GPU: there is no render node to inventory", without=(VIRTIO_GPU,)),
    },
)
