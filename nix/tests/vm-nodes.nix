# The node configurations of the VM tests (nixos-tests/*.nix), each with every specialisation,
# evaluated with the real NixOS module system (the stand-in of ./nixos): as nixos-tests/default.nix
# wraps them (services.homelab-probe's module and package added to every node), with a
# `hostPkgs` whose builders return fixed paths (./stub-host-pkgs.nix; `planned` is the directory
# `homelab-verify plan` wrote, which nixos-tests/generated.nix imports). Booting them still
# needs nixpkgs (`nix flake check`); evaluating them does not.
# Evaluates to { <test> = { <node> = { node = <summary>; specialisations = { <name> = <summary>; }; }; }; }
# where a summary is ./nixos's (failed assertions, warnings, groups, users, fileSystems) plus
# what the module renders to /etc/homelab-probe.toml (`expectations`, null for a file) and the
# check unit's `unitConfig`.
{ nixpkgsLib, planned }:
let
  nixos = import ./nixos { inherit nixpkgsLib; };
  inherit (nixos) lib pkgs;
  hpLib = import ../lib.nix;

  homelab = {
    package = pkgs.homelab-verify;
    helpers = builtins.readFile ../../nixos-tests/lib/helpers.py;
    fixtures = ../../crates/homelab-probe/tests/fixtures;
  };
  hostPkgs = import ./stub-host-pkgs.nix planned;
  # nixos-tests/default.nix's `defaults`, and what qemu-vm.nix (part of every test node) does
  # with `virtualisation.fileSystems`: `fileSystems = mkIf (cfg.fileSystems != { })
  # (mkVMOverride cfg.fileSystems)`.
  defaults =
    { config, ... }:
    {
      imports = [ ../module.nix ];
      services.homelab-probe.package = homelab.package;
      fileSystems = lib.mkIf (config.virtualisation.fileSystems != { }) (
        lib.mkVMOverride config.virtualisation.fileSystems
      );
    };

  summary =
    evaluated:
    let
      c = evaluated.config;
      etc = c.environment.etc."homelab-probe.toml" or null;
    in
    nixos.summary c
    // {
      expectations = if etc == null then null else etc.source.value or null;
      checkUnitConfig = c.systemd.services.homelab-probe-check.unitConfig or null;
      virtualisationFileSystems = lib.mapAttrs (_: fs: { inherit (fs) device fsType options; }) c.virtualisation.fileSystems;
    };

  nodes =
    name:
    let
      t = import (../../nixos-tests + "/${name}.nix") { inherit lib homelab hostPkgs; };
    in
    lib.mapAttrs (
      _: node:
      let
        modules = [
          defaults
          node
        ];
      in
      {
        node = summary (nixos.eval modules);
        specialisations = lib.mapAttrs (s: _: summary (nixos.specialisationOf modules s)) (
          nixos.eval modules
        ).config.specialisation;
      }
    ) t.nodes;
in
lib.genAttrs (hpLib.testNames (builtins.readDir ../../nixos-tests)) nodes
