"""The MQTT publisher: the daemon's EventSink for a broker and Home Assistant.

``publish_event`` stores the event in the durable outbox (edge/mqtt/outbox.py) and returns; a
sender thread hands stored events to paho in order, at most MAX_INFLIGHT at a time, and
deletes each one when its PUBACK arrives. On every (re)connect paho's own queue is dropped
and the sender sends again from the oldest event not acknowledged, so the order holds across
outages and the outbox is the only queue. Retained state (availability, presence, status,
discovery) is kept in memory and re-sent on every connect, and when Home Assistant announces
``online``, in the order it was set (so a discovery config goes before the state it describes,
and a removal clears the config before the state). Topics: edge/mqtt/topics.py; discovery
payloads: edge/mqtt/ha_discovery.py; presence kept equal to this process's:
edge/mqtt/presence_state.py; moving edge-facerec 0.1's discovery to device-based:
edge/mqtt/ha_migration.py; what was announced: edge/mqtt/announced.py.

Nothing the broker does stops delivery: an event larger than the broker's maximum packet size
(``mqtt.max_packet_size``, or what an MQTT 5 broker states when connecting) is sent without its
snapshot, or moved to the outbox's dead letters when even that does not fit; so is an event the
broker refuses (an MQTT 5 PUBACK with a failure reason) or the client cannot send. A broker that
drops the connection POISON_DISCONNECTS times in a row just after the same large event was sent
(mosquitto does, over MQTT 3.1.1, for a packet above its limit) is taken to have a limit below
that event's size. The sender thread is supervised (edge/supervision.py): a round that fails is
logged, retried with backoff and shown in the health as ``mqtt-sender``.
"""
from __future__ import annotations

import base64
import logging
import queue
import threading
import time
from typing import Any

import paho.mqtt.client as mqtt

from ..config import Config
from ..events import EnrolledPerson, Event, PresenceChange, now_iso
from ..supervision import Health, Retry, start_thread
from ..untrusted import UntrustedDataError, dump_json, parse_json
from . import ha_discovery
from .announced import AnnouncedFile
from .connection import MAX_INFLIGHT, Connection
from .ha_migration import migration_messages
from .outbox import Outbox, QueuedMessage
from .presence_state import PresenceState
from .topics import OFFLINE, ONLINE, Topics

log = logging.getLogger("edge-facerec.mqtt")

IDLE_PUMP_S = 5.0  # the sender also looks at the outbox this often (expiry, missed wake-ups)
CLOSE_DRAIN_S = 2.0  # close() waits this long for unacknowledged events while connected
SNAPSHOT_KEY = "snapshot_jpeg_base64"
POISON_DISCONNECTS = 3  # connections lost in a row, each soon after ...
QUICK_DISCONNECT_S = 10.0  # ... connecting, with the same large event the oldest unacknowledged
POISON_MIN_BYTES = 1024  # only events larger than this are suspected (a plain event is ~450 bytes)
PACKET_TOO_LARGE = 0x95  # MQTT 5 DISCONNECT reason code
MIGRATION_ACK_S = 10.0  # the discovery migration counts as done once the broker acknowledged it


def publish_packet_size(topic: str, payload: bytes, v5: bool) -> int:
    """Bytes of the MQTT PUBLISH packet (QoS 1, no properties) carrying ``payload`` to ``topic``."""
    remaining = 2 + len(topic.encode()) + 2 + (1 if v5 else 0) + len(payload)
    length_bytes = 1 if remaining < 128 else 2 if remaining < 16384 else 3 if remaining < 2097152 else 4
    return 1 + length_bytes + remaining


def without_snapshot(payload: bytes) -> bytes | None:
    """The event payload without its snapshot, or None when it has none (or is not an event's JSON)."""
    try:
        event = parse_json(payload, len(payload))
    except UntrustedDataError:
        return None
    if not isinstance(event, dict) or SNAPSHOT_KEY not in event:
        return None
    del event[SNAPSHOT_KEY]
    return dump_json(event).encode()


class MqttPublisher:
    """Publishes events (QoS 1, durable), presence and status (retained) and HA discovery; thread-safe."""

    def __init__(self, config: Config, health: Health | None = None) -> None:
        settings = config.mqtt
        self.health = health or Health()
        self.topics = Topics(settings.topic_prefix, config.device_id, settings.discovery_prefix)
        self._device_name = config.device.name
        self._discovery = settings.discovery
        self._face_image = settings.discovery and settings.discovery_face_image
        self._max_packet_setting = settings.max_packet_size
        self.outbox = Outbox(settings.outbox, settings.outbox_max_events, settings.outbox_max_age_s,
                             health=self.health)
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
        self._losses_reported = self.outbox.losses
        self._closed = False
        self._closing = threading.Event()
        # sender thread only:
        self._work: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._inflight: dict[int, QueuedMessage] = {}  # paho mid -> the outbox message it carries
        self._sent_upto = 0  # highest outbox seq handed to paho since the last connect
        self._acks: list[tuple[QueuedMessage, Any]] = []  # (message, reason code) not yet applied to the outbox
        self._republish_all = False  # every retained message is due (a connect, Home Assistant's online)
        self._due_retained: dict[str, None] = {}  # ordered, as they were set
        self._subscribe_ha = False
        self._connected_at = 0.0  # monotonic
        self._suspect: tuple[int, int] = (0, 0)  # (seq of the oldest unacknowledged event at quick disconnects, count)
        self._learned_limit: int | None = None  # a packet size the broker was seen to refuse
        self._oversized_retained: set[str] = set()  # topics already reported as too large
        self.delivered = 0  # events acknowledged by the broker since start
        self.connection = Connection(settings, settings.client_id or f"edge-facerec-{config.device_id}", log,
                                     on_connected=self._connected, on_message=self._message,
                                     will=(self.topics.availability, OFFLINE.encode()))
        self.connection.on_disconnected(lambda reason: self._work.put(("disconnected", reason)))
        self.connection.client.on_publish = self._acked
        self._set_retained(self.topics.availability, ONLINE.encode())
        self._sender = start_thread("mqtt-sender", self._run, self.health, log)
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
            self._set_retained(self.topics.presence(change.person_id), dump_json(change.to_dict()).encode())
        self._announced_file.record(people=frozenset(current))

    def publish_event(self, event: Event) -> None:
        """Store the event durably (in memory while the disk cannot take it) and return; it is sent as
        soon as the broker is reachable."""
        self.outbox.add(event.id, self.topics.events, event.to_json().encode())
        self._work.put(("pump", None))
        self._report_losses()
        if self._face_image and event.snapshot_jpeg_base64 and self.connection.connected.is_set():
            self.connection.client.publish(self.topics.face_image, base64.b64decode(event.snapshot_jpeg_base64), qos=1)

    def publish_presence(self, change: PresenceChange) -> None:
        """Retained presence of one enrolled person."""
        with self._lock:
            enrolled = self._presence.changed(change)
        if enrolled:
            self._set_retained(self.topics.presence(change.person_id), dump_json(change.to_dict()).encode())

    def publish_status(self, status: dict[str, Any]) -> None:
        """Retained status: the daemon's figures plus the publisher's own under ``mqtt``."""
        with self._lock:
            self._status = dict(status)
        stats = self.outbox.stats()
        payload = {**status, "time": now_iso(time.time()),
                   "mqtt": {"connected": self.connection.connected.is_set(), "delivered": self.delivered,
                            "outbox_pending": stats.pending, "outbox_in_memory": stats.in_memory,
                            "outbox_dropped": stats.dropped, "outbox_dropped_full": stats.dropped_full,
                            "outbox_dropped_expired": stats.dropped_expired,
                            "outbox_dropped_memory": stats.dropped_memory, "dead_letters": stats.dead_lettered,
                            "snapshots_dropped": stats.snapshots_dropped, "max_packet_size": self._packet_limit()}}
        self._set_retained(self.topics.status, dump_json(payload).encode())

    def close(self) -> None:
        """Wait briefly for unacknowledged events, mark the device offline and disconnect."""
        if self._closed:
            return
        self._closed = True
        if self.connection.connected.is_set():
            self.wait_delivered(CLOSE_DRAIN_S)
        self._closing.set()
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

    def _report_losses(self) -> None:
        """Re-publish the status at once when the outbox dropped or dead-lettered events, or dropped a snapshot."""
        with self._lock:
            if self.outbox.losses == self._losses_reported:
                return
            self._losses_reported = self.outbox.losses
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

    def _connected(self) -> None:
        """On paho's thread, before paho would re-send its queue: the outbox is the queue, so paho's is dropped
        and the sender starts again from the oldest event not acknowledged."""
        self.connection.client.drop_out_messages()
        self._work.put(("connected", None))

    def _acked(self, client: mqtt.Client, userdata: object, mid: int, reason: object, properties: object) -> None:
        self._work.put(("ack", (mid, reason)))

    def _run(self) -> None:
        """The sender thread: rounds of work until told to stop; a failed round is retried with backoff."""
        retry = Retry("mqtt-sender", self.health, log)
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
            except Exception as error:  # a round that failed: logged once, retried, the thread carries on
                if self._closing.wait(retry.failed(error, "a round of sending")):
                    return
            else:
                retry.succeeded()

    def _handle(self, items: list[tuple[str, Any]]) -> bool:
        """One round of the sender thread; False when told to stop. What the items ask for is recorded
        first, then done, so a round that fails is done again by the next."""
        for kind, argument in items:
            if kind == "stop":
                return False
            if kind == "ack":
                mid, reason = argument
                message = self._inflight.pop(mid, None)
                if message is not None:
                    self._acks.append((message, reason))
            elif kind == "connected":
                self._inflight.clear()
                self._sent_upto = 0
                self._connected_at = time.monotonic()
                self._republish_all = True
                self._subscribe_ha = self._discovery
            elif kind == "disconnected":
                self._lost_connection(argument)
            elif kind == "republish":
                self._republish_all = True
            elif kind == "retained":
                self._due_retained[argument] = None
        self._apply_acks()
        if not self.connection.connected.is_set():
            return True
        if self._subscribe_ha:
            self.connection.client.subscribe(self.topics.ha_status, qos=1)
            self._subscribe_ha = False
        self._migrate_discovery()
        self._publish_retained()
        self._pump()
        self._report_losses()  # expired while waiting
        return True

    def _apply_acks(self) -> None:
        refused = [(message, reason) for message, reason in self._acks if getattr(reason, "is_failure", False)]
        accepted = [message.seq for message, reason in self._acks if not getattr(reason, "is_failure", False)]
        self._acks.clear()
        if accepted:
            self.outbox.remove(accepted)
            self.delivered += len(accepted)
        for message, reason in refused:
            self.outbox.dead_letter(message, f"the broker refused it: {reason}")

    def _publish_retained(self) -> None:
        with self._lock:
            due = dict(self._retained) if self._republish_all else {t: self._retained[t] for t in self._due_retained}
        limit = self._packet_limit()
        for topic, payload in due.items():
            if limit is not None and publish_packet_size(topic, payload, self.connection.v5) > limit:
                if topic not in self._oversized_retained:
                    log.error("retained message on %s (%d bytes) is larger than the broker's maximum packet size "
                              "(%d bytes): not sent", topic, len(payload), limit)
                    self._oversized_retained.add(topic)
                continue
            self.connection.client.publish(topic, payload, qos=1, retain=True)
        self._republish_all = False
        self._due_retained.clear()

    def _packet_limit(self) -> int | None:
        """The largest packet the broker takes, as far as known: the setting, the broker's CONNACK, or learned."""
        known = [limit for limit in (self._max_packet_setting, self.connection.broker_max_packet, self._learned_limit)
                 if limit]
        return min(known) if known else None

    def _pump(self) -> None:
        room = MAX_INFLIGHT - len(self._inflight)
        while room > 0:
            batch = self.outbox.pending(self._sent_upto, room)
            if not batch:
                return
            for message in batch:
                before, self._sent_upto = self._sent_upto, message.seq
                payload = self._fitting(message)
                if payload is None:
                    continue
                try:
                    info = self.connection.client.publish(message.topic, payload, qos=1)
                except ValueError as error:  # paho refuses the topic or a payload over 256 MB
                    self.outbox.dead_letter(message, f"the MQTT client refused it: {error}")
                    continue
                if info.rc == mqtt.MQTT_ERR_QUEUE_SIZE:  # paho's queue is full: this one goes out later
                    self._sent_upto = before
                    return
                if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                    self.outbox.dead_letter(message, f"the MQTT client refused it: {mqtt.error_string(info.rc)}")
                    continue
                self._inflight[info.mid] = message
                room -= 1

    def _fitting(self, message: QueuedMessage) -> bytes | None:
        """What to send for ``message`` within the broker's packet size: itself, itself without its snapshot,
        or nothing (None: moved to the dead letters)."""
        limit = self._packet_limit()
        size = publish_packet_size(message.topic, message.payload, self.connection.v5)
        if limit is None or size <= limit:
            return message.payload
        smaller = without_snapshot(message.payload)
        if smaller is not None and publish_packet_size(message.topic, smaller, self.connection.v5) <= limit:
            log.warning("event %s: its snapshot makes it %d bytes, more than the broker's maximum packet size "
                        "(%d bytes): sent without the snapshot", message.event_id, size, limit)
            self.outbox.shrink(message, smaller)
            return smaller
        self.outbox.dead_letter(message, f"{size} bytes, more than the broker's maximum packet size ({limit} bytes)")
        return None

    def _lost_connection(self, reason: object) -> None:
        """After a connection was lost: is the broker refusing the oldest unacknowledged event? (mosquitto drops
        an MQTT 3.1.1 client that sends a packet above its max_packet_size; MQTT 5 says PACKET_TOO_LARGE)."""
        oldest = min(self._inflight.values(), key=lambda message: message.seq, default=None)
        quick = time.monotonic() - self._connected_at < QUICK_DISCONNECT_S
        size = publish_packet_size(oldest.topic, oldest.payload, self.connection.v5) if oldest else 0
        if oldest is None or not quick or size <= POISON_MIN_BYTES:
            self._suspect = (0, 0)
            return
        count = self._suspect[1] + 1 if self._suspect[0] == oldest.seq else 1
        if getattr(reason, "value", None) == PACKET_TOO_LARGE:
            count = POISON_DISCONNECTS
        self._suspect = (oldest.seq, count)
        if count >= POISON_DISCONNECTS:
            self._learned_limit = size - 1
            self._suspect = (0, 0)
            log.error("the MQTT broker at %s dropped the connection %d times just after event %s (%d bytes) was "
                      "sent: taking %d bytes as more than its maximum packet size (state it with "
                      "mqtt.max_packet_size, or use MQTT 5)", self.connection.where, count, oldest.event_id, size,
                      size)

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
