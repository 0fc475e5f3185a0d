# Helpers shared by the VM tests' scripts (prepended to each testScript by
# nixos-tests/default.nix). They read what homelab-probe-check.service left: its JSON report
# (docs/report.md) and its journal.
import json

REPORT = "/var/lib/homelab-probe/report.json"
UNIT = "homelab-probe-check.service"


def wait_for_check(m):
    """Waits for the boot's run of the check to finish; returns the unit's Result
    ("success", or "exit-code" when a check failed)."""
    # multi-user.target is ordered after the units it wants (systemd.target(5)), so once it
    # is active the check has run; the unit has no RemainAfterExit, so it is inactive or
    # failed now, never active.
    m.wait_for_unit("multi-user.target")
    m.wait_until_succeeds(f'test "$(systemctl show -P ActiveState {UNIT})" != activating')
    return m.succeed(f"systemctl show -P Result {UNIT}").strip()


def probe_report(m):
    """The JSON report of the last run."""
    return json.loads(m.succeed(f"cat {REPORT}"))


def findings(report, **match):
    """The findings whose fields equal every keyword given (probe=, check=, subject=, status=)."""
    return [f for f in report["findings"] if all(f.get(k) == v for k, v in match.items())]


def one(report, **match):
    """The single finding that matches; fails the test with the report's findings otherwise."""
    found = findings(report, **match)
    assert len(found) == 1, f"expected one finding {match}, got {found} in {report['findings']}"
    return found[0]


def journal(m):
    """Everything the check printed during this boot (the human report, NO_COLOR)."""
    return m.succeed(f"journalctl -b --no-pager -o cat -u {UNIT}")


def check_runs(m):
    """How many times the check ran during this boot (one summary line per run)."""
    return sum(1 for line in journal(m).splitlines() if line.startswith("summary: "))


def checks(report, subject):
    """{check: status} of the findings about `subject` (a mount point, a drift root): each
    check decides once per subject, so the dict is the whole verdict on it."""
    found = findings(report, subject=subject)
    verdict = {f["check"]: f["status"] for f in found}
    assert len(verdict) == len(found), f"a check decided twice about {subject}: {found}"
    return verdict


def failing(report):
    """(check, subject, message) of every failed finding, for assertion messages."""
    return [(f["check"], f["subject"], f["message"]) for f in report["findings"] if f["status"] == "fail"]
