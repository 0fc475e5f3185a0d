# Tests of the shape of flake.nix's outputs, evaluated with recorders standing in for nixpkgs
# and crane (flake-recorded.nix; no nixpkgs here): which outputs exist for which system, and
# that each check is built by the builder its name says (clippy by cargoClippy with warnings
# denied, ...), from the package's own arguments. Evaluates to the list of failures (empty when
# all pass).
let
  inherit (import ./flake-recorded.nix) flake lib pkgsFor out rev;

  case = name: got: want: if got == want then [ ] else [ "${name}: got ${builtins.toJSON got}, want ${builtins.toJSON want}" ];
  names = builtins.attrNames;
  hasInfix = infix: s: builtins.match ".*${infix}.*" s != null;

  x86 = out.checks.x86_64-linux;
  pkg = out.packages.x86_64-linux.homelab-verify;
in
case "flake inputs" (names flake.inputs) [ "crane" "nixpkgs" ]
++ case "package systems" (names out.packages) [ "aarch64-linux" "x86_64-linux" ]
++ case "packages" (names out.packages.aarch64-linux) [ "default" "homelab-verify" ]
++ case "default package is homelab-verify" (out.packages.x86_64-linux.default == pkg) true
++ case "package runs the tests in its build" pkg.args.doCheck true
++ case "package is built for its system" out.packages.aarch64-linux.homelab-verify.system "aarch64-linux"
++ case "source set" (map (p: builtins.baseNameOf p) pkg.args.src._source) [ "Cargo.toml" "Cargo.lock" "rustfmt.toml" "crates" "treegen" ]
# Every workspace member must be in the source set, or cargo cannot even load the workspace.
++ case "source set holds every workspace member" (builtins.filter (m: !(builtins.elem "${toString ../..}/${builtins.head (builtins.split "/[*]" m)}" pkg.args.src._source)) (builtins.fromTOML (builtins.readFile ../../Cargo.toml)).workspace.members) [ ]
++ case "x86_64 checks" (names x86) [ "clippy" "homelab-verify" "nixos-generated" "nixos-mounts" "nixos-post-switch" "nixos-render-node" "rustfmt" "tests" ]
++ case "aarch64 checks: no VM tests" (names out.checks.aarch64-linux) [ "clippy" "homelab-verify" "rustfmt" "tests" ]
++ case "checks.homelab-verify is the package" (x86.homelab-verify == pkg) true
++ case "checks.clippy is cargo clippy" x86.clippy.kind "clippy"
++ case "clippy denies warnings on every target of the workspace" (map (f: hasInfix f x86.clippy.args.cargoClippyExtraArgs) [ "--workspace" "--all-targets" "-- --deny warnings" ]) [ true true true ]
++ case "clippy builds the package's sources" (x86.clippy.args.src == pkg.args.src) true
++ case "checks.rustfmt is cargo fmt" x86.rustfmt.kind "fmt"
++ case "rustfmt sees rustfmt.toml" (builtins.elem "rustfmt.toml" (map builtins.baseNameOf x86.rustfmt.args.src._source)) true
++ case "checks.tests is cargo test" x86.tests.kind "test"
++ case "tests run the selection of nix/sandbox-tests.txt" x86.tests.args.cargoTestExtraArgs (import ../sandbox-tests.nix).cargoTestArgs
++ case "the selection is the workspace's unit tests and chosen test binaries" (builtins.substring 0 25 x86.tests.args.cargoTestExtraArgs) "--workspace --lib --bins "
++ case "the check inputs are the check-input lines of nix/sandbox-tests.txt" pkg.args.nativeCheckInputs (import ../sandbox-tests.nix).checkInputs
++ case "tests can compare with getent" (builtins.elem "getent" pkg.args.nativeCheckInputs) true
++ case "checks.tests has the check inputs on PATH" x86.tests.args.nativeBuildInputs ([ "pkg-config" ] ++ pkg.args.nativeCheckInputs)
++ case "the package's check phase runs the same tests" pkg.args.cargoTestExtraArgs x86.tests.args.cargoTestExtraArgs
++ case "VM test files" (map (n: builtins.baseNameOf x86.${n}.file) [ "nixos-generated" "nixos-mounts" "nixos-post-switch" "nixos-render-node" ]) [ "generated.nix" "mounts.nix" "post-switch.nix" "render-node.nix" ]
++ case "VM tests import the module" (map builtins.baseNameOf x86.nixos-render-node.defaultsImports) [ "module.nix" ]
++ case "VM tests test this package" (x86.nixos-render-node.package == pkg) true
++ case "apps systems" (names out.apps) [ "aarch64-linux" "x86_64-linux" ]
++ case "apps" (names out.apps.x86_64-linux) [ "default" ]
++ case "nix run runs homelab-verify" (out.apps.x86_64-linux.default == { type = "app"; program = { exeOf = pkg; }; }) true
++ case "nix run on aarch64 runs the aarch64 package" out.apps.aarch64-linux.default.program.exeOf.system "aarch64-linux"
++ case "getExe finds the binary by meta.mainProgram" pkg.args.meta.mainProgram "homelab-verify"
++ case "--version names the flake's commit" pkg.args.HOMELAB_VERIFY_GIT_COMMIT rev
++ case "--version names the commit's date" pkg.args.HOMELAB_VERIFY_GIT_DATE "2026-11-25"
++ case "the commit is not in the arguments of the dependencies and checks (a commit rebuilds the binary only)" (map (c: c.args ? HOMELAB_VERIFY_GIT_COMMIT) [ pkg.args.cargoArtifacts x86.clippy x86.tests ]) [ false false false ]
++ case "overlay" ((out.overlays.default (pkgsFor "x86_64-linux") { }).homelab-verify.kind) "package"
++ case "nixosModules" (names out.nixosModules) [ "default" "homelab-probe" ]
++ case "default module is homelab-probe (functions compare by what they return)" (
  let
    args = { inherit lib; pkgs = pkgsFor "x86_64-linux"; };
  in
  let
    shape = m: {
      imports = map toString m.imports;
      package = m.services.homelab-probe.package.value.system;
    };
  in
  shape (out.nixosModules.default args) == shape (out.nixosModules.homelab-probe args)
) true
++ case "module imports nix/module.nix" (map builtins.baseNameOf (out.nixosModules.homelab-probe { inherit lib; pkgs = pkgsFor "x86_64-linux"; }).imports) [ "module.nix" ]
++ case "module defaults the package to one built from the host's pkgs" ((out.nixosModules.homelab-probe { inherit lib; pkgs = pkgsFor "aarch64-linux"; }).services.homelab-probe.package.value.system) "aarch64-linux"
++ case "lib.prometheusRules is the shipped rules file" (builtins.baseNameOf out.lib.prometheusRules) "prometheus-rules.yml"
++ case "formatter" out.formatter.x86_64-linux.kind "nixfmt"
++ case "devShell" out.devShells.x86_64-linux.default.kind "devShell"
