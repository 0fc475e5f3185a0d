# The homelab-probe-check.service the module defines, for given option values, read through
# the recorder in stub-lib.nix (see there). `/PKG`, `/JQ` and `/SYSTEMD` stand for the store
# paths of homelab-verify, jq and systemd. crates/homelab-verify/tests/nix_unit.rs runs the
# unit's script against fixture hosts with the real homelab-verify.
#   settings / expectationsFile   as the options (a `settings` definition, filled with the
#                                 declared defaults); afterMountsDefault is what `afterMounts`
#                                 defaults to for them;
#   fileSystems                   as `config.fileSystems` (for the warnings).
#   interval, serve, textfile     as the options `interval`, `serve.*` and
#                                 `prometheus.textfile.*` (unset ones at their defaults); the
#                                 result then also has `serve` (homelab-probe-serve.service), the
#                                 timer, the serve user and group, the firewall ports, the
#                                 tmpfiles rules and the node exporter's extra flags.
{
  jsonReport ? true,
  afterMounts ? [ ],
  systemdVersion ? "257.6",
  extraArgs ? [ ],
  settings ? { },
  expectationsFile ? null,
  fileSystems ? { },
  interval ? null,
  serve ? { },
  textfile ? { },
}:
let
  stub = import ./stub-lib.nix;
  settingsDef = settings;
  module = import ../module.nix {
    lib = stub;
    pkgs = stub.pkgs // {
      jq = {
        outPath = "/JQ";
        meta.mainProgram = "jq";
      };
      coreutils = {
        outPath = "/COREUTILS";
      };
    };
    config = {
      services.homelab-probe = {
        enable = true;
        package = "/PKG";
        settings = (import ./options.nix).settingsWith settingsDef;
        inherit
          expectationsFile
          jsonReport
          afterMounts
          extraArgs
          ;
        timeout = "5min";
        inherit interval;
        serve = {
          enable = false;
          listenAddress = "127.0.0.1";
          port = 9723;
          openFirewall = false;
          extraArgs = [ ];
        }
        // serve;
        prometheus.textfile = {
          enable = false;
          directory = "/var/lib/prometheus-node-exporter-text-files";
        }
        // textfile;
      };
      inherit fileSystems;
      systemd.mounts = [ ];
      systemd.package = {
        outPath = "/SYSTEMD";
        version = systemdVersion;
      };
      users = {
        groups = { };
        users = { };
        mutableUsers = true;
      };
    };
    options.services.homelab-probe.settings.highestPrio = 1500;
  };
  content = module.config.content;
  unit = content.systemd.services.homelab-probe-check;
  # The value of a `lib.mkIf` (the recorder keeps condition and content): null when false.
  ifTrue = v: if v.condition then v.content else null;
  serveUnit = ifTrue content.systemd.services.homelab-probe-serve;
in
{
  inherit (unit)
    wantedBy
    after
    environment
    script
    serviceConfig
    ;
  unitConfig = if unit.unitConfig.condition then unit.unitConfig.content else { };
  etc = module.config.content.environment.etc;
  afterMountsDefault = module.options.services.homelab-probe.afterMounts.default;
  # The messages of the assertions that fail, and the warnings.
  failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) module.config.content.assertions);
  inherit (module.config.content) warnings;
  serve =
    if serveUnit == null then
      null
    else
      {
        inherit (serveUnit)
          wantedBy
          after
          environment
          serviceConfig
          reloadTriggers
          ;
        unitConfig = ifTrue serveUnit.unitConfig;
      };
  timer = ifTrue content.systemd.timers.homelab-probe-check;
  serveUser = ifTrue content.users.users.homelab-probe;
  serveGroup = ifTrue content.users.groups.homelab-probe;
  firewallPorts = ifTrue content.networking.firewall.allowedTCPPorts;
  tmpfiles = content.systemd.tmpfiles.rules;
  nodeExporterFlags = ifTrue content.services.prometheus.exporters.node.extraFlags;
}
