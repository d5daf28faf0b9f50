"""Home Assistant discovery: payloads with the keys HA's MQTT schemas require, retained on the broker,
re-sent when HA comes online, and removed when a person leaves the gallery (also across a restart)."""
from __future__ import annotations

import json
import re
import time

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.mqtt import ha_discovery
from edge.config import config_from_dict
from edge.events import EnrolledPerson
from edge.mqtt.publisher import MqttPublisher
from edge.mqtt.topics import Topics
from mosquitto import USERS, Collector

TOPIC = re.compile(r"^homeassistant/(event|binary_sensor|sensor)/[a-zA-Z0-9_-]+/[a-zA-Z0-9_-]+/config$")


def check_config(topic: str, config: dict, topics: Topics) -> None:
    """The keys Home Assistant's MQTT platform schemas require or this project promises."""
    match = TOPIC.match(topic)
    assert match, topic
    component = match.group(1)
    assert isinstance(config["unique_id"], str) and config["unique_id"].startswith("edge-facerec_")
    assert config["device"]["identifiers"] == [f"edge-facerec_{topics.device_id}"] and config["device"]["name"]
    assert config["availability"] == [{"topic": topics.availability, "payload_available": "online",
                                       "payload_not_available": "offline"}]
    assert config["state_topic"].startswith(f"{topics.base}/") and "+" not in config["state_topic"]
    assert config["qos"] in (0, 1, 2)
    if component == "event":
        assert config["event_types"] == ["recognized", "unknown"]
        assert "event_type" in config["value_template"]
    elif component == "binary_sensor":
        assert config["device_class"] in ("presence", "occupancy")
        assert (config["payload_on"], config["payload_off"]) == ("present", "away")
    else:
        assert config["entity_category"] == "diagnostic" and config["state_class"] == "measurement"
    assert config["value_template"].startswith("{{") and config["value_template"].endswith("}}")


def test_every_entity_config_has_the_required_keys():
    topics = Topics("edge-facerec", "front-door")
    entities = [ha_discovery.recognition_entity(topics, "Front door"),
                ha_discovery.presence_entity(topics, "Front door", "p-0123abcd", "Zoë Ångström")]
    status = {"fps": 4.5, "frames": {"processed": 10, "dropped": 1}, "camera": "ok", "present": ["a"],
              "latency": {"total": {"median_ms": 80.0}}, "mqtt": {"connected": True, "outbox_pending": 0}}
    figures = ha_discovery.status_figures(status)
    assert figures == {"fps": ("fps",), "frames_processed": ("frames", "processed"),
                       "frames_dropped": ("frames", "dropped"),
                       "latency_total_median_ms": ("latency", "total", "median_ms"),
                       "mqtt_outbox_pending": ("mqtt", "outbox_pending")}, "numbers only, booleans are not figures"
    entities += [ha_discovery.status_entity(topics, "Front door", key, path) for key, path in figures.items()]
    for topic, config in entities:
        check_config(topic, config, topics)
    unique_ids = [config["unique_id"] for _, config in entities]
    assert len(set(unique_ids)) == len(unique_ids)
    sensor = dict(entities)["homeassistant/sensor/front-door/status_latency_total_median_ms/config"]
    assert sensor["value_template"] == "{{ value_json['latency']['total']['median_ms'] }}"
    assert sensor["unit_of_measurement"] == "ms"
    assert entities[1][1]["name"] == "Zoë Ångström"
    assert ha_discovery.encode(entities[1][1]).decode().count("Zoë") == 1


def retained(broker, prefix: str = "homeassistant/#", wait: float = 0.5) -> dict[str, bytes]:
    """What a fresh subscriber gets as retained messages under ``prefix``."""
    collector = Collector(broker, [prefix])
    time.sleep(wait)
    collector.close()
    assert all(m.retain for m in collector.messages)
    return {m.topic: m.payload for m in collector.messages}


def test_discovery_is_retained_resent_for_home_assistant_and_removed_with_the_person(mqtt_broker, tmp_path):
    raw = {"device": {"name": "Hall"}, "mqtt": {**mqtt_broker.mqtt_section(), "enabled": True,
                                                "outbox": str(tmp_path / "outbox.sqlite3")}}
    config = config_from_dict(raw)
    topics = Topics("edge-facerec", "hall")
    alice, zoe = EnrolledPerson("p-alice", "Alice"), EnrolledPerson("p-zoe", "Zoë")
    publisher = MqttPublisher(config)
    try:
        publisher.people_changed([alice, zoe])
        publisher.publish_status({"fps": 2.5, "frames": {"processed": 7}})
        assert publisher.connection.connected.wait(10)
        time.sleep(0.3)
        configs = {t: json.loads(p) for t, p in retained(mqtt_broker).items() if "/hall/" in t}
        assert set(configs) >= {"homeassistant/event/hall/recognition/config",
                                "homeassistant/binary_sensor/hall/presence_p_alice/config",
                                "homeassistant/binary_sensor/hall/presence_p_zoe/config",
                                "homeassistant/sensor/hall/status_fps/config",
                                "homeassistant/sensor/hall/status_mqtt_outbox_pending/config"}
        for topic, payload in configs.items():
            check_config(topic, payload, topics)

        # Home Assistant restarts and says so: the configs come again
        watcher = Collector(mqtt_broker, ["homeassistant/+/hall/#"])
        time.sleep(0.3)
        before = len(watcher.messages)
        announcer = mqtt.Client(CallbackAPIVersion.VERSION2)
        announcer.username_pw_set("homeassistant", USERS["homeassistant"])
        announcer.connect("127.0.0.1", mqtt_broker.port)
        announcer.loop_start()
        announcer.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
        assert watcher.wait_for(lambda messages: len(messages) >= before + len(configs))
        announcer.disconnect()
        announcer.loop_stop()
        watcher.close()

        publisher.people_changed([alice])  # Zoë removed from the gallery
        time.sleep(0.3)
        now = retained(mqtt_broker)
        assert "homeassistant/binary_sensor/hall/presence_p_zoe/config" not in now
        assert "homeassistant/binary_sensor/hall/presence_p_alice/config" in now
    finally:
        publisher.close()

    # removed while the daemon was stopped: the next start clears Alice's entity too
    publisher = MqttPublisher(config)
    try:
        publisher.people_changed([])
        assert publisher.connection.connected.wait(10)
        time.sleep(0.3)
    finally:
        publisher.close()
    assert not any("presence_p_" in topic for topic in retained(mqtt_broker) if "/hall/" in topic)
    assert (tmp_path / "outbox.people.json").stat().st_mode & 0o777 == 0o600


def test_the_event_entity_attributes_carry_the_liveness_decision():
    """The recognition entity's template rendered as Home Assistant renders it (Jinja2; to_json is HA's
    filter): an event's liveness becomes the ``live`` and ``liveness`` attributes, null for unknown faces."""
    jinja2 = pytest.importorskip("jinja2", reason="jinja2 renders Home Assistant's templates here")
    from mqtt_producer import make_event

    _, config = ha_discovery.recognition_entity(Topics("edge-facerec", "front-door"), "Front Door")
    environment = jinja2.Environment()
    environment.filters["to_json"] = json.dumps
    template = environment.from_string(config["value_template"])

    def render(event) -> dict:
        return json.loads(template.render(value_json=json.loads(event.to_json())))

    recognized, stranger = render(make_event(0, "front-door")), render(make_event(2, "front-door"))
    assert (recognized["event_type"], recognized["live"], recognized["liveness"]) == ("recognized", True, 0.97)
    assert (stranger["event_type"], stranger["live"], stranger["liveness"]) == ("unknown", None, None)
