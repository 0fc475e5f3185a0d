# A small NixOS for tests: the real nixpkgs module system (`lib.evalModules` of the pinned
# nixpkgs lib, nix/tests/nixpkgs-lib.rev) with the option declarations that this project's
# modules and the modules `homelab-verify plan` writes set, re-created from nixpkgs' own sources
# with their real types, defaults and assertions (each file cites what it was written from).
# It is not NixOS: nothing is built, and options nobody here sets are not declared, so a module
# that sets one fails here (`The option ... does not exist`) as it would not in NixOS; that is
# what keeps the stand-in honest about what it covers.
#
#   nixpkgsLib      the directory holding nixpkgs' lib/ (HOMELAB_NIXPKGS_LIB, or
#                   ../shared/vendor/nixpkgs-lib; see docs/testing.md)
#   systemdVersion  the version of `systemd.package`
#
# Evaluates to:
#   lib, pkgs          the real lib and the stand-in's packages
#   eval modules       lib.evalModules of the stand-in with `modules` added
#   verdict modules    what NixOS would say about `modules`, as plain data: `ok` (evaluated,
#                      every assertion holds), failedAssertions, warnings, and the parts tests
#                      compare (users.groups gids, users.users, fileSystems); evaluation errors
#                      that `builtins.tryEval` can catch (type errors, conflicting definitions)
#                      give `evaluated = false`; the others (a parse error, `abort`) stop the
#                      whole evaluation, as they stop nixos-rebuild
{
  nixpkgsLib,
  systemdVersion ? "257.6",
}:
let
  lib = import (nixpkgsLib + "/lib");
  pkgs = import ./pkgs.nix { inherit lib systemdVersion; };

  baseModules = [
    ./misc.nix
    ./ids.nix
    ./users-groups.nix
    ./filesystems.nix
    ./systemd.nix
    ./hardware.nix
    ./docker.nix
    { _module.args.pkgs = pkgs; }
  ];

  eval =
    modules:
    lib.evalModules {
      modules = baseModules ++ modules;
    };

  # The configuration of a specialisation, as nixpkgs' specialisation.nix builds it: the
  # parent's modules, the specialisation's configuration, isSpecialisation = true.
  specialisationOf =
    modules: name:
    eval (
      modules
      ++ [
        (eval modules).config.specialisation.${name}.configuration
        { isSpecialisation = true; }
      ]
    );

  summary = config: {
    failedAssertions = map (a: a.message) (builtins.filter (a: !a.assertion) config.assertions);
    inherit (config) warnings;
    groups = lib.mapAttrs (_: g: g.gid) config.users.groups;
    users = lib.mapAttrs (_: u: {
      inherit (u)
        uid
        group
        extraGroups
        home
        isNormalUser
        isSystemUser
        ;
    }) config.users.users;
    fileSystems = lib.mapAttrs (_: fs: {
      inherit (fs)
        mountPoint
        device
        fsType
        options
        ;
    }) config.fileSystems;
  };

  verdict =
    modules:
    let
      s = summary (eval modules).config;
      tried = builtins.tryEval (builtins.deepSeq s s);
    in
    if tried.success then
      tried.value
      // {
        evaluated = true;
        ok = tried.value.failedAssertions == [ ];
      }
    else
      {
        evaluated = false;
        ok = false;
      };
in
{
  inherit
    lib
    pkgs
    eval
    specialisationOf
    summary
    verdict
    ;
}
