"""Without either TFLite package the error names both."""
from __future__ import annotations

import sys

import pytest

from edge.runtime import interpreter
from edge.errors import NoInterpreterError


def test_missing_interpreter_names_both_packages(monkeypatch):
    for module in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(NoInterpreterError, match="ai-edge-litert.*tflite-runtime"):
        interpreter.make_interpreter(b"", 1)


def test_an_interpreter_is_found_here():
    assert interpreter.runtime_name() in ("ai-edge-litert", "tflite-runtime")
