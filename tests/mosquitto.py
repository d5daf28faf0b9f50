"""A real mosquitto broker for tests and benchmarks: loopback, free ports, passwords, TLS, an ACL.

``Broker(folder)`` writes its own config, password file and (with ``tls=True``) a CA, a
server certificate and a client certificate made with openssl, then ``start()`` runs
``mosquitto -c`` and waits for its ports. ``stop()``/``start()`` again keeps the ports, so an
outage can be simulated. Retained messages and persistent sessions survive a stop/start
(persistence on, written at exit), as on a real installation.
"""
from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
USERS = {"edge-facerec": "daemon-pw", "edge-actions": "actions-pw", "homeassistant": "ha-pw", "intruder": "bad-pw"}


def available() -> str | None:
    """Why the broker cannot run here (naming what is missing and how to install it), or None."""
    tools = {"mosquitto": MOSQUITTO, "mosquitto_passwd": shutil.which("mosquitto_passwd"),
             "openssl": shutil.which("openssl")}
    missing = [name for name, tool in tools.items() if tool is None or not os.access(tool, os.X_OK)]
    if missing:
        return (f"{' and '.join(missing)} not installed, needed for the test broker "
                f"(sudo apt install mosquitto openssl)")
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_certificates(folder: Path) -> None:
    """ca.crt, server.crt/key (localhost, 127.0.0.1) and client.crt/key signed by the CA, EC keys."""
    folder.mkdir(parents=True, exist_ok=True)
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
             "-subj", "/CN=edge-facerec test CA", "-keyout", "ca.key", "-out", "ca.crt", cwd=folder)
    for name, extension in (("server", "subjectAltName=DNS:localhost,IP:127.0.0.1"),
                            ("client", "extendedKeyUsage=clientAuth")):
        _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj",
                 f"/CN={name if name == 'client' else 'localhost'}", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 cwd=folder)
        (folder / f"{name}.ext").write_text(extension + "\n")
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-days", "2", "-extfile", f"{name}.ext", "-out", f"{name}.crt", cwd=folder)


@dataclass
class Broker:
    """One mosquitto process with a plain, a TLS and a client-certificate listener on loopback."""

    folder: Path
    tls: bool = True
    acl: str | None = None  # mosquitto ACL file text; None: every authenticated user may do anything
    settings: tuple[str, ...] = ()  # more mosquitto.conf lines, e.g. "max_packet_size 4000"
    port: int = field(default_factory=free_port)
    tls_port: int = field(default_factory=free_port)
    cert_port: int = field(default_factory=free_port)  # TLS with a required client certificate
    process: subprocess.Popen | None = None

    def __post_init__(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.certs = self.folder / "certs"
        if self.tls and not (self.certs / "ca.crt").exists():
            make_certificates(self.certs)
        passwords = self.folder / "passwd"
        passwords.write_text("")
        for user, password in USERS.items():
            subprocess.run(["mosquitto_passwd", "-b", str(passwords), user, password], check=True,
                           capture_output=True)
        lines = ["per_listener_settings false", "allow_anonymous false", f"password_file {passwords}",
                 "persistence true", f"persistence_location {self.folder}/", "autosave_interval 1",
                 f"log_dest file {self.folder / 'mosquitto.log'}", "log_type error", "log_type warning",
                 "log_type notice", "log_type information",
                 f"user {pwd.getpwuid(os.getuid()).pw_name}",  # as root: keep root, the files are root's
                 *self.settings, f"listener {self.port} 127.0.0.1"]
        if self.acl is not None:
            (self.folder / "acl").write_text(self.acl)
            lines.insert(3, f"acl_file {self.folder / 'acl'}")
        if self.tls:
            for port, require in ((self.tls_port, "false"), (self.cert_port, "true")):
                lines += [f"listener {port} 127.0.0.1", f"cafile {self.certs / 'ca.crt'}",
                          f"certfile {self.certs / 'server.crt'}", f"keyfile {self.certs / 'server.key'}",
                          f"require_certificate {require}"]
        (self.folder / "mosquitto.conf").write_text("\n".join(lines) + "\n")

    def start(self, timeout: float = 10.0) -> None:
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.folder / "mosquitto.conf")],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + timeout
        for port in [self.port] + ([self.tls_port, self.cert_port] if self.tls else []):
            while True:
                if self.process.poll() is not None:
                    raise RuntimeError(f"mosquitto exited: {self.process.stderr.read().decode()} "
                                       f"{self.log_text()}")
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"mosquitto did not open port {port}: {self.log_text()}") from None
                    time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
        self.process = None

    def log_text(self) -> str:
        path = self.folder / "mosquitto.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def mqtt_section(self, user: str = "edge-facerec", tls: bool = False, client_cert: bool = False,
                     password: str | None = None) -> dict:
        """The ``mqtt`` YAML section for a client of this broker (password via a file next to the config)."""
        password_file = self.folder / f"{user}.password"
        password_file.write_text((password if password is not None else USERS[user]) + "\n")
        password_file.chmod(0o600)
        section: dict = {"host": "127.0.0.1", "port": self.port, "username": user,
                         "password_file": str(password_file)}
        if tls or client_cert:
            section["port"] = self.cert_port if client_cert else self.tls_port
            section["tls"] = {"enabled": True, "ca_file": str(self.certs / "ca.crt")}
            if client_cert:
                section["tls"].update(cert_file=str(self.certs / "client.crt"), key_file=str(self.certs / "client.key"))
        return section


class Collector:
    """A subscriber that records every message it receives; persistent session, so a broker restart or
    its own reconnect loses nothing published at QoS 1."""

    def __init__(self, broker: Broker, topics: list[str], user: str = "homeassistant",
                 client_id: str | None = None) -> None:
        self.messages: list[mqtt.MQTTMessage] = []
        self.lock = threading.RLock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id or f"collector-{free_port()}",
                                  clean_session=False)
        self.client.username_pw_set(user, USERS[user])
        self.client.reconnect_delay_set(0.2, 0.5)
        subscribed = threading.Event()
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe([(t, 1) for t in topics])
        self.client.on_subscribe = lambda *args: subscribed.set()
        self.client.on_message = self._message
        self.client.connect("127.0.0.1", broker.port, keepalive=10)
        self.client.loop_start()
        if not subscribed.wait(10):
            raise RuntimeError("collector could not subscribe")

    def _message(self, client: mqtt.Client, userdata: object, message: mqtt.MQTTMessage) -> None:
        with self.lock:
            self.messages.append(message)

    def on(self, topic: str) -> list[mqtt.MQTTMessage]:
        with self.lock:
            return [m for m in self.messages if m.topic == topic]

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if predicate(list(self.messages)):
                    return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def publish_as(broker: Broker, messages: dict[str, bytes], user: str = "edge-facerec", retain: bool = True) -> None:
    """Publish ``messages`` (topic -> payload; retained unless told) at QoS 1 as ``user``, each acknowledged."""
    client = mqtt.Client(CallbackAPIVersion.VERSION2)
    client.username_pw_set(user, USERS[user])
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    for topic, payload in messages.items():
        client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    client.disconnect()
    client.loop_stop()


def documented_acl() -> str:
    """The mosquitto ACL of docs/mqtt.md (the fenced block after ``<!-- mosquitto-acl -->``)."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "mqtt.md").read_text(encoding="utf-8")
    block = text.split("<!-- mosquitto-acl -->", 1)[1].split("```", 2)[1]
    return block.split("\n", 1)[1]
