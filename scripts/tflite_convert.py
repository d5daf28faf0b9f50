"""The int8 conversion the exporters share (development tooling, needs TensorFlow)."""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter


def int8_but_tail(converter: Any, calibration: np.ndarray, float_scope: str) -> bytes:
    """Full-integer int8 with per-channel weights and float32 input and output, calibrated on
    ``calibration`` (one sample a step); the ops whose tensor names contain ``float_scope``, and the
    outputs, stay float32 after a DEQUANTIZE (for ops XNNPACK does not delegate in int8)."""
    from tensorflow.lite.python.convert import mlir_quantize

    def representative() -> Iterator[list[np.ndarray]]:
        for sample in calibration:
            yield [sample[None]]

    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative
    converter._experimental_calibrate_only = True
    calibrated = converter.convert()
    probe = Interpreter(model_content=calibrated)
    outputs = {d["name"] for d in probe.get_output_details()}
    tail = [t["name"] for t in probe.get_tensor_details() if float_scope in t["name"] or t["name"] in outputs]
    return mlir_quantize(calibrated, disable_per_channel=False, fully_quantize=False, denylisted_nodes=tail)
