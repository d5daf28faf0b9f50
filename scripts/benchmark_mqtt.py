"""MQTT figures for docs/mqtt.md: the outbox's cost per event and the publisher's sustained rate.

    python scripts/benchmark_mqtt.py [--events 3000] [--dir /var/lib/edge-facerec]

1. Outbox: add + read + remove of one event (what each event costs the daemon on disk), with
   the shipped ``synchronous=FULL`` and, for comparison, ``NORMAL``; in ``--dir`` (default: a
   temporary folder; point it at the device's SD card for the figures that matter there).
2. Publisher: a mosquitto started on loopback (tests/mosquitto.py), ``--events`` events through
   MqttPublisher at QoS 1 as fast as possible: how long ``publish_event`` blocks the caller and
   how many events per second reach a PUBACK; and plain paho QoS 1 without the outbox.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from mosquitto import USERS, Broker  # noqa: E402  (the tests' broker helper)
from mqtt_producer import make_event  # noqa: E402

from edge.config import config_from_dict  # noqa: E402
from edge.mqtt.outbox import Outbox  # noqa: E402
from edge.mqtt.publisher import MqttPublisher  # noqa: E402


def outbox_cost(folder: Path, count: int, synchronous: str) -> tuple[float, float]:
    """(median µs of add, median µs of add + pending + remove) per event."""
    path = folder / f"bench-{synchronous}.sqlite3"
    outbox = Outbox(path, max_events=count + 1, max_age_s=3600)
    outbox._db.execute(f"PRAGMA synchronous={synchronous}")  # benchmark only: compare with the shipped FULL
    payload = make_event(0, "bench").to_json().encode()
    adds, cycles = [], []
    for index in range(count):
        start = time.perf_counter()
        outbox.add(f"id{index}", "t", payload)
        added = time.perf_counter()
        (message,) = outbox.pending(0, 1)
        outbox.remove([message.seq])
        cycles.append(time.perf_counter() - start)
        adds.append(added - start)
    outbox.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return statistics.median(adds) * 1e6, statistics.median(cycles) * 1e6


def publisher_rate(broker: Broker, folder: Path, count: int) -> tuple[float, float, float]:
    """(events/s to PUBACK, median ms and 99th percentile ms that publish_event blocks)."""
    section = broker.mqtt_section()
    config = config_from_dict({"device": {"name": "bench"}, "mqtt": {
        **section, "enabled": True, "discovery": False, "outbox": str(folder / "publisher.sqlite3"),
        "outbox_max_events": count + 1}})
    publisher = MqttPublisher(config)
    publisher.connection.connected.wait(10)
    events = [make_event(index, "bench") for index in range(count)]
    calls = []
    start = time.perf_counter()
    for event in events:
        before = time.perf_counter()
        publisher.publish_event(event)
        calls.append(time.perf_counter() - before)
    if not publisher.wait_delivered(300):
        raise RuntimeError("the broker did not acknowledge every event")
    elapsed = time.perf_counter() - start
    publisher.close()
    calls.sort()
    return count / elapsed, statistics.median(calls) * 1e3, calls[int(len(calls) * 0.99)] * 1e3


def paho_rate(broker: Broker, count: int) -> float:
    """Events/s to PUBACK with paho alone (QoS 1, 20 in flight, no outbox)."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set("edge-facerec", USERS["edge-facerec"])
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    payload = make_event(0, "bench").to_json().encode()
    start = time.perf_counter()
    infos = [client.publish("edge-facerec/bench/events", payload, qos=1) for _ in range(count)]
    for info in infos:
        info.wait_for_publish(60)
    elapsed = time.perf_counter() - start
    client.disconnect()
    client.loop_stop()
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=3000)
    parser.add_argument("--dir", type=Path, default=None, help="folder for the outbox files (default: temporary)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory() as scratch:
        folder = args.dir or Path(scratch)
        for synchronous in ("FULL", "NORMAL"):
            add_us, cycle_us = outbox_cost(folder, min(args.events, 1000), synchronous)
            print(f"outbox synchronous={synchronous:6s} add {add_us:8.0f} µs/event, "
                  f"add+read+remove {cycle_us:8.0f} µs/event  ({folder})")
        broker = Broker(Path(scratch) / "broker", tls=False)
        broker.start()
        try:
            rate, median_ms, p99_ms = publisher_rate(broker, Path(scratch), args.events)
            print(f"MqttPublisher QoS 1, loopback: {rate:7.0f} events/s acknowledged; publish_event blocks "
                  f"median {median_ms:.2f} ms, p99 {p99_ms:.2f} ms  ({args.events} events)")
            print(f"paho alone  QoS 1, loopback: {paho_rate(broker, args.events):7.0f} events/s acknowledged")
        finally:
            broker.stop()


if __name__ == "__main__":
    main()
