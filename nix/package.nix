{
  lib,
  rustPlatform,
  pkg-config,
  getent,
  libva,
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
  # The Nix-remedy test runs nix-instantiate, which the sandbox does not have.
  checkFlags = [
    "--skip=decide_agrees_with_the_kernel"
    "--skip=nixos_remedies_parse_as_nix"
  ];

  # The GPU probe dlopens libva.so.2 and libva-drm.so.2 (NVML comes from the driver, in
  # /run/opengl-driver/lib): put libva on the binary's RUNPATH after fixup has shrunk it, and
  # on the library path of the tests that load it.
  postFixup = ''
    patchelf --add-rpath ${lib.makeLibraryPath [ libva ]} $out/bin/homelab-verify
  '';
  preCheck = ''
    export LD_LIBRARY_PATH=${lib.makeLibraryPath [ libva ]}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
  '';

  meta = {
    description = "Verify a homelab host after a move to NixOS: identities, render nodes, GPUs, mounts, file ownership";
    license = lib.licenses.mit;
    mainProgram = "homelab-verify";
    platforms = lib.platforms.linux;
  };
}
