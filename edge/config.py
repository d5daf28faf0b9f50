"""The daemon's configuration: one validated, typed object built from YAML at start-up.

Every section is a frozen dataclass; its fields, types and defaults are the documentation
(``config/config.example.yaml`` shows them all). Loading refuses an unknown key, a wrong
type or an impossible value with one line naming the file and the key. Secrets (the MQTT
password) come from a file or an environment variable, never from the YAML itself, and
print as ``***``.
"""
from __future__ import annotations

import os
import re
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import EdgeError

DEFAULT_CONFIG_PATH = Path("/etc/edge-facerec/config.yaml")
DEFAULT_STATE_DIR = Path("/var/lib/edge-facerec")


class ConfigError(EdgeError):
    """A configuration that cannot be used; the message names the file and the key."""


class Secret:
    """A secret value that never shows in logs, reprs or tracebacks."""

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        """The secret itself, for the one place that needs it."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Secret) and other._value == self._value

    def __hash__(self) -> int:
        return hash(self._value)


@dataclass(frozen=True)
class DeviceConfig:
    """This device as it appears in events and topics."""

    name: str = "edge-facerec"  # display name; its slug is the device id in MQTT topics


@dataclass(frozen=True)
class CameraConfig:
    """The frame source."""

    name: str = "door"
    # "picamera2", a V4L2 index ("0") or device ("/dev/video0"), an rtsp:// or http(s):// URL,
    # a video file, or a folder of images
    source: str = "0"
    width: int | None = 640  # requested capture size (cameras); None keeps the source's
    height: int | None = 480
    fps: float | None = None  # requested camera rate; None keeps the source's
    # video files and folders: pace at their own frame rate, dropping frames the pipeline has no time for
    # (False: as fast as the pipeline takes them, every frame processed: benchmarks and evaluations)
    realtime: bool = True
    loop: bool = False  # video files and folders: start again at the end
    reopen_max_backoff_s: float = 30.0  # a failed camera is reopened after 1, 2, 4 ... up to this many seconds


@dataclass(frozen=True)
class DetectorConfig:
    """MTCNN settings (see docs/detector.md)."""

    min_face: int = 40  # smallest face searched, pixels
    quantization: Literal["auto", "int8", "float32"] = "auto"  # auto: the device tuning's choice (tuning:)
    threads: int | None = None  # None: the device tuning's choice (2 without tuning)
    tracking: bool = True  # refine last positions, full pyramid every full_every frames
    full_every: int = 7


@dataclass(frozen=True)
class MotionConfig:
    """Motion gating: the detector runs only when something moved, while faces are tracked, and every
    keepalive_s (see docs/detector.md, "Motion gating"; edge/vision/motion.py, gated_detection.py)."""

    enabled: bool = True
    keepalive_s: float = 2.0  # nothing moving, nobody tracked: a full pass at least this often
    region: bool = True  # motion that fits a half-width, half-height window: the pyramid searches only it
    region_margin: float = 0.5  # around the motion's box, as a share of its larger side
    thumbnail_width: int = 160  # grey thumbnail the motion is measured on, pixels
    sensitivity: float = 4.0  # a pixel changed when it differs from the background by this many times its noise
    min_noise: float = 1.0  # grey levels: the least noise assumed per thumbnail pixel
    min_area: float = 0.002  # share of the thumbnail that must change to count as motion
    learning_rate: float = 0.05  # how fast the background follows unchanged pixels (slow light changes)
    moving_learning_rate: float = 0.01  # ... and changed ones (something that stays becomes background)
    relearn_area: float = 0.7  # more changed than this at once (a light switched on): relearn the background


@dataclass(frozen=True)
class RecognitionConfig:
    """Embedder and gallery."""

    gallery: Path = DEFAULT_STATE_DIR / "gallery.npz"
    embedder: str | None = None  # manifest name; None: the manifest's default
    threshold: float | None = None  # cosine needed to name a person; None: from the manifest and the gallery size
    stranger_far: float = 0.001  # share of strangers' faces that may be taken for someone enrolled (sets the threshold)
    threads: int | None = None  # None: the device tuning's choice (2 without tuning)


@dataclass(frozen=True)
class QualityConfig:
    """Faces below these are tracked but not used to decide who someone is."""

    min_face_px: int = 40  # face box height
    min_sharpness: float = 15.0  # variance of the Laplacian of the aligned grey crop (docs/enroll.md)
    max_yaw: float = 0.6  # nose offset from the eyes' midline, as a fraction of the eye distance


@dataclass(frozen=True)
class LivenessConfig:
    """Passive liveness on the faces about to be recognized (see docs/liveness.md)."""

    enabled: bool = True
    models: tuple[str, ...] = ("minifasnetv2", "minifasnetv1se")  # MiniFASNet variants averaged
    quantization: Literal["auto", "float32", "int8"] = "float32"  # int8: slower on x86, 0.01-0.02 less exact; auto: tuned
    threshold: float = 0.7  # mean p(live) over a recognition's agreeing frames needed for "live" (docs/liveness.md)
    threads: int | None = None  # None: the device tuning's choice (2 without tuning)


@dataclass(frozen=True)
class EventsConfig:
    """How tracks of faces become events."""

    window: int = 5  # the last this many usable frames of a track ...
    needed: int = 3  # ... must agree on one person for a "recognized" event
    unknown_after_frames: int = 8  # usable frames with no match before an "unknown" event
    track_timeout_s: float = 2.0  # a face unseen this long has left; its next appearance is new
    away_after_s: float = 300.0  # a person not recognized for this long becomes "away"
    snapshot: bool = False  # attach a JPEG of the face to events (biometric data: off by default)
    status_interval_s: float = 60.0  # status in the log and to the publisher


@dataclass(frozen=True)
class TuningConfig:
    """Device tuning: the models' variants and threads the settings leave to it ("auto", None), timed on
    this device on first start and kept while the CPU, runtime and models stay (docs/detector.md)."""

    enabled: bool = True  # false: auto picks by CPU architecture, threads default to 2
    file: Path = DEFAULT_STATE_DIR / "tuning.json"  # the measured choice and its table
    budget_s: float = 2.0  # seconds of timed runs (loading the models for them comes on top)
    max_threads: int | None = None  # the most threads tried; None: the CPUs this process may use


@dataclass(frozen=True)
class TlsConfig:
    """MQTT over TLS."""

    enabled: bool = False
    ca_file: Path | None = None  # None: the system's CA store
    cert_file: Path | None = None  # client certificate, optional
    key_file: Path | None = None


@dataclass(frozen=True)
class MqttClientConfig:
    """How a client of edge-facerec's topics reaches the broker (the daemon, and ``edge-actions``)."""

    host: str = "localhost"
    port: int = 1883
    client_id: str | None = None  # None: edge-facerec-<device id> (daemon), edge-actions-<host name> (actions)
    keepalive_s: int = 60
    protocol: Literal["3.1.1", "5"] = "3.1.1"
    username: str | None = None
    password_file: Path | None = None  # the password is read from this file ...
    password_env: str | None = None  # ... or from this environment variable
    password: Secret | None = field(default=None, metadata={"derived": True})
    tls: TlsConfig = field(default_factory=TlsConfig)
    topic_prefix: str = "edge-facerec"


@dataclass(frozen=True)
class MqttConfig(MqttClientConfig):
    """The daemon's broker, topics and outbox (see the README's topic table and docs/mqtt.md)."""

    enabled: bool = False
    discovery: bool = True  # Home Assistant MQTT discovery
    discovery_prefix: str = "homeassistant"
    outbox: Path = DEFAULT_STATE_DIR / "outbox.sqlite3"  # events not yet acknowledged by the broker
    outbox_max_events: int = 10000
    outbox_max_age_s: float = 7 * 24 * 3600.0


@dataclass(frozen=True)
class Config:
    """Everything the daemon needs, validated."""

    device: DeviceConfig = field(default_factory=DeviceConfig)
    camera: CameraConfig = field(default_factory=CameraConfig)
    detector: DetectorConfig = field(default_factory=DetectorConfig)
    motion: MotionConfig = field(default_factory=MotionConfig)
    recognition: RecognitionConfig = field(default_factory=RecognitionConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    liveness: LivenessConfig = field(default_factory=LivenessConfig)
    events: EventsConfig = field(default_factory=EventsConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @property
    def device_id(self) -> str:
        """The device name as a topic- and id-safe slug."""
        return slug(self.device.name)


def slug(text: str) -> str:
    """Lower-case ASCII letters, digits and single hyphens; "x" when nothing is left."""
    ascii_text = text.encode("ascii", "ignore").decode().lower()
    return re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-") or "x"


_CHECKS: dict[str, typing.Callable[[Any], str | None]] = {
    "camera.width": lambda v: "must be positive" if v is not None and v <= 0 else None,
    "camera.height": lambda v: "must be positive" if v is not None and v <= 0 else None,
    "camera.fps": lambda v: "must be positive" if v is not None and v <= 0 else None,
    "camera.reopen_max_backoff_s": lambda v: "must be at least 1" if v < 1 else None,
    "detector.min_face": lambda v: "must be at least 12" if v < 12 else None,
    "detector.threads": lambda v: "must be between 1 and 64" if v is not None and not 1 <= v <= 64 else None,
    "detector.full_every": lambda v: "must be at least 1" if v < 1 else None,
    "motion.keepalive_s": lambda v: "must be positive" if v <= 0 else None,
    "motion.region_margin": lambda v: "must not be negative" if v < 0 else None,
    "motion.thumbnail_width": lambda v: "must be between 16 and 640" if not 16 <= v <= 640 else None,
    "motion.sensitivity": lambda v: "must be positive" if v <= 0 else None,
    "motion.min_noise": lambda v: "must be positive" if v <= 0 else None,
    "motion.min_area": lambda v: "must be in (0, 1]" if not 0 < v <= 1 else None,
    "motion.learning_rate": lambda v: "must be in (0, 1]" if not 0 < v <= 1 else None,
    "motion.moving_learning_rate": lambda v: "must be in (0, 1]" if not 0 < v <= 1 else None,
    "motion.relearn_area": lambda v: "must be in (0, 1]" if not 0 < v <= 1 else None,
    "recognition.threshold": lambda v: "must be between 0 and 1" if v is not None and not 0 < v < 1 else None,
    "recognition.stranger_far": lambda v: "must be between 0 and 0.1" if not 0 < v <= 0.1 else None,
    "recognition.threads": lambda v: "must be between 1 and 64" if v is not None and not 1 <= v <= 64 else None,
    "quality.min_face_px": lambda v: "must not be negative" if v < 0 else None,
    "quality.min_sharpness": lambda v: "must not be negative" if v < 0 else None,
    "quality.max_yaw": lambda v: "must be positive" if v <= 0 else None,
    "liveness.models": lambda v: (None if v and set(v) <= {"minifasnetv2", "minifasnetv1se"} and len(set(v)) == len(v)
                                  else "must list minifasnetv2, minifasnetv1se or both, once each"),
    "liveness.threshold": lambda v: "must be between 0 and 1" if not 0 <= v <= 1 else None,
    "liveness.threads": lambda v: "must be between 1 and 64" if v is not None and not 1 <= v <= 64 else None,
    "events.window": lambda v: "must be at least 1" if v < 1 else None,
    "events.needed": lambda v: "must be at least 1" if v < 1 else None,
    "events.unknown_after_frames": lambda v: "must be at least 1" if v < 1 else None,
    "events.track_timeout_s": lambda v: "must be positive" if v <= 0 else None,
    "events.away_after_s": lambda v: "must be positive" if v <= 0 else None,
    "events.status_interval_s": lambda v: "must be positive" if v <= 0 else None,
    "tuning.budget_s": lambda v: "must be between 0.1 and 60" if not 0.1 <= v <= 60 else None,
    "tuning.max_threads": lambda v: "must be between 1 and 64" if v is not None and not 1 <= v <= 64 else None,
    "mqtt.outbox_max_events": lambda v: "must be at least 1" if v < 1 else None,
    "mqtt.outbox_max_age_s": lambda v: "must be positive" if v <= 0 else None,
    "mqtt.discovery_prefix": lambda v: "must not be empty or contain + # or a leading /" if _bad_topic_part(v) else None,
}
_CLIENT_CHECKS: dict[str, typing.Callable[[Any], str | None]] = {
    "port": lambda v: "must be between 1 and 65535" if not 1 <= v <= 65535 else None,
    "keepalive_s": lambda v: "must be between 5 and 65535" if not 5 <= v <= 65535 else None,
    "topic_prefix": lambda v: "must not be empty or contain + # or a leading /" if _bad_topic_part(v) else None,
}


def _bad_topic_part(text: str) -> bool:
    return not text or bool(set(text) & {"+", "#"}) or text.startswith("/")


def load_config(path: Path, environ: typing.Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML at ``path``; raise one-line ConfigError naming file and key."""
    raw = read_yaml(path)
    return config_from_dict(raw if raw is not None else {}, str(path), environ)


def read_yaml(path: Path) -> Any:
    """The parsed YAML at ``path``; a one-line ConfigError naming the file when it cannot be read or parsed."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"{path}: cannot read config file ({error})") from None
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}: not valid YAML{where} ({getattr(error, 'problem', None) or error})") from None
    return raw


def config_from_dict(raw: Any, source: str = "config", environ: typing.Mapping[str, str] | None = None) -> Config:
    """Validate a parsed mapping into a Config (``source`` names it in errors)."""
    config = _build(Config, raw, "", source)
    for key, check in _CHECKS.items():
        section, name = key.split(".")
        problem = check(getattr(getattr(config, section), name))
        if problem:
            raise ConfigError(f"{source}: {key} {problem}")
    if config.events.needed > config.events.window:
        raise ConfigError(f"{source}: events.needed ({config.events.needed}) must not exceed events.window "
                          f"({config.events.window})")
    return replace(config, mqtt=validate_mqtt_client(config.mqtt, "mqtt", source, environ))


def build_section(cls: type, raw: Any, source: str) -> Any:
    """Build the dataclass ``cls`` from a parsed mapping with this module's checks (unknown keys, types)."""
    return _build(cls, raw, "", source)


def validate_mqtt_client(mqtt: MqttClientConfig, key: str, source: str,
                         environ: typing.Mapping[str, str] | None = None) -> Any:
    """Check a broker section (``key`` names it in errors) and resolve its password into a Secret."""
    for name, check in _CLIENT_CHECKS.items():
        problem = check(getattr(mqtt, name))
        if problem:
            raise ConfigError(f"{source}: {key}.{name} {problem}")
    tls = mqtt.tls
    if (tls.cert_file is None) != (tls.key_file is None):
        raise ConfigError(f"{source}: {key}.tls.cert_file and {key}.tls.key_file go together")
    if tls.enabled:
        for name in ("ca_file", "cert_file", "key_file"):
            path = getattr(tls, name)
            if path is not None and not path.is_file():
                raise ConfigError(f"{source}: {key}.tls.{name} {path}: file not found")
    password = _password(mqtt, key, source, os.environ if environ is None else environ)
    return mqtt if password is None else replace(mqtt, password=password)


def _password(mqtt: MqttClientConfig, key: str, source: str, environ: typing.Mapping[str, str]) -> Secret | None:
    if mqtt.password_file is not None and mqtt.password_env is not None:
        raise ConfigError(f"{source}: set one of {key}.password_file and {key}.password_env, not both")
    if mqtt.password_file is not None:
        try:
            return Secret(mqtt.password_file.read_text(encoding="utf-8").rstrip("\r\n"))
        except (OSError, UnicodeDecodeError) as error:
            reason = getattr(error, "strerror", None) or type(error).__name__
            raise ConfigError(f"{source}: {key}.password_file {mqtt.password_file}: cannot read ({reason})") from None
    if mqtt.password_env is not None:
        if mqtt.password_env not in environ:
            raise ConfigError(f"{source}: {key}.password_env: environment variable {mqtt.password_env} is not set")
        return Secret(environ[mqtt.password_env])
    return None


def _build(cls: type, raw: Any, prefix: str, source: str) -> Any:
    where = prefix.rstrip(".") or "top level"
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: {where} must be a mapping, got {_kind(raw)}")
    hints = typing.get_type_hints(cls)
    settable = {f.name: f for f in fields(cls) if not f.metadata.get("derived")}
    unknown = [str(key) for key in raw if key not in settable]
    if unknown:
        known = ", ".join(settable)
        raise ConfigError(f"{source}: unknown key {prefix}{unknown[0]} (known in {where}: {known})")
    values = {}
    for name, value in raw.items():
        values[name] = _convert(hints[name], value, f"{prefix}{name}", source)
    for name, spec in settable.items():
        if name not in values and spec.default is MISSING and spec.default_factory is MISSING:
            raise ConfigError(f"{source}: missing key {prefix}{name}")
    return cls(**values)


def _convert(hint: Any, value: Any, key: str, source: str) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        return _convert(options[0], value, key, source)
    if value is None:
        raise ConfigError(f"{source}: {key} must not be empty")
    if origin is Literal:
        allowed = typing.get_args(hint)
        text = str(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
        if text not in allowed:
            raise ConfigError(f"{source}: {key} is {value!r}; expected one of {', '.join(map(str, allowed))}")
        return text
    if is_dataclass(hint):
        return _build(hint, value, f"{key}.", source)
    if origin is tuple:  # tuple[X, ...]: a YAML list
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {_kind(value)}")
        item = typing.get_args(hint)[0]
        return tuple(_convert(item, element, f"{key}[{index}]", source) for index, element in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {_kind(value)} {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be a whole number, got {_kind(value)} {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number, got {_kind(value)} {value!r}")
        return float(value)
    if hint is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return str(value)  # a camera index written as 0
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be text, got {_kind(value)}")
        return value
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: {key} must be a file path, got {_kind(value)} {value!r}")
        return Path(value).expanduser()
    raise TypeError(f"config field {key} has an unsupported type {hint!r}")  # a programming error


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "a mapping", type(None): "nothing"}.get(type(value), type(value).__name__)
