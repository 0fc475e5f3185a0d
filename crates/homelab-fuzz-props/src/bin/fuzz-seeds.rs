//! `fuzz-seeds DIR`: writes each target's seed corpus (`DIR/seeds/<target>/`) and dictionary
//! (`DIR/dicts/<target>.dict`) for scripts/fuzz. `fuzz-seeds --list` prints the targets.

use std::path::PathBuf;
use std::process::ExitCode;

use homelab_fuzz_props::{TARGETS, seeds};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [flag] if flag == "--list" => {
            for t in TARGETS {
                println!("{}", t.name);
            }
            ExitCode::SUCCESS
        }
        [dir] => match write(&PathBuf::from(dir)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("fuzz-seeds: {e}");
                ExitCode::FAILURE
            }
        },
        _ => {
            eprintln!("usage: fuzz-seeds DIR | fuzz-seeds --list");
            ExitCode::from(2)
        }
    }
}

fn write(dir: &std::path::Path) -> std::io::Result<()> {
    let all = seeds::seeds();
    for t in TARGETS {
        let corpus = dir.join("seeds").join(t.name);
        std::fs::create_dir_all(&corpus)?;
        let mut n = 0;
        for s in all.iter().filter(|s| s.target == t.name) {
            std::fs::write(corpus.join(&s.name), &s.data)?;
            n += 1;
        }
        std::fs::create_dir_all(dir.join("dicts"))?;
        std::fs::write(dir.join("dicts").join(format!("{}.dict", t.name)), seeds::dictionary(t)?)?;
        println!("{}: {n} seeds", t.name);
    }
    Ok(())
}
