"""The Home Assistant sensors that show the daemon's status figures: which, named and classed how.

A fixed catalog, so every sensor is announced with the device as soon as the daemon connects
(not when a figure first appears). A small set is enabled by default: the camera's state (with
the reason of a failure as an attribute), the daemon's health (likewise), frame rate, faces seen,
events, undelivered events and memory; the rest are diagnostics a user can enable. Counters are ``total_increasing`` (they start
again at 0 with each process, which Home Assistant reads as a reset); durations and sizes carry
their device class. Each template renders ``None`` (the sensor becomes unknown) when its figure is
not in the status, so a status without a figure never leaves Home Assistant showing an old value.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .topics import Topics

CAMERA_STATES = ("starting", "opening", "running", "failed", "ended", "stopped")  # edge/daemon/capture.py
HEALTH_STATES = ("ok", "degraded", "failed")  # edge/supervision.py Health.state
SEARCH_REASONS = (("tracking", "tracking"), ("motion", "motion"), ("region", "motion near a face"),
                  ("keepalive", "keep-alive"))  # edge/vision/gated_detection.py REASONS, but skipped
LATENCY_STAGES = (("motion", "Motion check"), ("detect", "Detection"), ("quality", "Quality check"), ("embed", "Embedding"),
                  ("match", "Matching"), ("liveness", "Liveness check"), ("track", "Tracking"),
                  ("total", "Frame processing"))  # edge/daemon/status.py STAGES
# The status payload as a mapping ({} when the payload is not JSON): no template touches an undefined value.
_STATUS = "{% set status = value_json if value_json is mapping else {} %}"


def figure(*path: str) -> str:
    """Jinja expression: the status value at ``path`` (e.g. "frames", "processed"), none when absent."""
    return "status" + "".join(f".get('{part}', {{}})" for part in path[:-1]) + f".get('{path[-1]}')"


@dataclass(frozen=True)
class StatusSensor:
    """One sensor fed by the status topic."""

    key: str  # its component id in the device's discovery config, and the end of its unique id
    name: str  # shown after the device's name: "Front Door Memory"
    value: str  # Jinja expression over ``status`` (a mapping): the sensor's value, none when absent
    unit: str | None = None
    device_class: str | None = None
    state_class: str | None = None
    precision: int | None = None  # suggested display precision
    enabled: bool = False  # False: a diagnostic the user may enable
    diagnostic: bool = True
    icon: str | None = None

    def component(self, topics: Topics) -> dict[str, Any]:
        """This sensor's entry in the device's discovery ``components``."""
        config: dict[str, Any] = {"platform": "sensor", "name": self.name,
                                  "unique_id": f"{topics.ha_device_id}_{self.key}", "state_topic": topics.status,
                                  "value_template": self.template(), "qos": 1}
        optional = {"unit_of_measurement": self.unit, "device_class": self.device_class,
                    "state_class": self.state_class, "suggested_display_precision": self.precision,
                    "icon": self.icon, "entity_category": "diagnostic" if self.diagnostic else None,
                    "enabled_by_default": None if self.enabled else False}
        config.update({key: value for key, value in optional.items() if value is not None})
        return config

    def template(self) -> str:
        """The value template: a number, or None when the figure is absent."""
        return f"{_STATUS}{{% set v = {self.value} %}}{{{{ v if v is number else None }}}}"


@dataclass(frozen=True)
class StateSensor(StatusSensor):
    """A state word (the camera's ``running``, ``failed`` ...; the health's ``ok`` ...) out of ``options``; what
    follows the word (a failure's reason) is its ``reason`` attribute."""

    options: tuple[str, ...] = ()

    def component(self, topics: Topics) -> dict[str, Any]:
        config = super().component(topics)
        config["options"] = list(self.options)
        config["json_attributes_topic"] = topics.status
        config["json_attributes_template"] = (
            f"{_STATUS}{{% set c = {self.value} %}}"
            "{{ {'reason': c.split(': ', 1)[1] if c is string and ': ' in c else none} | to_json }}")
        return config

    def template(self) -> str:
        return (f"{_STATUS}{{% set c = {self.value} %}}{{% set v = c.split(':')[0] if c is string else none %}}"
                f"{{{{ v if v in {list(self.options)} else None }}}}")


def _counter(key: str, name: str, value: str, **options: Any) -> StatusSensor:
    return StatusSensor(key, name, value, state_class="total_increasing", **options)


def _latency(stage: str, label: str, p95: bool) -> StatusSensor:
    return StatusSensor(f"{stage}_time_p95" if p95 else f"{stage}_time",
                        f"{label} time, 95th percentile" if p95 else f"{label} time",
                        figure("latency", stage, "p95_ms" if p95 else "median_ms"), unit="ms", device_class="duration",
                        state_class="measurement", precision=1)


SENSORS: tuple[StatusSensor, ...] = (
    # the default set
    StateSensor("camera", "Camera", figure("camera"), device_class="enum", enabled=True, diagnostic=False,
                icon="mdi:cctv", options=CAMERA_STATES),
    StateSensor("health", "Health", figure("state"), device_class="enum", enabled=True, icon="mdi:heart-pulse",
                options=HEALTH_STATES),
    _counter("faces_seen", "Faces seen", figure("faces", "seen"), enabled=True, diagnostic=False,
             icon="mdi:face-recognition"),
    _counter("events", "Events", "(status.get('events').values() | sum) if status.get('events') is mapping else none",
             enabled=True, diagnostic=False, icon="mdi:account-check"),
    StatusSensor("fps", "Frame rate", figure("fps"), unit="fps", state_class="measurement", precision=1, enabled=True,
                 icon="mdi:speedometer"),
    StatusSensor("outbox_pending", "Undelivered events", figure("mqtt", "outbox_pending"), state_class="measurement",
                 enabled=True, icon="mdi:tray-full"),
    StatusSensor("memory", "Memory", figure("rss_mb"), unit="MiB", device_class="data_size",
                 state_class="measurement", precision=0, enabled=True),
    # diagnostics, disabled by default
    StatusSensor("uptime", "Uptime", figure("uptime_s"), unit="s", device_class="duration", precision=0),
    _counter("frames_captured", "Frames captured", figure("frames", "captured")),
    _counter("frames_processed", "Frames processed", figure("frames", "processed")),
    _counter("frames_dropped", "Frames dropped", figure("frames", "dropped")),
    _counter("frames_failed", "Frames failed", figure("frames", "failed")),
    _counter("detector_runs", "Detector runs", figure("detection", "calls")),
    _counter("detector_skipped", "Frames not searched", figure("detection", "skipped")),
    *(_counter(f"detector_runs_{reason}", f"Detector runs, {label}", figure("detection", "by_reason", reason))
      for reason, label in SEARCH_REASONS),
    _counter("faces_rejected", "Faces rejected by quality", figure("faces", "rejected_by_quality")),
    _counter("faces_embedded", "Faces embedded", figure("faces", "embedded")),
    _counter("events_recognized", "Recognized events", figure("events", "recognized")),
    _counter("events_unknown", "Unknown-face events", figure("events", "unknown")),
    _counter("events_delivered", "Events delivered", figure("mqtt", "delivered")),
    _counter("events_dropped", "Events dropped", figure("mqtt", "outbox_dropped")),
    _counter("events_dropped_full", "Events dropped, outbox full", figure("mqtt", "outbox_dropped_full")),
    _counter("events_dropped_expired", "Events dropped, too old", figure("mqtt", "outbox_dropped_expired")),
    _counter("events_dropped_memory", "Events dropped, memory full", figure("mqtt", "outbox_dropped_memory")),
    _counter("dead_letters", "Dead-lettered events", figure("mqtt", "dead_letters")),
    _counter("snapshots_dropped", "Snapshots dropped", figure("mqtt", "snapshots_dropped")),
    StatusSensor("events_in_memory", "Events held in memory", figure("mqtt", "outbox_in_memory"),
                 state_class="measurement"),
    StatusSensor("max_packet_size", "Broker maximum packet size", figure("mqtt", "max_packet_size"), unit="B",
                 device_class="data_size"),
    *(_latency(stage, label, p95) for stage, label in LATENCY_STAGES for p95 in (False, True)),
)
