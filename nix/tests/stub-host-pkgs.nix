# Stands in for the `hostPkgs` a VM test module gets, in the tests that read nixos-tests/*.nix
# without nixpkgs (crates/homelab-probe/tests/nix_module.rs): each builder returns a fixed path.
# `planned` is what `runCommand` returns: the directory `homelab-verify plan` wrote.
planned: {
  runCommand = _name: _env: _script: planned;
  buildEnv = _args: "/BUILDENV";
  busybox = "/BUSYBOX";
  dockerTools.buildImage = _args: "/IMAGE";
}
