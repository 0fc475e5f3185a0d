# render-node: a virtio GPU's render node on NixOS, checked by homelab-probe-check.service at
# boot, in three machines:
#   nixosdefaults  render is gid 303 and render nodes are 0666 (NixOS's own defaults), and the
#                  expectations say so: the check passes, and the GPU probe lists the virtio GPU
#                  (gpu_inventory) while nothing is required of it; its specialisation that
#                  requires VA-API H.264 encode (`settings.gpu.vaapi`) fails the switch, because
#                  virtio-gpu without virgl has no VA-API driver;
#   render110      render pinned to the old host's gid 110 with lib.mkForce, expectations 110:
#                  the check passes;
#   mismatch       NixOS defaults but the old host's expectations (render 110): the unit fails,
#                  and its journal carries the fix, `users.groups.render.gid = lib.mkForce 110;`.
{ lib, homelab, ... }:
let
  gpu = {
    virtualisation.qemu.options = [
      "-vga none"
      "-device virtio-gpu-pci"
    ];
  };
  palav = {
    users.users.palav = {
      isNormalUser = true;
      uid = 1000;
      extraGroups = [
        "render"
        "video"
      ];
    };
  };
  # The Plex container of the scenario: PUID 1000, PGID 110.
  plex = {
    name = "plex";
    uid = 1000;
    gid = 110;
  };
in
{
  name = "homelab-probe-render-node";

  nodes = {
    nixosdefaults = {
      imports = [
        gpu
        palav
      ];
      system.switch.enable = true;
      specialisation.needs-vaapi.configuration.services.homelab-probe.settings.gpu.vaapi = {
        encode = [ "h264" ];
        node = "/dev/dri/renderD128";
      };
      services.homelab-probe = {
        enable = true;
        settings = {
          groups = {
            render = 303;
            video = 26;
          };
          users.palav = {
            uid = 1000;
            groups = [
              "render"
              "video"
            ];
          };
          render = {
            mode = "0666";
            required = true;
            nodes = [ "/dev/dri/renderD128" ];
            access = [ plex ];
          };
        };
      };
    };

    render110 = {
      imports = [
        gpu
        palav
      ];
      users.groups.render.gid = lib.mkForce 110;
      services.homelab-probe = {
        enable = true;
        settings = {
          groups.render = 110;
          users.palav = {
            uid = 1000;
            groups = [ "render" ];
          };
          render = {
            required = true;
            access = [ plex ];
          };
        };
      };
    };

    mismatch = {
      imports = [
        gpu
        palav
      ];
      services.homelab-probe = {
        enable = true;
        settings = {
          groups.render = 110;
          render.required = true;
        };
      };
    };
  };

  testScript =
    { nodes, ... }:
    let
      defaults = "${nodes.nixosdefaults.system.build.toplevel}";
    in
    homelab.helpers
    + ''
      start_all()

      with subtest("NixOS defaults (render 303, mode 0666) pass matching expectations"):
          assert wait_for_check(nixosdefaults) == "success"
          r = probe_report(nixosdefaults)
          assert r["summary"]["ok"] is True, r["summary"]
          assert r["host"]["live"] is True
          assert r["expectations"] == "/etc/homelab-probe.toml"
          node = one(r, check="node", subject="/dev/dri/renderD128")["evidence"]["node"]
          assert node["stat"]["gid"] == 303, node
          assert node["stat"]["mode"] == "0666", node
          assert node["pci"]["vendor"] == "0x1af4", node  # virtio
          for check in ["render_group", "render_mode", "render_group_access", "render_access"]:
              assert one(r, check=check, subject="/dev/dri/renderD128")["status"] == "pass"
          assert one(r, check="group_gid", subject="group render")["status"] == "pass"
          assert one(r, check="user_groups", subject="user palav")["status"] == "pass"
          # The human report is in the journal, without colours.
          text = journal(nixosdefaults)
          assert "summary: " in text and ": OK" in text, text
          assert "\x1b[" not in text, text
          # The GPU probe lists the virtio GPU; nothing is required of it (settings.gpu = { }).
          inventory = findings(r, probe="gpu", check="gpu_inventory")
          assert len(inventory) == 1 and inventory[0]["status"] == "pass", inventory
          gpu = inventory[0]["evidence"]["gpu"]
          assert (gpu["vendor"], gpu["pci"]["vendor"], gpu["render_node"]) == (
              "virtio", "0x1af4", "/dev/dri/renderD128"
          ), gpu
          assert inventory[0]["subject"] == gpu["pci"]["address"], inventory

      with subtest("requiring VA-API H.264 encode on virtio-gpu fails the switch, with the reason"):
          status, out = nixosdefaults.execute(
              "${defaults}/specialisation/needs-vaapi/bin/switch-to-configuration test 2>&1"
          )
          print(out)
          assert status == 4, f"switch-to-configuration exited {status}"
          assert "the following units failed: homelab-probe-check.service" in out, out
          r = probe_report(nixosdefaults)
          f = one(r, check="vaapi_encode", subject="VA-API h264 encode on /dev/dri/renderD128")
          assert f["status"] == "fail", f
          assert f["remedy"]["kind"] == "manual" and "virgl" in f["remedy"]["text"], f
          assert {check for check, _, _ in failing(r)} <= {"vaapi", "vaapi_encode"}, failing(r)
          status, out = nixosdefaults.execute("${defaults}/bin/switch-to-configuration test 2>&1")
          assert status == 0, out
          assert probe_report(nixosdefaults)["summary"]["ok"] is True

      with subtest("render pinned to 110 with lib.mkForce passes expectations of 110"):
          assert wait_for_check(render110) == "success"
          r = probe_report(render110)
          assert r["summary"]["ok"] is True, r["summary"]
          assert one(r, check="group_gid", subject="group render")["status"] == "pass"
          node = one(r, check="node", subject="/dev/dri/renderD128")["evidence"]["node"]
          assert node["stat"]["gid"] == 110, node
          access = one(r, check="render_access", subject="/dev/dri/renderD128")
          assert access["status"] == "pass", access

      with subtest("expectations of 110 on NixOS defaults fail the unit, with the fix in the journal"):
          assert wait_for_check(mismatch) == "exit-code"
          assert mismatch.succeed("systemctl show -P ActiveState homelab-probe-check.service").strip() == "failed"
          r = probe_report(mismatch)
          assert r["summary"]["ok"] is False
          f = one(r, check="group_gid", subject="group render")
          assert f["status"] == "fail", f
          assert f["evidence"]["gid"] == 303, f
          assert f["remedy"] == {"kind": "nixos", "text": "users.groups.render.gid = lib.mkForce 110;"}, f
          text = journal(mismatch)
          assert "FAIL  group render" in text, text
          assert "fix (nixos): users.groups.render.gid = lib.mkForce 110;" in text, text
          assert "fail: FAILED" in text, text
          # The recap the unit prints last (what `systemctl status` shows after a switch).
          assert "  group render: users.groups.render.gid = lib.mkForce 110;" in text, text
    '';
}
