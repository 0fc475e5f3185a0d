# fileSystems of the stand-in, re-created from nixpkgs nixos/modules/tasks/filesystems.nix
# (NixOS/nixpkgs @ 0148e16d1446003704803ecabb5a00cfea7d8568) and nixos/lib/utils.nix
# (@ 0229f9ed9a895714550dc58c5585f7c9fb014129, fsBefore, pathsNeededForBoot): `attrsOf
# submodule` with the real types (mountPoint non-empty without a trailing slash, device `nullOr
# nonEmptyStr`, fsType `nonEmptyStr` defaulting to "auto", options `nonEmptyListOf nonEmptyStr`,
# depends, label, neededForBoot), the real option merging (x-initrd.mount for file systems
# needed for boot) and the real assertions: the mount points can be sorted (no dependency
# cycle through device or mount point prefixes) and label and device agree. Left out:
# autoResize, autoFormat, noCheck, the fstab text and the boot-time mount machinery.
{ config, lib, ... }:
let
  inherit (lib) mkOption types;

  addCheckDesc =
    desc: elemType: check:
    types.addCheck elemType check // { description = "${elemType.description} (with check: ${desc})"; };
  isNonEmpty = s: (builtins.match "[ \t\n]*" s) == null;
  nonEmptyStr = addCheckDesc "non-empty" types.str isNonEmpty;
  nonEmptyWithoutTrailingSlash = addCheckDesc "non-empty without trailing slash" types.str (
    s: isNonEmpty s && (builtins.match ".+/" s) == null
  );
  escape = string: builtins.replaceStrings [ " " "\t" ] [ "\\040" "\\011" ] string;

  # nixos/lib/utils.nix
  pathsNeededForBoot = [
    "/"
    "/nix"
    "/nix/store"
    "/var"
    "/var/log"
    "/var/lib"
    "/var/lib/nixos"
    "/etc"
    "/usr"
  ];
  fsNeededForBoot = fs: fs.neededForBoot || lib.elem fs.mountPoint pathsNeededForBoot;
  fsBefore =
    a: b:
    let
      normalisePath = path: "${path}${lib.optionalString (!(lib.hasSuffix "/" path)) "/"}";
      normalise =
        mount:
        mount
        // {
          device = normalisePath (toString mount.device);
          mountPoint = normalisePath mount.mountPoint;
          depends = map normalisePath mount.depends;
        };
      a' = normalise a;
      b' = normalise b;
    in
    lib.hasPrefix a'.mountPoint b'.device
    || lib.hasPrefix a'.mountPoint b'.mountPoint
    || lib.any (lib.hasPrefix a'.mountPoint) b'.depends;

  fileSystems' = lib.toposort fsBefore (builtins.attrValues config.fileSystems);
  fileSystems = if fileSystems' ? result then fileSystems'.result else builtins.attrValues config.fileSystems;

  fileSystemOpts =
    { name, config, ... }:
    {
      options = {
        enable = lib.mkEnableOption "the filesystem mount" // {
          default = true;
        };
        mountPoint = mkOption {
          type = nonEmptyWithoutTrailingSlash;
          default = name;
        };
        device = mkOption {
          default = null;
          type = types.nullOr nonEmptyStr;
        };
        fsType = mkOption {
          default = "auto";
          type = nonEmptyStr;
        };
        options = mkOption {
          default = [ "defaults" ];
          type = types.nonEmptyListOf nonEmptyStr;
        };
        depends = mkOption {
          default = [ ];
          type = types.listOf nonEmptyWithoutTrailingSlash;
        };
        label = mkOption {
          default = null;
          type = types.nullOr nonEmptyStr;
        };
        neededForBoot = mkOption {
          default = false;
          type = types.bool;
        };
      };
      config = {
        device = lib.mkIf (config.label != null) (lib.mkDefault "/dev/disk/by-label/${escape config.label}");
        options = lib.mkIf (fsNeededForBoot config) [ "x-initrd.mount" ];
      };
    };
in
{
  options.fileSystems = mkOption {
    default = { };
    type = types.attrsOf (types.submodule fileSystemOpts);
    apply = lib.filterAttrs (_: fs: fs.enable);
  };

  config.assertions =
    let
      ls = sep: lib.concatMapStringsSep sep (x: x.mountPoint);
    in
    [
      {
        assertion = !(fileSystems' ? cycle);
        message = "The ‘fileSystems’ option can't be topologically sorted: mountpoint dependency path ${ls " -> " fileSystems'.cycle} loops to ${ls ", " fileSystems'.loops}";
      }
    ]
    ++ map (fs: {
      assertion = fs.label != null -> fs.device == "/dev/disk/by-label/${escape fs.label}";
      message = "The filesystem with mount point ${fs.mountPoint} has its label and device set to inconsistent values.";
    }) fileSystems;
}
