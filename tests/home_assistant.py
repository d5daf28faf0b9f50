"""A real Home Assistant core for the integration test: started offline, onboarded and given the MQTT
integration over its own REST API, then read through its REST and websocket APIs.

``HomeAssistant(venv, folder)`` writes a minimal ``configuration.yaml`` (no ``default_config:``, so
only the integrations the test needs load), ``start()`` runs ``hass --skip-pip`` on a free loopback
port and waits for its API; ``onboard()`` creates the owner through onboarding and keeps an access
token; ``add_mqtt(port, user, password)`` creates the MQTT config entry through the config flow, as
a user does in the UI. The venv comes from tests/ha_venv.py.
"""
from __future__ import annotations

import json
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from ha_venv import hass
from mosquitto import free_port

T = TypeVar("T")
CONFIGURATION = """\
homeassistant:
  name: edge-facerec test
  time_zone: UTC
  unit_system: metric
  currency: EUR
  country: GB
  latitude: 0
  longitude: 0
  elevation: 0
http:
  server_host: 127.0.0.1
  server_port: {port}
api:
config:
onboarding:
websocket_api:
automation: !include automations.yaml
logger:
  default: info
"""


class HomeAssistantError(RuntimeError):
    """Home Assistant did not do what the test needed (with its log's tail)."""


class HomeAssistant:
    """One ``hass`` process with its own configuration folder."""

    def __init__(self, venv: Path, folder: Path, automations: list[dict] | None = None) -> None:
        self.venv = venv
        self.folder = folder
        self.config = folder / "config"
        self.log_file = folder / "home-assistant.log"
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.client_id = f"{self.base}/"
        self.token: str | None = None
        self.process: subprocess.Popen | None = None
        self.config.mkdir(parents=True, exist_ok=True)
        (self.config / "configuration.yaml").write_text(CONFIGURATION.format(port=self.port))
        (self.config / "automations.yaml").write_text(json.dumps(automations or []))  # JSON is YAML

    # process ---------------------------------------------------------------------------------------------

    def start(self, timeout: float = 180.0) -> float:
        """Run hass and wait until its API answers; the seconds that took."""
        started = time.monotonic()
        self.process = subprocess.Popen([str(hass(self.venv)), "-c", str(self.config), "--skip-pip",
                                         "--log-file", str(self.log_file), "--log-no-color"],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.wait_for(self._answers, timeout, "Home Assistant's API to answer")
        return time.monotonic() - started

    def _answers(self) -> bool:
        if self.process is not None and self.process.poll() is not None:
            raise HomeAssistantError(f"hass exited with status {self.process.returncode}: {self.log_tail()}")
        try:
            with urllib.request.urlopen(f"{self.base}/api/onboarding", timeout=5):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    def stop(self) -> None:
        """Stop hass (SIGTERM, then SIGKILL after 60 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log(self) -> str:
        """Home Assistant's log so far."""
        return self.log_file.read_text(encoding="utf-8", errors="replace") if self.log_file.exists() else ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log().splitlines()[-lines:])

    # REST -------------------------------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None, form: bool = False, raw: bool = False) -> Any:
        """One REST call with the access token; the decoded JSON answer (bytes with ``raw``)."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        data = None
        if body is not None:
            data = urllib.parse.urlencode(body).encode() if form else json.dumps(body).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded" if form else "application/json"
        request = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                content = response.read()
        except urllib.error.HTTPError as error:
            raise HomeAssistantError(f"{method} {path}: {error.code} {error.read().decode(errors='replace')}") from None
        return content if raw else json.loads(content or b"null")

    def onboard(self) -> None:
        """Create the owner through onboarding's first step and keep an access token."""
        answer = self.request("POST", "/api/onboarding/users",
                              {"client_id": self.client_id, "name": "Test", "username": "test",
                               "password": "edge-facerec-test", "language": "en"})
        tokens = self.request("POST", "/auth/token", {"grant_type": "authorization_code", "code": answer["auth_code"],
                                                      "client_id": self.client_id}, form=True)
        self.token = tokens["access_token"]

    def add_mqtt(self, port: int, username: str, password: str) -> dict:
        """Create the MQTT config entry through its config flow (the broker form), as the UI does."""
        flow = self.request("POST", "/api/config/config_entries/flow", {"handler": "mqtt"})
        if flow.get("step_id") != "broker":
            raise HomeAssistantError(f"the MQTT config flow asked for {flow}")
        result = self.request("POST", f"/api/config/config_entries/flow/{flow['flow_id']}",
                              {"broker": "127.0.0.1", "port": port, "username": username, "password": password})
        if result.get("type") != "create_entry" or result["result"]["state"] != "loaded":
            raise HomeAssistantError(f"the MQTT config flow ended with {result}")
        return result["result"]

    def states(self) -> dict[str, dict]:
        """Every entity's state object, by entity id."""
        return {state["entity_id"]: state for state in self.request("GET", "/api/states")}

    def template(self, template: str, **variables: Any) -> str:
        """``template`` rendered by Home Assistant's own template engine."""
        body: dict[str, Any] = {"template": template}
        if variables:
            body["variables"] = variables
        return self.request("POST", "/api/template", body, raw=True).decode()

    def image(self, entity_id: str) -> bytes | None:
        """The picture an image entity serves; None while it has none."""
        try:
            return self.request("GET", f"/api/image_proxy/{entity_id}", raw=True)
        except HomeAssistantError as error:
            if ": 500 " in str(error):  # Home Assistant's answer for an image entity without an image
                return None
            raise

    # websocket -------------------------------------------------------------------------------------------

    def ws(self, *commands: dict) -> list[Any]:
        """Run websocket commands (``{"type": ...}``) in one authenticated session; their results."""
        from websockets.sync.client import connect

        results = []
        with connect(f"ws://127.0.0.1:{self.port}/api/websocket", max_size=None) as socket:
            json.loads(socket.recv(timeout=30))
            socket.send(json.dumps({"type": "auth", "access_token": self.token}))
            if json.loads(socket.recv(timeout=30))["type"] != "auth_ok":
                raise HomeAssistantError("websocket authentication failed")
            for number, command in enumerate(commands, 1):
                socket.send(json.dumps({"id": number, **command}))
                while True:
                    answer = json.loads(socket.recv(timeout=30))
                    if answer.get("id") == number and answer.get("type") == "result":
                        break
                if not answer["success"]:
                    raise HomeAssistantError(f"{command}: {answer.get('error')}")
                results.append(answer["result"])
        return results

    def entities(self, device_name: str) -> dict[str, dict]:
        """The entity registry entries (enabled or not) of the device named ``device_name``, by unique id,
        each with its ``device`` registry entry."""
        entities, devices = self.ws({"type": "config/entity_registry/list"}, {"type": "config/device_registry/list"})
        named = {device["id"]: device for device in devices if device["name"] == device_name}
        return {entry["unique_id"]: {**entry, "device": named[entry["device_id"]]}
                for entry in entities if entry.get("device_id") in named}

    # waiting ---------------------------------------------------------------------------------------------

    def wait_for(self, condition: Callable[[], T], timeout: float, what: str) -> T:
        """Poll ``condition`` until it returns something true; HomeAssistantError naming ``what`` on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if time.monotonic() > deadline:
                raise HomeAssistantError(f"timed out after {timeout:g} s waiting for {what}; log: {self.log_tail()}")
            time.sleep(0.2)

    def wait_state(self, entity_id: str, predicate: Callable[[dict], bool], what: str,
                   timeout: float = 60.0) -> dict:
        """Wait until ``entity_id``'s state object satisfies ``predicate``; that state object."""
        def matching() -> dict | None:
            state = self.states().get(entity_id)
            return state if state is not None and predicate(state) else None
        return self.wait_for(matching, timeout, f"{entity_id}: {what}")
