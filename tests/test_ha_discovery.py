"""Home Assistant discovery without Home Assistant (tests/test_home_assistant.py has the real one): the
device config's entities and keys, the templates rendered as Home Assistant renders them (Jinja2 with
its ``to_json``), and on a real broker: one retained device config, re-sent when Home Assistant comes
online, a removed person's config cleared before their presence, every enrolled person's presence
reconciled at start and after a reload, the face image, and edge-facerec 0.1's configs migrated once."""
from __future__ import annotations

import base64
import json
import time
from dataclasses import replace

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from edge.config import config_from_dict
from edge.daemon.status import STAGES, PipelineStats
from edge.vision.gated_detection import REASONS
from edge.events import EnrolledPerson, PresenceChange
from edge.mqtt import ha_discovery
from edge.mqtt.ha_migration import MIGRATE, migration_messages
from edge.mqtt.ha_sensors import CAMERA_STATES, LATENCY_STAGES, SEARCH_REASONS, SENSORS
from edge.mqtt.presence_state import PresenceState
from edge.mqtt.publisher import MqttPublisher
from edge.mqtt.topics import Topics
from mosquitto import USERS, Collector, publish_as
from mqtt_producer import make_event

TOPICS = Topics("edge-facerec", "front-door")
ALICE, ZOE = EnrolledPerson("p-alice", "Alice"), EnrolledPerson("p-zoe", "Zoë Ångström")
DEFAULT_SET = {"camera", "health", "fps", "faces_seen", "events", "outbox_pending", "memory"}


def a_status() -> dict:
    """A status as the publisher sends it: the daemon's figures plus its own under ``mqtt``."""
    stats = PipelineStats()
    for reason in REASONS:
        stats.searched(reason)
    status = stats.snapshot(12, 1, "running", ["p-alice"], "degraded: mqtt-outbox: disk full")
    status["latency"] = {stage: {"median_ms": 10.0 + index, "p95_ms": 20.0 + index}
                         for index, stage in enumerate(STAGES)}
    return {**status, "time": "2026-12-01T10:00:00.000+00:00",
            "mqtt": {"connected": True, "delivered": 7, "outbox_pending": 2, "outbox_in_memory": 1, "outbox_dropped": 3,
                     "outbox_dropped_full": 1, "outbox_dropped_expired": 2, "outbox_dropped_memory": 0,
                     "dead_letters": 1, "snapshots_dropped": 1, "max_packet_size": 65536}}


@pytest.fixture(scope="module")
def render():
    """render(template, payload): ``template`` as Home Assistant's MQTT platforms render it for ``payload``."""
    jinja2 = pytest.importorskip("jinja2", reason="jinja2 renders Home Assistant's templates here")
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    environment = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined)  # any undefined use fails
    environment.filters["to_json"] = json.dumps

    def rendered(template: str, payload: bytes) -> str:
        variables = {"value": payload.decode()}
        try:
            variables["value_json"] = json.loads(payload)  # only for a JSON payload, as in Home Assistant
        except ValueError:
            pass
        return environment.from_string(template).render(**variables)

    return rendered


def test_the_device_config_lists_every_entity_with_the_keys_home_assistant_needs():
    config = ha_discovery.device_config(TOPICS, "Front Door", [ALICE, ZOE], ["p-gone"], face_image=False)
    assert config["device"]["identifiers"] == ["edge-facerec_front-door"] and config["device"]["name"] == "Front Door"
    assert config["origin"]["name"] == "edge-facerec"
    assert config["availability"] == [{"topic": "edge-facerec/front-door/availability", "payload_available": "online",
                                       "payload_not_available": "offline"}]
    components = config["components"]
    assert components["presence_p_gone"] == {"platform": "binary_sensor"}, "a removed person: platform only"
    assert components["face"] == {"platform": "image"}, "the face image is off"
    entities = {key: value for key, value in components.items() if len(value) > 1}
    unique_ids = [entity["unique_id"] for entity in entities.values()]
    assert len(set(unique_ids)) == len(unique_ids) and all(u.startswith("edge-facerec_front-door_") for u in unique_ids)
    assert all(entity["qos"] == 1 and entity["platform"] in ("event", "binary_sensor", "sensor")
               for entity in entities.values())
    event = components["recognition"]
    assert (event["state_topic"], event["event_types"]) == ("edge-facerec/front-door/events", ["recognized", "unknown"])
    zoe = components["presence_p_zoe"]
    assert (zoe["name"], zoe["device_class"], zoe["payload_on"], zoe["payload_off"]) == \
        ("Zoë Ångström", "presence", "present", "away")
    assert zoe["state_topic"] == zoe["json_attributes_topic"] == "edge-facerec/front-door/presence/p-zoe"
    assert ha_discovery.encode(config).decode().count("Zoë Ångström") == 1, "UTF-8, not escaped"
    with_face = ha_discovery.device_config(TOPICS, "Front Door", [], [], face_image=True)["components"]["face"]
    assert (with_face["image_topic"], with_face["content_type"]) == ("edge-facerec/front-door/face", "image/jpeg")


def test_sensors_are_a_small_default_set_and_classed_diagnostics():
    components = ha_discovery.device_config(TOPICS, "Front Door", [], [], False)["components"]
    sensors = {key: value for key, value in components.items() if value["platform"] == "sensor"}
    assert {key for key, sensor in sensors.items() if sensor.get("enabled_by_default", True)} == DEFAULT_SET
    for key, sensor in sensors.items():
        assert sensor["state_topic"] == "edge-facerec/front-door/status"
        assert not sensor["name"].lower().endswith((" s", " ms", " mb")), "no unit in a name"
        if key not in DEFAULT_SET:
            assert sensor["entity_category"] == "diagnostic" and sensor["enabled_by_default"] is False
        if sensor.get("unit_of_measurement") in ("s", "ms"):
            assert sensor["device_class"] == "duration"
    assert (sensors["memory"]["device_class"], sensors["memory"]["unit_of_measurement"]) == ("data_size", "MiB")
    assert sensors["camera"]["device_class"] == "enum" and sensors["camera"]["options"] == list(CAMERA_STATES)
    counters = {"faces_seen", "events", "frames_processed", "events_recognized", "events_delivered", "events_dropped"}
    assert all(sensors[key]["state_class"] == "total_increasing" for key in counters)
    assert [stage for stage, _ in LATENCY_STAGES] == list(STAGES)
    assert [reason for reason, _ in SEARCH_REASONS] == [reason for reason in REASONS if reason != "skipped"]
    health = sensors["health"]
    assert health["options"] == ["ok", "degraded", "failed"] and health["json_attributes_topic"] == health["state_topic"]


def test_every_status_figure_has_a_sensor(render):
    numbered: dict[tuple[str, ...], int] = {}  # each numeric figure of a status, given a value of its own

    def renumber(value, path=()):
        if isinstance(value, dict):
            return {key: renumber(inner, (*path, key)) for key, inner in value.items()}
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            numbered[path] = 1000 + len(numbered)
            return numbered[path]
        return value

    payload = json.dumps(renumber(a_status())).encode()
    shown = {render(sensor.template(), payload) for sensor in SENSORS}
    same_as_skipped = ("detection", "by_reason", "skipped")  # detection.skipped, shown
    assert not [path for path, number in numbered.items() if str(number) not in shown and path != same_as_skipped], \
        "figures without a sensor"


def test_templates_render_the_status_and_none_for_a_missing_figure(render):
    by_key = {sensor.key: sensor for sensor in SENSORS}
    status = a_status()
    full = json.dumps(status).encode()
    assert render(by_key["memory"].template(), full) == str(status["rss_mb"])
    assert render(by_key["events"].template(), full) == "0"
    assert render(by_key["outbox_pending"].template(), full) == "2"
    assert render(by_key["liveness_time_p95"].template(), full) == str(20.0 + STAGES.index("liveness"))
    for sensor in SENSORS:  # a new process's status without the figure, an empty payload, not JSON at all
        for payload in (b'{"latency": {}, "mqtt": {}}', b"", b"not json"):
            assert render(sensor.template(), payload) == "None", (sensor.key, payload)
    camera = by_key["camera"]
    failed = json.dumps({"camera": "failed: /dev/video0: no camera (retrying in 4 s)"}).encode()
    assert render(camera.template(), full) == "running" and render(camera.template(), failed) == "failed"
    attributes = camera.component(TOPICS)["json_attributes_template"]
    assert json.loads(render(attributes, failed)) == {"reason": "/dev/video0: no camera (retrying in 4 s)"}
    assert json.loads(render(attributes, full)) == {"reason": None}
    assert render(camera.template(), b'{"camera": "dancing"}') == "None", "only its declared options"


def test_presence_and_event_templates_tolerate_an_empty_payload(render):
    presence = ha_discovery.presence_component(TOPICS, ZOE)
    message = json.dumps(PresenceChange("p-zoe", "Zoë Ångström", True, "front-door", "Front Door").to_dict()).encode()
    assert render(presence["value_template"], message) == "present"
    assert json.loads(render(presence["json_attributes_template"], message))["name"] == "Zoë Ångström"
    assert render(presence["value_template"], b"") == "", "Home Assistant ignores an empty result"
    assert render(presence["json_attributes_template"], b"") == "{}"
    event_template = ha_discovery.recognition_component(TOPICS)["value_template"]
    assert render(event_template, b"") == ""
    recognized, stranger = make_event(0, "front-door", "Front Door"), make_event(2, "front-door", "Front Door")
    attributes = json.loads(render(event_template, recognized.to_json().encode()))
    assert attributes == {"event_type": "recognized", "person_id": "p-alice", "name": "Alice", "score": 0.83,
                          "camera": "door", "time": recognized.to_dict()["time"], "event_id": recognized.id,
                          "device_id": "front-door", "live": True, "liveness": 0.97}
    unknown = json.loads(render(event_template, stranger.to_json().encode()))
    assert (unknown["event_type"], unknown["live"], unknown["liveness"], unknown["name"]) == ("unknown", None, None, None)


def test_presence_is_reconciled_for_every_enrolled_person():
    clock = iter([100.0, 200.0, 300.0])
    state = PresenceState("front-door", "Front Door", clock=lambda: next(clock))
    assert not state.changed(PresenceChange("p-zoe", "Zoë", True, "front-door", "Front Door", 50.0)), \
        "not enrolled yet: kept, not published"
    start = state.enrolled([ALICE])
    assert [(c.person_id, c.present, c.timestamp) for c in start] == [("p-alice", False, 100.0)], "away at start"
    assert state.changed(PresenceChange("p-alice", "Alice", True, "front-door", "Front Door", 150.0))
    reload = state.enrolled([ALICE, ZOE])
    assert [(c.person_id, c.present, c.timestamp) for c in reload] == [("p-zoe", True, 50.0)], \
        "only the newly enrolled, with what this process saw of them"
    state.enrolled([ALICE])
    assert not state.changed(PresenceChange("p-zoe", "Zoë", False, "front-door", "Front Door", 210.0)), \
        "a removed person's away does not bring their cleared presence back"


def test_migration_unloads_the_kept_entities_then_configures_the_device_then_clears():
    messages = migration_messages(TOPICS, ["p-zoe", "p-alice"], b"{device}")
    topics = [topic for topic, _ in messages]
    kept = ["homeassistant/event/front-door/recognition/config",
            "homeassistant/binary_sensor/front-door/presence_p_alice/config",
            "homeassistant/binary_sensor/front-door/presence_p_zoe/config"]
    assert messages[:4] == [(topic, MIGRATE) for topic in kept] + [(TOPICS.discovery, b"{device}")]
    assert topics[4:7] == kept and all(payload == b"" for _, payload in messages[4:])
    assert "homeassistant/sensor/front-door/status_rss_mb/config" in topics
    assert "homeassistant/sensor/front-door/status_latency_liveness_p95_ms/config" in topics


def retained(broker, prefix: str, wait: float = 0.5) -> dict[str, bytes]:
    """What a fresh subscriber gets as retained messages under ``prefix``."""
    collector = Collector(broker, [prefix])
    time.sleep(wait)
    collector.close()
    assert all(m.retain for m in collector.messages)
    return {m.topic: m.payload for m in collector.messages}


def run_publisher(config, people: list[EnrolledPerson], *presence: PresenceChange) -> None:
    """One daemon's life for the publisher: announce ``people`` (and these presence changes), connect, stop."""
    publisher = MqttPublisher(config)
    try:
        publisher.people_changed(people)
        for change in presence:
            publisher.publish_presence(change)
        assert publisher.connection.connected.wait(10)
        time.sleep(0.5)
    finally:
        publisher.close()


def publisher_config(broker, tmp_path, **mqtt_settings):
    return config_from_dict({"device": {"name": "Hall"}, "events": {"snapshot": True},
                             "mqtt": {**broker.mqtt_section(), "enabled": True,
                                      "outbox": str(tmp_path / "outbox.sqlite3"), **mqtt_settings}})


def test_one_retained_device_config_resent_for_home_assistant_and_removals_clear_config_first(mqtt_broker, tmp_path):
    config = publisher_config(mqtt_broker, tmp_path)
    topics = Topics("edge-facerec", "hall")
    publisher = MqttPublisher(config)
    try:
        publisher.people_changed([ALICE, ZOE])
        assert publisher.connection.connected.wait(10)
        time.sleep(0.3)
        now = retained(mqtt_broker, "#")
        device = json.loads(now[topics.discovery])
        assert {"presence_p_alice", "presence_p_zoe", "recognition", "memory"} <= set(device["components"])
        assert [topic for topic in now if "hall" in topic and topic.startswith("homeassistant/")] == \
            [topics.discovery], "one config for the device"
        assert {json.loads(now[topics.presence(p.person_id)])["state"] for p in (ALICE, ZOE)} == {"away"}, \
            "everyone enrolled has a presence from the start"

        # Home Assistant restarts and says so: the config comes again
        watcher = Collector(mqtt_broker, [topics.discovery])
        time.sleep(0.3)
        before = len(watcher.messages)
        announcer = mqtt.Client(CallbackAPIVersion.VERSION2)
        announcer.username_pw_set("homeassistant", USERS["homeassistant"])
        announcer.connect("127.0.0.1", mqtt_broker.port)
        announcer.loop_start()
        announcer.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
        assert watcher.wait_for(lambda messages: len(messages) > before)
        announcer.disconnect()
        announcer.loop_stop()
        watcher.close()

        # Zoë removed from the gallery: her entity's deletion reaches Home Assistant before her cleared presence
        watcher = Collector(mqtt_broker, [topics.discovery, topics.presence("p-zoe")])
        time.sleep(0.3)
        start = len(watcher.messages)
        publisher.people_changed([ALICE])
        assert watcher.wait_for(lambda messages: any(m.payload == b"" for m in messages[start:]))
        watcher.close()
        order = [(m.topic, m.payload) for m in watcher.messages[start:]]
        assert order[0][0] == topics.discovery and order[1] == (topics.presence("p-zoe"), b"")
        assert json.loads(order[0][1])["components"]["presence_p_zoe"] == {"platform": "binary_sensor"}
        now = retained(mqtt_broker, "edge-facerec/hall/presence/#")
        assert set(now) == {topics.presence("p-alice")}
    finally:
        publisher.close()

    # removed while the daemon was stopped: the next start deletes Alice's entity and presence too
    run_publisher(config, [])
    now = retained(mqtt_broker, "#")
    assert not [topic for topic in now if "/hall/presence/" in topic]
    assert json.loads(now[topics.discovery])["components"]["presence_p_alice"] == {"platform": "binary_sensor"}
    people_file = tmp_path / "outbox.people.json"
    assert json.loads(people_file.read_text()) == {"people": [], "discovery": "device"}
    assert people_file.stat().st_mode & 0o777 == 0o600


def test_a_new_process_publishes_away_for_whoever_the_last_one_left_present(mqtt_broker, tmp_path):
    config = publisher_config(mqtt_broker, tmp_path)
    topics = Topics("edge-facerec", "hall")
    run_publisher(config, [ALICE], PresenceChange("p-alice", "Alice", True, "hall", "Hall"),
                  PresenceChange("p-stranger", "Not enrolled", True, "hall", "Hall"))
    now = retained(mqtt_broker, "edge-facerec/hall/presence/#")
    assert set(now) == {topics.presence("p-alice")} and json.loads(now[topics.presence("p-alice")])["state"] == "present"
    run_publisher(config, [ALICE])  # the next process has not seen her
    assert json.loads(retained(mqtt_broker, topics.presence("p-alice"))[topics.presence("p-alice")])["state"] == "away"


def test_the_face_image_is_the_latest_events_snapshot(mqtt_broker, tmp_path):
    publisher = MqttPublisher(publisher_config(mqtt_broker, tmp_path, discovery_face_image=True))
    collector = Collector(mqtt_broker, ["edge-facerec/hall/face"])
    jpeg = b"\xff\xd8 a face \xff\xd9"
    try:
        publisher.people_changed([ALICE])
        assert publisher.connection.connected.wait(10)
        publisher.publish_event(replace(make_event(0, "hall"), snapshot_jpeg_base64=base64.b64encode(jpeg).decode()))
        assert collector.wait_for(lambda messages: bool(messages))
    finally:
        collector.close()
        publisher.close()
    assert [(m.payload, m.retain) for m in collector.messages] == [(jpeg, False)], "the JPEG itself, not retained"


def test_edge_facerec_0_1_discovery_is_migrated_once(mqtt_broker, tmp_path):
    topics = Topics("edge-facerec", "hall")
    old = {topics.legacy_discovery("event", "recognition"): b'{"name": "Recognition"}',
           topics.legacy_discovery("binary_sensor", "presence_p_alice"): b'{"name": "Alice"}',
           topics.legacy_discovery("sensor", "status_rss_mb"): b'{"name": "Rss mb"}'}
    publish_as(mqtt_broker, old)
    (tmp_path / "outbox.people.json").write_text(json.dumps({"people": ["p-alice"]}))  # as 0.1 wrote it
    watcher = Collector(mqtt_broker, ["homeassistant/+/hall/+/config", topics.discovery])
    time.sleep(0.3)
    start = len(watcher.messages)
    config = publisher_config(mqtt_broker, tmp_path)
    for _ in range(2):
        run_publisher(config, [ALICE])
    watcher.close()
    sent = [(m.topic, m.payload) for m in watcher.messages[start:]]
    assert sent[:3] == [(topics.legacy_discovery("event", "recognition"), MIGRATE),
                        (topics.legacy_discovery("binary_sensor", "presence_p_alice"), MIGRATE),
                        (topics.discovery, sent[2][1])]
    assert sum(payload == MIGRATE for _, payload in sent) == 2, "once: not again at the second start"
    assert not set(old) & set(retained(mqtt_broker, "homeassistant/+/hall/+/config")), "the old configs are gone"
    assert json.loads((tmp_path / "outbox.people.json").read_text())["discovery"] == "device"
