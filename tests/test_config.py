"""Configuration: every mistake is one line naming the key, exit status 2; secrets never show."""
from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from edge import config as config_module
from edge.config import Config, ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "config.example.yaml"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def keys(value: object, prefix: str = "") -> set[str]:
    """Dotted names of every settable field of a config dataclass (or every key of a mapping)."""
    if isinstance(value, dict):
        return {k for name, v in value.items() for k in {prefix + name} | keys(v, prefix + name + ".")}
    if dataclasses.is_dataclass(value):
        return {k for f in dataclasses.fields(value) if not f.metadata.get("derived")
                for k in {prefix + f.name} | keys(getattr(value, f.name), prefix + f.name + ".")}
    return set()


def test_the_example_config_loads_and_shows_every_key_with_its_default():
    config = load_config(EXAMPLE)
    assert config == Config()
    assert keys(yaml.safe_load(EXAMPLE.read_text())) == keys(Config())


@pytest.mark.parametrize("text, named", [
    ("camera:\n  sauce: 0\n", "unknown key camera.sauce"),
    ("events:\n  window: five\n", "events.window must be a whole number"),
    ("detector:\n  tracking: 1\n", "detector.tracking must be true or false"),
    ("recognition:\n  threshold: 1.5\n", "recognition.threshold must be more than 0 and less than 1, got 1.5"),
    ("events:\n  window: 2\n  needed: 3\n", "events.needed (3) must not exceed events.window (2)"),
    ("camera: [1, 2]\n", "camera must be a mapping"),
    ("motion:\n  min_area: 0\n", "motion.min_area must be more than 0 and at most 1"),
    ("motion:\n  keepalive_s: -1\n", "motion.keepalive_s must be more than 0 and at most 3600"),
    ("camera:\n  source: [\n", "not valid YAML"),
    ("mqtt:\n  discovery_face_image: true\n", "mqtt.discovery_face_image needs events.snapshot: true"),
])
def test_a_bad_value_is_one_line_naming_the_key(tmp_path, text, named):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert named in message and str(path) in message and "\n" not in message


def test_a_missing_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        load_config(tmp_path / "absent.yaml")


@pytest.mark.parametrize("text, named", [
    (None, "config file not found"),
    ("events:\n  windw: 3\n", "unknown key events.windw"),
    ("camera:\n  loop: maybe\n", "camera.loop must be true or false"),
])
def test_edge_facerec_exits_2_with_one_line(tmp_path, text, named):
    path = tmp_path / "absent.yaml" if text is None else write(tmp_path, text)
    result = subprocess.run([sys.executable, "-m", "edge.commands.facerec", "--config", str(path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and lines[0].startswith("edge-facerec: error:")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_password_from_a_file_never_shows(tmp_path):
    secret_file = tmp_path / "mqtt-password"
    secret_file.write_text("hunter2-file\n")
    config = load_config(write(tmp_path, f"mqtt:\n  username: door\n  password_file: {secret_file}\n"))
    assert config.mqtt.password.reveal() == "hunter2-file"
    assert "hunter2" not in repr(config) and "hunter2" not in str(config.mqtt)


def test_password_from_the_environment_never_shows(tmp_path):
    path = write(tmp_path, "mqtt:\n  password_env: EDGE_TEST_MQTT_PASSWORD\n")
    config = load_config(path, environ={"EDGE_TEST_MQTT_PASSWORD": "hunter2-env"})
    assert config.mqtt.password.reveal() == "hunter2-env"
    assert "hunter2" not in repr(config)
    with pytest.raises(ConfigError, match="environment variable EDGE_TEST_MQTT_PASSWORD is not set"):
        load_config(path, environ={})


def test_an_unreadable_password_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match="mqtt.password_file .*absent.*cannot read"):
        load_config(write(tmp_path, f"mqtt:\n  password_file: {tmp_path / 'absent'}\n"))


def test_a_user_gets_the_xdg_folders(as_a_user):
    config = Config()
    assert config.recognition.gallery == as_a_user / "state" / "edge-facerec" / "gallery.npz"
    assert config.mqtt.outbox == as_a_user / "state" / "edge-facerec" / "outbox.sqlite3"
    assert config_module.default_config_path() == as_a_user / "config" / "edge-facerec" / "config.yaml"
    assert load_config(EXAMPLE) == config  # the example's null paths mean the same


def test_xdg_variables_that_are_not_absolute_are_ignored(as_a_user, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", "relative/state")
    monkeypatch.delenv("XDG_CONFIG_HOME")
    assert Config().recognition.gallery == Path.home() / ".local" / "state" / "edge-facerec" / "gallery.npz"
    assert config_module.default_config_path() == Path.home() / ".config" / "edge-facerec" / "config.yaml"


def test_root_or_an_installed_service_gets_the_service_folders(as_a_user, monkeypatch):
    service_config = as_a_user / "etc" / "config.yaml"
    service_config.parent.mkdir()
    service_config.write_text("{}\n")
    assert Config().recognition.gallery == Path("/var/lib/edge-facerec/gallery.npz")  # a user on the device
    assert config_module.default_config_path() == service_config
    service_config.unlink()
    monkeypatch.setattr(config_module.os, "geteuid", lambda: 0)
    assert Config().mqtt.outbox == Path("/var/lib/edge-facerec/outbox.sqlite3")
    assert config_module.default_config_path() == service_config


def test_without_a_config_path_the_default_file_is_read_when_there_is_one(as_a_user):
    assert config_module.load_config_or_defaults(None) == (Config(), None)
    own = as_a_user / "config" / "edge-facerec" / "config.yaml"
    own.parent.mkdir(parents=True)
    own.write_text("camera:\n  source: /dev/video2\n")
    config, read = config_module.load_config_or_defaults(None)
    assert read == own and config.camera.source == "/dev/video2"
    with pytest.raises(ConfigError, match="config file not found"):  # a path given must exist
        config_module.load_config_or_defaults(as_a_user / "absent.yaml")


def test_a_service_config_this_user_may_not_look_at_counts_as_the_service(as_a_user, monkeypatch):
    """On the device /etc/edge-facerec is 0750: a user outside its group gets one line, not a traceback."""
    real_stat = Path.stat

    def stat(path, *args, **kwargs):
        if path == config_module.SERVICE_CONFIG_PATH:
            raise PermissionError(13, "Permission denied", str(path))
        return real_stat(path, *args, **kwargs)

    monkeypatch.setattr(Path, "stat", stat)
    assert config_module.runs_as_service() and Config().recognition.gallery == Path("/var/lib/edge-facerec/gallery.npz")
    with pytest.raises(ConfigError, match=f"^{config_module.SERVICE_CONFIG_PATH}: "):
        config_module.load_config_or_defaults(None)
