"""The MQTT publisher: the daemon's EventSink for a broker and Home Assistant.

``publish_event`` stores the event in the durable outbox (edge/mqtt/outbox.py) and returns; a
sender thread hands stored events to paho in order, at most MAX_INFLIGHT at a time, and
deletes each one when its PUBACK arrives. After a reconnect, paho first re-sends what was in
flight and the sender waits for those acknowledgements before sending newer events, so the
order holds across outages. Retained state (availability, presence, status, discovery) is
kept in memory and re-sent on every connect, and when Home Assistant announces ``online``.
Topics: edge/mqtt/topics.py; discovery payloads: edge/mqtt/ha_discovery.py.
"""
from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from ..config import Config
from ..events import EnrolledPerson, Event, PresenceChange, now_iso
from . import ha_discovery
from .connection import MAX_INFLIGHT, Connection
from .outbox import Outbox, OutboxError
from .topics import OFFLINE, ONLINE, Topics

log = logging.getLogger("edge-facerec.mqtt")

IDLE_PUMP_S = 5.0  # the sender also looks at the outbox this often (expiry, missed wake-ups)
CLOSE_DRAIN_S = 2.0  # close() waits this long for unacknowledged events while connected


class MqttPublisher:
    """Publishes events (QoS 1, durable), presence and status (retained) and HA discovery; thread-safe."""

    def __init__(self, config: Config) -> None:
        settings = config.mqtt
        self.topics = Topics(settings.topic_prefix, config.device_id, settings.discovery_prefix)
        self._device_name = config.device.name
        self._discovery = settings.discovery
        self.outbox = Outbox(settings.outbox, settings.outbox_max_events, settings.outbox_max_age_s)
        self._people_file = settings.outbox.with_name(settings.outbox.stem + ".people.json")
        self._announced = self._load_announced()  # person ids whose entities/presence exist on the broker
        self._lock = threading.Lock()  # guards the fields below, shared with the caller's thread
        self._retained: dict[str, bytes] = {}  # topic -> payload, re-sent on every connect
        self._status: dict[str, Any] = {}
        self._figures: set[str] = set()  # status figures with a discovery config
        self._dropped_reported = self.outbox.dropped
        self._closed = False
        # sender thread only:
        self._work: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._inflight: dict[int, int] = {}  # paho mid -> outbox seq
        self._sent_upto = 0  # highest outbox seq handed to paho
        self._hold = False  # after a reconnect: until paho's re-sent events are acknowledged
        self.delivered = 0  # events acknowledged by the broker since start
        self.connection = Connection(settings, settings.client_id or f"edge-facerec-{config.device_id}", log,
                                     on_connected=lambda: self._work.put(("connected", None)),
                                     on_message=self._message, will=(self.topics.availability, OFFLINE.encode()))
        self.connection.client.on_publish = self._acked
        self._set_retained(self.topics.availability, ONLINE.encode())
        if self._discovery:
            self._set_retained(*_encoded(ha_discovery.recognition_entity(self.topics, self._device_name)))
        self._sender = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)
        self._sender.start()
        self.connection.start()

    # EventSink ------------------------------------------------------------------------------------------

    def people_changed(self, people: list[EnrolledPerson]) -> None:
        """Announce a presence entity per person; remove those of people no longer enrolled."""
        current = {person.person_id: person.name for person in people}
        with self._lock:
            removed = sorted(self._announced - current.keys())
            self._announced = set(current)
        for person_id in removed:
            log.info("person %s left the gallery: removing their presence entity", person_id)
            self._set_retained(self.topics.presence(person_id), b"")
            if self._discovery:
                self._set_retained(ha_discovery.presence_removal_topic(self.topics, person_id), b"")
        if self._discovery:
            for person_id, name in current.items():
                self._set_retained(*_encoded(ha_discovery.presence_entity(self.topics, self._device_name,
                                                                          person_id, name)))
        self._save_announced(set(current))

    def publish_event(self, event: Event) -> None:
        """Store the event durably and return; it is sent as soon as the broker is reachable."""
        payload = event.to_json().encode()
        try:
            self.outbox.add(event.id, self.topics.events, payload)
        except OutboxError as error:
            log.error("%s; sending event %s without a copy on disk", error, event.id)
            self.connection.client.publish(self.topics.events, payload, qos=1)
            return
        self._work.put(("pump", None))
        self._report_drops()

    def publish_presence(self, change: PresenceChange) -> None:
        """Retained presence of one person."""
        payload = json.dumps(change.to_dict(), ensure_ascii=False, separators=(",", ":")).encode()
        self._set_retained(self.topics.presence(change.person_id), payload)

    def publish_status(self, status: dict[str, Any]) -> None:
        """Retained status: the daemon's figures plus the publisher's own under ``mqtt``."""
        with self._lock:
            self._status = dict(status)
        stats = self.outbox.stats()
        payload = {**status, "time": now_iso(time.time()),
                   "mqtt": {"connected": self.connection.connected.is_set(), "delivered": self.delivered,
                            "outbox_pending": stats.pending, "outbox_dropped": stats.dropped,
                            "outbox_dropped_full": stats.dropped_full,
                            "outbox_dropped_expired": stats.dropped_expired}}
        if self._discovery:
            with self._lock:
                new = {k: v for k, v in ha_discovery.status_figures(payload).items() if k not in self._figures}
                self._figures.update(new)
            for key, path in new.items():
                self._set_retained(*_encoded(ha_discovery.status_entity(self.topics, self._device_name, key, path)))
        self._set_retained(self.topics.status,
                           json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())

    def close(self) -> None:
        """Wait briefly for unacknowledged events, mark the device offline and disconnect."""
        if self._closed:
            return
        self._closed = True
        if self.connection.connected.is_set():
            self.wait_delivered(CLOSE_DRAIN_S)
        self._work.put(("stop", None))
        self._sender.join(timeout=5)
        pending = self.outbox.stats().pending
        if pending:
            log.warning("%d event(s) not yet acknowledged stay in the outbox %s for the next start",
                        pending, self.outbox.path)
        if self.connection.connected.is_set():
            self.connection.client.publish(self.topics.availability, OFFLINE, qos=1,
                                           retain=True).wait_for_publish(timeout=1)
        self.connection.stop()
        self.outbox.close()

    # -----------------------------------------------------------------------------------------------------

    def wait_delivered(self, timeout: float) -> bool:
        """Wait until the broker has acknowledged every stored event; False on timeout."""
        deadline = time.monotonic() + timeout
        while self.outbox.stats().pending:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def _report_drops(self) -> None:
        """Re-publish the status at once when the outbox dropped events at a bound."""
        with self._lock:
            if self.outbox.dropped == self._dropped_reported:
                return
            self._dropped_reported = self.outbox.dropped
            status = dict(self._status)
        self.publish_status(status)

    def _set_retained(self, topic: str, payload: bytes) -> None:
        with self._lock:
            self._retained[topic] = payload
        self._work.put(("retained", topic))

    def _message(self, message: mqtt.MQTTMessage) -> None:
        if message.topic == self.topics.ha_status and message.payload == ONLINE.encode():
            log.info("Home Assistant is online: sending the discovery messages again")
            self._work.put(("republish", None))

    def _acked(self, client: mqtt.Client, userdata: object, mid: int, reason: object, properties: object) -> None:
        self._work.put(("ack", mid))

    def _run(self) -> None:
        while True:
            try:
                items = [self._work.get(timeout=IDLE_PUMP_S)]
            except queue.Empty:
                items = []
            while not self._work.empty():
                items.append(self._work.get())
            try:
                if not self._handle(items):
                    return
            except (OutboxError, OSError, ValueError) as error:
                log.error("MQTT sender: %s", error)

    def _handle(self, items: list[tuple[str, Any]]) -> bool:
        """One round of the sender thread; False when told to stop."""
        everything, topics, acked = False, set(), []
        for kind, argument in items:
            if kind == "stop":
                return False
            if kind == "ack":
                seq = self._inflight.pop(argument, None)
                if seq is not None:
                    acked.append(seq)
            elif kind == "connected":
                self._hold = bool(self._inflight)
                everything = True
                if self._discovery:
                    self.connection.client.subscribe(self.topics.ha_status, qos=1)
            elif kind == "republish":
                everything = True
            elif kind == "retained":
                topics.add(argument)
        if acked:
            self.outbox.remove(acked)
            self.delivered += len(acked)
        if self._hold and not self._inflight:
            self._hold = False
        if not self.connection.connected.is_set():
            return True
        with self._lock:
            retained = dict(self._retained) if everything else {t: self._retained[t] for t in topics}
        for topic, payload in retained.items():
            self.connection.client.publish(topic, payload, qos=1, retain=True)
        if not self._hold:
            self._pump()
        self._report_drops()  # expired while waiting
        return True

    def _pump(self) -> None:
        room = MAX_INFLIGHT - len(self._inflight)
        if room <= 0:
            return
        for message in self.outbox.pending(self._sent_upto, room):
            info = self.connection.client.publish(message.topic, message.payload, qos=1)
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.error("MQTT client refused event %s (%s); it stays in the outbox",
                          message.event_id, mqtt.error_string(info.rc))
                return
            self._inflight[info.mid] = message.seq
            self._sent_upto = message.seq

    def _load_announced(self) -> set[str]:
        try:
            return set(json.loads(self._people_file.read_text(encoding="utf-8"))["people"])
        except FileNotFoundError:
            return set()
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("%s: cannot read the announced people (%s); removals of earlier people may be missed",
                        self._people_file, error)
            return set()

    def _save_announced(self, people: set[str]) -> None:
        temporary = self._people_file.with_name(self._people_file.name + ".tmp")
        try:
            descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(descriptor, "w", encoding="utf-8") as stream:
                json.dump({"people": sorted(people)}, stream)
                stream.flush()
                os.fsync(stream.fileno())
            os.replace(temporary, self._people_file)
        except OSError as error:
            log.warning("%s: cannot record the announced people (%s)", self._people_file, error)


def _encoded(entity: tuple[str, dict[str, Any]]) -> tuple[str, bytes]:
    return entity[0], ha_discovery.encode(entity[1])

