"""One TFLite model behind one small surface: verified load, batch in, outputs keyed by width."""
from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .interpreter import make_interpreter
from .model_files import ModelSpec, read_verified


class TFLiteModel:
    """A model whose outputs are told apart by their last dimension (not their position).

    Interpreters are created on first use of an input shape and kept (up to ``max_shapes``),
    so a camera stream with a steady frame size allocates nothing per frame.
    """

    def __init__(self, spec: ModelSpec, num_threads: int = 2, models_dir: Path | None = None,
                 max_shapes: int = 16) -> None:
        self.spec = spec
        self._content = read_verified(spec, models_dir)
        self._num_threads = num_threads
        self._max_shapes = max_shapes
        self._by_shape: OrderedDict[tuple[int, ...], tuple[Any, int, dict[int, int]]] = OrderedDict()
        probe = make_interpreter(self._content, num_threads)
        self._input_index = probe.get_input_details()[0]["index"]
        widths = [int(d["shape"][-1]) for d in probe.get_output_details()]
        if len(set(widths)) != len(widths):
            raise ValueError(f"{spec.file}: outputs share a last dimension {widths}; cannot tell them apart")
        self.output_widths = tuple(sorted(widths))
        signature = probe.get_input_details()[0]["shape_signature"]
        if all(int(v) > 0 for v in signature):
            self._by_shape[tuple(int(v) for v in signature)] = self._prepared(probe)

    def _prepared(self, interpreter: Any) -> tuple[Any, int, dict[int, int]]:
        interpreter.allocate_tensors()
        outputs = {int(d["shape"][-1]): d["index"] for d in interpreter.get_output_details()}
        return interpreter, interpreter.get_input_details()[0]["index"], outputs

    def _for_shape(self, shape: tuple[int, ...]) -> tuple[Any, int, dict[int, int]]:
        prepared = self._by_shape.get(shape)
        if prepared is not None:
            self._by_shape.move_to_end(shape)
            return prepared
        interpreter = make_interpreter(self._content, self._num_threads)
        interpreter.resize_tensor_input(self._input_index, list(shape), strict=False)
        prepared = self._prepared(interpreter)
        self._by_shape[shape] = prepared
        if len(self._by_shape) > self._max_shapes:
            self._by_shape.popitem(last=False)
        return prepared

    def run(self, batch: np.ndarray) -> dict[int, np.ndarray]:
        """Run on a float32 NHWC batch; return each output (copied) keyed by its last dimension."""
        interpreter, input_index, outputs = self._for_shape(tuple(batch.shape))
        interpreter.set_tensor(input_index, np.ascontiguousarray(batch, dtype=np.float32))
        interpreter.invoke()
        return {width: interpreter.get_tensor(index) for width, index in outputs.items()}
