//! The render-node probe inside a user namespace, on the real kernel: a render node (a real
//! character device, 226:128, made in a fresh temporary sysroot) of group render (110) is run
//! through `unshare --user --map-root-user` (a gid map of 0 only) that leaves 110 out, as an unprivileged LXC
//! container's idmap does. The kernel then shows the node as the overflow gid (65534), which the
//! test reads with `stat` in the same namespace (the oracle), and `check` must fail with
//! `render_idmap` and name the Proxmox and `lxc.idmap` fixes, and `capture` in the same
//! namespace must record its maps. Negative controls: a map that
//! covers the node's gid, and no namespace at all, give no `render_idmap` and a passing `render_group`.
//!
//! The sysroot has no `/proc` of its own: inside the namespace, the test copies the kernel's
//! `/proc/self/uid_map`, `/proc/self/gid_map` and `/proc/sys/kernel/overflowgid` of that very
//! namespace into it before `check` reads them. Needs root and util-linux's `unshare`.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::process::Command;

use homelab_test_support::{require_root, verify_path};
use serde_json::Value;

/// The expectations: render is `gid`, and plex (1000:`gid`) must open the node.
fn expect(gid: u32) -> String {
    format!(
        "version = 1\n\n[groups]\nrender = {gid}\n\n[render]\ngroup = \"render\"\nrequired = true\n\n[[render.access]]\nname = \"plex\"\nuid = 1000\ngid = {gid}\n"
    )
}

/// A sysroot whose render group is `gid`, with the render node of that group.
fn sysroot(dir: &Path, gid: u32) {
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    std::fs::create_dir_all(dir.join("dev/dri")).unwrap();
    std::fs::write(dir.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\npalav:x:1000:1000::/home/palav:/bin/sh\n")
        .unwrap();
    let groups = if gid == 0 { "render:x:0:palav\n" } else { "root:x:0:\nrender:x:110:palav\n" };
    std::fs::write(dir.join("etc/group"), format!("{groups}palav:x:1000:\nnogroup:x:65534:\n")).unwrap();
    let node = dir.join("dev/dri/renderD128");
    let made = Command::new("mknod").arg(&node).args(["c", "226", "128"]).status().unwrap();
    assert!(made.success(), "mknod {}", node.display());
    // Only below the fresh temporary directory this test created.
    assert!(node.starts_with(dir) && dir.starts_with(std::env::temp_dir()));
    rustix::fs::chown(&node, None, Some(rustix::fs::Gid::from_raw(gid))).unwrap();
    std::fs::set_permissions(&node, std::fs::Permissions::from_mode(0o660)).unwrap();
    std::fs::write(dir.join("expect.toml"), expect(gid)).unwrap();
}

/// Runs `check` on the sysroot, inside `unshare` with `map` when given: (the node's gid as the
/// kernel shows it there, the render-node findings).
fn check_in(dir: &Path, map: Option<&[&str]>) -> (u32, Vec<Value>, Value) {
    let root = dir.join("root");
    let script = format!(
        "set -e; r={r}; if [ -n \"$IN_NS\" ]; then mkdir -p $r/proc/self $r/proc/sys/kernel; \
         cat /proc/self/uid_map > $r/proc/self/uid_map; cat /proc/self/gid_map > $r/proc/self/gid_map; \
         cat /proc/sys/kernel/overflowgid > $r/proc/sys/kernel/overflowgid; fi; \
         stat -c %g $r/dev/dri/renderD128 > {d}/gid; \
         {v} check --root $r --expect $r/expect.toml --format json > {d}/report.json || true; \
         {v} capture --root $r --compose-dir /nonexistent -o {d}/snapshot.json --force 2> /dev/null",
        r = root.display(),
        d = dir.display(),
        v = verify_path().display()
    );
    let mut cmd = match map {
        Some(args) => {
            let mut c = Command::new("unshare");
            c.args(["--user"]).args(args).args(["--", "sh", "-c", &script]).env("IN_NS", "1");
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.args(["-c", &script]);
            c
        }
    };
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let gid = std::fs::read_to_string(dir.join("gid")).unwrap().trim().parse().unwrap();
    let report: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("report.json")).unwrap()).unwrap();
    let findings = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["probe"] == "render_node" && f["subject"] == "/dev/dri/renderD128")
        .cloned()
        .collect();
    let snapshot: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("snapshot.json")).unwrap()).unwrap();
    (gid, findings, snapshot["user_namespace"].clone())
}

fn statuses(findings: &[Value]) -> Vec<(String, String)> {
    findings
        .iter()
        .map(|f| (f["check"].as_str().unwrap().to_owned(), f["status"].as_str().unwrap().to_owned()))
        .filter(|(c, _)| c != "node")
        .collect()
}

#[test]
fn a_render_gid_the_namespace_does_not_map_is_the_idmap_finding_the_kernel_agrees() {
    require_root("makes a device node and sets up user namespaces with unshare");
    let tmp = tempfile::tempdir().unwrap();
    sysroot(&tmp.path().join("root"), 110);

    // Like an unprivileged LXC container: only gid 0 (and uid 0) mapped.
    let (gid, f, ns) = check_in(tmp.path(), Some(&["--map-root-user"]));
    assert_eq!(gid, 65534, "the kernel shows the unmapped render gid as the overflow gid");
    // capture in the same namespace records it.
    assert_eq!(ns["gid_map"], serde_json::json!([{"inside": 0, "outside": 0, "count": 1}]), "{ns}");
    assert_eq!(ns["overflow_gid"], 65534);
    assert_eq!(statuses(&f), vec![("render_idmap".to_owned(), "fail".to_owned())], "{f:#?}");
    let idmap = &f.iter().find(|x| x["check"] == "render_idmap").unwrap();
    let msg = idmap["message"].as_str().unwrap();
    assert!(msg.contains("gid map 0 0 1"), "{msg}");
    let remedy = idmap["remedy"].to_string();
    assert!(remedy.contains("devN: /dev/dri/renderD128,gid=110") && remedy.contains("lxc.idmap"), "{remedy}");

    // Negative control: in the same kind of namespace, a node whose group the map covers (a
    // render group that is gid 0, the one gid mapped here) is seen as it is.
    let mapped = tempfile::tempdir().unwrap();
    sysroot(&mapped.path().join("root"), 0);
    let (gid, f, _) = check_in(mapped.path(), Some(&["--map-root-user"]));
    assert_eq!(gid, 0);
    assert!(statuses(&f).contains(&("render_group".to_owned(), "pass".to_owned())), "{f:#?}");
    assert!(!statuses(&f).iter().any(|(c, _)| c == "render_idmap"));

    // And without a namespace: the node's real group.
    let plain = tempfile::tempdir().unwrap();
    sysroot(&plain.path().join("root"), 110);
    let (gid, f, ns) = check_in(plain.path(), None);
    assert_eq!(gid, 110);
    assert!(ns.is_null(), "no namespace, nothing recorded: {ns}");
    assert!(statuses(&f).contains(&("render_group".to_owned(), "pass".to_owned())), "{f:#?}");
    assert!(!statuses(&f).iter().any(|(c, _)| c == "render_idmap"));
}
