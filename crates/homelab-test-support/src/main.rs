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

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.is_empty() {
        for name in homelab_test_support::sysroot_names() {
            println!("{name}");
        }
        return ExitCode::SUCCESS;
    }
    let dir = homelab_test_support::sysroots_dir();
    for name in &args {
        let path = dir.join(name);
        if name.starts_with('-') || name.split('/').any(|c| c.is_empty() || c == "." || c == "..") || !path.is_dir() {
            eprintln!("fixture: no fixture sysroot {name:?} (`cargo fixture` lists them)");
            return ExitCode::from(2);
        }
        println!("{}", path.display());
    }
    ExitCode::SUCCESS
}
