# Reads the option declarations of nix/module.nix through the recorder in stub-lib.nix, for the
# documentation (what the recorder does well: the option tree, types, defaults, descriptions).
# Evaluating the module is done with the real module system (./unit.nix, ./vm-nodes.nix).
#   declarations        the declared `services.homelab-probe` options
#   optionNames         every option's name, submodules included
#   docTable            the Markdown table of every option, for docs/nixos.md
let
  stub = import ./stub-lib.nix;

  module = import ../module.nix {
    lib = stub;
    pkgs = stub.pkgs;
    config = { };
    options = { };
  };

  declarations = module.options.services.homelab-probe;

  isOption = v: builtins.isAttrs v && (v._type or null) == "option";

  # Nix-like text of a value, for the documentation.
  show =
    v:
    if v == null then
      "null"
    else if builtins.isBool v then
      (if v then "true" else "false")
    else if builtins.isString v then
      builtins.toJSON v
    else if builtins.isList v then
      (if v == [ ] then "[ ]" else "[ ${builtins.concatStringsSep " " (map show v)} ]")
    else if builtins.isAttrs v && (v._type or null) == "literalExpression" then
      v.text
    else if builtins.isAttrs v && (v._type or null) == "literalMD" then
      v.text
    else if builtins.isAttrs v then
      (
        if v == { } then
          "{ }"
        else
          "{ ${
            builtins.concatStringsSep " " (map (n: "${n} = ${show v.${n}};") (builtins.attrNames v))
          } }"
      )
    else
      toString v;

  # Flattened option list: { name; type; default; description; }, submodules included
  # (`<name>` for attribute-set entries, `*` for list entries).
  rows =
    prefix: opts:
    builtins.concatMap (
      name:
      let
        o = opts.${name};
        path = "${prefix}.${name}";
        sub =
          t:
          if t.name == "submodule" then
            rows path t.module.options
          else if t.name == "attrsOf" && t.elemType.name == "submodule" then
            rows "${path}.<name>" t.elemType.module.options
          else if t.name == "listOf" && t.elemType.name == "submodule" then
            rows "${path}.*" t.elemType.module.options
          else if t.name == "nullOr" then
            sub t.elemType
          else
            [ ];
      in
      [
        {
          name = path;
          type = o.type.description;
          default =
            if (o.defaultText._type or null) == "literalMD" then
              o.defaultText.text
            else if o ? defaultText then
              "`${show o.defaultText}`"
            else if o ? default then
              "`${show o.default}`"
            else
              "(required)";
          description = builtins.replaceStrings [ "\n" "|" ] [ " " "\\|" ] o.description;
        }
      ]
      ++ sub o.type
    ) (builtins.attrNames opts);

  squeeze =
    s:
    let
      t = builtins.replaceStrings [ "  " ] [ " " ] s;
    in
    if t == s then s else squeeze t;
  trim =
    s:
    let
      m = builtins.match "[[:space:]]*(.*[^[:space:]])[[:space:]]*" s;
    in
    if m == null then "" else builtins.head m;
in
{
  inherit declarations;

  optionNames = map (r: r.name) (rows "services.homelab-probe" declarations);

  docTable = builtins.concatStringsSep "\n" (
    [
      "| option | type | default | description |"
      "|---|---|---|---|"
    ]
    ++ map (
      r:
      "| `${r.name}` | ${r.type} | ${r.default} | ${trim (squeeze r.description)} |"
    ) (rows "services.homelab-probe" declarations)
  );
}
