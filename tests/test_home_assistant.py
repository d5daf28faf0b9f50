"""The daemon against a real Home Assistant core (tests/home_assistant.py), on a real mosquitto with the
documented ACL, asserted through Home Assistant's REST and websocket APIs: what a user of it sees.

One installation's life, in order: edge-facerec 0.1's single-entity discovery on the broker and in
Home Assistant; the daemon starts on a looping clip of Ben (3 s shown, 4 s gone) and migrates it to
one device config, keeping the entity ids; the entities and their device; the recognition event's
attributes, and docs/mqtt.md's automation run for it but not for a late event; Ben's presence on, then off; the face image; the daemon killed (-9) while Ben is present,
so everything is unavailable; restarted on a scene without him: available, Ben and the never-seen
Elton off, a figure the new process does not have unknown; Ben removed from the gallery (SIGHUP):
his entity deleted; a clean stop. Home Assistant's log must have no error and no warning about
any of it. Skips, with the reason, where no Python >= 3.13 or no Home Assistant venv is found
(``python tests/ha_venv.py`` makes it; .ci/run does).
"""
from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
import yaml

import ha_venv
from daemon_support import small_gallery, val_photo
from edge.commands.demo import make_clip
from edge.events import Event, Liveness
from edge.mqtt.ha_sensors import SENSORS
from edge.recognition.gallery import Gallery, save
from mosquitto import USERS, Broker, available, documented_acl, publish_as

DEVICE = "Front Door"  # device id front-door, entity ids event.front_door_...
ENVIRONMENT_ERRORS = ("Error loading libturbojpeg",)  # the camera helper's optional library, not installed here


@pytest.fixture(scope="module")
def home_assistant(tmp_path_factory):
    """Home Assistant with the MQTT integration on a broker of its own: (HomeAssistant, Broker)."""
    python = ha_venv.find_python()
    if python is None:
        pytest.skip("no Python >= 3.13 (python3.13 on PATH or in pyenv) for Home Assistant")
    venv = ha_venv.venv_dir(python)
    if not ha_venv.ready(venv):
        pytest.skip(f"no Home Assistant venv at {venv}: python tests/ha_venv.py makes it (1 GB, about 1 min with uv)")
    pytest.importorskip("websockets", reason="websockets reads Home Assistant's registries")
    reason = available()
    if reason:
        pytest.skip(reason)
    from home_assistant import HomeAssistant

    folder = tmp_path_factory.mktemp("home-assistant")
    broker = Broker(folder / "mosquitto", tls=False, acl=documented_acl())
    broker.start()
    ha = HomeAssistant(venv, folder / "ha", [documented_automation()])
    try:
        seconds = ha.start()
        print(f"Home Assistant started in {seconds:.1f} s")
        ha.onboard()
        ha.add_mqtt(broker.port, "homeassistant", USERS["homeassistant"])
        yield ha, broker
    finally:
        ha.stop()
        broker.stop()


def documented_automation() -> dict:
    """The automation of docs/mqtt.md (the YAML block after ``<!-- ha-automation -->``), for Ben Afflek, keeping
    every run's trace."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "mqtt.md").read_text(encoding="utf-8")
    block = text.split("<!-- ha-automation -->", 1)[1].split("```", 2)[1].split("\n", 1)[1]
    [automation] = yaml.safe_load(block.replace("Ann Lee", "Ben Afflek"))
    return {**automation, "trace": {"stored_traces": 100}}


def runs(ha, automation_id: str) -> list[str]:
    """How each run of an automation ended (``finished``, ``failed_conditions`` ...), oldest first."""
    [traces] = ha.ws({"type": "trace/list", "domain": "automation", "item_id": automation_id})
    return [trace.get("script_execution") for trace in sorted(traces, key=lambda t: t["timestamp"]["start"])]


def legacy_discovery(gallery: Gallery) -> dict[str, dict]:
    """What edge-facerec 0.1 published for DEVICE: one retained config per entity (its recognition event,
    a presence sensor per person, two of its status sensors)."""
    common = {"device": {"identifiers": ["edge-facerec_front-door"], "name": DEVICE, "manufacturer": "edge-facerec",
                         "model": "edge-facerec face recognition", "sw_version": "0.1.0"},
              "availability": [{"topic": "edge-facerec/front-door/availability", "payload_available": "online",
                                "payload_not_available": "offline"}],
              "origin": {"name": "edge-facerec", "sw_version": "0.1.0"}, "qos": 1}
    configs = {"homeassistant/event/front-door/recognition/config": {
        **common, "name": "Recognition", "unique_id": "edge-facerec_front-door_recognition",
        "state_topic": "edge-facerec/front-door/events", "event_types": ["recognized", "unknown"],
        "value_template": "{{ {'event_type': value_json.kind, 'name': value_json.name} | to_json }}"}}
    for person in gallery.people:
        object_id = f"presence_{person.id.replace('-', '_')}"
        topic = f"edge-facerec/front-door/presence/{person.id}"
        configs[f"homeassistant/binary_sensor/front-door/{object_id}/config"] = {
            **common, "name": person.name, "unique_id": f"edge-facerec_front-door_{object_id}", "state_topic": topic,
            "value_template": "{{ value_json.state }}", "payload_on": "present", "payload_off": "away",
            "device_class": "presence", "json_attributes_topic": topic}
    for key, unit in (("fps", "fps"), ("rss_mb", "MB")):
        configs[f"homeassistant/sensor/front-door/status_{key}/config"] = {
            **common, "name": key.replace("_", " ").capitalize(), "unique_id": f"edge-facerec_front-door_status_{key}",
            "state_topic": "edge-facerec/front-door/status", "value_template": f"{{{{ value_json['{key}'] }}}}",
            "state_class": "measurement", "entity_category": "diagnostic", "unit_of_measurement": unit}
    return configs


class DaemonProcess:
    """``edge-facerec --config`` as a subprocess, its log in a file."""

    def __init__(self, config: Path, log: Path) -> None:
        self.log = log
        self.stream = log.open("w")
        self.process = subprocess.Popen([sys.executable, "-m", "edge.commands.facerec", "--config", str(config)],
                                        stdout=subprocess.DEVNULL, stderr=self.stream)

    def signal(self, number: int) -> None:
        self.process.send_signal(number)

    def wait(self) -> int:
        code = self.process.wait(timeout=60)
        self.stream.close()
        return code


def write_config(path: Path, clip: Path, gallery: Path, broker: Broker, outbox: Path) -> Path:
    path.write_text(yaml.safe_dump({
        "device": {"name": DEVICE},
        "camera": {"name": "door", "source": str(clip), "realtime": True, "loop": True},
        "recognition": {"gallery": str(gallery)},
        "events": {"away_after_s": 1.5, "snapshot": True, "status_interval_s": 2.0},
        "mqtt": {**broker.mqtt_section(), "enabled": True, "outbox": str(outbox), "discovery_face_image": True},
    }))
    return path


def is_unavailable(state: dict) -> bool:
    return state["state"] == "unavailable"


def test_an_installation_seen_from_home_assistant(home_assistant, celebrities, tmp_path):
    ha, broker = home_assistant
    gallery = small_gallery(celebrities, tmp_path, ("ben_afflek", "elton_john"), photos_each=2)
    save(gallery, tmp_path / "gallery.npz")
    ben, elton = gallery.find("Ben Afflek"), gallery.find("Elton John")
    ben_uid, elton_uid = (f"edge-facerec_front-door_presence_{p.id.replace('-', '_')}" for p in (ben, elton))
    ben_clip = make_clip([val_photo(celebrities, "ben_afflek")], tmp_path / "ben.mp4", fps=10, show_s=3, gap_s=4)
    empty_clip = make_clip([np.full((480, 640, 3), 90, np.uint8)], tmp_path / "empty.mp4", fps=10, show_s=2, gap_s=0)
    outbox = tmp_path / "outbox.sqlite3"

    # edge-facerec 0.1 ran here: its configs on the broker, its entities in Home Assistant
    legacy = legacy_discovery(gallery)
    publish_as(broker, {topic: json.dumps(config).encode() for topic, config in legacy.items()})
    (tmp_path / "outbox.people.json").write_text(json.dumps({"people": [ben.id, elton.id]}))
    old = ha.wait_for(lambda: (lambda found: found if len(found) == len(legacy) else None)(ha.entities(DEVICE)),
                      60, "edge-facerec 0.1's entities")
    old_ids = {uid: entry["entity_id"] for uid, entry in old.items()}

    # the daemon starts: one device config replaces them, the carried-over entities keep their ids
    daemon = DaemonProcess(write_config(tmp_path / "config.yaml", ben_clip, tmp_path / "gallery.npz", broker, outbox),
                           tmp_path / "daemon-1.log")
    try:
        expected = {"edge-facerec_front-door_recognition", ben_uid, elton_uid, "edge-facerec_front-door_face",
                    *(f"edge-facerec_front-door_{sensor.key}" for sensor in SENSORS)}
        entities = ha.wait_for(lambda: (lambda found: found if set(found) == expected else None)(ha.entities(DEVICE)),
                               60, "the device config's entities, and only those")
        for uid in ("edge-facerec_front-door_recognition", ben_uid, elton_uid):
            assert entities[uid]["entity_id"] == old_ids[uid], "migrated: same entity id as with 0.1"
        device = entities[ben_uid]["device"]
        assert (device["manufacturer"], device["model"]) == ("edge-facerec", "edge-facerec face recognition")
        assert ["mqtt", "edge-facerec_front-door"] in device["identifiers"]
        assert len({entry["device_id"] for entry in entities.values()}) == 1, "one device"
        enabled = {uid.removeprefix("edge-facerec_front-door_") for uid, entry in entities.items()
                   if entry["disabled_by"] is None}
        assert enabled == {"recognition", ben_uid.removeprefix("edge-facerec_front-door_"),
                           elton_uid.removeprefix("edge-facerec_front-door_"), "face", "camera", "health", "faces_seen",
                           "events", "fps", "outbox_pending", "memory"}
        assert all(entry["disabled_by"] == "integration" for uid, entry in entities.items()
                   if uid.removeprefix("edge-facerec_front-door_") not in enabled)
        entity = {uid.removeprefix("edge-facerec_front-door_"): entry["entity_id"] for uid, entry in entities.items()}
        # a disabled diagnostic, enabled by the user: its figure exists in this process (Ben's liveness checks)
        ha.ws({"type": "config/entity_registry/update", "entity_id": entity["liveness_time"], "disabled_by": None})

        # the sensors look native
        memory = ha.wait_state(entity["memory"], lambda s: s["state"] not in ("unknown", "unavailable"), "a value")
        assert float(memory["state"]) > 50
        assert {k: memory["attributes"].get(k) for k in ("device_class", "unit_of_measurement", "state_class")} == \
            {"device_class": "data_size", "unit_of_measurement": "MiB", "state_class": "measurement"}
        assert memory["attributes"]["friendly_name"] == "Front Door Memory"
        camera = ha.wait_state(entity["camera"], lambda s: s["state"] == "running", "running")
        assert camera["attributes"]["reason"] is None and camera["attributes"]["device_class"] == "enum"
        faces = ha.states()[entity["faces_seen"]]
        assert faces["attributes"]["state_class"] == "total_increasing" and "unit_of_measurement" not in faces[
            "attributes"]
        assert ha.states()[entity["fps"]]["attributes"]["unit_of_measurement"] == "fps"

        # a recognition: the event entity carries the event's own time, id and device id
        event = ha.wait_state(entity["recognition"], lambda s: s["attributes"].get("event_type") == "recognized",
                              "Ben recognized")["attributes"]
        assert (event["name"], event["person_id"], event["device_id"], event["camera"]) == \
            ("Ben Afflek", ben.id, "front-door", "door")
        assert re.fullmatch(r"[0-9a-f]{32}", event["event_id"]) and event["score"] >= 0.5
        assert isinstance(event["live"], bool) and 0 <= event["liveness"] <= 1
        assert datetime.fromisoformat(event["time"]).tzinfo is not None
        # the documented automation: runs for a fresh recognition of Ben, not for a late one
        automation_id = documented_automation()["id"]
        ha.wait_for(lambda: "finished" in runs(ha, automation_id), 60, "the automation run for Ben")
        refused = runs(ha, automation_id).count("failed_conditions")
        late = Event(kind="recognized", device_id="front-door", device=DEVICE, camera="door", person_id=ben.id,
                     name=ben.name, score=0.9, frames=3, box=(1, 2, 3, 4), models={}, track_id=99,
                     timestamp=time.time() - 600, liveness=Liveness(0.9, True, 3))
        publish_as(broker, {"edge-facerec/front-door/events": late.to_json().encode()}, retain=False)
        ha.wait_state(entity["recognition"], lambda s: s["attributes"].get("event_id") == late.id, "the late event")
        ha.wait_for(lambda: runs(ha, automation_id).count("failed_conditions") > refused, 30,
                    "the automation to refuse the late event")

        # presence: Ben on, then off while the daemon runs; Elton, never seen, off (not unknown)
        ha.wait_state(entity[ben_uid.removeprefix("edge-facerec_front-door_")], lambda s: s["state"] == "on", "on")
        ha.wait_state(entity[ben_uid.removeprefix("edge-facerec_front-door_")], lambda s: s["state"] == "off", "off")
        assert ha.states()[entity[elton_uid.removeprefix("edge-facerec_front-door_")]]["state"] == "off"
        face = ha.wait_for(lambda: ha.image(entity["face"]), 60, "a face image (not retained: the first may come "
                           "before Home Assistant subscribed; the clip loops)")
        assert face.startswith(b"\xff\xd8"), "the latest event's face, a JPEG"
        ha.wait_state(entity["liveness_time"], lambda s: s["state"] not in ("unknown", "unavailable"),
                      "the enabled diagnostic's value (Home Assistant reloads 30 s after enabling)", timeout=120)

        # kill -9 while Ben is present: everything unavailable (the broker's last will)
        ben_entity = entity[ben_uid.removeprefix("edge-facerec_front-door_")]
        ha.wait_state(ben_entity, lambda s: s["state"] == "on", "on again (the clip loops)")
        daemon.signal(signal.SIGKILL)
        daemon.wait()
        for name in ("recognition", "camera", "memory"):
            ha.wait_state(entity[name], is_unavailable, "unavailable")
        ha.wait_state(ben_entity, is_unavailable, "unavailable")
    finally:
        if daemon.process.poll() is None:
            daemon.signal(signal.SIGKILL)
            daemon.wait()

    # restarted on a scene without Ben: back, and Home Assistant's state is the new process's
    daemon = DaemonProcess(write_config(tmp_path / "config.yaml", empty_clip, tmp_path / "gallery.npz", broker, outbox),
                           tmp_path / "daemon-2.log")
    try:
        ha.wait_state(ben_entity, lambda s: s["state"] == "off", "off after the restart (he was on when killed)")
        assert ha.states()[entity[elton_uid.removeprefix("edge-facerec_front-door_")]]["state"] == "off"
        ha.wait_state(entity["camera"], lambda s: s["state"] == "running", "running")
        ha.wait_state(entity["liveness_time"], lambda s: s["state"] == "unknown",
                      "unknown: the new process has no liveness figure, the old one's is not shown")

        # Ben removed from the gallery, the daemon told: his entity is deleted
        gallery.remove(ben.id)
        save(gallery, tmp_path / "gallery.npz")
        daemon.signal(signal.SIGHUP)
        ha.wait_for(lambda: ben_uid not in ha.entities(DEVICE) and ben_entity not in ha.states(), 60,
                    "Ben's entity deleted")
        assert elton_uid in ha.entities(DEVICE)
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0
        ha.wait_state(entity["camera"], is_unavailable, "unavailable after a clean stop")
    finally:
        if daemon.process.poll() is None:
            daemon.signal(signal.SIGKILL)
            daemon.wait()

    log = ha.log().splitlines()
    errors = [line for line in log if " ERROR " in line and not any(known in line for known in ENVIRONMENT_ERRORS)]
    assert not errors, "\n".join(errors)
    ours = re.compile(r"mqtt|edge-facerec|front.door|value_json", re.IGNORECASE)
    warnings = [line for line in log if " WARNING " in line and ours.search(line)]
    assert not warnings, "\n".join(warnings)
    assert "Traceback" not in (tmp_path / "daemon-2.log").read_text()
    print(f"daemon logs: {tmp_path}; Home Assistant's: {ha.log_file}")
