"""The whole door chain with real processes: ``edge-facerec`` (device "Front Door", a video of an enrolled
person) -> mosquitto -> ``edge-actions``, which runs the door command once per appearance, and only for a
face judged live.

Without the research data the video is a sample photo of an enrolled person shown to the camera, a
photo: the door rule that requires liveness must not fire, the one that opts out fires once. With
``../shared/data``, the stage video of a person enrolled from one photo, filmed live: the door fires once.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from actions_runner import ActionsProcess, recorder
from daemon_support import small_gallery, val_photo
from edge.commands.demo import enroll_named, make_clip
from edge.config import Config
from edge.recognition.gallery import Gallery, save


def run_daemon(broker, folder: Path, video: Path, gallery: Gallery) -> list[dict]:
    """``edge-facerec`` on ``video`` (every frame) as device "Front Door" with MQTT on; its printed events."""
    save(gallery, folder / "gallery.npz")
    config = folder / "config.yaml"
    config.write_text(yaml.safe_dump({
        "device": {"name": "Front Door"},
        "camera": {"name": "porch", "source": str(video), "realtime": False},
        "recognition": {"gallery": str(folder / "gallery.npz")},
        "mqtt": {**broker.mqtt_section(), "enabled": True, "outbox": str(folder / "outbox.sqlite3")},
        "tuning": {"enabled": False},  # test_device_tuning.py times the models; here the defaults run
    }))
    result = subprocess.run([sys.executable, "-m", "edge.commands.facerec", "--config", str(config)],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if '"type":"event"' in line]


def door_rules(out: Path, person: str) -> list[dict]:
    return [{"name": "door", "when": "recognized", "people": [person], "command": recorder(out, "door")},
            {"name": "door without liveness", "when": "recognized", "people": [person], "require_live": False,
             "command": recorder(out, "door without liveness")},
            {"name": "alarm", "when": "unknown", "command": recorder(out, "alarm")}]


def fired(out: Path) -> list[tuple[str, str, str]]:
    runs = [json.loads(line) for line in out.read_text().splitlines()] if out.exists() else []
    return sorted((run["argv"][0], run["env"]["EDGE_PERSON_NAME"], run["env"]["EDGE_DEVICE"]) for run in runs)


def start_actions(broker, folder: Path, out: Path, person: str) -> ActionsProcess:
    actions = ActionsProcess({"devices": ["front-door"], "rules": door_rules(out, person),
                              "mqtt": {**broker.mqtt_section(user="edge-actions"), "client_id": f"e2e-{folder.name}"}},
                             folder)
    actions.wait_log("subscribed to edge-facerec/front-door/events")
    return actions


def test_a_photo_of_an_enrolled_person_does_not_open_the_door(mqtt_broker, celebrities, tmp_path):
    out = tmp_path / "fired.jsonl"
    actions = start_actions(mqtt_broker, tmp_path, out, "Ben Afflek")
    try:
        clip = make_clip([val_photo(celebrities, "ben_afflek")], tmp_path / "ben.mp4", fps=10, show_s=2, gap_s=0)
        events = run_daemon(mqtt_broker, tmp_path, clip, small_gallery(celebrities, tmp_path, ("ben_afflek",)))
        [event] = events
        assert (event["kind"], event["name"], event["device_id"], event["device"]) == (
            "recognized", "Ben Afflek", "front-door", "Front Door")
        assert event["liveness"]["live"] is False, "a photo shown to the camera is not a live face"
        actions.wait_log("rule 'door without liveness' fires for event " + event["id"])
        actions.wait_log(f"rule 'door': {event['person_id']} recognized, but not judged live")
        actions.wait_log("rule 'door without liveness': /")  # its command has finished
    finally:
        assert actions.stop() == 0
    assert fired(out) == [("door without liveness", "Ben Afflek", "front-door")]


def test_a_live_enrolled_person_opens_the_door_once(mqtt_broker, shared_data, tmp_path):
    out = tmp_path / "fired.jsonl"
    actions = start_actions(mqtt_broker, tmp_path, out, "Lin Manuel Miranda")
    try:
        gallery, _ = enroll_named(shared_data / "faces-small" / "stage-people", Config())
        events = run_daemon(mqtt_broker, tmp_path, shared_data / "videos" / "stage_640x360.mp4", gallery)
        [recognized] = [e for e in events if e["kind"] == "recognized"]
        assert recognized["name"] == "Lin Manuel Miranda" and recognized["liveness"]["live"] is True
        actions.wait_log("rule 'door' fires for event " + recognized["id"])
        actions.wait_log("rule 'door': /")
        actions.wait_log("rule 'alarm': /")  # the unknown faces on stage: the alarm is not affected
    finally:
        assert actions.stop() == 0
    runs = fired(out)
    assert runs.count(("door", "Lin Manuel Miranda", "front-door")) == 1
    assert runs.count(("door without liveness", "Lin Manuel Miranda", "front-door")) == 1
    assert {name for name, _, _ in runs} == {"door", "door without liveness", "alarm"}
