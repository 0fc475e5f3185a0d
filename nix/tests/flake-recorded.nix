# flake.nix's outputs, evaluated with recorders standing in for nixpkgs and crane (no nixpkgs
# here): each builder returns what it was given (`kind` says which builder), each package is its
# attribute name. Used by flake-outputs.nix (the shape of the outputs) and by
# crates/homelab-verify/tests/ci_workflows.rs (the check names the CI workflow builds).
# Evaluates to { flake, lib, pkgsFor, out } (out: the outputs).
let
  flake = import ../../flake.nix;

  lib = {
    genAttrs = names: f: builtins.listToAttrs (map (n: { name = n; value = f n; }) names);
    optionalAttrs = c: a: if c then a else { };
    mapAttrs' = f: set: builtins.listToAttrs (map (n: f n set.${n}) (builtins.attrNames set));
    nameValuePair = name: value: { inherit name value; };
    mkDefault = v: { _priority = "default"; value = v; };
    fileset = {
      toSource = { root, fileset }: { _source = map toString fileset; };
      unions = l: l;
    };
    importTOML = p: builtins.fromTOML (builtins.readFile p);
    licenses.mit = "mit";
    platforms.linux = [ "linux" ];
  };

  craneFor = pkgs: {
    buildDepsOnly = args: { kind = "deps"; inherit args; };
    buildPackage = args: { kind = "package"; inherit args; inherit (args) passthru; system = pkgs.system; };
    cargoClippy = args: { kind = "clippy"; inherit args; };
    cargoFmt = args: { kind = "fmt"; inherit args; };
    cargoTest = args: { kind = "test"; inherit args; };
    devShell = args: { kind = "devShell"; inherit args; };
  };

  pkgsFor = system: rec {
    inherit system;
    stdenv.hostPlatform.system = system;
    callPackage = path: overrides: import path ({ inherit lib; pkg-config = "pkg-config"; getent = "getent"; util-linux = "util-linux"; libva = "libva"; udev = "udev"; } // overrides);
    testers.runNixOSTest = m: { kind = "nixos-test"; file = toString (builtins.head m.imports); defaultsImports = map toString m.defaults.imports; package = m.defaults.services.homelab-probe.package; };
    nixfmt = { kind = "nixfmt"; };
    cargo-nextest = "cargo-nextest"; getent = "getent"; util-linux = "util-linux"; bfs = "bfs"; fd = "fd"; jq = "jq";
  };

  nixpkgs = {
    inherit lib;
    legacyPackages = lib.genAttrs [ "x86_64-linux" "aarch64-linux" ] pkgsFor;
  };
  crane.mkLib = craneFor;

  out = flake.outputs { self = out; inherit nixpkgs crane; };
in
{
  inherit flake lib pkgsFor out;
}
