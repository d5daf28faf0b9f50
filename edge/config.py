"""The daemon's configuration: one validated, typed object built from YAML at start-up.

Every section is a frozen dataclass; its fields, types and defaults are the documentation
(``config/config.example.yaml`` shows them all). Loading refuses an unknown key, a wrong
type or an impossible value with one line naming the file and the key. Secrets (the MQTT
password) come from a file or an environment variable, never from the YAML itself, and
print as ``***``.
"""
from __future__ import annotations

import math
import operator
import os
import re
import types
import typing
from dataclasses import MISSING, dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal

from .errors import EdgeError
from .safe_read import read_regular_file
from .untrusted import Bounds, UntrustedDataError, parse_yaml, printable, shown, text_problem

SERVICE_CONFIG_PATH = Path("/etc/edge-facerec/config.yaml")
SERVICE_STATE_DIR = Path("/var/lib/edge-facerec")


def runs_as_service() -> bool:
    """Whether the service's paths are the defaults: when running as root, or on a device where the
    service is installed (``/etc/edge-facerec/config.yaml`` exists, so its gallery is the one to use;
    also when this user may not look into ``/etc/edge-facerec``). Otherwise a user's own:
    ``$XDG_CONFIG_HOME`` and ``$XDG_STATE_HOME`` (see :func:`default_config_path`)."""
    return os.geteuid() == 0 or _present(SERVICE_CONFIG_PATH)


def _present(path: Path) -> bool:
    """Whether ``path`` exists; True also when this user may not look (the service's folders are 0750)."""
    try:
        path.stat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True
    return True


def _xdg(variable: str, fallback: str) -> Path:
    value = os.environ.get(variable, "")
    return Path(value) if Path(value).is_absolute() else Path.home() / fallback  # a relative value is invalid


def default_config_path() -> Path:
    """``/etc/edge-facerec/config.yaml`` for the service, else ``$XDG_CONFIG_HOME/edge-facerec/config.yaml``
    (``~/.config/edge-facerec/config.yaml``)."""
    if runs_as_service():
        return SERVICE_CONFIG_PATH
    return _xdg("XDG_CONFIG_HOME", ".config") / "edge-facerec" / "config.yaml"


def default_state_dir() -> Path:
    """Where the gallery and the outbox go unless configured: ``/var/lib/edge-facerec`` for the service,
    else ``$XDG_STATE_HOME/edge-facerec`` (``~/.local/state/edge-facerec``)."""
    return SERVICE_STATE_DIR if runs_as_service() else _xdg("XDG_STATE_HOME", ".local/state") / "edge-facerec"
MAX_CONFIG_BYTES = 1 << 20  # a config file is a few kB; this keeps a hostile one from costing memory
MAX_PASSWORD_BYTES = 1 << 16


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

    gallery: Path | None = None  # None: gallery.npz in default_state_dir(), filled in on construction
    embedder: str | None = None  # manifest name; None: the manifest's default
    threshold: float | None = None  # cosine needed to name a person; None: from the manifest and the gallery size
    stranger_far: float = 0.001  # share of strangers' faces that may be taken for someone enrolled (sets the threshold)
    threads: int | None = None  # None: the device tuning's choice (2 without tuning)

    def __post_init__(self) -> None:
        if self.gallery is None:
            object.__setattr__(self, "gallery", default_state_dir() / "gallery.npz")


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
    file: Path | None = None  # the measured choice and its table; None: tuning.json in default_state_dir()
    budget_s: float = 2.0  # seconds of timed runs (loading the models for them comes on top)
    max_threads: int | None = None  # the most threads tried; None: the CPUs this process may use

    def __post_init__(self) -> None:
        if self.file is None:
            object.__setattr__(self, "file", default_state_dir() / "tuning.json")


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
    discovery_face_image: bool = False  # an image entity with the latest event's face (needs events.snapshot)
    outbox: Path | None = None  # events not yet acknowledged by the broker; None: outbox.sqlite3 in default_state_dir()
    outbox_max_events: int = 10000
    outbox_max_age_s: float = 7 * 24 * 3600.0
    # the broker's largest packet, bytes (mosquitto's max_packet_size); None: unknown (MQTT 5 brokers state it)
    max_packet_size: int | None = None

    def __post_init__(self) -> None:
        if self.outbox is None:
            object.__setattr__(self, "outbox", default_state_dir() / "outbox.sqlite3")


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


# Every number a config holds has documented bounds (config/config.example.yaml); tests check none is missing.
_BOUNDS: dict[str, Bounds] = {
    "camera.width": Bounds(1, 16384),
    "camera.height": Bounds(1, 16384),
    "camera.fps": Bounds(0, 1000, low_open=True),
    "camera.reopen_max_backoff_s": Bounds(1, 3600),
    "detector.min_face": Bounds(12, 4096),
    "detector.threads": Bounds(1, 64),
    "detector.full_every": Bounds(1, 1000),
    "motion.keepalive_s": Bounds(0, 3600, low_open=True),
    "motion.region_margin": Bounds(0, 10),
    "motion.thumbnail_width": Bounds(16, 640),
    "motion.sensitivity": Bounds(0, 100, low_open=True),
    "motion.min_noise": Bounds(0, 255, low_open=True),
    "motion.min_area": Bounds(0, 1, low_open=True),
    "motion.learning_rate": Bounds(0, 1, low_open=True),
    "motion.moving_learning_rate": Bounds(0, 1, low_open=True),
    "motion.relearn_area": Bounds(0, 1, low_open=True),
    "recognition.threshold": Bounds(0, 1, low_open=True, high_open=True),
    "recognition.stranger_far": Bounds(0, 0.1, low_open=True),
    "recognition.threads": Bounds(1, 64),
    "quality.min_face_px": Bounds(0, 4096),
    "quality.min_sharpness": Bounds(0, 100000),
    "quality.max_yaw": Bounds(0, 10, low_open=True),
    "liveness.threshold": Bounds(0, 1),
    "liveness.threads": Bounds(1, 64),
    "events.window": Bounds(1, 1000),
    "events.needed": Bounds(1, 1000),
    "events.unknown_after_frames": Bounds(1, 10000),
    "events.track_timeout_s": Bounds(0, 3600, low_open=True),
    "events.away_after_s": Bounds(0, 30 * 24 * 3600, low_open=True),
    "events.status_interval_s": Bounds(0, 24 * 3600, low_open=True),
    "tuning.budget_s": Bounds(0.1, 60),
    "tuning.max_threads": Bounds(1, 64),
    "mqtt.outbox_max_events": Bounds(1, 10_000_000),
    "mqtt.outbox_max_age_s": Bounds(0, 365 * 24 * 3600, low_open=True),
    "mqtt.max_packet_size": Bounds(64, 268_435_460),
}
_CLIENT_BOUNDS = {"port": Bounds(1, 65535), "keepalive_s": Bounds(5, 65535)}
_TOPIC_PROBLEM = "must not be empty or contain + # or a leading /"


def _bad_topic_part(text: str) -> bool:
    return not text or bool(set(text) & {"+", "#"}) or text.startswith("/")


def load_config(path: Path, environ: typing.Mapping[str, str] | None = None) -> Config:
    """Read and validate the YAML at ``path``; raise one-line ConfigError naming file and key."""
    return config_from_dict(read_yaml(path), str(path), environ)


def load_config_or_defaults(path: Path | None) -> tuple[Config, Path | None]:
    """The configuration at ``path`` (which must exist); without a path, the file at
    :func:`default_config_path` when there is one, else the built-in defaults. Also the file read
    (None for the built-in defaults)."""
    if path is None:
        path = default_config_path()
        if not _present(path):
            return Config(), None
    return load_config(path), path  # one that cannot be read is a ConfigError naming it


def read_yaml(path: Path) -> Any:
    """The parsed YAML at ``path``; a one-line ConfigError naming the file when it cannot be read or parsed,
    or holds no settings at all (an empty file is more likely a mistake than a wish for the defaults)."""
    path = Path(path)
    try:
        text = read_regular_file(path, MAX_CONFIG_BYTES).decode("utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file ({error.strerror or error})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: cannot read config file (not UTF-8 text)") from None
    try:
        raw = parse_yaml(text)
    except UntrustedDataError as error:
        raise ConfigError(f"{path}: {error}") from None
    if raw is None:
        raise ConfigError(f"{path}: the config file is empty (no settings, only comments or nothing); "
                          "write {} in it to run on the built-in defaults")
    return raw


def config_from_dict(raw: Any, source: str = "config", environ: typing.Mapping[str, str] | None = None) -> Config:
    """Validate a parsed mapping into a Config (``source`` names it in errors)."""
    config = _build(Config, raw, "", source)
    check_bounds(config, _BOUNDS, "", source)
    if _bad_topic_part(config.mqtt.discovery_prefix):
        raise ConfigError(f"{source}: mqtt.discovery_prefix {_TOPIC_PROBLEM}")
    models = config.liveness.models
    if not models or not set(models) <= {"minifasnetv2", "minifasnetv1se"} or len(set(models)) != len(models):
        raise ConfigError(f"{source}: liveness.models must list minifasnetv2, minifasnetv1se or both, once each")
    if config.events.needed > config.events.window:
        raise ConfigError(f"{source}: events.needed ({config.events.needed}) must not exceed events.window "
                          f"({config.events.window})")
    if config.mqtt.discovery_face_image and not config.events.snapshot:
        raise ConfigError(f"{source}: mqtt.discovery_face_image needs events.snapshot: true (the face comes from "
                          "the event's snapshot)")
    return replace(config, mqtt=validate_mqtt_client(config.mqtt, "mqtt", source, environ))


def build_section(cls: type, raw: Any, source: str) -> Any:
    """Build the dataclass ``cls`` from a parsed mapping with this module's checks (unknown keys, types)."""
    return _build(cls, raw, "", source)


def check_bounds(section: Any, bounds: typing.Mapping[str, Bounds], prefix: str, source: str) -> None:
    """Each number named (dotted) in ``bounds`` within them, or a ConfigError naming ``prefix`` + the name."""
    for name, allowed in bounds.items():
        problem = allowed.problem(operator.attrgetter(name)(section))
        if problem:
            raise ConfigError(f"{source}: {prefix}{name} {problem}")


def validate_mqtt_client(mqtt: MqttClientConfig, key: str, source: str,
                         environ: typing.Mapping[str, str] | None = None) -> Any:
    """Check a broker section (``key`` names it in errors) and resolve its password into a Secret."""
    check_bounds(mqtt, _CLIENT_BOUNDS, f"{key}.", source)
    if _bad_topic_part(mqtt.topic_prefix):
        raise ConfigError(f"{source}: {key}.topic_prefix {_TOPIC_PROBLEM}")
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
            return Secret(read_regular_file(mqtt.password_file, MAX_PASSWORD_BYTES).decode("utf-8").rstrip("\r\n"))
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
    unknown = [printable(str(key)) for key in raw if key not in settable]
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


def _checked_text(text: str, key: str, source: str, empty_ok: bool = False) -> str:
    problem = text_problem(text, empty_ok)
    if problem:
        raise ConfigError(f"{source}: {key} {problem}")
    return text


def _number_text(value: float, key: str, source: str) -> str:
    """A number written where text is meant (a camera index 0, protocol 5), as that text."""
    if isinstance(value, int) and value.bit_length() > 64:
        raise ConfigError(f"{source}: {key} must be text, got {shown(value)}")
    return str(value)


def _convert(hint: Any, value: Any, key: str, source: str, in_list: bool = False) -> Any:
    """``value`` as the type ``hint``; text in a list (a command's arguments) may be empty."""
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
        text = _number_text(value, key, source) if isinstance(value, (int, float)) and not isinstance(value, bool) \
            else value
        if text not in allowed:
            raise ConfigError(f"{source}: {key} is {shown(value)}; expected one of {', '.join(map(str, allowed))}")
        return text
    if is_dataclass(hint):
        return _build(hint, value, f"{key}.", source)
    if origin is tuple:  # tuple[X, ...]: a YAML list
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key} must be a list, got {_kind(value)}")
        item = typing.get_args(hint)[0]
        return tuple(_convert(item, element, f"{key}[{index}]", source, in_list=True)
                     for index, element in enumerate(value))
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{source}: {key} must be true or false, got {_kind(value)} {shown(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{source}: {key} must be a whole number, got {_kind(value)} {shown(value)}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{source}: {key} must be a number, got {_kind(value)} {shown(value)}")
        number = float(value) if not isinstance(value, int) or value.bit_length() < 1000 else math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{source}: {key} must be a finite number, got {shown(value)}")
        return number
    if hint is str:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return _number_text(value, key, source)  # a camera index written as 0
        if not isinstance(value, str):
            raise ConfigError(f"{source}: {key} must be text, got {_kind(value)}")
        return _checked_text(value, key, source, empty_ok=in_list)
    if hint is Path:
        if not isinstance(value, str) or not value:
            raise ConfigError(f"{source}: {key} must be a file path, got {_kind(value)} {shown(value)}")
        return Path(_checked_text(value, key, source)).expanduser()
    raise TypeError(f"config field {key} has an unsupported type {hint!r}")  # a programming error


def _kind(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "text", list: "a list",
            dict: "a mapping", type(None): "nothing"}.get(type(value), type(value).__name__)
