"""One MQTT connection as edge-facerec's clients need it: TLS, credentials, last will, reconnect forever.

paho-mqtt's network thread reconnects with a 1, 2, 4 ... 30 s backoff; this module adds
what paho leaves quiet: one clear log line when the broker cannot be reached or refuses the
credentials (repeated only when the reason changes), and a callback on every successful
(re)connection so callers can resubscribe and republish their state. The password is
handed to paho and nowhere else.

The callers' callbacks run on paho's network thread; an exception escaping one would end that
thread and leave a process that looks alive but hears nothing. Each is therefore called inside a
boundary that logs the error with the message's topic and carries on (paho then acknowledges
the message, so a poison message is not delivered again at every reconnect). The broker's
maximum packet size, when an MQTT 5 broker states it in its CONNACK, is kept in
:attr:`Connection.broker_max_packet`.
"""
from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..config import MqttClientConfig
from ..supervision import describe

RECONNECT_MIN_S = 1
RECONNECT_MAX_S = 30
MAX_INFLIGHT = 20  # QoS 1 messages awaiting PUBACK at once (paho's and mosquitto's default)
SESSION_EXPIRY_S = 24 * 3600  # MQTT 5 persistent sessions (edge-actions) outlive a day's outage


class _Client(mqtt.Client):
    """paho's client, telling why a connection attempt failed (paho only retries)."""

    connect_failed: Callable[[OSError], None] | None = None

    def reconnect(self) -> mqtt.MQTTErrorCode:
        try:
            return super().reconnect()
        except OSError as error:
            if self.connect_failed is not None:
                self.connect_failed(error)
            raise


class Connection:
    """A paho client configured from ``settings``; ``on_connected`` runs on each successful connect."""

    def __init__(self, settings: MqttClientConfig, client_id: str, log: logging.Logger, *,
                 on_connected: Callable[[], None],
                 on_message: Callable[[mqtt.MQTTMessage], None] | None = None,
                 will: tuple[str, bytes] | None = None, persistent_session: bool = False) -> None:
        self.settings = settings
        self.log = log
        self.client_id = client_id
        self.where = f"{settings.host}:{settings.port}{' (TLS)' if settings.tls.enabled else ''}"
        self._on_connected = on_connected
        self._on_message = on_message
        self._on_disconnected: Callable[[object], None] | None = None
        self._persistent = persistent_session
        self._stopping = False
        self._last_problem: str | None = None
        self.connected = threading.Event()
        self.broker_max_packet: int | None = None  # from the last CONNACK (MQTT 5 Maximum Packet Size)
        self.v5 = settings.protocol == "5"
        extra = {} if self.v5 else {"clean_session": not persistent_session}
        client = _Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         protocol=mqtt.MQTTv5 if self.v5 else mqtt.MQTTv311, **extra)
        if settings.username is not None:
            client.username_pw_set(settings.username,
                                   settings.password.reveal() if settings.password is not None else None)
        if settings.tls.enabled:
            tls = settings.tls
            client.tls_set(ca_certs=str(tls.ca_file) if tls.ca_file else None,
                           certfile=str(tls.cert_file) if tls.cert_file else None,
                           keyfile=str(tls.key_file) if tls.key_file else None)
        if will is not None:
            client.will_set(will[0], will[1], qos=1, retain=True)
        client.reconnect_delay_set(RECONNECT_MIN_S, RECONNECT_MAX_S)
        client.max_inflight_messages_set(MAX_INFLIGHT)
        client.on_connect = self._connected
        client.on_disconnect = self._disconnected
        client.on_message = self._message
        client.connect_failed = self._connect_failed
        self.client = client

    def start(self) -> None:
        """Connect in paho's network thread (retrying forever) and return at once."""
        properties = None
        if self.v5 and self._persistent:
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = SESSION_EXPIRY_S
        self.client.connect_async(self.settings.host, self.settings.port, self.settings.keepalive_s,
                                  clean_start=not self._persistent if self.v5 else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
                                  properties=properties)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect cleanly (no last will) and stop the network thread."""
        self._stopping = True
        self.client.disconnect()
        self.client.loop_stop()
        self.connected.clear()

    def _problem(self, text: str, level: int = logging.WARNING) -> None:
        if text != self._last_problem:
            self.log.log(level, "%s; retrying every %d-%d s", text, RECONNECT_MIN_S, RECONNECT_MAX_S)
            self._last_problem = text
        else:
            self.log.debug("%s", text)

    def _connect_failed(self, error: OSError) -> None:
        self._problem(f"cannot connect to the MQTT broker at {self.where}: {error}")

    def _connected(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                   properties: object) -> None:
        if getattr(reason, "is_failure", False):
            hint = (" (check mqtt.username and the password)"
                    if getattr(reason, "value", 0) in (134, 135) else "")
            self._problem(f"the MQTT broker at {self.where} refused the connection: {reason}{hint}", logging.ERROR)
            return
        self._last_problem = None
        self.broker_max_packet = getattr(properties, "MaximumPacketSize", None)
        limit = f" (maximum packet size {self.broker_max_packet} bytes)" if self.broker_max_packet else ""
        self.log.info("connected to the MQTT broker at %s as %s%s", self.where, self.client_id, limit)
        self.connected.set()
        self._guarded("the connection callback", "", self._on_connected)

    def _disconnected(self, client: mqtt.Client, userdata: object, flags: object, reason: object,
                      properties: object) -> None:
        was_connected = self.connected.is_set()
        self.connected.clear()
        if not self._stopping and was_connected:
            self.log.warning("lost the connection to the MQTT broker at %s (%s); reconnecting", self.where, reason)
            if self._on_disconnected is not None:
                self._guarded("the disconnection callback", "", self._on_disconnected, reason)

    def on_disconnected(self, callback: Callable[[object], None]) -> None:
        """Call ``callback(reason)`` when an established connection is lost (not on :meth:`stop`)."""
        self._on_disconnected = callback

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        if self._on_message is not None:
            self._guarded("a message", f" on {message.topic}", self._on_message, message)

    def _guarded(self, what: str, where: str, callback: Callable[..., None], *args: object) -> None:
        """Run a caller's callback on paho's thread; an error is logged and the thread carries on."""
        try:
            callback(*args)
        except Exception as error:  # the boundary of paho's network thread, as far as our code goes
            self.log.error("%s%s could not be handled (%s); ignored, carrying on", what, where, describe(error),
                           exc_info=error)

