# The NixOS VM tests, one per `*.nix` file in this directory (except this one), each a plain
# test module (the argument of `pkgs.testers.runNixOSTest`). This is the one wrapper around
# them: it adds the services.homelab-probe module and the package under test to every node,
# and gives each test module the argument `homelab`:
#   homelab.package   the homelab-verify under test
#   homelab.helpers   Python helpers for test scripts (lib/helpers.py), to prepend
#   homelab.fixtures  crates/homelab-probe/tests/fixtures (the sources: snapshots/testvm.json and
#                     the Plex stack of migration/testvm, which is built from no layers)
# Adding a test is adding one file here; nix/lib.nix (testNames) picks it up.
{
  pkgs,
  package,
  module ? ../nix/module.nix,
}:
let
  hpLib = import ../nix/lib.nix;

  runTest =
    name:
    pkgs.testers.runNixOSTest {
      imports = [ (./. + "/${name}.nix") ];
      _module.args.homelab = {
        inherit package;
        helpers = builtins.readFile ./lib/helpers.py;
        fixtures = ../crates/homelab-probe/tests/fixtures;
      };
      defaults = {
        imports = [ module ];
        services.homelab-probe.package = package;
      };
      globalTimeout = 20 * 60;
    };
in
builtins.listToAttrs (
  map (name: {
    inherit name;
    value = runTest name;
  }) (hpLib.testNames (builtins.readDir ./.))
)
