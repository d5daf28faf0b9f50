"""The MQTT topic layout, in one place (the README's topic table describes it).

Everything lives under ``<prefix>/<device id>/``; the device id and person ids are slugs,
so topics are ASCII and free of ``+``, ``#`` and ``/`` whatever the display names are
(names travel in the JSON payloads only).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..config import slug

ONLINE = "online"
OFFLINE = "offline"


@dataclass(frozen=True)
class Topics:
    """The topics of one device."""

    prefix: str  # MqttConfig.topic_prefix
    device_id: str  # Config.device_id, already a slug
    discovery_prefix: str = "homeassistant"

    @property
    def base(self) -> str:
        """``<prefix>/<device id>``."""
        return f"{self.prefix}/{self.device_id}"

    @property
    def availability(self) -> str:
        """Retained ``online``/``offline``; the broker publishes ``offline`` (last will) if the process dies."""
        return f"{self.base}/availability"

    @property
    def events(self) -> str:
        """Recognized and unknown events, QoS 1, not retained, Event.to_json()."""
        return f"{self.base}/events"

    def presence(self, person_id: str) -> str:
        """Retained presence of one enrolled person (by id, slugged)."""
        return f"{self.base}/presence/{slug(person_id)}"

    @property
    def status(self) -> str:
        """Retained periodic status figures (JSON)."""
        return f"{self.base}/status"

    @property
    def face_image(self) -> str:
        """The JPEG of the latest event's face, not retained (only with mqtt.discovery_face_image)."""
        return f"{self.base}/face"

    @property
    def ha_status(self) -> str:
        """Where Home Assistant announces ``online`` after it starts."""
        return f"{self.discovery_prefix}/status"

    @property
    def ha_device_id(self) -> str:
        """This device's identifier in Home Assistant, and the object id of its discovery topic."""
        return f"edge-facerec_{self.device_id}"

    @property
    def discovery(self) -> str:
        """Home Assistant's device-based discovery topic (HA 2024.11+): one retained config, every entity."""
        return f"{self.discovery_prefix}/device/{self.ha_device_id}/config"

    def legacy_discovery(self, component: str, object_id: str) -> str:
        """A single-entity discovery topic, as edge-facerec 0.1 published them (cleared by the migration)."""
        return f"{self.discovery_prefix}/{component}/{self.device_id}/{object_id}/config"


def events_topic(prefix: str, device_id: str) -> str:
    """The events topic of ``device_id`` (for subscribers, which know devices by id)."""
    return Topics(prefix, device_id).events


def device_of_events_topic(prefix: str, topic: str) -> str | None:
    """The device id in an events topic under ``prefix``, or None when ``topic`` is not one."""
    device = topic.removeprefix(f"{prefix}/").removesuffix("/events")
    if not device or "/" in device or topic != events_topic(prefix, device):
        return None
    return device
