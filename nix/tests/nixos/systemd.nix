# systemd options of the stand-in, re-created from nixpkgs nixos/lib/systemd-unit-options.nix
# (NixOS/nixpkgs @ 01f31c2ee7d045a337dff0f858c0ed61dd0f4ddb) and nixos/lib/systemd-lib.nix
# (@ 013635633ffe11f70df1d639f563f21c42c1f778): the unit options this project's modules set,
# with the real types (unit names matching systemd-lib's `unitNameType`, a `singleLineStr`
# description, `unitConfig`/`serviceConfig`/`timerConfig` as `attrsOf unitOption` with
# unitOption's real merge, serviceConfig's `Type` and `Restart` checks, `script` as `lines`,
# `path` as a list of packages or strings, stage2CommonUnitOptions' `restartTriggers` (`listOf
# unspecified`) and `reloadTriggers` (`listOf unitOption`) on services and timers),
# systemd.units (the unit text of every service and timer: systemd-lib's `unitConfig` (the
# ordering options as one space-separated directive each, X-Restart-Triggers and
# X-Reload-Triggers as a file of the triggers; nixpkgs merges these into the `unitConfig`
# option itself, here they only go into the text, so `unitConfig` holds what modules define),
# the `[Service]` or `[Timer]` section rendered like its attrsToSection), systemd.timers, systemd.mounts, systemd.package, and
# systemd.tmpfiles.rules (nixos/modules/system/boot/systemd/tmpfiles.nix
# @ 9ab61b2537be813fd4e097ce04c8b098c5a4bcbf: `listOf str`, default [ ]; the rules NixOS itself
# adds there, /run/lock and the like, are left out, so the list holds what the configuration's
# modules add). Left out: sockets, paths, slices, user units, initrd units, the [Install]
# section, the unit files' derivations.
{ config, lib, pkgs, ... }:
let
  inherit (lib) mkOption types;
  cfg = config.systemd;

  unitNameType = types.strMatching "[a-zA-Z0-9@%:_.\\-]+[.](service|socket|device|mount|automount|swap|target|path|timer|scope|slice)";

  unitOption = lib.mkOptionType {
    name = "systemd option";
    merge =
      loc: defs:
      let
        defs' = lib.filterOverrides defs;
      in
      if lib.isList (lib.head defs').value then
        lib.concatMap (
          def:
          if builtins.typeOf def.value == "list" then
            def.value
          else
            throw "The definitions for systemd unit options should be either all lists, representing repeatable options, or all non-lists, but for the option ${lib.showOption loc}, the definitions are a mix of list and non-list ${lib.options.showDefs defs'}"
        ) defs'
      else
        lib.mergeEqualOption loc defs';
  };

  assertValueOneOf =
    name: values: group: attr:
    lib.optional (
      attr ? ${name} && !lib.elem attr.${name} values
    ) "Systemd ${group} field `${name}' cannot have value `${toString attr.${name}}'.";
  checkUnitConfig =
    group: checks: attrs:
    let
      defs = lib.mapAttrs (lib.const (
        v:
        if v._type or "" == "override" then
          v.content
        else if v._type or "" == "if" then
          v.content
        else
          v
      )) attrs;
      errors = lib.concatMap (c: c group defs) checks;
    in
    if errors == [ ] then true else builtins.trace (lib.concatStringsSep "\n" errors) false;
  checkService = checkUnitConfig "Service" [
    (assertValueOneOf "Type" [
      "exec"
      "simple"
      "forking"
      "oneshot"
      "dbus"
      "notify"
      "notify-reload"
      "idle"
    ])
    (assertValueOneOf "Restart" [
      "no"
      "on-success"
      "on-failure"
      "on-abnormal"
      "on-abort"
      "always"
    ])
  ];

  names = type: mkOption {
    default = [ ];
    type = types.listOf unitNameType;
  };

  commonUnitOptions = {
    enable = mkOption {
      default = true;
      type = types.bool;
    };
    description = mkOption {
      default = "";
      type = types.singleLineStr;
    };
    documentation = mkOption {
      default = [ ];
      type = types.listOf types.str;
    };
    wantedBy = names "wantedBy";
    requiredBy = names "requiredBy";
    requires = names "requires";
    wants = names "wants";
    after = names "after";
    before = names "before";
    bindsTo = names "bindsTo";
    partOf = names "partOf";
    unitConfig = mkOption {
      default = { };
      type = types.attrsOf unitOption;
    };
  };

  serviceOptions = {
    options = stage2UnitOptions // {
      environment = mkOption {
        default = { };
        type =
          with types;
          attrsOf (
            nullOr (oneOf [
              str
              path
              package
            ])
          );
      };
      path = mkOption {
        default = [ ];
        type =
          with types;
          listOf (oneOf [
            package
            str
          ]);
      };
      serviceConfig = mkOption {
        default = { };
        type = types.addCheck (types.attrsOf unitOption) checkService;
      };
      script = mkOption {
        type = types.lines;
        default = "";
      };
      preStart = mkOption {
        type = types.lines;
        default = "";
      };
      restartIfChanged = mkOption {
        type = types.bool;
        default = true;
      };
      startAt = mkOption {
        type = with types; either str (listOf str);
        default = [ ];
        apply = v: if lib.isList v then v else [ v ];
      };
    };
  };

  # stage2CommonUnitOptions: what services and timers of the running system have besides the
  # common options.
  stage2UnitOptions = commonUnitOptions // {
    restartTriggers = mkOption {
      default = [ ];
      type = types.listOf types.unspecified;
    };
    reloadTriggers = mkOption {
      default = [ ];
      type = types.listOf unitOption;
    };
  };

  timerOptions = {
    options = stage2UnitOptions // {
      timerConfig = mkOption {
        default = { };
        type = types.attrsOf unitOption;
      };
    };
  };

  mountOptions = {
    options = commonUnitOptions // {
      what = mkOption { type = types.str; };
      where = mkOption { type = types.str; };
      type = mkOption {
        default = "";
        type = types.str;
      };
      options = mkOption {
        default = "";
        type = types.commas;
      };
    };
  };

  # systemd-lib.nix attrsToSection and toOption.
  toOption =
    x:
    if x == true then
      "true"
    else if x == false then
      "false"
    else
      toString x;
  attrsToSection =
    as:
    lib.concatStrings (
      lib.concatLists (
        lib.mapAttrsToList (name: value: map (x: "${name}=${toOption x}\n") (if lib.isList value then value else [ value ])) as
      )
    );

  # systemd-lib's unitConfig: the [Unit] section of a unit, the ordering and dependency options
  # as one directive each (space-separated), the triggers as a file of them (a changed file is
  # what switch-to-configuration restarts or reloads the unit for).
  triggersFile =
    kind: name: triggers:
    "${pkgs.writeText "X-${kind}-Triggers-${name}" (
      toString (map (x: if lib.isPath x then "${x}" else x) (lib.flatten triggers))
    )}";
  unitSection =
    name: u:
    lib.optionalAttrs (u.requires != [ ]) { Requires = toString u.requires; }
    // lib.optionalAttrs (u.wants != [ ]) { Wants = toString u.wants; }
    // lib.optionalAttrs (u.after != [ ]) { After = toString u.after; }
    // lib.optionalAttrs (u.before != [ ]) { Before = toString u.before; }
    // lib.optionalAttrs (u.bindsTo != [ ]) { BindsTo = toString u.bindsTo; }
    // lib.optionalAttrs (u.partOf != [ ]) { PartOf = toString u.partOf; }
    // lib.optionalAttrs (u.restartTriggers != [ ]) {
      X-Restart-Triggers = triggersFile "Restart" name u.restartTriggers;
    }
    // lib.optionalAttrs (u.reloadTriggers != [ ]) {
      X-Reload-Triggers = triggersFile "Reload" name u.reloadTriggers;
    }
    // lib.optionalAttrs (u.description != "") { Description = u.description; }
    // lib.optionalAttrs (u.documentation != [ ]) { Documentation = toString u.documentation; }
    // u.unitConfig;

  serviceText =
    name: s:
    let
      # As serviceOptions' config: the script becomes ExecStart, the path PATH.
      service =
        lib.optionalAttrs (s.script != "") { ExecStart = "/nix/store/00000000000000000000000000000000-unit-script-${name}-start/bin/${name}-start"; }
        // s.serviceConfig;
      environment =
        s.environment
        // lib.optionalAttrs (s.path != [ ]) {
          PATH = lib.concatMapStringsSep ":" (p: "${p}/bin:${p}/sbin") s.path;
        };
    in
    "[Unit]\n"
    + attrsToSection (unitSection name s)
    + "\n[Service]\n"
    + lib.concatStrings (lib.mapAttrsToList (n: v: "Environment=\"${n}=${toString v}\"\n") (lib.filterAttrs (_: v: v != null) environment))
    + attrsToSection service;

  # systemd-lib's timerToUnit.
  timerText = name: t: "[Unit]\n" + attrsToSection (unitSection name t) + "\n[Timer]\n" + attrsToSection t.timerConfig;
in
{
  options.systemd = {
    package = mkOption {
      type = types.package;
      default = pkgs.systemd;
    };
    services = mkOption {
      default = { };
      type = types.attrsOf (types.submodule serviceOptions);
    };
    timers = mkOption {
      default = { };
      type = types.attrsOf (types.submodule timerOptions);
    };
    mounts = mkOption {
      default = [ ];
      type = types.listOf (types.submodule mountOptions);
    };
    tmpfiles.rules = mkOption {
      type = types.listOf types.str;
      default = [ ];
      example = [ "d /tmp 1777 root root 10d" ];
    };
    units = mkOption {
      default = { };
      type = types.attrsOf (
        types.submodule {
          options = {
            text = mkOption {
              type = types.nullOr types.str;
              default = null;
            };
            wantedBy = mkOption {
              default = [ ];
              type = types.listOf unitNameType;
            };
          };
        }
      );
    };
  };

  config.systemd = {
    units =
      lib.mapAttrs' (
        n: s:
        lib.nameValuePair "${n}.service" {
          text = serviceText n s;
          inherit (s) wantedBy;
        }
      ) (lib.filterAttrs (_: s: s.enable) cfg.services)
      // lib.mapAttrs' (
        n: t:
        lib.nameValuePair "${n}.timer" {
          text = timerText n t;
          inherit (t) wantedBy;
        }
      ) (lib.filterAttrs (_: t: t.enable) cfg.timers);
    # systemd.nix: a timer for every service with a `startAt`.
    timers = lib.mapAttrs (name: service: {
      wantedBy = [ "timers.target" ];
      timerConfig.OnCalendar = service.startAt;
    }) (lib.filterAttrs (name: service: service.enable && service.startAt != [ ]) cfg.services);
  };
}
