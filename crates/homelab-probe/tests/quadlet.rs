//! Quadlet units in capture, plan and check's expectations: the `quadlet-host` fixture runs
//! plex as a system unit and jellyfin and immich as palav's rootless units (podman's own
//! generator reads the same units in `quadlet_oracle.rs`).

use homelab_probe::capture::{CaptureOptions, capture};
use homelab_probe::model::compose::{Engine, FoundBy, StackKind};
use homelab_probe::model::finding::{Probe, Status};
use homelab_probe::model::snapshot::GroupUse;
use homelab_probe::{Host, check, plan};
use homelab_test_support::sysroot;

#[test]
fn capture_records_system_and_rootless_quadlet_units_and_plan_derives_render_access() {
    let s = capture(&Host::at(sysroot("quadlet-host")).unwrap(), &CaptureOptions::default());
    let quadlet: Vec<_> = s.compose.stacks.iter().filter(|st| st.kind == StackKind::Quadlet).collect();
    let summary: Vec<(&str, &str, bool, Vec<&str>)> = quadlet
        .iter()
        .map(|st| {
            (st.name.as_str(), st.dir.as_str(), st.rootless, st.services.iter().map(|x| x.name.as_str()).collect())
        })
        .collect();
    assert_eq!(
        summary,
        vec![
            ("quadlet", "/etc/containers/systemd", false, vec!["plex"]),
            ("quadlet-palav", "/home/palav/.config/containers/systemd", true, vec!["immich", "jellyfin"]),
        ]
    );
    for st in &quadlet {
        assert_eq!((st.engine, st.found_by), (Some(Engine::Podman), FoundBy::QuadletDir));
        assert!(st.problems.is_empty(), "{:?}", st.problems);
    }
    let plex = &quadlet[0].services[0];
    // EnvironmentFile= gives UMASK; the secret PLEX_CLAIM stays out; the drop-in adds card0 and 44.
    assert_eq!((plex.env("PUID"), plex.env("PGID"), plex.env("UMASK")), (Some("1000"), Some("110"), Some("022")));
    assert!(!plex.environment.contains_key("PLEX_CLAIM"));
    assert_eq!(plex.group_add, vec!["44"]);
    assert_eq!(plex.dri_devices(), vec!["/dev/dri/renderD128", "/dev/dri/card0"]);
    assert_eq!(
        quadlet[0].files,
        vec!["/etc/containers/systemd/plex.container", "/etc/containers/systemd/plex.container.d/10-gpu.conf"]
    );
    let jellyfin = &quadlet[1].services[1];
    assert_eq!(jellyfin.user.as_deref(), Some("1000:110"), "%U is palav's uid");
    assert_eq!(
        jellyfin.volumes[1].host_path.as_deref(),
        Some("/home/palav/.config/containers/systemd/jellyfin-config")
    );

    let p = plan::plan(&s).unwrap();
    let access: Vec<_> = p
        .expectations
        .render
        .as_ref()
        .unwrap()
        .access
        .iter()
        .map(|a| (a.name.as_deref(), a.uid, a.gid, a.rootless.as_deref(), a.keep_groups))
        .collect();
    // plex: PUID/PGID (rootful, host ids); immich and jellyfin: ids of palav's user namespace,
    // marked rootless, jellyfin with keep-groups.
    assert_eq!(
        access,
        vec![
            (Some("quadlet/plex"), 1000, 110, None, false),
            (Some("quadlet-palav/immich"), 1000, 110, Some("palav"), false),
            (Some("quadlet-palav/jellyfin"), 1000, 110, Some("palav"), true),
        ]
    );
    let immich = p.warnings.iter().find(|w| w.subject == "quadlet-palav/immich").unwrap();
    assert!(immich.message.contains("rootless without keep-groups") && immich.message.contains("GroupAdd=keep-groups"));
    // Check on the same host (root:render 0660, palav in render): without keep-groups no host
    // group reaches the node, a Fail naming keep-groups; with it palav's render opens it.
    let host = Host::at(sysroot("quadlet-host")).unwrap();
    let findings = check::run_probes(&host, &p.expectations, &[Probe::RenderNode]);
    let verdict = |who: &str| {
        findings
            .iter()
            .find(|f| f.check == "render_access" && f.message.starts_with(who))
            .unwrap_or_else(|| panic!("no render_access for {who}: {findings:#?}"))
    };
    let (im, jf) = (verdict("quadlet-palav/immich"), verdict("quadlet-palav/jellyfin"));
    assert_eq!((im.status, jf.status), (Status::Fail, Status::Pass), "{im:#?}\n{jf:#?}");
    let fix = &im.remedy.as_ref().unwrap().text;
    assert!(fix.starts_with("add keep-groups: GroupAdd=keep-groups"), "{fix}");
    assert!(fix.contains("MODE=\"0666\""), "{fix}");
    // render keeps 110 for plex's PGID only: a rootless unit's Group=110 is a gid of palav's
    // namespace, not a use of the host's 110 (capture leaves it out, and plan ignores it in
    // snapshots that still have it).
    let render_line = p.migration.lines().find(|l| l.starts_with("- group `render` keeps gid")).unwrap();
    assert!(render_line.contains("quadlet/plex") && !render_line.contains("quadlet-palav"), "{render_line}");
    let render = s.identities.groups.iter().find(|g| g.name == "render").unwrap();
    assert!(!format!("{:?}", render.uses).contains("quadlet-palav"), "{:?}", render.uses);
    let mut old = s.clone();
    for g in old.identities.groups.iter_mut().filter(|g| g.name == "render") {
        g.uses.push(GroupUse::Compose {
            stack: "quadlet-palav".into(),
            service: "jellyfin".into(),
            field: "user".into(),
        });
    }
    let line =
        plan::plan(&old).unwrap().migration.lines().find(|l| l.starts_with("- group `render`")).map(str::to_owned);
    assert_eq!(line.as_deref(), Some(render_line));
    // Owning rootless Podman units needs no docker group (the VM scenario rootless_podman found
    // plan asking for it).
    // The fixture's palav is in docker; without that membership, the plan must not add it.
    let mut no_docker = s.clone();
    for u in no_docker.identities.users.iter_mut().filter(|u| u.name == "palav") {
        u.groups.retain(|g| g != "docker");
    }
    let palav = &plan::plan(&no_docker).unwrap().expectations.users["palav"];
    assert!(!palav.groups.iter().any(|g| g == "docker"), "{palav:?}");
    let module = &p.module;
    assert!(!module.contains("docker compose"), "no compose unit for quadlet units:\n{module}");
    assert!(p.warnings.iter().any(|w| w.subject == "stack quadlet" && w.message.contains("plan writes no unit")));
}

#[test]
fn a_broken_unit_is_a_problem_with_file_and_line_and_the_rest_is_read() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path();
    let dir = root.join("etc/containers/systemd");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
    std::fs::write(
        dir.join("plex.container"),
        "[Container]\nImage=docker.io/plex\nEnvironment=\"PGID=110\nAddDevice=/dev/dri/renderD128\n",
    )
    .unwrap();
    let s = capture(&Host::at(root).unwrap(), &CaptureOptions::default());
    let st = s.compose.stacks.iter().find(|st| st.kind == StackKind::Quadlet).unwrap();
    let msgs: Vec<String> = st.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(
        msgs,
        vec!["/etc/containers/systemd/plex.container:3: Environment=: unterminated \" quote in \"\\\"PGID=110\""]
    );
    assert_eq!(st.services[0].dri_devices(), vec!["/dev/dri/renderD128"]);
}
