"""Property-based fuzzing (hypothesis) of the three readers of untrusted data: the config loader, the
gallery loader and the event parser. Whatever they are given, each returns a value that holds its
invariants or raises its own one-line error; nothing else escapes (no RecursionError, TypeError,
KeyError, UnicodeError ...).

A bounded number of examples keeps CI fast: EXAMPLES per test (100; ``EDGE_FUZZ_EXAMPLES=5000 pytest
tests/test_fuzz.py`` for a long run). Nothing is written in the tree (no example database; hypothesis's
own files go to a temporary folder).
"""
from __future__ import annotations

import atexit
import dataclasses
import io
import json
import math
import os
import shutil
import tempfile
import typing
from pathlib import Path

import numpy as np
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.configuration import set_hypothesis_home_dir
from hypothesis.extra import numpy as hnp

from edge.actions.config import RuleConfig
from edge.actions.rules import MalformedEvent, command_environment, parse_event
from edge.config import Config, ConfigError, config_from_dict, load_config
from edge.recognition import gallery as gallery_file
from edge.recognition.gallery import GalleryError
from edge.untrusted import UntrustedDataError, parse_json, text_problem
from mqtt_producer import make_event

EXAMPLES = int(os.environ.get("EDGE_FUZZ_EXAMPLES", "100"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
WORK = Path(tempfile.mkdtemp(prefix="edge-fuzz-"))
atexit.register(shutil.rmtree, WORK, ignore_errors=True)
set_hypothesis_home_dir(WORK / "hypothesis")  # hypothesis's own files (constants it collects) stay out of the tree

# JSON-like values, with the awkward ones: NaN, infinities, huge numbers, control characters, surrogates
text = st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates and controls too
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.integers(-10**30, 10**30),
                    st.sampled_from([10**400, -10**4000]),  # more than a float holds (hypothesis must print it)
                    st.floats(allow_nan=True, allow_infinity=True), text)
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
                      max_leaves=12)


def one_line(error: Exception) -> None:
    message = str(error)
    assert message and "\n" not in message, message


# -- the config loader -------------------------------------------------------------------------------------

def _settable(cls: type) -> dict[str, typing.Any]:
    return {f.name: f for f in dataclasses.fields(cls) if not f.metadata.get("derived")}


SECTIONS = {name: type(getattr(Config(), name)) for name in _settable(Config)
            if dataclasses.is_dataclass(getattr(Config(), name))}


@st.composite
def config_documents(draw) -> dict:
    """Mostly known sections and keys (so validation, not just the unknown-key check, is reached), with any values."""
    document = {}
    for section in draw(st.lists(st.sampled_from(sorted(SECTIONS)), max_size=4, unique=True)):
        keys = draw(st.lists(st.sampled_from(sorted(_settable(SECTIONS[section]))), max_size=4, unique=True))
        document[section] = {key: draw(values) for key in keys}
    if draw(st.booleans()):
        document[draw(text)] = draw(values)
    return document


@FUZZ
@given(document=config_documents())
def test_the_config_loader_takes_any_mapping(document):
    try:
        config = config_from_dict(document, "fuzz.yaml", environ={})
    except ConfigError as error:
        one_line(error)
        return
    for section in SECTIONS:
        for name, value in dataclasses.asdict(getattr(config, section)).items():
            if isinstance(value, float):
                assert math.isfinite(value), (section, name, value)
            if isinstance(value, str):
                assert text_problem(value) is None, (section, name, value)


@FUZZ
@given(document=config_documents(), as_text=st.booleans())
def test_the_config_loader_takes_any_file(document, as_text):
    path = WORK / "config.yaml"
    try:
        data = yaml.safe_dump(document, allow_unicode=True).encode("utf-8") if as_text else None
    except (yaml.YAMLError, UnicodeEncodeError):  # a lone surrogate cannot be written as YAML
        data = None
    path.write_bytes(data if data is not None else json.dumps(document).encode("utf-8", "surrogatepass"))
    try:
        load_config(path, environ={})
    except ConfigError as error:
        one_line(error)


@FUZZ
@given(data=st.binary(max_size=400) | st.text(max_size=400).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_the_config_loader_takes_any_bytes(data):
    path = WORK / "bytes.yaml"
    path.write_bytes(data)
    try:
        load_config(path, environ={})
    except ConfigError as error:
        one_line(error)


# -- the gallery loader ------------------------------------------------------------------------------------

def valid_gallery() -> tuple[dict, np.ndarray, np.ndarray]:
    rows = np.random.default_rng(0).normal(size=(3, 4))
    rows = (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)
    meta = {"format": "edge-facerec-gallery", "version": 1,
            "embedder": {"model": "m", "sha256": "ab" * 32, "embedding_size": 4, "alignment": "landmarks",
                         "flip_fusion": False},
            "people": [{"id": "p-0123456789ab", "name": "Zoë", "sources": ["a", "b"], "enrolled": "x"},
                       {"id": "p-ba9876543210", "name": "Ngọc", "sources": ["c"], "enrolled": "x"}]}
    return meta, rows, np.array([0, 0, 1], np.int32)


@st.composite
def changed_meta(draw) -> object:
    """The valid meta with one value anywhere in it replaced by anything."""
    meta = valid_gallery()[0]
    if draw(st.integers(0, 9)) == 0:
        return draw(values)
    parent, key = meta, None
    while True:
        children = list(parent.items()) if isinstance(parent, dict) else list(enumerate(parent))
        key, child = children[draw(st.integers(0, len(children) - 1))]
        if not isinstance(child, (dict, list)) or not child or draw(st.booleans()):
            break
        parent = child
    parent[key] = draw(values)
    return meta


def check_gallery_or_error(path: Path) -> None:
    try:
        gallery = gallery_file.load(path)
    except GalleryError as error:
        one_line(error)
        return
    width = gallery.embedder.embedding_size
    for person in gallery.people:
        assert person.embeddings.shape[1:] == (width,) and len(person.embeddings) >= 1
        assert np.isfinite(person.embeddings).all() and text_problem(person.name) is None
        assert len(person.sources) == len(person.embeddings)


@FUZZ
@given(meta=changed_meta())
def test_the_gallery_loader_takes_any_meta(meta):
    _, rows, owner = valid_gallery()
    path = WORK / "meta.npz"
    text_meta = json.dumps(meta)  # NaN and Infinity as JSON's non-standard words; surrogates escaped
    np.savez(path, meta=np.array(text_meta), embeddings=rows, owner=owner)
    check_gallery_or_error(path)


arrays = hnp.arrays(st.sampled_from([np.float32, np.float64, np.int32, np.uint8, np.bool_, "U3"]),
                    hnp.array_shapes(min_dims=0, max_dims=3, max_side=5))


@FUZZ
@given(rows=arrays, owner=arrays)
def test_the_gallery_loader_takes_any_arrays(rows, owner):
    path = WORK / "arrays.npz"
    np.savez(path, meta=np.array(json.dumps(valid_gallery()[0])), embeddings=rows, owner=owner)
    check_gallery_or_error(path)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=8),
       cut=st.none() | st.integers(0, 10**6))
def test_the_gallery_loader_takes_a_damaged_file(flips, cut):
    meta, rows, owner = valid_gallery()
    buffer = io.BytesIO()
    np.savez(buffer, meta=np.array(json.dumps(meta)), embeddings=rows, owner=owner)
    data = bytearray(buffer.getvalue())
    for offset, value in flips:
        data[offset % len(data)] = value
    path = WORK / "damaged.npz"
    path.write_bytes(bytes(data[:cut % len(data)] if cut is not None else data))
    check_gallery_or_error(path)


# -- the event parser --------------------------------------------------------------------------------------

FIELDS = dict(make_event(0, "front-door").to_dict())
RULE = RuleConfig("door", "recognized", ("/bin/true",), ("p-alice",))


@st.composite
def event_payloads(draw) -> bytes:
    """A valid event with some fields replaced by anything (also NaN, nested values, control characters)."""
    event = dict(FIELDS)
    for key in draw(st.lists(st.sampled_from(sorted(FIELDS)), max_size=4, unique=True)):
        event[key] = draw(values)
    if draw(st.booleans()):
        event[draw(text)] = draw(values)
    return json.dumps(event, ensure_ascii=draw(st.booleans())).encode("utf-8", "surrogatepass")


def check_event_or_error(payload: bytes) -> None:
    try:
        event = parse_event(payload)
    except MalformedEvent as error:
        one_line(error)
        return
    environment = command_environment(RULE, event)  # what an accepted event can put before a command
    for value in environment.values():
        assert isinstance(value, str) and "\x00" not in value
        value.encode("utf-8")  # no lone surrogate: the environment can be handed to the command


@FUZZ
@given(payload=event_payloads())
def test_the_event_parser_takes_any_event_shaped_json(payload):
    check_event_or_error(payload)


@FUZZ
@given(payload=st.binary(max_size=300) | st.integers(0, 100000).map(lambda n: b"[" * n + b"]" * n))
def test_the_event_parser_takes_any_bytes(payload):
    check_event_or_error(payload)


@FUZZ
@given(document=values)
def test_json_parsing_returns_what_was_written_or_says_why_not(document):
    payload = json.dumps(document).encode("utf-8", "surrogatepass")
    try:
        parsed = parse_json(payload, 1 << 20)
    except UntrustedDataError as error:
        one_line(error)
        return
    assert json.dumps(parsed) == json.dumps(document)
