# The `pkgs` of the stand-in: the packages and builders that its modules and this project's
# modules name, without nixpkgs. A package is a fake derivation (a name, a store path of the
# right shape, `meta.mainProgram`): enough for the module system's `package` type, which only
# checks `isDerivation`. Nothing is built; evaluation never reads these paths.
#   systemdVersion   the version `systemd.package` reports (nix/module.nix picks
#                    WantsMountsFor= from 256 on)
{ lib, systemdVersion ? "257.6" }:
let
  drv =
    name: extra:
    {
      type = "derivation";
      inherit name;
      outPath = "/nix/store/00000000000000000000000000000000-${name}";
      meta.mainProgram = name;
    }
    // extra;

  # pkgs/pkgs-lib/formats.nix (NixOS/nixpkgs): the value types of `formats.json` and
  # `formats.toml`, as declared there. `generate` returns a fake derivation that keeps the
  # value (`.value`, as a passthru attribute), so tests can read what a module renders into a file.
  jsonValue =
    with lib.types;
    let
      valueType =
        nullOr (oneOf [
          bool
          int
          float
          str
          path
          (attrsOf valueType)
          (listOf valueType)
        ])
        // {
          description = "JSON value";
        };
    in
    valueType;
  tomlValue =
    with lib.types;
    let
      valueType =
        oneOf [
          bool
          int
          float
          str
          path
          (attrsOf valueType)
          (listOf valueType)
        ]
        // {
          description = "TOML value";
        };
    in
    valueType;
  format = type: {
    inherit type;
    generate = name: value: drv name { inherit value; };
  };
in
{
  formats.json = _: format jsonValue;
  formats.toml = _: format tomlValue;
  writeText = name: text: drv name { inherit text; };

  docker = drv "docker" { version = "28.3.3"; };
  systemd = drv "systemd" { version = systemdVersion; };
  jq = drv "jq" { };
  homelab-verify = drv "homelab-verify" { };
  mesa = drv "mesa" { };
  intel-media-driver = drv "intel-media-driver" { };
  intel-vaapi-driver = drv "intel-vaapi-driver" { };
  nvidia-container-toolkit = drv "nvidia-container-toolkit" { };
  nvidia-x11 = drv "nvidia-x11" { version = "580.95.05"; };
}
