"""The durable outbox: events on disk until the broker has acknowledged them, and never a reason
for delivery to stop.

An event is committed to a small SQLite file (edge/mqtt/outbox_file.py) before it is handed to
the MQTT client and deleted only when its PUBACK arrives, so events produced while the broker is
down, or before a crash or a power cut, are sent after the reconnect or the restart, oldest first.

Durability: WAL journal with ``synchronous=FULL``. In WAL mode, NORMAL only syncs at
checkpoints, so a power cut can roll back the last commits, i.e. lose events the daemon
believed stored; FULL syncs the WAL on every commit. Events are rare (a few per minute at
a door), so one fsync each is cheap (docs/mqtt.md has the measured cost per event).

Bounds: at most ``max_events`` rows and none older than ``max_age_s``; what a bound drops
is the oldest, is logged, and is counted in the file itself so the count survives restarts.
The file, and SQLite's -wal/-shm files next to it, are owner-only (0600).

When the file cannot be written (a full disk, an I/O error), events are kept in memory, at most
MEMORY_MAX_EVENTS / MEMORY_MAX_BYTES (beyond that the oldest are dropped and counted), still sent
in order, and written to the file as soon as it takes writes again; the trouble is logged once
and shown in the health (``mqtt-outbox``). Events in memory are lost if the process ends before
the disk has room. A file found damaged while running is moved aside like one found at start.
A message the broker cannot take is moved to the ``dead_letters`` table (:meth:`Outbox.dead_letter`)
so the messages behind it go on.
"""
from __future__ import annotations

import logging
import math
import sqlite3
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable

from ..supervision import Health, describe
from .outbox_file import OutboxError, error_kind, move_aside, open_outbox_file

__all__ = ["Outbox", "OutboxError", "OutboxStats", "QueuedMessage"]

log = logging.getLogger("edge-facerec.outbox")
EXPIRE_EVERY_S = 1.0  # pending() looks for expired rows at most this often (add() always does)
REOPEN_EVERY_S = 5.0  # a file that could not be opened is tried again at most this often
MEMORY_MAX_EVENTS = 1000  # events kept in memory while the file cannot be written ...
MEMORY_MAX_BYTES = 16 << 20  # ... and their payloads' total size (snapshots are ~50 kB)
DEAD_LETTERS_KEPT = 1000  # the newest dead letters are kept in the file for inspection
COUNTERS = ("dropped_full", "dropped_expired", "dropped_memory", "dead_lettered", "snapshots_dropped")


@dataclass(frozen=True)
class QueuedMessage:
    """One stored event, in the order it was queued."""

    seq: int
    event_id: str
    topic: str
    payload: bytes
    queued: float = 0.0  # when it was added, seconds since the epoch


@dataclass(frozen=True)
class OutboxStats:
    """Figures for the status message."""

    pending: int  # waiting for the broker's acknowledgement, on disk or in memory
    in_memory: int  # of those, kept in memory because the file could not be written
    dropped_full: int  # dropped because the outbox held max_events
    dropped_expired: int  # dropped because older than max_age_s
    dropped_memory: int  # dropped because the memory queue was full while the file could not be written
    dead_lettered: int  # moved to the dead letters: the broker could not take them
    snapshots_dropped: int  # events sent without their snapshot, which did not fit the broker's packet size

    @property
    def dropped(self) -> int:
        """All events dropped at a bound, since the file was created."""
        return self.dropped_full + self.dropped_expired + self.dropped_memory


class Outbox:
    """A bounded, ordered, crash-safe queue of messages in one SQLite file (in memory while the file
    cannot be written); thread-safe."""

    def __init__(self, path: Path, max_events: int, max_age_s: float,
                 clock: Callable[[], float] = time.time, health: Health | None = None) -> None:
        self.path = Path(path)
        self.max_events = max_events
        self.max_age_s = max_age_s
        self._clock = clock
        self._health = health or Health()
        self._lock = threading.Lock()
        self._expired_at = -math.inf  # when pending() last dropped expired rows
        self._db: sqlite3.Connection | None = None
        self._opened_at = -math.inf  # monotonic time of the last attempt to open the file
        self._memory: OrderedDict[int, QueuedMessage] = OrderedDict()  # seq -> message not yet on disk
        self._memory_bytes = 0
        self._acknowledged: set[int] = set()  # acknowledged but not yet deleted from the file
        self._counts = dict.fromkeys(COUNTERS, 0)
        self._on_disk = 0  # rows in the file, as last counted
        self._next_seq = 1
        self._trouble: str | None = None  # why the file cannot be written now (logged once)
        self._degraded = False  # reported to the health until the file takes writes and memory is empty
        try:
            self._connect()
        except (OSError, sqlite3.Error) as error:
            if error_kind(error) != "full":
                raise OutboxError(f"{self.path}: cannot open the MQTT outbox ({error})") from None
            self._failed(error, "open")

    # public ----------------------------------------------------------------------------------------------

    def add(self, event_id: str, topic: str, payload: bytes) -> bool:
        """Store one message durably (committed and synced on return; in memory while the file cannot be
        written); False if its id is already queued."""
        now = self._clock()
        with self._lock:
            if any(message.event_id == event_id for message in self._memory.values()):
                return False
            message = QueuedMessage(self._next_seq, event_id, topic, payload, now)
            self._next_seq += 1
            if self._writable():
                try:
                    self._flush_memory()
                    with self._db:
                        self._db.execute("BEGIN IMMEDIATE")
                        added = self._db.execute(
                            "INSERT OR IGNORE INTO events (seq, event_id, topic, payload, queued) VALUES (?, ?, ?, ?, ?)",
                            (message.seq, event_id, topic, payload, now)).rowcount == 1
                        self._expire(now)
                        self._trim()
                    self._on_disk += added
                    self._recovered()
                    return added
                except (OSError, sqlite3.Error) as error:
                    self._failed(error, f"store event {event_id}")
            self._keep_in_memory(message)
            return True

    def pending(self, after_seq: int = 0, limit: int = 100) -> list[QueuedMessage]:
        """Up to ``limit`` stored messages with seq above ``after_seq``, oldest first (expired ones dropped);
        OutboxError when the file cannot be read (messages in memory are newer: they wait)."""
        now = self._clock()
        with self._lock:
            rows: list[QueuedMessage] = []
            if self._writable():
                try:
                    self._flush_memory()
                    if abs(now - self._expired_at) >= EXPIRE_EVERY_S:
                        with self._db:
                            self._db.execute("BEGIN IMMEDIATE")
                            self._expire(now)
                        self._expired_at = now
                    self._recovered()
                except (OSError, sqlite3.Error) as error:
                    self._failed(error, "update")
            if self._db is not None:
                try:
                    rows = self._read(after_seq, limit + len(self._acknowledged))
                except (OSError, sqlite3.Error) as error:
                    self._failed(error, "read")
                    raise OutboxError(f"{self.path}: cannot read the MQTT outbox ({error})") from None
            self._expire_memory(now)
            rows += [message for seq, message in self._memory.items() if seq > after_seq]
        return sorted(rows, key=lambda message: message.seq)[:limit]

    def remove(self, seqs: Iterable[int]) -> None:
        """Forget messages the broker acknowledged (a seq already dropped is skipped). Rows the file cannot
        delete now are no longer pending and are deleted at a later call."""
        with self._lock:
            for seq in seqs:
                if self._memory_pop(seq) is None:
                    self._acknowledged.add(seq)
            self._delete_acknowledged()

    def dead_letter(self, message: QueuedMessage, reason: str) -> None:
        """Take a message the broker cannot take out of the queue, into the ``dead_letters`` table (logged,
        counted) so the messages behind it go on."""
        now = self._clock()
        with self._lock:
            self._count("dead_lettered")
            in_memory = self._memory_pop(message.seq) is not None
            log.error("MQTT outbox: event %s moved to the dead letters (%s); %d dead letter(s) so far",
                      message.event_id, reason, self._counts["dead_lettered"])
            if not self._writable():
                self._acknowledged.add(message.seq)
                return
            try:
                with self._db:
                    self._db.execute("BEGIN IMMEDIATE")
                    self._db.execute("INSERT OR REPLACE INTO dead_letters VALUES (?, ?, ?, ?, ?, ?, ?)",
                                     (message.seq, message.event_id, message.topic, message.payload, message.queued,
                                      now, reason))
                    self._db.execute("DELETE FROM dead_letters WHERE seq NOT IN (SELECT seq FROM dead_letters "
                                     "ORDER BY seq DESC LIMIT ?)", (DEAD_LETTERS_KEPT,))
                    if not in_memory:
                        self._on_disk -= self._db.execute("DELETE FROM events WHERE seq = ?",
                                                          (message.seq,)).rowcount
                    self._save_counters()
            except (OSError, sqlite3.Error) as error:
                self._failed(error, f"move event {message.event_id} to the dead letters")
                self._acknowledged.add(message.seq)

    def shrink(self, message: QueuedMessage, payload: bytes) -> None:
        """Keep ``message`` with a smaller ``payload`` (its snapshot dropped: counted as snapshots_dropped)."""
        with self._lock:
            self._count("snapshots_dropped")
            if message.seq in self._memory:
                self._memory[message.seq] = replace(self._memory[message.seq], payload=payload)
            elif self._writable():
                try:
                    with self._db:
                        self._db.execute("BEGIN IMMEDIATE")
                        self._db.execute("UPDATE events SET payload = ? WHERE seq = ?", (payload, message.seq))
                        self._save_counters()
                except (OSError, sqlite3.Error) as error:  # it is shrunk again when sent again
                    self._failed(error, f"shrink event {message.event_id}")

    def stats(self) -> OutboxStats:
        """Pending, in memory and dropped counts (the last known count of rows when the file cannot be read)."""
        with self._lock:
            if self._db is not None:
                try:
                    self._on_disk = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
                except (OSError, sqlite3.Error) as error:
                    self._failed(error, "count events")
            pending = max(0, self._on_disk - len(self._acknowledged)) + len(self._memory)
            return OutboxStats(pending, len(self._memory), **self._counts)

    @property
    def losses(self) -> tuple[int, ...]:
        """The counts of COUNTERS, cheaply (the publisher re-publishes its status when they change)."""
        return tuple(self._counts.values())

    def close(self) -> None:
        """Write what is in memory if the file takes it, then close the file."""
        with self._lock:
            if self._memory and self._writable():
                try:
                    self._flush_memory()
                except (OSError, sqlite3.Error) as error:
                    self._failed(error, "store the events kept in memory")
            if self._memory:
                log.error("MQTT outbox %s: %d event(s) kept in memory could not be written and are lost "
                          "(%s)", self.path, len(self._memory), self._trouble)
            if self._db is not None:
                self._db.close()
                self._db = None

    # the file --------------------------------------------------------------------------------------------

    def _connect(self) -> None:
        self._opened_at = time.monotonic()
        db = open_outbox_file(self.path)
        counters = dict(db.execute("SELECT name, value FROM counters").fetchall())
        for name in COUNTERS:  # a counter lost with a file moved aside keeps its value from memory
            self._counts[name] = max(self._counts[name], int(counters.get(name, 0)))
        highest = db.execute("SELECT MAX(m) FROM (SELECT MAX(seq) AS m FROM events UNION ALL SELECT MAX(seq) "
                             "FROM dead_letters UNION ALL SELECT seq FROM sqlite_sequence WHERE name = 'events')"
                             ).fetchone()[0]
        self._next_seq = max(self._next_seq, (highest or 0) + 1)
        self._on_disk = db.execute("SELECT COUNT(*) FROM events").fetchone()[0]
        self._acknowledged.clear()
        self._db = db

    def _read(self, after_seq: int, limit: int) -> list[QueuedMessage]:
        """Rows after ``after_seq``, not yet acknowledged; a row whose values are of the wrong types (a file
        written by hand, or damaged in a way the checks let through) goes to the dead letters."""
        messages, malformed = [], []
        for seq, event_id, topic, payload, queued in self._db.execute(
                "SELECT seq, event_id, topic, payload, queued FROM events WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit)).fetchall():
            payload = payload.encode() if isinstance(payload, str) else payload
            if seq in self._acknowledged:
                continue
            if (isinstance(event_id, str) and isinstance(topic, str) and topic and isinstance(payload, bytes)
                    and isinstance(queued, (int, float))):
                messages.append(QueuedMessage(seq, event_id, topic, payload, float(queued)))
            else:
                malformed.append(seq)
        if malformed:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                for seq in malformed:
                    self._db.execute("INSERT OR REPLACE INTO dead_letters SELECT seq, CAST(event_id AS TEXT), "
                                     "CAST(topic AS TEXT), CAST(payload AS BLOB), queued, ?, ? FROM events "
                                     "WHERE seq = ?", (self._clock(), "a malformed row", seq))
                    self._on_disk -= self._db.execute("DELETE FROM events WHERE seq = ?", (seq,)).rowcount
                self._count("dead_lettered", len(malformed))
                self._save_counters()
            log.error("MQTT outbox %s: %d malformed row(s) moved to the dead letters", self.path, len(malformed))
        return messages

    def _writable(self) -> bool:
        """Whether there is a file to write to (opening it again when it could not be, at most every few s)."""
        if self._db is None and time.monotonic() - self._opened_at >= REOPEN_EVERY_S:
            try:
                self._connect()
            except (OSError, sqlite3.Error) as error:
                self._failed(error, "open")
        return self._db is not None

    def _failed(self, error: BaseException, what: str) -> None:
        """A file operation failed: a damaged file is moved aside (and a new one opened), anything else
        leaves events in memory until the file takes writes again. Logged once per kind of trouble."""
        if error_kind(error) == "damaged" and self._db is not None:
            self._db.close()
            self._db = None
            try:
                move_aside(self.path, str(error))
                self._connect()
                return
            except (OSError, sqlite3.Error) as again:
                error = again
        text = describe(error)
        if text != self._trouble:
            log.error("MQTT outbox %s: cannot %s (%s); events are kept in memory (at most %d) until it can, "
                      "and are lost if the daemon stops before", self.path, what, text, MEMORY_MAX_EVENTS)
            self._trouble = text
        self._degrade()

    def _recovered(self) -> None:
        """The file took a write and nothing waits in memory: the trouble is over."""
        if self._degraded and not self._memory:
            if self._trouble is not None:
                log.warning("MQTT outbox %s: writable again (after: %s)", self.path, self._trouble)
            self._trouble = None
            self._degraded = False
            self._health.recovered("mqtt-outbox")

    def _flush_memory(self) -> None:
        """Write the messages kept in memory to the file, oldest first, in one transaction."""
        if not self._memory:
            return
        with self._db:
            self._db.execute("BEGIN IMMEDIATE")
            self._on_disk += sum(self._db.execute(
                "INSERT OR IGNORE INTO events (seq, event_id, topic, payload, queued) VALUES (?, ?, ?, ?, ?)",
                (m.seq, m.event_id, m.topic, m.payload, m.queued)).rowcount for m in self._memory.values())
            self._save_counters()
        log.warning("MQTT outbox %s: %d event(s) kept in memory are on disk now", self.path, len(self._memory))
        self._memory.clear()
        self._memory_bytes = 0

    def _delete_acknowledged(self) -> None:
        if not self._acknowledged or not self._writable():
            return
        try:
            with self._db:
                self._db.execute("BEGIN IMMEDIATE")
                self._on_disk -= sum(self._db.execute("DELETE FROM events WHERE seq = ?", (seq,)).rowcount
                                     for seq in self._acknowledged)
            self._acknowledged.clear()
        except (OSError, sqlite3.Error) as error:
            self._failed(error, "delete acknowledged events")

    def _save_counters(self) -> None:
        self._db.executemany("INSERT INTO counters (name, value) VALUES (?, ?) "
                             "ON CONFLICT(name) DO UPDATE SET value = excluded.value", list(self._counts.items()))

    def _count(self, counter: str, n: int = 1) -> None:
        self._counts[counter] += n

    # bounds ----------------------------------------------------------------------------------------------

    def _keep_in_memory(self, message: QueuedMessage) -> None:
        self._memory[message.seq] = message
        self._memory_bytes += len(message.payload)
        excess = []
        while len(self._memory) > 1 and (len(self._memory) > MEMORY_MAX_EVENTS or self._memory_bytes > MEMORY_MAX_BYTES):
            excess.append(self._memory_pop(next(iter(self._memory))))
        if excess:
            self._dropped(excess, "dropped_memory", f"the file cannot be written and memory holds at most "
                                                    f"{MEMORY_MAX_EVENTS} events / {MEMORY_MAX_BYTES >> 20} MiB")
        self._degrade()

    def _degrade(self) -> None:
        self._degraded = True
        self._health.degraded("mqtt-outbox", f"cannot write {self.path.name} ({self._trouble or 'reopened'}); "
                                             f"{len(self._memory)} event(s) in memory")

    def _memory_pop(self, seq: int) -> QueuedMessage | None:
        message = self._memory.pop(seq, None)
        if message is not None:
            self._memory_bytes -= len(message.payload)
        return message

    def _expire_memory(self, now: float) -> None:
        stale = [m for m in self._memory.values() if m.queued < now - self.max_age_s]
        for message in stale:
            self._memory_pop(message.seq)
        if stale:
            self._dropped(stale, "dropped_expired", f"older than outbox_max_age_s ({self.max_age_s:g} s)")

    def _expire(self, now: float) -> None:
        cutoff = now - self.max_age_s
        rows = self._db.execute("SELECT seq, event_id, queued FROM events WHERE queued < ? ORDER BY seq",
                                (cutoff,)).fetchall()
        if rows:
            self._drop_rows(rows, "dropped_expired", f"older than outbox_max_age_s ({self.max_age_s:g} s)")

    def _trim(self) -> None:
        excess = self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0] - self.max_events
        if excess > 0:
            rows = self._db.execute("SELECT seq, event_id, queued FROM events ORDER BY seq LIMIT ?",
                                    (excess,)).fetchall()
            self._drop_rows(rows, "dropped_full", f"the outbox is full (outbox_max_events {self.max_events})")

    def _drop_rows(self, rows: list[tuple[int, str, float]], counter: str, reason: str) -> None:
        self._on_disk -= sum(self._db.execute("DELETE FROM events WHERE seq = ?", (seq,)).rowcount
                             for seq, _, _ in rows)
        self._dropped([QueuedMessage(seq, event_id, "", b"", queued) for seq, event_id, queued in rows], counter,
                      reason)
        self._save_counters()

    def _dropped(self, messages: list[QueuedMessage], counter: str, reason: str) -> None:
        self._count(counter, len(messages))
        first = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(messages[0].queued))
        log.warning("MQTT outbox: dropped %d undelivered event(s) because %s; the oldest was %s queued %s",
                    len(messages), reason, messages[0].event_id, first)
