"""The MQTT publisher: the daemon's EventSink for a broker and Home Assistant.

``publish_event`` stores the event in the durable outbox (edge/mqtt/outbox.py) and returns; a
sender thread hands stored events to paho in order, at most MAX_INFLIGHT at a time, and
deletes each one when its PUBACK arrives. After a reconnect, paho first re-sends what was in
flight and the sender waits for those acknowledgements before sending newer events, so the
order holds across outages. Retained state (availability, presence, status, discovery) is
kept in memory and re-sent on every connect, and when Home Assistant announces ``online``, in
the order it was set (so a discovery config goes before the state it describes, and a removal
clears the config before the state). Topics: edge/mqtt/topics.py; discovery payloads:
edge/mqtt/ha_discovery.py; presence kept equal to this process's: edge/mqtt/presence_state.py;
moving edge-facerec 0.1's discovery to device-based: edge/mqtt/ha_migration.py.
"""
from __future__ import annotations

import base64
import json
import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from ..config import Config
from ..events import EnrolledPerson, Event, PresenceChange, now_iso
from . import ha_discovery
from .announced import AnnouncedFile
from .connection import MAX_INFLIGHT, Connection
from .ha_migration import migration_messages
from .outbox import Outbox, OutboxError
from .presence_state import PresenceState
from .topics import OFFLINE, ONLINE, Topics

log = logging.getLogger("edge-facerec.mqtt")

IDLE_PUMP_S = 5.0  # the sender also looks at the outbox this often (expiry, missed wake-ups)
CLOSE_DRAIN_S = 2.0  # close() waits this long for unacknowledged events while connected
MIGRATION_ACK_S = 10.0  # the discovery migration counts as done once the broker acknowledged it


class MqttPublisher:
    """Publishes events (QoS 1, durable), presence and status (retained) and HA discovery; thread-safe."""

    def __init__(self, config: Config) -> None:
        settings = config.mqtt
        self.topics = Topics(settings.topic_prefix, config.device_id, settings.discovery_prefix)
        self._device_name = config.device.name
        self._discovery = settings.discovery
        self._face_image = settings.discovery and settings.discovery_face_image
        self.outbox = Outbox(settings.outbox, settings.outbox_max_events, settings.outbox_max_age_s)
        self._announced_file = AnnouncedFile(settings.outbox.with_name(settings.outbox.stem + ".people.json"), log)
        # person ids whose entities/presence exist on the broker; edge-facerec 0.1's ones to migrate
        self._announced = set(self._announced_file.current.people)
        migrate = self._discovery and not self._announced_file.current.device_discovery
        self._legacy_people = self._announced.copy() if migrate else None
        self._lock = threading.Lock()  # guards the fields below, shared with the caller's thread
        self._retained: dict[str, bytes] = {}  # topic -> payload, re-sent on every connect, in this order
        self._presence = PresenceState(config.device_id, config.device.name)
        self._removed: set[str] = set()  # people removed since the start: their entities are deleted
        self._status: dict[str, Any] = {}
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
        self._sender = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)
        self._sender.start()
        self.connection.start()

    # EventSink ------------------------------------------------------------------------------------------

    def people_changed(self, people: list[EnrolledPerson]) -> None:
        """Announce the device with a presence entity per person, deleting those of people no longer enrolled
        (their config first, then their retained presence), and give each newly enrolled person a presence."""
        current = {person.person_id for person in people}
        with self._lock:
            removed = sorted(self._announced - current)
            self._announced = set(current)
            self._removed = (self._removed | set(removed)) - current
            presence = self._presence.enrolled(people)
            config = ha_discovery.device_config(self.topics, self._device_name, people, sorted(self._removed),
                                                self._face_image)
        if self._discovery:
            self._set_retained(self.topics.discovery, ha_discovery.encode(config))
        for person_id in removed:
            log.info("person %s left the gallery: removing their presence entity", person_id)
            self._set_retained(self.topics.presence(person_id), b"")
        for change in presence:
            self._set_retained(self.topics.presence(change.person_id), _json(change.to_dict()))
        self._announced_file.record(people=frozenset(current))

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
        if self._face_image and event.snapshot_jpeg_base64 and self.connection.connected.is_set():
            self.connection.client.publish(self.topics.face_image, base64.b64decode(event.snapshot_jpeg_base64), qos=1)

    def publish_presence(self, change: PresenceChange) -> None:
        """Retained presence of one enrolled person."""
        with self._lock:
            enrolled = self._presence.changed(change)
        if enrolled:
            self._set_retained(self.topics.presence(change.person_id), _json(change.to_dict()))

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
        self._set_retained(self.topics.status, _json(payload))

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
        """Keep ``payload`` as the retained state of ``topic``; a cleared topic (empty payload) moves to the end,
        so a full re-send clears after it configures, as a live removal does."""
        with self._lock:
            if not payload:
                self._retained.pop(topic, None)
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
        everything, topics, acked = False, {}, []  # topics: ordered, as they were set
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
                topics[argument] = None
        if acked:
            self.outbox.remove(acked)
            self.delivered += len(acked)
        if self._hold and not self._inflight:
            self._hold = False
        if not self.connection.connected.is_set():
            return True
        self._migrate_discovery()
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

    def _migrate_discovery(self) -> None:
        """Once, on the sender thread while connected, before the retained state: move edge-facerec 0.1's
        single-entity discovery to the device config (edge/mqtt/ha_migration.py), and record it when the broker
        has acknowledged it."""
        with self._lock:
            device_config = self._retained.get(self.topics.discovery)
        if self._legacy_people is None or not device_config:
            return
        messages = migration_messages(self.topics, self._legacy_people, device_config)
        for topic, payload in messages:
            info = self.connection.client.publish(topic, payload, qos=1, retain=True)
        try:
            info.wait_for_publish(MIGRATION_ACK_S)
        except (RuntimeError, ValueError) as error:
            log.warning("Home Assistant discovery migration not acknowledged (%s); done again at the next connect",
                        error)
            return
        if info.is_published():
            log.info("Home Assistant discovery moved to one device config (%d old entity configs migrated or "
                     "cleared)", sum(1 for _, payload in messages if not payload))
            self._legacy_people = None
            self._announced_file.record(device_discovery=True)


def _json(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()

