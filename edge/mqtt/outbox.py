"""The durable outbox: events on disk until the broker has acknowledged them.

An event is committed to a small SQLite file before it is handed to the MQTT client and
deleted only when its PUBACK arrives, so events produced while the broker is down, or
before a crash or a power cut, are sent after the reconnect or the restart, oldest first.

Durability: WAL journal with ``synchronous=FULL``. In WAL mode, NORMAL only syncs at
checkpoints, so a power cut can roll back the last commits, i.e. lose events the daemon
believed stored; FULL syncs the WAL on every commit. Events are rare (a few per minute at
a door), so one fsync each is cheap (docs/mqtt.md has the measured cost per event).

Bounds: at most ``max_events`` rows and none older than ``max_age_s``; what a bound drops
is the oldest, is logged, and is counted in the file itself so the count survives restarts.
The file, and SQLite's -wal/-shm files next to it, are owner-only (0600).
"""
from __future__ import annotations

import logging
import math
import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from ..errors import EdgeError

log = logging.getLogger("edge-facerec.outbox")
EXPIRE_EVERY_S = 1.0  # pending() looks for expired rows at most this often (add() always does)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    queued REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


class OutboxError(EdgeError):
    """The outbox file cannot be opened or written."""


@dataclass(frozen=True)
class QueuedMessage:
    """One stored event, in the order it was queued."""

    seq: int
    event_id: str
    topic: str
    payload: bytes


@dataclass(frozen=True)
class OutboxStats:
    """Figures for the status message."""

    pending: int
    dropped_full: int  # dropped because the outbox held max_events
    dropped_expired: int  # dropped because older than max_age_s

    @property
    def dropped(self) -> int:
        """All events dropped at a bound, since the file was created."""
        return self.dropped_full + self.dropped_expired


class Outbox:
    """A bounded, ordered, crash-safe queue of messages in one SQLite file; thread-safe."""

    def __init__(self, path: Path, max_events: int, max_age_s: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.max_age_s = max_age_s
        self._clock = clock
        self._lock = threading.Lock()
        self._expired_at = -math.inf  # when pending() last dropped expired rows
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as error:
            raise OutboxError(f"{self.path}: cannot open the MQTT outbox ({error})") from None
        self._restrict_permissions()
        self.dropped = self.stats().dropped  # kept current by the bounds, for a cheap check per event

    def _restrict_permissions(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            candidate = Path(f"{self.path}{suffix}")
            if candidate.exists():
                os.chmod(candidate, 0o600)

    def add(self, event_id: str, topic: str, payload: bytes) -> bool:
        """Store one message durably (committed and synced on return); False if its id is already queued."""
        now = self._clock()
        with self._lock:
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    added = self._db.execute(
                        "INSERT OR IGNORE INTO events (event_id, topic, payload, queued) VALUES (?, ?, ?, ?)",
                        (event_id, topic, payload, now)).rowcount == 1
                    self._expire(now)
                    self._trim()
            except sqlite3.Error as error:
                raise OutboxError(f"{self.path}: cannot store event {event_id} ({error})") from None
        return added

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[QueuedMessage]:
        """Up to ``limit`` stored messages with seq above ``after_seq``, oldest first (expired ones dropped)."""
        now = self._clock()
        with self._lock:
            if abs(now - self._expired_at) >= EXPIRE_EVERY_S:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._expire(now)
                self._expired_at = now
            rows = self._db.execute("SELECT seq, event_id, topic, payload FROM events WHERE seq > ? ORDER BY seq "
                                    "LIMIT ?", (after_seq, limit)).fetchall()
        return [QueuedMessage(seq, event_id, topic, bytes(payload)) for seq, event_id, topic, payload in rows]

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget messages the broker acknowledged, in one transaction (a seq already dropped is skipped)."""
        with self._lock:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq in seqs])

    def stats(self) -> OutboxStats:
        """Pending and dropped counts."""
        with self._lock:
            pending = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
            counters = dict(self._db.execute("SELECT name, value FROM counters").fetchall())
        return OutboxStats(pending, counters.get("dropped_full", 0), counters.get("dropped_expired", 0))

    def close(self) -> None:
        """Checkpoint and close the file."""
        with self._lock:
            self._db.close()

    def _expire(self, now: float) -> None:
        cutoff = now - self.max_age_s
        rows = self._db.execute("SELECT seq, event_id, queued FROM events WHERE queued < ? ORDER BY seq",
                                (cutoff,)).fetchall()
        if rows:
            self._drop(rows, "dropped_expired", f"older than outbox_max_age_s ({self.max_age_s:g} s)")

    def _trim(self) -> None:
        excess = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0] - self.max_events
        if excess > 0:
            rows = self._db.execute("SELECT seq, event_id, queued FROM events ORDER BY seq LIMIT ?",
                                    (excess,)).fetchall()
            self._drop(rows, "dropped_full", f"the outbox is full (outbox_max_events {self.max_events})")

    def _drop(self, rows: list[tuple[int, str, float]], counter: str, reason: str) -> None:
        self._db.executemany("DELETE FROM events WHERE seq = ?", [(seq,) for seq, _, _ in rows])
        self._db.execute("INSERT INTO counters (name, value) VALUES (?, ?) "
                         "ON CONFLICT(name) DO UPDATE SET value = value + excluded.value", (counter, len(rows)))
        self.dropped += len(rows)
        first = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(rows[0][2]))
        log.warning("MQTT outbox: dropped %d undelivered event(s) because %s; the oldest was %s queued %s",
                    len(rows), reason, rows[0][1], first)
