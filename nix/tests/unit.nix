# The homelab-probe-check.service the module defines, for given option values, read through
# the recorder in stub-lib.nix (see there). `/PKG`, `/JQ` and `/SYSTEMD` stand for the store
# paths of homelab-verify, jq and systemd. crates/homelab-verify/tests/nix_unit.rs runs the
# unit's script against fixture hosts with the real homelab-verify.
#   settings / expectationsFile   as the options (a `settings` definition, filled with the
#                                 declared defaults); afterMountsDefault is what `afterMounts`
#                                 defaults to for them;
#   fileSystems                   as `config.fileSystems` (for the warnings).
{
  jsonReport ? true,
  afterMounts ? [ ],
  systemdVersion ? "257.6",
  extraArgs ? [ ],
  settings ? { },
  expectationsFile ? null,
  fileSystems ? { },
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
  unit = module.config.content.systemd.services.homelab-probe-check;
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
}
