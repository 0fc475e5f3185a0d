# The rest of the stand-in: what the project's modules and the VM tests' node configurations
# set besides users, file systems, systemd units, GPUs and Docker, declared as nixpkgs does:
# - assertions and warnings (nixos/modules/misc/assertions.nix): `listOf unspecified`,
#   `listOf str`;
# - environment.etc (nixos/modules/system/etc/etc.nix): `attrsOf submodule` with enable,
#   target, text (`nullOr lines`), source (`path`, from `text` when that is set) and mode;
#   environment.systemPackages (`listOf package`);
# - system.stateVersion (`str`), system.switch.enable (`bool`), system.build (`attrsOf
#   unspecified`, with the `toplevel` the VM scripts name);
# - specialisation.<name>.configuration (nixos/modules/system/activation/specialisation.nix):
#   a deferred module; `isSpecialisation` (`bool`, false; a specialisation is evaluated with it
#   true, as nixpkgs does with extendModules);
# - virtualisation.{qemu.options, emptyDiskImages, memorySize, fileSystems}
#   (nixos/modules/virtualisation/qemu-vm.nix): `listOf str`, `listOf ints.positive`,
#   `ints.positive`, and the very declaration of `fileSystems` (`options.fileSystems`).
{
  config,
  lib,
  options,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;
in
{
  options = {
    assertions = mkOption {
      type = types.listOf types.unspecified;
      internal = true;
      default = [ ];
    };
    warnings = mkOption {
      type = types.listOf types.str;
      internal = true;
      default = [ ];
    };

    environment.systemPackages = mkOption {
      type = types.listOf types.package;
      default = [ ];
    };
    environment.etc = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule (
          { name, config, ... }:
          {
            options = {
              enable = mkOption {
                type = types.bool;
                default = true;
              };
              target = mkOption {
                type = types.str;
                default = name;
              };
              text = mkOption {
                default = null;
                type = types.nullOr types.lines;
              };
              source = mkOption { type = types.path; };
              mode = mkOption {
                type = types.str;
                default = "symlink";
              };
            };
            config.source = lib.mkIf (config.text != null) (lib.mkDefault (pkgs.writeText "etc-${name}" config.text));
          }
        )
      );
    };

    system.stateVersion = mkOption {
      type = types.str;
      default = "26.05";
    };
    system.switch.enable = mkOption {
      type = types.bool;
      default = false;
    };
    system.build = mkOption {
      type = types.attrsOf types.unspecified;
      default = { };
    };

    isSpecialisation = mkOption {
      type = types.bool;
      internal = true;
      default = false;
    };
    specialisation = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule {
          options.inheritParentConfig = mkOption {
            type = types.bool;
            default = true;
          };
          options.configuration = mkOption {
            type = types.deferredModule;
            default = { };
          };
        }
      );
    };

    virtualisation = {
      qemu.options = mkOption {
        type = types.listOf types.str;
        default = [ ];
      };
      emptyDiskImages = mkOption {
        type = types.listOf types.ints.positive;
        default = [ ];
      };
      memorySize = mkOption {
        type = types.ints.positive;
        default = 1024;
      };
      fileSystems = options.fileSystems;
    };
  };

  config.system.build.toplevel = "/nix/store/00000000000000000000000000000000-nixos-system";
}
