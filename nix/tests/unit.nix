# homelab-probe-check.service, /etc/homelab-probe.toml and what the continuous-verification
# options (serve, interval, prometheus.textfile) add, as nix/module.nix defines them for given
# option values, evaluated with the real NixOS module system (lib.evalModules of the pinned
# nixpkgs lib, with the NixOS stand-in of ./nixos: real option types, merging, priorities and
# assertions). crates/homelab-verify/tests/nix_unit.rs runs the unit's script against fixture
# hosts with the real homelab-verify, tests/nix_serve.rs the serve unit's commands;
# crates/homelab-probe/tests/nix_module.rs checks what the typed settings render to.
#   nixpkgsLib                    the directory holding nixpkgs' lib/ (docs/testing.md)
#   settings / expectationsFile   as the options (left unset when null)
#   afterMounts                   as the option (its default when null)
#   fileSystems                   as `fileSystems` (for the warnings)
#   interval                      as the option (left unset when null)
#   serve, textfile               definitions of `serve` and `prometheus.textfile` (left unset
#                                 when null, so the module's defaults apply)
#   modules                       more modules of the configuration
# Evaluates to the unit's parts, the store paths the script names (`paths`), the text of the
# check's unit (`unitText`) and of every unit (`unitTexts`, by file name), what the module
# renders to /etc/homelab-probe.toml (`expectations`, null for an expectations file), the
# failed assertions and warnings, and what the continuous-verification options add:
# homelab-probe-serve.service's parts (`serve`, null without it), homelab-probe-check.timer's
# (`timer`, null without it), the serve user and group (null without them), and the values of
# networking.firewall.allowedTCPPorts (`firewallPorts`), systemd.tmpfiles.rules (`tmpfiles`),
# services.prometheus.exporters.node.extraFlags (`nodeExporterFlags`) and, when a module
# enables the node exporter, its unit (`nodeExporter`). Or { typeError = true; } when the module
# system refuses a definition (a type error, an undeclared option or conflicting definitions:
# `builtins.tryEval` catches those).
{
  nixpkgsLib,
  jsonReport ? true,
  afterMounts ? null,
  systemdVersion ? "257.6",
  extraArgs ? [ ],
  settings ? null,
  expectationsFile ? null,
  fileSystems ? { },
  interval ? null,
  serve ? null,
  textfile ? null,
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
      // lib.optionalAttrs (afterMounts != null) { inherit afterMounts; }
      // lib.optionalAttrs (interval != null) { inherit interval; }
      // lib.optionalAttrs (serve != null) { inherit serve; }
      // lib.optionalAttrs (textfile != null) { prometheus.textfile = textfile; };
    inherit fileSystems;
  };

  evaluated = nixos.eval ([ configuration ] ++ modules);
  inherit (evaluated) config;
  unit = config.systemd.services.homelab-probe-check;
  toml = config.environment.etc."homelab-probe.toml".source;
  services = config.systemd.services;
  # Only where the configuration has it.
  ifHas =
    set: name: f:
    if set ? ${name} then f set.${name} else null;

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
    # As the stand-in renders them (nix/tests/nixos/systemd.nix).
    unitTexts = lib.mapAttrs (_: u: u.text) config.systemd.units;
    etcSource = toString toml;
    expectations = toml.value or null;
    afterMountsDefault = evaluated.options.services.homelab-probe.afterMounts.default;
    paths = {
      package = toString pkgs.homelab-verify;
      jq = toString pkgs.jq;
      coreutils = toString pkgs.coreutils;
      systemd = toString config.systemd.package;
    };
    failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
    inherit (config) warnings;

    serve = ifHas services "homelab-probe-serve" (u: {
      inherit (u)
        description
        documentation
        wantedBy
        after
        environment
        serviceConfig
        unitConfig
        ;
      reloadTriggers = map toString u.reloadTriggers;
    });
    timer = ifHas config.systemd.timers "homelab-probe-check" (t: { inherit (t) description wantedBy timerConfig; });
    serveUser = ifHas config.users.users "homelab-probe" (u: {
      inherit (u)
        isSystemUser
        isNormalUser
        uid
        group
        extraGroups
        description
        home
        ;
    });
    serveGroup = ifHas config.users.groups "homelab-probe" (g: { inherit (g) gid members; });
    firewallPorts = config.networking.firewall.allowedTCPPorts;
    tmpfiles = config.systemd.tmpfiles.rules;
    nodeExporterFlags = config.services.prometheus.exporters.node.extraFlags;
    nodeExporter = ifHas services "prometheus-node-exporter" (u: {
      inherit (u.serviceConfig) ExecStart User ProtectSystem ProtectHome;
    });
  };
  tried = builtins.tryEval (builtins.deepSeq result result);
in
if tried.success then tried.value // { typeError = false; } else { typeError = true; }
