"""Face preparation and embedding in one place, so enrollment and recognition cannot differ.

The embedder's manifest entry decides the alignment (margin crop or 5-landmark transform),
the input size, the normalisation and flip fusion; every caller (``edge-enroll``, the daemon,
``edge-demo``) goes through :class:`FaceEncoder` and gets identical embeddings for identical
faces.
"""
from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..face import Face
from ..runtime.model_files import EmbedderIdentity, ModelSpec
from .align import align_faces
from .embedder import FaceEmbedder


class FaceEncoder:
    """Faces found in an RGB frame -> aligned crops -> unit-length embeddings."""

    def __init__(self, spec: ModelSpec, num_threads: int = 2, models_dir: Path | None = None) -> None:
        self.spec = spec
        self.embedder = FaceEmbedder(spec, num_threads, models_dir)
        self.identity = EmbedderIdentity.of(spec)

    @property
    def crop_size(self) -> int:
        """Side of the square aligned crop the embedder takes."""
        return self.embedder.input_size[0]

    def align(self, rgb: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """(N, S, S, 3) uint8 crops of ``faces`` prepared as the manifest says for this embedder."""
        return align_faces(rgb, faces, self.spec.alignment, self.crop_size)

    def embed_crops(self, crops: np.ndarray) -> np.ndarray:
        """(N, D) float32 unit embeddings of crops made by :meth:`align`."""
        return self.embedder.embed(crops, self.spec.flip_fusion)

    def encode(self, rgb: np.ndarray, faces: Sequence[Face]) -> np.ndarray:
        """(N, D) float32 unit embeddings of ``faces`` in the RGB frame ``rgb``."""
        if not faces:
            return np.empty((0, self.identity.embedding_size), np.float32)
        return self.embed_crops(self.align(rgb, faces))
