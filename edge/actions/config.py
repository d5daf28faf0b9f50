"""edge-actions' configuration: which devices to listen to and which commands to run, validated.

Same rules as the daemon's config (edge/config.py, whose machinery this reuses): unknown keys,
wrong types and impossible values are refused with one line naming the file and the key.
"""
from __future__ import annotations

import os
import socket
import typing
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from ..config import (ConfigError, MqttClientConfig, build_section, check_bounds, read_yaml, slug,
                      validate_mqtt_client)
from ..untrusted import Bounds

DEFAULT_ACTIONS_PATH = Path("/etc/edge-actions/actions.yaml")
DAY_S = 24 * 3600
RULE_BOUNDS = {"min_score": Bounds(0, 1), "cooldown_s": Bounds(0, DAY_S), "timeout_s": Bounds(0, DAY_S, low_open=True)}
PACKAGE_OF = {"gpioset": "gpiod", "gpioget": "gpiod", "pinctrl": "raspi-utils", "mosquitto_pub": "mosquitto-clients",
              "curl": "curl", "aplay": "alsa-utils", "espeak-ng": "espeak-ng"}  # Debian / Raspberry Pi OS packages


@dataclass(frozen=True)
class RuleConfig:
    """Run ``command`` when an event matches."""

    name: str
    when: Literal["recognized", "unknown"]
    command: tuple[str, ...]  # argv: an absolute program path and its arguments; no shell
    people: tuple[str, ...] = ()  # recognized: person ids or display names allowed to fire it
    min_score: float = 0.5  # recognized: the event's score must be at least this (0.5: the daemon's own decision)
    # recognized: fire only when the daemon judged the face live (not a photo or a screen); None: yes
    require_live: bool | None = None
    cooldown_s: float = 30.0  # quiet this long after firing, per person (unknown faces: for any unknown face)
    timeout_s: float = 30.0  # the command is killed after this long


@dataclass(frozen=True)
class ActionsConfig:
    """Everything edge-actions needs."""

    devices: tuple[str, ...]  # device ids (slugs of device.name) whose events are acted on
    rules: tuple[RuleConfig, ...]
    mqtt: MqttClientConfig = field(default_factory=MqttClientConfig)
    max_event_age_s: float = 10.0  # older events (e.g. delivered late after an outage) are ignored
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    def client_id(self) -> str:
        """The MQTT client id (stable, so the broker keeps the session across restarts)."""
        return self.mqtt.client_id or f"edge-actions-{slug(socket.gethostname())}"


def requires_live(rule: RuleConfig) -> bool:
    """Whether ``rule`` fires only for faces judged live: recognized rules unless they opt out."""
    return rule.when == "recognized" and rule.require_live is not False


def load_actions_config(path: Path, environ: typing.Mapping[str, str] | None = None) -> ActionsConfig:
    """Read and validate the YAML at ``path``; raise a one-line ConfigError naming file and key."""
    source = str(path)
    config: ActionsConfig = build_section(ActionsConfig, read_yaml(path), source)
    if not config.devices:
        raise ConfigError(f"{source}: devices must list at least one device id")
    for index, device in enumerate(config.devices):
        if device != slug(device):
            raise ConfigError(f"{source}: devices[{index}] {device!r} is not a device id; use {slug(device)!r}")
    if not config.rules:
        raise ConfigError(f"{source}: rules must list at least one rule")
    check_bounds(config, {"max_event_age_s": Bounds(0, DAY_S, low_open=True)}, "", source)
    names = [rule.name for rule in config.rules]
    for index, rule in enumerate(config.rules):
        _check_rule(rule, f"rules[{index}]", source)
        if names.count(rule.name) > 1:
            raise ConfigError(f"{source}: rules[{index}].name {rule.name!r} is used by another rule")
    return replace(config, mqtt=validate_mqtt_client(config.mqtt, "mqtt", source, environ))


def _check_rule(rule: RuleConfig, key: str, source: str) -> None:
    if not rule.command:
        raise ConfigError(f"{source}: {key}.command must list the program and its arguments")
    program = Path(rule.command[0])
    if not program.is_absolute():
        raise ConfigError(f"{source}: {key}.command[0] {rule.command[0]!r} must be an absolute path")
    if program.exists() and (not program.is_file() or not os.access(program, os.X_OK)):
        raise ConfigError(f"{source}: {key}.command[0] {program}: not an executable file")
    if rule.when == "recognized" and not rule.people:
        raise ConfigError(f"{source}: {key}.people must list who may fire a recognized rule")
    if rule.when == "unknown" and rule.people:
        raise ConfigError(f"{source}: {key}.people is for recognized rules; an unknown face has no identity")
    if rule.when == "unknown" and rule.require_live:
        raise ConfigError(f"{source}: {key}.require_live is for recognized rules; an unknown face is not checked")
    check_bounds(rule, RULE_BOUNDS, f"{key}.", source)


def missing_programs(config: ActionsConfig) -> list[str]:
    """One line per rule whose program is not installed on this machine (the config itself is valid:
    the program may be installed later, e.g. the GPIO tools on a Raspberry Pi)."""
    lines = []
    for index, rule in enumerate(config.rules):
        program = Path(rule.command[0])
        if not program.exists():
            package = PACKAGE_OF.get(program.name)
            hint = f" (Debian / Raspberry Pi OS: sudo apt install {package})" if package else ""
            lines.append(f"rules[{index}] {rule.name!r}: {program} is not installed here{hint}; "
                         "the rule cannot run until it is")
    return lines
