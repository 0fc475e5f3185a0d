"""Duplicate names and ids in the guest's real /etc/group and /etc/passwd, as hand edits and a
botched restore leave them: a second `render` line, a group on render's gid (`groupadd -o`), a
user on palav's uid (`useradd -o`) and palav's line twice. The report names the lines `grep -n`
finds and the holders in file order; glibc (`getent`) answers with the first line, as the
messages say; the shared ids fail only once the expectations pin them. /etc is put back at the
end, and then nothing is duplicated."""

from harness import Break, Control, Scenario, ScenarioFailure, expect

UID = 60210  # palav's uid here: far from the machine's own accounts
SPARE_GID = 60201  # the gid of the second render line

GUEST = rf"""
ETC_SAVE=/run/vm-fixtures/identity-etc   # the guest's tmpfs: the originals stay out of the share
mkdir -p $ETC_SAVE
cp -p /etc/group /etc/passwd $ETC_SAVE/
restore_etc() {{
  cat $ETC_SAVE/group >/etc/group
  cat $ETC_SAVE/passwd >/etc/passwd
}}
trap restore_etc EXIT

oracle render_group getent group render
render_gid=$(getent group render | cut -d: -f3)
for id in "group {SPARE_GID}" "group $(({SPARE_GID} + 1))" "group {UID}" "passwd {UID}" "passwd $(({UID} + 1))" "passwd $(({UID} + 2))"; do
  if getent $id; then echo "$id is taken on this machine: pick other ids for this scenario"; exit 1; fi
done
# Start without the names this scenario adds (the machine's own, if any, are back at the end).
awk -F: '$1 != "palav" && $1 != "plex"' $ETC_SAVE/passwd >/etc/passwd
awk -F: '$1 != "plexgpu" && $1 != "palav"' $ETC_SAVE/group >/etc/group
echo "palav:x:{UID}:" >>/etc/group

if [ "$BREAK" = unique_lines ]; then
  render2=render2 gpu_gid=$(({SPARE_GID} + 1)) palav2=palav2 palav2_uid=$(({UID} + 2)) plex_uid=$(({UID} + 1))
else
  render2=render gpu_gid=$render_gid palav2=palav palav2_uid={UID} plex_uid={UID}
fi
# A restored old group file appended, a group for a container on render's gid (groupadd -o -g),
# palav restored from a backup next to the new account, and plex on palav's uid (useradd -o -u).
echo "$render2:x:{SPARE_GID}:" >>/etc/group
echo "plexgpu:x:$gpu_gid:palav" >>/etc/group
echo "palav:x:{UID}:{UID}:Palav:/home/palav:/bin/bash" >>/etc/passwd
echo "$palav2:x:$palav2_uid:{UID}:Palav (restored from a backup):/home/palav:/bin/bash" >>/etc/passwd
echo "plex:x:$plex_uid:$render_gid::/var/lib/plexmediaserver:/usr/sbin/nologin" >>/etc/passwd

oracle group_lines grep -n -e '^render:' -e '^plexgpu:' /etc/group
oracle passwd_lines grep -n -e '^palav:' -e '^plex:' /etc/passwd
oracle getent_gid getent group "$render_gid"
oracle getent_uid getent passwd {UID}
verify builtin
printf 'version = 1\n\n[groups]\nrender = %s\n\n[users.palav]\nuid = {UID}\n' "$render_gid" >pinned.toml
verify pinned --expect pinned.toml

restore_etc
trap - EXIT
verify restored
"""


def lines_of(r, record, name):
    """The line numbers `grep -n` printed for entries named `name`."""
    found = [int(l.split(":", 1)[0]) for l in r.out(record).splitlines() if l.split(":")[1:2] == [name]]
    if not found:
        raise ScenarioFailure(f"record {record!r}: no line for {name!r} in {r.out(record)!r}")
    return found


def check(r):
    render_gid = int(r.out("render_group").split(":")[2])
    gid, uid = f"gid {render_gid}", f"uid {UID}"
    render_lines = ", ".join(map(str, lines_of(r, "group_lines", "render")))
    palav_lines = ", ".join(map(str, lines_of(r, "passwd_lines", "palav")))

    # 1. No expectations: the repeated names fail, the shared ids warn.
    rep = r.report("builtin")
    rep.exit_code(1)
    rep.one("duplicate_name", "group render", "fail", remedy_kind="manual",
            remedy_contains=["remove all but one render line from /etc/group"],
            message_contains=[f"group render is defined on lines {render_lines} of /etc/group"])
    f = rep.one("duplicate_gid", gid, "warn", message_contains=[f"gid {render_gid} is held by groups render, plexgpu"])
    expect(f["evidence"]["groups"] == ["render", "plexgpu"], f"duplicate_gid evidence {f['evidence']}")
    rep.one("duplicate_name", "user palav", "fail", remedy_kind="manual",
            remedy_contains=["remove all but one palav line from /etc/passwd"],
            message_contains=[f"user palav is defined on lines {palav_lines} of /etc/passwd"])
    f = rep.one("duplicate_uid", uid, "warn", message_contains=[f"uid {UID} is held by users palav, plex"])
    expect(f["evidence"]["users"] == ["palav", "plex"], f"duplicate_uid evidence {f['evidence']}")
    rep.none("consistency")

    # 2. Expectations pin render's gid and palav's uid: now the shared ids fail too, and the
    # first lines still count (render has its gid, palav its uid).
    rep = r.report("pinned")
    rep.exit_code(1)
    # The remedy moves every other name to a free id, so the pinned one keeps its own.
    rep.one("duplicate_gid", gid, "fail", remedy_kind="nixos",
            remedy_contains=["users.groups.plexgpu.gid = ", "so render keeps its own"])
    rep.one("duplicate_uid", uid, "fail", remedy_kind="nixos",
            remedy_contains=["users.users.plex.uid = ", "so palav keeps its own"])
    rep.one("group_gid", "group render", "pass")
    rep.one("user_uid", "user palav", "pass")

    # glibc answers with the first line, as the messages say ("the first name only").
    expect(r.out("getent_gid").split(":")[0] == "render",
           f"getent group {render_gid}: {r.out('getent_gid')!r}, expected render (the first line)")
    expect(r.out("getent_uid").split(":")[0] == "palav",
           f"getent passwd {UID}: {r.out('getent_uid')!r}, expected palav (the first line)")

    # 3. /etc put back: none of it is left.
    rep = r.report("restored")
    for check_id, subject in [("duplicate_name", "group render"), ("duplicate_gid", gid),
                              ("duplicate_name", "user palav"), ("duplicate_uid", uid)]:
        rep.none(check_id, subject)


SCENARIO = Scenario(
    name="identity_duplicates",
    title="duplicate group/user names and shared gid/uid written into /etc: named with their lines, pinned ids fail",
    order=70,  # changes /etc (restored at the end): after the scenarios that read it as booted
    repeatable=True,  # starts from the saved files and puts them back
    overlays=("/etc",),
    guest=GUEST,
    check=check,
    breaks={
        "unique_lines": Break("write the same lines with their names and ids made unique: nothing is duplicated"),
    },
    controls=(
        Control("nothing duplicated: the report after /etc was put back stands in for the first one",
                {"builtin": "restored"}),
    ),
)
