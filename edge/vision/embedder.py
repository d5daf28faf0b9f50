"""FaceNet embedder on TFLite: aligned RGB faces in, L2-normalised float32 embeddings out."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..runtime.model_files import ModelSpec
from ..runtime.tflite_model import TFLiteModel
from .preprocess import NORMALISERS


class FaceEmbedder:
    """One embedder model; its input size and normalisation come from the manifest."""

    def __init__(self, spec: ModelSpec, num_threads: int = 2, models_dir: Path | None = None) -> None:
        if spec.kind != "embedder" or spec.input_size is None or spec.embedding_size is None:
            raise ValueError(f"model {spec.name!r} is not an embedder with a fixed input size")
        self.spec = spec
        self.input_size: tuple[int, int] = spec.input_size
        self._normalise = NORMALISERS[spec.normalization]
        self._model = TFLiteModel(spec, num_threads, models_dir, max_shapes=4)
        self._batch = spec.batch

    def embed(self, faces_rgb: np.ndarray, flip_fusion: bool | None = None) -> np.ndarray:
        """(N, H, W, 3) uint8 aligned faces -> (N, D) unit-length float32 embeddings.

        With flip fusion (default: the manifest's ``flip_fusion`` for this model) each face's
        embedding is the normalised sum of its own and its mirror image's; it costs a second
        pass per face.
        """
        if faces_rgb.ndim != 4 or tuple(faces_rgb.shape[1:3]) != self.input_size:
            raise ValueError(f"faces must be (N, {self.input_size[0]}, {self.input_size[1]}, 3), got {faces_rgb.shape}")
        if len(faces_rgb) == 0:
            return np.empty((0, self.spec.embedding_size), dtype=np.float32)
        fuse = self.spec.flip_fusion if flip_fusion is None else flip_fusion
        if fuse:
            both = self._embed(np.concatenate([faces_rgb, faces_rgb[:, :, ::-1]]))
            return _unit(both[:len(faces_rgb)] + both[len(faces_rgb):])
        return self._embed(faces_rgb)

    def _embed(self, faces_rgb: np.ndarray) -> np.ndarray:
        inputs = self._normalise(faces_rgb)
        step = self._batch or len(inputs)
        parts = [self._model.run(inputs[i:i + step])[self.spec.embedding_size] for i in range(0, len(inputs), step)]
        return _unit(np.concatenate(parts).astype(np.float32))


def _unit(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return (embeddings / np.maximum(norms, 1e-12)).astype(np.float32)
