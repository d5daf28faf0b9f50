"""The model manifest: which files ship, what they expect, and loading them verified by sha256."""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from ..errors import ModelFileError

MANIFEST_NAME = "manifest.json"
NORMALIZATIONS = ("fixed", "prewhiten", "raw")
COLOURS = ("RGB", "BGR")
ALIGNMENTS = ("margin", "landmarks")  # face preparations of edge.vision.align.ALIGNERS


@dataclass(frozen=True)
class ModelSpec:
    """One model as the manifest declares it."""

    name: str
    file: str
    sha256: str
    size_bytes: int
    kind: str  # pnet, rnet, onet, embedder or antispoof
    family: str
    quantization: str  # float32 or int8
    input_size: tuple[int, int] | None  # (height, width); None when any size is accepted
    normalization: str  # fixed: (x - 127.5) / 128; prewhiten: per-image standardisation; raw: 0..255 as is
    embedding_size: int | None
    batch: int | None  # fixed batch size, or None when any batch is accepted
    match_threshold: float | None  # cosine similarity at FAR 1e-3 on LFW (embedders)
    alignment: str = "margin"  # face preparation the threshold was measured with (edge.vision.align.ALIGNERS)
    flip_fusion: bool = False  # embedding = normalised sum of the face's and its mirror image's
    impostor_tail: tuple[tuple[float, float], ...] = ()  # (far, cosine) on LFW cross-identity pairs (embedders)
    input_color: str = "RGB"  # channel order of the input: RGB, or BGR (antispoof)
    crop_scale: float | None = None  # antispoof: crop side = face box side x this, about the box's centre
    live_class: int | None = None  # antispoof: index of the "live" class in the softmax output
    # antispoof: our MTCNN box -> the box the model was trained on: width and height factors, downward
    # shift of the centre in box heights (measured, docs/liveness.md)
    box_mapping: tuple[float, float, float] = (1.0, 1.0, 0.0)


@dataclass(frozen=True)
class EmbedderIdentity:
    """What produced a gallery's embeddings; two galleries match only when these are equal."""

    model: str
    sha256: str
    embedding_size: int
    alignment: str
    flip_fusion: bool

    @classmethod
    def of(cls, spec: ModelSpec) -> EmbedderIdentity:
        """The identity of the embeddings an embedder's manifest entry produces."""
        return cls(model=spec.name, sha256=spec.sha256, embedding_size=int(spec.embedding_size or 0),
                   alignment=spec.alignment, flip_fusion=spec.flip_fusion)

    def differences(self, other: EmbedderIdentity) -> str:
        """What differs from ``other``, in words, each as "this vs other" ("" when nothing does), e.g.
        ``model file sha256 3f2a9c01... vs 7b1e0d44... (the same name, another file)``."""
        said = []
        if self.model != other.model:
            said.append(f"model {self.model} vs {other.model}")
        if self.sha256 != other.sha256:
            same = " (the same name, another file)" if self.model == other.model else ""
            said.append(f"model file sha256 {self.sha256[:8]}... vs {other.sha256[:8]}...{same}")
        if self.embedding_size != other.embedding_size:
            said.append(f"embedding size {self.embedding_size} vs {other.embedding_size}")
        if self.alignment != other.alignment:
            said.append(f"face alignment {self.alignment} vs {other.alignment}")
        if self.flip_fusion != other.flip_fusion:
            said.append(f"flip fusion {'on' if self.flip_fusion else 'off'} vs {'on' if other.flip_fusion else 'off'}")
        return ", ".join(said)


def default_models_dir() -> Path:
    """``$EDGE_MODELS_DIR``, else the models installed with the package, else the source tree's ``models/``."""
    override = os.environ.get("EDGE_MODELS_DIR")
    if override:
        return Path(override)
    try:
        installed = Path(str(resources.files("edge.modelfiles")))
        if (installed / MANIFEST_NAME).exists():
            return installed
    except ModuleNotFoundError:
        pass
    return Path(__file__).resolve().parents[2] / "models"


def _spec_from_entry(name: str, entry: dict, manifest_path: Path) -> ModelSpec:
    try:
        normalization = entry["normalization"]
        if normalization not in NORMALIZATIONS:
            raise ModelFileError(
                f"{manifest_path}: model {name!r} has normalization {normalization!r}, "
                f"expected one of {', '.join(NORMALIZATIONS)}"
            )
        input_size = entry.get("input_size")
        alignment = entry.get("alignment", "margin")
        if alignment not in ALIGNMENTS:
            raise ModelFileError(
                f"{manifest_path}: model {name!r} has alignment {alignment!r}, "
                f"expected one of {', '.join(ALIGNMENTS)}"
            )
        input_color = entry.get("input_color", "RGB")
        if input_color not in COLOURS:
            raise ModelFileError(f"{manifest_path}: model {name!r} has input_color {input_color!r}, "
                                 f"expected one of {', '.join(COLOURS)}")
        return ModelSpec(
            name=name,
            file=entry["file"],
            sha256=entry["sha256"],
            size_bytes=int(entry["size_bytes"]),
            kind=entry["kind"],
            family=entry["family"],
            quantization=entry["quantization"],
            input_size=tuple(input_size) if input_size else None,
            normalization=normalization,
            embedding_size=entry.get("embedding_size"),
            batch=entry.get("batch"),
            match_threshold=entry.get("match_threshold"),
            alignment=alignment,
            flip_fusion=bool(entry.get("flip_fusion", False)),
            impostor_tail=tuple((float(far), float(cosine)) for far, cosine in entry.get("impostor_tail", ())),
            input_color=input_color,
            crop_scale=float(entry["crop_scale"]) if entry.get("crop_scale") is not None else None,
            live_class=int(entry["live_class"]) if entry.get("live_class") is not None else None,
            box_mapping=tuple(float(entry.get("box_mapping", {}).get(k, d))
                              for k, d in (("width", 1.0), ("height", 1.0), ("shift_y", 0.0))),
        )
    except KeyError as missing:
        raise ModelFileError(f"{manifest_path}: model {name!r} lacks key {missing}") from None
    except (TypeError, ValueError) as error:
        raise ModelFileError(f"{manifest_path}: model {name!r} has a malformed value ({error})") from None


@dataclass(frozen=True)
class Manifest:
    """Every shipped model, and which embedder is the default."""

    models: dict[str, ModelSpec]
    default_embedder: str

    def embedder(self, name: str | None = None) -> ModelSpec:
        """The named embedder (default when ``None``), or an error listing the available ones."""
        chosen = name or self.default_embedder
        spec = self.models.get(chosen)
        if spec is None or spec.kind != "embedder":
            available = ", ".join(n for n, s in self.models.items() if s.kind == "embedder")
            raise ModelFileError(f"no embedder named {chosen!r} in the manifest; available: {available}")
        return spec


def load_manifest(models_dir: Path | None = None) -> Manifest:
    """Read the manifest of ``models_dir`` (default: :func:`default_models_dir`)."""
    directory = models_dir or default_models_dir()
    path = directory / MANIFEST_NAME
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model manifest not found") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ModelFileError(f"{path}: model manifest is not valid JSON ({error})") from None
    if not isinstance(raw, dict) or not isinstance(raw.get("models"), dict):
        raise ModelFileError(f"{path}: model manifest has no 'models' table")
    models = {name: _spec_from_entry(name, entry, path) for name, entry in raw["models"].items()}
    default_embedder = raw.get("defaults", {}).get("embedder", "")
    if default_embedder not in models:
        raise ModelFileError(f"{path}: defaults.embedder {default_embedder!r} is not a model in the manifest")
    return Manifest(models=models, default_embedder=default_embedder)


def read_verified(spec: ModelSpec, models_dir: Path | None = None) -> bytes:
    """The bytes of a model file, refused unless size and sha256 match the manifest."""
    path = (models_dir or default_models_dir()) / spec.file
    try:
        content = path.read_bytes()
    except FileNotFoundError:
        raise ModelFileError(f"{path}: model file not found (model {spec.name!r})") from None
    except OSError as error:
        raise ModelFileError(f"{path}: cannot read model file ({error.strerror})") from None
    if len(content) != spec.size_bytes:
        raise ModelFileError(
            f"{path}: model file is {len(content)} bytes, the manifest says {spec.size_bytes} "
            "(truncated or replaced; reinstall the package)"
        )
    digest = hashlib.sha256(content).hexdigest()
    if digest != spec.sha256:
        raise ModelFileError(f"{path}: sha256 {digest} does not match the manifest (altered; reinstall the package)")
    return content
