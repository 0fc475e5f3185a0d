# users.users and users.groups of the stand-in, re-created from nixpkgs
# nixos/modules/config/users-groups.nix (NixOS/nixpkgs @ 005ab72f9cf5a75cdcd9ff672fb4a3b03391619f):
# the options this project's modules and the generated hardware-parity.nix set, with the real
# types (passwdEntry names, `nullOr int` ids, `passwdEntry path` home), the real `apply` checks
# (a user or primary group name of 32 characters or more aborts evaluation), the real defaults
# of isNormalUser, the groups and users every NixOS system has, and the real assertions: ids
# unique (users.enforceIdUniqueness), user names matching `[a-zA-Z0-9_.][a-zA-Z0-9_.-]*`, a
# primary group that exists, normal users at uid 1000 or more, exactly one of isNormalUser and
# isSystemUser, a group set. Left out: passwords, shells, subuids, lingering, initrd users.
# `systemd-journal` (nixos/modules/system/boot/systemd/journald.nix) and `keys`
# (nixos/modules/system/boot/systemd.nix) are created here too: every NixOS system has them
# (crates/homelab-probe/src/nixos/groups.rs lists the same groups; a test compares).
{ config, lib, ... }:
let
  inherit (lib) mkOption mkDefault types;
  cfg = config.users;
  ids = config.ids;

  userOpts =
    { name, config, ... }:
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
        };
        name = mkOption {
          type = types.passwdEntry types.str;
          apply =
            x:
            assert (
              builtins.stringLength x < 32 || abort "Username '${x}' is longer than 31 characters which is not allowed!"
            );
            x;
        };
        description = mkOption {
          type = types.passwdEntry types.str;
          default = "";
        };
        uid = mkOption {
          type = with types; nullOr int;
          default = null;
        };
        isSystemUser = mkOption {
          type = types.bool;
          default = false;
        };
        isNormalUser = mkOption {
          type = types.bool;
          default = false;
        };
        group = mkOption {
          type = types.str;
          apply =
            x:
            assert (
              builtins.stringLength x < 32 || abort "Group name '${x}' is longer than 31 characters which is not allowed!"
            );
            x;
          default = "";
        };
        extraGroups = mkOption {
          type = types.listOf types.str;
          default = [ ];
        };
        home = mkOption {
          type = types.passwdEntry types.path;
          default = "/var/empty";
        };
        createHome = mkOption {
          type = types.bool;
          default = false;
        };
        useDefaultShell = mkOption {
          type = types.bool;
          default = false;
        };
      };
      config = lib.mkMerge [
        { name = mkDefault name; }
        (lib.mkIf config.isNormalUser {
          group = mkDefault "users";
          createHome = mkDefault true;
          home = mkDefault "${cfg.defaultUserHome}/${config.name}";
          useDefaultShell = mkDefault true;
          isSystemUser = mkDefault false;
        })
      ];
    };

  groupOpts =
    { name, config, ... }:
    {
      options = {
        name = mkOption { type = types.passwdEntry types.str; };
        gid = mkOption {
          type = with types; nullOr int;
          default = null;
        };
        members = mkOption {
          type = with types; listOf (passwdEntry str);
          default = [ ];
        };
      };
      config = {
        name = mkDefault name;
        members = lib.mapAttrsToList (n: u: u.name) (
          lib.filterAttrs (n: u: u.enable && lib.elem config.name u.extraGroups) cfg.users
        );
      };
    };

  # As users-groups.nix: false when two entries of `set` share a non-null `idAttr`.
  idsAreUnique =
    set: idAttr:
    let
      idList = map (n: toString set.${n}.${idAttr}) (builtins.attrNames set);
    in
    builtins.length idList == builtins.length (lib.unique idList);

  uidsAreUnique = idsAreUnique (lib.filterAttrs (n: u: u.uid != null) cfg.users) "uid";
  gidsAreUnique = idsAreUnique (lib.filterAttrs (n: g: g.gid != null) cfg.groups) "gid";
  groupNames = lib.mapAttrsToList (n: g: g.name) cfg.groups;
  usersWithoutExistingGroup = lib.filterAttrs (n: u: u.group != "" && !lib.elem u.group groupNames) cfg.users;
  nameRegex = "[a-zA-Z0-9_.][a-zA-Z0-9_.-]*";
in
{
  options.users = {
    mutableUsers = mkOption {
      type = types.bool;
      default = true;
    };
    enforceIdUniqueness = mkOption {
      type = types.bool;
      default = true;
    };
    defaultUserHome = mkOption {
      type = types.str;
      default = "/home";
    };
    users = mkOption {
      default = { };
      type = types.attrsOf (types.submodule userOpts);
    };
    groups = mkOption {
      default = { };
      type = types.attrsOf (types.submodule groupOpts);
    };
  };

  config = {
    users.users = {
      root = {
        uid = ids.uids.root;
        description = "System administrator";
        home = "/root";
        group = "root";
      };
      nobody = {
        uid = ids.uids.nobody;
        isSystemUser = true;
        description = "Unprivileged account (don't use!)";
        group = "nogroup";
      };
    };

    users.groups = {
      root.gid = ids.gids.root;
      wheel.gid = ids.gids.wheel;
      disk.gid = ids.gids.disk;
      kmem.gid = ids.gids.kmem;
      tty.gid = ids.gids.tty;
      floppy.gid = ids.gids.floppy;
      uucp.gid = ids.gids.uucp;
      lp.gid = ids.gids.lp;
      cdrom.gid = ids.gids.cdrom;
      tape.gid = ids.gids.tape;
      audio.gid = ids.gids.audio;
      video.gid = ids.gids.video;
      dialout.gid = ids.gids.dialout;
      nogroup.gid = ids.gids.nogroup;
      users.gid = ids.gids.users;
      nixbld.gid = ids.gids.nixbld;
      utmp.gid = ids.gids.utmp;
      adm.gid = ids.gids.adm;
      input.gid = ids.gids.input;
      kvm.gid = ids.gids.kvm;
      render.gid = ids.gids.render;
      sgx.gid = ids.gids.sgx;
      shadow.gid = ids.gids.shadow;
      clock.gid = ids.gids.clock;
      # journald.nix and systemd.nix.
      systemd-journal.gid = ids.gids.systemd-journal;
      keys.gid = ids.gids.keys;
    };

    assertions = [
      {
        assertion = !cfg.enforceIdUniqueness || (uidsAreUnique && gidsAreUnique);
        message = "UIDs and GIDs must be unique!";
      }
      {
        assertion = usersWithoutExistingGroup == { };
        message = "The following users have a primary group that is undefined: ${lib.concatStringsSep " " (builtins.attrNames usersWithoutExistingGroup)}";
      }
    ]
    ++ lib.concatLists (
      lib.mapAttrsToList (name: user: [
        {
          assertion = builtins.match nameRegex user.name != null;
          message = "The username \"${user.name}\" is not valid, it does not match the regex \"${nameRegex}\".";
        }
        {
          assertion = user.isNormalUser && user.uid != null -> user.uid >= 1000;
          message = "A user cannot have a users.users.${user.name}.uid set below 1000 and set users.users.${user.name}.isNormalUser.";
        }
        {
          assertion =
            let
              isEffectivelySystemUser = user.isSystemUser || (user.uid != null && user.uid < 1000 && !user.isNormalUser);
            in
            lib.xor isEffectivelySystemUser user.isNormalUser;
          message = "Exactly one of users.users.${user.name}.isSystemUser and users.users.${user.name}.isNormalUser must be set.";
        }
        {
          assertion = user.group != "";
          message = "users.users.${user.name}.group is unset.";
        }
      ]) cfg.users
    );
  };
}
