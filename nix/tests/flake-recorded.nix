# flake.nix's outputs, evaluated with recorders standing in for nixpkgs and crane (no nixpkgs
# here): each builder returns what it was given (`kind` says which builder), each package is its
# attribute name. Used by flake-outputs.nix (the shape of the outputs) and by
# crates/homelab-verify/tests/ci_workflows.rs (the check names the CI workflow builds).
# Evaluates to { flake, lib, pkgsFor, out, rev } (out: the outputs; rev: the recorded flake revision).
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
    # The real one is "${lib.getBin p}/bin/${p.meta.mainProgram}": recorded, not built.
    getExe = p: { exeOf = p; };
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

  # A flake built from a clean git checkout has its revision and its last commit's date.
  rev = "20bfb7599a45d2f0945ecc001a3dcfa9dd53c7b0";
  self = out // { inherit rev; lastModifiedDate = "20261125093015"; };
  out = flake.outputs { inherit self nixpkgs crane; };
in
{
  inherit flake lib pkgsFor out rev;
}
