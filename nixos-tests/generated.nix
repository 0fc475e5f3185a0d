# generated: the module `homelab-verify plan` writes, booted, and checked with the expectations
# it wrote: what plan pins is what check verifies. The plan is made at build time from the
# snapshot of an old host shaped like this VM (fixtures/snapshots/testvm.json, what `capture`
# writes for the sysroot fixtures/migration/testvm: one virtio GPU, the data disk by UUID on
# /mnt/PlexStorage with nofail, palav 1000 in render 110, a Plex stack with PUID 1000, PGID 110
# and /dev/dri). The generated hardware-parity.nix is imported as written, except that its
# `fileSystems` are declared as `virtualisation.fileSystems`: qemu-vm.nix sets
# `fileSystems = mkIf (cfg.fileSystems != { }) (mkVMOverride cfg.fileSystems)`, which would
# drop them in a test VM (crates/homelab-probe/tests/nix_module.rs checks that the moved
# entries are exactly the generated ones, and that nothing else changes).
#   boot       the data disk is blank: nofail lets the boot go on; the compose unit, which
#              requires the mount, never starts, so nothing is written into the bare mount
#              point; the check fails on the mount only;
#   formatted  the disk gets the snapshot's UUID and is mounted: the check passes, finding by
#              finding (render 110 with lib.mkForce, palav, the render node for the stack's
#              credentials, the mount by UUID, the virtio GPU with nothing required of it);
#   stack      the stack's directory restored from the old host (its image swapped for a local
#              stand-in: the VM has no network): the generated unit runs `docker compose up`
#              as palav; the container gets PUID/PGID and the render node, and what it writes
#              as 1000:110 lands on the data disk.
{ hostPkgs, homelab, ... }:
let
  snapshotFile = homelab.fixtures + "/snapshots/testvm.json";
  snapshot = builtins.fromJSON (builtins.readFile snapshotFile);
  stackDir = homelab.fixtures + "/migration/testvm/home/palav/docker/plex";

  # The old host's data disk, as the snapshot has it.
  path = "/mnt/PlexStorage";
  disk = builtins.head (builtins.filter (e: e.file == path) snapshot.fstab);
  uuid = builtins.head (builtins.match "UUID=(.+)" disk.spec);

  planned = hostPkgs.runCommand "homelab-probe-plan" { } ''
    ${homelab.package}/bin/homelab-verify plan ${snapshotFile} --out $out
  '';

  # hardware-parity.nix, with its fileSystems moved to virtualisation.fileSystems (see above).
  # Importing a file a derivation wrote is import-from-derivation: allowed by default in
  # `nix flake check` (not on Hydra).
  parity = import "${planned}/hardware-parity.nix";
  parityInVM =
    args@{
      config,
      lib,
      pkgs,
      ...
    }:
    let
      m = parity args;
    in
    builtins.removeAttrs m [ "fileSystems" ]
    // {
      virtualisation = (m.virtualisation or { }) // {
        fileSystems = m.fileSystems or { };
      };
    };

  # Stands in for lscr.io/linuxserver/plex: a shell that waits, with busybox for the checks.
  standIn = hostPkgs.dockerTools.buildImage {
    name = "plex-stand-in";
    tag = "latest";
    copyToRoot = hostPkgs.buildEnv {
      name = "plex-stand-in-root";
      paths = [ hostPkgs.busybox ];
      pathsToLink = [ "/bin" ];
    };
    config.Cmd = [
      "/bin/sh"
      "-c"
      "trap 'exit 0' TERM; while :; do sleep 1; done"
    ];
  };
in
{
  name = "homelab-probe-generated";

  nodes.machine = {
    imports = [ parityInVM ];
    virtualisation.qemu.options = [
      "-vga none"
      "-device virtio-gpu-pci"
    ];
    # Becomes /dev/vdb: the root disk is /dev/vda (qemu-vm.nix adds empty disks in order).
    virtualisation.emptyDiskImages = [ 64 ];
    # Docker and a container.
    virtualisation.memorySize = 2048;
    services.homelab-probe = {
      enable = true;
      # A store path as a string: the module does not read it at evaluation (that would be
      # import-from-derivation), so the paths to wait for are listed: the plan's [[mounts]]
      # (it writes no [[drift]] for this snapshot: no data root was captured).
      expectationsFile = "${planned}/homelab-probe.toml";
      afterMounts = [ path ];
    };
  };

  testScript = homelab.helpers + ''
    UNIT = "homelab-compose-plex.service"

    machine.start()

    with subtest("the generated module is what runs"):
        assert machine.succeed("getent group render").split(":")[2] == "110"
        assert machine.succeed("id -u palav").strip() == "1000"
        groups = machine.succeed("id -nG palav").split()
        for g in ["palav", "adm", "wheel", "video", "render", "docker"]:
            assert g in groups, groups
        fstab = machine.succeed("cat /etc/fstab")
        assert "/dev/disk/by-uuid/${uuid} ${path} ext4" in fstab, fstab
        machine.succeed("systemctl cat mnt-PlexStorage.mount")
        # systemd keeps these as a set, and adds WorkingDirectory= to it (systemd.exec(5)).
        requires = set(machine.succeed(f"systemctl show -P RequiresMountsFor {UNIT}").split())
        assert {"/home/palav/docker/plex", "${path}"} <= requires, requires

    with subtest("a blank data disk: nofail lets it boot, the stack does not start, the check fails on the mount"):
        assert wait_for_check(machine) == "exit-code", journal(machine)
        r = probe_report(machine)
        assert r["expectations"] == "/etc/homelab-probe.toml", r["expectations"]
        assert {check for check, _, _ in failing(r)} == {"mount_device", "mounted"}, failing(r)
        assert checks(r, "${path}")["shadowed_data"] == "pass", findings(r, subject="${path}")
        assert "UUID=${uuid}" in one(r, check="mount_device", subject="${path}")["message"]
        assert machine.succeed(f"systemctl show -P ActiveState {UNIT}").strip() != "active"
        machine.fail("mountpoint -q ${path}")
        # systemd makes the mount point only when it mounts: it may not exist at all.
        machine.succeed('test ! -e ${path} || test -z "$(ls -A ${path})"')
        assert machine.succeed("docker ps -aq") == ""

    with subtest("the disk with the snapshot's UUID, mounted: every finding passes"):
        machine.succeed("mkfs.ext4 -q -F -U ${uuid} /dev/vdb", "udevadm settle")
        machine.succeed("systemctl start mnt-PlexStorage.mount")
        assert machine.succeed("findmnt -n -o UUID ${path}").strip() == "${uuid}"
        machine.succeed("systemctl start homelab-probe-check.service")
        r = probe_report(machine)
        assert r["summary"]["ok"] is True and r["summary"]["fail"] == 0, failing(r)
        f = one(r, check="group_gid", subject="group render")
        assert (f["status"], f["message"]) == ("pass", "group render has gid 110"), f
        assert one(r, check="group_gid", subject="group palav")["status"] == "pass"
        assert one(r, check="user_uid", subject="user palav")["status"] == "pass"
        assert one(r, check="user_groups", subject="user palav")["status"] == "pass"
        node = one(r, check="node", subject="/dev/dri/renderD128")["evidence"]["node"]
        assert node["stat"]["gid"] == 110, node
        assert node["pci"]["vendor"] == "0x1af4", node
        for check in ["render_group", "render_group_access", "render_access"]:
            f = one(r, check=check, subject="/dev/dri/renderD128")
            assert f["status"] == "pass", f
        assert "plex/plex" in one(r, check="render_access", subject="/dev/dri/renderD128")["message"]
        assert checks(r, "${path}") == {
            "mount_declared": "pass", "mount_device": "pass", "mounted": "pass", "mount_source": "pass",
            "mount_fstype": "pass", "mount_options": "pass", "mount_covered": "pass",
        }, findings(r, subject="${path}")
        f = one(r, check="mount_declared", subject="${path}")
        assert f["evidence"]["origin"] == "expectations", f
        inventory = findings(r, probe="gpu", check="gpu_inventory")
        assert len(inventory) == 1 and inventory[0]["status"] == "pass", inventory
        assert inventory[0]["evidence"]["gpu"]["vendor"] == "virtio", inventory
        # Nothing is required of the virtio GPU: the plan asks VA-API only of Intel and AMD.
        assert findings(r, check="vaapi_encode") == [], findings(r, check="vaapi_encode")

    with subtest("the stack, restored, runs from the generated unit on the data disk"):
        machine.succeed(
            "docker load --input=${standIn}",
            "install -d -o 1000 -g 110 ${path}/Movies ${path}/transcode",
            "install -D -o palav -g palav -m 644 ${stackDir}/compose.yaml /home/palav/docker/plex/compose.yaml",
            "install -o palav -g palav -m 600 ${stackDir}/.env /home/palav/docker/plex/.env",
            "sed -i 's|lscr.io/linuxserver/plex:latest|plex-stand-in:latest|' /home/palav/docker/plex/compose.yaml",
        )
        machine.succeed(f"systemctl start {UNIT}")
        assert machine.succeed(f"systemctl show -P ActiveState {UNIT}").strip() == "active"
        env = json.loads(machine.succeed("docker inspect -f '{{json .Config.Env}}' plex"))
        assert "PUID=1000" in env and "PGID=110" in env, env
        assert machine.succeed("docker exec plex stat -c %g /dev/dri/renderD128").strip() == "110"
        machine.succeed("docker exec -u 1000:110 plex sh -c 'test -r /dev/dri/renderD128 && test -w /dev/dri/renderD128'")
        machine.succeed("docker exec -u 1000:110 plex touch /movies/written-by-plex")
        assert machine.succeed("stat -c %u:%g ${path}/Movies/written-by-plex").strip() == "1000:110"
        on = machine.succeed("findmnt -n -o SOURCE --target ${path}/Movies/written-by-plex").strip()
        assert on == "/dev/vdb", on
        machine.succeed("systemctl start homelab-probe-check.service")
        assert probe_report(machine)["summary"]["ok"] is True
  '';
}
