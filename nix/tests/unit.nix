# The homelab-probe-check.service the module defines, for given option values, read through
# the recorder in stub-lib.nix (see there). `/PKG`, `/JQ` and `/SYSTEMD` stand for the store
# paths of homelab-verify, jq and systemd. crates/homelab-verify/tests/nix_unit.rs runs the
# unit's script against fixture hosts with the real homelab-verify.
{
  jsonReport ? true,
  afterMounts ? [ ],
  systemdVersion ? "257.6",
  extraArgs ? [ ],
}:
let
  stub = import ./stub-lib.nix;
  settings = (import ./options.nix).settingsWith { };
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
        inherit
          settings
          jsonReport
          afterMounts
          extraArgs
          ;
        expectationsFile = null;
        timeout = "5min";
      };
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
}
