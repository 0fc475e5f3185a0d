# services.homelab-probe: runs `homelab-verify check` as the oneshot unit
# homelab-probe-check.service at boot and after every `nixos-rebuild switch`/`test`, so a host
# that lost parity (a group with another gid, a render node nobody can open, a data disk that is
# not mounted) fails the unit, and switch-to-configuration reports it and exits 4.
# docs/nixos.md explains the options and why the unit is shaped as it is.
{
  config,
  lib,
  options,
  pkgs,
  ...
}:
let
  inherit (lib) mkOption types;

  cfg = config.services.homelab-probe;
  opt = options.services.homelab-probe;
  hpLib = import ./lib.nix;
  settingsFormat = pkgs.formats.toml { };

  nameType = types.addCheck types.str hpLib.isValidName // {
    name = "homelabName";
    description = "user or group name";
  };
  modeType = types.strMatching "0?[0-7]{3,4}";
  id = types.ints.u32;

  userModule = {
    options = {
      uid = mkOption {
        type = types.nullOr id;
        default = null;
        example = 1000;
        description = "The uid the user must have; `null` only requires the user to exist.";
      };
      groups = mkOption {
        type = types.listOf nameType;
        default = [ ];
        example = [
          "render"
          "video"
          "docker"
        ];
        description = "Groups (by name) the user must be in, as primary or supplementary group.";
      };
    };
  };

  accessModule = {
    options = {
      name = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "plex";
        description = "A label for the report.";
      };
      uid = mkOption {
        type = id;
        example = 1000;
        description = "Effective uid of the process (a container's PUID).";
      };
      gid = mkOption {
        type = id;
        example = 110;
        description = "Effective gid of the process (a container's PGID).";
      };
      groups = mkOption {
        type = types.listOf id;
        default = [ ];
        description = "Supplementary gids (docker's `group_add`).";
      };
    };
  };

  renderModule = {
    options = {
      group = mkOption {
        type = nameType;
        default = "render";
        description = "The group that must own every render node.";
      };
      mode = mkOption {
        type = types.nullOr modeType;
        default = null;
        example = "0660";
        description = ''
          The permission bits every render node must have, as an octal string. Extra bits
          (0666 where 0660 is expected) are a warning, missing bits a failure. NixOS gives
          render nodes 0666.
        '';
      };
      required = mkOption {
        type = types.bool;
        default = false;
        description = "Whether at least one render node must exist (a host without a GPU then fails).";
      };
      nodes = mkOption {
        type = types.listOf (types.strMatching "/dev/dri/[^/]+");
        default = [ ];
        example = [ "/dev/dri/renderD128" ];
        description = "Render nodes that must exist.";
      };
      access = mkOption {
        type = types.listOf (types.submodule accessModule);
        default = [ ];
        example = [
          {
            name = "plex";
            uid = 1000;
            gid = 110;
          }
        ];
        description = "Credentials that must be able to open every render node for reading and writing.";
      };
    };
  };

  settingsModule = {
    freeformType = settingsFormat.type;
    options = {
      version = mkOption {
        type = types.ints.positive;
        default = 1;
        description = "Format version of homelab-probe.toml; this homelab-verify reads version 1.";
      };
      groups = mkOption {
        type = types.attrsOf id;
        default = { };
        example = {
          render = 110;
        };
        description = "Groups that must exist with exactly this gid.";
      };
      users = mkOption {
        type = types.attrsOf (types.submodule userModule);
        default = { };
        example = {
          palav = {
            uid = 1000;
            groups = [
              "render"
              "video"
              "docker"
            ];
          };
        };
        description = "Users that must exist, with their uid and groups.";
      };
      render = mkOption {
        type = types.nullOr (types.submodule renderModule);
        default = { };
        description = ''
          Expectations on every render node (`/dev/dri/renderD*`). The default, `{ }`, requires
          every render node present to be owned by `render` and usable by its members (as
          `homelab-verify` does without an expectations file); `null` skips these checks.
        '';
      };
      # MOUNTS: typed options for `[[mounts]]` (path, uuid or label, fstype, options,
      # required) go here once the mount probe is merged: a `mounts` option of type
      # `types.listOf (types.submodule mountModule)`. Until then `settings.mounts` passes
      # through the freeform type, and `afterMounts` already orders the unit after every
      # `settings.mounts.*.path` (nix/lib.nix, mountPaths).
      # GPU: typed options for `[gpu]` (NVENC / VA-API encode per codec) go here once the
      # GPU probes are merged; until then `settings.gpu` passes through.
      # DRIFT: typed options for `[[drift]]` (roots, expected uid/gid, excludes) go here once
      # the drift scanner is merged; until then `settings.drift` passes through.
    };
  };

  # The file the unit reads: from `expectationsFile` or rendered from `settings`.
  expectationsSource =
    if cfg.expectationsFile != null then
      cfg.expectationsFile
    else
      settingsFormat.generate "homelab-probe.toml" (hpLib.expectations cfg.settings);

  reportPath = "/var/lib/homelab-probe/report.json";

  consistency = hpLib.consistency {
    settings = cfg.settings;
    declaredGroups = lib.mapAttrs (_: g: { inherit (g) gid members; }) config.users.groups;
    declaredUsers = lib.mapAttrs (_: u: { inherit (u) uid group; }) (
      lib.filterAttrs (_: u: u.enable or true) config.users.users
    );
    inherit (config.users) mutableUsers;
  };

  badNames = lib.filter (n: !hpLib.isValidName n) (
    lib.attrNames cfg.settings.groups ++ lib.attrNames cfg.settings.users
  );

  # WantsMountsFor= (systemd >= 256) orders the check after the mounts without requiring them,
  # so a data disk that failed to mount is reported by the check itself (with the files that
  # were written into the bare directory) instead of the unit failing with "dependency".
  mountsDirective =
    if lib.versionAtLeast config.systemd.package.version "256" then
      "WantsMountsFor"
    else
      "RequiresMountsFor";

  checkCommand = lib.escapeShellArgs (
    [
      "${cfg.package}/bin/homelab-verify"
      "check"
      "--expect"
      "/etc/homelab-probe.toml"
    ]
    ++ lib.optionals cfg.jsonReport [
      "--json-report"
      reportPath
    ]
    ++ cfg.extraArgs
  );

  # switch-to-configuration prints `systemctl status` of a failed unit, which shows the last
  # lines of its journal: end the journal with the failed checks and their fixes, so they
  # are on screen after `nixos-rebuild switch`, not only the summary.
  recap = ''
    echo "failed checks (full report above and in ${reportPath}):"
    ${lib.getExe pkgs.jq} -r '.findings[] | select(.status == "fail")
      | "  \(.subject): \(.remedy.text // "no remedy" | split("\n") | join(" "))"' ${reportPath} || true
  '';
in
{
  options.services.homelab-probe = {
    enable = lib.mkEnableOption (
      "homelab-probe-check.service, which runs `homelab-verify check` against "
      + "/etc/homelab-probe.toml at boot and after every switch; a failed check fails the unit, "
      + "so `nixos-rebuild switch` reports it and exits 4"
    );

    package = lib.mkPackageOption pkgs "homelab-verify" { };

    settings = mkOption {
      type = types.submodule settingsModule;
      default = { };
      example = lib.literalExpression ''
        {
          groups.render = 110;
          users.palav = { uid = 1000; groups = [ "render" "video" "docker" ]; };
          render = {
            required = true;
            access = [ { name = "plex"; uid = 1000; gid = 110; } ];
          };
        }
      '';
      description = ''
        The expectations, rendered to /etc/homelab-probe.toml (format: docs/expectations.md).
        The common sections have typed options; any other section of the format is passed
        through as TOML. Ignored when `expectationsFile` is set.
      '';
    };

    expectationsFile = mkOption {
      type = types.nullOr types.path;
      default = null;
      example = lib.literalExpression "./homelab-probe.toml";
      description = ''
        An expectations file to use instead of `settings`, e.g. the `homelab-probe.toml` that
        `homelab-verify plan` wrote. Linked to /etc/homelab-probe.toml.
      '';
    };

    jsonReport = mkOption {
      type = types.bool;
      default = true;
      description = ''
        Whether each run also writes its JSON report (docs/report.md) to
        ${reportPath}, for other tools. The file is removed when a run starts and replaced
        atomically when it ends, so it always belongs to the last run; a run that could not
        check (bad expectations, exit code 2) leaves none.
      '';
    };

    afterMounts = mkOption {
      type = types.listOf (types.strMatching "/.*");
      default = hpLib.mountPaths cfg.settings;
      defaultText = lib.literalMD "the `path` of every `settings.mounts` entry";
      example = [ "/mnt/PlexStorage" ];
      description = ''
        Paths whose mounts the check waits for: `WantsMountsFor=` with systemd 256 or later
        (the check runs, and reports, even when a mount failed), `RequiresMountsFor=` before.
      '';
    };

    extraArgs = mkOption {
      type = types.listOf types.str;
      default = [ ];
      description = "Extra arguments for `homelab-verify check`.";
    };

    timeout = mkOption {
      type = types.str;
      default = "5min";
      description = ''
        How long one run may take (`TimeoutStartSec=`); a run that takes longer fails the unit.
        switch-to-configuration waits for the check, so this also bounds how long a switch can
        be held up by it.
      '';
    };
  };

  config = lib.mkIf cfg.enable {
    assertions =
      [
        {
          assertion = cfg.expectationsFile == null || opt.settings.highestPrio >= 1500;
          message = "services.homelab-probe: set either `settings` or `expectationsFile`, not both (the file would silently win).";
        }
        {
          assertion = cfg.settings.version == 1;
          message = "services.homelab-probe.settings.version must be 1, the only version this homelab-verify reads.";
        }
        {
          assertion = badNames == [ ];
          message = "services.homelab-probe.settings: invalid user or group names: ${lib.concatStringsSep ", " badNames} (no whitespace, control characters or : , / \" ' \\ ` $ except a final $, not all digits, not starting with -).";
        }
      ]
      ++ lib.optionals (cfg.expectationsFile == null) consistency.assertions;

    warnings = lib.optionals (cfg.expectationsFile == null) consistency.warnings;

    environment.systemPackages = [ cfg.package ];
    environment.etc."homelab-probe.toml".source = expectationsSource;

    systemd.services.homelab-probe-check = {
      description = "homelab-probe: check this host against /etc/homelab-probe.toml";
      documentation = [ "https://github.com/homelab-probe/homelab-probe/blob/main/docs/nixos.md" ];

      # Runs at boot, and on every switch: switch-to-configuration starts every active target
      # again, and starting multi-user.target starts this unit again because, without
      # RemainAfterExit, it is inactive after each run (docs/nixos.md, "After a switch").
      wantedBy = [ "multi-user.target" ];
      after = [
        "systemd-udev-trigger.service"
        "systemd-udev-settle.service"
        "nss-user-lookup.target"
      ];
      unitConfig = lib.mkIf (cfg.afterMounts != [ ]) { ${mountsDirective} = cfg.afterMounts; };

      environment.NO_COLOR = "1";

      # The human report goes to the journal; the unit's result is the check's exit code.
      script =
        if cfg.jsonReport then
          ''
            rm -f ${reportPath}
            rc=0
            ${checkCommand} || rc=$?
            if [ "$rc" -eq 1 ] && [ -e ${reportPath} ]; then
              ${recap}
            fi
            exit "$rc"
          ''
        else
          ''
            exec ${checkCommand}
          '';

      serviceConfig = {
        Type = "oneshot";
        # Deliberately no RemainAfterExit: see above.
        # Wait for udev to have applied its rules to the render nodes (modules loaded at boot,
        # rules changed by this switch) without pulling the deprecated
        # systemd-udev-settle.service into the boot; a timeout does not stop the check.
        ExecStartPre = "-${config.systemd.package}/bin/udevadm settle --timeout=60";
        StateDirectory = "homelab-probe";
        TimeoutStartSec = cfg.timeout;
        SyslogIdentifier = "homelab-probe";
        # No ProtectSystem=/ProtectHome=/PrivateTmp= or other mount-namespace sandboxing: the
        # probes must see the host's own mount table and mount flags (a read-only remount of /
        # in the unit's namespace would make every mount look `ro`), and read /dev/dri, /sys,
        # /etc and the data roots as the host has them.
      };
    };
  };
}
