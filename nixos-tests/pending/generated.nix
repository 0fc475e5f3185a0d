# PENDING(plan): the `generated` VM test, to be moved to nixos-tests/generated.nix (one file:
# nixos-tests/default.nix picks it up) once `homelab-verify plan` is merged. Written against
# the plan issue's interface (`homelab-verify plan SNAPSHOT --out DIR` writing
# hardware-parity.nix and homelab-probe.toml); not evaluated anywhere yet. Check the snapshot
# path, the options and the expected findings when moving it.
#
# It boots the module that `plan` generates from a fixture snapshot of the old host, with the
# expectations `plan` wrote, and requires the check to pass: what plan pins is what check
# verifies.
{ hostPkgs, homelab, ... }:
let
  snapshot = "${homelab.fixtures}/snapshots/popos-old-host.json";
  planned = hostPkgs.runCommand "homelab-probe-plan" { } ''
    ${homelab.package}/bin/homelab-verify plan ${snapshot} --out $out
  '';
in
{
  name = "homelab-probe-generated";

  nodes.machine = {
    # Importing a file a derivation wrote is import-from-derivation: allowed by default in
    # `nix flake check` (not on Hydra).
    imports = [ "${planned}/hardware-parity.nix" ];
    virtualisation.qemu.options = [
      "-vga none"
      "-device virtio-gpu-pci"
    ];
    services.homelab-probe = {
      enable = true;
      # A store path as a string: the module does not read it at evaluation (that would be
      # import-from-derivation), so afterMounts stays empty; list the plan's [[mounts]] paths
      # and [[drift]] roots there if the snapshot has any.
      expectationsFile = "${planned}/homelab-probe.toml";
    };
  };

  testScript = homelab.helpers + ''
    machine.start()
    assert wait_for_check(machine) == "success", journal(machine)
    r = probe_report(machine)
    assert r["summary"]["ok"] is True, r["findings"]
    assert r["summary"]["fail"] == 0
  '';
}
