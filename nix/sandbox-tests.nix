# The Nix build's test selection, read from nix/sandbox-tests.txt (see there for the format and
# why each test is left out). Builtins only, so that it evaluates without nixpkgs:
#   nix-instantiate --eval --strict --json nix/sandbox-tests.nix
# scripts/nix-sandbox-tests parses the same file and runs the same selection under
# sandbox-like conditions; crates/homelab-verify/tests/nix_sandbox_selection.rs checks that the
# two agree, and that nix/package.nix uses this.
let
  text = builtins.readFile ./sandbox-tests.txt;
  lines = builtins.filter builtins.isString (builtins.split "\n" text);
  entries = builtins.filter (l: l != "" && builtins.substring 0 1 l != "#") (
    map (l: builtins.head (builtins.match "[[:space:]]*(.*[^[:space:]]|)[[:space:]]*" l)) lines
  );
  parse =
    l:
    let
      m = builtins.match "(exclude-test|skip|check-input)[[:space:]]+([^[:space:]]+)[[:space:]]+(.*)" l;
      kind = builtins.elemAt m 0;
      rest = builtins.elemAt m 2;
      cm = builtins.match "([^[:space:]]+)[[:space:]]+(.+)" rest;
    in
    if m == null then
      throw "nix/sandbox-tests.txt: cannot read `${l}`: expected `exclude-test NAME REASON`, `skip PATTERN REASON` or `check-input ATTR CMDS REASON`"
    else if kind == "check-input" && cm == null then
      throw "nix/sandbox-tests.txt: `${l}`: expected `check-input ATTR CMDS REASON`"
    else
      {
        inherit kind;
        name = builtins.elemAt m 1;
      };
  parsed = map parse entries;
  namesOf = kind: map (e: e.name) (builtins.filter (e: e.kind == kind) parsed);

  excludedTests = namesOf "exclude-test";
  skips = namesOf "skip";
  checkInputs = namesOf "check-input";

  # Integration test targets: cargo's auto-discovery, tests/*.rs of every workspace member
  # (Cargo.toml: members = crates/* and benches/treegen).
  crates = builtins.readDir ../crates;
  crateDirs =
    map (n: ../crates + "/${n}") (builtins.filter (n: crates.${n} == "directory") (builtins.attrNames crates))
    ++ [ ../benches/treegen ];
  testsOf =
    dir:
    let
      t = dir + "/tests";
      entries = if builtins.pathExists t then builtins.readDir t else { };
      rs = builtins.filter (
        n: entries.${n} == "regular" && builtins.match ".*\\.rs" n != null
      ) (builtins.attrNames entries);
    in
    map (n: builtins.substring 0 (builtins.stringLength n - 3) n) rs;
  allTests = builtins.sort builtins.lessThan (
    builtins.attrNames (
      builtins.listToAttrs (map (n: { name = n; value = null; }) (builtins.concatMap testsOf crateDirs))
    )
  );
  unknown = builtins.filter (n: !builtins.elem n allTests) excludedTests;
  tests =
    if unknown != [ ] then
      throw "nix/sandbox-tests.txt excludes tests that do not exist: ${builtins.concatStringsSep " " unknown}"
    else
      builtins.filter (n: !builtins.elem n excludedTests) allTests;
in
{
  inherit
    excludedTests
    skips
    checkInputs
    tests
    ;
  # What crane appends to `cargo test --release --locked` (cargoTestExtraArgs).
  cargoTestArgs = builtins.concatStringsSep " " (
    [
      "--workspace"
      "--lib"
      "--bins"
    ]
    ++ builtins.concatMap (t: [
      "--test"
      t
    ]) tests
    ++ (
      if skips == [ ] then
        [ ]
      else
        [ "--" ]
        ++ builtins.concatMap (s: [
          "--skip"
          s
        ]) skips
    )
  );
}
