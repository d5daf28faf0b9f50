"""edge-actions' decisions: which configured rules an event fires, and running their commands.

Nothing from a payload is ever executed or put on a command line: each rule's argv comes
from the config, no shell is involved, and event values reach the program only as
``EDGE_*`` environment variables (docs/mqtt.md lists them). Malformed messages, events from
unlisted devices, repeats of an event id and events older than ``max_event_age_s`` are
ignored with one log line each.
"""
from __future__ import annotations

import logging
import math
import re
import subprocess
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from ..events import EVENT_KINDS, SCHEMA_VERSION
from ..names import same_name
from ..mqtt.topics import device_of_events_topic
from ..supervision import describe
from ..untrusted import UntrustedDataError, parse_json, text_problem
from .config import ActionsConfig, RuleConfig, requires_live

log = logging.getLogger("edge-actions")

_EVENT_ID = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
MAX_EVENT_BYTES = 1 << 20  # an event with a snapshot is ~50 kB
MAX_EVENT_DEPTH = 8  # an event nests 2 deep (box, models)
TEXT_FIELDS = ("device_id", "device", "camera", "person_id", "name", "time")  # they reach the log and EDGE_*
OPTIONAL_TEXT_FIELDS = ("person_id", "name", "time")  # null (unknown faces) or absent
COMMAND_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8"}


class MalformedEvent(ValueError):
    """A message that is not an event of the published schema."""


def parse_event(payload: bytes) -> dict[str, Any]:
    """The event in ``payload`` with its fields checked; MalformedEvent says what is wrong.

    Parsing is capped (MAX_EVENT_BYTES, MAX_EVENT_DEPTH: a message of nested brackets is refused, not
    a RecursionError), and every text field that may reach a command's environment or the log is
    valid Unicode without control characters."""
    try:
        event = parse_json(payload, MAX_EVENT_BYTES, MAX_EVENT_DEPTH)
    except UntrustedDataError as error:
        raise MalformedEvent(f"not an event: {error}") from None
    if not isinstance(event, dict):
        raise MalformedEvent("not a JSON object")
    if event.get("schema") != SCHEMA_VERSION:
        raise MalformedEvent(f"schema {event.get('schema')!r}, expected {SCHEMA_VERSION}")
    if not isinstance(event.get("id"), str) or not _EVENT_ID.match(event["id"]):
        raise MalformedEvent("no valid id")
    if event.get("kind") not in EVENT_KINDS:
        raise MalformedEvent(f"kind {event.get('kind')!r} is not one of {', '.join(EVENT_KINDS)}")
    for key in TEXT_FIELDS:
        value = event.get(key)
        if value is None and key in OPTIONAL_TEXT_FIELDS:
            continue
        if not isinstance(value, str):
            raise MalformedEvent(f"{key} is not text")
        problem = text_problem(value, empty_ok=True)
        if problem:
            raise MalformedEvent(f"{key} {problem}")
    for key in ("timestamp", "score"):
        if not _finite_number(event.get(key)):
            raise MalformedEvent(f"{key} is not a number")
    if not 0 <= event["score"] <= 1:
        raise MalformedEvent("score is not between 0 and 1")
    if event["kind"] == "recognized":
        if not isinstance(event.get("person_id"), str) or not isinstance(event.get("name"), str):
            raise MalformedEvent("a recognized event without person_id and name")
    liveness = event.get("liveness")
    if liveness is not None and not (isinstance(liveness, dict) and isinstance(liveness.get("live"), bool)
                                     and _finite_number(liveness.get("score")) and 0 <= liveness["score"] <= 1):
        raise MalformedEvent("liveness is not null or {score in [0, 1], live: true/false}")
    return event


def _finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def command_environment(rule: RuleConfig, event: dict[str, Any]) -> dict[str, str]:
    """The whole environment of a rule's command: a fixed PATH and LANG plus the EDGE_* values."""
    return {**COMMAND_ENV, "EDGE_RULE": rule.name, "EDGE_EVENT_ID": event["id"], "EDGE_EVENT_KIND": event["kind"],
            "EDGE_DEVICE": event["device_id"], "EDGE_DEVICE_NAME": event["device"], "EDGE_CAMERA": event["camera"],
            "EDGE_PERSON_ID": event.get("person_id") or "", "EDGE_PERSON_NAME": event.get("name") or "",
            "EDGE_SCORE": f"{event['score']:.4f}", "EDGE_EVENT_TIME": event.get("time") or "",
            "EDGE_LIVENESS": f"{event['liveness']['score']:.4f}" if event.get("liveness") else ""}


class Actions:
    """Decides, per message, which rules fire, and runs their commands in background threads."""

    def __init__(self, config: ActionsConfig, clock: Callable[[], float] = time.time) -> None:
        self.config = config
        self._clock = clock
        self._lock = threading.Lock()
        self._seen: OrderedDict[str, float] = OrderedDict()  # event id -> when it was received
        self._fired: dict[tuple[str, str], float] = {}  # (rule, person id or "unknown") -> monotonic time
        self._running: dict[str, threading.Thread] = {}

    def handle(self, topic: str, payload: bytes) -> list[str]:
        """Act on one message; the names of the rules whose commands were started."""
        device = device_of_events_topic(self.config.mqtt.topic_prefix, topic)
        if device not in self.config.devices:
            log.warning("ignored a message on %s: not the events topic of a configured device", topic)
            return []
        try:
            event = parse_event(payload)
        except MalformedEvent as error:
            log.warning("ignored a malformed message on %s: %s", topic, error)
            return []
        if event["device_id"] != device:
            log.warning("ignored event %s on %s: its device id is %r", event["id"], topic, event["device_id"])
            return []
        now = self._clock()
        age = now - event["timestamp"]
        if abs(age) > self.config.max_event_age_s:
            what = "too old" if age > 0 else "from the future"
            log.warning("ignored event %s from %s: %s (%.1f s; max_event_age_s %g)", event["id"], device, what,
                        abs(age), self.config.max_event_age_s)
            return []
        with self._lock:
            if event["id"] in self._seen:
                log.warning("ignored event %s from %s: replayed (event id seen before)", event["id"], device)
                return []
            self._seen[event["id"]] = now
            while self._seen and next(iter(self._seen.values())) < now - 2 * self.config.max_event_age_s:
                self._seen.popitem(last=False)
        fired = []
        for rule in self.config.rules:
            if self._matches(rule, event) and self._cooled_down(rule, event):
                if self._start(rule, event):
                    fired.append(rule.name)
        if not fired:
            log.info("event %s (%s %s, score %.2f): no rule fired", event["id"], event["kind"],
                     event.get("person_id") or "-", event["score"])
        return fired

    def wait_idle(self, timeout: float) -> None:
        """Wait for running commands (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        for thread in list(self._running.values()):
            thread.join(max(0.0, deadline - time.monotonic()))

    def _matches(self, rule: RuleConfig, event: dict[str, Any]) -> bool:
        if rule.when != event["kind"]:
            return False
        if rule.when == "unknown":
            return True
        allowed = any(entry == event["person_id"] or same_name(entry, event["name"]) for entry in rule.people)
        if allowed and event["score"] < rule.min_score:
            log.info("rule %r: %s recognized with score %.2f, below min_score %.2f", rule.name,
                     event["person_id"], event["score"], rule.min_score)
            return False
        if allowed and requires_live(rule) and not (event.get("liveness") or {}).get("live", False):
            liveness = event.get("liveness")
            why = ("the event has no liveness (liveness is off in the daemon; set require_live: false to allow)"
                   if liveness is None else f"not judged live (liveness {liveness['score']:.2f}: a photo or a screen?)")
            log.warning("rule %r: %s recognized, but %s; not fired for event %s", rule.name, event["person_id"],
                        why, event["id"])
            return False
        return allowed

    def _cooled_down(self, rule: RuleConfig, event: dict[str, Any]) -> bool:
        key = (rule.name, event.get("person_id") or "unknown")
        now = time.monotonic()
        with self._lock:
            last = self._fired.get(key)
            if last is not None and now - last < rule.cooldown_s:
                log.info("rule %r: cooling down for %s (%.0f s left)", rule.name, key[1],
                         rule.cooldown_s - (now - last))
                return False
        return True

    def _start(self, rule: RuleConfig, event: dict[str, Any]) -> bool:
        with self._lock:
            if rule.name in self._running:
                log.warning("rule %r: its command is still running; not started again for event %s",
                            rule.name, event["id"])
                return False
            thread = threading.Thread(target=self._run, args=(rule, event), name=f"rule-{rule.name}", daemon=True)
            self._running[rule.name] = thread
            self._fired[(rule.name, event.get("person_id") or "unknown")] = time.monotonic()
        log.info("rule %r fires for event %s (%s %s, score %.2f)", rule.name, event["id"], event["kind"],
                 event.get("person_id") or "-", event["score"])
        thread.start()
        return True

    def _run(self, rule: RuleConfig, event: dict[str, Any]) -> None:
        """The rule thread: nothing escapes it unreported, and the rule can fire again afterwards."""
        try:
            level, message = self._execute(rule, event)
        except Exception as error:  # the thread's boundary
            log.error("rule %r: its command for event %s failed (%s)", rule.name, event["id"], describe(error),
                      exc_info=error)
            return
        finally:
            with self._lock:
                self._running.pop(rule.name, None)
        log.log(level, "rule %r: %s", rule.name, message)

    @staticmethod
    def _execute(rule: RuleConfig, event: dict[str, Any]) -> tuple[int, str]:
        try:
            result = subprocess.run(list(rule.command), env=command_environment(rule, event),
                                    stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    timeout=rule.timeout_s, check=False)
        except subprocess.TimeoutExpired:
            return logging.ERROR, f"{rule.command[0]} was killed after timeout_s {rule.timeout_s:g}"
        except OSError as error:
            return logging.ERROR, f"cannot run {rule.command[0]}: {error}"
        output = result.stdout.decode(errors="replace").strip()[-500:]
        level = logging.INFO if result.returncode == 0 else logging.ERROR
        return level, f"{rule.command[0]} exited with {result.returncode}{f': {output}' if output else ''}"
