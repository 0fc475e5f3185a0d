# mounts: the runbook's data disk, declared by UUID, with a drift root on it, checked by
# homelab-probe-check.service through the typed `settings.mounts` and `settings.drift`:
#   boot          the disk is blank, so nothing is mounted there: mount_device and mounted fail,
#                 the bare directory is empty (shadowed_data passes), the drift root is missing;
#   formatted     the test formats it with the fixed UUID, mounts it and creates the media tree
#                 owned 1000:110: every mount check and drift_owner pass;
#   drift         a file root wrote: drift_owner fails with the owner counts and the command
#                 that fixes it; that command, applied, makes it pass again;
#   without-disk  a specialisation that no longer declares the mount: switching to it unmounts
#                 the disk, the switch exits 4, mount_declared warns and mounted fails with the
#                 fileSystems snippet; files written into the bare directory fail shadowed_data;
#   back          switching back mounts the disk again and everything passes.
# The unit is ordered after the disk's mount unit (afterMounts: the mount path and the drift
# root). The disk and the verdict after each step ({subject: {check: status}}) are in
# lib/mounts.json, which vm-fixtures/scenarios/nixos_mounts.py also reads: it rehearses these
# steps on a real kernel with the same binary, fstab line and expectations (lib/mounts.toml,
# which a test keeps equal to what the module renders from the settings below).
{ lib, homelab, ... }:
let
  shared = builtins.fromJSON (builtins.readFile ./lib/mounts.json);
  inherit (shared) path uuid media;
in
{
  name = "homelab-probe-mounts";

  nodes.machine =
    { config, ... }:
    {
      system.switch.enable = true;
      # Becomes /dev/vdb: the root disk is /dev/vda (qemu-vm.nix adds empty disks in order).
      virtualisation.emptyDiskImages = [ 64 ];
      # qemu-vm.nix replaces `fileSystems` with `virtualisation.fileSystems` in test VMs
      # (mkVMOverride), so the data mount is declared there. nofail, as a data disk should
      # be; a short device timeout so the blank disk does not hold the boot for 90 s.
      virtualisation.fileSystems.${path} = lib.mkIf (!config.isSpecialisation) {
        device = "/dev/disk/by-uuid/${uuid}";
        fsType = "ext4";
        options = [
          "nofail"
          "x-systemd.device-timeout=5s"
        ];
      };
      services.homelab-probe = {
        enable = true;
        settings = {
          render = null;
          mounts = [
            {
              inherit path uuid;
              fstype = "ext4";
              options = [ "rw" ];
            }
          ];
          drift = [
            {
              root = media;
              uid = 1000;
              gid = 110;
            }
          ];
        };
      };
      specialisation.without-disk.configuration = { };
    };

  testScript =
    { nodes, ... }:
    let
      parent = "${nodes.machine.system.build.toplevel}";
    in
    homelab.helpers
    + ''
      STEPS = json.loads(${builtins.toJSON (builtins.toJSON shared.steps)})

      def verdict(r, step):
          """Asserts the verdict lib/mounts.json gives for `step` on every subject it names."""
          for subject, want in STEPS[step].items():
              assert checks(r, subject) == want, (step, subject, findings(r, subject=subject))

      def check_again(expect_ok):
          (machine.succeed if expect_ok else machine.fail)("systemctl start homelab-probe-check.service")
          return probe_report(machine)

      machine.start()

      with subtest("the check is ordered after the data disk's mount, for the mount and the drift root"):
          after = machine.succeed("systemctl show -P After homelab-probe-check.service").split()
          assert "mnt-PlexStorage.mount" in after, after
          deps = machine.succeed(
              "systemctl show -p WantsMountsFor -p RequiresMountsFor homelab-probe-check.service"
          )
          assert "${path}" in deps and "${media}" in deps, deps

      with subtest("a blank data disk: nothing is mounted, the boot's check fails"):
          assert wait_for_check(machine) == "exit-code"
          r = probe_report(machine)
          verdict(r, "blank")
          f = one(r, check="mounted", subject="${path}")
          assert f["evidence"]["origin"] == "expectations", f
          assert "systemctl start mnt-PlexStorage.mount" in f["remedy"]["text"], f
          assert "UUID=${uuid}" in one(r, check="mount_device", subject="${path}")["message"]

      with subtest("formatted with the expected UUID and mounted, every mount check passes"):
          machine.succeed("mkfs.ext4 -q -F -U ${uuid} /dev/vdb", "udevadm settle")
          machine.succeed("systemctl start mnt-PlexStorage.mount")
          assert machine.succeed("findmnt -n -o UUID ${path}").strip() == "${uuid}"
          machine.succeed(
              "install -d -o 1000 -g 110 ${media} ${media}/movies",
              "install -o 1000 -g 110 -m 644 /dev/null ${media}/movies/a.mkv",
          )
          r = check_again(True)
          assert r["summary"]["ok"] is True, failing(r)
          verdict(r, "mounted")
          assert one(r, check="drift_owner", subject="${media}")["evidence"]["entries"] == 3

      with subtest("a file with another owner under the drift root fails, and the remedy fixes it"):
          machine.succeed("touch ${media}/movies/root-wrote-this.mkv")
          r = check_again(False)
          verdict(r, "drifted")
          f = one(r, check="drift_owner", subject="${media}")
          assert (f["evidence"]["entries"], f["evidence"]["offending"]) == (4, 1), f
          assert f["evidence"]["by_owner"] == [
              {"uid": 0, "gid": 0, "count": 1, "samples": ["${media}/movies/root-wrote-this.mkv"]}
          ], f
          fix = f["remedy"]["text"]
          assert f["remedy"]["kind"] == "command" and fix.startswith(
              "homelab-verify drift ${media} --uid 1000 --gid 110 --fix"
          ), f
          assert failing(r) == [("drift_owner", "${media}", f["message"])], failing(r)
          machine.succeed("homelab-verify drift ${media} --uid 1000 --gid 110 --fix --apply --journal /root/drift.journal")
          assert machine.succeed("stat -c %u:%g ${media}/movies/root-wrote-this.mkv").strip() == "1000:110"
          verdict(check_again(True), "fixed")

      with subtest("a generation without the mount fails the switch, with the fileSystems fix"):
          status, out = machine.execute(
              "${parent}/specialisation/without-disk/bin/switch-to-configuration test 2>&1"
          )
          print(out)
          assert status == 4, f"switch-to-configuration exited {status}"
          assert "homelab-probe-check.service" in out, out
          machine.fail("mountpoint -q ${path}")
          r = probe_report(machine)
          verdict(r, "undeclared")
          f = one(r, check="mounted", subject="${path}")
          assert f["remedy"]["kind"] == "nixos", f
          assert 'fileSystems."${path}" = {' in f["remedy"]["text"], f
          assert 'device = "/dev/disk/by-uuid/${uuid}";' in f["remedy"]["text"], f

      with subtest("files written into the bare mount point fail shadowed_data"):
          machine.succeed("mkdir -p ${media}", "touch ${media}/oops.mkv")
          r = check_again(False)
          verdict(r, "shadowed")
          f = one(r, check="shadowed_data", subject="${path}")
          assert (f["evidence"]["entries"], f["evidence"]["names"]) == (1, ["media"]), f
          assert "mv -T ${path} ${path}.shadowed" in f["remedy"]["text"], f
          machine.succeed("rm -r ${media}")

      with subtest("back to the generation with the mount, everything passes"):
          status, out = machine.execute("${parent}/bin/switch-to-configuration test 2>&1")
          assert status == 0, out
          machine.succeed("mountpoint -q ${path}")
          r = probe_report(machine)
          assert r["summary"]["ok"] is True, failing(r)
          verdict(r, "back")
    '';
}
