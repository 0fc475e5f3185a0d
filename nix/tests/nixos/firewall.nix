# networking.firewall of the stand-in, re-created from nixpkgs
# nixos/modules/services/networking/firewall.nix (NixOS/nixpkgs @ 2e1d0989bcf8968780ca0bd92030d15464791450)
# and firewall-iptables.nix (@ db59d03371a1ca74896c812e1653d5bccc0bc0f4): `enable` (`bool`,
# true), the ports every interface shares (allowedTCPPorts and allowedUDPPorts: `listOf port`,
# sorted and deduplicated by their `apply`; the port ranges: `listOf (attrsOf port)`),
# `interfaces` (the same per interface), `allInterfaces` (internal: `default` with the shared
# ports, plus `interfaces`; what the firewall script opens, one iptables rule per port), and
# extraCommands (`lines`, which services.prometheus.exporters.<name>.openFirewall appends to).
# Left out: the firewall service and its scripts, nftables, logging, ping and reverse-path
# options, the firewall's own packages.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.networking.firewall;

  canonicalizePortList = ports: lib.unique (builtins.sort builtins.lessThan ports);

  commonOptions = {
    allowedTCPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
      apply = canonicalizePortList;
      example = [
        22
        80
      ];
    };
    allowedTCPPortRanges = mkOption {
      type = types.listOf (types.attrsOf types.port);
      default = [ ];
    };
    allowedUDPPorts = mkOption {
      type = types.listOf types.port;
      default = [ ];
      apply = canonicalizePortList;
    };
    allowedUDPPortRanges = mkOption {
      type = types.listOf (types.attrsOf types.port);
      default = [ ];
    };
  };
in
{
  options.networking.firewall = {
    enable = mkOption {
      type = types.bool;
      default = true;
    };
    interfaces = mkOption {
      default = { };
      type = with types; attrsOf (submodule [ { options = commonOptions; } ]);
    };
    allInterfaces = mkOption {
      internal = true;
      visible = false;
      default = {
        default = lib.mapAttrs (name: value: cfg.${name}) commonOptions;
      }
      // cfg.interfaces;
      type = with types; attrsOf (submodule [ { options = commonOptions; } ]);
    };
    extraCommands = mkOption {
      type = types.lines;
      default = "";
    };
  }
  // commonOptions;
}
