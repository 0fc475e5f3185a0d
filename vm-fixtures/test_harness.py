"""Tests of the harness itself, without booting: how variants are packed into boots, the
assertion helpers, and disk images checked with blkid and debugfs (the oracles for what mkfs and
debugfs wrote). Run: python3 -m unittest discover -s vm-fixtures -p 'test_*.py'"""

import dataclasses
import json
import shutil
import subprocess
import sys
import tempfile
import unittest
from pathlib import Path

sys.dont_write_bytecode = True
sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness  # noqa: E402
from harness import VIRTIO_GPU, Break, Disk, Entry, Scenario, ScenarioFailure, Variant  # noqa: E402


def scenario(name, devices=(), breaks=None, order=50):
    return Scenario(name=name, title=name, guest="", check=lambda r: None, order=order, devices=devices,
                    breaks=breaks or {})


class PlanBoots(unittest.TestCase):
    def test_everything_shares_one_boot_in_order(self):
        a = scenario("a", (VIRTIO_GPU,), order=80)
        b = scenario("b")
        c = scenario("c", (VIRTIO_GPU,), order=10)
        boots = harness.plan_boots([Variant(a), Variant(b), Variant(c)])
        self.assertEqual(len(boots), 1)
        self.assertEqual([v.scenario.name for v in boots[0].variants], ["c", "b", "a"])
        self.assertEqual(boots[0].devices(), [VIRTIO_GPU])

    def test_a_break_without_the_gpu_gets_a_boot_without_it(self):
        gpu_off = {"no_gpu": Break("no GPU", without=(VIRTIO_GPU,))}
        d = scenario("d", (VIRTIO_GPU,), gpu_off)
        r = scenario("r", (VIRTIO_GPU,), {"x": Break("x")})
        disk = scenario("disk", (), {"y": Break("y")})
        boots = harness.plan_boots([Variant(d, "no_gpu"), Variant(disk, "y"), Variant(r, "x")])
        self.assertEqual([[v.label for v in b.variants] for b in boots],
                         [["d[break=no_gpu]", "disk[break=y]"], ["r[break=x]"]])
        self.assertEqual(boots[0].devices(), [])
        self.assertEqual(boots[1].devices(), [VIRTIO_GPU])

    def test_one_scenario_at_most_once_per_boot(self):
        s = scenario("s", breaks={"p": Break("p"), "q": Break("q")})
        boots = harness.plan_boots([Variant(s, "p"), Variant(s, "q")])
        self.assertEqual(len(boots), 2)

    def test_a_repeatable_scenario_without_disks_runs_its_breaks_in_one_boot(self):
        breaks = {"p": Break("p"), "q": Break("q")}
        s = dataclasses.replace(scenario("s", breaks=breaks), repeatable=True)
        boots = harness.plan_boots([Variant(s, "q"), Variant(s, "p")])
        self.assertEqual([[v.key for v in b.variants] for b in boots], [["s+p", "s+q"]])
        disk = Disk("d", "12345678-1234-4234-8234-123456789abc", "D")
        with_disk = dataclasses.replace(s, disks=(disk,))
        self.assertEqual(len(harness.plan_boots([Variant(with_disk, "p"), Variant(with_disk, "q")])), 2)


class Reports(unittest.TestCase):
    def setUp(self):
        self.dir = Path(tempfile.mkdtemp())
        report = {
            "summary": {"ok": False},
            "findings": [
                {"probe": "identity", "check": "group_gid", "subject": "group render", "status": "fail",
                 "message": "group render has gid 108, expected 110", "evidence": {"gid": 108},
                 "remedy": {"kind": "nixos", "text": "users.groups.render.gid = lib.mkForce 110;"}},
            ],
        }
        (self.dir / "before.json").write_text(json.dumps(report))
        (self.dir / "before.rc").write_text("1\n")
        (self.dir / "other.json").write_text(json.dumps({"summary": {"ok": True}, "findings": []}))
        (self.dir / "other.rc").write_text("0\n")
        self.r = harness.Results(scenario("s"), self.dir)

    def tearDown(self):
        shutil.rmtree(self.dir)

    def test_one_checks_status_and_remedy(self):
        rep = self.r.report("before")
        rep.one("group_gid", "group render", "fail", remedy_kind="nixos",
                remedy="users.groups.render.gid = lib.mkForce 110;")
        with self.assertRaisesRegex(ScenarioFailure, "status is fail, expected pass"):
            rep.one("group_gid", "group render", "pass")
        with self.assertRaisesRegex(ScenarioFailure, "expected one stale_gid finding"):
            rep.one("stale_gid", "/dev/dri/renderD128", "fail")
        with self.assertRaisesRegex(ScenarioFailure, "does not contain 'mkForce 303'"):
            rep.one("group_gid", "group render", "fail", remedy_contains=["mkForce 303"])
        with self.assertRaisesRegex(ScenarioFailure, "expected a passing check"):
            rep.ok()

    def test_missing_record_and_substitution(self):
        with self.assertRaisesRegex(ScenarioFailure, "fixed.json was not written"):
            self.r.report("fixed")
        self.assertEqual(self.r.substituted({"before": "other"}).report("before").rc, 0)

    def test_whether_the_verifier_reads_udev_comes_from_its_version(self):
        head = "homelab-verify 0.1.0 (20bfb7599a45 2026-11-25)\ntarget: x86_64-unknown-linux-gnu\n"
        for record, features, udev in (("native", "drm nvml udev vaapi", True), ("portable", "drm nvml vaapi", False)):
            (self.dir / f"{record}.out").write_text(f"{head}features: {features}\n")
            self.assertEqual(self.r.verifier_reads_udev(record), udev)
        (self.dir / "old.out").write_text("homelab-verify 0.1.0\n")
        with self.assertRaisesRegex(ScenarioFailure, "lists no features"):
            self.r.verifier_reads_udev("old")


class Disks(unittest.TestCase):
    def test_uuid_label_and_owners(self):
        tmp = Path(tempfile.mkdtemp())
        try:
            disk = Disk("t", "12345678-1234-4234-8234-123456789abc", "Media", (
                Entry("a/b/file", 1000, 110, 0o640, content="x"),
                Entry("a/link", 100000, 100001, kind="symlink", content="b/file"),
            ))
            img = harness.make_disk(disk, tmp)
            probe = subprocess.run(["blkid", "-p", "-o", "export", str(img)], capture_output=True, text=True).stdout
            self.assertIn("UUID=12345678-1234-4234-8234-123456789abc", probe)
            self.assertIn("LABEL=Media", probe)
            self.assertIn("TYPE=ext4", probe)
            ls = subprocess.run(["debugfs", "-R", "ls -l /a", str(img)], capture_output=True, text=True).stdout
            self.assertRegex(ls, r"120777 \(7\)\s+100000\s+100001 .* link")
            stat = subprocess.run(["debugfs", "-R", "stat /a/b/file", str(img)], capture_output=True, text=True).stdout
            self.assertRegex(stat, r"Mode:\s+0640")
            self.assertRegex(stat, r"User:\s+1000\s+Group:\s+110")
        finally:
            shutil.rmtree(tmp)

    def test_gpt_partition(self):
        tmp = Path(tempfile.mkdtemp())
        try:
            part = harness.Partition("Plex Storage", "0e6b0f61-aaaa-4bbb-8ccc-123456789abc")
            disk = Disk("p", "7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10", "PlexStorage",
                        (Entry("f", 1000, 110),), partition=part)
            img = harness.make_disk(disk, tmp)
            table = json.loads(subprocess.run(["sfdisk", "-J", str(img)], capture_output=True, text=True).stdout)
            p = table["partitiontable"]["partitions"][0]
            self.assertEqual((p["start"], p["uuid"].lower(), p["name"]), (2048, part.uuid, "Plex Storage"))
            self.assertEqual(table["partitiontable"]["id"].lower(), part.table_uuid)
            probe = subprocess.run(["blkid", "-p", "-o", "export", "-O", str(1024 * 1024), str(img)],
                                   capture_output=True, text=True).stdout
            self.assertIn("UUID=7c1f0b7e-2d4a-4f61-9a53-3c5f2d1e9b10", probe)
            stat = subprocess.run(["debugfs", "-R", "stat /f", f"{img}?offset={1024 * 1024}"],
                                  capture_output=True, text=True).stdout
            self.assertRegex(stat, r"User:\s+1000\s+Group:\s+110")
        finally:
            shutil.rmtree(tmp)

    def test_names_with_spaces_get_their_owners(self):
        tmp = Path(tempfile.mkdtemp())
        try:
            disk = Disk("s", "12345678-1234-4234-8234-123456789abd", "Plex Drive", (
                Entry("TV Shows/Alien (1979).mkv", 100000, 110, 0o600, content="x"),
            ))
            img = harness.make_disk(disk, tmp)
            stat = subprocess.run(["debugfs", "-R", 'stat "/TV Shows/Alien (1979).mkv"', str(img)],
                                  capture_output=True, text=True).stdout
            self.assertRegex(stat, r"User:\s+100000\s+Group:\s+110")
            self.assertRegex(stat, r"Mode:\s+0600")
            with self.assertRaisesRegex(ValueError, "debugfs cannot name it"):
                harness.make_disk(Disk("q", "12345678-1234-4234-8234-123456789abe", "Q", (Entry('a"b'),)), tmp)
        finally:
            shutil.rmtree(tmp)

    def test_bad_uuid_is_an_error_with_the_tool_output(self):
        tmp = Path(tempfile.mkdtemp())
        try:
            with self.assertRaisesRegex(RuntimeError, "mkfs.ext4 .* failed"):
                harness.make_disk(Disk("bad", "not-a-uuid", "X"), tmp)
        finally:
            shutil.rmtree(tmp)


class GuestScript(unittest.TestCase):
    def test_verifier_copied_to_tmpfs_and_test_binaries_exported(self):
        env = harness.Env(verifier=Path("/x/homelab-verify"), kernel=Path("/boot/k"), vng="vng", workdir=Path("/w"),
                          timeout=1, cargo_tests={"mount_oracle": Path("/x/deps/mount_oracle-abc")})
        text = harness.guest_script(env, harness.Boot(1, [Variant(scenario("a"))]), Path("/s"))
        lines = text.splitlines()
        info = lines.index('boot_info > "$SHARE/boot.json"')
        copy = next(i for i, l in enumerate(lines) if l.startswith("mkdir -p /run/vm-fixtures/bin && cp"))
        self.assertLess(info, copy)  # the boot deadline is met before the copy, which can take seconds
        self.assertIn("export HV=/run/vm-fixtures/bin/homelab-verify", lines[copy])
        self.assertIn("export CARGO_TEST_mount_oracle=/x/deps/mount_oracle-abc", lines)
        self.assertLess(copy, lines.index("run_scenario a ''"))


class Tools(unittest.TestCase):
    def test_explicit_kernel_that_does_not_exist(self):
        with self.assertRaisesRegex(RuntimeError, "does not exist"):
            harness.find_kernel("/nonexistent/vmlinuz")

    def test_scenarios_load_with_unique_names(self):
        names = [s.name for s in harness.load_scenarios()]
        self.assertIn("render_node", names)
        self.assertEqual(len(names), len(set(names)))

    def test_the_readme_lists_every_scenario_and_its_breaks(self):
        readme = (harness.HERE / "README.md").read_text()
        rows = {l.split("|")[1].strip(): l for l in readme.splitlines() if l.startswith("| `")}
        for s in harness.load_scenarios():
            row = rows.get(f"`{s.name}`")
            self.assertIsNotNone(row, f"vm-fixtures/README.md has no row for the scenario {s.name}")
            for b in s.breaks:
                self.assertIn(f"`{b}`", row, f"vm-fixtures/README.md: {s.name}'s row does not name the break {b}")


if __name__ == "__main__":
    unittest.main()
