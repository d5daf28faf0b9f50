"""edge-actions: config errors in one line, and against a real broker with the documented ACL: the door
command once for an allowed person, the alarm for an unknown face, nothing for malformed, replayed, old,
unlisted or forged messages; payload values reach the command only as environment variables."""
from __future__ import annotations

import dataclasses
import json
import os
import queue
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.actions.config import load_actions_config
from edge.config import ConfigError
from mosquitto import USERS
from mqtt_producer import make_event
from systemd_analyze import exposure, needs_systemd_analyze, verify_problems

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "actions.example.yaml"
# writes its argv and the EDGE_* / other environment it got as one JSON line
RECORDER = ("import json, os, sys; open(sys.argv[1], 'a').write(json.dumps({'argv': sys.argv[2:], "
            "'env': dict(os.environ)}) + '\\n')")


def rules(out: Path) -> list[dict]:
    return [{"name": "door", "when": "recognized", "people": ["p-alice", "ZOË ÅNGSTRÖM"], "min_score": 0.75,
             "command": [sys.executable, "-c", RECORDER, str(out), "door"], "cooldown_s": 30, "timeout_s": 10},
            {"name": "alarm", "when": "unknown", "command": [sys.executable, "-c", RECORDER, str(out), "alarm"],
             "cooldown_s": 60}]


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "actions.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_the_example_config_is_valid_apart_from_its_programs(tmp_path):
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    for rule in raw["rules"]:
        rule["command"][0] = "/bin/true"  # the example's door and siren tools are not installed here
    raw["mqtt"]["password_file"] = str(tmp_path / "pw")
    raw["mqtt"]["tls"]["ca_file"] = None
    (tmp_path / "pw").write_text("secret\n")
    config = load_actions_config(write(tmp_path, raw))
    assert config.devices == ("front-door",) and [r.when for r in config.rules] == ["recognized", "unknown"]
    assert config.rules[0].command[1:] == ("--mode=time", "--sec=3", "gpiochip0", "17=1")
    assert config.mqtt.password.reveal() == "secret"


@pytest.mark.parametrize("change, message", [
    (lambda r: r["rules"][0].update(command=["gpioset", "x"]), "rules[0].command[0] 'gpioset' must be an absolute path"),
    (lambda r: r["rules"][0].update(command="/bin/true --x"), "rules[0].command must be a list, got text"),
    (lambda r: r["rules"][0].update(people=[]), "rules[0].people must list who may fire a recognized rule"),
    (lambda r: r["rules"][1].update(min_score=2), "rules[1].min_score must be between 0 and 1, got 2"),
    (lambda r: r["rules"][1].update(shell=True), "unknown key rules[1].shell (known in rules[1]: name, when, command, people, "
                                                    "min_score, cooldown_s, timeout_s)"),
    (lambda r: r.update(devices=["Front Door"]), "devices[0] 'Front Door' is not a device id; use 'front-door'"),
    (lambda r: r["mqtt"].update(port=0), "mqtt.port must be between 1 and 65535, got 0"),
])
def test_config_mistakes_are_one_line_errors(tmp_path, change, message):
    raw = {"devices": ["front-door"], "rules": rules(tmp_path / "out"), "mqtt": {"host": "localhost"}}
    change(raw)
    path = write(tmp_path, raw)
    with pytest.raises(ConfigError) as caught:
        load_actions_config(path)
    assert str(caught.value) == f"{path}: {message}"
    result = subprocess.run([sys.executable, "-m", "edge.commands.actions", "--config", str(path), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr == f"edge-actions: {path}: {message}\n"


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
def test_actions_fire_once_for_allowed_people_and_unknown_faces_and_never_for_bad_messages(mqtt_broker, tmp_path,
                                                                                           protocol):
    out = tmp_path / "fired.jsonl"
    raw = {"devices": ["front-door"], "rules": rules(out), "max_event_age_s": 10,
           "mqtt": {**mqtt_broker.mqtt_section(user="edge-actions"), "protocol": protocol,
                    "client_id": f"edge-actions-test-{protocol}"}}
    config = write(tmp_path, raw)
    process = subprocess.Popen([sys.executable, "-m", "edge.commands.actions", "--config", str(config)],
                               stderr=subprocess.PIPE, text=True, env={**os.environ, "NOT_FOR_COMMANDS": "1"})
    lines: queue.Queue[str] = queue.Queue()
    log: list[str] = []
    threading.Thread(target=lambda: [lines.put(line) for line in process.stderr], daemon=True).start()

    def wait_log(text: str, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not any(text in line for line in log):
            try:
                log.append(lines.get(timeout=max(0.05, deadline - time.monotonic())))
            except queue.Empty:
                pytest.fail(f"no log line with {text!r} in:\n{''.join(log)}")

    daemon, intruder = client("edge-facerec", mqtt_broker.port), client("intruder", mqtt_broker.port)
    try:
        wait_log("subscribed to edge-facerec/front-door/events")
        topic = "edge-facerec/front-door/events"

        def send(payload: str | bytes, sender=daemon, to: str = topic) -> None:
            sender.publish(to, payload, qos=1).wait_for_publish(5)

        alice = make_event(0, "front-door")
        send(alice.to_json())
        wait_log("rule 'door' fires for event " + alice.id)
        send(dataclasses.replace(alice, id="a" * 32).to_json())  # the same appearance reported again
        wait_log("rule 'door': cooling down for p-alice")
        send(alice.to_json())
        wait_log(f"ignored event {alice.id} from front-door: replayed (event id seen before)")
        stranger = make_event(2, "front-door")
        send(stranger.to_json())
        wait_log("rule 'alarm' fires for event " + stranger.id)
        send(b"{not json")
        wait_log("ignored a malformed message on edge-facerec/front-door/events: not an event: not valid JSON")
        send(json.dumps({"kind": "recognized", "person_id": "p-alice", "score": 1.0}))
        wait_log("malformed message on edge-facerec/front-door/events: schema None")
        zoe = make_event(1, "front-door")
        send(dataclasses.replace(zoe, score=0.6).to_json())
        wait_log("rule 'door': p-zoe recognized with score 0.60, below min_score 0.75")
        send(dataclasses.replace(zoe, id="f" * 32, timestamp=time.time() - 60).to_json())
        wait_log("from front-door: too old (60.")
        bob = dataclasses.replace(alice, id="b" * 32, person_id="p-bob", name="Bob", score=0.99)
        send(bob.to_json())
        wait_log(f"event {bob.id} (recognized p-bob, score 0.99): no rule fired")
        send(dataclasses.replace(zoe, id="c" * 32, device="garage").to_json(), to="edge-facerec/garage/events")
        send(dataclasses.replace(zoe, id="d" * 32, name="$(touch /tmp/x) ZOË").to_json(), sender=intruder)
        wait_log("rule 'door': /")  # the first door command has finished
        zoe = dataclasses.replace(zoe, id="e" * 32)  # allowed by name only, case-insensitively
        send(zoe.to_json())
        wait_log("rule 'door' fires for event " + zoe.id)
        deadline = time.monotonic() + 10
        while (not out.exists() or len(out.read_text().splitlines()) < 3) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        daemon.disconnect()
        intruder.disconnect()
        process.terminate()
        process.wait(timeout=10)
    assert process.returncode == 0, "SIGTERM stops it cleanly"
    fired = [json.loads(line) for line in out.read_text().splitlines()]
    fired.sort(key=lambda f: [alice.id, stranger.id, zoe.id].index(f["env"]["EDGE_EVENT_ID"]))
    assert [(f["argv"], f["env"]["EDGE_EVENT_ID"]) for f in fired] == [
        (["door"], alice.id), (["alarm"], stranger.id), (["door"], zoe.id)], "nothing else fired"
    door = fired[2]["env"]
    assert door["EDGE_PERSON_NAME"] == "Zoë Ångström" and door["EDGE_PERSON_ID"] == "p-zoe"
    assert door["EDGE_SCORE"] == "0.8300" and door["EDGE_RULE"] == "door" and door["EDGE_DEVICE"] == "front-door"
    assert fired[1]["env"]["EDGE_PERSON_ID"] == "" and fired[1]["env"]["EDGE_EVENT_KIND"] == "unknown"
    assert "NOT_FOR_COMMANDS" not in door, "only PATH, LANG and EDGE_* reach the command"
    assert not any("c" * 32 in line or "d" * 32 in line for line in log), "unlisted device and forged events never arrive"
    assert "actions-pw" not in "".join(log)


def client(user: str, port: int) -> mqtt.Client:
    publisher = mqtt.Client(CallbackAPIVersion.VERSION2)
    publisher.username_pw_set(user, USERS[user])
    publisher.connect("127.0.0.1", port)
    publisher.loop_start()
    return publisher


UNIT = Path(__file__).resolve().parent.parent / "systemd" / "edge-actions.service"


@needs_systemd_analyze
def test_the_unit_verifies_clean_and_is_hardened(tmp_path):
    executable = Path(sys.executable).parent / "edge-actions"
    if not executable.exists():
        pytest.skip(f"{executable} not installed (pip install -e .)")
    unit = tmp_path / UNIT.name
    unit.write_text(UNIT.read_text().replace("/opt/edge-facerec/venv/bin/edge-actions", str(executable)))
    assert verify_problems(unit) == ""
    assert exposure(unit) <= 2.0
