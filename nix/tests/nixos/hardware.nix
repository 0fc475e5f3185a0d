# GPU options of the stand-in, re-created from nixpkgs:
# - nixos/modules/hardware/graphics.nix (NixOS/nixpkgs @ 0009474fe6d7de65608118277fba2fdca125fb01):
#   hardware.graphics.{enable, enable32Bit, extraPackages, package}; creates no groups;
# - nixos/modules/hardware/video/nvidia.nix (current master as stored by the code index; the
#   same assertion since the 560 drivers): hardware.nvidia.{enable, enabled, open,
#   datacenter.enable, package}; NVIDIA is enabled by "nvidia" in services.xserver.videoDrivers
#   (nixos/modules/services/x11/xserver.nix: `hardware.nvidia.enable = mkIf nvidiaOnX11 true`)
#   and then asserts that `open` is set; creates no groups;
# - nixos/modules/services/hardware/nvidia-container-toolkit/default.nix (current master as
#   stored by the code index): hardware.nvidia-container-toolkit.{enable,
#   suppressNvidiaDriverAssertion}; asserts the NVIDIA driver (datacenter, "nvidia" in
#   videoDrivers, or the suppression), turns on hardware.graphics and Docker's CDI feature;
#   creates no groups.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  nvidia = config.hardware.nvidia;
  toolkit = config.hardware.nvidia-container-toolkit;
in
{
  options = {
    hardware.graphics = {
      enable = mkOption {
        type = types.bool;
        default = false;
      };
      enable32Bit = mkOption {
        type = types.bool;
        default = false;
      };
      package = mkOption {
        type = types.package;
        internal = true;
      };
      extraPackages = mkOption {
        type = types.listOf types.package;
        default = [ ];
      };
    };

    services.xserver.videoDrivers = mkOption {
      type = types.listOf types.str;
      default = [
        "modesetting"
        "fbdev"
      ];
    };

    hardware.nvidia = {
      enable = lib.mkEnableOption "NVIDIA driver support";
      enabled = mkOption {
        readOnly = true;
        type = types.bool;
        default = nvidia.enable || nvidia.datacenter.enable;
      };
      datacenter.enable = lib.mkEnableOption "Data Center drivers";
      package = mkOption {
        default = pkgs.nvidia-x11;
      };
      open = mkOption {
        type = types.nullOr types.bool;
        default = if lib.versionOlder nvidia.package.version "560" then false else null;
      };
    };

    hardware.nvidia-container-toolkit = {
      enable = mkOption {
        default = false;
        type = types.bool;
      };
      suppressNvidiaDriverAssertion = mkOption {
        default = false;
        type = types.bool;
      };
      package = mkOption {
        type = types.package;
        default = pkgs.nvidia-container-toolkit;
      };
    };
  };

  config = lib.mkMerge [
    (lib.mkIf config.hardware.graphics.enable {
      hardware.graphics.package = lib.mkDefault pkgs.mesa;
    })
    { hardware.nvidia.enable = lib.mkIf (lib.elem "nvidia" config.services.xserver.videoDrivers) (lib.mkDefault true); }
    (lib.mkIf nvidia.enabled {
      assertions = [
        {
          assertion = nvidia.open != null || nvidia.datacenter.enable;
          message = "You must configure `hardware.nvidia.open` on NVIDIA driver versions >= 560.";
        }
      ];
      hardware.graphics.extraPackages = [ nvidia.package ];
    })
    (lib.mkIf toolkit.enable {
      assertions = [
        {
          assertion =
            nvidia.datacenter.enable
            || lib.elem "nvidia" config.services.xserver.videoDrivers
            || toolkit.suppressNvidiaDriverAssertion;
          message = "`nvidia-container-toolkit` requires nvidia drivers: set `hardware.nvidia.datacenter.enable`, add \"nvidia\" to `services.xserver.videoDrivers`, or set `hardware.nvidia-container-toolkit.suppressNvidiaDriverAssertion` if the driver is provided by another NixOS module (e.g. from NixOS-WSL)";
        }
      ];
      hardware.graphics.enable = lib.mkIf (!nvidia.datacenter.enable) true;
      virtualisation.docker.daemon.settings = lib.mkIf (lib.versionAtLeast config.virtualisation.docker.package.version "25") {
        features.cdi = true;
      };
      systemd.services.nvidia-container-toolkit-cdi-generator = {
        description = "Container Device Interface (CDI) for Nvidia generator";
        after = [ "systemd-udev-settle.service" ];
        requiredBy = lib.mkIf config.virtualisation.docker.enable [ "docker.service" ];
        wantedBy = [ "multi-user.target" ];
        serviceConfig = {
          RuntimeDirectory = "cdi";
          RemainAfterExit = true;
          Type = "oneshot";
        };
      };
    })
  ];
}
