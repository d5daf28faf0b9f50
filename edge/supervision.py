"""No thread dies silently: the boundary of each long-lived thread, retries of a failed unit of work,
and the process's health that both report to.

- :func:`start_thread` runs a thread's body inside a boundary: an error that escapes it is logged
  with its traceback and marks that part ``stopped`` in :class:`Health`. The daemon then stops
  pinging systemd's watchdog and says ``failed: ...`` in its status, so systemd restarts it.
- :class:`Retry` is for the loop inside such a thread: a unit of work that failed (a frame, a
  round of the MQTT sender) is logged once with its traceback (the same error again is counted,
  not logged), the part is ``degraded`` with the reason, and the loop waits 1, 2, 4 ... seconds
  (up to a maximum) before the next attempt; the first success after failures is logged too.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable


def describe(error: BaseException) -> str:
    """One line naming an error: ``OperationalError: database or disk is full``."""
    text = " ".join(str(error).split())
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


class Health:
    """What each supervised part of the process is doing: fine, degraded (retrying) or stopped. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._degraded: dict[str, str] = {}
        self._stopped: dict[str, str] = {}

    def degraded(self, part: str, reason: str) -> None:
        """``part`` is failing and retrying."""
        with self._lock:
            self._degraded[part] = reason

    def recovered(self, part: str) -> None:
        """``part`` works again."""
        with self._lock:
            self._degraded.pop(part, None)

    def stopped(self, part: str, reason: str) -> None:
        """``part`` cannot carry on: the process is no longer healthy."""
        with self._lock:
            self._stopped[part] = reason

    @property
    def alive(self) -> bool:
        """False once any part has stopped."""
        with self._lock:
            return not self._stopped

    @property
    def state(self) -> str:
        """``ok``, ``degraded: <part>: <reason>; ...`` or ``failed: <part> stopped (<reason>); ...``."""
        with self._lock:
            if self._stopped:
                return "failed: " + "; ".join(f"{part} stopped ({why})" for part, why in sorted(self._stopped.items()))
            if self._degraded:
                return "degraded: " + "; ".join(f"{part}: {why}" for part, why in sorted(self._degraded.items()))
            return "ok"


def start_thread(name: str, body: Callable[[], None], health: Health, log: logging.Logger) -> threading.Thread:
    """Run ``body`` on a daemon thread ``name``; whatever escapes it is logged and stops ``name`` in ``health``."""

    def boundary() -> None:
        try:
            body()
        except BaseException as error:  # the thread's last frame: nothing may leave it unreported
            log.critical("thread %s stopped by an unexpected error: %s", name, describe(error), exc_info=error)
            health.stopped(name, describe(error))

    thread = threading.Thread(target=boundary, name=name, daemon=True)
    thread.start()
    return thread


class Retry:
    """Failures of one part's unit of work: logged once, counted, reported to ``health``, retried with backoff."""

    def __init__(self, part: str, health: Health, log: logging.Logger, first_delay_s: float = 1.0,
                 max_delay_s: float = 30.0) -> None:
        self.part = part
        self.health = health
        self.log = log
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self.failures = 0  # in a row
        self.total = 0  # since start
        self._logged: str | None = None

    def failed(self, error: BaseException, what: str) -> float:
        """Record that ``what`` (e.g. ``frame 812``) failed with ``error``; the seconds to wait before the next try."""
        self.failures += 1
        self.total += 1
        delay = min(self.first_delay_s * 2 ** (self.failures - 1), self.max_delay_s)
        text = describe(error)
        if text != self._logged:
            self.log.error("%s: %s failed (%s); carrying on, next try in %g s", self.part, what, text, delay,
                           exc_info=error)
            self._logged = text
        else:
            self.log.debug("%s: %s failed again (%s), %d in a row", self.part, what, text, self.failures)
        self.health.degraded(self.part, f"{text} ({self.failures} failure(s) in a row, next try in {delay:g} s)")
        return delay

    def succeeded(self) -> None:
        """The unit of work went through: clear the failure streak (logged when there was one)."""
        if self.failures:
            self.log.info("%s: working again after %d failure(s) (last: %s)", self.part, self.failures, self._logged)
            self.health.recovered(self.part)
        self.failures = 0
        self._logged = None
