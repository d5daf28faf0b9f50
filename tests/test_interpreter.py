"""Without either TFLite package the error names both; what the native runtime prints goes to the log."""
from __future__ import annotations

import logging
import os
import subprocess
import sys

import pytest

from edge.runtime import interpreter
from edge.runtime.native_logs import native_stderr_to_log
from edge.errors import NoInterpreterError


def test_missing_interpreter_names_both_packages(monkeypatch):
    for module in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime", "tflite_runtime.interpreter"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(NoInterpreterError, match="ai-edge-litert.*tflite-runtime"):
        interpreter.make_interpreter(b"", 1)


def test_an_interpreter_is_found_here():
    assert interpreter.runtime_name() in ("ai-edge-litert", "tflite-runtime")


def test_what_native_code_prints_goes_to_the_log_and_its_chatter_to_debug_only(capfd, caplog):
    log = logging.getLogger("test.native")
    with caplog.at_level(logging.DEBUG, logger="test.native"):
        with native_stderr_to_log(log):
            os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\nERROR: tensor 3 is broken\n")
    assert "XNNPACK" not in capfd.readouterr().err
    levels = {record.getMessage(): record.levelno for record in caplog.records if record.name == "test.native"}
    assert levels == {"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.": logging.DEBUG,
                      "ERROR: tensor 3 is broken": logging.WARNING}


def test_what_native_code_printed_before_an_error_is_still_logged(caplog):
    with pytest.raises(RuntimeError), native_stderr_to_log(logging.getLogger("test.native")):
        os.write(2, b"ERROR: why it failed\n")
        raise RuntimeError("allocation failed")
    assert "ERROR: why it failed" in caplog.text


def test_loading_and_running_the_models_prints_nothing_on_stderr():
    loads = ("import numpy; from edge.vision.detector import MTCNNDetector; "
             "MTCNNDetector().detect(numpy.zeros((48, 64, 3), numpy.uint8))")
    result = subprocess.run([sys.executable, "-c", loads], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and result.stderr == ""
