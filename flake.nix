{
  description = "homelab-probe: prove a homelab host is what its owner thinks it is after a move to NixOS";

  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    crane.url = "github:ipetkov/crane";
  };

  outputs =
    {
      self,
      nixpkgs,
      crane,
    }:
    let
      inherit (nixpkgs) lib;
      systems = [
        "x86_64-linux"
        "aarch64-linux"
      ];
      forAllSystems = f: lib.genAttrs systems (system: f nixpkgs.legacyPackages.${system});

      # The commit for `homelab-verify --version`: the flake's revision (dirty when built from a
      # working tree with changes), the date of its last commit in UTC.
      gitRev = self.rev or self.dirtyRev or null;
      gitDate =
        let
          d = self.lastModifiedDate or null;
        in
        if d == null then
          null
        else
          "${builtins.substring 0 4 d}-${builtins.substring 4 2 d}-${builtins.substring 6 2 d}";

      # homelab-verify built with (and for) the given package set.
      homelabVerifyFor =
        pkgs:
        pkgs.callPackage ./nix/package.nix {
          craneLib = crane.mkLib pkgs;
          inherit gitRev gitDate;
        };
    in
    {
      packages = forAllSystems (
        pkgs:
        let
          homelab-verify = homelabVerifyFor pkgs;
        in
        {
          inherit homelab-verify;
          default = homelab-verify;
        }
      );

      # `nix run github:homelab-probe/homelab-probe -- capture -o snapshot.json`
      apps = forAllSystems (pkgs: {
        default = {
          type = "app";
          program = lib.getExe self.packages.${pkgs.stdenv.hostPlatform.system}.homelab-verify;
        };
      });

      overlays.default = final: prev: { homelab-verify = homelabVerifyFor final; };

      # The module, with `package` defaulting to homelab-verify built from the host's own
      # nixpkgs (no overlay needed). nix/module.nix alone expects `pkgs.homelab-verify`
      # (overlays.default).
      nixosModules.homelab-probe =
        { lib, pkgs, ... }:
        {
          imports = [ ./nix/module.nix ];
          services.homelab-probe.package = lib.mkDefault (homelabVerifyFor pkgs);
        };
      nixosModules.default = self.nixosModules.homelab-probe;

      # Alert rules for the Prometheus that scrapes the hosts (docs/monitoring.md):
      # services.prometheus.ruleFiles = [ homelab-probe.lib.prometheusRules ];
      lib.prometheusRules = ./nix/prometheus-rules.yml;

      devShells = forAllSystems (pkgs: {
        default = (crane.mkLib pkgs).devShell {
          # The build inputs of the cargo checks (not of the VM tests).
          checks = self.packages.${pkgs.stdenv.hostPlatform.system}.homelab-verify.passthru.checks;
          packages = with pkgs; [
            cargo-nextest
            getent
            util-linux
            bfs
            fd
            jq
            nixfmt
          ];
        };
      });

      formatter = forAllSystems (pkgs: pkgs.nixfmt);

      # `nix flake check`: the package (build and cargo tests), clippy, rustfmt and the cargo
      # tests on their own, and on x86_64-linux the NixOS VM tests (nixos-tests/).
      checks = forAllSystems (
        pkgs:
        let
          system = pkgs.stdenv.hostPlatform.system;
          homelab-verify = self.packages.${system}.homelab-verify;
          vmTests = import ./nixos-tests {
            inherit pkgs;
            package = homelab-verify;
          };
        in
        {
          inherit homelab-verify;
          inherit (homelab-verify.passthru.checks) clippy rustfmt tests;
        }
        // lib.optionalAttrs (system == "x86_64-linux") (
          lib.mapAttrs' (name: test: lib.nameValuePair "nixos-${name}" test) vmTests
        )
      );
    };
}
