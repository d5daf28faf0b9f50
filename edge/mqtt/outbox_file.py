"""The outbox's SQLite file: created owner-only, WAL with ``synchronous=FULL``, checked when opened,
and moved aside when it cannot be used.

Opening checks the pages (``PRAGMA quick_check``) and the tables (exactly the columns this
version writes, no tables of anything else). A file that is not a database, is damaged (what an
SD card's torn writes leave) or belongs to something else is renamed
``<name>.unusable-<time>`` (with its -wal and -shm files), reported in one line with the number
of undelivered events it held, and a new file is started: the daemon starts instead of failing
at every restart.

:func:`error_kind` sorts SQLite and OS errors: the disk is ``full`` (keep events elsewhere until
space returns), the file is ``damaged`` (move it aside), or ``other`` (report, retry).
"""
from __future__ import annotations

import errno
import logging
import os
import sqlite3
import time
from pathlib import Path

from ..errors import EdgeError

log = logging.getLogger("edge-facerec.outbox")

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    event_id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    queued REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS dead_letters (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    queued REAL NOT NULL,
    failed REAL NOT NULL,
    reason TEXT NOT NULL
);
"""
COLUMNS = {"events": ["seq", "event_id", "topic", "payload", "queued"], "counters": ["name", "value"],
           "dead_letters": ["seq", "event_id", "topic", "payload", "queued", "failed", "reason"]}
_SQLITE_CORRUPT, _SQLITE_FULL, _SQLITE_NOTADB = 11, 13, 26  # result codes (sqlite3 names them from 3.11 on)


class OutboxError(EdgeError):
    """The outbox file cannot be opened or written."""


class UnusableFile(Exception):
    """The file is not an outbox this version can use (damaged or foreign); the message says why."""


def error_kind(error: BaseException) -> str:
    """``full`` (no space), ``damaged`` (not a database, or corrupt pages) or ``other``."""
    if isinstance(error, OSError):
        return "full" if error.errno in (errno.ENOSPC, errno.EDQUOT) else "other"
    code = getattr(error, "sqlite_errorcode", None)  # Python 3.11+; the messages are SQLite's own
    if code == _SQLITE_FULL or "database or disk is full" in str(error):
        return "full"
    if code in (_SQLITE_CORRUPT, _SQLITE_NOTADB) or type(error) is sqlite3.DatabaseError:
        return "damaged"
    return "other"


def open_outbox_file(path: Path) -> sqlite3.Connection:
    """The outbox at ``path``, created if needed and checked; an unusable file is moved aside (logged) first.
    OSError and sqlite3.Error are left to the caller (a full disk, a folder that cannot be written)."""
    try:
        return _open(path)
    except UnusableFile as problem:
        move_aside(path, str(problem))
    return _open(path)


def _open(path: Path) -> sqlite3.Connection:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    try:
        check = db.execute("PRAGMA quick_check").fetchone()[0]  # before anything is written to it
        if check != "ok":
            raise UnusableFile(f"damaged: {check}")
        foreign = _foreign_tables(db)
        if foreign:
            raise UnusableFile(foreign)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.executescript(SCHEMA)
    except sqlite3.Error as error:
        db.close()
        if error_kind(error) == "damaged":
            raise UnusableFile(str(error)) from None
        raise
    except UnusableFile:
        db.close()
        raise
    for suffix in ("", "-wal", "-shm"):
        candidate = Path(f"{path}{suffix}")
        if candidate.exists():
            os.chmod(candidate, 0o600)
    return db


def _foreign_tables(db: sqlite3.Connection) -> str | None:
    """Why the tables are not this version's, or None (an empty file, or one of ours)."""
    tables = [name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
              if not name.startswith("sqlite_")]
    for table in tables:
        if table not in COLUMNS:
            return f"not an outbox: it holds a table {table!r}"
        columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
        if columns != COLUMNS[table]:
            return f"table {table} has the columns {', '.join(columns)}, not {', '.join(COLUMNS[table])}"
    return None


def move_aside(path: Path, reason: str) -> Path:
    """Rename the unusable outbox (and its -wal, -shm) out of the way; one error line says what was lost."""
    held = _events_held(path)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    aside = next(candidate for n in range(1000) if not (candidate := path.with_name(
        f"{path.name}.unusable-{stamp}{f'-{n}' if n else ''}")).exists())
    for suffix in ("", "-wal", "-shm"):
        if Path(f"{path}{suffix}").exists():
            os.replace(f"{path}{suffix}", f"{aside}{suffix}")
    lost = f"{held} undelivered event(s)" if held is not None else "an unknown number of undelivered events"
    log.error("MQTT outbox %s is unusable (%s): moved aside to %s with %s, which will not be sent; "
              "starting a new outbox", path, reason, aside.name, lost)
    return aside


def _events_held(path: Path) -> int | None:
    """How many rows the events table of an unusable file still shows, or None when it cannot be read."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return int(db.execute("SELECT COUNT(*) FROM events").fetchone()[0])
        finally:
            db.close()
    except sqlite3.Error:
        return None
