//! Many hosts through Prometheus: three `homelab-verify serve` on 127.0.0.1, each checking
//! another fixture host (a healthy one, one whose data disk is missing, one whose render group
//! has the wrong gid), scraped by a real Prometheus (Debian's `prometheus`, installed by
//! `scripts/setup-debian --test`) that also loads the shipped alert rules
//! (nix/prometheus-rules.yml). Asserted through Prometheus' HTTP API: each host's
//! `homelab_probe_check_ok`, the failing checks' series, and that the rules select exactly the
//! broken hosts. (`promtool test rules` covers the rules' timing; this covers the wiring.)
//!
//! Everything listens on 127.0.0.1, Prometheus keeps its data in a temporary directory, every
//! process is killed by its pid when the test ends (also on a panic), and every wait is
//! bounded. Not run in the Nix build sandbox (nix/sandbox-tests.txt), which has no Prometheus.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use homelab_test_support::{fixture, sysroot};
use serde_json::Value;
use support::Server;

/// A child process killed by its pid when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// A port that was free a moment ago (Prometheus cannot be asked to pick one and say which).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn serve(root: &str, expect: &str) -> Server {
    Server::start(&["--root", sysroot(root).to_str().unwrap(), "--expect", fixture(expect).to_str().unwrap()])
}

/// `query` through Prometheus' HTTP API: instance -> (labels, value) of each result.
fn query(prometheus: u16, query: &str) -> Vec<(BTreeMap<String, String>, f64)> {
    let agent: ureq::Agent = ureq::Agent::config_builder().timeout_global(Some(Duration::from_secs(10))).build().into();
    let body = agent
        .get(format!("http://127.0.0.1:{prometheus}/api/v1/query"))
        .query("query", query)
        .call()
        .unwrap_or_else(|e| panic!("{query}: {e}"))
        .body_mut()
        .read_to_string()
        .unwrap();
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "success", "{query}: {body}");
    v["data"]["result"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let labels = r["metric"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                .collect();
            (labels, r["value"][1].as_str().unwrap().parse().unwrap())
        })
        .collect()
}

/// Runs `query` until `done` accepts its result (at most `limit`).
fn wait_for(
    prometheus: u16,
    q: &str,
    limit: Duration,
    done: impl Fn(&[(BTreeMap<String, String>, f64)]) -> bool,
) -> Vec<(BTreeMap<String, String>, f64)> {
    let start = Instant::now();
    loop {
        let r = query(prometheus, q);
        if done(&r) {
            return r;
        }
        assert!(start.elapsed() < limit, "{q}: still {r:?} after {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Waits until Prometheus answers `/-/ready` with 200 (at most `limit`).
fn wait_ready(port: u16, limit: Duration, log: &dyn Fn() -> String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let start = Instant::now();
    loop {
        if agent.get(format!("http://127.0.0.1:{port}/-/ready")).call().is_ok_and(|r| r.status() == 200) {
            return;
        }
        assert!(start.elapsed() < limit, "Prometheus is not ready after {limit:?}:\n{}", log());
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `host` label of each result, sorted.
fn hosts(results: &[(BTreeMap<String, String>, f64)]) -> Vec<String> {
    let mut h: Vec<String> = results.iter().map(|(l, _)| l["host"].clone()).collect();
    h.sort();
    h
}

#[test]
fn prometheus_scrapes_three_hosts_and_the_rules_select_the_two_broken_ones() {
    let started = Instant::now();
    let healthy = serve("mounts-ok", "expect/plex-mounts.toml");
    let missing_disk = serve("mounts-missing-disk", "expect/plex-mounts.toml");
    let render_gid = serve("nixos-default", "expect/render-110.toml");

    // The scrape configuration docs/monitoring.md shows, with 1 s intervals; `host` names each
    // machine (the `instance` label is its address).
    let dir = tempfile::tempdir().unwrap();
    let target = |s: &Server, host: &str| {
        format!("      - targets: [\"{}\"]\n        labels: {{ host: \"{host}\" }}\n", s.target())
    };
    let config = format!(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - {}\n\
         scrape_configs:\n  - job_name: homelab-probe\n    static_configs:\n{}{}{}",
        repo().join("nix/prometheus-rules.yml").display(),
        target(&healthy, "server"),
        target(&missing_disk, "nas"),
        target(&render_gid, "desktop"),
    );
    let config_file = dir.path().join("prometheus.yml");
    std::fs::write(&config_file, &config).unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let prometheus = Killed(
        Command::new("prometheus")
            .arg(format!("--config.file={}", config_file.display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("prometheus (Debian package prometheus) must be installed: run scripts/setup-debian --test"),
    );
    let prometheus_log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    let limit = Duration::from_secs(60);
    wait_ready(port, limit, &prometheus_log);
    let ok = wait_for(port, "homelab_probe_check_ok", limit, |r| r.len() == 3);
    let by_host: BTreeMap<String, f64> = ok.iter().map(|(l, v)| (l["host"].clone(), *v)).collect();
    assert_eq!(
        by_host,
        BTreeMap::from([("desktop".into(), 0.0), ("nas".into(), 0.0), ("server".into(), 1.0)]),
        "{}",
        prometheus_log()
    );
    let up = query(port, r#"up{job="homelab-probe"} == 1"#);
    assert_eq!(hosts(&up), ["desktop", "nas", "server"]);

    // The failing checks' series, per host.
    let fails = query(port, r#"homelab_probe_finding{status="fail"}"#);
    let mut failing: Vec<(String, String, String)> =
        fails.iter().map(|(l, _)| (l["host"].clone(), l["check"].clone(), l["subject"].clone())).collect();
    failing.sort();
    assert_eq!(
        failing,
        [
            ("desktop".into(), "group_gid".into(), "group render".into()),
            ("nas".into(), "mount_device".into(), "/mnt/PlexDrive".into()),
            ("nas".into(), "mounted".into(), "/mnt/PlexDrive".into()),
        ]
    );

    // The rules, evaluated by this Prometheus: pending or firing (their `for:` is minutes; the
    // timing is promtool's test), for exactly the broken hosts.
    let failing_hosts = wait_for(port, r#"ALERTS{alertname="HomelabProbeCheckFailing"}"#, limit, |r| r.len() >= 2);
    assert_eq!(hosts(&failing_hosts), ["desktop", "nas"]);
    let disk = wait_for(port, r#"ALERTS{alertname="HomelabProbeDataDiskNotMounted"}"#, limit, |r| !r.is_empty());
    assert_eq!(hosts(&disk), ["nas"]);
    assert_eq!(disk[0].0["subject"], "/mnt/PlexDrive");
    // The PromQL docs/monitoring.md gives for "which hosts fail a check".
    let listed = query(port, "homelab_probe_check_ok == 0");
    assert_eq!(hosts(&listed), ["desktop", "nas"]);
    assert!(query(port, r#"ALERTS{alertname="HomelabProbeNotReporting"}"#).is_empty());

    // A host that goes away is not reporting: `up` is 0 at the next scrape.
    drop(render_gid);
    let down = wait_for(port, r#"up{job="homelab-probe"} == 0"#, limit, |r| !r.is_empty());
    assert_eq!(hosts(&down), ["desktop"]);
    let gone = wait_for(port, r#"ALERTS{alertname="HomelabProbeNotReporting"}"#, limit, |r| !r.is_empty());
    assert_eq!(hosts(&gone), ["desktop"]);

    drop(prometheus);
    eprintln!("fleet: three hosts scraped and alerted on in {:.1} s", started.elapsed().as_secs_f64());
}
