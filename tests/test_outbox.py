"""The durable outbox: order, acknowledgement, bounds that report what they drop, crash safety, 0600."""
from __future__ import annotations

import logging
import os
import signal
import stat
import subprocess
import sys
import textwrap

import pytest

from edge.mqtt.outbox import Outbox, OutboxError


def test_messages_come_back_in_order_until_removed(tmp_path):
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_events=100, max_age_s=3600)
    for index in range(5):
        assert outbox.add(f"id{index}", "t/events", f"payload {index}".encode())
    assert not outbox.add("id2", "t/events", b"again"), "the same event id is stored once"
    pending = outbox.pending()
    assert [m.event_id for m in pending] == ["id0", "id1", "id2", "id3", "id4"]
    assert pending[2].payload == b"payload 2" and pending[2].topic == "t/events"
    assert [m.event_id for m in outbox.pending(after_seq=pending[1].seq, limit=2)] == ["id2", "id3"]
    outbox.remove([pending[0].seq])
    outbox.remove([pending[0].seq])  # a second acknowledgement is harmless
    assert outbox.stats().pending == 4
    outbox.close()
    reopened = Outbox(tmp_path / "outbox.sqlite3", max_events=100, max_age_s=3600)
    assert [m.event_id for m in reopened.pending()] == ["id1", "id2", "id3", "id4"]


def test_full_outbox_drops_the_oldest_and_says_so(tmp_path, caplog):
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_events=3, max_age_s=3600)
    with caplog.at_level(logging.WARNING, logger="edge-facerec.outbox"):
        for index in range(5):
            outbox.add(f"id{index}", "t", b"x")
    assert [m.event_id for m in outbox.pending()] == ["id2", "id3", "id4"]
    stats = outbox.stats()
    assert (stats.dropped_full, stats.dropped_expired, stats.dropped) == (2, 0, 2)
    assert "dropped 1 undelivered event(s) because the outbox is full (outbox_max_events 3)" in caplog.text
    assert "id0" in caplog.text and "id1" in caplog.text
    outbox.close()
    assert Outbox(tmp_path / "outbox.sqlite3", 3, 3600).stats().dropped_full == 2, "the count survives a restart"


def test_old_events_expire_with_a_count(tmp_path, caplog):
    now = [1000.0]
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_events=100, max_age_s=60, clock=lambda: now[0])
    outbox.add("stale", "t", b"x")
    now[0] += 30
    outbox.add("fresh", "t", b"x")
    now[0] += 40
    with caplog.at_level(logging.WARNING, logger="edge-facerec.outbox"):
        assert [m.event_id for m in outbox.pending()] == ["fresh"]
    assert outbox.stats().dropped_expired == 1
    # the id must not be a word of the message itself ("old" is in "older")
    assert "older than outbox_max_age_s (60 s)" in caplog.text and "the oldest was stale queued" in caplog.text


def test_files_are_owner_only_even_with_a_permissive_umask(tmp_path):
    previous = os.umask(0o000)
    try:
        outbox = Outbox(tmp_path / "state" / "outbox.sqlite3", max_events=10, max_age_s=60)
        outbox.add("a", "t", b"x")
    finally:
        os.umask(previous)
    files = list((tmp_path / "state").iterdir())
    assert any(f.name.endswith("-wal") for f in files)
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_an_event_added_survives_sigkill_of_the_process(tmp_path):
    """add() returns only once the event is committed: a process killed right after loses nothing."""
    script = textwrap.dedent(f"""
        import os, signal, sys
        from edge.mqtt.outbox import Outbox
        outbox = Outbox({str(tmp_path / 'outbox.sqlite3')!r}, max_events=100, max_age_s=3600)
        for index in range(20):
            outbox.add(f"id{{index}}", "t", b"x")
        os.kill(os.getpid(), signal.SIGKILL)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == -signal.SIGKILL, result.stderr.decode()
    assert len(Outbox(tmp_path / "outbox.sqlite3", 100, 3600).pending()) == 20


def test_unusable_location_is_one_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutboxError, match=r"file/outbox.sqlite3: cannot open the MQTT outbox"):
        Outbox(blocker / "outbox.sqlite3", 10, 60)
