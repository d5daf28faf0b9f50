"""The MQTT side of edge-actions: a persistent session subscribed to each configured device's events."""
from __future__ import annotations

import logging

import paho.mqtt.client as mqtt

from ..mqtt.connection import Connection
from ..mqtt.topics import events_topic
from .config import ActionsConfig
from .rules import Actions

log = logging.getLogger("edge-actions")


class Subscriber:
    """The MQTT side of edge-actions: a persistent session subscribed to each device's events."""

    def __init__(self, config: ActionsConfig, actions: Actions) -> None:
        self.config = config
        self.actions = actions
        self.topics = [events_topic(config.mqtt.topic_prefix, device) for device in config.devices]
        self.connection = Connection(config.mqtt, config.client_id(), log, on_connected=self._subscribe,
                                     on_message=lambda message: actions.handle(message.topic, message.payload),
                                     persistent_session=True)
        self.connection.client.on_subscribe = self._subscribed

    def _subscribe(self) -> None:
        self.connection.client.subscribe([(topic, 1) for topic in self.topics])

    def _subscribed(self, client: mqtt.Client, userdata: object, mid: int, reasons: list, properties: object) -> None:
        for topic, reason in zip(self.topics, reasons):
            if reason.is_failure:
                log.error("the broker refused the subscription to %s (%s): check the broker's ACL", topic, reason)
            else:
                log.info("subscribed to %s", topic)

    def start(self) -> None:
        self.connection.start()

    def stop(self) -> None:
        self.connection.stop()
