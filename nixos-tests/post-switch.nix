# post-switch: the check runs after every switch, and a switch into a generation that breaks
# parity fails: switch-to-configuration exits 4 and names homelab-probe-check.service.
#
# The break: the specialisation drops palav from `render` (as a refactor of one's modules
# can). Unlike a gid change, which NixOS never applies to an existing group, a membership
# change of a declared user is applied by the activation at once (update-users-groups.pl).
{ lib, homelab, ... }:
{
  name = "homelab-probe-post-switch";

  nodes.machine = {
    system.switch.enable = true;
    users.users.palav = {
      isNormalUser = true;
      uid = 1000;
      extraGroups = [
        "render"
        "video"
      ];
    };
    services.homelab-probe = {
      enable = true;
      settings.users.palav = {
        uid = 1000;
        groups = [
          "render"
          "video"
        ];
      };
    };
    specialisation.lost-render.configuration = {
      users.users.palav.extraGroups = lib.mkForce [ "video" ];
    };
  };

  testScript =
    { nodes, ... }:
    let
      parent = "${nodes.machine.system.build.toplevel}";
    in
    homelab.helpers
    + ''
      machine.start()
      assert wait_for_check(machine) == "success"

      with subtest("a switch that changes nothing runs the check again"):
          runs = check_runs(machine)
          status, out = machine.execute("${parent}/bin/switch-to-configuration test 2>&1")
          assert status == 0, out
          assert check_runs(machine) == runs + 1, journal(machine)

      with subtest("a switch that breaks parity exits 4 and names the unit"):
          status, out = machine.execute(
              "${parent}/specialisation/lost-render/bin/switch-to-configuration test 2>&1"
          )
          print(out)
          assert status == 4, f"switch-to-configuration exited {status}"
          assert "the following units failed: homelab-probe-check.service" in out, out
          # switch-to-configuration shows `systemctl status` of the failed unit: its last
          # journal lines are the recap of the failed checks and their fixes.
          assert "user palav: " in out, out
          f = one(probe_report(machine), check="user_groups", subject="user palav")
          assert f["status"] == "fail", f
          assert f["remedy"]["kind"] == "nixos", f
          assert "render" in f["remedy"]["text"], f
          assert "FAIL  user palav" in journal(machine)

      with subtest("switching back restores parity and the check passes"):
          status, out = machine.execute("${parent}/bin/switch-to-configuration test 2>&1")
          assert status == 0, out
          r = probe_report(machine)
          assert r["summary"]["ok"] is True, r["findings"]
          assert one(r, check="user_groups", subject="user palav")["status"] == "pass"
    '';
}
