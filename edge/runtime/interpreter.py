"""The one place that imports a TFLite interpreter: ai-edge-litert, else tflite-runtime."""
from __future__ import annotations

from typing import Any

from ..errors import NoInterpreterError


def _interpreter_class() -> tuple[type, str]:
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter, "ai-edge-litert"
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter, "tflite-runtime"
    except ImportError:
        raise NoInterpreterError(
            "no TFLite interpreter installed: pip install ai-edge-litert "
            "(x86_64, aarch64) or tflite-runtime==2.14.* (32-bit Raspberry Pi OS)"
        ) from None


def runtime_name() -> str:
    """Name of the interpreter package in use."""
    return _interpreter_class()[1]


def make_interpreter(model_content: bytes, num_threads: int) -> Any:
    """A TFLite interpreter over a model held in memory (XNNPACK applied by default)."""
    interpreter_class, _ = _interpreter_class()
    return interpreter_class(model_content=model_content, num_threads=num_threads)
