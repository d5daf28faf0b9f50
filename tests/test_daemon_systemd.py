"""The notify protocol on a real unix socket, and the unit file checked by systemd-analyze."""
from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

from edge.daemon.sd_notify import Notifier
from systemd_analyze import exposure, needs_systemd_analyze, verify_problems

UNIT = Path(__file__).resolve().parent.parent / "systemd" / "edge-facerec.service"
MAX_EXPOSURE = 2.5


def receive(sock: socket.socket) -> str:
    sock.settimeout(2)
    return sock.recv(4096).decode()


def test_ready_and_watchdog_reach_a_path_socket(tmp_path):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        notifier = Notifier({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"})
        assert notifier.ready("camera running")
        assert receive(sock) == "READY=1\nSTATUS=camera running"
        assert notifier.watchdog(now=100.0) and receive(sock) == "WATCHDOG=1"
        assert not notifier.watchdog(now=100.5)  # at most twice per WATCHDOG_USEC
        assert notifier.watchdog(now=101.0) and receive(sock) == "WATCHDOG=1"
        notifier.close()


def test_a_notify_socket_nobody_reads_does_not_block_the_daemon(tmp_path, caplog):
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))  # bound, never read: its queue fills up
        notifier = Notifier({"NOTIFY_SOCKET": str(path)})
        results = [notifier.status(f"frame {i}") for i in range(5000)]  # returns: a blocking send would hang here
        assert results[0] is True and results[-1] is False
        assert "sd_notify STATUS failed" in caplog.text
        assert receive(listener) == "STATUS=frame 0"


def test_an_abstract_socket_is_addressed_with_a_leading_at():
    name = f"edge-facerec-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        notifier = Notifier({"NOTIFY_SOCKET": "@" + name})
        assert notifier.stopping() and receive(sock) == "STOPPING=1"
        notifier.close()


def test_without_systemd_nothing_is_sent_and_the_watchdog_is_off():
    notifier = Notifier({})
    assert not notifier.enabled and not notifier.ready() and notifier.watchdog_interval_s is None
    assert Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_interval_s is None


def installed_unit(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this environment's edge-facerec (verify checks it exists)."""
    executable = Path(sys.executable).parent / "edge-facerec"
    if not executable.exists():
        pytest.skip(f"{executable} not installed (pip install -e .)")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/edge-facerec/venv/bin/edge-facerec", str(executable)))
    return unit


@needs_systemd_analyze
def test_the_unit_verifies_clean(tmp_path):
    assert verify_problems(installed_unit(tmp_path)) == ""


@needs_systemd_analyze
def test_the_unit_exposure_is_low(tmp_path):
    assert exposure(installed_unit(tmp_path)) <= MAX_EXPOSURE


def test_the_unit_has_what_the_daemon_relies_on():
    text = UNIT.read_text()
    for line in ("Type=notify", "WatchdogSec=", "Restart=on-failure", "ExecReload=/bin/kill -HUP $MAINPID",
                 "User=edge-facerec", "SupplementaryGroups=video", "ProtectSystem=strict",
                 "StateDirectory=edge-facerec", "DevicePolicy=closed", "DeviceAllow=char-video4linux rw"):
        assert line in text
