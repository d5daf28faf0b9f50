"""One TFLite model behind one small surface: verified load, batch in, outputs keyed by width."""
from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from .interpreter import make_interpreter
from .model_files import ModelSpec, read_verified
from .native_logs import first_allocation_to_log

log = logging.getLogger(__name__)


class TFLiteModel:
    """A model whose outputs are told apart by their last dimension (not their position).

    Interpreters are created on first use of an input shape and kept (up to ``max_shapes``),
    so a camera stream with a steady frame size allocates nothing per frame; a model whose only
    free dimension is the batch has its batch-1 interpreter made at once.
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
        signature = tuple(int(v) for v in probe.get_input_details()[0]["shape_signature"])
        if all(v > 0 for v in signature):
            self._by_shape[signature] = self._prepared(probe)
        elif all(v > 0 for v in signature[1:]):
            # only the batch is free: batch 1 now, in the thread loading the models, so that TFLite's
            # announcement at the process's first allocation is not captured while worker threads log
            self._for_shape((1, *signature[1:]))

    def _prepared(self, interpreter: Any) -> tuple[Any, int, dict[int, int]]:
        with first_allocation_to_log(log):  # TFLite's delegate line goes to the log, not the terminal
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
