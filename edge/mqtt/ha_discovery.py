"""Home Assistant MQTT discovery: the retained config messages that describe this device's entities.

One device (identified by the device id) with: an ``event`` entity for recognitions, a
``binary_sensor`` (device class presence) per enrolled person, and a diagnostic ``sensor``
per numeric status figure. All carry the availability topic, so they show unavailable when
the daemon is offline. Pure functions: the publisher decides when to send them.
"""
from __future__ import annotations

import json
import re
from typing import Any

from .. import __version__
from ..config import slug
from ..events import EVENT_KINDS
from .topics import OFFLINE, ONLINE, Topics

_UNITS = (("_ms", "ms"), ("_s", "s"), ("_mb", "MB"), ("fps", "fps"))
_FIGURE_KEY = re.compile(r"^[A-Za-z0-9_]+$")

# The event entity's state is a JSON object with "event_type"; the other keys become its attributes.
_EVENT_TEMPLATE = ("{{ {'event_type': value_json.kind, 'person_id': value_json.person_id, "
                   "'name': value_json.name, 'score': value_json.score, 'camera': value_json.camera, "
                   "'event_id': value_json.id, "
                   "'live': value_json.liveness.live if value_json.liveness else none, "
                   "'liveness': value_json.liveness.score if value_json.liveness else none} | to_json }}")


def device_block(topics: Topics, device_name: str) -> dict[str, Any]:
    """The ``device`` block shared by all entities, grouping them under one device."""
    return {"identifiers": [f"edge-facerec_{topics.device_id}"], "name": device_name,
            "manufacturer": "edge-facerec", "model": "edge-facerec face recognition", "sw_version": __version__}


def _common(topics: Topics, device_name: str, object_id: str, name: str | None) -> dict[str, Any]:
    return {
        "name": name,
        "unique_id": f"edge-facerec_{topics.device_id}_{object_id}",
        "device": device_block(topics, device_name),
        "availability": [{"topic": topics.availability, "payload_available": ONLINE,
                          "payload_not_available": OFFLINE}],
        "origin": {"name": "edge-facerec", "sw_version": __version__},
        "qos": 1,
    }


def recognition_entity(topics: Topics, device_name: str) -> tuple[str, dict[str, Any]]:
    """(config topic, config) of the event entity fed by the events topic."""
    object_id = "recognition"
    config = _common(topics, device_name, object_id, "Recognition")
    config.update({"state_topic": topics.events, "event_types": list(EVENT_KINDS),
                   "value_template": _EVENT_TEMPLATE, "icon": "mdi:face-recognition"})
    return topics.discovery("event", object_id), config


def presence_object_id(person_id: str) -> str:
    """Object id of a person's presence entity (topic-safe)."""
    return f"presence_{slug(person_id).replace('-', '_')}"


def presence_entity(topics: Topics, device_name: str, person_id: str, name: str) -> tuple[str, dict[str, Any]]:
    """(config topic, config) of one person's presence binary sensor."""
    object_id = presence_object_id(person_id)
    config = _common(topics, device_name, object_id, name)
    topic = topics.presence(person_id)
    config.update({"state_topic": topic, "value_template": "{{ value_json.state }}", "payload_on": "present",
                   "payload_off": "away", "device_class": "presence", "json_attributes_topic": topic})
    return topics.discovery("binary_sensor", object_id), config


def presence_removal_topic(topics: Topics, person_id: str) -> str:
    """Config topic to clear (empty retained message) when a person leaves the gallery."""
    return topics.discovery("binary_sensor", presence_object_id(person_id))


def status_figures(status: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """Numeric leaves of a status dict (nested up to 3 levels): flat key -> path, e.g. frames_processed."""
    figures: dict[str, tuple[str, ...]] = {}

    def walk(value: Any, path: tuple[str, ...]) -> None:
        if isinstance(value, dict) and len(path) < 3:
            for key, inner in value.items():
                if isinstance(key, str) and _FIGURE_KEY.match(key):
                    walk(inner, (*path, key))
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and path:
            figures["_".join(path).lower()] = path

    walk(status, ())
    return figures


def status_entity(topics: Topics, device_name: str, key: str, path: tuple[str, ...]) -> tuple[str, dict[str, Any]]:
    """(config topic, config) of a diagnostic sensor showing one status figure."""
    object_id = f"status_{key}"
    config = _common(topics, device_name, object_id, key.replace("_", " ").capitalize())
    template = "{{ value_json" + "".join(f"['{part}']" for part in path) + " }}"
    config.update({"state_topic": topics.status, "value_template": template, "state_class": "measurement",
                   "entity_category": "diagnostic"})
    unit = next((unit for suffix, unit in _UNITS if key.endswith(suffix)), None)
    if unit is not None:
        config["unit_of_measurement"] = unit
    return topics.discovery("sensor", object_id), config


def encode(config: dict[str, Any]) -> bytes:
    """The retained payload of a config message."""
    return json.dumps(config, ensure_ascii=False, separators=(",", ":")).encode()
