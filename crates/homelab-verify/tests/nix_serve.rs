//! The NixOS options for continuous verification (nix/module.nix: `serve.*`, `interval`,
//! `prometheus.textfile.*`), evaluated with the real NixOS module system through
//! nix/tests/unit.nix (the pinned nixpkgs lib and the stand-in of nix/tests/nixos, as
//! tests/nix_unit.rs reads the oneshot): the option types refuse what nixpkgs' types refuse,
//! the serve user passes the users-groups assertions, the firewall and the node exporter get
//! what the module gives them. The commands the units hold run for real: the serve unit's
//! `ExecStart` starts the real homelab-verify, which answers over HTTP and reloads on the
//! unit's `ExecReload`; the oneshot's script writes the textfile node_exporter reads; systemd
//! (`systemd-analyze verify`) loads the units as the stand-in renders them.
//!
//! Needs nix-instantiate, jq and systemd-analyze (`scripts/setup-debian --test`); not run in the
//! Nix build sandbox (nix/sandbox-tests.txt). What is still unproven (nixpkgs' own modules
//! rather than the stand-in, systemd running the units) is listed in docs/nixos.md.

mod support;

use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Stdio};

use homelab_test_support::{fixture, sysroot, verify_path};
use serde_json::{Value, json};
use support::{request, sample};

#[path = "../../homelab-probe/tests/nixos_eval/mod.rs"]
mod nixos_eval;

/// nix/tests/unit.nix for the given arguments (name, Nix expression), evaluated by the real
/// module system; `typeError` is true where it refused them.
fn try_unit(args: &[(&str, &str)]) -> Value {
    let lib = nixos_eval::nixpkgs_lib();
    let call: String = args.iter().map(|(name, expr)| format!("{name} = {expr}; ")).collect();
    nixos_eval::eval(&format!("import ./nix/tests/unit.nix {{ nixpkgsLib = {}; {call}}}", nixos_eval::nix_path(&lib)))
}

/// [`try_unit`] for arguments the module system must accept, with every assertion holding.
fn unit(args: &[(&str, &str)]) -> Value {
    let u = try_unit(args);
    assert_eq!(u["typeError"], false, "the module system refused {args:?}");
    assert_eq!(u["failedAssertions"], json!([]), "{args:?}");
    u
}

/// A store path of the stand-in's packages (`package`, `coreutils`, `jq`).
fn path<'a>(u: &'a Value, name: &str) -> &'a str {
    u["paths"][name].as_str().unwrap()
}

#[test]
fn nix_serve_is_off_by_default_and_adds_nothing() {
    let u = unit(&[]);
    for key in ["serve", "timer", "serveUser", "serveGroup", "nodeExporter"] {
        assert_eq!(u[key], Value::Null, "{key}");
    }
    for key in ["firewallPorts", "tmpfiles", "nodeExporterFlags"] {
        assert_eq!(u[key], json!([]), "{key}");
    }
    let units: Vec<&String> = u["unitTexts"].as_object().unwrap().keys().collect();
    assert_eq!(units, ["homelab-probe-check.service"]);
    assert!(!u["script"].as_str().unwrap().contains("--report"), "{}", u["script"]);
}

#[test]
fn nix_serve_options_are_typed_as_nixpkgs_types_them() {
    // Each refused by the option's type (types.port, types.str, types.path...), as
    // nixos-rebuild would refuse it.
    for (name, expr) in [
        ("serve", "{ enable = true; port = 65536; }"),
        ("serve", "{ enable = true; port = -1; }"),
        ("serve", "{ enable = true; listenAddress = 127; }"),
        ("serve", "{ enable = true; extraArgs = \"--cache 1m\"; }"),
        ("serve", "{ enable = true; listen = \"0.0.0.0\"; }"),
        ("interval", "15"),
        ("textfile", "{ enable = true; directory = \"var/lib/text\"; }"),
        ("textfile", "{ enable = \"yes\"; }"),
    ] {
        assert_eq!(try_unit(&[(name, expr)])["typeError"], true, "{name} = {expr}");
    }
    // The edges of types.port.
    for port in ["0", "65535"] {
        let u = unit(&[("serve", &format!("{{ enable = true; port = {port}; }}"))]);
        assert!(u["serve"]["serviceConfig"]["ExecStart"].as_str().unwrap().ends_with(&format!(":{port}")));
    }
}

#[test]
fn nix_serve_unit_is_hardened_without_a_mount_namespace() {
    let u = unit(&[("serve", "{ enable = true; }"), ("afterMounts", "[ \"/mnt/PlexStorage\" ]")]);
    let s = &u["serve"];
    let sc = &s["serviceConfig"];
    assert_eq!(
        sc["ExecStart"],
        format!(
            "{}/bin/homelab-verify serve --expect /etc/homelab-probe.toml --listen 127.0.0.1:9723",
            path(&u, "package")
        )
    );
    assert_eq!(s["wantedBy"], json!(["multi-user.target"]));
    assert_eq!(
        s["unitConfig"],
        json!({ "WantsMountsFor": ["/mnt/PlexStorage"] }),
        "after the mounts, like the oneshot"
    );
    assert_eq!(s["reloadTriggers"], json!([u["etcSource"]]), "the file /etc/homelab-probe.toml links");
    assert_eq!(sc["ExecReload"], format!("{}/bin/kill -HUP $MAINPID", path(&u, "coreutils")));
    assert_eq!((&sc["User"], &sc["Group"]), (&json!("homelab-probe"), &json!("homelab-probe")));
    // A system user whose group exists: users-groups.nix's assertions hold (unit() checks
    // them), and NixOS picks the ids.
    assert_eq!(
        u["serveUser"],
        json!({
            "isSystemUser": true,
            "isNormalUser": false,
            "uid": null,
            "group": "homelab-probe",
            "extraGroups": [],
            "description": "homelab-probe serve",
            "home": "/var/empty",
        })
    );
    assert_eq!(u["serveGroup"], json!({ "gid": null, "members": [] }));
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
fn nix_serve_a_changed_expectations_file_reloads_the_unit_instead_of_restarting_it() {
    // switch-to-configuration reloads a unit whose file differs from the running one only in
    // `X-Reload-Triggers=` of [Unit], and restarts it for any other difference
    // (switch-to-configuration-ng, compare_units). The serve unit of two configurations
    // that differ only in the expectations:
    let text = |settings: &str| {
        let u = unit(&[("serve", "{ enable = true; }"), ("settings", settings)]);
        u["unitTexts"]["homelab-probe-serve.service"].as_str().unwrap().to_owned()
    };
    let before = text("{ }");
    let after = text("{ render.required = true; }");
    let changed: Vec<(&str, &str)> = before.lines().zip(after.lines()).filter(|(a, b)| a != b).collect();
    assert_eq!(before.lines().count(), after.lines().count());
    assert_eq!(changed.len(), 1, "{changed:?}");
    assert!(changed[0].0.starts_with("X-Reload-Triggers=/nix/store/"), "{changed:?}");
    let unit_section = before.split("\n[Service]\n").next().unwrap();
    assert!(unit_section.contains(changed[0].0), "in [Unit]: {before}");
}

#[test]
fn nix_serve_listens_beyond_loopback_only_with_allow_remote_and_opens_the_firewall_on_request() {
    let exec =
        |serve: &str| unit(&[("serve", serve)])["serve"]["serviceConfig"]["ExecStart"].as_str().unwrap().to_owned();
    assert!(exec("{ enable = true; listenAddress = \"127.0.0.2\"; }").ends_with(" --listen 127.0.0.2:9723"));
    // lib.escapeShellArgs quotes what the shell would read otherwise (the brackets).
    assert!(exec("{ enable = true; listenAddress = \"::1\"; port = 9100; }").ends_with(" --listen '[::1]:9100'"));
    assert!(exec("{ enable = true; listenAddress = \"0.0.0.0\"; }").ends_with(" --listen 0.0.0.0:9723 --allow-remote"));
    assert!(exec("{ enable = true; listenAddress = \"::\"; }").ends_with(" --listen '[::]:9723' --allow-remote"));
    assert!(exec("{ enable = true; extraArgs = [ \"--cache\" \"1m\" ]; }").ends_with(" --cache 1m"));

    assert_eq!(unit(&[("serve", "{ enable = true; }")])["firewallPorts"], json!([]));
    let open = unit(&[("serve", "{ enable = true; listenAddress = \"0.0.0.0\"; openFirewall = true; port = 9724; }")]);
    assert_eq!(open["firewallPorts"], json!([9724]));
    assert_eq!(unit(&[("serve", "{ openFirewall = true; }")])["firewallPorts"], json!([]), "not without serve");
    // Merged with the host's own ports as nixpkgs merges them (sorted, each once).
    let merged = unit(&[
        ("serve", "{ enable = true; openFirewall = true; }"),
        ("modules", "[ { networking.firewall.allowedTCPPorts = [ 22 9723 ]; } ]"),
    ]);
    assert_eq!(merged["firewallPorts"], json!([22, 9723]));
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
    let root = sysroot("mounts-missing-disk");
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
        .replace(&format!("{}/bin/homelab-verify", path(&u, "package")), verify_path().to_str().unwrap())
        .replace("/etc/homelab-probe.toml", expect.to_str().unwrap());
    assert!(!exec.contains("/nix/store"), "{exec}");
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
        .replace(&format!("{}/bin/kill", path(&u, "coreutils")), "kill")
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
    // The timer as the stand-in renders it, loaded by systemd beside a service of its name
    // (a timer starts the service of the same name): the keys and the time span parse.
    let text = u["unitTexts"]["homelab-probe-check.timer"].as_str().unwrap();
    assert!(text.contains("\n[Timer]\nOnBootSec=15min\nOnUnitActiveSec=15min\n"), "{text}");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("hp-check-test.timer"), text).unwrap();
    std::fs::write(
        dir.path().join("hp-check-test.service"),
        "[Unit]\nDescription=t\n[Service]\nType=oneshot\nExecStart=/bin/true\n",
    )
    .unwrap();
    let complaints = systemd_complaints(&dir.path().join("hp-check-test.timer"), "hp-check-test");
    assert!(complaints.is_empty(), "systemd does not take the timer as written:\n{complaints}\n{text}");
}

#[test]
fn nix_textfile_option_writes_the_metrics_node_exporter_reads() {
    let u = unit(&[
        ("textfile", "{ enable = true; directory = \"/var/lib/node-text\"; }"),
        ("modules", "[ { services.prometheus.exporters.node.enable = true; } ]"),
    ]);
    assert_eq!(u["nodeExporterFlags"], json!(["--collector.textfile.directory=/var/lib/node-text"]));
    assert_eq!(u["tmpfiles"], json!(["d /var/lib/node-text 0755 root root - -"]));
    // The exporter's command line as nixpkgs' exporters/node.nix builds it ends with the flag;
    // it runs as node-exporter with a read-only / (ProtectSystem=strict), so it only reads.
    let exporter = &u["nodeExporter"];
    let exec = exporter["ExecStart"].as_str().unwrap();
    assert!(exec.trim_end().ends_with(" --collector.textfile.directory=/var/lib/node-text"), "{exec}");
    assert_eq!((&exporter["User"], &exporter["ProtectSystem"]), (&json!("node-exporter"), &json!("strict")));
    let script = u["script"].as_str().unwrap();
    assert!(script.contains(" --report prometheus:/var/lib/node-text/homelab_probe.prom "), "{script}");

    // The oneshot's script, run as systemd runs it (bash -e, systemd's default UMask=0022)
    // against a broken fixture host: the unit fails with the check, and the textfile is there,
    // readable by node-exporter.
    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("node-text");
    std::fs::create_dir(&text).unwrap();
    let script = script
        .replace(&format!("{}/bin/homelab-verify", path(&u, "package")), verify_path().to_str().unwrap())
        .replace(&format!("{}/bin/jq", path(&u, "jq")), "jq")
        .replace("/var/lib/homelab-probe/report.json", dir.path().join("report.json").to_str().unwrap())
        .replace("/var/lib/node-text", text.to_str().unwrap())
        .replace(
            "/etc/homelab-probe.toml",
            &format!(
                "'{}' --root '{}'",
                fixture("expect/render-110.toml").display(),
                sysroot("nixos-default").display()
            ),
        );
    assert!(!script.contains("/nix/store"), "{script}");
    let out = Command::new("bash")
        .args(["-e", "-c", &format!("umask 0022\n{script}")])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let names: Vec<String> =
        std::fs::read_dir(&text).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    assert_eq!(names, ["homelab_probe.prom"], "only the file, no temporary one");
    let file = text.join("homelab_probe.prom");
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o644);
    let metrics = std::fs::read_to_string(&file).unwrap();
    assert_eq!(sample(&metrics, "homelab_probe_check_ok"), Some(0.0), "{metrics}");
    assert_eq!(
        sample(
            &metrics,
            r#"homelab_probe_finding{check="group_gid",probe="identity",status="fail",subject="group render"}"#
        ),
        Some(1.0)
    );
}

/// What `systemd-analyze verify` says about the unit file `file` (lines naming `name`): every
/// key it does not know or cannot parse.
fn systemd_complaints(file: &Path, name: &str) -> String {
    let out = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .arg(file)
        .output()
        .expect("systemd-analyze (Debian package systemd) must be installed: run scripts/setup-debian --test");
    let log = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    log.lines().filter(|l| l.contains(name)).collect::<Vec<_>>().join("\n")
}

#[test]
fn nix_serve_unit_settings_are_ones_systemd_knows() {
    // The unit as the stand-in renders it (a list becomes one line per item, as systemd-lib's
    // attrsToSection writes it), loaded by `systemd-analyze verify`.
    let u = unit(&[("serve", "{ enable = true; }"), ("afterMounts", "[ \"/srv\" ]")]);
    let text = u["unitTexts"]["homelab-probe-serve.service"].as_str().unwrap();
    assert!(text.contains("\nWantsMountsFor=/srv\n") && text.contains("\nX-Reload-Triggers=/nix/store/"), "{text}");
    let text: String = text
        .lines()
        .map(|l| {
            // Store paths that do not exist here; WantsMountsFor= is systemd 256's, this
            // machine's may be older.
            if l.starts_with("ExecStart=") {
                "ExecStart=/bin/true".to_owned()
            } else if l.starts_with("ExecReload=") {
                "ExecReload=/bin/kill -HUP $MAINPID".to_owned()
            } else if let Some(path) = l.strip_prefix("WantsMountsFor=") {
                format!("RequiresMountsFor={path}")
            } else {
                l.to_owned()
            }
        })
        .map(|l| l + "\n")
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("hp-serve-test.service");
    std::fs::write(&file, &text).unwrap();
    let complaints = systemd_complaints(&file, "hp-serve-test.service");
    assert!(complaints.is_empty(), "systemd does not take the unit as written:\n{complaints}\n{text}");
}
