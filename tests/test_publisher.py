"""MqttPublisher against a real mosquitto: each event once (plain, TLS, client certificate), refused
credentials, a broker outage, SIGKILL of the publishing process while the broker is down, availability."""
from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from edge.config import config_from_dict
from edge.mqtt.publisher import MqttPublisher
from mosquitto import Broker, Collector, available, documented_acl
from mqtt_producer import make_event

PRODUCER = Path(__file__).resolve().parent / "mqtt_producer.py"
OUTAGE_S = float(os.environ.get("EDGE_MQTT_OUTAGE_S", "3"))  # the full outage: EDGE_MQTT_OUTAGE_S=30


def mqtt_config(tmp_path: Path, section: dict, device: str = "Front Door") -> dict:
    return {"device": {"name": device},
            "mqtt": {**section, "enabled": True, "outbox": str(tmp_path / "outbox.sqlite3")}}


@pytest.fixture
def own_broker(tmp_path):
    """A broker this test may stop and start."""
    reason = available()
    if reason:
        pytest.skip(reason)
    broker = Broker(tmp_path / "broker", tls=False, acl=documented_acl())
    broker.start()
    yield broker
    broker.stop()


class Producer:
    """tests/mqtt_producer.py in a subprocess; its stdout lines arrive on a queue."""

    started: list[Producer] = []  # killed at the end of each test that starts some (see the fixture below)

    def __init__(self, config: Path, *args: str) -> None:
        Producer.started.append(self)
        self.process = subprocess.Popen([sys.executable, str(PRODUCER), str(config), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.strip())

    def ids_until(self, marker: str, timeout: float = 30) -> list[str]:
        ids = []
        deadline = time.monotonic() + timeout
        while True:
            line = self.lines.get(timeout=max(0.1, deadline - time.monotonic()))
            if line == marker:
                return ids
            ids.append(line)

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def finish(self, timeout: float = 60) -> str:
        self.process.wait(timeout=timeout)
        return self.process.stderr.read()


@pytest.fixture(autouse=True)
def no_producer_left_running():
    """A failed assertion must not leave a producer sleeping forever."""
    yield
    for producer in Producer.started:
        if producer.process.poll() is None:
            producer.kill()
    Producer.started.clear()


def event_ids(messages) -> list[str]:
    return [json.loads(m.payload)["id"] for m in messages]


@pytest.mark.parametrize("transport", ["plain", "tls", "client_cert", "mqtt5"])
def test_a_subscriber_receives_each_event_once_with_the_documented_payload(mqtt_broker, tmp_path, transport):
    section = mqtt_broker.mqtt_section(tls=transport == "tls", client_cert=transport == "client_cert")
    if transport == "mqtt5":
        section["protocol"] = "5"
    config = config_from_dict(mqtt_config(tmp_path, section))
    topic = "edge-facerec/front-door/events"
    collector = Collector(mqtt_broker, [topic], user="edge-actions")
    publisher = MqttPublisher(config)
    try:
        events = [make_event(index, config.device_id) for index in range(6)]
        for event in events:
            publisher.publish_event(event)
        assert publisher.wait_delivered(10), "the broker acknowledged every event"
        assert collector.wait_for(lambda messages: len(messages) >= len(events))
        time.sleep(0.2)  # a duplicate would arrive now
    finally:
        publisher.close()
        collector.close()
    received = collector.on(topic)
    assert event_ids(received) == [event.id for event in events], "each event once, in order"
    assert [json.loads(m.payload) for m in received] == [event.to_dict() for event in events]
    assert "Zoë Ångström" in received[1].payload.decode(), "Unicode names stay as they are in the payload"
    assert not any(m.retain for m in received) and {m.qos for m in received} == {1}


def test_wrong_credentials_are_refused_with_a_clear_error_and_events_wait(mqtt_broker, tmp_path, caplog):
    config = config_from_dict(mqtt_config(tmp_path, mqtt_broker.mqtt_section(password="not-the-password")))
    with caplog.at_level(logging.INFO, logger="edge-facerec.mqtt"):
        publisher = MqttPublisher(config)
        publisher.publish_event(make_event(0, config.device_id))
        deadline = time.monotonic() + 10
        while "refused the connection" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        publisher.close()
    assert (f"the MQTT broker at 127.0.0.1:{mqtt_broker.port} refused the connection: Not authorized "
            "(check mqtt.username and the password)") in caplog.text
    assert "not-the-password" not in caplog.text
    assert "1 event(s) not yet acknowledged stay in the outbox" in caplog.text


def test_events_produced_during_a_broker_outage_all_arrive_in_order(own_broker, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(mqtt_config(tmp_path, own_broker.mqtt_section())))
    collector = Collector(own_broker, ["edge-facerec/front-door/events"], client_id="outage-collector")
    interval = 0.1
    count = int((OUTAGE_S + 3) / interval)
    producer = Producer(config, "--count", str(count), "--interval", str(interval), "--then", "drain")
    try:
        produced = [producer.lines.get(timeout=15) for _ in range(5)]  # producing, broker up
        own_broker.stop()
        time.sleep(OUTAGE_S)
        own_broker.start()
        produced += producer.ids_until("closed", timeout=OUTAGE_S + 60)
        log = producer.finish()
        assert producer.process.returncode == 0, log
        assert len(produced) == count
        assert collector.wait_for(lambda messages: set(produced) <= set(event_ids(messages)), timeout=20), (
            f"missing {len(set(produced) - set(event_ids(collector.messages)))} of {count}\n{log}")
    finally:
        collector.close()
    received = event_ids(collector.messages)
    first_seen = list(dict.fromkeys(received))
    assert first_seen == produced, "in the order produced"
    assert "lost the connection to the MQTT broker" in log and "cannot connect to the MQTT broker" in log


def test_queued_events_survive_sigkill_and_availability_follows_the_process(own_broker, tmp_path):
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump(mqtt_config(tmp_path, own_broker.mqtt_section())))
    availability = "edge-facerec/front-door/availability"
    collector = Collector(own_broker, [availability, "edge-facerec/front-door/events"], client_id="kill-collector")

    def states() -> list[str]:
        return [m.payload.decode() for m in collector.on(availability)]

    try:
        running = Producer(config, "--then", "wait")
        running.ids_until("waiting")
        assert collector.wait_for(lambda _: states()[-1:] == ["online"])
        running.kill()
        assert collector.wait_for(lambda _: states()[-1:] == ["offline"]), "the last will marks a crash offline"

        own_broker.stop()
        queued = Producer(config, "--count", "5", "--then", "wait")
        produced = queued.ids_until("waiting")
        queued.kill()  # with the 5 events in its outbox only
        assert len(produced) == 5

        own_broker.start()
        restarted = Producer(config, "--then", "drain")
        assert restarted.ids_until("closed") == []
        log = restarted.finish()
        assert collector.wait_for(lambda messages: set(produced) <= set(event_ids(collector.on(
            "edge-facerec/front-door/events"))), timeout=15), log
        assert list(dict.fromkeys(event_ids(collector.on("edge-facerec/front-door/events")))) == produced
        assert "online" in states()[2:], "online again when the process returns"
        assert states()[-1] == "offline", "and offline after its clean exit"
    finally:
        collector.close()


def test_events_dropped_at_the_outbox_bound_are_reported_in_the_status(own_broker, tmp_path, caplog):
    collector = Collector(own_broker, ["edge-facerec/front-door/#"], client_id="bound-collector")
    own_broker.stop()  # the collector's session stays on the broker
    raw = mqtt_config(tmp_path, own_broker.mqtt_section())
    raw["mqtt"]["outbox_max_events"] = 3
    config = config_from_dict(raw)
    publisher = MqttPublisher(config)
    events = [make_event(index, config.device_id) for index in range(5)]
    with caplog.at_level(logging.WARNING, logger="edge-facerec.outbox"):
        for event in events:
            publisher.publish_event(event)
    assert caplog.text.count("because the outbox is full (outbox_max_events 3)") == 2
    own_broker.start()
    try:
        assert publisher.wait_delivered(15)
        assert collector.wait_for(lambda messages: len(collector.on("edge-facerec/front-door/events")) >= 3)
        assert collector.wait_for(lambda messages: any(
            json.loads(m.payload)["mqtt"]["outbox_dropped_full"] == 2 for m in collector.on(
                "edge-facerec/front-door/status")))
    finally:
        publisher.close()
        collector.close()
    assert event_ids(collector.on("edge-facerec/front-door/events")) == [event.id for event in events[2:]]
