"""End to end: `edge-facerec` processes a short clip with MQTT enabled; a subscriber gets the event the
daemon printed, Home Assistant gets its entities and the person's presence, and a clean exit is offline."""
from __future__ import annotations

import json
import subprocess
import sys
import time

import yaml

from daemon_support import small_gallery, val_photo
from edge.commands.demo import make_clip
from edge.recognition.gallery import save
from mosquitto import Collector


def test_the_daemon_publishes_its_events_presence_and_discovery(mqtt_broker, celebrities, tmp_path):
    clip = make_clip([val_photo(celebrities, "ben_afflek")], tmp_path / "ben.mp4", fps=10, show_s=2, gap_s=0)
    gallery = small_gallery(celebrities, tmp_path, ("ben_afflek", "elton_john"), photos_each=2)
    save(gallery, tmp_path / "gallery.npz")
    ben = gallery.find("Ben Afflek")
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "device": {"name": "Porch"},
        "camera": {"name": "door", "source": str(clip), "realtime": False},
        "recognition": {"gallery": str(tmp_path / "gallery.npz")},
        "mqtt": {**mqtt_broker.mqtt_section(tls=True), "enabled": True, "outbox": str(tmp_path / "outbox.sqlite3")},
        "tuning": {"enabled": False},  # test_device_tuning.py times the models; here the defaults run
    }))
    collector = Collector(mqtt_broker, ["edge-facerec/porch/#", "homeassistant/device/edge-facerec_porch/config"])
    try:
        result = subprocess.run([sys.executable, "-m", "edge.commands.facerec", "--config", str(config)],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        printed = [json.loads(line) for line in result.stdout.splitlines()]
        printed_events = [{k: v for k, v in line.items() if k != "type"} for line in printed if line["type"] == "event"]
        assert [e["kind"] for e in printed_events] == ["recognized"]
        assert collector.wait_for(lambda messages: any(m.topic.endswith("/availability") and m.payload == b"offline"
                                                       for m in messages))
        time.sleep(0.2)
    finally:
        collector.close()
    published = [json.loads(m.payload) for m in collector.on("edge-facerec/porch/events")]
    assert published == printed_events, "the event as the daemon printed it, once"
    presence = [json.loads(m.payload) for m in collector.on(f"edge-facerec/porch/presence/{ben.id}")]
    assert [p["state"] for p in presence[:2]] == ["away", "present"], "away from the start, present when seen"
    assert presence[1]["name"] == "Ben Afflek"
    config = json.loads(collector.on("homeassistant/device/edge-facerec_porch/config")[0].payload)
    assert {"recognition", f"presence_{ben.id.replace('-', '_')}", "camera"} <= set(config["components"])
    assert "refused" not in result.stderr and "cannot connect" not in result.stderr
    assert "connected to the MQTT broker" in result.stderr and (tmp_path / "outbox.sqlite3").exists()
