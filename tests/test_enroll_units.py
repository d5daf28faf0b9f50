"""The USB-stick units: systemd-analyze verifies the enroll unit; the udev rule only asks systemd for it."""
from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from systemd_analyze import exposure, needs_systemd_analyze, verify_problems

SYSTEMD = Path(__file__).resolve().parent.parent / "systemd"
UNIT = SYSTEMD / "edge-enroll@.service"
RULE = SYSTEMD / "99-edge-facerec-enroll.rules"
INSTALLED = "/opt/edge-facerec/venv/bin/edge-enroll"



def instance(tmp_path: Path) -> Path:
    """The template, with ExecStart at this environment's edge-enroll (verify checks that it exists),
    and an instance of it for the partition sdb1."""
    executable = Path(sys.executable).parent / "edge-enroll"
    if not executable.exists():
        pytest.skip(f"{executable} not installed (pip install -e .)")
    text = UNIT.read_text()
    assert INSTALLED in text
    (tmp_path / UNIT.name).write_text(text.replace(INSTALLED, str(executable)))
    (tmp_path / "edge-enroll@sdb1.service").symlink_to(UNIT.name)
    return tmp_path / "edge-enroll@sdb1.service"


@needs_systemd_analyze
def test_the_enroll_unit_verifies_clean(tmp_path):
    assert verify_problems(instance(tmp_path)) == ""


@needs_systemd_analyze
def test_the_enroll_unit_exposure_is_low(tmp_path):
    assert exposure(instance(tmp_path)) <= 2.0


def test_the_unit_mounts_read_only_in_private_and_runs_as_the_daemon_user():
    text = UNIT.read_text()
    mount = re.search(r"^ExecStartPre=!/usr/bin/mount -o (\S+) /dev/%i /run/edge-enroll/%i$", text, re.M)
    assert mount and set(mount.group(1).split(",")) == {"ro", "nosuid", "nodev", "noexec"}
    for line in ("PrivateMounts=yes", "User=edge-facerec", "StateDirectory=edge-facerec", "BindsTo=dev-%i.device",
                 "Type=oneshot", "NoNewPrivileges=yes", "ProtectSystem=strict"):
        assert re.search(f"^{re.escape(line)}$", text, re.M), line
    exec_start = re.search(r"^ExecStart=(.*)$", text, re.M).group(1).split()
    assert exec_start[0] == INSTALLED and "--notify-daemon" in exec_start and exec_start[-1] == "/run/edge-enroll/%i"


def test_the_udev_rule_wants_the_unit_for_a_stick_labelled_faces_and_mounts_nothing():
    rules = [line for line in RULE.read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert len(rules) == 1
    rule = rules[0]
    assert 'ACTION=="add"' in rule and 'SUBSYSTEM=="block"' in rule and 'ENV{ID_FS_LABEL}=="FACES"' in rule
    assert 'ENV{SYSTEMD_WANTS}+="edge-enroll@%k.service"' in rule and 'TAG+="systemd"' in rule
    assert "RUN" not in rule and "mount" not in rule
