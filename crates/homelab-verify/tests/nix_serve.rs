//! The NixOS options for continuous verification (nix/module.nix: `serve.*`, `interval`,
//! `prometheus.textfile.*`), read with the real Nix evaluator through nix/tests/unit.nix (the
//! recorder of nix/tests/stub-lib.nix, as tests/nix_unit.rs reads the oneshot), and the
//! commands they produce run for real: the serve unit's `ExecStart` starts the real
//! homelab-verify, which answers over HTTP and reloads on the unit's `ExecReload`; the
//! oneshot's script writes the textfile node_exporter reads.
//!
//! Needs nix-instantiate (`scripts/setup-debian --test`); not run in the Nix build sandbox
//! (nix/sandbox-tests.txt). What the recorder cannot show (the real module system's type
//! checks and merging, systemd running the unit) is listed in docs/nixos.md.

mod support;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use serde_json::{Value, json};
use support::{fixture, request, sample};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// nix/tests/unit.nix for the given arguments (name, Nix expression).
fn unit(args: &[(&str, &str)]) -> Value {
    let call: String = args.iter().map(|(name, expr)| format!("{name} = {expr}; ")).collect();
    let out = Command::new("nix-instantiate")
        .current_dir(repo())
        .args(["--option", "build-users-group", "", "--eval", "--strict", "--json", "--expr"])
        .arg(format!("import ./nix/tests/unit.nix {{ {call}}}"))
        .output()
        .expect("nix-instantiate (Debian package nix-bin) must be installed: run scripts/setup-debian --test");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("homelab-verify")
}

#[test]
fn nix_serve_is_off_by_default_and_adds_nothing() {
    let u = unit(&[]);
    for key in ["serve", "timer", "serveUser", "serveGroup", "firewallPorts", "nodeExporterFlags"] {
        assert_eq!(u[key], Value::Null, "{key}");
    }
    assert_eq!(u["tmpfiles"], json!([]));
    assert!(!u["script"].as_str().unwrap().contains("--report"), "{}", u["script"]);
}

#[test]
fn nix_serve_unit_is_hardened_without_a_mount_namespace() {
    let u = unit(&[("serve", "{ enable = true; }"), ("afterMounts", "[ \"/mnt/PlexStorage\" ]")]);
    let s = &u["serve"];
    let sc = &s["serviceConfig"];
    assert_eq!(
        sc["ExecStart"],
        "'/PKG/bin/homelab-verify' 'serve' '--expect' '/etc/homelab-probe.toml' '--listen' '127.0.0.1:9723'"
    );
    assert_eq!(s["wantedBy"], json!(["multi-user.target"]));
    assert_eq!(
        s["unitConfig"],
        json!({ "WantsMountsFor": ["/mnt/PlexStorage"] }),
        "after the mounts, like the oneshot"
    );
    assert_eq!(s["reloadTriggers"], json!(["<homelab-probe.toml>"]), "a changed file reloads, not restarts");
    assert_eq!(sc["ExecReload"], "/COREUTILS/bin/kill -HUP $MAINPID");
    assert_eq!((&sc["User"], &sc["Group"]), (&json!("homelab-probe"), &json!("homelab-probe")));
    assert_eq!(
        u["serveUser"],
        json!({ "isSystemUser": true, "group": "homelab-probe", "description": "homelab-probe serve" })
    );
    assert_eq!(u["serveGroup"], json!({}));
    assert_eq!(sc["SupplementaryGroups"], json!(["render", "video"]));
    assert_eq!(sc["AmbientCapabilities"], json!(["CAP_DAC_READ_SEARCH"]));
    assert_eq!(sc["CapabilityBoundingSet"], json!(["CAP_DAC_READ_SEARCH"]));
    assert_eq!(sc["NoNewPrivileges"], true);
    assert_eq!(sc["RestrictAddressFamilies"], json!(["AF_UNIX", "AF_INET", "AF_INET6"]));
    // Each of these would give the unit its own mount namespace (or, for DynamicUser, a
    // read-only /), and the mounts probe would see another mount table than the host's.
    for key in [
        "DynamicUser",
        "ProtectSystem",
        "ProtectHome",
        "PrivateTmp",
        "PrivateDevices",
        "PrivateMounts",
        "ProtectKernelTunables",
        "ProtectKernelModules",
        "ProtectKernelLogs",
        "ProtectControlGroups",
        "ProtectHostname",
        "ProtectClock",
        "ReadOnlyPaths",
        "TemporaryFileSystem",
    ] {
        assert_eq!(sc.get(key), None, "{key}");
    }
}

#[test]
fn nix_serve_listens_beyond_loopback_only_with_allow_remote_and_opens_the_firewall_on_request() {
    let exec =
        |serve: &str| unit(&[("serve", serve)])["serve"]["serviceConfig"]["ExecStart"].as_str().unwrap().to_owned();
    assert!(exec("{ enable = true; listenAddress = \"127.0.0.2\"; }").ends_with("'--listen' '127.0.0.2:9723'"));
    assert!(exec("{ enable = true; listenAddress = \"::1\"; port = 9100; }").ends_with("'--listen' '[::1]:9100'"));
    assert!(
        exec("{ enable = true; listenAddress = \"0.0.0.0\"; }").ends_with("'--listen' '0.0.0.0:9723' '--allow-remote'")
    );
    assert!(exec("{ enable = true; listenAddress = \"::\"; }").ends_with("'--listen' '[::]:9723' '--allow-remote'"));
    assert!(exec("{ enable = true; extraArgs = [ \"--cache\" \"1m\" ]; }").ends_with("'--cache' '1m'"));

    assert_eq!(unit(&[("serve", "{ enable = true; }")])["firewallPorts"], Value::Null);
    let open = unit(&[("serve", "{ enable = true; listenAddress = \"0.0.0.0\"; openFirewall = true; port = 9724; }")]);
    assert_eq!(open["firewallPorts"], json!([9724]));
    assert_eq!(unit(&[("serve", "{ openFirewall = true; }")])["firewallPorts"], Value::Null, "not without serve");
}

/// Runs a unit's command line (`ExecStart=` is one shell-quoted line) with bash.
fn spawn_exec(line: &str) -> std::process::Child {
    Command::new("bash")
        .args(["-c", &format!("exec {line}")])
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

#[test]
fn nix_serve_exec_start_and_exec_reload_work_with_the_real_binary() {
    let root = fixture("mounts-missing-disk");
    let u = unit(&[(
        "serve",
        &format!("{{ enable = true; port = 0; extraArgs = [ \"--root\" \"{}\" ]; }}", root.display()),
    )]);
    let sc = &u["serve"]["serviceConfig"];
    let dir = tempfile::tempdir().unwrap();
    let expect = dir.path().join("homelab-probe.toml");
    std::fs::copy(fixture("expect/plex-mounts.toml"), &expect).unwrap();
    let exec = sc["ExecStart"]
        .as_str()
        .unwrap()
        .replace("/PKG/bin/homelab-verify", bin().to_str().unwrap())
        .replace("/etc/homelab-probe.toml", expect.to_str().unwrap());
    let mut child = spawn_exec(&exec);
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let port = first.strip_prefix("homelab-verify serve: listening on http://127.0.0.1:").expect(&first);
    let url = |p: &str| format!("http://127.0.0.1:{port}{p}");
    let (status, _, body) = request(&url("/healthz"));
    assert_eq!(status, 503, "{body}");
    assert!(body.contains("/mnt/PlexDrive is not mounted"), "{body}");
    let (_, _, metrics) = request(&url("/metrics"));
    assert_eq!(sample(&metrics, "homelab_probe_check_ok"), Some(0.0));

    // The unit's ExecReload, with systemd's $MAINPID.
    std::fs::write(&expect, "version = 1\n").unwrap();
    let reload = sc["ExecReload"]
        .as_str()
        .unwrap()
        .replace("/COREUTILS/bin/kill", "kill")
        .replace("$MAINPID", &child.id().to_string());
    assert!(Command::new("bash").args(["-c", &reload]).status().unwrap().success());
    let line = lines.next().unwrap().unwrap();
    assert_eq!(line, format!("homelab-verify serve: SIGHUP: reloaded {}", expect.display()));
    let (status, _, body) = request(&url("/readyz?probe=identity"));
    assert_eq!(status, 200, "{body}");
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn nix_interval_adds_a_timer_for_the_check() {
    let u = unit(&[("interval", "\"15min\"")]);
    assert_eq!(
        u["timer"],
        json!({
            "description": "homelab-probe: check this host every 15min",
            "wantedBy": ["timers.target"],
            "timerConfig": { "OnBootSec": "15min", "OnUnitActiveSec": "15min" },
        })
    );
}

#[test]
fn nix_textfile_option_writes_the_metrics_node_exporter_reads() {
    let u = unit(&[("textfile", "{ enable = true; directory = \"/var/lib/node-text\"; }")]);
    assert_eq!(u["nodeExporterFlags"], json!(["--collector.textfile.directory=/var/lib/node-text"]));
    assert_eq!(u["tmpfiles"], json!(["d /var/lib/node-text 0755 root root - -"]));
    let script = u["script"].as_str().unwrap();
    assert!(script.contains("'--report' 'prometheus:/var/lib/node-text/homelab_probe.prom'"), "{script}");

    // The oneshot's script, run as systemd runs it (bash -e) against a broken fixture host:
    // the unit fails with the check, and the textfile is there for node_exporter.
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("node-text");
    std::fs::create_dir(&text).unwrap();
    let script = script
        .replace("/PKG/bin/homelab-verify", bin().to_str().unwrap())
        .replace("/JQ/bin/jq", "jq")
        .replace("/var/lib/homelab-probe/report.json", dir.path().join("report.json").to_str().unwrap())
        .replace("/var/lib/node-text", text.to_str().unwrap())
        .replace(
            "'/etc/homelab-probe.toml'",
            &format!(
                "'{}' --root '{}'",
                fixture("expect/render-110.toml").display(),
                fixture("nixos-default").display()
            ),
        );
    let out = Command::new("bash").args(["-e", "-c", &script]).env("NO_COLOR", "1").output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<String> =
        std::fs::read_dir(&text).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["homelab_probe.prom"], "only the file, no temporary one");
    let metrics = std::fs::read_to_string(text.join("homelab_probe.prom")).unwrap();
    assert_eq!(sample(&metrics, "homelab_probe_check_ok"), Some(0.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"homelab_probe_finding{check="group_gid",probe="identity",status="fail",subject="group render"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn nix_serve_unit_settings_are_ones_systemd_knows() {
    // The unit as NixOS writes it (a list becomes one line per item), loaded by
    // `systemd-analyze verify`, which names every key it does not know or cannot parse.
    let u = unit(&[("serve", "{ enable = true; }"), ("afterMounts", "[ \"/srv\" ]")]);
    let s = &u["serve"];
    let line = |k: &str, v: &Value| -> String {
        match v {
            Value::Array(items) => items.iter().map(|i| format!("{k}={}\n", i.as_str().unwrap())).collect(),
            Value::Bool(b) => format!("{k}={b}\n"),
            Value::String(v) => format!("{k}={v}\n"),
            other => format!("{k}={other}\n"),
        }
    };
    let mut text = String::from("[Unit]\nDescription=t\n");
    for (k, v) in s["unitConfig"].as_object().unwrap() {
        // WantsMountsFor= is systemd 256's; this machine's may be older.
        text.push_str(&line(if k == "WantsMountsFor" { "RequiresMountsFor" } else { k }, v));
    }
    text.push_str("[Service]\n");
    for (k, v) in s["serviceConfig"].as_object().unwrap() {
        let v = match k.as_str() {
            // Store paths that do not exist here.
            "ExecStart" => json!("/bin/true"),
            "ExecReload" => json!("/bin/kill -HUP $MAINPID"),
            _ => v.clone(),
        };
        text.push_str(&line(k, &v));
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hp-serve-test.service");
    std::fs::write(&file, &text).unwrap();
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(&file)
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed: run scripts/setup-debian --test");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    let ours: Vec<&str> = log.lines().filter(|l| l.contains("hp-serve-test.service")).collect();
    assert!(ours.is_empty(), "systemd does not take the unit as written:\n{}\n{text}", ours.join("\n"));
}
