"""The one set of rules for data from outside the program: config files, gallery files, MQTT
payloads, folder and file names.

- Numbers are finite and inside documented bounds (:class:`Bounds`).
- Text is valid Unicode (no lone surrogate, so it can be written as UTF-8) and holds no NUL or
  other control character where it becomes a path, a host, a topic, an environment variable or
  a line on a terminal (:func:`text_problem`); text shown on a terminal goes through
  :func:`printable`.
- JSON and YAML are parsed with caps on size and nesting depth, so a hostile document is an
  error message, never a ``RecursionError`` (:func:`parse_json`, :func:`parse_yaml`). A mapping
  with a duplicate key is refused (the last one would silently win); JSON's ``NaN`` and
  ``Infinity`` are refused on reading and never written (:func:`dump_json`).

Own code rather than a validation library: docs/robustness.md says why.
"""
from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any

import yaml

MAX_DEPTH = 32  # nesting of lists and mappings in any document we read; ours need at most 4
MAX_INT_DIGITS = 100  # a JSON integer longer than this is refused (Python would spend quadratic time on it)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")  # Unicode category Cc, and lone surrogates
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\u202a-\u202e\u2066-\u2069]")  # + bidi overrides


class UntrustedDataError(ValueError):
    """Data that breaks one of these rules; the message says which, the caller says where it came from."""


def shown(value: Any, limit: int = 60) -> str:
    """A short repr of ``value`` for an error message: control characters escaped, never raising (Python
    refuses to print integers of more than 4300 digits), at most about ``limit`` characters."""
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"a number of about {int(value.bit_length() * 0.30103)} digits"
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _number(value: float) -> str:
    if isinstance(value, int):
        return shown(value)
    return str(int(value)) if value.is_integer() and abs(value) < 1e15 else repr(value)


@dataclass(frozen=True)
class Bounds:
    """The values a number may take: ``low`` to ``high``, each end included unless marked open."""

    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def problem(self, value: float | None) -> str | None:
        """What is wrong with ``value`` ("must be between 1 and 64"), or None (also for None: not set)."""
        if value is None:
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        below = value <= self.low if self.low_open else value < self.low
        above = value >= self.high if self.high_open else value > self.high
        if not (below or above):
            return None
        return f"must be {self.describe()}, got {_number(value)}"

    def describe(self) -> str:
        """The bounds in words: "between 12 and 4096", "more than 0 and at most 3600"."""
        low, high = _number(self.low), _number(self.high)
        if not (self.low_open or self.high_open):
            return f"between {low} and {high}"
        return (f"{'more than' if self.low_open else 'at least'} {low} and "
                f"{'less than' if self.high_open else 'at most'} {high}")


def text_problem(text: str, empty_ok: bool = False) -> str | None:
    """What is wrong with ``text`` as a name, path, host or topic part, or None."""
    if not empty_ok and not text.strip():
        return "must not be empty"
    bad = _CONTROL.search(text)
    if bad is None:
        return None
    code = ord(bad.group())
    if 0xD800 <= code <= 0xDFFF:
        return f"is not valid Unicode (a lone surrogate U+{code:04X})"
    return "contains a NUL character" if code == 0 else f"contains a control character (U+{code:04X})"


def printable(text: str) -> str:
    """``text`` safe for a terminal: control characters, lone surrogates and bidi overrides escaped
    (``\\x1b``, ``\\ud800``); every other character, any script, unchanged."""
    return _UNPRINTABLE.sub(lambda found: _escaped(found.group()), text)


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def depth(value: Any) -> int:
    """How deeply lists and mappings nest in a parsed document (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is not None:
            deepest = max(deepest, level)
            stack.extend((child, level + 1) for child in children)
    return deepest


def parse_json(data: bytes | str, max_bytes: int, max_depth: int = MAX_DEPTH) -> Any:
    """The JSON document in ``data`` (UTF-8 when bytes), or UntrustedDataError: too large, not UTF-8,
    not JSON, nested deeper than ``max_depth``, a duplicate key, or a number that is not finite or is
    longer than MAX_INT_DIGITS."""
    if len(data) > max_bytes:
        raise UntrustedDataError(f"larger than {max_bytes} bytes")
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UntrustedDataError("not valid UTF-8") from None
    try:
        value = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float, parse_int=_short_int,
                           object_pairs_hook=_unique_keys)
    except RecursionError:
        raise UntrustedDataError(f"nested deeper than {max_depth} levels") from None
    except UntrustedDataError:
        raise
    except ValueError as error:  # json.JSONDecodeError, or an integer of more than 4300 digits
        raise UntrustedDataError(f"not valid JSON ({str(error).splitlines()[0]})") from None
    if depth(value) > max_depth:
        raise UntrustedDataError(f"nested deeper than {max_depth} levels")
    return value


def _refuse_constant(name: str) -> Any:
    raise UntrustedDataError(f"{name} is not a number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UntrustedDataError(f"{text[:20]} is not a finite number")
    return value


def _short_int(text: str) -> int:
    if len(text) > MAX_INT_DIGITS:
        raise UntrustedDataError(f"a number of more than {MAX_INT_DIGITS} digits")
    return int(text)


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise UntrustedDataError(f"duplicate key {printable(key)!r}")
        result[key] = value
    return result


def dump_json(value: Any) -> str:
    """Compact JSON, Unicode unescaped; ValueError rather than writing NaN or Infinity, which JSON lacks."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader refusing duplicate keys, nesting deeper than MAX_DEPTH and integers longer
    than MAX_INT_DIGITS."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise yaml.composer.ComposerError(None, None, f"nested deeper than {MAX_DEPTH} levels",
                                                  self.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            seen: set[Any] = set()
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue  # "<<: *defaults" followed by overrides is not a duplicate
                key = self.construct_object(key_node, deep=True)
                try:
                    duplicate = key in seen
                    seen.add(key)
                except TypeError:  # an unhashable key: the safe constructor refuses it below
                    continue
                if duplicate:
                    raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}",
                                                            key_node.start_mark)
        return super().construct_mapping(node, deep)

    def construct_yaml_int(self, node: Any) -> int:
        if len(node.value) > MAX_INT_DIGITS:
            raise yaml.constructor.ConstructorError(None, None, f"a number of more than {MAX_INT_DIGITS} digits",
                                                    node.start_mark)
        return super().construct_yaml_int(node)


_StrictLoader.add_constructor("tag:yaml.org,2002:int", _StrictLoader.construct_yaml_int)


def parse_yaml(text: str) -> Any:
    """The YAML document in ``text`` (safe types only), or UntrustedDataError naming the line:
    not YAML, a duplicate key, or nested deeper than MAX_DEPTH."""
    try:
        return yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        problem = " ".join(str(getattr(error, "problem", None) or error).split())  # one line, whatever PyYAML says
        raise UntrustedDataError(f"not valid YAML{where} ({problem})") from None
    except RecursionError:
        raise UntrustedDataError(f"not valid YAML (nested deeper than {MAX_DEPTH} levels)") from None
    except (ValueError, OverflowError) as error:  # a constructor's: a date such as 2001-13-45
        raise UntrustedDataError(f"not valid YAML ({' '.join(str(error).split())})") from None
