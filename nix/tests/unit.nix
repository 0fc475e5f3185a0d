# homelab-probe-check.service and /etc/homelab-probe.toml as nix/module.nix defines them for
# given option values, evaluated with the real NixOS module system (lib.evalModules of the
# pinned nixpkgs lib, with the NixOS stand-in of ./nixos: real option types, merging,
# priorities and assertions). crates/homelab-verify/tests/nix_unit.rs runs the unit's script
# against fixture hosts with the real homelab-verify; crates/homelab-probe/tests/nix_module.rs
# checks what the typed settings render to.
#   nixpkgsLib                    the directory holding nixpkgs' lib/ (docs/testing.md)
#   settings / expectationsFile   as the options (left unset when null)
#   afterMounts                   as the option (its default when null)
#   fileSystems                   as `fileSystems` (for the warnings)
#   modules                       more modules of the configuration
# Evaluates to the unit's parts, the store paths the script names (`paths`), what the module
# renders to /etc/homelab-probe.toml (`expectations`, null for an expectations file), the
# failed assertions and warnings; or { typeError = true; } when the module system refuses a
# definition (a type error or conflicting definitions: `builtins.tryEval` catches those).
{
  nixpkgsLib,
  jsonReport ? true,
  afterMounts ? null,
  systemdVersion ? "257.6",
  extraArgs ? [ ],
  settings ? null,
  expectationsFile ? null,
  fileSystems ? { },
  modules ? [ ],
}:
let
  nixos = import ./nixos { inherit nixpkgsLib systemdVersion; };
  inherit (nixos) lib pkgs;

  configuration = {
    imports = [ ../module.nix ];
    services.homelab-probe =
      {
        enable = true;
        inherit jsonReport extraArgs;
        timeout = "5min";
      }
      // lib.optionalAttrs (settings != null) { inherit settings; }
      // lib.optionalAttrs (expectationsFile != null) { inherit expectationsFile; }
      // lib.optionalAttrs (afterMounts != null) { inherit afterMounts; };
    inherit fileSystems;
  };

  evaluated = nixos.eval ([ configuration ] ++ modules);
  inherit (evaluated) config;
  unit = config.systemd.services.homelab-probe-check;
  toml = config.environment.etc."homelab-probe.toml".source;

  result = {
    inherit (unit)
      wantedBy
      after
      environment
      script
      serviceConfig
      unitConfig
      ;
    unitText = config.systemd.units."homelab-probe-check.service".text;
    etcSource = toString toml;
    expectations = toml.value or null;
    afterMountsDefault = evaluated.options.services.homelab-probe.afterMounts.default;
    paths = {
      package = toString pkgs.homelab-verify;
      jq = toString pkgs.jq;
      systemd = toString config.systemd.package;
    };
    failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
    inherit (config) warnings;
  };
  tried = builtins.tryEval (builtins.deepSeq result result);
in
if tried.success then tried.value // { typeError = false; } else { typeError = true; }
