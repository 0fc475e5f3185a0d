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
