//! `fixture`: where a fixture sysroot, built from its layers, is (`cargo fixture NAME`, an
//! alias in `.cargo/config.toml`), so that the commands in the docs can point at one:
//!
//! ```text
//! cargo fixture                    # every sysroot's name
//! cargo fixture nixos-default      # its path: homelab-verify check --root "$(cargo fixture nixos-default)"
//! cargo fixture migration          # a directory of sysroots
//! ```
//!
//! The sysroots are built once by this crate's build script; nothing is written here.

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        for name in homelab_test_support::sysroot_names() {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    match paths(&args) {
        Ok(paths) => {
            for p in paths {
                println!("{}", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("fixture: {e}");
            ExitCode::from(2)
        }
    }
}

/// Where each named sysroot (or directory of sysroots) was built.
fn paths(names: &[String]) -> Result<Vec<PathBuf>, String> {
    let dir = homelab_test_support::sysroots_dir();
    names
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let plain = !name.starts_with('-') && name.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
            if plain && path.is_dir() {
                Ok(path)
            } else {
                Err(format!("no fixture sysroot {name:?} (`cargo fixture` lists them)"))
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(names: &[&str]) -> Result<Vec<PathBuf>, String> {
        paths(&names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn names_are_paths_to_the_built_sysroots() {
        assert_eq!(p(&["nixos-default"]).unwrap(), [homelab_test_support::sysroot("nixos-default")]);
        let migration = p(&["migration"]).unwrap();
        assert!(migration[0].join("oldhost/etc/passwd").is_file(), "{migration:?}");
        for name in homelab_test_support::sysroot_names() {
            assert!(p(&[&name]).unwrap()[0].join("etc").is_dir(), "{name}");
        }
    }

    #[test]
    fn anything_else_is_refused() {
        for bad in ["no-such-host", "../..", "migration/../nixos-default", "", "--help", "layers/intel-igpu"] {
            assert!(p(&[bad]).is_err(), "{bad}");
        }
    }
}
