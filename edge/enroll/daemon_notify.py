"""Telling the running daemon to reload its gallery: SIGHUP to its main process.

The process is found through a pidfile, or by asking systemd for the main PID of its unit
(``systemctl show --property=MainPID``, which needs no privileges); the signal is then sent
directly, so an unprivileged ``edge-enroll`` running as the daemon's user can deliver it.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
from pathlib import Path

from ..errors import EdgeError

DEFAULT_UNIT = "edge-facerec.service"


class NotifyError(EdgeError):
    """The daemon could not be told to reload."""


def pid_from_file(pidfile: Path) -> int:
    """The process id written in ``pidfile``."""
    try:
        text = Path(pidfile).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return 0
    except (OSError, UnicodeDecodeError) as error:
        raise NotifyError(f"{pidfile}: cannot read pidfile ({getattr(error, 'strerror', None) or error})") from None
    if not text.isdigit() or int(text) <= 1:
        raise NotifyError(f"{pidfile}: not a process id: {text[:20]!r}")
    return int(text)


def pid_from_systemd(unit: str) -> int:
    """The main PID of a systemd ``unit`` (0 when it is not running)."""
    systemctl = shutil.which("systemctl")
    if systemctl is None:
        raise NotifyError("systemctl not found: pass --daemon-pidfile")
    result = subprocess.run([systemctl, "show", "--property=MainPID", "--value", unit],
                            capture_output=True, text=True, timeout=15, check=False)
    value = result.stdout.strip()
    if result.returncode != 0 or not value.isdigit():
        reason = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else f"exit status {result.returncode}"
        raise NotifyError(f"cannot ask systemd for {unit}'s process ({reason})")
    return int(value)


def notify_daemon(pidfile: Path | None = None, unit: str = DEFAULT_UNIT) -> str:
    """Send SIGHUP to the daemon; return what happened in words (not running is not an error)."""
    pid = pid_from_file(pidfile) if pidfile is not None else pid_from_systemd(unit)
    where = str(pidfile) if pidfile is not None else unit
    if pid == 0:
        return f"daemon not running ({where}); it reads the new gallery when it starts"
    try:
        os.kill(pid, signal.SIGHUP)
    except ProcessLookupError:
        return f"daemon not running (no process {pid} from {where}); it reads the new gallery when it starts"
    except PermissionError:
        raise NotifyError(f"not allowed to signal process {pid} from {where}: run as the daemon's user") from None
    return f"sent SIGHUP to the daemon (process {pid} from {where}) to reload the gallery"
