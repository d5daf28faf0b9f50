"""systemd-analyze checks shared by the unit tests (verify clean, exposure score)."""
from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

needs_systemd_analyze = pytest.mark.skipif(shutil.which("systemd-analyze") is None,
                                           reason="systemd-analyze is not installed (sudo apt install systemd)")


def verify_problems(unit: Path) -> str:
    """What `systemd-analyze verify` says about ``unit`` (empty when it is clean)."""
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    return (result.stderr.strip() + ("" if result.returncode == 0 else f"\nexit status {result.returncode}")).strip()


def exposure(unit: Path) -> float:
    """The overall exposure level `systemd-analyze security --offline=true` gives ``unit``."""
    result = subprocess.run(["systemd-analyze", "security", "--offline=true", str(unit)],
                            capture_output=True, text=True, timeout=60)
    found = re.search(r"Overall exposure level for \S+: ([0-9.]+)", result.stdout)
    assert found, result.stdout[-500:] + result.stderr
    return float(found.group(1))
