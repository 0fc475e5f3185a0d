# homelab-verify, built with crane from a source set that holds only what cargo needs, so
# editing docs or Nix files does not rebuild it. The cargo tests run in the build.
#
# `passthru.checks` are the flake's cargo checks; each builds exactly what its name says:
#   clippy   cargo clippy --workspace --all-targets -- --deny warnings (the lints themselves are
#            [workspace.lints] in Cargo.toml, as for every other build)
#   rustfmt  cargo fmt --check (with the repository's rustfmt.toml)
#   tests    cargo test with the same selection as the package's check phase (nix/sandbox-tests.txt)
{
  lib,
  craneLib,
  pkg-config,
  getent,
  util-linux,
  libva,
  udev,
  # The commit and its date (YYYY-MM-DD) for `homelab-verify --version`: the build has no .git
  # (crates/homelab-verify/build.rs reads these instead). The flake passes its own revision.
  gitRev ? null,
  gitDate ? null,
}:
let
  src = lib.fileset.toSource {
    root = ../.;
    fileset = lib.fileset.unions [
      ../Cargo.toml
      ../Cargo.lock
      ../rustfmt.toml
      # Sources, and the fixtures the tests read (the sysroots' layers and overlays, which
      # homelab-test-support's build script builds into whole sysroots under OUT_DIR).
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
    # The commands the tests run that stdenv lacks: the `check-input` lines of
    # nix/sandbox-tests.txt (with why), each a package named here.
    nativeCheckInputs = map (
      name:
      checkInputPackages.${name}
        or (throw "nix/sandbox-tests.txt: check-input ${name} is not an argument of nix/package.nix")
    ) sandboxTests.checkInputs;
    # The GPU probe dlopens libva.so.2 and libva-drm.so.2 (NVML comes from the driver, in
    # /run/opengl-driver/lib): the tests that load libva find it on the library path.
    preCheck = ''
      export LD_LIBRARY_PATH=${lib.makeLibraryPath [ libva ]}''${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
    '';
  };

  # Which tests the check phase runs: nix/sandbox-tests.txt lists the test binaries and tests
  # that cannot run inside the Nix build sandbox (unprivileged build user, no /sys, no network,
  # only stdenv's tools and the check inputs on PATH), each with the reason; they run in CI, as
  # root, with every tool. scripts/nix-sandbox-tests runs this same selection under
  # sandbox-like conditions in CI (a rehearsal: no Nix build runs there).
  sandboxTests = import ./sandbox-tests.nix;
  testArgs = sandboxTests.cargoTestArgs;
  checkInputPackages = { inherit getent util-linux; };

  cargoArtifacts = craneLib.buildDepsOnly commonArgs;
in
craneLib.buildPackage (
  commonArgs
  // {
    inherit cargoArtifacts;
    doCheck = true;
    cargoTestExtraArgs = testArgs;

    # Only the package gets them (not commonArgs): a new commit rebuilds the binary, not the
    # dependencies or the checks.
    HOMELAB_VERIFY_GIT_COMMIT = gitRev;
    HOMELAB_VERIFY_GIT_DATE = gitDate;

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
            nativeBuildInputs = commonArgs.nativeBuildInputs ++ commonArgs.nativeCheckInputs;
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
