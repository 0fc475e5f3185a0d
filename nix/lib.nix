# Pure helpers of the `services.homelab-probe` module and of the VM test wrapper.
#
# Written with builtins only (no nixpkgs `lib`), so that scripts/check-nix-eval can evaluate
# and test them with a bare `nix-instantiate --eval --strict` on a machine without nixpkgs
# (nix/tests/lib.nix holds those tests).
let
  inherit (builtins)
    any
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    foldl'
    genList
    isAttrs
    isList
    length
    listToAttrs
    map
    mapAttrs
    match
    sort
    stringLength
    substring
    toString
    ;

  filterAttrs = pred: set: listToAttrs (concatMap (n: if pred n set.${n} then [ { name = n; value = set.${n}; } ] else [ ]) (attrNames set));

  # Names sharing one id: { "110" = [ "a" "b" ]; } for every id held by more than one name.
  # `ids` maps names to ids (null ids are ignored).
  sharedIds =
    ids:
    let
      known = filter (n: ids.${n} != null) (attrNames ids);
      byId = foldl' (acc: n: acc // { ${toString ids.${n}} = (acc.${toString ids.${n}} or [ ]) ++ [ n ]; }) { } known;
    in
    filterAttrs (_: names: length names > 1) byId;

  quoteList = names: concatStringsSep ", " (map (n: "`${n}`") names);

  # Characters outside ASCII that Rust's char::is_whitespace or char::is_control accept (the
  # regex classes below only know ASCII): the C1 controls U+0080..U+009F and the Unicode
  # White_Space characters.
  hexDigits = [ "0" "1" "2" "3" "4" "5" "6" "7" "8" "9" "a" "b" "c" "d" "e" "f" ];
  unicodeSpaceOrControl =
    map (h: builtins.fromJSON "\"\\u${h}\"") (
      map (d: "008${d}") hexDigits
      ++ map (d: "009${d}") hexDigits
      ++ map (d: "200${d}") (genList (i: builtins.elemAt hexDigits i) 11)
      ++ [ "00a0" "1680" "2028" "2029" "202f" "205f" "3000" ]
    );
  containsAny = chars: s: any (c: length (builtins.split c s) > 1) chars;
in
rec {
  # Whether `name` is a user or group name homelab-verify accepts: the same rule as
  # `validate_name` in crates/homelab-probe/src/sources/mod.rs (not empty, at most 256
  # bytes, not all digits, no leading `-`, no (Unicode) whitespace, control characters or
  # `: , / " ' \ `` ` `` $`, except one `$` at the end).
  isValidName =
    name:
    let
      len = stringLength name;
      body = if len > 0 && substring (len - 1) 1 name == "$" then substring 0 (len - 1) name else name;
    in
    len > 0
    && len <= 256
    && match "[0-9]+" name == null
    && substring 0 1 name != "-"
    && match "[^[:space:][:cntrl:]:,/\"'\\\\`$]*" body != null
    && !containsAny unicodeSpaceOrControl body;

  # Octal permission bits as the module accepts them: "0660", "660", "2775", "02775".
  isMode = s: match "0?[0-7]{3,4}" s != null;

  # TOML has no null: drop null attributes and list items, recursively, before rendering.
  dropNulls =
    v:
    if isAttrs v then
      mapAttrs (_: dropNulls) (filterAttrs (_: x: x != null) v)
    else if isList v then
      map dropNulls (filter (x: x != null) v)
    else
      v;

  # The attribute set rendered to homelab-probe.toml from the module's `settings`.
  expectations = settings: dropNulls settings;

  # Paths the check unit must be ordered after: every `path` of a `[[mounts]]` entry.
  # MOUNTS: `[[mounts]]` (path, uuid or label, fstype, options, required) is the mount probe's
  # section, not merged yet; `path` is the key its issue names. Adjust here if it lands
  # with another name.
  mountPaths = settings: map (m: m.path) (filter (m: isAttrs m && m ? path) (settings.mounts or [ ]));

  # Eval-time consistency between the expectations and the NixOS configuration.
  #   settings:       the expectations (the module's `settings`, after defaults)
  #   declaredGroups: name -> { gid (int or null); members (list of user names) }
  #   declaredUsers:  name -> { uid (int or null); group (primary group name) }
  #   mutableUsers:   `users.mutableUsers`
  # Returns { assertions = [ { assertion; message; } ]; warnings = [ str ]; }.
  #
  # Assertions are for expectations no host built from this configuration can meet: two
  # expected groups (users) with one gid (uid), or an expected id that another declared group
  # (user) holds, or, with immutable users, an expected group or user that is not declared.
  # Differences between an expectation and what the configuration declares are warnings: the
  # host's /etc/group can legitimately differ (NixOS keeps an existing gid; mutable users), and
  # the check unit reports such a difference at run time with the remedy.
  consistency =
    {
      settings,
      declaredGroups,
      declaredUsers,
      mutableUsers ? true,
    }:
    let
      groups = settings.groups or { };
      users = settings.users or { };
      userUids = mapAttrs (_: u: u.uid or null) users;

      sameGid = sharedIds groups;
      sameUid = sharedIds userUids;

      gidHeldByOther =
        name:
        let
          gid = groups.${name};
        in
        filter (other: other != name && (declaredGroups.${other}.gid or null) == gid) (attrNames declaredGroups);
      uidHeldByOther =
        name:
        let
          uid = userUids.${name};
        in
        filter (other: other != name && (declaredUsers.${other}.uid or null) == uid) (
          attrNames declaredUsers
        );

      expectedUsersWithUid = filter (n: userUids.${n} != null) (attrNames users);

      declaredGid = name: declaredGroups.${name}.gid or null;
      declaredUid = name: declaredUsers.${name}.uid or null;

      declaredMember =
        user: group:
        elem user (declaredGroups.${group}.members or [ ]) || (declaredUsers.${user}.group or null) == group;
      missingMemberships =
        user:
        filter (g: declaredUsers ? ${user} && declaredGroups ? ${g} && !declaredMember user g) (
          users.${user}.groups or [ ]
        );
    in
    {
      assertions =
        map (gid: {
          assertion = false;
          message = "services.homelab-probe: the expectations give gid ${gid} to the groups ${quoteList sameGid.${gid}}; one gid can belong to one group only.";
        }) (attrNames sameGid)
        ++ map (uid: {
          assertion = false;
          message = "services.homelab-probe: the expectations give uid ${uid} to the users ${quoteList sameUid.${uid}}; one uid can belong to one user only.";
        }) (attrNames sameUid)
        ++ concatMap (
          name:
          map (other: {
            assertion = false;
            message = "services.homelab-probe: the expectations require group `${name}` to have gid ${toString groups.${name}}, but this configuration gives gid ${toString groups.${name}} to group `${other}` (users.groups.${other}.gid). Choose another gid for one of them, or disable what declares `${other}`.";
          }) (gidHeldByOther name)
        ) (attrNames groups)
        ++ concatMap (
          name:
          map (other: {
            assertion = false;
            message = "services.homelab-probe: the expectations require user `${name}` to have uid ${toString userUids.${name}}, but this configuration gives uid ${toString userUids.${name}} to user `${other}` (users.users.${other}.uid).";
          }) (uidHeldByOther name)
        ) expectedUsersWithUid
        ++ (
          if mutableUsers then
            [ ]
          else
            map (name: {
              assertion = false;
              message = "services.homelab-probe: the expectations require group `${name}`, which this configuration does not declare; with users.mutableUsers = false NixOS removes every undeclared group. Declare users.groups.${name}.";
            }) (filter (n: !(declaredGroups ? ${n})) (attrNames groups))
            ++ map (name: {
              assertion = false;
              message = "services.homelab-probe: the expectations require user `${name}`, which this configuration does not declare; with users.mutableUsers = false NixOS removes every undeclared user. Declare users.users.${name}.";
            }) (filter (n: !(declaredUsers ? ${n})) (attrNames users))
        );

      warnings =
        map (
          name:
          "services.homelab-probe: the expectations require group `${name}` to have gid ${toString groups.${name}}, but this configuration declares users.groups.${name}.gid = ${toString (declaredGid name)}: homelab-probe-check.service will fail on a host whose /etc/group follows the configuration. Fix: users.groups.${name}.gid = lib.mkForce ${toString groups.${name}};"
        ) (filter (n: declaredGid n != null && declaredGid n != groups.${n}) (attrNames groups))
        ++ map (
          name:
          "services.homelab-probe: the expectations require user `${name}` to have uid ${toString userUids.${name}}, but this configuration declares users.users.${name}.uid = ${toString (declaredUid name)}: homelab-probe-check.service will fail on a host whose /etc/passwd follows the configuration. Fix: users.users.${name}.uid = ${toString userUids.${name}};"
        ) (filter (n: declaredUid n != null && declaredUid n != userUids.${n}) expectedUsersWithUid)
        ++ concatMap (
          user:
          let
            missing = missingMemberships user;
          in
          if missing == [ ] then
            [ ]
          else
            [
              "services.homelab-probe: the expectations require user `${user}` to be in ${quoteList missing}, but this configuration does not put it there: homelab-probe-check.service will fail. Fix: users.users.${user}.extraGroups = [ ${concatStringsSep " " (map (g: "\"${g}\"") missing)} ];"
            ]
        ) (attrNames users);
    };

  # The VM tests under nixos-tests/: every `*.nix` file directly in the directory except
  # `default.nix` is one test, named after the file. `entries` is `builtins.readDir dir`.
  # Adding a test is adding one file.
  testNames =
    entries:
    sort (a: b: a < b) (
      map (f: substring 0 (stringLength f - 4) f) (
        filter (
          f: entries.${f} == "regular" && f != "default.nix" && match ".+\\.nix" f != null
        ) (attrNames entries)
      )
    );
}
