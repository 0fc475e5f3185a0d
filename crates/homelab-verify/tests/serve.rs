//! `homelab-verify serve` over real HTTP on 127.0.0.1 against fixture sysroots: the endpoints,
//! their answers for healthy and broken hosts, caching and single flight as the metrics show
//! them, bad input (404, 405, 413, 431, 400, slow and idle clients), SIGHUP reloads that keep
//! the last good expectations, and SIGTERM. The cache's own rules (single flight, a drift scan
//! never holding up a request) are unit tests in src/serve/state.rs.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use homelab_test_support::{fixture, sysroot, verify};
use rustix::process::Signal;
use serde_json::Value;
use support::{Server, request, sample};

fn healthy() -> Server {
    Server::start(&[
        "--root",
        sysroot("mounts-ok").to_str().unwrap(),
        "--expect",
        fixture("expect/plex-mounts.toml").to_str().unwrap(),
    ])
}

fn missing_disk(extra: &[&str]) -> Server {
    let root = sysroot("mounts-missing-disk");
    let expect = fixture("expect/plex-mounts.toml");
    let mut args = vec!["--root", root.to_str().unwrap(), "--expect", expect.to_str().unwrap()];
    args.extend(extra);
    Server::start(&args)
}

#[test]
fn healthz_is_200_for_a_healthy_host_and_503_naming_the_failed_checks_otherwise() {
    let ok = healthy();
    let (status, headers, body) = request(&ok.url("/healthz"));
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("OK: 30 pass, 3 warn, 5 skip, 0 fail\n"), "{body}");
    assert!(headers.contains(&("content-type".into(), "text/plain; charset=utf-8".into())), "{headers:?}");
    assert!(headers.contains(&("cache-control".into(), "no-store".into())), "{headers:?}");

    let broken = missing_disk(&[]);
    let (status, body) = broken.get("/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.starts_with("FAILED: 24 pass, 3 warn, 6 skip, 2 fail\n"), "{body}");
    assert!(
        body.contains(
            "FAIL  mounts  /mnt/PlexDrive: /mnt/PlexDrive is not mounted and LABEL=Plex Drive is not present"
        ),
        "{body}"
    );
    assert!(
        body.contains(
            "      fix (manual): connect the disk with LABEL=Plex Drive, then `systemctl start mnt-PlexDrive.mount`"
        ),
        "{body}"
    );
}

#[test]
fn readyz_answers_for_one_probe() {
    let broken = missing_disk(&[]);
    let (status, body) = broken.get("/readyz?probe=mounts");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("/mnt/PlexDrive"), "{body}");
    let (status, body) = broken.get("/readyz?probe=identity");
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("OK: "), "{body}");
    // The drift probe has no [[drift]] here: its first run ends with nothing to check.
    assert!(broken.wait_for_log("listening", Duration::from_secs(1)));

    let ok = healthy();
    assert_eq!(ok.get("/readyz?probe=mounts").0, 200);
    assert_eq!(ok.get("/readyz?probe=render_node").0, 200);
}

#[test]
fn readyz_without_one_known_probe_is_400() {
    let s = healthy();
    for (query, want) in [
        ("/readyz", "/readyz needs one probe"),
        ("/readyz?probe=", "unknown probe ``"),
        ("/readyz?probe=disks", "unknown probe `disks`: expected one of identity, render_node, gpu, mounts, drift"),
        ("/readyz?probe=mounts&probe=gpu", "/readyz needs one probe"),
    ] {
        let (status, body) = s.get(query);
        assert_eq!(status, 400, "{query}: {body}");
        assert!(body.contains(want), "{query}: {body}");
    }
}

#[test]
fn metrics_and_report_json_say_what_check_says() {
    let broken = missing_disk(&[]);
    let (status, headers, metrics) = request(&broken.url("/metrics"));
    assert_eq!(status, 200);
    assert!(
        headers.contains(&("content-type".into(), "text/plain; version=0.0.4; charset=utf-8".into())),
        "{headers:?}"
    );
    assert_eq!(sample(&metrics, "homelab_probe_check_ok"), Some(0.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"homelab_probe_finding{check="mounted",probe="mounts",status="fail",subject="/mnt/PlexDrive"}"#
        ),
        Some(1.0),
        "{metrics}"
    );
    assert_eq!(sample(&metrics, r#"homelab_probe_findings{status="fail"}"#), Some(2.0));
    assert_eq!(sample(&metrics, "homelab_probe_expectations_valid"), Some(1.0));

    let (status, body) = broken.get("/report.json");
    assert_eq!(status, 200);
    let served: Value = serde_json::from_str(&body).unwrap();
    let out = verify()
        .args(["check", "--format", "json", "--root"])
        .arg(sysroot("mounts-missing-disk"))
        .arg("--expect")
        .arg(fixture("expect/plex-mounts.toml"))
        .output()
        .unwrap();
    let checked: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(served["findings"], checked["findings"]);
    assert_eq!(served["summary"], checked["summary"]);
    assert_eq!(served["schema_version"], 1);
}

#[test]
fn head_answers_like_get_without_a_body() {
    let s = healthy();
    let mut stream = TcpStream::connect(("127.0.0.1", s.port)).unwrap();
    stream.write_all(b"HEAD /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\n"), "no body after the head: {answer:?}");
}

/// Sends `raw` on a fresh connection and reads the answer until the server closes it or
/// `limit` passes: the answer, and whether the server closed the connection.
fn raw(port: u16, raw: &[u8], limit: Duration) -> (String, bool) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(limit)).unwrap();
    stream.write_all(raw).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    (String::from_utf8_lossy(&out).into_owned(), closed)
}

fn status_line(answer: &str) -> &str {
    answer.lines().next().unwrap_or("")
}

#[test]
fn bad_requests_get_404_405_413_431_and_400() {
    let s = healthy();
    let t = Duration::from_secs(2);
    for (request, want) in [
        (&b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n"[..], "HTTP/1.1 404 Not Found"),
        (b"GET /healthz/ HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
        (b"PUT /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
        (b"DELETE /report.json HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
        (b"BREW /healthz HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 405 Method Not Allowed"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n", "HTTP/1.1 413 Payload Too Large"),
        (b"GET /healthz HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", "HTTP/1.1 413 Payload Too Large"),
        (b"garbage\r\n\r\n", "HTTP/1.1 400 Bad Request"),
    ] {
        let (answer, _) = raw(s.port, request, t);
        assert_eq!(status_line(&answer), want, "{}", String::from_utf8_lossy(request));
        if want.contains("405") {
            assert!(answer.to_ascii_lowercase().contains("\r\nallow: get, head\r\n"), "{answer}");
        }
    }
    // Oversized heads: a long header or a long URL; the connection is closed after the answer.
    let big_header = [&b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: "[..], &[b'a'; 9000], b"\r\n\r\n"].concat();
    let long_url = [&b"GET /healthz?"[..], &[b'a'; 9000], b" HTTP/1.1\r\nHost: x\r\n\r\n"].concat();
    let many_headers: Vec<u8> =
        [b"GET /healthz HTTP/1.1\r\nHost: x\r\n".to_vec(), b"X-A: b\r\n".repeat(100), b"\r\n".to_vec()].concat();
    for request in [big_header, long_url, many_headers] {
        let (answer, closed) = raw(s.port, &request, t);
        assert_eq!(status_line(&answer), "HTTP/1.1 431 Request Header Fields Too Large");
        assert!(closed);
    }
    // The server still answers.
    assert_eq!(s.get("/healthz").0, 200);
}

#[test]
fn slow_and_idle_clients_are_disconnected() {
    let s = healthy();
    // Both waits run side by side: about one HEADER_TIMEOUT (5 s) in all.
    let port = s.port;
    let slow = std::thread::spawn(move || {
        let start = Instant::now();
        let (answer, closed) = raw(port, b"GET /healthz HTTP/1.1\r\nHos", Duration::from_secs(20));
        (answer, closed, start.elapsed())
    });
    let idle = std::thread::spawn(move || {
        let start = Instant::now();
        let (answer, closed) = raw(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", Duration::from_secs(20));
        (answer, closed, start.elapsed())
    });
    let (answer, closed, took) = slow.join().unwrap();
    assert!(answer.is_empty() && closed, "a head that never ends is cut off: {answer:?}");
    assert!(took < Duration::from_secs(15), "{took:?}");
    let (answer, closed, took) = idle.join().unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK"), "{answer}");
    assert!(closed, "a kept-alive connection with no next request is closed");
    assert!(took < Duration::from_secs(15), "{took:?}");
}

#[test]
fn checks_run_once_per_cache_interval_whatever_the_requests() {
    let s = missing_disk(&["--cache", "1h"]);
    let threads: Vec<_> = (0..40)
        .map(|i| {
            let url = s.url(if i % 2 == 0 { "/healthz" } else { "/readyz?probe=mounts" });
            std::thread::spawn(move || request(&url).0)
        })
        .collect();
    for t in threads {
        assert_eq!(t.join().unwrap(), 503);
    }
    let (_, metrics) = s.get("/metrics");
    for probe in ["identity", "render_node", "gpu", "mounts", "drift"] {
        let series = format!("homelab_probe_probe_runs_total{{probe=\"{probe}\"}}");
        assert_eq!(sample(&metrics, &series), Some(1.0), "{probe}: 40 requests and /metrics, one run\n{metrics}");
    }
    let stamp = |m: &str| sample(m, r#"homelab_probe_probe_timestamp_seconds{probe="mounts"}"#).unwrap();
    let first = stamp(&metrics);
    assert_eq!(stamp(&s.get("/metrics").1), first, "the same result while it is fresh");

    // With no cache, every request after a finished run makes a new one.
    let s = missing_disk(&["--cache", "0s"]);
    s.get("/readyz?probe=mounts");
    s.get("/readyz?probe=mounts");
    let (_, metrics) = s.get("/metrics");
    assert_eq!(sample(&metrics, r#"homelab_probe_probe_runs_total{probe="mounts"}"#), Some(3.0), "{metrics}");
}

#[test]
fn listening_beyond_loopback_needs_allow_remote() {
    let out = verify().args(["serve", "--listen", "0.0.0.0:0"]).timeout(Duration::from_secs(30)).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("--listen 0.0.0.0:0: not a loopback address; add --allow-remote"), "{err}");
}

#[test]
fn bad_expectations_at_start_exit_2_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("homelab-probe.toml");
    std::fs::write(&file, "version = 1\n[groups]\nrender = \"x\"\n").unwrap();
    let out = verify()
        .args(["serve", "--listen", "127.0.0.1:0", "--expect"])
        .arg(&file)
        .timeout(Duration::from_secs(30))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains(&format!("{}:3", file.display())), "{err}");
}

#[test]
fn sighup_reloads_and_an_invalid_file_keeps_the_last_good_one() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("homelab-probe.toml");
    std::fs::write(&file, "version = 1\n[groups]\nrender = 303\n").unwrap();
    let s = Server::start(&[
        "--root",
        sysroot("nixos-default").to_str().unwrap(),
        "--expect",
        file.to_str().unwrap(),
        "--cache",
        "1h",
    ]);
    assert_eq!(s.get("/healthz").0, 200);

    // Broken: the last good expectations stay; /healthz says so (503), one probe still answers.
    std::fs::write(&file, "version = 1\n[groups]\nrender = \"x\"\n").unwrap();
    s.signal(Signal::HUP);
    assert!(s.wait_for_log("SIGHUP: ", Duration::from_secs(10)), "{:?}", s.stderr());
    let log = s.stderr().join("\n");
    assert!(log.contains(&format!("{}:3", file.display())) && log.contains("last good"), "{log}");
    let (status, body) = s.get("/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("expectations: ") && body.contains("still checking against the last good"), "{body}");
    let (status, body) = s.get("/readyz?probe=identity");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("expectations: "), "the error is shown: {body}");
    assert_eq!(sample(&s.get("/metrics").1, "homelab_probe_expectations_valid"), Some(0.0));

    // Fixed, and now different: render must be 110, which this host's 303 is not.
    std::fs::write(&file, "version = 1\n[groups]\nrender = 110\n").unwrap();
    s.signal(Signal::HUP);
    assert!(s.wait_for_log("SIGHUP: reloaded", Duration::from_secs(10)), "{:?}", s.stderr());
    let (status, body) = s.get("/healthz");
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("group render has gid 303, expected 110"),
        "the new file is in use, the cache was not: {body}"
    );
    assert!(!body.contains("expectations: "), "{body}");
}

#[test]
fn sigterm_stops_the_server_with_exit_code_0() {
    let mut s = healthy();
    assert_eq!(s.get("/healthz").0, 200);
    s.signal(Signal::TERM);
    assert_eq!(s.wait_exit(Duration::from_secs(20)), Some(0), "{:?}", s.stderr());
    assert!(s.stderr().iter().any(|l| l == "homelab-verify serve: stopping"), "{:?}", s.stderr());
}

#[test]
fn the_drift_probe_runs_on_its_own_schedule_and_its_counts_are_metrics() {
    let data = tempfile::tempdir().unwrap();
    for name in ["a.mkv", "b.mkv", "c.srt"] {
        std::fs::write(data.path().join(name), "x").unwrap();
    }
    let (uid, gid) = (rustix::process::getuid().as_raw(), rustix::process::getgid().as_raw());
    // Expect another owner than the one that wrote the files: all of them drifted.
    let expect = data.path().join("homelab-probe.toml");
    let root = data.path().display().to_string();
    std::fs::write(&expect, format!("version = 1\n[[drift]]\nroot = \"{root}\"\nuid = {}\ngid = {gid}\n", uid + 1))
        .unwrap();
    let s = Server::start(&["--root", "/", "--expect", expect.to_str().unwrap(), "--drift-interval", "1h"]);
    let start = Instant::now();
    let body = loop {
        let (status, body) = s.get("/readyz?probe=drift");
        if !body.contains("PENDING") {
            assert_eq!(status, 503, "{body}");
            break body;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "the first scan never ended: {body}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(body.contains(&format!("FAIL  drift  {root}: 5 of 5 entries under it are not owned by")), "{body}");
    let (_, metrics) = s.get("/metrics");
    let owner = format!("homelab_probe_drift_entries{{owner=\"{uid}:{gid}\",root=\"{root}\"}}");
    assert_eq!(sample(&metrics, &owner), Some(5.0), "{metrics}");
    let scanned = format!("homelab_probe_drift_scanned_entries{{root=\"{root}\"}}");
    assert_eq!(sample(&metrics, &scanned), Some(5.0), "{metrics}");
    // Requests never start a scan: one ran, at start.
    assert_eq!(sample(&metrics, r#"homelab_probe_probe_runs_total{probe="drift"}"#), Some(1.0), "{metrics}");
}
