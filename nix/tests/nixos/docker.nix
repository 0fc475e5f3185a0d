# virtualisation.docker of the stand-in, re-created from nixpkgs
# nixos/modules/virtualisation/docker.nix (current master as stored by the code index, with the
# freeform `daemon.settings`): enable, package, enableOnBoot, enableNvidia, logDriver,
# daemon.settings (a submodule of pkgs.formats.json's type with the declared `live-restore`),
# and what enabling it does that this project depends on: the group `docker` with
# `gid = config.ids.gids.docker` (131) at ordinary priority, docker.service and docker.socket,
# daemon.settings' `group`, `hosts` and `log-driver` (mkDefault), and the enableNvidia
# assertion. Left out: kernel modules, sysctls, autoPrune, rootless.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.virtualisation.docker;
  settingsFormat = pkgs.formats.json { };
in
{
  options.virtualisation.docker = {
    enable = mkOption {
      type = types.bool;
      default = false;
    };
    enableOnBoot = mkOption {
      type = types.bool;
      default = true;
    };
    enableNvidia = mkOption {
      type = types.bool;
      default = false;
    };
    logDriver = mkOption {
      type = types.enum [
        "none"
        "json-file"
        "syslog"
        "journald"
        "gelf"
        "fluentd"
        "awslogs"
        "splunk"
        "etwlogs"
        "gcplogs"
        "local"
      ];
      default = "journald";
    };
    package = lib.mkPackageOption pkgs "docker" { };
    daemon.settings = mkOption {
      type = types.submodule {
        freeformType = settingsFormat.type;
        options.live-restore = mkOption {
          type = types.bool;
          default = lib.versionOlder config.system.stateVersion "24.11";
        };
      };
      default = { };
    };
  };

  config = lib.mkIf cfg.enable {
    environment.systemPackages = [ cfg.package ];
    users.groups.docker.gid = config.ids.gids.docker;

    systemd.services.docker = {
      wantedBy = lib.optional cfg.enableOnBoot "multi-user.target";
      after = [
        "network.target"
        "docker.socket"
      ];
      requires = [ "docker.socket" ];
      serviceConfig.Type = "notify";
    };

    assertions = [
      {
        assertion = cfg.enableNvidia -> config.hardware.graphics.enable32Bit or false;
        message = "Option enableNvidia on x86_64 requires 32-bit support libraries";
      }
    ];

    virtualisation.docker.daemon.settings = {
      group = "docker";
      hosts = [ "fd://" ];
      log-driver = lib.mkDefault cfg.logDriver;
    };
  };
}
