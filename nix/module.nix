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
  # A non-empty string without a line break (homelab-verify refuses both in mount sources).
  lineType = types.strMatching "[^\n]+" // {
    description = "non-empty string without line breaks";
  };
  mountPointType = types.addCheck types.str hpLib.isMountPoint // {
    name = "mountPoint";
    description = "absolute normalised path (no trailing /, //, . or ..)";
  };
  driftRootType = types.addCheck types.str hpLib.isDriftRoot // {
    name = "driftRoot";
    description = "absolute path other than /";
  };

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
      rootless = mkOption {
        type = types.nullOr types.str;
        default = null;
        example = "palav";
        description = ''
          The user whose rootless Podman or Docker runs the process: `uid` and `gid` are then ids
          of that user's namespace, which reach no host group; `null`: not rootless.
        '';
      };
      keep_groups = mkOption {
        type = types.bool;
        default = false;
        description = "With `rootless`: the runtime keeps the owner's host groups (`--group-add keep-groups`).";
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

  # `[[mounts]]`: model/mounts.rs (MountExpectation).
  mountModule = {
    options = {
      path = mkOption {
        type = mountPointType;
        example = "/mnt/PlexStorage";
        description = "The mount point: absolute, without a trailing `/`, `.` or `..` parts.";
      };
      uuid = mkOption {
        type = types.nullOr lineType;
        default = null;
        example = "7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10";
        description = ''
          Filesystem UUID of the device that must be mounted there (`lsblk -f` on the old host).
          At most one of `uuid`, `label` and `device`.
        '';
      };
      label = mkOption {
        type = types.nullOr lineType;
        default = null;
        example = "Plex Drive";
        description = "Filesystem label instead of a UUID.";
      };
      device = mkOption {
        type = types.nullOr (
          types.strMatching "/[^\n]*"
          // {
            description = "absolute path";
          }
        );
        default = null;
        example = "/dev/mapper/data-data";
        description = "A device path instead (`/dev/mapper/...`, `/dev/disk/by-id/...`).";
      };
      fstype = mkOption {
        type = types.nullOr (
          types.strMatching "[^ \t,\n]+"
          // {
            description = "filesystem type (no blanks or commas)";
          }
        );
        default = null;
        example = "ext4";
        description = "Filesystem type as the mount table shows it (`ext4`, `xfs`, `btrfs`, `fuse.sshfs`).";
      };
      options = mkOption {
        type = types.listOf (
          types.strMatching "[^, \t\n]+"
          // {
            description = "mount option (no blanks or commas)";
          }
        );
        default = [ ];
        example = [
          "rw"
          "noatime"
        ];
        description = ''
          Options that must hold, one per item: `rw` or `ro` (not both), and kernel options such
          as `noatime` or `nosuid`. Userspace-only options (`nofail`, `x-systemd.*`, ...) leave no
          trace in the mount table and are not checked.
        '';
      };
      required = mkOption {
        type = types.bool;
        default = true;
        description = ''
          Whether the mount must be there. `false` (a removable backup disk): not mounted is a
          warning; files written into the bare directory still fail.
        '';
      };
    };
  };

  # `[gpu.vaapi]`: model/expectations.rs (VaapiExpectation).
  vaapiModule = {
    options = {
      encode = mkOption {
        type = types.listOf (
          types.enum [
            "h264"
            "hevc"
            "av1"
          ]
        );
        example = [ "hevc" ];
        description = "Codecs that must have a VA-API encode entrypoint (`EncSlice` or `EncSliceLP`).";
      };
      node = mkOption {
        type = types.nullOr (types.strMatching "/dev/dri/renderD[0-9]+");
        default = null;
        example = "/dev/dri/renderD128";
        description = "The render node that must offer them; `null`: any render node will do.";
      };
    };
  };

  # `[gpu]`: model/expectations.rs (GpuExpectation).
  gpuModule = {
    options = {
      nvenc = mkOption {
        type = types.listOf (
          types.enum [
            "h264"
            "hevc"
          ]
        );
        default = [ ];
        example = [
          "h264"
          "hevc"
        ];
        description = ''
          Codecs NVENC must encode on at least one NVIDIA GPU. No `av1`: NVML reports encoder
          capacity for H.264 and HEVC only.
        '';
      };
      vaapi = mkOption {
        type = types.nullOr (types.submodule vaapiModule);
        default = null;
        description = "VA-API encode entrypoints that must exist; `null` requires none.";
      };
      nvidia_containers = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Whether containers must be able to get an NVIDIA GPU (a CDI `nvidia.com/gpu` device
          Docker can use, or Docker's `nvidia` runtime): set it when a stack reserves one.
        '';
      };
    };
  };

  # `[[drift]]`: model/expectations.rs (DriftExpectation).
  driftModule = {
    options = {
      root = mkOption {
        type = driftRootType;
        example = "/mnt/PlexStorage/media";
        description = "The directory to scan: an absolute path, not `/`.";
      };
      uid = mkOption {
        type = id;
        example = 1000;
        description = "The uid every entry under `root` (and `root` itself) must have.";
      };
      gid = mkOption {
        type = id;
        example = 110;
        description = "The gid every entry must have.";
      };
      exclude = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          ".Trash-*"
          "Downloads/incomplete"
        ];
        description = ''
          Glob patterns of entries to skip: a pattern without `/` matches names, one with `/` the
          path below the root. homelab-verify checks the glob syntax (a bad pattern is exit code 2).
        '';
      };
      cross_mounts = mkOption {
        type = types.bool;
        default = false;
        description = "Whether to descend into other filesystems under the root.";
      };
      max_entries = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        example = 5000000;
        description = "Stop after about this many entries; `null`: no limit.";
      };
      max_seconds = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        example = 120;
        description = ''
          Stop after this many seconds; `null`: 60. The check runs at every boot and switch, and
          a scan that stops early is a warning (`drift_bounded`).
        '';
      };
    };
  };

  # `[[baseline]]`: model/expectations.rs (BaselineExpectation).
  baselineModule = {
    options = {
      file = mkOption {
        type = types.strMatching "/[^\n]*" // {
          description = "absolute path";
        };
        example = "/var/lib/homelab-probe/appdata.baseline";
        description = ''
          The baseline file, taken on the old host before the copy and copied here: by
          `homelab-verify capture --baseline` (`plan` then writes this entry, and MIGRATION.md
          the copy step with its checksum) or by
          `homelab-verify baseline take ROOT... -o FILE` (docs/baseline.md). A path, not a Nix
          path: the file holds every path and owner under its roots and belongs outside the
          world-readable store.
        '';
      };
      map = mkOption {
        type = types.listOf (
          types.strMatching "/[^=\n]*=/[^\n]*"
          // {
            description = "OLD=NEW, two absolute paths";
          }
        );
        default = [ ];
        example = [ "/srv/appdata=/mnt/data/appdata" ];
        description = "Roots that now mount elsewhere, `OLD=NEW` (`baseline check --map`).";
      };
      by_name = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Compare owners by user and group name where both hosts have one (`--by-name`): for ids
          renumbered on purpose. By number otherwise.
        '';
      };
      max_entries = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        example = 5000000;
        description = "Stop after about this many entries; `null`: no limit.";
      };
      max_seconds = mkOption {
        type = types.nullOr types.ints.unsigned;
        default = null;
        example = 120;
        description = ''
          Stop after this many seconds; `null`: 60. A check that stops early is a warning
          (`baseline_bounded`).
        '';
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
      mounts = mkOption {
        type = types.listOf (types.submodule mountModule);
        default = [ ];
        example = lib.literalExpression ''
          [
            { path = "/mnt/PlexStorage"; uuid = "7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10"; fstype = "ext4"; options = [ "rw" ]; }
            { path = "/mnt/backup"; label = "backup"; required = false; }
          ]
        '';
        description = ''
          Filesystems that must be mounted (`[[mounts]]`, docs/mounts.md), one entry per path. The
          host's own /etc/fstab entries are checked whether or not they are listed here; an entry
          here replaces the fstab-derived expectation for its path.
        '';
      };
      gpu = mkOption {
        type = types.submodule gpuModule;
        default = { };
        description = ''
          GPU encoders and container GPU access (`[gpu]`, docs/gpu.md). The default requires
          nothing: the GPU probe then only reports what exists.
        '';
      };
      drift = mkOption {
        type = types.listOf (types.submodule driftModule);
        default = [ ];
        example = lib.literalExpression ''
          [ { root = "/mnt/PlexStorage/media"; uid = 1000; gid = 110; exclude = [ ".Trash-*" ]; } ]
        '';
        description = ''
          Data roots whose every entry must have one owner (`[[drift]]`, docs/drift.md): a bounded
          scan at every run; `homelab-verify drift` does the full scan and the fix.
        '';
      };
      baseline = mkOption {
        type = types.listOf (types.submodule baselineModule);
        default = [ ];
        example = lib.literalExpression ''
          [ { file = "/var/lib/homelab-probe/appdata.baseline"; map = [ "/srv/appdata=/mnt/data/appdata" ]; } ]
        '';
        description = ''
          Baselines of owners and modes (`[[baseline]]`, docs/baseline.md): every entry a
          baseline recorded must still have its owner, group, mode and type; a bounded check at
          every run. `homelab-verify baseline restore` puts owners back.
        '';
      };
    };
  };

  # The file the unit reads: from `expectationsFile` or rendered from `settings`.
  expectationsSource =
    if cfg.expectationsFile != null then
      cfg.expectationsFile
    else
      settingsFormat.generate "homelab-probe.toml" (hpLib.expectations cfg.settings);

  reportPath = "/var/lib/homelab-probe/report.json";

  # The expectations as far as evaluation can know them: `settings`, or the expectations file
  # when it is a path in the configuration (`./homelab-probe.toml`, read here; it is copied to
  # the store anyway). A file given as a string (a store path another derivation wrote, or a
  # path outside the store) is not read: that would be import-from-derivation, or impure.
  knownExpectations =
    if cfg.expectationsFile == null then
      cfg.settings
    else if builtins.isPath cfg.expectationsFile then
      builtins.fromTOML (builtins.readFile cfg.expectationsFile)
    else
      { };

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

  mountWarnings = hpLib.mountConsistency {
    inherit (cfg.settings) mounts;
    fileSystems = lib.attrValues config.fileSystems;
    mountUnits = map (m: m.where) config.systemd.mounts;
  };

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
    ++ lib.optionals cfg.prometheus.textfile.enable [
      "--report"
      "prometheus:${textfilePath}"
    ]
    ++ cfg.extraArgs
  );

  # The metrics file node_exporter's textfile collector reads (docs/monitoring.md).
  textfilePath = "${cfg.prometheus.textfile.directory}/homelab_probe.prom";

  serveCommand = lib.escapeShellArgs (
    [
      "${cfg.package}/bin/homelab-verify"
      "serve"
      "--expect"
      "/etc/homelab-probe.toml"
      "--listen"
      (hpLib.listenArg cfg.serve.listenAddress cfg.serve.port)
    ]
    ++ lib.optional (!hpLib.isLoopback cfg.serve.listenAddress) "--allow-remote"
    ++ cfg.serve.extraArgs
  );

  # After the mounts the checks read, as homelab-probe-check.service is.
  mountsUnitConfig = lib.mkIf (cfg.afterMounts != [ ]) {
    ${mountsDirective} = map hpLib.unitPathWord cfg.afterMounts;
  };

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
      type = types.listOf (
        types.strMatching "/[^\n]*"
        // {
          description = "absolute path";
        }
      );
      default = hpLib.orderingPaths knownExpectations;
      defaultText = lib.literalMD "the `path` of every `[[mounts]]` entry, the `root` of every `[[drift]]` entry and the `file` of every `[[baseline]]` entry, from `settings` or from `expectationsFile` when that is a path";
      example = [ "/mnt/PlexStorage" ];
      description = ''
        Paths whose mounts the check waits for: `WantsMountsFor=` with systemd 256 or later
        (the check runs, and reports, even when a mount failed), `RequiresMountsFor=` before.
        systemd orders the unit after the mount unit of every prefix of each path, so a drift
        root below a data disk's mount point waits for that disk. An `expectationsFile` given as
        a string (a store path another derivation wrote) is not read: list its paths here.
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

    interval = mkOption {
      type = types.nullOr types.str;
      default = null;
      example = "15min";
      description = ''
        Also run homelab-probe-check.service this long after boot and after each of its runs
        (the timer homelab-probe-check.timer, `OnBootSec=` and `OnUnitActiveSec=`; a systemd
        time span, systemd.time(7)). `null`: only at boot and after every switch.
      '';
    };

    serve = {
      enable = lib.mkEnableOption (
        "homelab-probe-serve.service, which runs `homelab-verify serve`: /healthz, "
        + "/readyz?probe=P, /metrics (Prometheus) and /report.json over HTTP, against "
        + "/etc/homelab-probe.toml (reloaded when a switch changes it). Needs `enable`"
      );

      listenAddress = mkOption {
        type = types.str;
        default = "127.0.0.1";
        example = "0.0.0.0";
        description = ''
          The IP address `serve` listens on. Any other than a loopback address (127.0.0.0/8, ::1)
          makes the endpoints reachable from the network, without authentication: the module
          then passes `--allow-remote`; open the port with `openFirewall` or your own rules.
        '';
      };

      port = mkOption {
        type = types.port;
        default = 9723;
        description = "The TCP port `serve` listens on (9723: docs/serve.md says why).";
      };

      openFirewall = mkOption {
        type = types.bool;
        default = false;
        description = ''
          Whether to open `port` in the firewall (networking.firewall.allowedTCPPorts), for a
          Prometheus on another host. Only useful with a `listenAddress` other than loopback.
        '';
      };

      extraArgs = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [
          "--cache"
          "1m"
          "--drift-interval"
          "1h"
        ];
        description = "Extra arguments for `homelab-verify serve`.";
      };
    };

    prometheus.textfile = {
      enable = lib.mkEnableOption (
        "writing the metrics of every run of homelab-probe-check.service to "
        + "`directory`/homelab_probe.prom (replaced atomically) for node_exporter's textfile "
        + "collector; with services.prometheus.exporters.node enabled, its "
        + "`--collector.textfile.directory` is set to `directory`"
      );

      directory = mkOption {
        type = types.path;
        default = "/var/lib/prometheus-node-exporter-text-files";
        description = ''
          The textfile collector's directory: created 0755 root:root (the check runs as root
          and writes the file 0644; node_exporter only reads it).
        '';
      };
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
      ++ lib.optionals (cfg.expectationsFile == null) (
        consistency.assertions
        ++ map (message: {
          assertion = false;
          inherit message;
        }) (hpLib.settingsProblems cfg.settings)
      );

    warnings = lib.optionals (cfg.expectationsFile == null) (
      consistency.warnings ++ hpLib.settingsWarnings cfg.settings ++ mountWarnings
    );

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
      # One word per path, quoted for systemd where needed (`/mnt/Plex Drive`; nix/lib.nix).
      unitConfig = mountsUnitConfig;

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

    systemd.timers.homelab-probe-check = lib.mkIf (cfg.interval != null) {
      description = "homelab-probe: check this host every ${cfg.interval}";
      wantedBy = [ "timers.target" ];
      timerConfig = {
        OnBootSec = cfg.interval;
        OnUnitActiveSec = cfg.interval;
      };
    };

    systemd.tmpfiles.rules = lib.optionals cfg.prometheus.textfile.enable [
      "d ${cfg.prometheus.textfile.directory} 0755 root root - -"
    ];
    services.prometheus.exporters.node.extraFlags = lib.mkIf cfg.prometheus.textfile.enable [
      "--collector.textfile.directory=${cfg.prometheus.textfile.directory}"
    ];

    # A long-running unit with its own system user. Not DynamicUser=: it implies
    # ProtectSystem=strict, a read-only remount of / in the unit's mount namespace, and the
    # mounts probe would then see every mount `ro` (the same reason the oneshot has no
    # mount-namespace sandboxing). What the probes need instead, named:
    systemd.services.homelab-probe-serve = lib.mkIf cfg.serve.enable {
      description = "homelab-probe: answer /healthz, /readyz, /metrics and /report.json";
      documentation = [ "https://github.com/homelab-probe/homelab-probe/blob/main/docs/serve.md" ];
      wantedBy = [ "multi-user.target" ];
      after = [
        "network.target"
        "systemd-udev-trigger.service"
        "systemd-udev-settle.service"
        "nss-user-lookup.target"
      ];
      unitConfig = mountsUnitConfig;
      # A switch that changes the expectations reloads (SIGHUP: the new file, or the last good
      # one and the error on /healthz) instead of restarting.
      reloadTriggers = [ expectationsSource ];
      environment.NO_COLOR = "1";
      serviceConfig = {
        ExecStart = serveCommand;
        ExecReload = "${pkgs.coreutils}/bin/kill -HUP $MAINPID";
        Restart = "on-failure";
        User = "homelab-probe";
        Group = "homelab-probe";
        # render: open render nodes for the DRM driver name (DRM_IOCTL_VERSION) and VA-API;
        # video: the card nodes.
        SupplementaryGroups = [
          "render"
          "video"
        ];
        # CAP_DAC_READ_SEARCH: list and stat every directory below the drift roots and read the
        # bare directory of an unmounted disk (shadowed data), whoever owns them. Read only; the
        # only capability the unit has.
        AmbientCapabilities = [ "CAP_DAC_READ_SEARCH" ];
        CapabilityBoundingSet = [ "CAP_DAC_READ_SEARCH" ];
        NoNewPrivileges = true;
        # AF_UNIX: NSS (nscd, systemd-userdbd); AF_INET/AF_INET6: the listener.
        RestrictAddressFamilies = [
          "AF_UNIX"
          "AF_INET"
          "AF_INET6"
        ];
        RestrictNamespaces = true;
        RestrictRealtime = true;
        RestrictSUIDSGID = true;
        LockPersonality = true;
        SystemCallArchitectures = "native";
        SystemCallFilter = [
          "@system-service"
          "~@privileged"
        ];
        UMask = "0077";
        # Nothing that makes a mount namespace (ProtectSystem=, ProtectHome=, PrivateTmp=,
        # PrivateDevices=, ProtectKernelTunables=, ProtectHostname=, ...): see above. No
        # MemoryDenyWriteExecute=: the GPU probe loads NVIDIA's and the VA-API drivers' libraries,
        # whose needs this project does not control.
      };
    };

    users.users.homelab-probe = lib.mkIf cfg.serve.enable {
      isSystemUser = true;
      group = "homelab-probe";
      description = "homelab-probe serve";
    };
    users.groups.homelab-probe = lib.mkIf cfg.serve.enable { };

    networking.firewall.allowedTCPPorts = lib.mkIf (cfg.serve.enable && cfg.serve.openFirewall) [
      cfg.serve.port
    ];
  };
}
