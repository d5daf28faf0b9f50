"""Faults of the disk, the broker and our own threads (issue 15): delivery goes on, and a thread that fails is
logged, retried and shown in the health; one that cannot carry on stops the watchdog pings.
docs/robustness.md is the table of these cases and what each gets."""
from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import queue
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from edge.config import config_from_dict
from edge.mqtt import outbox as outbox_module
from edge.mqtt.outbox import Outbox
from edge.mqtt.publisher import MqttPublisher, publish_packet_size
from edge.supervision import Health, start_thread
from mosquitto import Broker, Collector, available
from mqtt_producer import make_event

PRODUCER = Path(__file__).resolve().parent / "mqtt_producer.py"
EVENTS = "edge-facerec/front-door/events"


def wait_until(condition, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def event_ids(messages) -> list[str]:
    return [json.loads(m.payload)["id"] for m in messages]


# -- the outbox file ---------------------------------------------------------------------------------------

def corrupt_pages(path: Path) -> None:
    """Overwrite the start of every page after the first two, header intact: an SD card's torn writes."""
    data = bytearray(path.read_bytes())
    for offset in range(2 * 4096, len(data), 4096):
        data[offset:offset + 100] = b"\xff" * 100
    path.write_bytes(bytes(data))


def outbox_with_rows(path: Path, rows: int) -> None:
    outbox = Outbox(path, max_events=1000, max_age_s=3600)
    for index in range(rows):
        outbox.add(f"old{index}", "t", b"x" * 500)
    outbox.close()
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=DELETE")  # everything in the main file, as after a clean checkpoint
    db.close()


def foreign_schema(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE events (id INTEGER PRIMARY KEY, stuff TEXT); INSERT INTO events VALUES (1, 'x');")
    db.close()


def other_database(path: Path) -> None:
    db = sqlite3.connect(path)
    db.executescript("CREATE TABLE settings (key TEXT, value TEXT); INSERT INTO settings VALUES ('a', 'b');")
    db.close()


UNUSABLE = [  # (case, how the file is made, what the line says)
    ("foreign schema", foreign_schema, "table events has the columns id, stuff, not seq, event_id, topic, payload, "
                                       "queued): moved aside to outbox.sqlite3.unusable-"),
    ("another program's database", other_database, "not an outbox: it holds a table 'settings'"),
    ("corrupt pages, header intact", lambda p: (outbox_with_rows(p, 200), corrupt_pages(p)),
     "database disk image is malformed"),
    ("not a database", lambda p: p.write_bytes(b"SQLite format 3\x00" + os.urandom(8000)), "is unusable"),
]


@pytest.mark.parametrize("case, make, words", UNUSABLE, ids=[case[0] for case in UNUSABLE])
def test_an_unusable_outbox_is_moved_aside_with_a_report_and_a_new_one_starts(tmp_path, caplog, case, make, words):
    path = tmp_path / "outbox.sqlite3"
    make(path)
    before = path.read_bytes()
    with caplog.at_level(logging.ERROR, logger="edge-facerec.outbox"):
        outbox = Outbox(path, max_events=100, max_age_s=3600)
    lines = [r.getMessage() for r in caplog.records if "is unusable" in r.getMessage()]
    assert len(lines) == 1 and words in lines[0] and "which will not be sent; starting a new outbox" in lines[0], lines
    aside = [p for p in tmp_path.iterdir() if ".unusable-" in p.name and not p.name.endswith(("-wal", "-shm"))]
    assert len(aside) == 1 and aside[0].read_bytes() == before, "moved aside untouched"
    assert outbox.add("new", "t", b"x") and [m.event_id for m in outbox.pending()] == ["new"]
    outbox.close()


def test_an_outbox_damaged_while_running_is_moved_aside_and_the_queue_goes_on(tmp_path, caplog):
    path = tmp_path / "outbox.sqlite3"
    outbox_with_rows(path, 200)
    outbox = Outbox(path, max_events=1000, max_age_s=3600)
    corrupt_pages(path)
    with caplog.at_level(logging.ERROR, logger="edge-facerec.outbox"):
        for attempt in range(3):  # the read that meets the damage fails; the one after reads the new file
            try:
                outbox.pending()
                break
            except outbox_module.OutboxError:
                continue
        outbox.add("after", "t", b"x")
    assert "is unusable (database disk image is malformed)" in caplog.text
    assert [m.event_id for m in outbox.pending()] == ["after"]


def test_an_outbox_of_the_first_version_is_upgraded_in_place(tmp_path):
    path = tmp_path / "outbox.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""CREATE TABLE events (seq INTEGER PRIMARY KEY AUTOINCREMENT, event_id TEXT NOT NULL UNIQUE,
                        topic TEXT NOT NULL, payload BLOB NOT NULL, queued REAL NOT NULL);
                        CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
                        INSERT INTO events (event_id, topic, payload, queued) VALUES ('kept', 't', 'x', 1e12);
                        INSERT INTO counters VALUES ('dropped_full', 4);""")
    db.close()
    outbox = Outbox(path, max_events=100, max_age_s=1e6)
    assert [m.event_id for m in outbox.pending()] == ["kept"] and outbox.stats().dropped_full == 4


# -- a full disk -------------------------------------------------------------------------------------------

@pytest.fixture
def tiny_disk(tmp_path):
    """A 1 MiB tmpfs, a full SD card in miniature; skips where it cannot be mounted (it needs root)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    result = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(disk)], capture_output=True,
                            text=True)
    if result.returncode != 0:
        pytest.skip(f"cannot mount a 1 MiB tmpfs here ({result.stderr.strip() or 'mount failed'}; needs root)")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; delete it to give the space back."""
    filler = disk / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            os.write(descriptor, b"\0" * 4096)
    except OSError as error:
        assert error.errno == errno.ENOSPC
    finally:
        os.close(descriptor)
    return filler


def test_a_full_disk_keeps_events_in_memory_in_order_until_space_returns(tiny_disk, caplog):
    health = Health()
    outbox = Outbox(tiny_disk / "state" / "outbox.sqlite3", max_events=1000, max_age_s=3600, health=health)
    outbox.add("before", "t", b"x" * 2000)
    filler = fill(tiny_disk)
    with caplog.at_level(logging.WARNING, logger="edge-facerec.outbox"):
        for index in range(40):
            assert outbox.add(f"full{index}", "t", b"x" * 2000)
        stats = outbox.stats()
        assert stats.in_memory > 0 and stats.pending == 41
        assert health.state.startswith("degraded: mqtt-outbox: cannot write outbox.sqlite3 (OperationalError: "
                                       "database or disk is full)")
        assert [m.event_id for m in outbox.pending(limit=100)] == ["before"] + [f"full{i}" for i in range(40)]
        filler.unlink()
        outbox.add("after", "t", b"x")
    assert caplog.text.count("cannot store event") == 1, "logged once, not per event"
    assert "kept in memory are on disk now" in caplog.text and "writable again" in caplog.text
    assert outbox.stats().in_memory == 0 and health.state == "ok"
    outbox.close()
    reopened = Outbox(tiny_disk / "state" / "outbox.sqlite3", max_events=1000, max_age_s=3600)
    assert [m.event_id for m in reopened.pending(limit=100)] == ["before"] + [f"full{i}" for i in range(40)] + ["after"]


def test_memory_is_bounded_while_the_file_cannot_grow_and_drops_are_counted(tmp_path, monkeypatch, caplog):
    """SQLite's own page limit gives the same 'database or disk is full' without a small disk."""
    monkeypatch.setattr(outbox_module, "MEMORY_MAX_EVENTS", 5)
    outbox = Outbox(tmp_path / "outbox.sqlite3", max_events=1000, max_age_s=3600)
    outbox._db.execute(f"PRAGMA max_page_count = {outbox._db.execute('PRAGMA page_count').fetchone()[0]}")
    with caplog.at_level(logging.WARNING, logger="edge-facerec.outbox"):
        for index in range(12):
            outbox.add(f"e{index}", "t", b"x" * 3000)
    stats = outbox.stats()
    assert stats.in_memory == 5 and stats.dropped_memory == 12 - 5 - (stats.pending - 5)
    assert "because the file cannot be written and memory holds at most 5 events" in caplog.text
    assert [m.event_id for m in outbox.pending()][-5:] == [f"e{i}" for i in range(7, 12)], "the newest are kept"


def test_a_full_disk_while_the_broker_is_down_delays_nothing_once_it_is_back(tiny_disk, tmp_path):
    """The issue's case: the sender thread used to die on 'database or disk is full'."""
    if available():
        pytest.skip(available())
    broker = Broker(tmp_path / "broker", tls=False)
    broker.start()
    collector = Collector(broker, [EVENTS], client_id="full-disk-collector")
    raw = {"device": {"name": "Front Door"},
           "mqtt": {**broker.mqtt_section(), "enabled": True, "outbox": str(tiny_disk / "outbox.sqlite3")}}
    broker.stop()
    publisher = MqttPublisher(config_from_dict(raw))
    try:
        events = [make_event(index, "front-door") for index in range(30)]
        publisher.publish_event(events[0])
        filler = fill(tiny_disk)
        for event in events[1:25]:
            publisher.publish_event(event)
        broker.start()
        assert publisher.wait_delivered(30), publisher.outbox.stats()
        assert publisher._sender.is_alive()
        filler.unlink()
        for event in events[25:]:
            publisher.publish_event(event)
        assert publisher.wait_delivered(30)
        assert collector.wait_for(lambda messages: len(set(event_ids(messages))) >= 30, timeout=30)
    finally:
        publisher.close()
        collector.close()
        broker.stop()
    assert list(dict.fromkeys(event_ids(collector.messages))) == [event.id for event in events]
    assert publisher.health.state == "ok"


# -- what the broker does ----------------------------------------------------------------------------------

@pytest.fixture
def small_packet_broker(tmp_path):
    """A broker that refuses packets above 4000 bytes (mosquitto's max_packet_size)."""
    if available():
        pytest.skip(available())
    broker = Broker(tmp_path / "broker", tls=False, settings=("max_packet_size 4000",))
    broker.start()
    yield broker
    broker.stop()


@pytest.mark.parametrize("how", ["MQTT 3.1.1, limit learned", "MQTT 5, limit from CONNACK", "mqtt.max_packet_size"])
def test_an_event_over_the_brokers_packet_size_loses_its_snapshot_or_goes_to_the_dead_letters(
        small_packet_broker, tmp_path, caplog, how):
    broker = small_packet_broker
    collector = Collector(broker, [EVENTS], client_id=f"packet-collector-{how[:6]}")
    mqtt = {**broker.mqtt_section(), "enabled": True, "outbox": str(tmp_path / "outbox.sqlite3"),
            "protocol": "5" if how.startswith("MQTT 5") else "3.1.1"}
    if how == "mqtt.max_packet_size":
        mqtt["max_packet_size"] = 4000
    publisher = MqttPublisher(config_from_dict({"device": {"name": "Front Door"}, "mqtt": mqtt}))
    events = [make_event(index, "front-door") for index in range(10)]
    events[1] = dataclasses.replace(events[1], snapshot_jpeg_base64="A" * 6000)  # fits once its snapshot is gone
    events[4] = dataclasses.replace(events[4], name="Z" * 9000)  # does not fit at all
    try:
        with caplog.at_level(logging.WARNING):
            for event in events:
                publisher.publish_event(event)
            assert publisher.wait_delivered(40), publisher.outbox.stats()
            wanted = [e.id for e in events if e is not events[4]]
            assert collector.wait_for(lambda messages: set(wanted) <= set(event_ids(messages)), timeout=20)
        stats = publisher.outbox.stats()
    finally:
        publisher.close()
        collector.close()
    assert list(dict.fromkeys(event_ids(collector.messages))) == wanted, "in order, the refused one left out"
    second = next(json.loads(m.payload) for m in collector.messages if json.loads(m.payload)["id"] == events[1].id)
    assert "snapshot_jpeg_base64" not in second and second["name"] == events[1].name, "the event, not its snapshot"
    assert (stats.dead_lettered, stats.snapshots_dropped) == (1, 1)
    assert f"event {events[4].id} moved to the dead letters" in caplog.text
    assert f"event {events[1].id}: its snapshot makes it" in caplog.text
    db = sqlite3.connect(tmp_path / "outbox.sqlite3")
    assert [row[0] for row in db.execute("SELECT event_id FROM dead_letters")] == [events[4].id]
    db.close()


def test_events_an_mqtt5_broker_refuses_go_to_the_dead_letters(mqtt_broker, tmp_path, caplog):
    """The documented ACL lets the daemon write only under edge-facerec/: another prefix is refused (PUBACK 0x87)."""
    raw = {"device": {"name": "Front Door"},
           "mqtt": {**mqtt_broker.mqtt_section(), "enabled": True, "protocol": "5", "topic_prefix": "elsewhere",
                    "discovery": False, "outbox": str(tmp_path / "outbox.sqlite3")}}
    publisher = MqttPublisher(config_from_dict(raw))
    try:
        with caplog.at_level(logging.ERROR, logger="edge-facerec.outbox"):
            for index in range(3):
                publisher.publish_event(make_event(index, "front-door"))
            assert publisher.wait_delivered(15), "nothing is stuck behind a refused event"
    finally:
        publisher.close()
    assert publisher.outbox.stats().dead_lettered == 3
    assert caplog.text.count("(the broker refused it: Not authorized)") == 3


def test_the_packet_size_is_counted_as_the_broker_counts_it():
    assert publish_packet_size("t", b"", v5=False) == 7  # 1 + 1 length byte + 2 + 1 + 2
    assert publish_packet_size("t", b"x" * 200, v5=True) == 1 + 2 + 2 + 1 + 2 + 1 + 200


# -- the sender thread -------------------------------------------------------------------------------------

def test_a_failing_sender_round_is_logged_once_retried_and_delivery_resumes(mqtt_broker, tmp_path, caplog,
                                                                             monkeypatch):
    raw = {"device": {"name": "Front Door"},
           "mqtt": {**mqtt_broker.mqtt_section(), "enabled": True, "outbox": str(tmp_path / "outbox.sqlite3")}}
    publisher = MqttPublisher(config_from_dict(raw))
    real, failures = publisher.outbox.pending, []

    def failing_twice(*args, **kwargs):
        if len(failures) < 2:
            failures.append(1)
            raise sqlite3.OperationalError("disk I/O error")
        return real(*args, **kwargs)

    try:
        assert wait_until(publisher.connection.connected.is_set)
        monkeypatch.setattr(publisher.outbox, "pending", failing_twice)
        with caplog.at_level(logging.INFO, logger="edge-facerec.mqtt"):
            publisher.publish_event(make_event(0, "front-door"))
            assert wait_until(lambda: publisher.health.state.startswith("degraded: mqtt-sender: OperationalError"))
            assert publisher.wait_delivered(30)
            assert wait_until(lambda: publisher.health.state == "ok")
    finally:
        publisher.close()
    assert caplog.text.count("mqtt-sender: a round of sending failed (OperationalError: disk I/O error)") == 1
    assert "mqtt-sender: working again after 2 failure(s)" in caplog.text


def test_a_sender_thread_that_cannot_carry_on_marks_the_process_unhealthy(tmp_path, caplog, monkeypatch):
    raw = {"device": {"name": "Front Door"},
           "mqtt": {"enabled": True, "host": "127.0.0.1", "port": 9, "outbox": str(tmp_path / "outbox.sqlite3")}}
    publisher = MqttPublisher(config_from_dict(raw))
    monkeypatch.setattr(publisher, "_handle", lambda items: (_ for _ in ()).throw(SystemExit("gone")))
    with caplog.at_level(logging.CRITICAL, logger="edge-facerec.mqtt"):
        publisher.publish_event(make_event(0, "front-door"))
        assert wait_until(lambda: not publisher.health.alive, timeout=10)
    publisher.close()
    assert publisher.health.state == "failed: mqtt-sender stopped (SystemExit: gone)"
    assert "thread mqtt-sender stopped by an unexpected error: SystemExit: gone" in caplog.text


def test_the_daemons_publisher_starts_on_a_corrupt_outbox(mqtt_broker, tmp_path):
    """It used to exit 1 at every start (systemd's Restart=on-failure looping)."""
    outbox = tmp_path / "outbox.sqlite3"
    outbox_with_rows(outbox, 200)
    corrupt_pages(outbox)
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({"device": {"name": "Front Door"},
                                      "mqtt": {**mqtt_broker.mqtt_section(), "enabled": True, "outbox": str(outbox)}}))
    result = subprocess.run([sys.executable, str(PRODUCER), str(config), "--count", "2", "--then", "drain"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stdout.splitlines()[-1] == "closed", result.stderr
    assert "is unusable (database disk image is malformed)" in result.stderr
    assert "Traceback" not in result.stderr


# -- edge-actions and a poison message ---------------------------------------------------------------------

def test_a_poison_message_neither_deafens_edge_actions_nor_comes_back_at_restart(mqtt_broker, tmp_path):
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    from mosquitto import USERS

    out = tmp_path / "fired"
    config = tmp_path / "actions.yaml"
    config.write_text(yaml.safe_dump({
        "devices": ["front-door"], "mqtt": {**mqtt_broker.mqtt_section(user="edge-actions"), "client_id": "poison"},
        "rules": [{"name": "door", "when": "recognized", "people": ["p-alice"], "min_score": 0.5, "cooldown_s": 0,
                   "command": [sys.executable, "-c", f"open({str(out)!r}, 'a').write('x')"]}]}))

    def start() -> tuple[subprocess.Popen, queue.Queue]:
        process = subprocess.Popen([sys.executable, "-m", "edge.commands.actions", "--config", str(config)],
                                   stderr=subprocess.PIPE, text=True)
        lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()
        return process, lines

    def log_until(lines: queue.Queue, text: str, timeout: float = 20) -> list[str]:
        seen, deadline = [], time.monotonic() + timeout
        while not seen or text not in seen[-1]:
            try:
                seen.append(lines.get(timeout=max(0.01, deadline - time.monotonic())))
            except queue.Empty:
                raise AssertionError(f"no {text!r} in:\n{''.join(seen)}") from None
        return seen

    sender = paho.Client(CallbackAPIVersion.VERSION2)
    sender.username_pw_set("edge-facerec", USERS["edge-facerec"])
    sender.connect("127.0.0.1", mqtt_broker.port)
    sender.loop_start()
    first, log = start()
    try:
        log_until(log, "subscribed to")
        sender.publish(EVENTS, b"[" * 100000 + b"]" * 100000, qos=1).wait_for_publish(5)
        lines = log_until(log, "nested deeper than 8 levels")
        event = make_event(0, "front-door")
        sender.publish(EVENTS, event.to_json(), qos=1).wait_for_publish(5)
        lines += log_until(log, f"rule 'door' fires for event {event.id}")
    finally:
        first.terminate()
        first.wait(10)
    second, log = start()
    try:
        lines_after = log_until(log, "subscribed to")
        event = make_event(6, "front-door")
        sender.publish(EVENTS, event.to_json(), qos=1).wait_for_publish(5)
        lines_after += log_until(log, event.id)  # heard (it may not fire: a re-delivered event may be running)
    finally:
        second.terminate()
        second.wait(10)
        sender.disconnect()
        sender.loop_stop()
    assert not any("nested" in line for line in lines_after), "acknowledged the first time, not delivered again"
    assert not any("Traceback" in line for line in lines + lines_after)


def test_a_rule_command_that_fails_unexpectedly_is_logged_and_the_rule_fires_again(tmp_path, caplog, monkeypatch):
    from edge.actions import rules
    from edge.actions.config import ActionsConfig, RuleConfig

    config = ActionsConfig(devices=("front-door",), rules=(RuleConfig(
        name="door", when="recognized", command=("/bin/true",), people=("p-alice",), cooldown_s=0.0),))
    actions = rules.Actions(config)
    monkeypatch.setattr(rules.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(ValueError("odd")))
    with caplog.at_level(logging.INFO, logger="edge-actions"):
        for index in (0, 6):  # Alice twice
            assert actions.handle(EVENTS, make_event(index, "front-door").to_json().encode()) == ["door"]
            actions.wait_idle(10)
    assert caplog.text.count("rule 'door': its command for event") == 2 and "(ValueError: odd)" in caplog.text


# -- the daemon's own threads ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def clip(celebrities, tmp_path_factory):
    from daemon_support import val_photo
    from edge.commands.demo import make_clip

    folder = tmp_path_factory.mktemp("supervised")
    return make_clip([val_photo(celebrities, "ben_afflek")], folder / "ben.mp4", fps=10, show_s=2, gap_s=0)


def daemon_config(clip: Path, tmp_path: Path, **camera) -> object:
    return config_from_dict({"camera": {"source": str(clip), "realtime": False, **camera},
                             "recognition": {"gallery": str(tmp_path / "none.npz")},
                             "events": {"status_interval_s": 0.2}})


def test_frames_that_fail_are_skipped_counted_and_logged_once(clip, tmp_path, caplog, monkeypatch):
    from edge.commands.facerec import Daemon
    from edge.daemon.sinks import MemorySink, StdoutSink

    daemon = Daemon(daemon_config(clip, tmp_path), extra_sinks=[MemorySink()], stdout=StdoutSink(open(os.devnull, "w")))
    real, calls = daemon.pipeline.detector.detect, []

    def detect(image, region=None):  # the motion gate passes the region to search
        calls.append(1)
        if 3 <= len(calls) <= 5:
            raise RuntimeError("the detector tripped")
        return real(image, region)

    monkeypatch.setattr(daemon.pipeline.detector, "detect", detect)
    with caplog.at_level(logging.INFO):
        assert daemon.run() == 0
    frames = daemon.final_status["frames"]
    assert (frames["failed"], frames["processed"], frames["captured"]) == (3, 17, 20)
    assert caplog.text.count("pipeline: frame 3 failed (RuntimeError: the detector tripped)") == 1
    assert "pipeline: working again after 3 failure(s)" in caplog.text
    assert daemon.final_status["state"] == "ok" and daemon.sink.sinks[1].events, "events after the failures"


def test_a_thread_that_cannot_carry_on_stops_the_watchdog_and_says_so(clip, tmp_path):
    from edge.commands.facerec import Daemon
    from edge.daemon.sd_notify import Notifier
    from edge.daemon.sinks import StdoutSink

    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(30)
    notifier = Notifier({"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "200000"})
    daemon = Daemon(daemon_config(clip, tmp_path, loop=True, realtime=True), notifier=notifier,
                    stdout=StdoutSink(open(os.devnull, "w")))
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        messages = [notify.recv(4096).decode()]
        while not messages[-1].startswith("WATCHDOG=1"):
            messages.append(notify.recv(4096).decode())
        start_thread("test-part", lambda: (_ for _ in ()).throw(SystemExit("cannot carry on")), daemon.health,
                     logging.getLogger("test"))
        while not messages[-1].startswith("STATUS=failed: test-part stopped (SystemExit: cannot carry on)"):
            messages.append(notify.recv(4096).decode())
        after = [notify.recv(4096).decode() for _ in range(4)]  # status lines every 0.2 s; pings were every 0.1 s
    finally:
        daemon.request_stop()
        runner.join(30)
        notify.close()
    assert not any(m.startswith("WATCHDOG=1") for m in after), after
    assert all(m.startswith("STATUS=failed: test-part stopped") for m in after), after
    assert daemon.final_status["state"].startswith("failed: test-part stopped")
