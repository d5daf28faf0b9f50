"""Moving an installation from edge-facerec 0.1's discovery (one retained config per entity) to the
device-based config of edge/mqtt/ha_discovery.py, keeping the entities a user already has.

Home Assistant's documented migration: ``{"migrate_discovery": true}`` on each old config topic of an
entity that carries over (Home Assistant unloads it but keeps its registry entry, so its entity id,
name, area and history stay), then the device config with the same unique ids, then an empty retained
message on every old topic. The recognition entity and each person's presence carry over; the old
status sensors (``status_rss_mb`` ...) are replaced by the named sensors of edge/mqtt/ha_sensors.py
and only cleared, which deletes them.
"""
from __future__ import annotations

from collections.abc import Iterable

from .ha_discovery import presence_component_id
from .ha_sensors import LATENCY_STAGES
from .topics import Topics

MIGRATE = b'{"migrate_discovery":true}'
# Every status figure single-entity discovery announced as a sensor (object id status_<figure>): edge-facerec
# 0.1's, and those the versions before device-based discovery added.
LEGACY_STATUS_FIGURES = (
    "uptime_s", "fps", "frames_captured", "frames_processed", "frames_dropped", "frames_failed", "faces_seen",
    "faces_rejected_by_quality", "faces_embedded", "events_recognized", "events_unknown", "rss_mb",
    "detection_calls", "detection_skipped",
    *(f"detection_by_reason_{reason}" for reason in ("tracking", "motion", "region", "keepalive", "skipped")),
    "mqtt_delivered", "mqtt_outbox_pending", "mqtt_outbox_in_memory", "mqtt_outbox_dropped",
    "mqtt_outbox_dropped_full", "mqtt_outbox_dropped_expired", "mqtt_outbox_dropped_memory", "mqtt_dead_letters",
    "mqtt_snapshots_dropped", "mqtt_max_packet_size",
    *(f"latency_{stage}_{statistic}" for stage, _ in LATENCY_STAGES for statistic in ("median_ms", "p95_ms")),
)


def migration_messages(topics: Topics, legacy_people: Iterable[str], device_config: bytes) -> list[tuple[str, bytes]]:
    """The retained messages to send, in this order, to move from the old configs (of these person ids)
    to ``device_config``."""
    kept = [topics.legacy_discovery("event", "recognition"),
            *(topics.legacy_discovery("binary_sensor", presence_component_id(pid)) for pid in sorted(legacy_people))]
    dropped = [topics.legacy_discovery("sensor", f"status_{key}") for key in LEGACY_STATUS_FIGURES]
    return ([(topic, MIGRATE) for topic in kept] + [(topics.discovery, device_config)]
            + [(topic, b"") for topic in kept + dropped])
