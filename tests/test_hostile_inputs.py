"""Hostile input, case by case (issue 15 and what was already handled): every one gets one line naming
the file, key or value, or is skipped and reported, never a traceback, a hang or a silent default.
docs/robustness.md is the table of these cases and what each gets."""
from __future__ import annotations

import dataclasses
import json
import os
import socket
import stat
import subprocess
import sys
import typing
from pathlib import Path

import numpy as np
import pytest

from edge.actions.config import load_actions_config
from edge import config as config_module
from edge.actions.rules import MalformedEvent, command_environment, parse_event
from edge.config import Config, ConfigError, config_from_dict, load_config
from edge.enroll.photos import PhotoSkipped, read_bytes, scan_source
from edge.enroll.session import previous_gallery
from edge.recognition import gallery as gallery_file
from edge.recognition.gallery import Gallery, GalleryError
from edge.runtime.model_files import EmbedderIdentity
from edge.untrusted import Bounds, parse_json, printable
from mqtt_producer import make_event

EXAMPLE = Path(__file__).resolve().parent.parent / "config" / "config.example.yaml"
IDENTITY = EmbedderIdentity("facenet-vggface2-int8", "ab" * 32, 4, "landmarks", False)
PYTHON = sys.executable


def run(*argv: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", *argv], capture_output=True, text=True, timeout=timeout)


def defaults(folder: Path) -> Path:
    """A config file that asks for the built-in defaults."""
    (folder / "defaults.yaml").write_text("{}\n")
    return folder / "defaults.yaml"


def one_line(message: str) -> None:
    assert "\n" not in message.strip() and "Traceback" not in message and "\x1b" not in message, message


# -- configuration ----------------------------------------------------------------------------------------

CONFIG_CASES = [  # (case, YAML text or bytes, what the one line says)
    ("NUL in a path", 'mqtt:\n  password_file: "a\\0b"\n', "mqtt.password_file contains a NUL character"),
    ("empty host", 'mqtt:\n  host: ""\n', "mqtt.host must not be empty"),
    ("blank host", 'mqtt:\n  host: "   "\n', "mqtt.host must not be empty"),
    ("NUL in the topic prefix", 'mqtt:\n  topic_prefix: "a\\0b"\n', "mqtt.topic_prefix contains a NUL character"),
    ("ANSI escape in the device name", 'device:\n  name: "\\e[31mred"\n',
     "device.name contains a control character (U+001B)"),
    ("lone surrogate", 'camera:\n  name: "\\ud800"\n', "camera.name is not valid Unicode (a lone surrogate U+D800)"),
    ("empty camera source", 'camera:\n  source: ""\n', "camera.source must not be empty"),
    ("empty client id", 'mqtt:\n  client_id: ""\n', "mqtt.client_id must not be empty"),
    ("NaN", "events:\n  track_timeout_s: .nan\n", "events.track_timeout_s must be a finite number, got nan"),
    ("infinity", "camera:\n  reopen_max_backoff_s: .inf\n", "camera.reopen_max_backoff_s must be a finite number"),
    ("absurd whole number", "detector:\n  min_face: 100000000000000000000000\n",
     "detector.min_face must be between 12 and 4096, got a number of about 23 digits"),
    ("a 5000-digit number", "detector:\n  min_face: 1" + "0" * 5000 + "\n",
     "not valid YAML at line 2 (a number of more than 100 digits)"),
    ("an impossible date", "camera:\n  name: 2001-13-45\n", "not valid YAML (month must be in 1..12)"),
    ("a date for text", "camera:\n  name: 2001-12-14\n", "camera.name must be text, got date"),
    ("a Python object tag", "camera:\n  name: !!python/object/apply:os.system [echo]\n",
     "could not determine a constructor for the tag"),
    ("absurd float for a whole number", "detector:\n  min_face: 1.0e+23\n", "detector.min_face must be a whole number"),
    ("above a bound", "events:\n  window: 100000\n", "events.window must be between 1 and 1000, got 100000"),
    ("a bound's open end", "quality:\n  max_yaw: 0\n", "quality.max_yaw must be more than 0 and at most 10, got 0"),
    ("duplicate key", "camera:\n  name: a\n  name: b\n", "not valid YAML at line 3 (duplicate key 'name')"),
    ("duplicate section", "camera: {}\ncamera: {}\n", "duplicate key 'camera'"),
    ("deep nesting", "a: " + "[" * 10000 + "]" * 10000 + "\n", "nested deeper than 32 levels"),
    ("empty file", "", "the config file is empty"),
    ("only comments", "# nothing here\n", "the config file is empty"),
    ("a null document", "~\n", "the config file is empty"),
    ("not UTF-8", b"camera:\n  name: \xff\xfe\n", "cannot read config file (not UTF-8 text)"),
    ("larger than 1 MiB", "#" * (1 << 20) + "\n", "cannot read config file (larger than 1048576 bytes)"),
    ("alias bomb", "x: &a [1, 1, 1, 1, 1, 1, 1, 1]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
        for i in range(9)), "unknown key x"),
    ("unknown key with an escape in it", '"\\e[2Jwipe": 1\n', "unknown key \\x1b[2Jwipe"),
    # already handled before issue 15, kept so that they stay so
    ("unknown key", "camera:\n  sauce: 0\n", "unknown key camera.sauce"),
    ("wrong type", "events:\n  window: five\n", "events.window must be a whole number"),
    ("not YAML", "camera:\n  source: [\n", "not valid YAML"),
    ("a list for a section", "camera: [1, 2]\n", "camera must be a mapping"),
    ("needed above window", "events:\n  window: 2\n  needed: 3\n", "events.needed (3) must not exceed events.window (2)"),
]


@pytest.mark.parametrize("case, text, named", CONFIG_CASES, ids=[case[0] for case in CONFIG_CASES])
def test_a_hostile_config_is_one_line_naming_the_key(tmp_path, case, text, named):
    path = tmp_path / "config.yaml"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as error:
        load_config(path)
    message = str(error.value)
    assert named in message and message.startswith(str(path)), message
    one_line(message)


@pytest.mark.parametrize("raw, named", [
    ({"events": {"track_timeout_s": 10**400}}, "events.track_timeout_s must be a finite number, got a number of "
                                               "about 400 digits"),
    ({"camera": {"source": 10**5000}}, "camera.source must be text, got a number of about 5000 digits"),
    ({"detector": {"quantization": 10**5000}}, "detector.quantization must be text, got a number of about 5000"),
    ({"detector": {"min_face": True}}, "detector.min_face must be a whole number, got a boolean True"),
], ids=["400 digits for a float", "5000 digits for text", "5000 digits for a choice", "a boolean for a number"])
def test_numbers_python_cannot_print_are_named_without_printing_them(raw, named):
    """A mapping from code (not YAML, whose integers are capped) can hold any int."""
    with pytest.raises(ConfigError, match=named):
        config_from_dict(raw)


def test_a_config_or_password_file_that_is_a_fifo_is_refused_without_hanging(tmp_path):
    os.mkfifo(tmp_path / "config.yaml")
    with pytest.raises(ConfigError, match="cannot read config file \\(a FIFO, not a regular file\\)"):
        load_config(tmp_path / "config.yaml")
    os.mkfifo(tmp_path / "password")
    (tmp_path / "ok.yaml").write_text(f"mqtt:\n  password_file: {tmp_path / 'password'}\n")
    with pytest.raises(ConfigError, match="mqtt.password_file .*password: cannot read \\(a FIFO, not a regular file\\)"):
        load_config(tmp_path / "ok.yaml")


def example_line(example: str, key: str) -> str:
    """The line of ``section.name`` in config.example.yaml."""
    section, name = key.split(".")
    lines = example.split(f"\n{section}:", 1)[1].split("\n\n", 1)[0].splitlines()
    return next(line for line in lines if line.strip().startswith(f"{name}:"))


def test_every_number_in_the_config_has_documented_bounds():
    """Each numeric setting has Bounds, and config.example.yaml shows them, e.g. [12-4096] or (0-3600]."""
    numeric = set()
    for section in dataclasses.fields(Config):
        value = getattr(Config(), section.name)
        if dataclasses.is_dataclass(value):
            numeric |= {f"{section.name}.{name}" for name, hint in typing.get_type_hints(type(value)).items()
                        if {int, float} & set(typing.get_args(hint) or (hint,))}
    bounds = {**config_module._BOUNDS, **{f"mqtt.{k}": v for k, v in config_module._CLIENT_BOUNDS.items()}}
    assert numeric == set(bounds), "every number has bounds, and only numbers"
    example = EXAMPLE.read_text()
    for key, allowed in bounds.items():
        low, high = (f"{value:g}" if not float(value).is_integer() else str(int(value)) for value in
                     (allowed.low, allowed.high))
        shown = f"{'(' if allowed.low_open else '['}{low}-{high}{')' if allowed.high_open else ']'}"
        assert shown in example_line(example, key), f"{key}: {shown} not in config.example.yaml"


@pytest.mark.parametrize("text, named", [
    ("camera:\n  source: /nonexistent/clip.mp4\n", "camera.source '/nonexistent/clip.mp4': no such video file"),
    ('mqtt:\n  enabled: true\n  password_file: "a\\0b"\n', "mqtt.password_file contains a NUL character"),
    ('mqtt:\n  enabled: true\n  host: ""\n', "mqtt.host must not be empty"),
    ("", "the config file is empty"),
], ids=["missing video file", "NUL in a path", "empty host", "empty file"])
def test_edge_facerec_exits_2_with_one_line_for_hostile_settings(tmp_path, text, named):
    path = tmp_path / "config.yaml"
    path.write_text(text + f"recognition: {{gallery: {tmp_path / 'none.npz'}}}\n" if text else "")
    result = run("edge.commands.facerec", "--config", str(path))
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("edge-facerec: error:")]
    assert len(errors) == 1 and named in errors[0] and "Traceback" not in result.stderr, result.stderr


def test_actions_config_refuses_a_nul_in_a_command_and_an_empty_file(tmp_path):
    path = tmp_path / "actions.yaml"
    path.write_text('devices: [front-door]\nrules:\n  - {name: door, when: unknown, command: [/bin/true, "a\\0b"]}\n')
    with pytest.raises(ConfigError, match="rules\\[0\\].command\\[1\\] contains a NUL character"):
        load_actions_config(path)
    path.write_text('devices: [front-door]\nrules:\n  - {name: door, when: unknown, command: [/bin/true, ""]}\n'
                    "max_event_age_s: .nan\n")
    with pytest.raises(ConfigError, match="max_event_age_s must be a finite number"):
        load_actions_config(path)
    path.write_text("")
    with pytest.raises(ConfigError, match="the config file is empty"):
        load_actions_config(path)


# -- the gallery file --------------------------------------------------------------------------------------

def unit_rows(count: int, width: int = 4, seed: int = 0) -> np.ndarray:
    rows = np.random.default_rng(seed).normal(size=(count, width))
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def good_parts() -> tuple[dict, np.ndarray, np.ndarray]:
    meta = {"format": "edge-facerec-gallery", "version": 1, "embedder": dict(IDENTITY.__dict__),
            "people": [{"id": "p-0123456789ab", "name": "Zoë", "sources": ["a.jpg", "b.jpg"], "enrolled": "x"},
                       {"id": "p-ba9876543210", "name": "Ngọc", "sources": ["c.jpg"], "enrolled": "x"}]}
    return meta, unit_rows(3), np.array([0, 0, 1], np.int32)


def write_gallery(path: Path, meta: object, rows: np.ndarray, owner: np.ndarray, meta_text: str | None = None) -> Path:
    np.savez(path, meta=np.array(meta_text if meta_text is not None else json.dumps(meta)), embeddings=rows,
             owner=owner)
    return path


def zip_member_field(offset: int, value: int):
    """A valid gallery whose first member's central-directory field at ``offset`` (8: flags, 10: compression
    method) is ``value``: what a flipped bit does to an archive."""
    def make(path: Path) -> Path:
        write_gallery(path, *good_parts())
        data = bytearray(path.read_bytes())
        entry = data.index(b"PK\x01\x02")
        data[entry + offset:entry + offset + 2] = value.to_bytes(2, "little")
        path.write_bytes(bytes(data))
        return path
    return make


def damaged(change):
    def make(path: Path) -> Path:
        meta, rows, owner = good_parts()
        result = change(meta, rows, owner)
        return write_gallery(path, *(result if result is not None else (meta, rows, owner)))
    return make


GALLERY_CASES = [  # (case, how the file is made, what the one line says)
    ("meta is a list", damaged(lambda m, r, o: ([m], r, o)), "not an edge-facerec gallery"),
    ("meta is a number", lambda p: write_gallery(p, None, *good_parts()[1:], meta_text="5"), "not an edge-facerec gallery"),
    ("meta is not JSON", lambda p: write_gallery(p, None, *good_parts()[1:], meta_text="{"), "corrupt or truncated"),
    ("meta nested deeply", lambda p: write_gallery(p, None, *good_parts()[1:], meta_text="[" * 5000 + "]" * 5000),
     "corrupt or truncated"),
    ("meta with NaN", damaged(lambda m, r, o: m.update(version=float("nan"))), "corrupt or truncated"),
    ("embedder of the wrong type", damaged(lambda m, r, o: m.update(embedder="facenet")), "embedder is not"),
    ("embedding size absurd", damaged(lambda m, r, o: m["embedder"].update(embedding_size=10**9)),
     "embedding_size 1000000000 is not between 1 and 4096"),
    ("people not a list", damaged(lambda m, r, o: m.update(people={"a": 1})), "people is not a list"),
    ("embeddings of the wrong width", damaged(lambda m, r, o: (m, unit_rows(3, 5), o)),
     "embeddings are 5 numbers wide, the embedder's are 4"),
    ("a person with no rows", damaged(lambda m, r, o: (m["people"][0].update(sources=["a", "b", "c"]),
                                                       (m, r, np.array([0, 0, 0], np.int32)))[1]),
     "'Ngọc' has no embeddings"),
    ("a non-string name", damaged(lambda m, r, o: m["people"][0].update(name=5)), "people[0].name 5 is not text"),
    ("an ANSI escape in a name", damaged(lambda m, r, o: m["people"][0].update(name="\x1b[31mZoë")),
     "people[0].name '\\x1b[31mZoë' contains a control character (U+001B)"),
    ("a lone surrogate in a name", damaged(lambda m, r, o: m["people"][1].update(name="\ud800")),
     "people[1].name '\\ud800' is not valid Unicode (a lone surrogate U+D800)"),
    ("an empty name", damaged(lambda m, r, o: m["people"][1].update(name=" ")), "people[1].name ' ' must not be empty"),
    ("a person id that would be a topic wildcard", damaged(lambda m, r, o: m["people"][0].update(id="p/#")),
     "people[0].id 'p/#' is not a person id"),
    ("the same id twice", damaged(lambda m, r, o: m["people"][1].update(id="p-0123456789ab")), "used twice"),
    ("sources not text", damaged(lambda m, r, o: m["people"][0].update(sources=[1, 2])), "sources is not a list of text"),
    ("sources and rows disagree", damaged(lambda m, r, o: m["people"][0].update(sources=["a.jpg"])),
     "'Zoë' has 1 sources for 2 embeddings"),
    ("NaN embeddings", damaged(lambda m, r, o: (m, np.where(np.arange(12).reshape(3, 4) == 5, np.nan, r), o)),
     "embeddings hold NaN or infinite values"),
    ("embeddings not of unit length", damaged(lambda m, r, o: (m, r * 3, o)), "embeddings are not of unit length"),
    ("embeddings as text", damaged(lambda m, r, o: (m, r.astype(str), o)), "embeddings are not a matrix of numbers"),
    ("owner out of range", damaged(lambda m, r, o: (m, r, np.array([0, 1, 7], np.int32))), "rows and people disagree"),
    ("owner as floats", damaged(lambda m, r, o: (m, r, o.astype(np.float32))), "owner is not a list of whole numbers"),
    ("a missing array", lambda p: (np.savez(p, meta=np.array(json.dumps(good_parts()[0]))), p)[1],
     "corrupt or truncated"),
    ("garbage bytes", lambda p: (p.write_bytes(b"PK\x03\x04 not a zip"), p)[1], "corrupt or truncated"),
    ("an encrypted member", zip_member_field(8, 1), "corrupt or truncated (RuntimeError)"),
    ("an unknown compression method", zip_member_field(10, 99), "corrupt or truncated (NotImplementedError)"),
    ("a folder", lambda p: (p.mkdir(), p)[1], "cannot read the gallery (a folder, not a regular file)"),
    ("a FIFO", lambda p: (os.mkfifo(p), p)[1], "cannot read the gallery (a FIFO, not a regular file)"),
]


@pytest.mark.parametrize("case, make, named", GALLERY_CASES, ids=[case[0] for case in GALLERY_CASES])
def test_a_wrong_gallery_is_refused_in_one_line(tmp_path, case, make, named):
    path = make(tmp_path / "gallery.npz")
    with pytest.raises(GalleryError) as error:
        gallery_file.load(path)
    message = str(error.value)
    assert named in message and message.startswith(str(path)), message
    one_line(message)
    with pytest.raises(GalleryError):  # a merge into it is refused the same way, not a traceback
        previous_gallery(path, IDENTITY, replace=False)


def test_a_zip_bomb_gallery_is_refused_before_it_is_unpacked(tmp_path, monkeypatch):
    meta, _, _ = good_parts()
    path = tmp_path / "gallery.npz"
    np.savez_compressed(path, meta=np.array(json.dumps(meta)), embeddings=np.zeros((1 << 16, 4), np.float32),
                        owner=np.zeros(1 << 16, np.int32))
    monkeypatch.setattr(gallery_file, "MAX_GALLERY_BYTES", path.stat().st_size * 4)  # the members unpack to ~200x
    with pytest.raises(GalleryError, match="corrupt or truncated"):
        gallery_file.load(path)


def test_the_good_parts_load(tmp_path):
    """The cases above change one thing each in a gallery that loads."""
    gallery = gallery_file.load(write_gallery(tmp_path / "gallery.npz", *good_parts()))
    assert [p.name for p in gallery.people] == ["Zoë", "Ngọc"] and gallery.embedder == IDENTITY


def test_a_gallery_refuses_to_take_a_bad_name_or_nan_embeddings():
    gallery = Gallery(IDENTITY)
    with pytest.raises(ValueError, match="contains a control character"):
        gallery.add("\x1b[31mEvil", unit_rows(1), ["a.jpg"])
    with pytest.raises(ValueError, match="NaN or infinite"):
        gallery.add("Zoë", np.full((1, 4), np.nan, np.float32), ["a.jpg"])
    assert gallery.people == []


@pytest.mark.parametrize("command", [["--list"], ["--remove", "Zoë"]], ids=["list", "remove"])
def test_edge_enroll_names_a_wrong_gallery_in_one_line(tmp_path, command):
    path = {case: make for case, make, _ in GALLERY_CASES}["an ANSI escape in a name"](tmp_path / "gallery.npz")
    result = run("edge.commands.enroll", *command, "--gallery", str(path), "--config", str(defaults(tmp_path)))
    assert result.returncode == 4
    one_line(result.stderr)
    assert "contains a control character" in result.stderr and result.stdout == ""


# -- MQTT events reaching edge-actions ---------------------------------------------------------------------

def event_json(**changes) -> bytes:
    """A valid event's payload (ASCII JSON: what is not ASCII is escaped, as a hostile sender may) with changes."""
    return json.dumps({**make_event(0, "front-door").to_dict(), **changes}, separators=(",", ":")).encode()


EVENT_CASES = [  # (case, payload, what MalformedEvent says)
    ("nested brackets", b"[" * 100000 + b"]" * 100000, "nested deeper than 8 levels"),
    ("nested objects", b'{"a":' * 50 + b"1" + b"}" * 50, "nested deeper than 8 levels"),
    ("NUL in camera", event_json(camera="a\x00b"), "camera contains a NUL character"),
    ("ANSI escape in device_id", event_json(device_id="front-door\x1b[8m"), "device_id contains a control character"),
    ("lone surrogate in name", event_json(name="\ud800"), "name is not valid Unicode (a lone surrogate U+D800)"),
    ("raw surrogate bytes", event_json().replace(b'"Alice"', b'"\xed\xa0\x80"'), "not valid UTF-8"),
    ("ANSI escape in person_id", event_json(person_id="\x1b[2J"), "person_id contains a control character (U+001B)"),
    ("NUL in time", event_json(time="\x00"), "time contains a NUL character"),
    ("time not text", event_json(time=5), "time is not text"),
    ("NaN score", event_json().replace(b'"score":0.83', b'"score":NaN'), "NaN is not a number"),
    ("infinite timestamp", event_json().replace(b'"timestamp":', b'"timestamp":1e400,"x":'), "not a finite number"),
    ("duplicate key", event_json().replace(b'{"kind"', b'{"kind":"unknown","kind"'), "duplicate key 'kind'"),
    ("a 5000-digit number", event_json().replace(b'"frames":3', b'"frames":' + b"9" * 5000), "more than 100 digits"),
    ("larger than 1 MiB", event_json(pad="x" * (1 << 20)), "larger than 1048576 bytes"),
    ("not UTF-8", b'{"kind":"\xff"}', "not valid UTF-8"),
    ("not JSON", b"{not json", "not valid JSON"),
    ("not an object", b"[1, 2]", "not a JSON object"),
    ("wrong schema", event_json(schema=99), "schema 99, expected"),
    ("bad id", event_json(id="a b"), "no valid id"),
    ("bad kind", event_json(kind="open"), "kind 'open' is not one of"),
    ("score as a boolean", event_json(score=True), "score is not a number"),
    ("score out of range", event_json(score=2), "score is not between 0 and 1"),
    ("device not text", event_json(device=None), "device is not text"),
    ("recognized without a name", event_json(name=None), "a recognized event without person_id and name"),
]


@pytest.mark.parametrize("case, payload, named", EVENT_CASES, ids=[case[0] for case in EVENT_CASES])
def test_a_hostile_event_is_refused_with_the_reason(case, payload, named):
    with pytest.raises(MalformedEvent) as error:
        parse_event(payload)
    assert named in str(error.value), str(error.value)
    one_line(str(error.value))


def test_an_accepted_event_gives_a_clean_command_environment():
    from edge.actions.config import RuleConfig

    event = parse_event(event_json(name="Zoë \u202e Ångström"))  # a bidi override is text, not a control
    environment = command_environment(RuleConfig("door", "recognized", ("/bin/true",), ("p-alice",)), event)
    assert all(isinstance(v, str) and "\x00" not in v and v.encode() is not None for v in environment.values())


# -- photos on a stick -------------------------------------------------------------------------------------

def test_only_regular_files_are_read_and_every_other_entry_is_reported(tmp_path):
    person = tmp_path / "Alice"
    person.mkdir()
    os.mkfifo(person / "fifo.jpg")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(person / "socket.jpg"))
    try:
        os.mknod(person / "null.jpg", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        device = True
    except PermissionError:  # not root: no device node to test with
        device = False
    os.symlink("/etc/passwd", person / "link.jpg")
    (tmp_path / "\x1b[31mEvil").mkdir()
    people, ignored = scan_source(tmp_path)
    server.close()
    reasons = {path.name: why for path, why in people[0].ignored}
    expected = {"fifo.jpg", "socket.jpg", "link.jpg"} | ({"null.jpg"} if device else set())
    assert set(reasons) == expected and people[0].photos == []
    assert reasons["fifo.jpg"] == "not a regular file (a FIFO, device or socket)"
    assert [(p.name, why) for p, why in ignored] == [("\x1b[31mEvil", "folder name contains a control character (U+001B)")]
    for name, words in (("fifo.jpg", "a FIFO, not a regular file"), ("link.jpg", "a symbolic link, not a regular file")):
        with pytest.raises(PhotoSkipped, match=words):  # the reader itself refuses too, without blocking
            read_bytes(person / name)


def test_edge_enroll_shows_every_skipped_entry_on_the_terminal_escaped(tmp_path):
    source = tmp_path / "FACES"
    person = source / "Alice"
    person.mkdir(parents=True)
    os.mkfifo(person / "fifo.jpg")
    os.symlink("/etc/passwd", person / "link.jpg")
    (person / "notes.txt").write_text("x")
    (person / "\x1b]0;owned\x07.jpg").write_bytes(b"not a photo")
    (source / "Ev\x1b[31mil").mkdir()
    result = run("edge.commands.enroll", str(source), "--dry-run", "--gallery", str(tmp_path / "gallery.npz"),
                 "--config", str(defaults(tmp_path)), timeout=120)
    assert result.returncode == 3, result.stderr
    assert "\x1b" not in result.stdout and "\x07" not in result.stdout
    for line in ("ignored: Alice/fifo.jpg: not a regular file (a FIFO, device or socket)",
                 "ignored: Alice/link.jpg: symbolic link, not followed", "ignored: Alice/notes.txt: not a photo (.txt)",
                 "ignored: Ev\\x1b[31mil: folder name contains a control character (U+001B)",
                 "Alice/\\x1b]0;owned\\x07.jpg: not a JPEG"):
        assert line in result.stdout, result.stdout


# -- the rules themselves ----------------------------------------------------------------------------------

def test_printable_escapes_what_a_terminal_would_obey_and_keeps_every_script():
    assert printable("Nguyễn Văn An 张伟 Zoë") == "Nguyễn Văn An 张伟 Zoë"
    assert printable("\x1b[31mred\x07\x00\u202e\ud800") == "\\x1b[31mred\\x07\\x00\\u202e\\ud800"


def test_bounds_say_what_is_allowed():
    assert Bounds(1, 64).problem(0) == "must be between 1 and 64, got 0"
    assert Bounds(0, 1, low_open=True, high_open=True).problem(1) == "must be more than 0 and less than 1, got 1"
    assert Bounds(0, 10, low_open=True).problem(float("inf")) == "must be a finite number, got inf"
    assert Bounds(0, 10).problem(None) is None and Bounds(0, 10).problem(10) is None


def test_json_parsing_is_capped_without_recursion():
    assert parse_json(b'{"a": [1, {"b": 2}]}', 100) == {"a": [1, {"b": 2}]}
    for payload, words in ((b"[" * 30 + b"]" * 30, "nested deeper than 8"), (b"[1]" * 100, "larger than 10")):
        with pytest.raises(ValueError, match=words):
            parse_json(payload, 10 if len(payload) > 100 else 1000, max_depth=8)
