# Tests of nix/lib.nix. Evaluates to the list of failures (empty when every case passes);
# run by crates/homelab-probe/tests/nix_module.rs with `nix-instantiate --eval --strict`.
let
  l = import ../lib.nix;

  case = name: got: want: if got == want then [ ] else [ "${name}: got ${builtins.toJSON got}, want ${builtins.toJSON want}" ];

  messages = r: map (a: a.message) r.assertions;

  # A NixOS host at its defaults, as users-groups.nix declares it (render 303, video 26).
  nixosGroups = {
    render = {
      gid = 303;
      members = [ "palav" ];
    };
    video = {
      gid = 26;
      members = [ "palav" ];
    };
    users = {
      gid = 100;
      members = [ ];
    };
    docker = {
      gid = 131;
      members = [ ];
    };
  };
  nixosUsers = {
    root = {
      uid = 0;
      group = "root";
    };
    palav = {
      uid = 1000;
      group = "users";
    };
  };
  run =
    settings: extra:
    l.consistency (
      {
        inherit settings;
        declaredGroups = nixosGroups;
        declaredUsers = nixosUsers;
      }
      // extra
    );
in
case "dropNulls removes nulls at every depth" (l.dropNulls {
  a = null;
  b = {
    c = null;
    d = 1;
  };
  e = [
    null
    { f = null; }
  ];
}) {
  b.d = 1;
  e = [ { } ];
}
++ case "mountPaths takes every path" (l.mountPaths {
  mounts = [
    { path = "/mnt/PlexStorage"; }
    { uuid = "x"; }
    { path = "/srv"; }
  ];
}) [ "/mnt/PlexStorage" "/srv" ]
++ case "mountPaths without mounts" (l.mountPaths { }) [ ]
++ case "orderingPaths: mount paths, then drift roots, each once" (l.orderingPaths {
  mounts = [
    { path = "/mnt/PlexStorage"; }
    { path = "/mnt/Plex Drive"; }
  ];
  drift = [
    { root = "/mnt/PlexStorage/media"; }
    { root = "/mnt/PlexStorage"; }
    { root = "/srv/photos"; }
  ];
}) [ "/mnt/PlexStorage" "/mnt/Plex Drive" "/mnt/PlexStorage/media" "/srv/photos" ]
++ case "orderingPaths of a file without mounts or drift" (l.orderingPaths { version = 1; }) [ ]
++ case "isMountPoint" (map l.isMountPoint [ "/" "/mnt/PlexStorage" "/mnt/Plex Drive" "/mnt/.x" "/mnt/x/" "mnt/x" "/mnt//x" "/mnt/./x" "/mnt/../x" "//" "" "/mnt/x\ny" ]) [
  true
  true
  true
  true
  false
  false
  false
  false
  false
  false
  false
  false
]
++ case "isDriftRoot: absolute, not / however spelled, one line" (map l.isDriftRoot [ "/mnt/x" "/mnt/x/" "/.." "/" "//" "/." "/./" "mnt" "" "/mnt/x\ny" ]) [
  true
  true
  true
  false
  false
  false
  false
  false
  false
  false
]
++ case "unitPathWord quotes what systemd would split or expand" (map l.unitPathWord [ "/mnt/PlexStorage" "/mnt/Plex Drive" "/srv/50%" "/srv/q\"uote" "/srv/b\\s" "/srv/it's" ]) [
  "/mnt/PlexStorage"
  "\"/mnt/Plex Drive\""
  "\"/srv/50%%\""
  "\"/srv/q\\\"uote\""
  "\"/srv/b\\\\s\""
  "\"/srv/it's\""
]
++ case "settingsProblems: what homelab-verify refuses across values, and two owners for one root" (l.settingsProblems {
  mounts = [
    { path = "/x"; uuid = "a"; label = "b"; device = "/dev/sdb1"; options = [ "rw" "ro" ]; }
    { path = "/x"; }
    { path = "/y"; uuid = "a"; options = [ "rw" ]; }
  ];
  drift = [
    { root = "/d"; uid = 1; gid = 2; }
    { root = "/d/."; uid = 3; gid = 2; }
    { root = "/e"; uid = 1; gid = 2; }
  ];
}) [
  "services.homelab-probe.settings.mounts: mount /x: give one of uuid, label or device, not uuid and label and device (homelab-verify refuses the file)."
  "services.homelab-probe.settings.mounts: mount /x: options cannot hold both rw and ro."
  "services.homelab-probe.settings.mounts: /x is listed 2 times; give one entry per path (homelab-verify refuses the file)."
  "services.homelab-probe.settings.drift: /d is listed with the owners `1:2`, `3:2`; every entry under it (the directory itself too) can have only one owner."
]
++ case "settingsProblems of good settings" (l.settingsProblems {
  mounts = [ { path = "/x"; uuid = "a"; options = [ "ro" "noatime" ]; } ];
  drift = [ { root = "/x"; uid = 1; gid = 1; } { root = "/y"; uid = 2; gid = 2; } ];
}) [ ]
++ case "settingsWarnings: one root twice with one owner" (l.settingsWarnings {
  drift = [
    { root = "/d"; uid = 1; gid = 2; }
    { root = "/d/"; uid = 1; gid = 2; }
    { root = "/e"; uid = 1; gid = 2; }
  ];
}) [ "services.homelab-probe.settings.drift: /d is listed 2 times with the same owner, so the check scans it 2 times; one entry is enough." ]
++ case "mountConsistency: declared as expected, by link or tag, any spelling" (l.mountConsistency {
  mounts = [
    { path = "/mnt/PlexStorage"; uuid = "7c1f"; fstype = "ext4"; }
    { path = "/mnt/Plex Drive"; label = "Plex Drive"; }
    { path = "/mnt/backup"; label = "backup"; }
    { path = "/srv"; device = "/dev/mapper/data"; fstype = "xfs"; }
    { path = "/mnt/auto"; uuid = "a"; fstype = "ext4"; }
    { path = "/mnt/unit"; uuid = "u"; }
    { path = "/mnt/other-kind"; uuid = "u"; }
  ];
  fileSystems = [
    { mountPoint = "/mnt/PlexStorage"; device = "/dev/disk/by-uuid/7c1f"; fsType = "ext4"; }
    { mountPoint = "/mnt/Plex Drive"; device = "/dev/disk/by-label/Plex\\x20Drive"; fsType = "ext4"; }
    { mountPoint = "/mnt/backup"; label = "backup"; device = "/dev/disk/by-label/backup"; fsType = "auto"; }
    { mountPoint = "/srv"; device = "/dev/mapper/data"; fsType = "xfs"; }
    { mountPoint = "/mnt/auto"; device = "UUID=a"; fsType = "auto"; }
    { mountPoint = "/mnt/other-kind"; label = "data"; fsType = "ext4"; }
  ];
  mountUnits = [ "/mnt/unit" ];
}) [ ]
++ case "mountConsistency: undeclared, another device, another type" (l.mountConsistency {
  mounts = [
    { path = "/mnt/PlexStorage"; uuid = "7c1f"; fstype = "ext4"; options = [ "rw" "noatime" ]; required = true; }
    { path = "/mnt/backup"; label = "my backup"; required = false; }
    { path = "/mnt/Plex Drive"; label = "Plex Drive"; fstype = "ext4"; }
  ];
  fileSystems = [
    { mountPoint = "/mnt/Plex Drive"; device = "LABEL=Other"; fsType = "btrfs"; }
  ];
}) [
  "services.homelab-probe: settings.mounts expects /mnt/PlexStorage to be mounted, but this configuration does not declare it in fileSystems, so nothing mounts it at boot: homelab-probe-check.service will warn (mount_declared) and fail (mounted). Fix: fileSystems.\"/mnt/PlexStorage\" = { device = \"/dev/disk/by-uuid/7c1f\"; fsType = \"ext4\"; options = [ \"noatime\" ]; };"
  "services.homelab-probe: settings.mounts expects /mnt/backup to be mounted, but this configuration does not declare it in fileSystems, so nothing mounts it at boot: homelab-probe-check.service will warn (mount_declared) and warn (mounted). Fix: fileSystems.\"/mnt/backup\" = { label = \"my backup\"; options = [ \"nofail\" ]; };"
  "services.homelab-probe: settings.mounts expects LABEL=Plex Drive at /mnt/Plex Drive, but this configuration mounts LABEL=Other there (fileSystems.\"/mnt/Plex Drive\"): homelab-probe-check.service will fail (mount_declared). Fix the expectation or: fileSystems.\"/mnt/Plex Drive\" = { label = \"Plex Drive\"; fsType = \"ext4\"; };"
  "services.homelab-probe: settings.mounts expects /mnt/Plex Drive to be ext4, but this configuration declares fileSystems.\"/mnt/Plex Drive\".fsType = \"btrfs\": homelab-probe-check.service will fail (mount_fstype)."
]
++ case "isMode" (map l.isMode [ "0660" "660" "2775" "02775" "0o660" "0998" "66" "" ]) [
  true
  true
  true
  true
  false
  false
  false
  false
]
++ case "a consistent configuration has neither assertions nor warnings" (run {
  groups = {
    render = 303;
    video = 26;
  };
  users.palav = {
    uid = 1000;
    groups = [ "render" "video" "users" ];
  };
} { }) { assertions = [ ]; warnings = [ ]; }
++ case "two expected groups with one gid" (messages (run {
  groups = {
    render = 110;
    media = 110;
  };
} { })) [
  "services.homelab-probe: the expectations give gid 110 to the groups `media`, `render`; one gid can belong to one group only."
]
++ case "two expected users with one uid" (messages (run {
  users = {
    palav.uid = 1000;
    plex.uid = 1000;
  };
} { })) [
  "services.homelab-probe: the expectations give uid 1000 to the users `palav`, `plex`; one uid can belong to one user only."
  # and plex's uid is palav's in the configuration
  "services.homelab-probe: the expectations require user `plex` to have uid 1000, but this configuration gives uid 1000 to user `palav` (users.users.palav.uid)."
]
++ case "an expected gid another declared group holds" (messages (run { groups.render = 110; } {
  declaredGroups = nixosGroups // {
    systemd-journal-gateway = {
      gid = 110;
      members = [ ];
    };
  };
})) [
  "services.homelab-probe: the expectations require group `render` to have gid 110, but this configuration gives gid 110 to group `systemd-journal-gateway` (users.groups.systemd-journal-gateway.gid). Choose another gid for one of them, or disable what declares `systemd-journal-gateway`."
]
++ case "the expected group itself declaring the gid is no collision" (
  (run { groups.render = 110; } { declaredGroups = nixosGroups // { render.gid = 110; }; }).assertions
) [ ]
++ case "an expected uid another declared user holds" (messages (run { users.plex.uid = 1000; } { })) [
  "services.homelab-probe: the expectations require user `plex` to have uid 1000, but this configuration gives uid 1000 to user `palav` (users.users.palav.uid)."
]
++ case "a declared gid that differs is a warning with the fix, not an assertion" (run { groups.render = 110; } { }) {
  assertions = [ ];
  warnings = [
    "services.homelab-probe: the expectations require group `render` to have gid 110, but this configuration declares users.groups.render.gid = 303: homelab-probe-check.service will fail on a host whose /etc/group follows the configuration. Fix: users.groups.render.gid = lib.mkForce 110;"
  ];
}
++ case "a group with a dynamic gid is not compared" (
  (run { groups.media = 2000; } { declaredGroups = nixosGroups // { media.gid = null; }; })
) { assertions = [ ]; warnings = [ ]; }
++ case "a missing membership is a warning with the fix" (
  (run {
    users.palav.groups = [
      "render"
      "docker"
    ];
  } { }).warnings
) [
  "services.homelab-probe: the expectations require user `palav` to be in `docker`, but this configuration does not put it there: homelab-probe-check.service will fail. Fix: users.users.palav.extraGroups = [ \"docker\" ];"
]
++ case "the primary group counts as membership" ((run { users.palav.groups = [ "users" ]; } { }).warnings) [ ]
++ case "undeclared expectations with mutable users are left to the check" (
  run {
    groups.media = 2000;
    users.jellyfin = { };
  } { }
) { assertions = [ ]; warnings = [ ]; }
++ case "undeclared expectations with immutable users are impossible" (
  messages (
    run {
      groups.media = 2000;
      users.jellyfin = { };
    } { mutableUsers = false; }
  )
) [
  "services.homelab-probe: the expectations require group `media`, which this configuration does not declare; with users.mutableUsers = false NixOS removes every undeclared group. Declare users.groups.media."
  "services.homelab-probe: the expectations require user `jellyfin`, which this configuration does not declare; with users.mutableUsers = false NixOS removes every undeclared user. Declare users.users.jellyfin."
]
++ case "test discovery: one test per file, default.nix and directories left out" (l.testNames {
  "default.nix" = "regular";
  "render-node.nix" = "regular";
  "mounts.nix" = "regular";
  "lib" = "directory";
  "pending" = "directory";
  "README.md" = "regular";
  "notes.nix.orig" = "regular";
}) [ "mounts" "render-node" ]
++ case "loopback addresses" (map l.isLoopback [ "127.0.0.1" "127.1.2.3" "::1" "[::1]" "0.0.0.0" "192.168.1.2" "::" "localhost" "1127.0.0.1" ]) [ true true true true false false false false false ]
++ case "serve --listen puts IPv6 addresses in brackets" (map (a: l.listenArg a 9723) [ "127.0.0.1" "::1" "[::1]" "0.0.0.0" "::" ]) [ "127.0.0.1:9723" "[::1]:9723" "[::1]:9723" "0.0.0.0:9723" "[::]:9723" ]
