"""LFW accuracy of the whole pipeline: our detector, our alignment, our embedders.

Data: ``lfw/`` of the evaluation data folder (``--data``, else ``$EDGE_EVAL_DATA``, else
``../shared/data`` beside the repository): 13,233 deep-funneled 250x250 images and the
standard ``pairs.txt``. Nothing is copied into the repository.

For every image: ``MTCNNDetector`` (default settings) on the 250x250 image, the face whose box
centre is nearest the image centre; where nothing is found, a fixed central face (the median box
and landmarks of the detected images) is used instead and counted. Then for every embedder
candidate (int8 from ``models/``, fp32 from the export cache), both alignments
(``edge.vision.align.ALIGNERS``) and with or without flip fusion:

- verification, standard protocol: 10 folds of ``pairs.txt``, the threshold that maximises
  accuracy on 9 folds applied to the 10th; mean and standard deviation of the 10 accuracies;
- TAR at FAR 1e-3: the cosine threshold exceeded by 0.1% of all cross-identity pairs among the
  images of ``pairs.txt`` (~29 million), and the share of the 3,000 same pairs above it;
- open-set identification: people with at least 5 photos enroll their first 3 (by file
  name) and are probed with the rest; every person with exactly one photo is a stranger;
  best-of-3 cosine per identity; rank-1, correct acceptances and stranger false accepts at
  the FAR-1e-3 threshold;
- milliseconds per face (alignment + embedding, batches of 32, this machine).

Detections and embeddings are cached in ``~/.cache/edge-facerec/lfw/`` (``$EDGE_CACHE_DIR``),
keyed by the model files, settings and ``edge/vision/align.py``, so a rerun only recomputes the table.

    python scripts/evaluate_lfw.py --limit-pairs 600        # quick slice (~2 min the first time)
    python scripts/evaluate_lfw.py --timing-faces 512 --markdown /tmp/lfw.md
        # everything: ~35 min on 2 cores the first time, ~1-2 min from the cache
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import inspect
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from edge.vision.align import ALIGNERS, align_faces  # noqa: E402
from edge.vision.detector import DetectorSettings, MTCNNDetector  # noqa: E402
from edge.vision.embedder import FaceEmbedder  # noqa: E402
from edge.face import Face  # noqa: E402
from edge.runtime.model_files import Manifest, ModelSpec, load_manifest  # noqa: E402
from edge.runtime.pinned_download import cache_dir, sha256_of  # noqa: E402

TARGET_FAR = 1e-3
STRICTER_FARS = (1e-4, 1e-5)  # reported too: a gallery of many embeddings multiplies the per-pair FAR
BATCH = 32
LFW_IMAGES = "lfw-deepfunneled"


# ----------------------------------------------------------------------------- data


@dataclass(frozen=True)
class Pair:
    first: str  # "Name/Name_0001.jpg"
    second: str
    fold: int
    same: bool


def image_name(person: str, number: str | int) -> str:
    return f"{person}/{person}_{int(number):04d}.jpg"


def person_of(name: str) -> str:
    return name.split("/", 1)[0]


def default_data_dir() -> Path:
    return Path(os.environ.get("EDGE_EVAL_DATA", REPO.parent / "shared" / "data"))


def lfw_dir(data: Path | None) -> Path | None:
    """``<data>/lfw`` when it holds the images and pairs.txt, else None."""
    root = (data or default_data_dir()) / "lfw"
    return root if (root / LFW_IMAGES).is_dir() and (root / "pairs.txt").is_file() else None


def read_pairs(path: Path) -> list[Pair]:
    """View 2 pairs: a ``folds per_fold`` header, then per fold ``per_fold`` same pairs
    (name n1 n2) and ``per_fold`` different pairs (name1 n1 name2 n2)."""
    lines = path.read_text().split("\n")
    folds, per_fold = (int(v) for v in lines[0].split())
    pairs = []
    for index, line in enumerate(line for line in lines[1:] if line.strip()):
        fields = line.split()
        fold = index // (2 * per_fold)
        if len(fields) == 3:
            pairs.append(Pair(image_name(fields[0], fields[1]), image_name(fields[0], fields[2]), fold, True))
        elif len(fields) == 4:
            pairs.append(Pair(image_name(fields[0], fields[1]), image_name(fields[2], fields[3]), fold, False))
        else:
            raise ValueError(f"{path}: line {index + 2} is not a pair: {line!r}")
    if len(pairs) != folds * 2 * per_fold:
        raise ValueError(f"{path}: {len(pairs)} pairs, the header says {folds} x 2 x {per_fold}")
    return pairs


def slice_pairs(pairs: list[Pair], limit: int | None) -> list[Pair]:
    """All pairs, or from each fold the first ``limit / 20`` same and different pairs."""
    if not limit or limit >= len(pairs):
        return pairs
    per_kind = max(1, limit // 20)
    kept, seen = [], {}
    for pair in pairs:
        key = (pair.fold, pair.same)
        if seen.get(key, 0) < per_kind:
            kept.append(pair)
            seen[key] = seen.get(key, 0) + 1
    return kept


def list_people(images_dir: Path) -> dict[str, list[str]]:
    """Person -> image names sorted by file name."""
    people = {}
    for folder in sorted(p for p in images_dir.iterdir() if p.is_dir()):
        photos = sorted(f"{folder.name}/{f.name}" for f in folder.iterdir() if f.suffix.lower() == ".jpg")
        if photos:
            people[folder.name] = photos
    return people


# Single-photo "strangers" who are in fact known people (5+ photos) under another name. They
# were found by looking at the strangers most similar to the known people (docs/recognition.md,
# "LFW label errors"); counting them would charge the matcher for LFW's labels.
NOT_STRANGERS = {
    "Sung_Hong_Choi/Sung_Hong_Choi_0001.jpg": "Choi_Sung-hong",  # the same name in the other order
    "Mireya_Elisa_Moscoso_Rodriguez/Mireya_Elisa_Moscoso_Rodriguez_0001.jpg": "Mireya_Moscoso",  # full name
    "Carlos_Ruckauf/Carlos_Ruckauf_0001.jpg": "Eduardo_Duhalde",  # the photo shows Duhalde
}


@dataclass
class OpenSet:
    enrolled: list[list[str]]  # per known person, 3 image names
    probes: list[str]
    probe_identity: np.ndarray  # index into enrolled
    strangers: list[str]  # without NOT_STRANGERS
    not_strangers: list[str]  # the NOT_STRANGERS present, left out of every count


def open_set_split(people: dict[str, list[str]], limit_people: int | None) -> OpenSet:
    """People with 5+ photos enroll their first 3 and probe with the rest; people with one photo
    are strangers, except the LFW label errors of ``NOT_STRANGERS``."""
    known = [photos for photos in people.values() if len(photos) >= 5]
    singles = [photos[0] for photos in people.values() if len(photos) == 1]
    if limit_people:
        known, singles = known[:limit_people], singles[:10 * limit_people]
    probes, identity = [], []
    for index, photos in enumerate(known):
        probes += photos[3:]
        identity += [index] * (len(photos) - 3)
    return OpenSet([photos[:3] for photos in known], probes, np.array(identity),
                   [n for n in singles if n not in NOT_STRANGERS], [n for n in singles if n in NOT_STRANGERS])


# ----------------------------------------------------------------------------- progress


class Progress:
    """Progress on stderr: one rewritten status line on a terminal, else a line every ~10%."""

    def __init__(self, label: str, total: int) -> None:
        self.label, self.total, self.started, self.shown = label, total, time.perf_counter(), 0.0
        self.tty = sys.stderr.isatty()
        self.next_line = 0

    def update(self, done: int) -> None:
        now = time.perf_counter()
        if self.tty and now - self.shown < 0.5 and done < self.total:
            return
        if not self.tty and done < self.next_line and done < self.total:
            return
        self.shown = now
        self.next_line = done + max(1, self.total // 10)
        elapsed = now - self.started
        eta = elapsed / done * (self.total - done) if done else 0.0
        text = f"  {self.label}: {done}/{self.total} ({elapsed:.0f} s, ~{eta:.0f} s left)"
        if self.tty:
            sys.stderr.write(f"\r{text}   " + ("\n" if done >= self.total else ""))
        else:
            sys.stderr.write(text + "\n")
        sys.stderr.flush()


def _key(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _save(path: Path, **arrays: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp.npz")
    np.savez(temporary, **arrays)
    os.replace(temporary, path)


# ----------------------------------------------------------------------------- detection


@dataclass
class Detections:
    names: list[str]
    boxes: np.ndarray  # (N, 4)
    landmarks: np.ndarray  # (N, 5, 2)
    scores: np.ndarray  # (N,)
    counts: np.ndarray  # faces found per image; 0 = none (box etc. are NaN)
    ms_per_image: float
    key: str  # of the detector's models and settings

    def faces(self) -> tuple[list[Face], np.ndarray]:
        """The chosen face per image, the central fallback where none was found, and a mask of
        the images that used the fallback."""
        found = self.counts > 0
        box = tuple(float(v) for v in np.median(self.boxes[found], axis=0))
        points = np.median(self.landmarks[found], axis=0).astype(np.float32)
        faces = [Face(tuple(float(v) for v in b), float(s), p.astype(np.float32)) if n else Face(box, 0.0, points)
                 for b, s, p, n in zip(self.boxes, self.scores, self.landmarks, self.counts)]
        return faces, ~found

    def fallback(self) -> tuple[np.ndarray, np.ndarray]:
        found = self.counts > 0
        return np.median(self.boxes[found], axis=0), np.median(self.landmarks[found], axis=0)


def detector_key(detector: MTCNNDetector, manifest: Manifest) -> str:
    models = [manifest.models[name].sha256 for name in detector.model_names]
    return _key("detections-v1", models, dataclasses.asdict(detector.settings), detector.quantization)


def detect_all(names: list[str], images: Path, manifest: Manifest, quantization: str = "auto") -> Detections:
    """Detections for ``names`` (cached: only images not yet in the cache are run)."""
    detector = MTCNNDetector(DetectorSettings(quantization=quantization))
    key = detector_key(detector, manifest)
    path = cache_dir() / "lfw" / f"detections_{detector.quantization}_{key}.npz"
    cached: dict[str, tuple] = {}
    total_ms, total_n = 0.0, 0
    if path.exists():
        with np.load(path) as data:
            for i, name in enumerate(data["names"]):
                cached[str(name)] = (data["boxes"][i], data["landmarks"][i], data["scores"][i], data["counts"][i])
            total_ms, total_n = float(data["total_ms"]), int(data["total_n"])
    missing = [name for name in dict.fromkeys(names) if name not in cached]
    if missing:
        print(f"detecting faces in {len(missing)} images ({detector.quantization} MTCNN; cache {path})", file=sys.stderr)
        progress = Progress("detection", len(missing))
        centre = np.array([125.0, 125.0])
        for done, name in enumerate(missing, 1):
            bgr = cv2.imread(str(images / name), cv2.IMREAD_COLOR)
            if bgr is None:
                raise SystemExit(f"{images / name}: cannot read image")
            centre = np.array([bgr.shape[1] / 2, bgr.shape[0] / 2])
            started = time.perf_counter()
            faces = detector.detect(bgr)
            total_ms += (time.perf_counter() - started) * 1000
            total_n += 1
            if faces:
                face = min(faces, key=lambda f: float(np.sum((np.add(f.box[:2], f.box[2:]) / 2 - centre) ** 2)))
                cached[name] = (np.array(face.box), face.landmarks, face.score, len(faces))
            else:
                cached[name] = (np.full(4, np.nan), np.full((5, 2), np.nan), 0.0, 0)
            progress.update(done)
            if done % 2000 == 0 or done == len(missing):
                everything = list(cached)
                _save(path, names=np.array(everything),
                      boxes=np.array([cached[n][0] for n in everything], dtype=np.float32),
                      landmarks=np.array([cached[n][1] for n in everything], dtype=np.float32),
                      scores=np.array([cached[n][2] for n in everything], dtype=np.float32),
                      counts=np.array([cached[n][3] for n in everything], dtype=np.int32),
                      total_ms=np.float64(total_ms), total_n=np.int64(total_n))
    rows = [cached[name] for name in names]
    return Detections(names, np.array([r[0] for r in rows], dtype=np.float32),
                      np.array([r[1] for r in rows], dtype=np.float32),
                      np.array([r[2] for r in rows], dtype=np.float32),
                      np.array([r[3] for r in rows], dtype=np.int32), total_ms / max(total_n, 1), key)


# ----------------------------------------------------------------------------- embedding


def fp32_spec(int8: ModelSpec, export_dir: Path) -> ModelSpec | None:
    """The float export of an int8 candidate as a ModelSpec (normalisation etc. copied), or None."""
    stem = int8.file.removesuffix("_int8.tflite")
    path = export_dir / f"{stem}_fp32.tflite"
    if not path.exists():
        return None
    return dataclasses.replace(int8, name=int8.name.removesuffix("-int8") + "-fp32", file=path.name,
                               sha256=sha256_of(path), size_bytes=path.stat().st_size,
                               quantization="float32", match_threshold=None)


def candidates(manifest: Manifest, export_dir: Path, only: list[str] | None) -> list[tuple[ModelSpec, Path | None]]:
    """(spec, models_dir) of every int8 embedder and its fp32 export where present."""
    found = []
    for spec in manifest.models.values():
        if spec.kind != "embedder":
            continue
        found.append((spec, None))
        floating = fp32_spec(spec, export_dir)
        if floating is None:
            print(f"note: no fp32 export of {spec.name} in {export_dir} (scripts/export_facenet.py makes it)",
                  file=sys.stderr)
        else:
            found.append((floating, export_dir))
    if only:
        found = [(s, d) for s, d in found if any(o in s.name for o in only)]
    return found


def align_key(alignment: str) -> str:
    """Fingerprint of the code and constants behind one alignment (cache key)."""
    from edge.vision import align
    parts = [inspect.getsource(align.ALIGNERS[alignment])]  # tutorial_crop itself for margin
    if alignment == "landmarks":
        parts += [inspect.getsource(f) for f in (align.landmark_align, align._shrunk_region,
                                                  align.similarity_transform, align.landmark_transform)]
        parts += [np.asarray(align.LANDMARK_TEMPLATE).tobytes().hex(), align.LANDMARK_STRETCH]
    else:
        parts.append(align.MARGIN_FRACTION)
    return _key(parts)


@dataclass
class Embeddings:
    names: list[str]
    plain: np.ndarray  # (N, D) unit
    mirrored: np.ndarray  # (N, D) unit, of the horizontally flipped crop
    align_ms: float  # per face
    embed_ms: float  # per face and pass

    def vectors(self, flip: bool) -> np.ndarray:
        if not flip:
            return self.plain
        fused = self.plain + self.mirrored
        return fused / np.linalg.norm(fused, axis=1, keepdims=True)


class CropSource:
    """Aligned crops of the images, made once per alignment and shared by the embedders."""

    def __init__(self, images: Path, names: list[str], faces: list[Face]) -> None:
        self.images, self.faces = images, dict(zip(names, faces))
        self._crops: dict[str, tuple[dict[str, int], np.ndarray, float]] = {}

    def face_key(self, name: str) -> str:
        """Fingerprint of the face geometry used for ``name`` (box and landmarks to 0.01 px)."""
        face = self.faces[name]
        values = np.round(np.concatenate([np.asarray(face.box, np.float64), face.landmarks.ravel()]), 2)
        return hashlib.sha256(values.tobytes()).hexdigest()[:12]

    def crops(self, alignment: str, names: list[str]) -> tuple[np.ndarray, float]:
        """(N, 160, 160, 3) crops of ``names`` and the alignment's milliseconds per face."""
        have = self._crops.get(alignment)
        if have is None or any(n not in have[0] for n in names):
            wanted = list(dict.fromkeys(names))
            out = np.empty((len(wanted), 160, 160, 3), dtype=np.uint8)
            progress = Progress(f"{alignment} crops", len(wanted))
            spent = 0.0
            for i, name in enumerate(wanted):
                rgb = cv2.cvtColor(cv2.imread(str(self.images / name), cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
                started = time.perf_counter()
                out[i] = align_faces(rgb, [self.faces[name]], alignment)[0]
                spent += time.perf_counter() - started
                progress.update(i + 1)
            have = ({n: i for i, n in enumerate(wanted)}, out, spent * 1000 / len(wanted))
            self._crops[alignment] = have
        index, crops, ms = have
        return crops[[index[n] for n in names]], ms


def embed_config(spec: ModelSpec, models_dir: Path | None, alignment: str, names: list[str],
                 source: CropSource) -> Embeddings:
    """Embeddings (plain and mirrored) of ``names`` for one model and alignment.

    Cached per image and face geometry, so a detector change only re-embeds the faces it moved."""
    key = _key("embeddings-v2", spec.sha256, spec.normalization, align_key(alignment))
    path = cache_dir() / "lfw" / f"embeddings_{spec.name}_{alignment}_{key}.npz"
    wanted = {name: f"{name}|{source.face_key(name)}" for name in dict.fromkeys(names)}
    rows: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    align_ms = embed_ms = 0.0
    if path.exists():
        with np.load(path) as data:
            rows = {str(n): (p, m) for n, p, m in zip(data["keys"], data["plain"], data["mirrored"])}
            align_ms, embed_ms = float(data["align_ms"]), float(data["embed_ms"])
    missing = [name for name, row in wanted.items() if row not in rows]
    if missing:
        crops, crop_ms = source.crops(alignment, missing)
        embedder = FaceEmbedder(spec, num_threads=2, models_dir=models_dir)
        embedder.embed(crops[:BATCH], flip_fusion=False)  # warm-up (interpreter creation)
        progress = Progress(f"{spec.name} {alignment}", len(missing))
        spent = 0.0
        plain, mirrored = [], []
        for start in range(0, len(missing), BATCH):
            batch = crops[start:start + BATCH]
            began = time.perf_counter()
            plain.append(embedder.embed(batch, flip_fusion=False))
            spent += time.perf_counter() - began
            mirrored.append(embedder.embed(np.ascontiguousarray(batch[:, :, ::-1]), flip_fusion=False))
            progress.update(min(start + BATCH, len(missing)))
        if len(missing) >= 1000 or not embed_ms:  # timings from a few faces are noise
            align_ms, embed_ms = crop_ms, spent * 1000 / len(missing)
        stale = {row.split("|", 1)[0] for row in rows} & set(missing)
        rows = {row: value for row, value in rows.items() if row.split("|", 1)[0] not in stale}
        rows.update(zip((wanted[n] for n in missing), zip(np.concatenate(plain), np.concatenate(mirrored))))
        everything = list(rows)
        _save(path, keys=np.array(everything), plain=np.array([rows[n][0] for n in everything]),
              mirrored=np.array([rows[n][1] for n in everything]),
              align_ms=np.float64(align_ms), embed_ms=np.float64(embed_ms))
    return Embeddings(names, np.array([rows[wanted[n]][0] for n in names]),
                      np.array([rows[wanted[n]][1] for n in names]), align_ms, embed_ms)


def time_config(spec: ModelSpec, models_dir: Path | None, alignment: str, names: list[str],
                source: CropSource) -> tuple[float, float, float]:
    """Milliseconds per face on ``names``, measured apart from the cached run (nothing else
    should run meanwhile): alignment, embedding in batches of 32, embedding one face at a time."""
    crops, align_ms = source.crops(alignment, names)
    embedder = FaceEmbedder(spec, num_threads=2, models_dir=models_dir)
    embedder.embed(crops[:BATCH], flip_fusion=False)
    embedder.embed(crops[:1], flip_fusion=False)
    began = time.perf_counter()
    for start in range(0, len(crops), BATCH):
        embedder.embed(crops[start:start + BATCH], flip_fusion=False)
    batched = (time.perf_counter() - began) * 1000 / len(crops)
    single = min(len(crops), 128)
    began = time.perf_counter()
    for i in range(single):
        embedder.embed(crops[i:i + 1], flip_fusion=False)
    return align_ms, batched, (time.perf_counter() - began) * 1000 / single


# ----------------------------------------------------------------------------- metrics


def best_threshold(scores: np.ndarray, same: np.ndarray) -> float:
    """The threshold (midpoint between sorted scores) with the highest accuracy of ``score >= t``."""
    order = np.argsort(scores)
    s, y = scores[order], same[order]
    # Accepting everything from position i on: correct = same in [i:] + different in [:i].
    different_below = np.concatenate([[0], np.cumsum(~y)])
    same_from = np.concatenate([np.cumsum(y[::-1])[::-1], [0]])
    correct = different_below + same_from
    i = int(np.argmax(correct))
    if i == 0:
        return float(s[0] - 1e-6)
    if i == len(s):
        return float(s[-1] + 1e-6)
    return float((s[i - 1] + s[i]) / 2)


def ten_fold(scores: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[float, float, list[float]]:
    """Mean and standard deviation of the per-fold accuracy, each at the threshold of the other folds."""
    accuracies, thresholds = [], []
    for fold in np.unique(folds):
        test = folds == fold
        threshold = best_threshold(scores[~test], same[~test])
        thresholds.append(threshold)
        accuracies.append(float(np.mean((scores[test] >= threshold) == same[test])))
    return float(np.mean(accuracies)), float(np.std(accuracies)), thresholds


def impostor_thresholds(vectors: np.ndarray, identities: np.ndarray, fars: list[float]) -> tuple[list[float], int]:
    """The cosines exceeded by fractions ``fars`` of all cross-identity pairs of ``vectors``, and
    the number of those pairs."""
    parts = []
    for start in range(0, len(vectors), 1024):
        block = vectors[start:start + 1024] @ vectors.T
        rows = np.arange(start, min(start + 1024, len(vectors)))
        upper = np.arange(len(vectors))[None, :] > rows[:, None]
        cross = identities[rows][:, None] != identities[None, :]
        parts.append(block[upper & cross])
    scores = np.concatenate(parts)
    keep = max(1, int(round(max(fars) * len(scores))))
    top = np.sort(np.partition(scores, len(scores) - keep)[len(scores) - keep:])[::-1]
    return [float(top[max(1, int(round(far * len(scores)))) - 1]) for far in fars], len(scores)


@dataclass
class OpenSetResult:
    rank1: float
    accepted_correct: float
    stranger_false_accepts: float
    strangers: int
    probes: int
    threshold_for_strangers: float  # threshold giving <= 0.1% stranger false accepts
    accepted_correct_there: float


def open_set(vectors: dict[str, np.ndarray], split: OpenSet, threshold: float) -> OpenSetResult:
    gallery = np.stack([vectors[n] for names in split.enrolled for n in names])
    people = len(split.enrolled)

    def best(names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        scores = (np.stack([vectors[n] for n in names]) @ gallery.T).reshape(len(names), people, 3).max(axis=2)
        return scores.argmax(axis=1), scores.max(axis=1)

    who, score = best(split.probes)
    correct = who == split.probe_identity
    _, stranger = best(split.strangers)
    strict = float(np.quantile(stranger, 0.999, method="higher")) + 1e-6
    return OpenSetResult(float(correct.mean()), float(np.mean(correct & (score >= threshold))),
                         float(np.mean(stranger >= threshold)), len(split.strangers), len(split.probes),
                         strict, float(np.mean(correct & (score >= strict))))


@dataclass
class Row:
    model: str
    precision: str
    alignment: str
    flip: bool
    accuracy: float
    accuracy_std: float
    tar: float
    threshold: float
    ms_per_face: float  # alignment + embedding (twice with flip), batches of 32
    ms_single: float | None  # the same, one face per call (--timing-faces)
    impostors: int
    open_set: OpenSetResult | None  # None where not measured (fp32 unless --fp32-open-set)
    stricter: list[tuple[float, float, float, OpenSetResult | None]]  # (FAR, threshold, TAR, open set there)


def evaluate(emb: Embeddings, flip: bool, spec: ModelSpec, alignment: str, pairs: list[Pair],
             split: OpenSet | None, pair_images: list[str],
             timing: tuple[float, float, float] | None = None) -> Row:
    vectors = dict(zip(emb.names, emb.vectors(flip)))
    first = np.stack([vectors[p.first] for p in pairs])
    second = np.stack([vectors[p.second] for p in pairs])
    scores = np.sum(first * second, axis=1)
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    mean, std, _ = ten_fold(scores, same, folds)
    identities = np.unique([person_of(n) for n in pair_images], return_inverse=True)[1]
    (threshold, *strict), impostors = impostor_thresholds(np.stack([vectors[n] for n in pair_images]), identities,
                                                           [TARGET_FAR, *STRICTER_FARS])
    tar = float(np.mean(scores[same] >= threshold))
    stricter = [(far, t, float(np.mean(scores[same] >= t)), open_set(vectors, split, t) if split else None)
                for far, t in zip(STRICTER_FARS, strict)]
    passes = 2 if flip else 1
    align_ms, batched_ms = (timing[0], timing[1]) if timing else (emb.align_ms, emb.embed_ms)
    ms = align_ms + batched_ms * passes
    single = timing[0] + timing[2] * passes if timing else None
    family = spec.name.removeprefix("facenet-").rsplit("-", 1)[0]
    return Row(family, "int8" if spec.quantization == "int8" else "fp32", alignment, flip, mean, std, tar,
               threshold, ms, single, impostors, open_set(vectors, split, threshold) if split else None, stricter)


# ----------------------------------------------------------------------------- report


def markdown(rows: list[Row], detections: Detections, fallback_used: np.ndarray, pairs: list[Pair],
             split: OpenSet, default: str) -> str:
    fallback_box, _ = detections.fallback()
    lines = [
        f"Pairs: {len(pairs)} ({sum(p.same for p in pairs)} same) in {len({p.fold for p in pairs})} folds; "
        f"impostor pairs for FAR: {rows[0].impostors:,} (all cross-identity pairs among the "
        f"{len({n for p in pairs for n in (p.first, p.second)})} images of the pairs).",
        f"Detection: {len(detections.names)} images, {int(fallback_used.sum())} without a face "
        f"(central fallback box {', '.join(f'{v:.0f}' for v in fallback_box)}), "
        f"{int(np.sum(detections.counts > 1))} with more than one (nearest the centre taken); "
        f"{detections.ms_per_image:.1f} ms per image.",
        "",
        "| embedder | precision | alignment | flip | accuracy % (mean +- std) | TAR @ FAR 1e-3 % | "
        "threshold @ FAR 1e-3 | ms / face, batch 32 | ms / face, one at a time |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        name = f"**{r.model}**" if f"facenet-{r.model}-int8" == default and r.precision == "int8" else r.model
        lines.append(f"| {name} | {r.precision} | {r.alignment} | {'yes' if r.flip else 'no'} | "
                     f"{100 * r.accuracy:.2f} +- {100 * r.accuracy_std:.2f} | {100 * r.tar:.2f} | "
                     f"{r.threshold:.3f} | {r.ms_per_face:.1f} | "
                     f"{'-' if r.ms_single is None else f'{r.ms_single:.1f}'} |")
    measured = [r for r in rows if r.open_set is not None]
    if not measured:
        return "\n".join(lines) + "\n"
    o = measured[0].open_set
    lines += [
        "",
        f"Open set: {len(split.enrolled)} people enrolled with 3 photos each, {o.probes} probes of them, "
        f"{o.strangers} strangers (people with one photo; {len(split.not_strangers)} left out, who are known "
        f"people under another name: `NOT_STRANGERS`).",
        "",
        "| embedder | precision | alignment | flip | rank-1 % | accepted correctly % @ FAR-1e-3 threshold | "
        "stranger false accepts % @ FAR-1e-3 threshold | threshold for <= 0.1% stranger false accepts | "
        "accepted correctly % there |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in measured:
        o = r.open_set
        lines.append(f"| {r.model} | {r.precision} | {r.alignment} | {'yes' if r.flip else 'no'} | "
                     f"{100 * o.rank1:.2f} | {100 * o.accepted_correct:.2f} | {100 * o.stranger_false_accepts:.2f} | "
                     f"{o.threshold_for_strangers:.3f} | {100 * o.accepted_correct_there:.2f} |")
    lines += [
        "",
        "Stricter operating points (per-pair FAR among the same impostor pairs):",
        "",
        "| embedder | precision | alignment | flip | FAR | threshold | TAR % | open set: accepted correctly % | "
        "stranger false accepts % |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in measured:
        for far, t, tar, o in r.stricter:
            lines.append(f"| {r.model} | {r.precision} | {r.alignment} | {'yes' if r.flip else 'no'} | {far:.0e} | "
                         f"{t:.3f} | {100 * tar:.2f} | {100 * o.accepted_correct:.2f} | "
                         f"{100 * o.stranger_false_accepts:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, help="evaluation data folder holding lfw/ (default: $EDGE_EVAL_DATA "
                                                  "or ../shared/data beside the repository)")
    parser.add_argument("--limit-pairs", type=int, help="use only this many pairs (balanced, from every fold)")
    parser.add_argument("--limit-people", type=int, help="open set: only this many known people (10x strangers)")
    parser.add_argument("--models", nargs="+", help="only embedders whose name contains one of these")
    parser.add_argument("--alignments", nargs="+", choices=list(ALIGNERS), default=list(ALIGNERS))
    parser.add_argument("--fp32-open-set", action="store_true",
                        help="also embed the open-set images with the fp32 models (by default fp32 gets the pairs only)")
    parser.add_argument("--timing-faces", type=int, default=0, metavar="N",
                        help="time alignment and embedding again on N faces per configuration, apart from "
                             "the (cached) run, for the ms columns; run nothing else meanwhile")
    parser.add_argument("--detect-only", action="store_true", help="only run (and cache) the detections")
    parser.add_argument("--detector-quantization", choices=("auto", "int8", "float32"), default="auto",
                        help="the MTCNN models (default: what the daemon picks on this machine; int8 is ARM's)")
    parser.add_argument("--markdown", type=Path, help="also write the tables to this file")
    parser.add_argument("--json", type=Path, help="also write the figures as JSON")
    args = parser.parse_args(argv)

    lfw = lfw_dir(args.data)
    if lfw is None:
        where = (args.data or default_data_dir()) / "lfw"
        print(f"evaluate_lfw: no LFW at {where} (needs {LFW_IMAGES}/ and pairs.txt; set --data or EDGE_EVAL_DATA)",
              file=sys.stderr)
        return 2
    images = lfw / LFW_IMAGES
    started = time.perf_counter()
    manifest = load_manifest()
    pairs = slice_pairs(read_pairs(lfw / "pairs.txt"), args.limit_pairs)
    limit_people = args.limit_people or (max(10, args.limit_pairs // 15) if args.limit_pairs else None)
    split = open_set_split(list_people(images), limit_people)
    pair_images = list(dict.fromkeys(n for p in pairs for n in (p.first, p.second)))
    open_images = [n for names in split.enrolled for n in names] + split.probes + split.strangers
    names = list(dict.fromkeys(pair_images + open_images))
    print(f"LFW at {lfw}: {len(pairs)} pairs, {len(split.enrolled)} known people, {len(split.strangers)} strangers, "
          f"{len(names)} images", file=sys.stderr)

    detections = detect_all(names, images, manifest, args.detector_quantization)
    faces, fallback_used = detections.faces()
    if args.detect_only:
        print(f"{int(fallback_used.sum())} of {len(names)} images without a face; "
              f"{detections.ms_per_image:.1f} ms per image", file=sys.stderr)
        return 0
    source = CropSource(images, names, faces)
    rows = []
    for spec, models_dir in sorted(candidates(manifest, cache_dir() / "export", args.models),
                                   key=lambda c: c[0].quantization != "int8"):
        full = spec.quantization == "int8" or args.fp32_open_set
        for alignment in args.alignments:
            emb = embed_config(spec, models_dir, alignment, names if full else pair_images, source)
            timing = None
            if args.timing_faces:
                timing = time_config(spec, models_dir, alignment, pair_images[:args.timing_faces], source)
            for flip in (False, True):
                rows.append(evaluate(emb, flip, spec, alignment, pairs, split if full else None, pair_images, timing))
    rows.sort(key=lambda r: (r.model, r.precision != "int8", r.alignment, r.flip))
    table = markdown(rows, detections, fallback_used, pairs, split, manifest.default_embedder)
    print(table)
    if args.markdown:
        args.markdown.write_text(table)
    if args.json:
        args.json.write_text(json.dumps([dataclasses.asdict(r) for r in rows], indent=1))
    print(f"done in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
