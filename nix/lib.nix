# Pure helpers of the `services.homelab-probe` module and of the VM test wrapper.
#
# Written with builtins only (no nixpkgs `lib`), so that scripts/check-nix-eval can evaluate
# and test them with a bare `nix-instantiate --eval --strict` on a machine without nixpkgs
# (nix/tests/lib.nix holds those tests).
let
  inherit (builtins)
    all
    any
    attrNames
    concatMap
    concatStringsSep
    elem
    filter
    foldl'
    genList
    head
    isAttrs
    isList
    isString
    length
    listToAttrs
    map
    mapAttrs
    match
    replaceStrings
    sort
    split
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

  hasNewline = s: length (split "\n" s) > 1;

  # The parts of a path between its slashes ("" for an empty part).
  components = path: filter isString (split "/" path);

  unique = foldl' (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
  count = x: list: length (filter (y: y == x) list);

  # A string as a Nix string literal (for the fixes in messages).
  nixString = s: "\"" + replaceStrings [ "\\" "\"" "$" ] [ "\\\\" "\\\"" "\\$" ] s + "\"";
  nixList = l: if l == [ ] then "[ ]" else "[ ${concatStringsSep " " (map nixString l)} ]";

  # `/dev/disk/by-label/Plex\x20Drive` -> `Plex Drive`: udev escapes link names, and NixOS's
  # `fileSystems.<name>.label` writes blanks and tabs so (nixos/modules/tasks/filesystems.nix).
  udevUnescape = replaceStrings [ "\\x20" "\\x09" "\\x2f" "\\x5c" ] [ " " "\t" "/" "\\" ];

  # How a source names its device: { kind = "uuid" | "label" | "device"; value; }, from an
  # expectation (`uuid`, `label` or `device`) or from a NixOS `fileSystems` entry (`label`, or
  # `device` as `/dev/disk/by-uuid/...`, `/dev/disk/by-label/...`, `UUID=...`, `LABEL=...` or a
  # path). null when it names none.
  expectedSource =
    m:
    if (m.uuid or null) != null then
      { kind = "uuid"; value = m.uuid; }
    else if (m.label or null) != null then
      { kind = "label"; value = m.label; }
    else if (m.device or null) != null then
      { kind = "device"; value = m.device; }
    else
      null;
  declaredSource =
    fs:
    let
      d = fs.device or null;
      tagged =
        prefix: kind: unescape:
        let
          r = match "${prefix}(.+)" d;
        in
        if r == null then null else { inherit kind; value = unescape (head r); };
      firstOf = foldl' (found: x: if found != null then found else x) null;
    in
    if (fs.label or null) != null then
      { kind = "label"; value = fs.label; }
    else if d == null then
      null
    else
      firstOf [
        (tagged "/dev/disk/by-uuid/" "uuid" udevUnescape)
        (tagged "UUID=" "uuid" (x: x))
        (tagged "/dev/disk/by-label/" "label" udevUnescape)
        (tagged "LABEL=" "label" (x: x))
        { kind = "device"; value = d; }
      ];
  showSource = src: if src.kind == "device" then src.value else "${if src.kind == "uuid" then "UUID" else "LABEL"}=${src.value}";

  # A drift root with its empty and `.` parts dropped, to compare roots.
  normalRoot = root: "/" + concatStringsSep "/" (filter (c: c != "" && c != ".") (components root));
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

  # Whether `path` is a mount point homelab-verify accepts: absolute and normalised (no empty,
  # `.` or `..` part, no trailing `/` except for `/` itself), one line. The same rule as
  # `check_mount_point` in crates/homelab-probe/src/model/mounts.rs.
  isMountPoint =
    path:
    path == "/"
    || (
      substring 0 1 path == "/"
      && all (c: c != "" && c != "." && c != "..") (components (substring 1 (stringLength path) path))
      && !hasNewline path
    );

  # Whether `root` is a `[[drift]]` root homelab-verify accepts (`drift_root` in
  # model/expectations.rs): absolute and not `/` itself however it is spelled (`//`, `/.`).
  # Stricter than the library in one place: no line break, because every root is also a word of
  # the unit's `WantsMountsFor=`.
  isDriftRoot =
    root: substring 0 1 root == "/" && filter (c: c != "" && c != ".") (components root) != [ ] && !hasNewline root;

  # The `path` of every `[[mounts]]` entry.
  mountPaths = exp: map (m: m.path) (filter (m: isAttrs m && m ? path) (exp.mounts or [ ]));

  # The paths the check unit is ordered after (the module's `afterMounts` default): the `path` of
  # every `[[mounts]]` entry and the `root` of every `[[drift]]` entry, each once. systemd orders
  # a unit after the mount units of every prefix of such a path (systemd.unit(5),
  # RequiresMountsFor=), so a drift root below a mount point waits for that mount, and a root
  # that is not below any mount waits for nothing. A `[[baseline]]` adds its `file` (its roots
  # are inside the file, unknown to evaluation; the file usually lives beside them).
  orderingPaths =
    exp:
    unique (
      mountPaths exp
      ++ map (d: d.root) (filter (d: isAttrs d && d ? root) (exp.drift or [ ]))
      ++ map (b: b.file) (filter (b: isAttrs b && b ? file) (exp.baseline or [ ]))
    );

  # A path as one word of a unit setting that takes a list of paths (`RequiresMountsFor=`,
  # `WantsMountsFor=`): systemd splits the value at blanks, removes quotes and expands `%`
  # specifiers (config_parse_unit_mounts_for: extract_first_word with EXTRACT_UNQUOTE, then
  # unit_full_printf), so `%` is doubled, and a path with any character outside a safe set is
  # put in double quotes with `\` and `"` escaped. `/mnt/Plex Drive` -> `"/mnt/Plex Drive"`.
  unitPathWord =
    path:
    let
      e = replaceStrings [ "%" ] [ "%%" ] path;
    in
    if match "[A-Za-z0-9/._+:@,=~-]*" e != null then e else "\"${replaceStrings [ "\\" "\"" ] [ "\\\\" "\\\"" ] e}\"";

  # Settings homelab-verify refuses that the option types cannot express, because the rule spans
  # several values: messages for the module's assertions (the file would be refused with exit
  # code 2, so the unit could never check anything). The rules of model/mounts.rs (one of
  # uuid/label/device, not both rw and ro, one entry per path), and one the library accepts but
  # no host can meet: a drift root listed with two owners (its top directory has one owner).
  settingsProblems =
    settings:
    let
      mounts = settings.mounts or [ ];
      drift = settings.drift or [ ];
      sourcesOf = m: filter (k: (m.${k} or null) != null) [ "uuid" "label" "device" ];
      paths = map (m: m.path) mounts;
      owner = d: "${toString d.uid}:${toString d.gid}";
      roots = unique (map (d: normalRoot d.root) drift);
      ownersOf = root: unique (map owner (filter (d: normalRoot d.root == root) drift));
      prefix = "services.homelab-probe.settings";
    in
    map (
      m: "${prefix}.mounts: mount ${m.path}: give one of uuid, label or device, not ${concatStringsSep " and " (sourcesOf m)} (homelab-verify refuses the file)."
    ) (filter (m: length (sourcesOf m) > 1) mounts)
    ++ map (m: "${prefix}.mounts: mount ${m.path}: options cannot hold both rw and ro.") (
      filter (m: elem "rw" (m.options or [ ]) && elem "ro" (m.options or [ ])) mounts
    )
    ++ map (
      p: "${prefix}.mounts: ${p} is listed ${toString (count p paths)} times; give one entry per path (homelab-verify refuses the file)."
    ) (filter (p: count p paths > 1) (unique paths))
    ++ map (
      root: "${prefix}.drift: ${root} is listed with the owners ${quoteList (ownersOf root)}; every entry under it (the directory itself too) can have only one owner."
    ) (filter (root: length (ownersOf root) > 1) roots);

  # Warnings about settings that are allowed but probably not meant: a drift root listed twice
  # with the same owner (scanned twice, at every boot and switch).
  settingsWarnings =
    settings:
    let
      drift = settings.drift or [ ];
      roots = map (d: normalRoot d.root) drift;
    in
    map (
      root: "services.homelab-probe.settings.drift: ${root} is listed ${toString (count root roots)} times with the same owner, so the check scans it ${toString (count root roots)} times; one entry is enough."
    ) (filter (root: count root roots > 1 && length (unique (map (d: "${toString d.uid}:${toString d.gid}") (filter (d: normalRoot d.root == root) drift))) == 1) (unique roots));

  # Eval-time comparison of the expected mounts (`settings.mounts`) with the filesystems this
  # configuration declares, for the module's warnings: what `mount_declared` and `mount_fstype`
  # will report at run time on a host built from it.
  #   mounts:       the expected mounts (`settings.mounts`, after defaults)
  #   fileSystems:  the declared filesystems (the values of `config.fileSystems`: mountPoint,
  #                 device, label, fsType)
  #   mountUnits:   the `where` of every `systemd.mounts` entry (they mount without fstab)
  # Returns a list of warnings. Sources are compared only when both name the device the same
  # way (two UUIDs, two labels, two paths): whether a UUID and a label are one disk is the run
  # time check's to tell.
  mountConsistency =
    {
      mounts,
      fileSystems,
      mountUnits ? [ ],
    }:
    let
      declaredAt = path: filter (fs: (fs.mountPoint or null) == path) fileSystems;
      snippet =
        m:
        let
          src = expectedSource m;
          lines =
            (
              if src == null then
                [ ]
              else if src.kind == "uuid" then
                [ "device = ${nixString "/dev/disk/by-uuid/${src.value}"};" ]
              else if src.kind == "label" then
                [ "label = ${nixString src.value};" ]
              else
                [ "device = ${nixString src.value};" ]
            )
            ++ (if (m.fstype or null) != null then [ "fsType = ${nixString m.fstype};" ] else [ ])
            ++ (
              let
                opts = filter (o: o != "rw") (m.options or [ ]) ++ (if m.required or true then [ ] else [ "nofail" ]);
              in
              if opts == [ ] then [ ] else [ "options = ${nixList opts};" ]
            );
        in
        "fileSystems.${nixString m.path} = ${if lines == [ ] then "{ }" else "{ ${concatStringsSep " " lines} }"};";
      check =
        m:
        let
          declared = declaredAt m.path;
          fs = head declared;
          want = expectedSource m;
          have = declaredSource fs;
          fsType = fs.fsType or null;
          outcome = if m.required or true then "fail" else "warn";
        in
        if declared == [ ] then
          (
            if elem m.path mountUnits then
              [ ]
            else
              [
                "services.homelab-probe: settings.mounts expects ${m.path} to be mounted, but this configuration does not declare it in fileSystems, so nothing mounts it at boot: homelab-probe-check.service will warn (mount_declared) and ${outcome} (mounted). Fix: ${snippet m}"
              ]
          )
        else
          (
            if want != null && have != null && want.kind == have.kind && want.value != have.value then
              [
                "services.homelab-probe: settings.mounts expects ${showSource want} at ${m.path}, but this configuration mounts ${showSource have} there (fileSystems.${nixString m.path}): homelab-probe-check.service will fail (mount_declared). Fix the expectation or: ${snippet m}"
              ]
            else
              [ ]
          )
          ++ (
            if (m.fstype or null) != null && fsType != null && fsType != "auto" && fsType != m.fstype then
              [
                "services.homelab-probe: settings.mounts expects ${m.path} to be ${m.fstype}, but this configuration declares fileSystems.${nixString m.path}.fsType = ${nixString fsType}: homelab-probe-check.service will fail (mount_fstype)."
              ]
            else
              [ ]
          );
    in
    concatMap check mounts;

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

  # Whether `address` (an IP address, as `serve --listen` takes it) is a loopback address:
  # 127.0.0.0/8 or ::1. `serve` refuses any other without --allow-remote.
  isLoopback = address: match "127[.][0-9]+[.][0-9]+[.][0-9]+" address != null || elem address [ "::1" "[::1]" ];

  # `serve --listen` for an address and a port: an IPv6 address in brackets, as Rust's
  # SocketAddr (and every URL) writes it.
  listenArg =
    address: port:
    (if match ".*:.*" address != null && match "\\[.*]" address == null then "[${address}]" else address)
    + ":${toString port}";

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
