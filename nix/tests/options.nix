# Reads the option declarations of nix/module.nix through the recorder in stub-lib.nix.
#   declarations        the declared `services.homelab-probe` options
#   settingsWith def    the module's `settings` value for the definition `def`: declared
#                       defaults filled in (through submodules, as the module system does),
#                       freeform sections passed through
#   expectationsWith    the same, as the module renders it to homelab-probe.toml (nulls dropped)
#   docTable            the Markdown table of every option, for docs/nixos.md
let
  stub = import ./stub-lib.nix;
  hpLib = import ../lib.nix;

  module = import ../module.nix {
    lib = stub;
    pkgs = stub.pkgs;
    config = { };
    options = { };
  };

  declarations = module.options.services.homelab-probe;

  isOption = v: builtins.isAttrs v && (v._type or null) == "option";

  # The value of an option of type `type` for the definition `def`.
  valueOf =
    type: def:
    if type.name == "submodule" then
      submoduleValue type.module def
    else if type.name == "nullOr" then
      (if def == null then null else valueOf type.elemType def)
    else if type.name == "listOf" then
      map (valueOf type.elemType) def
    else if type.name == "attrsOf" then
      builtins.mapAttrs (_: valueOf type.elemType) def
    else
      def;

  submoduleValue =
    m: def:
    let
      declared = m.options;
      freeform = removeAttrs def (builtins.attrNames declared);
    in
    (if m ? freeformType then freeform else assert freeform == { }; { })
    // builtins.mapAttrs (
      name: o:
      if def ? ${name} then
        valueOf o.type def.${name}
      else if o ? default then
        valueOf o.type o.default
      else
        throw "option ${name} has no default and no definition"
    ) declared;

  settingsWith = def: valueOf declarations.settings.type def;

  # The type errors of the definition `v` at `path` for the recorded type `t`: what the
  # module system would refuse, decided by the same `check` rules as nixpkgs' types
  # (lib/types.nix: `str` is isString, `strMatching` adds builtins.match, `ints.u32` is
  # 0..4294967295, `ints.unsigned` >= 0, `enum` is elem, `addCheck` adds its check to the base
  # type's, a submodule without freeformType refuses undeclared options).
  errorsOf =
    path: t: v:
    let
      bad = [ "${path}: ${builtins.toJSON v} is not of type `${t.description}`" ];
      unless = ok: if ok then [ ] else bad;
      inRange = lo: hi: builtins.isInt v && v >= lo && (hi == null || v <= hi);
    in
    if t ? base then
      let
        baseErrors = errorsOf path t.base v;
      in
      if baseErrors != [ ] then baseErrors else unless (t.check v)
    else if t.name == "str" then
      unless (builtins.isString v)
    else if t.name == "strMatching" then
      unless (builtins.isString v && builtins.match t.pattern v != null)
    else if t.name == "bool" then
      unless (builtins.isBool v)
    else if t.name == "u32" then
      unless (inRange 0 4294967295)
    else if t.name == "positive" then
      unless (inRange 1 null)
    else if t.name == "unsigned" then
      unless (inRange 0 null)
    else if t.name == "enum" then
      unless (builtins.elem v t.values)
    else if t.name == "nullOr" then
      (if v == null then [ ] else errorsOf path t.elemType v)
    else if t.name == "listOf" then
      (
        if builtins.isList v then
          builtins.concatLists (builtins.genList (i: errorsOf "${path}.${toString i}" t.elemType (builtins.elemAt v i)) (builtins.length v))
        else
          bad
      )
    else if t.name == "attrsOf" then
      (
        if builtins.isAttrs v then
          builtins.concatMap (n: errorsOf "${path}.${n}" t.elemType v.${n}) (builtins.attrNames v)
        else
          bad
      )
    else if t.name == "submodule" then
      (
        if !builtins.isAttrs v then
          bad
        else
          let
            declared = t.module.options;
            undeclared = builtins.filter (n: !(declared ? ${n})) (builtins.attrNames v);
          in
          (
            if t.module ? freeformType then
              [ ]
            else
              map (n: "${path}.${n}: no such option") undeclared
          )
          ++ builtins.concatMap (
            n:
            if v ? ${n} then
              errorsOf "${path}.${n}" declared.${n}.type v.${n}
            else if declared.${n} ? default then
              [ ]
            else
              [ "${path}.${n}: used but not defined" ]
          ) (builtins.attrNames declared)
      )
    else
      [ ];

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
      # A group of options (`serve.*`) is an attribute set of options, not an option.
      if !isOption opts.${name} then rows "${prefix}.${name}" opts.${name} else
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
  inherit declarations settingsWith;

  expectationsWith = def: hpLib.expectations (settingsWith def);

  # What the module makes of the `settings` definition `def`: the type errors (evaluation
  # stops), then the assertions and warnings on the new sections (the build stops / goes on),
  # then what it renders to homelab-probe.toml.
  verdict =
    def:
    let
      typeErrors = errorsOf "settings" declarations.settings.type def;
      settings = settingsWith def;
    in
    {
      inherit typeErrors;
      problems = if typeErrors == [ ] then hpLib.settingsProblems settings else [ ];
      warnings = if typeErrors == [ ] then hpLib.settingsWarnings settings else [ ];
      expectations = if typeErrors == [ ] then hpLib.expectations settings else null;
    };

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
