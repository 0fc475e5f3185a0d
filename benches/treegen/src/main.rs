//! `treegen`: make the benchmark and test trees (see the library docs). Needs root.
//!
//! ```text
//! treegen media DIR [SHOWS SEASONS EPISODES]   # default 1000 10 100: 1,011,001 entries
//! treegen flat DIR [DIRS ENTRIES]              # default 1 200000
//! treegen deep DIR [DEPTH FILES]               # default 2000 2
//! treegen edge DIR [WIDE]                      # default 5000
//! ```
//! Options through the environment: `TREEGEN_UID`, `TREEGEN_GID` (default 1000, 110),
//! `TREEGEN_DRIFT_PPM` (default 1500 = 0.15 %), `TREEGEN_SEED` (default 1),
//! `TREEGEN_THREADS` (default: CPUs), `TREEGEN_PER_DIR_OWNERS=1` (each directory's entries
//! get their own owner, 2000..2999: a mixed tree for the baseline benchmark). Prints
//! `entries=N offending=M`.

use std::path::PathBuf;
use std::process::ExitCode;

fn env_num<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = "usage: treegen media|flat|deep|edge DIR [NUMBERS...]";
    let (Some(kind), Some(dir)) = (args.first(), args.get(1)) else {
        eprintln!("{usage}");
        return ExitCode::from(2);
    };
    let num = |i: usize, d: u32| args.get(i).and_then(|v| v.parse().ok()).unwrap_or(d);
    let spec = treegen::Spec {
        owner: (env_num("TREEGEN_UID", 1000), env_num("TREEGEN_GID", 110)),
        drift_ppm: env_num("TREEGEN_DRIFT_PPM", 1500),
        seed: env_num("TREEGEN_SEED", 1),
        per_dir_owners: env_num("TREEGEN_PER_DIR_OWNERS", 0u8) == 1,
    };
    let threads = env_num("TREEGEN_THREADS", std::thread::available_parallelism().map_or(1, |n| n.get()));
    let root = PathBuf::from(dir);
    let made = match kind.as_str() {
        "media" => treegen::media(&root, num(2, 1000), num(3, 10), num(4, 100), spec, threads),
        "flat" => treegen::flat(&root, num(2, 1), num(3, 200_000), spec),
        "deep" => treegen::deep(&root, num(2, 2000), num(3, 2), spec),
        "edge" => treegen::edge(&root, num(2, 5000), spec),
        _ => {
            eprintln!("{usage}");
            return ExitCode::from(2);
        }
    };
    match made {
        Ok(m) => {
            let (e, o) = m.counts();
            println!("entries={e} offending={o}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("treegen: {dir}: {e}");
            ExitCode::from(1)
        }
    }
}
