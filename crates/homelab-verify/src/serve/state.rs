//! What `serve` knows: the expectations in use (reloaded on SIGHUP, the last good file kept
//! when a new one is invalid) and each probe's latest result.
//!
//! Each probe has its own cache slot, so a slow probe never holds up another: a request for
//! the mounts probe (`/readyz?probe=mounts`) waits at most for the mounts probe. A result is
//! reused for `--cache`; when it is older, the first request starts one run on the blocking
//! pool and every request that comes while it runs waits for that same run (single flight).
//! The run goes on when the request that started it goes away, so an impatient client cannot
//! make two runs overlap. The drift probe (a bounded scan of whole data roots) never runs
//! because of a request: [`State::drift_loop`] runs it every `--drift-interval` and on reload,
//! and requests read its latest result.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

use homelab_probe::{Expectations, Finding, Host, Probe, Report};
use tokio::sync::{Notify, watch};

use crate::formats::{ProbeRun, Run};

/// The expectations and host in use; `generation` grows with each successful reload, so a
/// cached result of older expectations is not reused.
pub struct Config {
    host: Host,
    expectations: Expectations,
    source: String,
    generation: u64,
}

/// Runs one probe: `check::run_probes`, or a stand-in in the tests.
pub type Runner = Arc<dyn Fn(&Host, &Expectations, Probe) -> Vec<Finding> + Send + Sync>;

/// One probe's findings from one run.
pub struct ProbeResult {
    findings: Vec<Finding>,
    run: ProbeRun,
    at: Instant,
    generation: u64,
}

type Pending = watch::Receiver<Option<Arc<ProbeResult>>>;

#[derive(Default)]
struct Slot {
    last: Option<Arc<ProbeResult>>,
    running: Option<Pending>,
    runs: u64,
}

/// Where a probe's result comes from: the cache, or a run to wait for.
enum Lookup {
    Ready(Arc<ProbeResult>),
    Wait(Pending),
}

/// The shared state of the server.
pub struct State {
    config: RwLock<Arc<Config>>,
    reload_error: RwLock<Option<String>>,
    slots: [Mutex<Slot>; Probe::ALL.len()],
    cache: Duration,
    expect: Option<PathBuf>,
    drift_now: Notify,
    runner: Runner,
}

/// A poisoned lock only means a thread panicked while holding it; the slot or configuration
/// it guards is still whole (every write is a single assignment), so go on with it.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn index(probe: Probe) -> usize {
    Probe::ALL.iter().position(|p| *p == probe).unwrap_or(0)
}

impl State {
    /// The state for `host` checked against `expectations` (read from `expect`, if given).
    pub fn new(
        host: Host,
        expectations: Expectations,
        source: String,
        expect: Option<PathBuf>,
        cache: Duration,
    ) -> Self {
        State {
            config: RwLock::new(Arc::new(Config { host, expectations, source, generation: 0 })),
            reload_error: RwLock::new(None),
            slots: Default::default(),
            cache,
            expect,
            drift_now: Notify::new(),
            runner: Arc::new(|host, expectations, probe| {
                homelab_probe::check::run_probes(host, expectations, &[probe])
            }),
        }
    }

    /// The same state with another way of running a probe (the tests time and count runs).
    #[cfg(test)]
    fn with_runner(mut self, runner: Runner) -> Self {
        self.runner = runner;
        self
    }

    fn config(&self) -> Arc<Config> {
        self.config.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// The error of the last reload, when it failed (the last good expectations are in use).
    pub fn reload_error(&self) -> Option<String> {
        self.reload_error.read().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Re-reads the expectations file (SIGHUP). A file that does not load leaves the last good
    /// expectations in use and is reported on /healthz and in the log.
    pub fn reload(&self) {
        let Some(file) = &self.expect else {
            eprintln!("homelab-verify serve: SIGHUP: no --expect file, the built-in defaults stay");
            return;
        };
        match Expectations::load(file) {
            Ok(expectations) => {
                let mut config = self.config.write().unwrap_or_else(PoisonError::into_inner);
                let next = Config {
                    host: config.host.clone(),
                    expectations,
                    source: config.source.clone(),
                    generation: config.generation + 1,
                };
                *config = Arc::new(next);
                drop(config);
                *self.reload_error.write().unwrap_or_else(PoisonError::into_inner) = None;
                eprintln!("homelab-verify serve: SIGHUP: reloaded {}", file.display());
                self.drift_now.notify_one();
            }
            Err(e) => {
                let message = format!("{e}; still checking against the last good version of the file");
                eprintln!("homelab-verify serve: SIGHUP: {message}");
                *self.reload_error.write().unwrap_or_else(PoisonError::into_inner) = Some(message);
            }
        }
    }

    /// Runs `probe` and keeps its result as the latest.
    fn run_and_store(&self, config: &Config, probe: Probe) -> Arc<ProbeResult> {
        let start = Instant::now();
        let findings = (self.runner)(&config.host, &config.expectations, probe);
        let duration = start.elapsed();
        let mut slot = lock(&self.slots[index(probe)]);
        slot.runs += 1;
        let run = ProbeRun { probe, finished: SystemTime::now(), duration, runs: slot.runs };
        let result = Arc::new(ProbeResult { findings, run, at: Instant::now(), generation: config.generation });
        slot.last = Some(result.clone());
        slot.running = None;
        result
    }

    /// The cached result of `probe` when it is fresh; else the run to wait for, started here
    /// when none is running.
    fn lookup(self: &Arc<Self>, probe: Probe) -> Lookup {
        let config = self.config();
        let mut slot = lock(&self.slots[index(probe)]);
        let fresh = |r: &&Arc<ProbeResult>| r.generation == config.generation && r.at.elapsed() < self.cache;
        if let Some(r) = slot.last.as_ref().filter(fresh) {
            return Lookup::Ready(r.clone());
        }
        // A run whose sender is gone ended without a result (it cannot, short of a panic):
        // start another.
        if let Some(pending) = slot.running.as_ref().filter(|p| p.has_changed().is_ok()) {
            return Lookup::Wait(pending.clone());
        }
        let (tx, rx) = watch::channel(None);
        slot.running = Some(rx.clone());
        drop(slot);
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let result = state.run_and_store(&config, probe);
            let _ = tx.send(Some(result));
        });
        Lookup::Wait(rx)
    }

    /// The latest result of each of `probes`: fresh ones from the cache, stale ones run (all
    /// started before any is waited for, so they run side by side), drift's as it is. `None`
    /// for a probe without a result (drift before its first scan).
    pub async fn results(self: &Arc<Self>, probes: &[Probe]) -> Vec<(Probe, Option<Arc<ProbeResult>>)> {
        let scheduled = self.drift_is_scheduled();
        let lookups: Vec<(Probe, Option<Lookup>)> = probes
            .iter()
            .map(|&p| {
                if p == Probe::Drift && scheduled {
                    (p, lock(&self.slots[index(p)]).last.clone().map(Lookup::Ready))
                } else {
                    (p, Some(self.lookup(p)))
                }
            })
            .collect();
        let mut out = Vec::with_capacity(lookups.len());
        for (probe, lookup) in lookups {
            let result = match lookup {
                None => None,
                Some(Lookup::Ready(r)) => Some(r),
                Some(Lookup::Wait(mut rx)) => rx.wait_for(Option::is_some).await.ok().and_then(|r| r.clone()),
            };
            out.push((probe, result));
        }
        out
    }

    /// Whether the expectations have `[[drift]]` roots, so the drift probe runs on its own
    /// schedule. Without any it has nothing to scan and is looked up like the other probes.
    fn drift_is_scheduled(&self) -> bool {
        !self.config().expectations.drift.is_empty()
    }

    /// Runs the drift probe now, then every `interval`, and at once after a reload (when the
    /// expectations have `[[drift]]` roots).
    pub async fn drift_loop(self: Arc<Self>, interval: Duration) {
        loop {
            if self.drift_is_scheduled() {
                let config = self.config();
                let state = self.clone();
                let done = tokio::task::spawn_blocking(move || {
                    state.run_and_store(&config, Probe::Drift);
                })
                .await;
                if let Err(e) = done {
                    eprintln!("homelab-verify serve: the drift scan ended without a result: {e}");
                }
            }
            let _ = tokio::time::timeout(interval, self.drift_now.notified()).await;
        }
    }

    /// A report of the given results, as the formats render it.
    pub fn run_of(&self, results: &[(Probe, Option<Arc<ProbeResult>>)]) -> Run {
        let config = self.config();
        let mut findings = Vec::new();
        let mut probes = Vec::new();
        let mut pending = Vec::new();
        for (probe, result) in results {
            match result {
                Some(r) => {
                    findings.extend(r.findings.iter().cloned());
                    probes.push(r.run.clone());
                }
                None => pending.push(*probe),
            }
        }
        let duration = probes.iter().map(|p| p.duration).sum();
        Run {
            report: Report::new(config.host.info(), config.source.clone(), findings),
            probes,
            pending,
            duration,
            expectations_valid: Some(self.reload_error().is_none()),
        }
    }
}

impl ProbeResult {
    /// The findings of this run.
    pub fn findings(&self) -> &[Finding] {
        &self.findings
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::mpsc;

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap()
    }

    fn counted(calls: Arc<[AtomicU64; 5]>, pause: Duration) -> Runner {
        Arc::new(move |_, _, probe| {
            std::thread::sleep(pause);
            calls[index(probe)].fetch_add(1, Ordering::SeqCst);
            vec![Finding::pass(probe, "x", "y", "z")]
        })
    }

    fn state(cache: Duration, runner: Runner) -> Arc<State> {
        let host = Host::at(std::path::Path::new("/")).unwrap();
        Arc::new(State::new(host, Expectations::builtin(), "test".into(), None, cache).with_runner(runner))
    }

    #[test]
    fn concurrent_requests_share_one_run_and_the_result_is_reused_for_the_cache_time() {
        let calls: Arc<[AtomicU64; 5]> = Arc::new(Default::default());
        let s = state(Duration::from_secs(3600), counted(calls.clone(), Duration::from_millis(200)));
        let rt = runtime();
        let results: Vec<Arc<ProbeResult>> = rt.block_on(async {
            let tasks: Vec<_> = (0..50)
                .map(|_| {
                    let s = s.clone();
                    tokio::spawn(async move { s.results(&[Probe::Mounts]).await })
                })
                .collect();
            let mut out = vec![];
            for t in tasks {
                out.push(t.await.unwrap()[0].1.clone().unwrap());
            }
            out
        });
        assert_eq!(calls[index(Probe::Mounts)].load(Ordering::SeqCst), 1, "50 requests, one run");
        assert!(results.iter().all(|r| Arc::ptr_eq(r, &results[0])));
        // Within the cache time: the same result, no run.
        let again = rt.block_on(s.results(&[Probe::Mounts]))[0].1.clone().unwrap();
        assert!(Arc::ptr_eq(&again, &results[0]));
        assert_eq!(calls[index(Probe::Mounts)].load(Ordering::SeqCst), 1);
        // Only the probe asked for ran.
        assert_eq!(calls[index(Probe::Identity)].load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_stale_result_is_run_again() {
        let calls: Arc<[AtomicU64; 5]> = Arc::new(Default::default());
        let s = state(Duration::ZERO, counted(calls.clone(), Duration::ZERO));
        let rt = runtime();
        let first = rt.block_on(s.results(&[Probe::Identity]))[0].1.clone().unwrap();
        let second = rt.block_on(s.results(&[Probe::Identity]))[0].1.clone().unwrap();
        assert_eq!(calls[index(Probe::Identity)].load(Ordering::SeqCst), 2);
        assert_eq!((first.run.runs, second.run.runs), (1, 2));
    }

    #[test]
    fn a_drift_scan_in_progress_never_holds_up_a_request() {
        // The drift runner blocks until the test lets it go: requests answered meanwhile
        // cannot have waited for it.
        let (release, gate) = mpsc::channel::<()>();
        let gate = Mutex::new(gate);
        let runner: Runner = Arc::new(move |_, _, probe| {
            if probe == Probe::Drift {
                let _ = lock(&gate).recv();
            }
            vec![Finding::pass(probe, "x", "y", "z")]
        });
        let expectations: Expectations =
            "version = 1\n[[drift]]\nroot = \"/srv/media\"\nuid = 1000\ngid = 110\n".parse().unwrap();
        let host = Host::at(std::path::Path::new("/")).unwrap();
        let s = Arc::new(
            State::new(host, expectations, "test".into(), None, Duration::from_secs(3600)).with_runner(runner),
        );
        let rt = runtime();
        rt.spawn(s.clone().drift_loop(Duration::from_secs(3600)));
        let mounts = rt.block_on(s.results(&[Probe::Mounts]));
        assert!(mounts[0].1.is_some());
        let all = rt.block_on(s.results(&Probe::ALL));
        let pending: Vec<Probe> = all.iter().filter(|(_, r)| r.is_none()).map(|(p, _)| *p).collect();
        assert_eq!(pending, [Probe::Drift], "every probe but the scan in progress answered");
        let run = s.run_of(&all);
        assert!(!run.ok(), "a pending probe is not ok");
        assert_eq!(run.pending, [Probe::Drift]);
        release.send(()).unwrap();
        let drift = rt.block_on(async {
            loop {
                if let Some(r) = s.results(&[Probe::Drift]).await[0].1.clone() {
                    break r;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        });
        assert_eq!(drift.findings().len(), 1);
        assert!(s.run_of(&rt.block_on(s.results(&Probe::ALL))).ok());
    }

    #[test]
    fn a_reload_that_fails_keeps_the_last_good_expectations() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("homelab-probe.toml");
        std::fs::write(&file, "version = 1\n[groups]\nrender = 110\n").unwrap();
        let expectations = Expectations::load(&file).unwrap();
        let calls: Arc<[AtomicU64; 5]> = Arc::new(Default::default());
        let host = Host::at(std::path::Path::new("/")).unwrap();
        let s = Arc::new(
            State::new(host, expectations, "f".into(), Some(file.clone()), Duration::from_secs(3600))
                .with_runner(counted(calls.clone(), Duration::ZERO)),
        );
        let rt = runtime();
        rt.block_on(s.results(&[Probe::Identity]));

        std::fs::write(&file, "version = 1\n[groups]\nrender = \"x\"\n").unwrap();
        s.reload();
        let e = s.reload_error().unwrap();
        assert!(e.contains("homelab-probe.toml") && e.contains("last good"), "{e}");
        assert_eq!(s.config().expectations.groups["render"], 110);
        assert_eq!(s.config().generation, 0);
        rt.block_on(s.results(&[Probe::Identity]));
        assert_eq!(calls[index(Probe::Identity)].load(Ordering::SeqCst), 1, "still the cached result");

        std::fs::write(&file, "version = 1\n[groups]\nrender = 303\n").unwrap();
        s.reload();
        assert_eq!(s.reload_error(), None);
        assert_eq!(s.config().expectations.groups["render"], 303);
        rt.block_on(s.results(&[Probe::Identity]));
        assert_eq!(calls[index(Probe::Identity)].load(Ordering::SeqCst), 2, "new expectations, a new run");
    }
}
