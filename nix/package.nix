# homelab-verify, built with crane from a source set that holds only what cargo needs, so
# editing docs or Nix files does not rebuild it. The cargo tests run in the build.
#
# `passthru.checks` are the flake's cargo checks; each builds exactly what its name says:
#   clippy   cargo clippy --workspace --all-targets -- --deny warnings
#   rustfmt  cargo fmt --check (with the repository's rustfmt.toml)
#   tests    cargo test --workspace (the same tests as the package's check phase)
{
  lib,
  craneLib,
  pkg-config,
  getent,
  libva,
  udev,
}:
let
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../rustfmt.toml
      # Sources, and the fixture sysroots the tests read (plain files and symbolic links).
      ../crates
      ../benches/treegen
    ];
  };

  commonArgs = {
    inherit src;
    pname = "homelab-verify";
    version = (lib.importTOML ../Cargo.toml).workspace.package.version;
    strictDeps = true;
    nativeBuildInputs = [ pkg-config ];
    # The `udev` feature links libudev (block device identity for the mount probe).
    buildInputs = [ udev ];
    # The identity tests compare our NSS look-ups with getent's.
    nativeCheckInputs = [ getent ];
    # The GPU probe dlopens libva.so.2 and libva-drm.so.2 (NVML comes from the driver, in
    # /run/opengl-driver/lib): the tests that load libva find it on the library path.
    preCheck = ''
      export LD_LIBRARY_PATH=${lib.makeLibraryPath [ libva ]}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    '';
  };

  # Tests that cannot run inside the Nix build sandbox, skipped there and only there:
  # - decide_agrees_with_the_kernel (tests/access_oracle.rs) makes the kernel the oracle for
  #   access decisions: it chowns files and switches credentials, which needs root, and the
  #   sandbox builds as an unprivileged user. It runs in CI (as root) and in scripts/test-all.
  # - nix_module_* (tests/nix_module.rs) evaluate nix/*.nix with nix-instantiate, which is not
  #   in the sandbox (and nix/ is not in this source set). They run in CI.
  # - nixos_remedies_parse_as_nix (tests/gpu_probes.rs) runs nix-instantiate too.
  testArgs = "--workspace -- --skip decide_agrees_with_the_kernel --skip nix_module_ --skip nixos_remedies_parse_as_nix";

  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
in
craneLib.buildPackage (
  commonArgs
  // {
    inherit cargoArtifacts;
    doCheck = true;
    cargoTestExtraArgs = testArgs;

    # Put libva on the binary's RUNPATH after fixup has shrunk it (the GPU probe dlopens it).
    postFixup = ''
      patchelf --add-rpath ${lib.makeLibraryPath [ libva ]} $out/bin/homelab-verify
    '';

    passthru = {
      inherit cargoArtifacts;
      checks = {
        clippy = craneLib.cargoClippy (
          commonArgs
          // {
            inherit cargoArtifacts;
            cargoClippyExtraArgs = "--workspace --all-targets -- --deny warnings";
          }
        );
        rustfmt = craneLib.cargoFmt {
          inherit src;
          inherit (commonArgs) pname version;
        };
        tests = craneLib.cargoTest (
          commonArgs
          // {
            inherit cargoArtifacts;
            cargoTestExtraArgs = testArgs;
            # cargoTest runs the tests in its build phase, where check inputs are not on PATH.
            nativeBuildInputs = commonArgs.nativeBuildInputs ++ [ getent ];
            # For the same reason preCheck does not run: put libva on the library path here.
            preBuild = commonArgs.preCheck;
          }
        );
      };
    };

    meta = {
      description = "Verify a homelab host after a move to NixOS: identities, render nodes, GPUs, mounts, file ownership";
      license = lib.licenses.mit;
      mainProgram = "homelab-verify";
      platforms = lib.platforms.linux;
    };
  }
)
