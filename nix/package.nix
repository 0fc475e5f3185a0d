{
  lib,
  rustPlatform,
  pkg-config,
  getent,
}:

rustPlatform.buildRustPackage {
  pname = "homelab-verify";
  version = (lib.importTOML ../Cargo.toml).workspace.package.version;

  # Only what the build needs, so editing docs or Nix files does not rebuild the binary.
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../crates
    ];
  };
  cargoLock.lockFile = ../Cargo.lock;

  nativeBuildInputs = [ pkg-config ];
  # The identity tests compare our NSS look-ups with getent's.
  nativeCheckInputs = [ getent ];

  cargoBuildFlags = [
    "--package"
    "homelab-verify"
  ];
  # The access oracle test switches credentials and needs root; the Nix sandbox has none.
  checkFlags = [ "--skip=decide_agrees_with_the_kernel" ];

  meta = {
    description = "Verify a homelab host after a move to NixOS: identities, render nodes, GPUs, mounts, file ownership";
    license = lib.licenses.mit;
    mainProgram = "homelab-verify";
    platforms = lib.platforms.linux;
  };
}
