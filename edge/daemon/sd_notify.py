"""The systemd notify protocol without the ``systemd`` package: one datagram to $NOTIFY_SOCKET.

READY=1 once the service is up, WATCHDOG=1 to show it is alive, STATUS=... for
``systemctl status``, RELOADING=1 / STOPPING=1 around reloads and shutdown. Outside systemd
(no $NOTIFY_SOCKET) every call does nothing.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Mapping

log = logging.getLogger(__name__)


class Notifier:
    """Sends notify messages to the socket systemd gave this process."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        environ = os.environ if environ is None else environ
        address = environ.get("NOTIFY_SOCKET", "")
        self.address = "\0" + address[1:] if address.startswith("@") else address
        usec = environ.get("WATCHDOG_USEC", "")
        pid = environ.get("WATCHDOG_PID", "")
        watchdog_for_us = usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid()))
        self.watchdog_interval_s = int(usec) / 1e6 / 2 if watchdog_for_us else None  # ping twice per timeout
        self._socket: socket.socket | None = None
        self._last_watchdog = 0.0

    @property
    def enabled(self) -> bool:
        """Whether a notify socket was given."""
        return bool(self.address)

    def send(self, message: str) -> bool:
        """Send one datagram; False (logged as a warning) when it cannot be delivered, also when the
        socket's queue is full because nobody reads it (the message is dropped, the caller goes on)."""
        if not self.address:
            return False
        try:
            if self._socket is None:
                # non-blocking: a manager that stops reading must not stall the daemon's main loop
                self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC | socket.SOCK_NONBLOCK)
            self._socket.sendto(message.encode(), self.address)
            return True
        except OSError as error:
            log.warning("sd_notify %s failed: %s", message.split("=", 1)[0], error)
            return False

    def ready(self, status: str = "") -> bool:
        """The service is up."""
        return self.send("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def status(self, text: str) -> bool:
        """One line for ``systemctl status``."""
        return self.send(f"STATUS={text}")

    def watchdog(self, now: float | None = None) -> bool:
        """Ping the watchdog, at most twice per WATCHDOG_USEC; True when a ping was sent."""
        if self.watchdog_interval_s is None:
            return False
        now = time.monotonic() if now is None else now
        if now - self._last_watchdog < self.watchdog_interval_s:
            return False
        self._last_watchdog = now
        return self.send("WATCHDOG=1")

    def reloading(self) -> bool:
        """A reload has started (READY=1 follows when it is done)."""
        return self.send(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> bool:
        """Shutdown has started."""
        return self.send("STOPPING=1")

    def close(self) -> None:
        """Release the socket."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
