//! `plan` is total: for every snapshot, a module NixOS accepts or a refusal that says why.
//! Proven with the real module system: every module `plan` writes is evaluated with
//! `lib.evalModules` of the pinned nixpkgs lib and the NixOS stand-in of nix/tests/nixos
//! (assertions included), many modules per `nix-instantiate` call.
//!
//! - `plan_edge_cases_*`: snapshots shaped like real hosts at the edges (docker's 131 kept by
//!   render, gids NixOS pins to another name, duplicate lines, names NixOS refuses), each with
//!   the decision it must get.
//! - `plan_is_total_on_generated_snapshots`: generated snapshots covering every static gid of
//!   ids.nix as a kept gid, Docker, graphics and the NVIDIA toolkit enabled or not, duplicate
//!   group and user names and mount points, hostile and over-long names, many stacks and disks.
//!   For each, `plan` refuses with a message that names the conflict, or writes a module that
//!   parses, evaluates with every assertion holding, and gives every gid and uid the snapshot
//!   needs (containers' PGID/PUID, data-root owners, users' primary groups) the number it had.
//!   `PLAN_CASES` sets the number of cases (default 64, a few seconds; the long run is
//!   `PLAN_CASES=2000`, docs/testing.md), `PLAN_SEED` the seed; the counts are printed.
//!
//! Needs nix-instantiate (`scripts/setup-debian --test`) and the pinned nixpkgs lib: excluded
//! from the Nix build sandbox (nix/sandbox-tests.txt).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};

use homelab_probe::model::compose::{ComposeService, ComposeStack, DeviceMapping, DeviceReservation};
use homelab_probe::model::inventory::GpuVendor;
use homelab_probe::model::report::{HostInfo, ToolInfo};
use homelab_probe::model::snapshot::{
    BlockDevice, CapturedGroup, DataRoot, FstabEntry, GroupUse, HumanUser, Mount, OwnerCount, Ownership, Snapshot,
};
use homelab_probe::nixos::{ALWAYS_PRESENT_GROUPS, STATIC_GIDS, group_name_problem, user_name_problem};
use homelab_probe::plan::{self, PlanError};
use homelab_probe::{Expectations, Plan};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use serde_json::Value;

mod common;
mod nixos_eval;

// ---------------------------------------------------------------------------------------------
// Building snapshots

fn base() -> Snapshot {
    let mut s = Snapshot::new(HostInfo { hostname: Some("old".into()), root: "/".into(), live: false, kernel: None });
    s.tool = ToolInfo { name: "homelab-probe".into(), version: "test".into() };
    s.captured_at = "2026-01-01T00:00:00Z".into();
    s
}

fn user(name: &str, uid: u32, gid: u32, primary: Option<&str>, groups: &[&str]) -> HumanUser {
    HumanUser {
        name: name.into(),
        uid,
        gid,
        primary_group: primary.map(str::to_owned),
        home: format!("/home/{name}"),
        shell: "/bin/bash".into(),
        groups: groups.iter().map(|g| (*g).to_owned()).collect(),
    }
}

fn group(name: &str, gid: u32, uses: Vec<GroupUse>) -> CapturedGroup {
    CapturedGroup { name: name.into(), gid, members: vec![], uses }
}

fn owns(path: &str) -> GroupUse {
    GroupUse::DataRootOwner { path: path.into() }
}

fn pgid_of(stack: &str, service: &str) -> GroupUse {
    GroupUse::Compose { stack: stack.into(), service: service.into(), field: "PGID".into() }
}

fn service(name: &str, puid: u32, pgid: u32) -> ComposeService {
    let mut environment = BTreeMap::new();
    environment.insert("PUID".to_owned(), Some(puid.to_string()));
    environment.insert("PGID".to_owned(), Some(pgid.to_string()));
    ComposeService {
        name: name.into(),
        file: "/srv/stack/compose.yaml".into(),
        line: 2,
        image: Some("img".into()),
        profiles: vec![],
        environment,
        user: None,
        group_add: vec![],
        devices: vec![],
        runtime: None,
        device_reservations: vec![],
        gpus: vec![],
        volumes: vec![],
    }
}

fn stack(name: &str, owner: &str, services: Vec<ComposeService>) -> ComposeStack {
    ComposeStack {
        name: name.into(),
        dir: format!("/home/{owner}/docker/{name}"),
        owner: Some(owner.into()),
        files: vec![],
        env_file: None,
        active_profiles: vec![],
        services,
        unset_variables: vec![],
        problems: vec![],
    }
}

fn fstab(line: usize, spec: &str, file: &str, options: &[&str]) -> FstabEntry {
    FstabEntry {
        line,
        spec: spec.into(),
        file: file.into(),
        vfstype: "ext4".into(),
        options: options.iter().map(|o| (*o).to_owned()).collect(),
        freq: 0,
        passno: 2,
    }
}

fn data_root(path: &str, uid: u32, gid: u32) -> DataRoot {
    DataRoot {
        path: path.into(),
        stat: None,
        owner_name: None,
        group_name: None,
        ownership: Some(Ownership {
            entries: 10,
            complete: true,
            by_owner: vec![OwnerCount { uid, gid, entries: 10 }],
        }),
        exclude: vec![],
    }
}

/// A Pop!_OS-like old host: alice (1000), a Plex stack with PUID 1000 and PGID `pgid`, whose
/// group `name` also owns the media disk.
fn media_host(name: &str, pgid: u32) -> Snapshot {
    let mut s = base();
    s.identities.users = vec![user("alice", 1000, 1000, Some("alice"), &["sudo", name])];
    s.identities.groups = vec![
        group("alice", 1000, vec![GroupUse::PrimaryGroupOf { user: "alice".into() }]),
        group(name, pgid, vec![owns("/mnt/media"), pgid_of("plex", "plex")]),
    ];
    s.identities.groups[1].members = vec!["alice".into()];
    s.compose.stacks = vec![stack("plex", "alice", vec![service("plex", 1000, pgid)])];
    s.fstab = Some(vec![fstab(5, "UUID=1111-2222", "/mnt/media", &["defaults"])]);
    s.data_roots = vec![data_root("/mnt/media", 1000, pgid)];
    s
}

// ---------------------------------------------------------------------------------------------
// Evaluating what plan wrote

/// What the module system says about one planned module.
#[derive(Debug)]
struct Verdict {
    evaluated: bool,
    failed: Vec<String>,
    groups: BTreeMap<String, Option<i64>>,
    users: BTreeMap<String, Value>,
    file_systems: BTreeMap<String, Value>,
}

/// Evaluates the modules in one nix-instantiate call. A module whose evaluation cannot be
/// caught (a parse error, `abort`) stops the batch: then each is evaluated alone so the test
/// can name it.
fn evaluate(lib: &Path, modules: &[PathBuf]) -> Vec<Result<Verdict, String>> {
    let list: Vec<String> = modules.iter().map(|m| nixos_eval::nix_path(m)).collect();
    let expr = |items: &str| format!("let s = {}; in map (m: s.verdict [ m ]) [ {items} ]", nixos_eval::stand_in(lib));
    match nixos_eval::try_eval(&expr(&list.join(" "))) {
        Ok(v) => v.as_array().unwrap().iter().map(|v| Ok(verdict(v))).collect(),
        Err(_) if modules.len() > 1 => {
            list.iter().map(|m| nixos_eval::try_eval(&expr(m)).map(|v| verdict(&v[0]))).collect()
        }
        Err(e) => vec![Err(e)],
    }
}

fn verdict(v: &Value) -> Verdict {
    let map = |v: &Value| -> BTreeMap<String, Value> {
        v.as_object().map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect()).unwrap_or_default()
    };
    Verdict {
        evaluated: v["evaluated"] == Value::Bool(true),
        failed: v["failedAssertions"]
            .as_array()
            .map(|a| a.iter().map(|s| s.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default(),
        groups: map(&v["groups"]).into_iter().map(|(k, v)| (k, v.as_i64())).collect(),
        users: map(&v["users"]),
        file_systems: map(&v["fileSystems"]),
    }
}

/// Writes each plan's module into `dir` (case-N.nix) and evaluates them.
fn evaluate_plans(lib: &Path, dir: &Path, plans: &[(usize, &Plan)]) -> BTreeMap<usize, Result<Verdict, String>> {
    let mut out = BTreeMap::new();
    for chunk in plans.chunks(100) {
        let files: Vec<PathBuf> = chunk
            .iter()
            .map(|(i, p)| {
                let f = dir.join(format!("case-{i}.nix"));
                std::fs::write(&f, &p.module).unwrap();
                f
            })
            .collect();
        for ((i, _), v) in chunk.iter().zip(evaluate(lib, &files)) {
            out.insert(*i, v);
        }
    }
    out
}

/// The gids and uids the snapshot's data and containers use, with what uses each.
fn needed_ids(s: &Snapshot, p: &Plan) -> (BTreeMap<u32, String>, BTreeMap<u32, String>) {
    let mut gids = BTreeMap::new();
    let mut uids = BTreeMap::new();
    for st in &s.compose.stacks {
        for svc in &st.services {
            let (Some(u), Some(g)) = (svc.env("PUID"), svc.env("PGID")) else { continue };
            if let (Ok(u), Ok(g)) = (u.parse::<u32>(), g.parse::<u32>()) {
                uids.entry(u).or_insert_with(|| format!("PUID of {}/{}", st.name, svc.name));
                gids.entry(g).or_insert_with(|| format!("PGID of {}/{}", st.name, svc.name));
            }
        }
    }
    for r in &s.data_roots {
        for o in r.ownership.iter().flat_map(|o| &o.by_owner) {
            uids.entry(o.uid).or_insert_with(|| format!("owner of {}", r.path));
            gids.entry(o.gid).or_insert_with(|| format!("group of {}", r.path));
        }
    }
    // The primary gid of every user the module declares.
    for u in &p.expectations.users {
        if let Some(h) = s.identities.users.iter().find(|h| &h.name == u.0) {
            gids.entry(h.gid).or_insert_with(|| format!("primary gid of {}", h.name));
        }
    }
    (gids, uids)
}

/// Checks one accepted plan against what the module system made of its module; `Err` says
/// what is wrong.
fn check_accepted(s: &Snapshot, p: &Plan, v: &Verdict) -> Result<(), String> {
    if !v.evaluated {
        return Err("the module system refused a definition (type error or conflict)".into());
    }
    if !v.failed.is_empty() {
        return Err(format!("failed assertions: {:?}", v.failed));
    }
    let e = Expectations::from_toml_str(&p.expectations_toml, Some(Path::new("homelab-probe.toml")))
        .map_err(|e| format!("the expectations do not read back: {e}"))?;
    if e != p.expectations {
        return Err("the expectations read back differently".into());
    }
    let d = homelab_probe::plan::decide::decide(s);
    let (gids, uids) = needed_ids(s, p);
    for (gid, why) in &gids {
        let held = v.groups.values().any(|g| *g == Some(i64::from(*gid)));
        match d.held_gids.get(gid) {
            // The plan says who holds it: the module system must agree.
            Some(name) => {
                if v.groups.get(name).copied().flatten() != Some(i64::from(*gid)) {
                    return Err(format!("gid {gid} ({why}): the plan gives it to {name}, the module system does not"));
                }
            }
            None if held => {}
            None => {
                if !d.bare_gids.iter().any(|b| b.id == *gid) {
                    return Err(format!("gid {gid} ({why}) has no group on the new host and is not listed as bare"));
                }
                // Bare only when the old host had no name for it that NixOS accepts (on the
                // first /etc/group line of that name).
                let named = s.identities.groups.iter().any(|g| {
                    g.gid == *gid
                        && group_name_problem(&g.name).is_none()
                        && s.group(&g.name).is_some_and(|f| f.gid == *gid)
                });
                if named {
                    return Err(format!("gid {gid} ({why}) had a valid name on the old host but no group on the new"));
                }
            }
        }
    }
    for (uid, why) in &uids {
        let held = v.users.values().any(|u| u["uid"].as_i64() == Some(i64::from(*uid)));
        let bare = d.bare_uids.iter().any(|b| b.id == *uid);
        let had = s.identities.users.iter().any(|u| u.uid == *uid);
        if had && !held && !bare {
            return Err(format!("uid {uid} ({why}) belonged to a user of the old host but no user has it"));
        }
    }
    // Every declared user and group keeps the number the plan says.
    for (name, gid) in &e.groups {
        if v.groups.get(name).copied().flatten() != Some(i64::from(*gid)) {
            return Err(format!(
                "group {name}: the module system gives {:?}, the plan expects {gid}",
                v.groups.get(name)
            ));
        }
    }
    for (name, u) in &e.users {
        let got = v.users.get(name).and_then(|x| x["uid"].as_i64());
        if got != u.uid.map(i64::from) {
            return Err(format!("user {name}: the module system gives uid {got:?}, the plan expects {:?}", u.uid));
        }
    }
    for m in &e.mounts {
        if !v.file_systems.contains_key(&m.path) {
            return Err(format!("{} is expected mounted but not in fileSystems", m.path));
        }
    }
    Ok(())
}

/// Checks a refusal: every conflict names the old group and NixOS's, and gives choices.
fn check_refused(e: &PlanError) -> Result<(), String> {
    let PlanError::Refused { conflicts } = e else { return Err(format!("not a refusal: {e}")) };
    if conflicts.is_empty() {
        return Err("a refusal without a conflict".into());
    }
    for c in conflicts {
        let old = c.subject.trim_start_matches("group ");
        if !c.message.contains(old) || !ALWAYS_PRESENT_GROUPS.iter().any(|g| c.message.contains(&format!(" is {g}"))) {
            return Err(format!("the conflict does not name both groups: {c:?}"));
        }
        if c.choices.is_empty() {
            return Err(format!("no choices: {c:?}"));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The edge cases

/// What a named edge case must get.
enum Want {
    /// A module NixOS accepts, and this holds of it.
    Module(fn(&Plan, &Verdict)),
    /// A refusal whose message contains these words.
    Refused(&'static [&'static str]),
}

fn edge_cases() -> Vec<(&'static str, Snapshot, Want)> {
    let mut cases: Vec<(&'static str, Snapshot, Want)> = Vec::new();

    // 1. render at docker's 131 (Ubuntu/Pop!_OS), Docker enabled for the stack.
    cases.push((
        "render at 131 with Docker",
        media_host("render", 131),
        Want::Module(|p, v| {
            assert_eq!(v.groups["render"], Some(131));
            assert_eq!(v.groups["docker"], None, "docker moved to a free gid (null: picked at activation)");
            assert!(p.module.contains("users.groups.docker.gid = lib.mkForce null;"), "{}", p.module);
            assert!(p.migration.contains("group `docker` gets a free gid"), "{}", p.migration);
        }),
    ));
    // A media group at 131 too: the same, with a plain declaration.
    cases.push((
        "media at 131 with Docker",
        media_host("media", 131),
        Want::Module(|_, v| {
            assert_eq!((v.groups["media"], v.groups["docker"]), (Some(131), None));
        }),
    ));
    // docker itself at 131 on the old host, render elsewhere: nothing moves.
    cases.push((
        "docker kept at 131",
        {
            let mut s = media_host("render", 110);
            s.identities.groups.push(group("docker", 131, vec![GroupUse::WellKnown, owns("/srv/registry")]));
            s.data_roots.push(data_root("/srv/registry", 1000, 131));
            s
        },
        Want::Module(|_, v| assert_eq!((v.groups["docker"], v.groups["render"]), (Some(131), Some(110)))),
    ));
    // 2. Debian's tape at 26 = NixOS's video; a media group at 100 = NixOS's users.
    cases.push((
        "tape at 26 (NixOS video)",
        media_host("tape", 26),
        Want::Module(|p, v| {
            assert_eq!((v.groups["video"], v.groups["tape"]), (Some(26), Some(25)));
            assert_eq!(p.expectations.groups.get("video"), Some(&26));
            assert!(!p.expectations.groups.contains_key("tape"));
            assert!(v.users["alice"]["extraGroups"].as_array().unwrap().contains(&Value::from("video")));
            assert!(p.migration.contains("is kept as NixOS's `video`"), "{}", p.migration);
        }),
    ));
    cases.push((
        "media at 100 (NixOS users)",
        media_host("media", 100),
        Want::Module(|p, v| {
            assert_eq!(v.groups["users"], Some(100));
            assert!(!v.groups.contains_key("media"));
            assert_eq!(p.expectations.groups.get("users"), Some(&100));
            assert!(!p.module.contains("a module that creates users"), "{}", p.module);
        }),
    ));
    // Every static gid that every NixOS system holds, for a data group: kept under NixOS's
    // name, or refused where membership would give root's powers.
    cases.push(("media at 1 with a member (NixOS wheel)", media_host("media", 1), Want::Refused(&["media", "wheel"])));
    cases.push((
        "media at 6 with a member (NixOS disk)",
        media_host("media", 6),
        Want::Refused(&["media", "gid 6 is disk", "groupmod -g"]),
    ));
    cases.push((
        "media at 1 without members",
        {
            let mut s = media_host("media", 1);
            s.identities.users[0].groups.retain(|g| g != "media");
            s.identities.groups[1].members.clear();
            s
        },
        Want::Module(|p, v| {
            assert_eq!(v.groups["wheel"], Some(1));
            assert!(!v.users["alice"]["extraGroups"].as_array().unwrap().contains(&Value::from("media")));
            assert_eq!(p.expectations.groups.get("wheel"), Some(&1));
        }),
    ));
    // render and video swapped on the old host: both pinned, nothing collides.
    cases.push((
        "render at 26, video at 303",
        {
            let mut s = media_host("render", 26);
            s.identities.groups.push(group("video", 303, vec![owns("/srv/cams")]));
            s.data_roots.push(data_root("/srv/cams", 1000, 303));
            s
        },
        Want::Module(|_, v| assert_eq!((v.groups["render"], v.groups["video"]), (Some(26), Some(303)))),
    ));
    // Two groups with one gid on the old host, both used: the first (getgrgid's answer) keeps it.
    cases.push((
        "two groups with one gid",
        {
            let mut s = media_host("render", 110);
            s.identities.groups.push(group("media", 110, vec![owns("/srv/media")]));
            s.identities.users[0].groups.push("media".into());
            s.data_roots.push(data_root("/srv/media", 1000, 110));
            s
        },
        Want::Module(|p, v| {
            assert_eq!(v.groups["render"], Some(110));
            assert!(!v.groups.contains_key("media"));
            assert!(p.module.contains("render (above) already has gid 110"), "{}", p.module);
            assert!(p.migration.contains("is kept as the old host's earlier group `render`"), "{}", p.migration);
        }),
    ));
    // 3. Duplicates: the first /etc/group and /etc/passwd line of a name; the mounted fstab
    // entry, else the last.
    cases.push((
        "duplicate group line",
        {
            let mut s = media_host("render", 110);
            s.identities.groups.push(group("render", 44, vec![GroupUse::WellKnown]));
            s
        },
        Want::Module(|p, v| {
            assert_eq!(v.groups["render"], Some(110));
            assert_eq!(p.module.matches("users.groups.render.gid").count(), 1, "{}", p.module);
            assert!(p.migration.contains("- group `render`: kept gid 110"), "{}", p.migration);
            assert!(p.warnings.iter().any(|w| w.subject == "duplicate group render"), "{:?}", p.warnings);
        }),
    ));
    cases.push((
        "duplicate user line",
        {
            let mut s = media_host("render", 110);
            s.identities.users.push(user("alice", 1001, 1000, Some("alice"), &["render"]));
            s
        },
        Want::Module(|p, v| {
            assert_eq!(v.users["alice"]["uid"], 1000);
            assert_eq!(p.module.matches("isNormalUser").count(), 1, "{}", p.module);
            assert!(p.migration.contains("- user `alice`: kept uid 1000"), "{}", p.migration);
        }),
    ));
    cases.push((
        "duplicate mount point, the mounted one wins",
        {
            let mut s = media_host("render", 110);
            s.fstab.as_mut().unwrap().push(fstab(9, "UUID=3333-4444", "/mnt/media/", &["defaults"]));
            s.fstab.as_mut().unwrap().push(fstab(11, "UUID=5555-6666", "/mnt/media", &["defaults"]));
            s.block_devices = Some(vec![BlockDevice {
                name: "sdb1".into(),
                path: "/dev/sdb1".into(),
                fstype: Some("ext4".into()),
                uuid: Some("3333-4444".into()),
                label: None,
                partuuid: None,
                mountpoints: vec!["/mnt/media".into()],
            }]);
            s.mounts = Some(vec![Mount {
                target: "/mnt/media".into(),
                source: "/dev/sdb1".into(),
                fstype: "ext4".into(),
                options: vec!["rw".into()],
            }]);
            s
        },
        Want::Module(|p, v| {
            assert_eq!(v.file_systems["/mnt/media"]["device"], "/dev/disk/by-uuid/3333-4444");
            assert_eq!(p.module.matches("fileSystems.\"/mnt/media\"").count(), 1, "{}", p.module);
            assert!(p.migration.contains("(mounted there when captured)"), "{}", p.migration);
        }),
    ));
    cases.push((
        "duplicate mount point, nothing mounted: the last line",
        {
            let mut s = media_host("render", 110);
            s.fstab.as_mut().unwrap().push(fstab(11, "UUID=5555-6666", "/mnt/media", &["defaults"]));
            s.mounts = None;
            s
        },
        Want::Module(|_, v| assert_eq!(v.file_systems["/mnt/media"]["device"], "/dev/disk/by-uuid/5555-6666")),
    ));
    // 4. Names NixOS refuses.
    cases.push((
        "group name of 32 characters",
        media_host(&"m".repeat(32), 2001),
        Want::Module(|p, v| {
            assert!(!v.groups.values().any(|g| *g == Some(2001)));
            assert!(p.migration.contains("- gid 2001: its group name"), "{}", p.migration);
        }),
    ));
    cases.push((
        "user names NixOS refuses",
        {
            let mut s = media_host("render", 110);
            s.identities.users.push(user("-dash", 1001, 1000, Some("alice"), &[]));
            s.identities.users.push(user(&"u".repeat(32), 1002, 1000, Some("alice"), &[]));
            s.identities.users.push(user("名前", 1003, 1000, Some("alice"), &[]));
            s.compose.stacks.push(stack("photos", "-dash", vec![service("immich", 1001, 110)]));
            s
        },
        Want::Module(|p, v| {
            assert_eq!(v.users.keys().filter(|u| !["root", "nobody"].contains(&u.as_str())).count(), 1);
            assert!(
                p.module.contains("User = \"1001\";"),
                "the stack of a left-out user runs as its uid:\n{}",
                p.module
            );
            assert!(p.migration.contains("- user `-dash`: not declared"), "{}", p.migration);
        }),
    ));
    cases.push((
        "a bind mount cycle",
        {
            let mut s = media_host("render", 110);
            let mut a = fstab(7, "/srv/b/x", "/srv/a", &["bind"]);
            a.vfstype = "none".into();
            let mut b = fstab(8, "/srv/a/y", "/srv/b", &["bind"]);
            b.vfstype = "none".into();
            s.fstab.as_mut().unwrap().extend([a, b]);
            s
        },
        Want::Module(|p, v| {
            assert!(v.file_systems.contains_key("/srv/a") && !v.file_systems.contains_key("/srv/b"));
            assert!(p.migration.contains("/srv/b"), "{}", p.migration);
        }),
    ));
    cases
}

#[test]
fn plan_edge_cases_get_a_module_nixos_accepts_or_a_refusal() {
    let lib = nixos_eval::nixpkgs_lib();
    let cases = edge_cases();
    let dir = tempfile::tempdir().unwrap();
    let results: Vec<Result<Plan, PlanError>> = cases.iter().map(|(_, s, _)| plan::plan(s)).collect();
    let accepted: Vec<(usize, &Plan)> =
        results.iter().enumerate().filter_map(|(i, r)| r.as_ref().ok().map(|p| (i, p))).collect();
    let verdicts = evaluate_plans(&lib, dir.path(), &accepted);
    for (i, ((name, s, want), result)) in cases.iter().zip(&results).enumerate() {
        match (want, result) {
            (Want::Module(check), Ok(p)) => {
                let v = verdicts[&i].as_ref().unwrap_or_else(|e| panic!("{name}: {e}\n{}", p.module));
                if let Err(e) = check_accepted(s, p, v) {
                    panic!("{name}: {e}\n{}", p.module);
                }
                check(p, v);
            }
            (Want::Refused(words), Err(e)) => {
                check_refused(e).unwrap_or_else(|why| panic!("{name}: {why}"));
                let text = e.to_string();
                for w in *words {
                    assert!(text.contains(w), "{name}: {w:?} not in\n{text}");
                }
            }
            (Want::Module(_), Err(e)) => panic!("{name}: refused, a module was expected:\n{e}"),
            (Want::Refused(_), Ok(p)) => panic!("{name}: a module, a refusal was expected:\n{}", p.module),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Generated snapshots

/// Choices drawn from proptest's random numbers.
struct Dice {
    n: Vec<u64>,
    at: usize,
}

impl Dice {
    fn next(&mut self) -> u64 {
        self.at += 1;
        self.n[self.at % self.n.len()].rotate_left((self.at / self.n.len()) as u32)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Group names: Debian's and Ubuntu's, NixOS's own, and names NixOS refuses or that break Nix.
const GROUP_NAMES: &[&str] = &[
    "media",
    "plex",
    "render",
    "video",
    "docker",
    "tape",
    "users",
    "audio",
    "dialout",
    "sambashare",
    "lpadmin",
    "adm",
    "wheel",
    "input",
    "kvm",
    "nogroup",
    "photos",
    "a b",
    "${x}",
    "in",
    "é",
    "with:colon",
    "",
    "averyveryverylonggroupnamethatnixos",
    "x\ny",
];
const USER_NAMES: &[&str] = &[
    "alice",
    "bob",
    "palav",
    "media",
    "root",
    "nobody",
    "-dash",
    "a b",
    "${x}",
    "名前",
    "averyveryverylongusernamethatnixos",
];
const MOUNT_POINTS: &[&str] = &[
    "/mnt/media",
    "/mnt/media/",
    "/mnt//media",
    "/srv/data",
    "/srv/a",
    "/srv/b",
    "/mnt/Plex Drive",
    "data",
    "/mnt/x/../y",
    "/var/lib/docker",
];

/// What a generated case holds, for the counts.
#[derive(Debug, Default, Clone, Copy)]
struct Features {
    static_gid: bool,
    docker: bool,
    graphics: bool,
    toolkit: bool,
    dup_group: bool,
    dup_user: bool,
    dup_mount: bool,
    refused_name: bool,
}

/// Static gids of ids.nix each case keeps, in turn: 54 cases keep every one.
const SWEEP: usize = 4;

fn generated(case: usize, dice: &mut Dice) -> (Snapshot, Features) {
    let mut f = Features::default();
    let mut s = base();
    // Kept groups: the sweep over ids.nix's static gids (every one is kept by some case), and
    // ordinary ones.
    let mut groups: Vec<CapturedGroup> = Vec::new();
    for j in 0..6 {
        let gid = if j < SWEEP {
            f.static_gid = true;
            STATIC_GIDS[(case * SWEEP + j) % STATIC_GIDS.len()].1
        } else {
            *dice.pick(&[1000, 1001, 2000, 110, 131, 26, 100, 44, 995, 65534])
        };
        let name = if dice.chance(30) {
            // NixOS's own name for it.
            STATIC_GIDS.iter().find(|(_, g)| *g == gid).map_or("media", |(n, _)| n).to_owned()
        } else {
            (*dice.pick(GROUP_NAMES)).to_owned()
        };
        f.refused_name |= group_name_problem(&name).is_some();
        groups.push(group(&name, gid, vec![]));
    }
    if dice.chance(25) {
        let g = dice.pick(&groups).clone();
        groups.push(CapturedGroup { gid: g.gid.wrapping_add(7), ..g });
        f.dup_group = true;
    }
    // Users.
    let mut users = Vec::new();
    for _ in 0..1 + dice.below(3) {
        let name = (*dice.pick(USER_NAMES)).to_owned();
        f.refused_name |= user_name_problem(&name).is_some();
        let uid = *dice.pick(&[1000, 1001, 1002, 2000, 999, 0, 65534]);
        // As capture records it: the primary group is the first /etc/group line of the gid.
        let gid = if dice.chance(20) { 100 } else { dice.pick(&groups).gid };
        let primary_name = groups.iter().find(|g| g.gid == gid).map(|g| g.name.clone());
        let member_of: Vec<String> = groups.iter().filter(|_| dice.chance(40)).map(|g| g.name.clone()).collect();
        let mut u = user(&name, uid, gid, primary_name.as_deref(), &[]);
        u.groups = member_of;
        if dice.chance(10) {
            u.home = "relative/home".into();
        }
        users.push(u);
    }
    if dice.chance(20) {
        let mut u = dice.pick(&users).clone();
        u.uid += 5;
        users.push(u);
        f.dup_user = true;
    }
    // Stacks: PUID/PGID from the users and groups above.
    let mut stacks = Vec::new();
    f.docker = dice.chance(70);
    if f.docker {
        for k in 0..1 + dice.below(3) {
            let owner = dice.pick(&users).name.clone();
            let mut services = Vec::new();
            for m in 0..1 + dice.below(2) {
                let puid = dice.pick(&users).uid;
                let pgid = dice.pick(&groups).gid;
                let mut svc = service(&format!("svc{m}"), puid, pgid);
                if dice.chance(40) {
                    svc.devices = vec![DeviceMapping {
                        source: "/dev/dri".into(),
                        target: "/dev/dri".into(),
                        permissions: "rwm".into(),
                    }];
                }
                if dice.chance(25) {
                    svc.device_reservations = vec![DeviceReservation {
                        driver: Some("nvidia".into()),
                        capabilities: vec!["gpu".into()],
                        ..Default::default()
                    }];
                }
                services.push(svc);
            }
            let name = if dice.chance(20) { format!("stack {k}\n${{x}}") } else { format!("stack{k}") };
            stacks.push(stack(&name, &owner, services));
        }
    }
    // GPUs.
    match dice.below(4) {
        0 => {}
        1 => s.gpus = vec![common::gpu(GpuVendor::Intel, "0x8086", "0x46a6", "i915")],
        2 => s.gpus = vec![common::gpu(GpuVendor::Amd, "0x1002", "0x73bf", "amdgpu")],
        _ => s.gpus = vec![common::gpu(GpuVendor::Nvidia, "0x10de", "0x2684", "nvidia")],
    }
    f.graphics = !s.gpus.is_empty();
    f.toolkit = s.gpus.iter().any(|g| g.vendor == GpuVendor::Nvidia)
        && stacks.iter().flat_map(|st| &st.services).any(|svc| !svc.device_reservations.is_empty());
    // Disks, some twice, and data roots owned by the ids above.
    let mut entries = Vec::new();
    for line in 0..dice.below(5) {
        let point = *dice.pick(MOUNT_POINTS);
        let mut e = fstab(line + 3, &format!("UUID={:04x}-{line}", dice.below(4)), point, &["defaults"]);
        match dice.below(5) {
            0 => {
                e.spec = "/srv/a/x".into();
                e.vfstype = "none".into();
                e.options = vec!["bind".into()];
            }
            1 => e.options = vec!["".into(), " ".into()],
            2 => e.vfstype = "auto".into(),
            _ => {}
        }
        entries.push(e);
    }
    let points: BTreeSet<String> =
        entries.iter().filter_map(|e| homelab_probe::plan::decide::normalize_mount_point(&e.file)).collect();
    f.dup_mount = points.len() < entries.iter().filter(|e| e.file.starts_with('/') && !e.file.contains("..")).count();
    s.fstab = Some(entries);
    if dice.chance(50) {
        s.mounts = Some(vec![Mount {
            target: "/mnt/media".into(),
            source: "/dev/sdb1".into(),
            fstype: "ext4".into(),
            options: vec!["rw".into()],
        }]);
        s.block_devices = Some(vec![BlockDevice {
            name: "sdb1".into(),
            path: "/dev/sdb1".into(),
            fstype: Some("ext4".into()),
            uuid: Some("0001-1".into()),
            label: None,
            partuuid: None,
            mountpoints: vec!["/mnt/media".into()],
        }]);
    }
    for k in 0..dice.below(3) {
        let u = dice.pick(&users).uid;
        let g = dice.pick(&groups).gid;
        s.data_roots.push(data_root(&format!("/mnt/media/root{k}"), u, g));
    }
    // What capture records of each group's use: the first /etc/group line of a gid gets it.
    let mut seen = BTreeSet::new();
    for g in groups.iter_mut() {
        if !seen.insert(g.gid) {
            continue;
        }
        for st in &stacks {
            for svc in &st.services {
                if svc.env("PGID") == Some(g.gid.to_string().as_str()) {
                    g.uses.push(pgid_of(&st.name, &svc.name));
                }
            }
        }
        for r in &s.data_roots {
            if r.ownership.as_ref().is_some_and(|o| o.by_owner.iter().any(|c| c.gid == g.gid)) {
                g.uses.push(owns(&r.path));
            }
        }
        g.members = users.iter().filter(|u| u.groups.contains(&g.name)).map(|u| u.name.clone()).collect();
    }
    s.identities.groups = groups;
    s.identities.users = users;
    s.compose.stacks = stacks;
    (s, f)
}

#[test]
fn plan_is_total_on_generated_snapshots() {
    let lib = nixos_eval::nixpkgs_lib();
    let cases: usize = std::env::var("PLAN_CASES").ok().and_then(|n| n.parse().ok()).unwrap_or(64);
    let seed: u64 = std::env::var("PLAN_SEED").ok().and_then(|n| n.parse().ok()).unwrap_or(13);
    let mut seed_bytes = [0u8; 32];
    seed_bytes[..8].copy_from_slice(&seed.to_le_bytes());
    let mut runner = TestRunner::new_with_rng(Config::default(), TestRng::from_seed(RngAlgorithm::ChaCha, &seed_bytes));
    let started = std::time::Instant::now();
    let mut snapshots = Vec::new();
    for case in 0..cases {
        let numbers = proptest::collection::vec(any::<u64>(), 64).new_tree(&mut runner).unwrap().current();
        snapshots.push(generated(case, &mut Dice { n: numbers, at: 0 }));
    }
    let results: Vec<Result<Plan, PlanError>> = snapshots.iter().map(|(s, _)| plan::plan(s)).collect();
    let accepted: Vec<(usize, &Plan)> =
        results.iter().enumerate().filter_map(|(i, r)| r.as_ref().ok().map(|p| (i, p))).collect();
    let dir = tempfile::tempdir().unwrap();
    let verdicts = evaluate_plans(&lib, dir.path(), &accepted);

    let mut failures = Vec::new();
    let mut counts: BTreeMap<&str, (usize, usize)> = BTreeMap::new();
    let mut kept_static: BTreeSet<u32> = BTreeSet::new();
    for (i, ((s, f), r)) in snapshots.iter().zip(&results).enumerate() {
        let outcome = match r {
            Ok(p) => {
                let v = verdicts[&i].as_ref().map_err(|e| e.clone());
                if let Err(why) = v.and_then(|v| check_accepted(s, p, v)) {
                    failures.push((i, why, p.module.clone()));
                }
                for g in &p.expectations.groups {
                    kept_static.insert(*g.1);
                }
                0
            }
            Err(e) => {
                if let Err(why) = check_refused(e) {
                    failures.push((i, why, String::new()));
                }
                1
            }
        };
        let mut count = |k: &'static str| {
            let c = counts.entry(k).or_default();
            if outcome == 0 { c.0 += 1 } else { c.1 += 1 }
        };
        count("all");
        for (on, k) in [
            (f.static_gid, "a static gid of ids.nix kept"),
            (f.docker, "docker enabled"),
            (!f.docker, "docker not enabled"),
            (f.graphics, "graphics enabled"),
            (f.toolkit, "NVIDIA container toolkit enabled"),
            (f.dup_group, "duplicate group name"),
            (f.dup_user, "duplicate user name"),
            (f.dup_mount, "duplicate mount point"),
            (f.refused_name, "a name NixOS refuses"),
        ] {
            if on {
                count(k);
            }
        }
        let _ = s;
    }
    // The counts, outside libtest's capture (it only captures the print macros).
    let mut err = std::io::stderr();
    let _ = writeln!(
        err,
        "plan_total: {cases} generated snapshots (seed {seed}) in {:.1} s: accepted (module evaluated, every assertion holding) / refused",
        started.elapsed().as_secs_f64()
    );
    for (k, (ok, refused)) in &counts {
        let _ = writeln!(err, "plan_total:   {k}: {ok} / {refused}");
    }
    let static_covered = STATIC_GIDS
        .iter()
        .filter(|(_, g)| snapshots.iter().any(|(s, _)| s.identities.groups.iter().any(|x| x.gid == *g)))
        .count();
    let _ = writeln!(
        err,
        "plan_total:   static gids of ids.nix kept by some case: {static_covered} of {}",
        STATIC_GIDS.len()
    );
    if !failures.is_empty() {
        let out = std::env::temp_dir().join(format!("plan_total-seed{seed}"));
        std::fs::create_dir_all(&out).unwrap();
        for (i, _, module) in &failures {
            std::fs::write(out.join(format!("case-{i}.json")), serde_json::to_string_pretty(&snapshots[*i].0).unwrap())
                .unwrap();
            std::fs::write(out.join(format!("case-{i}.nix")), module).unwrap();
        }
        let list: Vec<String> = failures.iter().map(|(i, why, _)| format!("case {i}: {why}")).collect();
        panic!(
            "{} of {cases} cases fail (snapshots and modules in {}):\n{}",
            failures.len(),
            out.display(),
            list.join("\n")
        );
    }
    if cases * SWEEP >= STATIC_GIDS.len() {
        assert_eq!(static_covered, STATIC_GIDS.len(), "every static gid of ids.nix is kept by some case");
    }
}
