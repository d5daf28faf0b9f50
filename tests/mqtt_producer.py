"""A stand-in for the daemon in the MQTT tests: builds MqttPublisher from a config file exactly as
edge/commands/facerec.py does and feeds it events, printing each event id as soon as publish_event returned.

    python tests/mqtt_producer.py CONFIG --count N [--interval S] [--then close|wait|drain]

``close``: close the publisher (as the daemon does at exit); ``wait``: print ``waiting`` and
sleep until killed; ``drain``: wait up to 30 s for the outbox to empty, then close.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from edge.config import load_config
from edge.events import EnrolledPerson, Event, Liveness
from edge.mqtt.publisher import MqttPublisher

PEOPLE = [EnrolledPerson("p-alice", "Alice"), EnrolledPerson("p-zoe", "Zoë Ångström")]


def make_event(index: int, device_id: str, device: str | None = None) -> Event:
    person = PEOPLE[index % len(PEOPLE)]
    known = index % 3 != 2
    return Event(kind="recognized" if known else "unknown", device_id=device_id, device=device or device_id, camera="door",
                 person_id=person.person_id if known else None, name=person.name if known else None,
                 score=0.83 if known else 0.31, frames=3, box=(10, 20, 110, 140),
                 models={"detector": "mtcnn", "embedder": "facenet"}, track_id=index,
                 liveness=Liveness(0.97, True, 3) if known else None)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("config", type=Path)
    parser.add_argument("--count", type=int, default=0)
    parser.add_argument("--interval", type=float, default=0.0)
    parser.add_argument("--then", choices=("close", "wait", "drain"), default="close")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    config = load_config(args.config)
    publisher = MqttPublisher(config)
    publisher.people_changed(PEOPLE)
    for index in range(args.count):
        event = make_event(index, config.device_id)
        publisher.publish_event(event)
        print(event.id, flush=True)
        if args.interval:
            time.sleep(args.interval)
    if args.then == "wait":
        print("waiting", flush=True)
        while True:
            time.sleep(60)
    if args.then == "drain":
        publisher.wait_delivered(30)
    publisher.close()
    print("closed", flush=True)


if __name__ == "__main__":
    sys.exit(main())
