# services.prometheus.exporters.node of the stand-in, re-created from nixpkgs
# nixos/modules/services/monitoring/prometheus/exporters.nix
# (NixOS/nixpkgs @ 92fe62e1de5b587ee05d81400d8701558065f814) and exporters/node.nix
# (@ b66158b36393dc57a7e8f39eb4cb2c3d54b66333): the options every exporter has (mkExporterOpts:
# enable, port (`port`, 9100 for node), listenAddress (`str`, "0.0.0.0"), extraFlags (`listOf
# str`), openFirewall, firewallFilter (`nullOr str`, by default the port's iptables match when
# openFirewall is set), user and group ("node-exporter")), node's own enabledCollectors and
# disabledCollectors (`listOf str`), and what enabling it does (mkExporterConf with node's
# serviceOpts): prometheus-node-exporter.service with its hardening and its ExecStart (the
# collectors, the listen address, then extraFlags), the system user and group node-exporter
# (node's unit is not DynamicUser), the firewall rule, and exporters.nix's assertion that
# firewallFilter needs openFirewall. The other exporters are left out (the option tree is
# `services.prometheus.exporters.node` only).
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib) mkDefault mkIf mkOption types;
  cfg = config.services.prometheus.exporters;
  conf = cfg.node;
  name = "node";
  port = 9100;

  mkExporterOpts = {
    enable = lib.mkEnableOption "the prometheus ${name} exporter";
    port = mkOption {
      type = types.port;
      default = port;
    };
    listenAddress = mkOption {
      type = types.str;
      default = "0.0.0.0";
    };
    extraFlags = mkOption {
      type = types.listOf types.str;
      default = [ ];
    };
    openFirewall = mkOption {
      type = types.bool;
      default = false;
    };
    firewallFilter = mkOption {
      type = types.nullOr types.str;
      default = null;
    };
    user = mkOption {
      type = types.str;
      default = "${name}-exporter";
    };
    group = mkOption {
      type = types.str;
      default = "${name}-exporter";
    };
  };

  # exporters/node.nix
  extraOpts = {
    enabledCollectors = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "systemd" ];
    };
    disabledCollectors = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "timex" ];
    };
  };
  collectorIsEnabled = final: lib.any (collector: final == collector) conf.enabledCollectors;
  collectorIsDisabled = final: lib.any (collector: final == collector) conf.disabledCollectors;
  serviceOpts = {
    serviceConfig = {
      DynamicUser = false;
      RuntimeDirectory = "prometheus-node-exporter";
      ExecStart = ''
        ${pkgs.prometheus-node-exporter}/bin/node_exporter \
          ${lib.concatMapStringsSep " " (x: "--collector." + x) conf.enabledCollectors} \
          ${lib.concatMapStringsSep " " (x: "--no-collector." + x) conf.disabledCollectors} \
          --web.listen-address ${conf.listenAddress}:${toString conf.port} ${lib.concatStringsSep " " conf.extraFlags}
      '';
      RestrictAddressFamilies =
        lib.optionals (collectorIsEnabled "logind" || collectorIsEnabled "systemd") [ "AF_UNIX" ]
        ++ lib.optionals (
          collectorIsEnabled "network_route" || collectorIsEnabled "wifi" || !collectorIsDisabled "netdev"
        ) [ "AF_NETLINK" ];
      ProtectClock = collectorIsDisabled "timex";
      ProtectHome = true;
    };
  };

  enableDynamicUser = serviceOpts.serviceConfig.DynamicUser or true;
in
{
  options.services.prometheus.exporters = mkOption {
    type = types.submodule {
      options.${name} = mkOption {
        type = types.submodule [
          { options = mkExporterOpts // extraOpts; }
          (
            { config, ... }:
            mkIf config.openFirewall {
              firewallFilter = mkDefault "-p tcp -m tcp --dport ${toString config.port}";
            }
          )
        ];
        internal = true;
        default = { };
      };
    };
    default = { };
  };

  config = lib.mkMerge [
    {
      assertions = map (exporter: {
        assertion = cfg.${exporter}.firewallFilter != null -> cfg.${exporter}.openFirewall;
        message = ''
          The `firewallFilter'-option of exporter ${exporter} doesn't have any effect unless
          `openFirewall' is set to `true'!
        '';
      }) (builtins.attrNames cfg);
    }
    # mkExporterConf
    (mkIf conf.enable {
      users.users."${name}-exporter" = mkIf (conf.user == "${name}-exporter" && !enableDynamicUser) {
        description = "Prometheus ${name} exporter service user";
        isSystemUser = true;
        inherit (conf) group;
      };
      users.groups = mkIf (conf.group == "${name}-exporter" && !enableDynamicUser) {
        "${name}-exporter" = { };
      };
      networking.firewall.extraCommands = mkIf conf.openFirewall (
        lib.concatStrings [
          "ip46tables -A nixos-fw ${conf.firewallFilter} "
          "-m comment --comment ${name}-exporter -j nixos-fw-accept"
        ]
      );
      systemd.services."prometheus-${name}-exporter" = lib.mkMerge [
        {
          wantedBy = [ "multi-user.target" ];
          after = [ "network.target" ];
          serviceConfig.Restart = mkDefault "always";
          serviceConfig.PrivateTmp = mkDefault true;
          serviceConfig.WorkingDirectory = mkDefault /tmp;
          serviceConfig.DynamicUser = mkDefault enableDynamicUser;
          serviceConfig.User = mkDefault conf.user;
          serviceConfig.Group = conf.group;
          serviceConfig.CapabilityBoundingSet = mkDefault [ "" ];
          serviceConfig.DeviceAllow = [ "" ];
          serviceConfig.LockPersonality = true;
          serviceConfig.MemoryDenyWriteExecute = true;
          serviceConfig.NoNewPrivileges = true;
          serviceConfig.PrivateDevices = true;
          serviceConfig.ProtectClock = mkDefault true;
          serviceConfig.ProtectControlGroups = true;
          serviceConfig.ProtectHome = true;
          serviceConfig.ProtectHostname = true;
          serviceConfig.ProtectKernelLogs = true;
          serviceConfig.ProtectKernelModules = true;
          serviceConfig.ProtectKernelTunables = true;
          serviceConfig.ProtectSystem = mkDefault "strict";
          serviceConfig.RemoveIPC = true;
          serviceConfig.RestrictAddressFamilies = [
            "AF_INET"
            "AF_INET6"
          ];
          serviceConfig.RestrictNamespaces = true;
          serviceConfig.RestrictRealtime = true;
          serviceConfig.RestrictSUIDSGID = true;
          serviceConfig.SystemCallArchitectures = "native";
          serviceConfig.UMask = "0077";
        }
        serviceOpts
      ];
    })
  ];
}
