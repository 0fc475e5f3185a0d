"""The VM test harness: boots the installed Debian kernel under QEMU (software emulation) through
virtme-ng, with the host's userland read-only, a virtio GPU and ext4 disks made here, runs the
scenarios' guest scripts inside, and checks what they left in a shared directory.

A scenario is one file in vm-fixtures/scenarios/ (see docs/testing.md). It declares what its VM
needs (QEMU devices, writable overlays, disks), a bash script that runs inside the guest and
records what `homelab-verify check --format json` and the oracles (stat, setpriv, lsblk, find)
said, and a Python function that asserts on those records on the host. Scenarios that can share a
VM share one boot: booting under TCG is the slow part.

Python 3 standard library only.
"""

from __future__ import annotations

import dataclasses
import glob
import importlib.util
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from pathlib import Path
from typing import Callable, Iterable, Optional, Union

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
GUEST_LIB = HERE / "guest" / "lib.sh"
SCENARIO_DIR = HERE / "scenarios"

#: The virtio GPU: the kernel's virtio_gpu driver creates /dev/dri/card0 and renderD128 and udev
#: gives them their owner, group and mode.
VIRTIO_GPU = "virtio-gpu-pci"


class ScenarioFailure(AssertionError):
    """An assertion about a scenario's results did not hold."""


# --------------------------------------------------------------------------------------------
# Disks


@dataclasses.dataclass(frozen=True)
class Entry:
    """One entry of a disk image: a file, a directory or a symlink with a chosen owner and mode.

    `path` is relative to the filesystem root. Parent directories that are not listed are
    created as 0:0 0755.
    """

    path: str
    uid: int = 0
    gid: int = 0
    mode: Optional[int] = None  # permission bits; default 0644 files, 0755 dirs
    kind: str = "file"  # file | dir | symlink
    content: str = ""  # file content, or the symlink's target

    def perm(self) -> int:
        if self.mode is not None:
            return self.mode
        return {"file": 0o644, "dir": 0o755, "symlink": 0o777}[self.kind]


@dataclasses.dataclass(frozen=True)
class Partition:
    """A GPT partition table with one partition, starting at 1 MiB, holding the filesystem.

    In the guest the filesystem is `vda1`; `/dev/disk/by-partuuid/<uuid>` and
    `/dev/disk/by-partlabel/<name>` point at it (lsblk's PARTUUID, PARTLABEL)."""

    name: str  # GPT partition name (PARTLABEL)
    uuid: str  # partition GUID (PARTUUID)
    table_uuid: str = "5e1f0000-0000-4000-8000-000000000001"  # the disk GUID, fixed too


@dataclasses.dataclass(frozen=True)
class Disk:
    """An ext4 disk image attached to the guest as a virtio-blk disk.

    Made without mounting anything (no loop devices needed): `mkfs.ext4 -U UUID -L LABEL -d
    STAGING` copies a staging tree into the new filesystem, then `debugfs -w` sets every inode's
    uid, gid and mode to exactly what the entries say (so the owners do not depend on who runs
    the harness). With a `partition`, `sfdisk` writes a GPT first and the filesystem goes into
    the partition (`mkfs.ext4 -E offset=`, `debugfs IMAGE?offset=`). In the guest the disk is `/dev/disk/by-uuid/<uuid>`, `/dev/disk/by-label/<label>`
    and its serial (lsblk's SERIAL, `/dev/disk/by-id/virtio-<serial>`) is `<name>.img`, cut to 20
    bytes by virtio-blk.
    """

    name: str  # unique in a boot: the image is <name>.img
    uuid: str
    label: str
    entries: tuple = ()
    size_mib: int = 16
    partition: Optional[Partition] = None  # None: the filesystem is the whole disk

    def image_name(self) -> str:
        return f"{self.name}.img"


def _run(cmd: list, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, check=False, text=True, capture_output=True, **kw)


def make_disk(disk: Disk, directory: Path) -> Path:
    """Builds `disk` as a raw image in `directory` and returns its path. Raises RuntimeError with
    the tools' output when mkfs.ext4 or debugfs fail."""
    image = directory / disk.image_name()
    staging = Path(tempfile.mkdtemp(prefix=f"{disk.name}-", dir=directory))
    try:
        wanted = {}  # path -> (uid, gid, mode with type bits)
        for e in disk.entries:
            # debugfs takes a path with spaces in double quotes, and has no escape for these.
            if any(c in e.path for c in '"\n\\') or e.path.startswith("/") or not e.path:
                raise ValueError(f"disk {disk.name}: entry {e.path!r}: a path relative to the root, without '\"', "
                                 "backslash or newline (debugfs cannot name it); make such names in the guest")
            target = staging / e.path
            parents = Path(e.path).parents
            for p in list(parents)[:-1]:
                wanted.setdefault(str(p), (0, 0, 0o040755))
            target.parent.mkdir(parents=True, exist_ok=True)
            if e.kind == "dir":
                target.mkdir(exist_ok=True)
                wanted[e.path] = (e.uid, e.gid, 0o040000 | e.perm())
            elif e.kind == "symlink":
                os.symlink(e.content, target)
                wanted[e.path] = (e.uid, e.gid, 0o120000 | e.perm())
            elif e.kind == "file":
                target.write_text(e.content)
                wanted[e.path] = (e.uid, e.gid, 0o100000 | e.perm())
            else:
                raise ValueError(f"disk {disk.name}: entry {e.path}: unknown kind {e.kind!r}")
        with open(image, "wb") as f:
            f.truncate(disk.size_mib * 1024 * 1024)
        fs_size = []  # whole disk
        offset = 0
        if disk.partition:
            # 1 MiB before the partition, 1 MiB after it for the backup GPT.
            offset = 1024 * 1024
            sectors = (disk.size_mib - 2) * 2048
            part = disk.partition
            table = (f"label: gpt\nlabel-id: {part.table_uuid}\n"
                     f"start=2048, size={sectors}, type=L, name=\"{part.name}\", uuid={part.uuid}\n")
            p = _run(["sfdisk", "-q", str(image)], input=table)
            if p.returncode != 0:
                raise RuntimeError(f"sfdisk {image} failed ({p.returncode}) on:\n{table}{p.stdout}{p.stderr}")
            fs_size = [f"{disk.size_mib - 2}M"]
        mkfs = [
            "mkfs.ext4", "-q", "-F", "-U", disk.uuid, "-L", disk.label,
            "-E", f"root_owner=0:0,offset={offset}", "-d", str(staging), str(image), *fs_size,
        ]
        p = _run(mkfs)
        if p.returncode != 0:
            raise RuntimeError(f"{shlex.join(mkfs)} failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        if wanted:
            cmds = []
            for path, (uid, gid, mode) in sorted(wanted.items()):
                ino = f'"/{path}"'  # quoted: names with spaces
                cmds += [f"sif {ino} uid {uid}", f"sif {ino} gid {gid}", f"sif {ino} mode 0{mode:o}"]
            script = directory / f"{disk.name}.debugfs"
            script.write_text("\n".join(cmds) + "\n")
            p = _run(["debugfs", "-w", "-f", str(script), f"{image}?offset={offset}"])
            # debugfs exits 0 even when a request fails; its complaints go to stderr.
            errors = [l for l in p.stderr.splitlines() if l.strip() and not l.startswith("debugfs ")]
            if p.returncode != 0 or errors:
                raise RuntimeError(f"debugfs -w -f {script} {image} failed:\n{p.stdout}{p.stderr}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return image


# --------------------------------------------------------------------------------------------
# Scenarios


@dataclasses.dataclass(frozen=True)
class Break:
    """A deliberate break of the property a scenario checks: with it the scenario must fail.

    The guest script sees the break's name in `$BREAK` and `disks`/`files` callables receive it.
    `without` names QEMU devices that must be absent from the boot (e.g. no GPU).
    """

    description: str
    without: tuple = ()


@dataclasses.dataclass(frozen=True)
class Control:
    """A host-side negative control, run after every successful check at no boot cost: the
    scenario's check runs again with some records replaced by other real records of the same
    boot (e.g. the report taken before the fix in place of the one after it) and must fail."""

    description: str
    substitute: dict  # record name -> record name to read instead


Files = Union[dict, Callable[[Optional[str]], dict]]
Disks = Union[tuple, Callable[[Optional[str]], tuple]]


@dataclasses.dataclass(frozen=True)
class Scenario:
    """One VM scenario. See docs/testing.md, "Adding a scenario"."""

    name: str
    title: str
    guest: str  # bash, run inside the guest in the scenario's directory with `set -eux -o pipefail`
    check: Callable[["Results"], None]
    order: int = 50  # lower runs first in a shared boot; scenarios that change the VM go last
    devices: tuple = ()  # QEMU -device arguments this scenario needs
    overlays: tuple = ()  # guest directories that must be writable (copy-on-write)
    disks: Disks = ()
    files: Files = dataclasses.field(default_factory=dict)  # name -> text, in the scenario dir
    breaks: dict = dataclasses.field(default_factory=dict)  # name -> Break
    controls: tuple = ()  # Control
    # The guest script brings the VM to its starting state itself, so several variants (breaks)
    # of this scenario can run one after another in one boot. Only for scenarios without disks.
    repeatable: bool = False
    # Integration test binaries the guest runs as oracles, as (package, test target): the runner
    # builds them (`cargo test -p PACKAGE --test TARGET --no-run`) and the guest script finds
    # each one's path in $CARGO_TEST_<TARGET>.
    cargo_tests: tuple = ()

    def disks_for(self, brk: Optional[str]) -> tuple:
        return tuple(self.disks(brk) if callable(self.disks) else self.disks)

    def files_for(self, brk: Optional[str]) -> dict:
        return dict(self.files(brk) if callable(self.files) else self.files)


def load_scenarios(directory: Path = SCENARIO_DIR) -> list:
    """Every `SCENARIO` defined by a `*.py` file in `directory`, in run order."""
    found = []
    sys.path.insert(0, str(HERE))
    for path in sorted(directory.glob("*.py")):
        if path.name.startswith("_"):
            continue
        spec = importlib.util.spec_from_file_location(f"vm_scenario_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        sc = getattr(module, "SCENARIO", None)
        if not isinstance(sc, Scenario):
            raise RuntimeError(f"{path}: defines no SCENARIO = Scenario(...)")
        found.append(sc)
    names = [s.name for s in found]
    dupes = {n for n in names if names.count(n) > 1}
    if dupes:
        raise RuntimeError(f"duplicate scenario names: {sorted(dupes)}")
    return sorted(found, key=lambda s: (s.order, s.name))


# --------------------------------------------------------------------------------------------
# Results and assertions


class Results:
    """What one scenario's guest script left in its directory, plus assertion helpers.

    Records are named by the guest script: `verify NAME ...` leaves `NAME.json` (the report),
    `NAME.rc` and `NAME.stderr`; `oracle NAME CMD...` leaves `NAME.out`, `NAME.err`, `NAME.rc`.
    """

    def __init__(self, scenario: Scenario, directory: Path, brk: Optional[str] = None, substitute=None):
        self.scenario = scenario
        self.dir = directory
        self.break_name = brk
        self._sub = dict(substitute or {})

    def substituted(self, substitute: dict) -> "Results":
        return Results(self.scenario, self.dir, self.break_name, substitute)

    def _path(self, record: str, suffix: str) -> Path:
        return self.dir / f"{self._sub.get(record, record)}{suffix}"

    def _read(self, record: str, suffix: str) -> str:
        p = self._path(record, suffix)
        if not p.exists():
            raise ScenarioFailure(f"record {record!r}: {p.name} was not written (did the guest script reach that step?)")
        return p.read_text(errors="replace")

    def rc(self, record: str) -> int:
        return int(self._read(record, ".rc").strip())

    def out(self, record: str) -> str:
        return self._read(record, ".out")

    def out_bytes(self, record: str) -> bytes:
        """stdout as bytes (file names are bytes: `find -print0` of a name that is not UTF-8)."""
        self._read(record, ".out")  # the same failure when the record is missing
        return self._path(record, ".out").read_bytes()

    def err(self, record: str) -> str:
        return self._read(record, ".err")

    def file(self, name: str) -> str:
        """A file the guest script wrote into the scenario's directory (`plan/homelab-probe.toml`)."""
        p = self.dir / name
        if not p.is_file():
            raise ScenarioFailure(f"{name} was not written (did the guest script reach that step?)")
        return p.read_text(errors="replace")

    def json_out(self, record: str):
        text = self.out(record)
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise ScenarioFailure(f"record {record!r}: stdout is not JSON ({e}):\n{text[:2000]}")

    def verifier_reads_udev(self, record: str = "hv_version") -> bool:
        """Whether the homelab-verify under test reads the udev database: its `--version`
        (recorded by the guest as `oracle hv_version "$HV" --version`) lists the cargo feature
        `udev`. The portable release build has no libudev: block devices then have no filesystem
        type (identity comes from /dev/disk/by-* and sysfs; docs/release.md)."""
        for line in self.out(record).splitlines():
            if line.startswith("features:"):
                return "udev" in line.split()[1:]
        raise ScenarioFailure(f"`homelab-verify --version` lists no features:\n{self.out(record)}")

    def report(self, record: str) -> "ReportView":
        text = self._read(record, ".json")
        stderr = self._path(record, ".stderr")
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            err = stderr.read_text(errors="replace") if stderr.exists() else ""
            raise ScenarioFailure(f"report {record!r} is not JSON ({e}); homelab-verify stderr:\n{err}\nstdout:\n{text[:2000]}")
        return ReportView(record, data, self.rc(record))


def _fmt_finding(f: dict) -> str:
    remedy = f.get("remedy")
    fix = f"\n        fix ({remedy['kind']}): {remedy['text']}" if remedy else ""
    return f"  {f['status'].upper():4}  {f['probe']}/{f['check']}  {f['subject']}: {f['message']}{fix}"


class ReportView:
    """A parsed `homelab-verify check --format json` report with assertion helpers whose
    failure messages show the findings that were there instead."""

    def __init__(self, name: str, data: dict, rc: int):
        self.name = name
        self.data = data
        self.rc = rc
        self.findings = data.get("findings", [])

    def describe(self, subject: Optional[str] = None) -> str:
        fs = [f for f in self.findings if subject is None or f["subject"] == subject]
        return "\n".join(_fmt_finding(f) for f in fs) or "  (no findings)"

    def select(self, check: Optional[str] = None, subject: Optional[str] = None, status: Optional[str] = None) -> list:
        return [
            f
            for f in self.findings
            if (check is None or f["check"] == check)
            and (subject is None or f["subject"] == subject)
            and (status is None or f["status"] == status)
        ]

    def one(self, check: str, subject: str, status: str, remedy_kind: Optional[str] = None,
            remedy: Optional[str] = None, remedy_contains: Iterable = (), message_contains: Iterable = ()) -> dict:
        """The single finding `check` on `subject`; asserts its status and remedy."""
        got = self.select(check, subject)
        if len(got) != 1:
            raise ScenarioFailure(
                f"report {self.name!r}: expected one {check} finding on {subject!r} ({status}), found {len(got)}:\n"
                f"{self.describe()}"
            )
        f = got[0]
        problems = []
        if f["status"] != status:
            problems.append(f"status is {f['status']}, expected {status}")
        r = f.get("remedy")
        if remedy_kind is not None and (r is None or r.get("kind") != remedy_kind):
            problems.append(f"remedy is {r}, expected kind {remedy_kind!r}")
        if remedy is not None and (r is None or r.get("text") != remedy):
            problems.append(f"remedy is {r}, expected text {remedy!r}")
        for part in remedy_contains:
            if r is None or part not in r.get("text", ""):
                problems.append(f"remedy {r} does not contain {part!r}")
        for part in message_contains:
            if part not in f["message"]:
                problems.append(f"message does not contain {part!r}")
        if problems:
            raise ScenarioFailure(
                f"report {self.name!r}, {check} on {subject!r}: " + "; ".join(problems) + f":\n{_fmt_finding(f)}"
            )
        return f

    def none(self, check: str, subject: Optional[str] = None) -> None:
        got = self.select(check, subject)
        if got:
            raise ScenarioFailure(
                f"report {self.name!r}: expected no {check} finding on {subject or 'any subject'}, found:\n"
                + "\n".join(_fmt_finding(f) for f in got)
            )

    def exit_code(self, code: int) -> None:
        if self.rc != code:
            raise ScenarioFailure(
                f"report {self.name!r}: homelab-verify exited {self.rc}, expected {code}; findings:\n{self.describe()}"
            )

    def ok(self) -> None:
        """Exit code 0, summary ok, no failing finding."""
        fails = self.select(status="fail")
        if self.rc != 0 or not self.data["summary"]["ok"] or fails:
            raise ScenarioFailure(
                f"report {self.name!r}: expected a passing check (exit 0), got exit {self.rc}, "
                f"summary {self.data['summary']}:\n{self.describe()}"
            )


def expect(condition: bool, message: str) -> None:
    """Asserts `condition` with a message that says what was expected and what was seen."""
    if not condition:
        raise ScenarioFailure(message)


# --------------------------------------------------------------------------------------------
# Boots


@dataclasses.dataclass
class Variant:
    """A scenario in one run: normally as written, or with one break applied."""

    scenario: Scenario
    brk: Optional[str] = None

    @property
    def label(self) -> str:
        return self.scenario.name if self.brk is None else f"{self.scenario.name}[break={self.brk}]"

    @property
    def key(self) -> str:
        """The variant's directory name under the shared directory."""
        return self.scenario.name if self.brk is None else f"{self.scenario.name}+{self.brk}"

    @property
    def without(self) -> set:
        return set(self.scenario.breaks[self.brk].without) if self.brk else set()


@dataclasses.dataclass
class Boot:
    """One VM boot running several variants one after another."""

    index: int
    variants: list = dataclasses.field(default_factory=list)

    def devices(self) -> list:
        """The QEMU devices of this boot: what its variants need, less what a break removes."""
        banned = set().union(*(v.without for v in self.variants)) if self.variants else set()
        out = []
        for v in self.variants:
            for d in v.scenario.devices:
                if d not in out and d not in banned:
                    out.append(d)
        return out

    def accepts(self, v: Variant) -> bool:
        same = [o for o in self.variants if o.scenario.name == v.scenario.name]
        # Variants of one scenario share a boot only when it says it can run again in the same
        # VM, and its disks (same names, UUIDs, labels) would not be attached twice.
        if same and not (v.scenario.repeatable and not v.scenario.disks_for(v.brk)):
            return False
        needed = {d for o in self.variants for d in o.scenario.devices if d not in o.without}
        banned = set().union(*(o.without for o in self.variants)) if self.variants else set()
        wants = set(v.scenario.devices) - v.without
        return not (v.without & needed) and not (wants & banned)


def plan_boots(variants: list) -> list:
    """Packs variants into as few boots as possible (first fit, in order): a boot holds each
    scenario at most once, and a variant that needs a device absent never shares a boot with
    one that needs it."""
    boots = []
    for v in variants:
        for b in boots:
            if b.accepts(v):
                b.variants.append(v)
                break
        else:
            boots.append(Boot(len(boots) + 1, [v]))
    for b in boots:
        b.variants.sort(key=lambda v: (v.scenario.order, v.scenario.name, v.brk or ""))
    return boots


@dataclasses.dataclass
class Outcome:
    """The result of one variant."""

    variant: Variant
    passed: bool
    seconds: float
    detail: str = ""
    failed_in_check: bool = False  # the failure came from an assertion (not the VM or the script)
    controls: list = dataclasses.field(default_factory=list)  # (description, rejected: bool, detail)


@dataclasses.dataclass
class Env:
    """Where things are: the tools and files a boot needs."""

    verifier: Path
    kernel: Path
    vng: str
    workdir: Path
    timeout: int  # seconds for the whole boot
    boot_timeout: int = 420  # seconds until the guest script must have started
    cargo_tests: dict = dataclasses.field(default_factory=dict)  # test target -> built test binary
    memory: str = "1G"
    cpus: int = 2


def tail(text: str, lines: int = 60) -> str:
    parts = [line.rstrip() for line in text.splitlines()]
    parts = [line for line in parts if line]
    cut = parts[-lines:]
    prefix = f"[... {len(parts) - lines} earlier lines in the log ...]\n" if len(parts) > lines else ""
    return prefix + "\n".join(cut)


def guest_script(env: Env, boot: Boot, share: Path) -> str:
    lines = [
        "#!/bin/bash",
        "# Written by vm-fixtures/harness.py; runs inside the guest.",
        f"export HV={shlex.quote(str(env.verifier))} SHARE={shlex.quote(str(share))}",
        *(f"export CARGO_TEST_{t}={shlex.quote(str(p))}" for t, p in sorted(env.cargo_tests.items())),
        "export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin NO_COLOR=1 LC_ALL=C.UTF-8",
        f". {shlex.quote(str(GUEST_LIB))}",
        "boot_info > \"$SHARE/boot.json\"",
        # The debug build is ~90 MB. Run from the 9p root (no page cache: cache=none), every run
        # pages it in again over 9p, 5-13 s under TCG; copied once to the guest's tmpfs (~3 s),
        # a run takes about 0.5 s.
        "mkdir -p /run/vm-fixtures/bin && cp \"$HV\" /run/vm-fixtures/bin/homelab-verify && "
        "export HV=/run/vm-fixtures/bin/homelab-verify",
    ]
    for v in boot.variants:
        lines.append(f"run_scenario {shlex.quote(v.key)} {shlex.quote(v.brk or '')}")
    lines.append("echo done > \"$SHARE/done\"")
    return "\n".join(lines) + "\n"


def vng_command(env: Env, boot: Boot, share: Path, images: list) -> list:
    cmd = [
        # 9p, not virtiofs: the same path on every machine (virtme-ng otherwise tries virtiofsd
        # first, waiting ~3 s per share when it fails, and with virtiofs it may pick QEMU's
        # `microvm` machine, which has no PCI bus for virtio-gpu-pci).
        env.vng, "--run", str(env.kernel), "--disable-kvm", "--force-9p", "--disable-microvm", "--verbose",
        "--user", "root", "--cpus", str(env.cpus), "--memory", env.memory,
    ]
    overlays = []
    for v in boot.variants:
        for o in v.scenario.overlays:
            if o not in overlays:
                overlays.append(o)
    for o in overlays:
        cmd += ["--overlay-rwdir", o]
    devices = boot.devices()
    if devices:
        # `--qemu-opts=...`: as a separate argument, argparse takes "-device" for an option.
        cmd.append("--qemu-opts=" + " ".join(f"-device {d}" for d in devices))
    for img in images:
        # Relative to the boot directory (vng's cwd): virtme-ng makes the path the disk's serial,
        # which the guest truncates to 20 bytes.
        cmd += ["--disk", img.name]
    cmd += ["--rwdir", str(share), "--exec", f"bash {shlex.quote(str(share / 'guest.sh'))}"]
    return cmd


def run_boot(env: Env, boot: Boot, log: Callable[[str], None]) -> list:
    """Boots the VM once for `boot`'s variants; returns one Outcome per variant."""
    bdir = env.workdir / f"boot{boot.index}"
    share = bdir / "share"
    share.mkdir(parents=True)
    images = []
    disks = []
    try:
        for v in boot.variants:
            sdir = share / v.key
            sdir.mkdir()
            (sdir / "guest.sh").write_text(v.scenario.guest)
            for name, text in v.scenario.files_for(v.brk).items():
                (sdir / name).write_text(text)
            for d in v.scenario.disks_for(v.brk):
                for other in disks:
                    # udev's /dev/disk/by-uuid and by-label links would point at either one.
                    if d.name == other.name or d.uuid == other.uuid or d.label == other.label:
                        raise ValueError(f"disks {d.name!r} and {other.name!r} share a name, UUID or label in one "
                                         "boot: give each disk of every scenario its own")
                disks.append(d)
                images.append(make_disk(d, bdir))
    except (RuntimeError, OSError, ValueError) as e:
        return [Outcome(v, False, 0.0, f"could not prepare the boot: {e}") for v in boot.variants]
    (share / "guest.sh").write_text(guest_script(env, boot, share))
    cmd = vng_command(env, boot, share, images)
    (bdir / "vng-command").write_text(f"cd {shlex.quote(str(bdir))} && {shlex.join(cmd)}\n")
    log(f"boot {boot.index}: {', '.join(v.label for v in boot.variants)}")
    t0 = time.monotonic()
    timed_out = None  # why the harness stopped the VM, if it did
    info_path = share / "boot.json"
    with open(bdir / "boot.log", "wb") as out:
        # Own process group, so a timeout can stop vng and its QEMU (and nothing else). Output
        # through a pipe: QEMU reopens /proc/self/fd/1 and 2 for the console, and a reopened
        # regular file would be truncated and written at its own offset.
        proc = subprocess.Popen(cmd, cwd=bdir, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
        def copy():
            for chunk in iter(lambda: proc.stdout.read1(65536), b""):
                out.write(chunk)
                out.flush()

        copier = threading.Thread(target=copy, daemon=True)
        copier.start()
        while (rc := proc.poll()) is None:
            elapsed = time.monotonic() - t0
            if elapsed > env.boot_timeout and not info_path.exists():
                timed_out = f"the guest script did not start within {env.boot_timeout} s"
            elif elapsed > env.timeout:
                timed_out = f"the boot took longer than {env.timeout} s"
            if timed_out:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    rc = proc.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    rc = proc.wait()
                break
            time.sleep(0.5)
        # QEMU may outlive vng for a moment and hold the pipe; do not wait for it forever.
        copier.join(timeout=30)
    wall = time.monotonic() - t0
    boot_log = (bdir / "boot.log").read_text(errors="replace")
    if not info_path.exists():
        why = timed_out or f"vng exited {rc}"
        detail = (
            f"the VM did not boot to the guest script ({why}); command: {bdir / 'vng-command'}\n"
            f"vng/QEMU output ({bdir / 'boot.log'}):\n{tail(boot_log, 80)}"
        )
        first = boot.variants[0].label
        return [Outcome(v, False, wall, detail if i == 0 else f"same boot as {first}: the VM did not boot (see above)")
                for i, v in enumerate(boot.variants)]
    info = json.loads(info_path.read_text())
    scen_total = 0.0
    outcomes = []
    for v in boot.variants:
        outcomes.append(finish_variant(env, v, share / v.key, timed_out))
        scen_total += outcomes[-1].seconds
    note = f" (stopped: {timed_out})" if timed_out else ""
    log(f"boot {boot.index}: kernel {info.get('kernel')}, {wall:.1f} s wall, of which scenarios "
        f"{scen_total:.1f} s, boot and shutdown {max(wall - scen_total, 0):.1f} s{note}")
    if not (share / "done").exists() and not timed_out:
        log(f"boot {boot.index}: the guest script did not finish (vng exited {rc}); log: {bdir / 'boot.log'}")
    return outcomes


def finish_variant(env: Env, v: Variant, sdir: Path, timed_out: bool) -> Outcome:
    meta_path = sdir / "guest.json"
    glog = sdir / "guest.log"
    if not meta_path.exists():
        why = "the VM timed out" if timed_out else "the guest script never ran it"
        text = glog.read_text(errors="replace") if glog.exists() else "(no guest.log)"
        return Outcome(v, False, 0.0, f"{why}; guest log:\n{tail(text)}")
    meta = json.loads(meta_path.read_text())
    seconds = float(meta["seconds"])
    if meta["rc"] != 0:
        text = glog.read_text(errors="replace")
        return Outcome(v, False, seconds, f"the guest script failed (exit {meta['rc']}); {glog}:\n{tail(text)}")
    results = Results(v.scenario, sdir, v.brk)
    t0 = time.monotonic()
    try:
        v.scenario.check(results)
    except ScenarioFailure as e:
        return Outcome(v, False, seconds + time.monotonic() - t0, str(e), failed_in_check=True)
    except Exception:  # a bug in the check itself: report it, do not count it as a clean failure
        return Outcome(v, False, seconds + time.monotonic() - t0, f"the check crashed:\n{traceback.format_exc()}")
    outcome = Outcome(v, True, seconds + time.monotonic() - t0)
    if v.brk is None:
        for c in v.scenario.controls:
            try:
                v.scenario.check(results.substituted(c.substitute))
            except ScenarioFailure as e:
                outcome.controls.append((c.description, True, str(e).splitlines()[0]))
            except Exception as e:  # noqa: BLE001 - a crash is not a clean rejection
                outcome.controls.append((c.description, False, f"the check crashed: {e!r}"))
                outcome.passed = False
                outcome.detail = f"negative control crashed the check: {c.description}"
            else:
                outcome.controls.append((c.description, False, "the check passed on the substituted records"))
                outcome.passed = False
                outcome.detail = f"negative control not rejected: {c.description}"
    return outcome


# --------------------------------------------------------------------------------------------
# Finding the tools


def find_kernel(explicit: Optional[str]) -> Path:
    """The kernel to boot: `explicit`, else the newest /boot/vmlinuz-* with modules installed."""
    if explicit:
        p = Path(explicit)
        if not p.is_file():
            raise RuntimeError(f"kernel {p} does not exist")
        return p

    def version_key(path: str):
        rel = path.split("vmlinuz-", 1)[1]
        return [int(x) if x.isdigit() else x for x in re.split(r"[.-]", rel)]

    candidates = [k for k in glob.glob("/boot/vmlinuz-*") if os.path.isdir(f"/lib/modules/{k.split('vmlinuz-', 1)[1]}")]
    if not candidates:
        raise RuntimeError(
            "no kernel to boot: no /boot/vmlinuz-* with its /lib/modules directory "
            "(install linux-image-amd64: scripts/setup-debian --test)"
        )
    kernel = Path(sorted(candidates, key=version_key)[-1])
    if not os.access(kernel, os.R_OK):
        raise RuntimeError(f"{kernel} is not readable by uid {os.getuid()} (run as root, as CI does)")
    return kernel


def check_tools() -> list:
    """Problems with the tools the harness needs (empty when all are there)."""
    problems = []
    for tool, package in [
        ("vng", "virtme-ng (pip)"), ("qemu-system-x86_64", "qemu-system-x86"),
        ("mkfs.ext4", "e2fsprogs"), ("debugfs", "e2fsprogs"), ("sfdisk", "fdisk"), ("busybox", "busybox-static"),
    ]:
        if shutil.which(tool) is None:
            problems.append(f"{tool} not found (package {package}; scripts/setup-debian --test installs it)")
    return problems
