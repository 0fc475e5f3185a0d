# A recorder standing in for the parts of nixpkgs' `lib` (and `pkgs.formats.toml`) that the
# option declarations of nix/module.nix use: `mkOption` returns its arguments, types describe
# themselves. It is NOT the module system (no merging, priorities or type checks): it only reads
# the option tree, defaults and descriptions of nix/module.nix for the documentation
# (nix/tests/options.nix, scripts/gen-nixos-options) and the VM tests' scripts for pyflakes.
# Everything that evaluates a module uses the real module system: nix/tests/nixos (the NixOS
# stand-in on the pinned nixpkgs lib), nix/tests/unit.nix, nix/tests/vm-nodes.nix.
let
  mkType = name: description: extra: { _type = "type"; inherit name description; } // extra;
in
rec {
  mkOption = args: args // { _type = "option"; };

  mkEnableOption =
    name:
    mkOption {
      type = types.bool;
      default = false;
      example = true;
      description = "Whether to enable ${name}.";
    };

  mkPackageOption =
    _pkgs: name: _extra:
    mkOption {
      type = types.package;
      defaultText = literalExpression "pkgs.${name}";
      description = "The ${name} package to use.";
    };

  mkIf = condition: content: {
    _type = "if";
    inherit condition content;
  };
  optionals = cond: list: if cond then list else [ ];
  inherit (builtins)
    attrNames
    attrValues
    concatStringsSep
    filter
    mapAttrs
    ;
  filterAttrs =
    pred: set:
    builtins.listToAttrs (
      builtins.concatMap (n: if pred n set.${n} then [ { name = n; value = set.${n}; } ] else [ ]) (
        builtins.attrNames set
      )
    );
  versionAtLeast = v: min: builtins.compareVersions v min >= 0;
  escapeShellArg = s: "'${builtins.replaceStrings [ "'" ] [ "'\\''" ] (toString s)}'";
  escapeShellArgs = args: builtins.concatStringsSep " " (map escapeShellArg args);
  getExe = p: "${p}/bin/${p.meta.mainProgram}";

  literalExpression = text: {
    _type = "literalExpression";
    inherit text;
  };
  literalMD = text: {
    _type = "literalMD";
    inherit text;
  };

  types = rec {
    str = mkType "str" "string" { };
    bool = mkType "bool" "boolean" { };
    path = mkType "path" "path" { };
    package = mkType "package" "package" { };
    ints = {
      u32 = mkType "u32" "32 bit unsigned integer" { };
      positive = mkType "positive" "positive integer" { };
      unsigned = mkType "unsigned" "unsigned integer" { };
    };
    strMatching = re: mkType "strMatching" "string matching the pattern ${re}" { pattern = re; };
    addCheck =
      t: check:
      t
      // {
        inherit check;
        base = t;
      };
    enum =
      values:
      mkType "enum" "one of ${builtins.concatStringsSep ", " (map (v: "\"${v}\"") values)}" { inherit values; };
    nullOr = t: mkType "nullOr" "null or ${t.description}" { elemType = t; };
    listOf = t: mkType "listOf" "list of ${t.description}" { elemType = t; };
    attrsOf = t: mkType "attrsOf" "attribute set of ${t.description}" { elemType = t; };
    submodule = m: mkType "submodule" "submodule" { module = m; };
  };

  pkgs.formats.toml = _: {
    type = mkType "toml" "TOML value" { };
    generate = name: _value: "<${name}>";
  };
}
