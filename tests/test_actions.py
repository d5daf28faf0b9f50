"""edge-actions: config errors in one line, and against a real broker with the documented ACL: the door
command once for an allowed person, the alarm for an unknown face, nothing for malformed, replayed, old,
unlisted or forged messages; payload values reach the command only as environment variables."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from paho.mqtt.enums import CallbackAPIVersion

from edge.actions.config import load_actions_config
from edge.config import ConfigError
from edge.events import Liveness
from actions_runner import ActionsProcess, recorder
from mosquitto import USERS
from mqtt_producer import make_event
from systemd_analyze import exposure, needs_systemd_analyze, verify_problems

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "actions.example.yaml"
def rules(out: Path) -> list[dict]:
    return [{"name": "door", "when": "recognized", "people": ["p-alice", "ZOË ÅNGSTRÖM"], "min_score": 0.75,
             "command": recorder(out, "door"), "cooldown_s": 30, "timeout_s": 10},
            {"name": "alarm", "when": "unknown", "command": recorder(out, "alarm"), "cooldown_s": 60}]


def write(tmp_path: Path, raw: dict) -> Path:
    path = tmp_path / "actions.yaml"
    path.write_text(yaml.safe_dump(raw, allow_unicode=True), encoding="utf-8")
    return path


def test_the_example_config_checks_ok_and_names_the_programs_this_machine_lacks(tmp_path):
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    raw["mqtt"]["password_file"] = str(tmp_path / "pw")  # the example's /etc files do not exist here
    raw["mqtt"]["tls"]["ca_file"] = None
    (tmp_path / "pw").write_text("secret\n")
    path = write(tmp_path, raw)
    config = load_actions_config(path)
    assert config.devices == ("front-door",) and [r.when for r in config.rules] == ["recognized", "unknown"]
    assert config.rules[0].command[1:] == ("--mode=time", "--sec=3", "gpiochip0", "17=1")
    assert config.mqtt.password.reveal() == "secret"
    result = subprocess.run([sys.executable, "-m", "edge.commands.actions", "--config", str(path), "--check"],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    absent = [rule.command[0] for rule in config.rules if not Path(rule.command[0]).exists()]
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == len(absent) and all(program in line for program, line in zip(absent, warnings))
    if "/usr/bin/gpioset" in absent:
        assert "sudo apt install gpiod" in warnings[0]
    assert result.stdout.startswith(f"{path}: OK (2 rules for front-door")


@pytest.mark.parametrize("change, message", [
    (lambda r: r["rules"][0].update(command=["gpioset", "x"]), "rules[0].command[0] 'gpioset' must be an absolute path"),
    (lambda r: r["rules"][0].update(command="/bin/true --x"), "rules[0].command must be a list, got text"),
    (lambda r: r["rules"][0].update(people=[]), "rules[0].people must list who may fire a recognized rule"),
    (lambda r: r["rules"][1].update(min_score=2), "rules[1].min_score must be between 0 and 1, got 2"),
    (lambda r: r["rules"][1].update(shell=True), "unknown key rules[1].shell (known in rules[1]: name, when, command, people, "
                                                    "min_score, require_live, cooldown_s, timeout_s)"),
    (lambda r: r["rules"][1].update(require_live=True), "rules[1].require_live is for recognized rules; an unknown "
                                                        "face is not checked"),
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
    actions = ActionsProcess(raw, tmp_path, {"NOT_FOR_COMMANDS": "1"})
    wait_log, log = actions.wait_log, actions.log
    daemon, intruder = client("edge-facerec", mqtt_broker.port), client("intruder", mqtt_broker.port)
    try:
        wait_log("subscribed to edge-facerec/front-door/events")
        topic = "edge-facerec/front-door/events"

        def send(payload: str | bytes, sender=daemon, to: str = topic) -> None:
            sender.publish(to, payload, qos=1).wait_for_publish(5)

        alice = make_event(0, "front-door", "Front Door")  # device.name "Front Door", as in the README
        send(alice.to_json())
        wait_log("rule 'door' fires for event " + alice.id)
        send(dataclasses.replace(alice, id="a" * 32).to_json())  # the same appearance reported again
        wait_log("rule 'door': cooling down for p-alice")
        send(alice.to_json())
        wait_log(f"ignored event {alice.id} from front-door: replayed (event id seen before)")
        stranger = make_event(2, "front-door", "Front Door")
        send(stranger.to_json())
        wait_log("rule 'alarm' fires for event " + stranger.id)
        send(b"{not json")
        wait_log("ignored a malformed message on edge-facerec/front-door/events: not an event: not valid JSON")
        send(json.dumps({"kind": "recognized", "person_id": "p-alice", "score": 1.0}))
        wait_log("malformed message on edge-facerec/front-door/events: schema None")
        zoe = make_event(1, "front-door", "Front Door")
        send(dataclasses.replace(zoe, score=0.6).to_json())
        wait_log("rule 'door': p-zoe recognized with score 0.60, below min_score 0.75")
        send(dataclasses.replace(zoe, id="7" * 32, liveness=Liveness(0.12, False, 3)).to_json())  # a photo held up
        wait_log(f"rule 'door': p-zoe recognized, but not judged live (liveness 0.12: a photo or a screen?); "
                 f"not fired for event {'7' * 32}")
        send(dataclasses.replace(zoe, id="8" * 32, liveness=None).to_json())  # the daemon's liveness is off
        wait_log("rule 'door': p-zoe recognized, but the event has no liveness")
        send(dataclasses.replace(zoe, id="f" * 32, timestamp=time.time() - 60).to_json())
        wait_log("from front-door: too old (60.")
        bob = dataclasses.replace(alice, id="b" * 32, person_id="p-bob", name="Bob", score=0.99)
        send(bob.to_json())
        wait_log(f"event {bob.id} (recognized p-bob, score 0.99): no rule fired")
        send(dataclasses.replace(zoe, id="c" * 32, device_id="garage").to_json(), to="edge-facerec/garage/events")
        send(dataclasses.replace(zoe, id="9" * 32, device_id="garage").to_json())
        wait_log(f"ignored event {'9' * 32} on {topic}: its device id is 'garage'")
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
        status = actions.stop()
    assert status == 0, "SIGTERM stops it cleanly"
    fired = [json.loads(line) for line in out.read_text().splitlines()]
    fired.sort(key=lambda f: [alice.id, stranger.id, zoe.id].index(f["env"]["EDGE_EVENT_ID"]))
    assert [(f["argv"], f["env"]["EDGE_EVENT_ID"]) for f in fired] == [
        (["door"], alice.id), (["alarm"], stranger.id), (["door"], zoe.id)], "nothing else fired"
    door = fired[2]["env"]
    assert door["EDGE_PERSON_NAME"] == "Zoë Ångström" and door["EDGE_PERSON_ID"] == "p-zoe"
    assert door["EDGE_SCORE"] == "0.8300" and door["EDGE_RULE"] == "door" and door["EDGE_DEVICE"] == "front-door"
    assert door["EDGE_DEVICE_NAME"] == "Front Door" and door["EDGE_LIVENESS"] == "0.9700"
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
