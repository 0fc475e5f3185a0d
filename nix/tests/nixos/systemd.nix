# systemd options of the stand-in, re-created from nixpkgs nixos/lib/systemd-unit-options.nix
# (NixOS/nixpkgs @ 01f31c2ee7d045a337dff0f858c0ed61dd0f4ddb) and nixos/lib/systemd-lib.nix
# (@ 013635633ffe11f70df1d639f563f21c42c1f778): the unit options this project's modules set,
# with the real types (unit names matching systemd-lib's `unitNameType`, a `singleLineStr`
# description, `unitConfig`/`serviceConfig` as `attrsOf unitOption` with unitOption's real
# merge, serviceConfig's `Type` and `Restart` checks, `script` as `lines`, `path` as a list of
# packages or strings), systemd.units (the unit text: a name and the `[Unit]`/`[Service]`
# sections, rendered like systemd-lib's attrsToSection), systemd.timers, systemd.mounts and
# systemd.package. Left out: sockets, paths, slices, user units, initrd units, the unit files'
# derivations.
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
    options = commonUnitOptions // {
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

  timerOptions = {
    options = commonUnitOptions // {
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

  # The [Unit] section of a unit: the ordering and dependency options become their directives.
  unitSection =
    u:
    lib.filterAttrs (_: v: v != [ ] && v != "") {
      Description = u.description;
      Documentation = u.documentation;
      Requires = u.requires;
      Wants = u.wants;
      After = u.after;
      Before = u.before;
      BindsTo = u.bindsTo;
      PartOf = u.partOf;
    }
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
    + attrsToSection (unitSection s)
    + "\n[Service]\n"
    + lib.concatStrings (lib.mapAttrsToList (n: v: "Environment=\"${n}=${toString v}\"\n") (lib.filterAttrs (_: v: v != null) environment))
    + attrsToSection service;
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
    units = lib.mapAttrs' (
      n: s:
      lib.nameValuePair "${n}.service" {
        text = serviceText n s;
        inherit (s) wantedBy;
      }
    ) (lib.filterAttrs (_: s: s.enable) cfg.services);
    # systemd.nix: a timer for every service with a `startAt`.
    timers = lib.mapAttrs (name: service: {
      wantedBy = [ "timers.target" ];
      timerConfig.OnCalendar = service.startAt;
    }) (lib.filterAttrs (name: service: service.enable && service.startAt != [ ]) cfg.services);
  };
}
