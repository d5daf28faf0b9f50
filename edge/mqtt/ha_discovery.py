"""Home Assistant MQTT discovery: the one retained config that describes this device and its entities.

Device-based discovery (Home Assistant 2024.11+): a single config on ``<prefix>/device/edge-facerec_<device
id>/config`` lists every entity as a component, so Home Assistant always sees the whole set at once: an
``event`` entity for recognitions, a ``binary_sensor`` (device class presence) per enrolled person, the
status sensors of edge/mqtt/ha_sensors.py, and, opt-in, an ``image`` of the latest event's face. A
component that must go (a person removed from the gallery, the face image turned off) is listed with
its platform only, which is how Home Assistant is told to delete an entity. All share the
availability topic, so they show unavailable when the daemon is offline. Every template tolerates
an empty or non-JSON payload (rendering nothing, which Home Assistant ignores). Pure functions:
the publisher decides when to send them.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .. import __version__
from ..config import slug
from ..events import EVENT_KINDS, EnrolledPerson
from .ha_sensors import SENSORS
from .topics import OFFLINE, ONLINE, Topics

# The event entity's state is a JSON object with "event_type"; the other keys become its attributes. "time" is
# the event's own time (Home Assistant stamps the entity with the arrival time, late after an outage).
_EVENT_TEMPLATE = ("{% if value_json is mapping %}{{ {'event_type': value_json.kind, 'person_id': value_json.person_id, "
                   "'name': value_json.name, 'score': value_json.score, 'camera': value_json.camera, "
                   "'time': value_json.time, 'event_id': value_json.id, 'device_id': value_json.device_id, "
                   "'live': value_json.liveness.live if value_json.liveness else none, "
                   "'liveness': value_json.liveness.score if value_json.liveness else none} | to_json }}{% endif %}")
_PRESENCE_TEMPLATE = "{{ value_json.state if value_json is mapping and value_json.state is defined else '' }}"
_PRESENCE_ATTRIBUTES = "{{ value if value_json is mapping else '{}' }}"
FACE_IMAGE = "face"  # the image entity's component id


def device_block(topics: Topics, device_name: str) -> dict[str, Any]:
    """The ``device`` block: what Home Assistant shows as the device."""
    return {"identifiers": [topics.ha_device_id], "name": device_name, "manufacturer": "edge-facerec",
            "model": "edge-facerec face recognition", "sw_version": __version__}


def _entity(topics: Topics, platform: str, component_id: str, name: str | None) -> dict[str, Any]:
    return {"platform": platform, "name": name, "unique_id": f"{topics.ha_device_id}_{component_id}", "qos": 1}


def recognition_component(topics: Topics) -> dict[str, Any]:
    """The event entity fed by the events topic."""
    config = _entity(topics, "event", "recognition", "Recognition")
    config.update({"state_topic": topics.events, "event_types": list(EVENT_KINDS), "value_template": _EVENT_TEMPLATE,
                   "icon": "mdi:face-recognition"})
    return config


def presence_component_id(person_id: str) -> str:
    """Component id of a person's presence entity (the object id edge-facerec 0.1 used, so ids carry over)."""
    return f"presence_{slug(person_id).replace('-', '_')}"


def presence_component(topics: Topics, person: EnrolledPerson) -> dict[str, Any]:
    """One person's presence binary sensor, named with their display name."""
    config = _entity(topics, "binary_sensor", presence_component_id(person.person_id), person.name)
    topic = topics.presence(person.person_id)
    config.update({"state_topic": topic, "value_template": _PRESENCE_TEMPLATE, "payload_on": "present",
                   "payload_off": "away", "device_class": "presence", "json_attributes_topic": topic,
                   "json_attributes_template": _PRESENCE_ATTRIBUTES})
    return config


def face_image_component(topics: Topics) -> dict[str, Any]:
    """The image entity showing the JPEG of the latest event's face."""
    config = _entity(topics, "image", FACE_IMAGE, "Face")
    config.update({"image_topic": topics.face_image, "content_type": "image/jpeg"})
    return config


def device_config(topics: Topics, device_name: str, people: Iterable[EnrolledPerson], removed: Iterable[str],
                  face_image: bool) -> dict[str, Any]:
    """The device's discovery config: every entity, and a platform-only entry for each one to delete
    (the presence of the ``removed`` person ids; the face image when it is off)."""
    components: dict[str, dict[str, Any]] = {"recognition": recognition_component(topics)}
    components.update({sensor.key: sensor.component(topics) for sensor in SENSORS})
    components.update({presence_component_id(pid): {"platform": "binary_sensor"} for pid in removed})
    components.update({presence_component_id(p.person_id): presence_component(topics, p) for p in people})
    components[FACE_IMAGE] = face_image_component(topics) if face_image else {"platform": "image"}
    return {"device": device_block(topics, device_name), "origin": {"name": "edge-facerec", "sw_version": __version__},
            "availability": [{"topic": topics.availability, "payload_available": ONLINE,
                              "payload_not_available": OFFLINE}],
            "components": components}


def encode(config: dict[str, Any]) -> bytes:
    """The retained payload of a config message."""
    return json.dumps(config, ensure_ascii=False, separators=(",", ":")).encode()
