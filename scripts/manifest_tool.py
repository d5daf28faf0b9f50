"""Write entries of ``models/manifest.json`` (development tooling, used by the exporters and
by the LFW calibration, ``scripts/evaluate_lfw.py``; figures in docs/recognition.md).

    python scripts/manifest_tool.py --default-embedder facenet-vggface2-int8
    python scripts/manifest_tool.py --match-threshold facenet-vggface2-int8=0.52 \\
        --alignment facenet-vggface2-int8=landmarks --flip-fusion facenet-vggface2-int8=no
"""
from __future__ import annotations

import json
from pathlib import Path

from artifacts import sha256_of

MODELS_DIR = Path(__file__).resolve().parent.parent / "models"
MANIFEST = MODELS_DIR / "manifest.json"
ALIGNMENTS = ("margin", "landmarks")  # edge.runtime.model_files.ALIGNMENTS


def _read() -> dict:
    return json.loads(MANIFEST.read_text())


def _write(manifest: dict) -> None:
    MANIFEST.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")


def _embedder_entry(manifest: dict, name: str) -> dict:
    entry = manifest["models"].get(name)
    if entry is None:
        raise SystemExit(f"{MANIFEST}: no model named {name!r}")
    if entry.get("kind") != "embedder":
        raise SystemExit(f"{MANIFEST}: model {name!r} is a {entry.get('kind')}, not an embedder")
    return entry


CALIBRATION_KEYS = ("match_threshold", "impostor_tail", "alignment", "flip_fusion", "box_mapping")


def update_models(entries: dict[str, dict]) -> None:
    """Merge ``entries`` (name -> description) into the manifest, filling in each file's sha256.

    Calibration keys already recorded for a model (CALIBRATION_KEYS) are
    kept unless ``entries`` gives them: re-exporting does not silently drop them (rerun the LFW
    calibration, or scripts/evaluate_liveness.py for box_mapping, when the weights changed)."""
    manifest = _read() if MANIFEST.exists() else {"format_version": 1, "models": {}}
    for name, entry in entries.items():
        entry = dict(entry)
        entry["sha256"] = sha256_of(MODELS_DIR / entry["file"])
        entry["size_bytes"] = (MODELS_DIR / entry["file"]).stat().st_size
        previous = manifest["models"].get(name, {})
        for key in CALIBRATION_KEYS:
            if key in previous and key not in entry:
                entry[key] = previous[key]
        manifest["models"][name] = entry
    manifest["models"] = dict(sorted(manifest["models"].items()))
    _write(manifest)


def set_default_embedder(name: str) -> None:
    """Record ``name`` as the embedder the package uses unless told otherwise."""
    manifest = _read()
    _embedder_entry(manifest, name)
    manifest["defaults"] = {"embedder": name}
    _write(manifest)


def set_match_threshold(name: str, value: float) -> None:
    """Record the cosine similarity at which embedder ``name`` accepts a match (FAR 1e-3 on LFW)."""
    if not -1.0 <= value <= 1.0:
        raise SystemExit(f"match threshold {value} is not a cosine similarity in [-1, 1]")
    manifest = _read()
    _embedder_entry(manifest, name)["match_threshold"] = round(float(value), 4)
    _write(manifest)


def set_impostor_tail(name: str, tail: list) -> None:
    """Record embedder ``name``'s impostor tail: [[far, cosine], ...] on LFW cross-identity pairs
    (``scripts/evaluate_open_set.py --tail-only``); edge.recognition.matcher derives gallery-size thresholds from it."""
    try:
        points = sorted(((float(far), round(float(cosine), 4)) for far, cosine in tail), reverse=True)
    except (TypeError, ValueError):
        raise SystemExit("impostor tail must be a JSON list of [far, cosine] pairs") from None
    if len(points) < 2 or any(not 0 < far < 1 or not -1 <= cosine <= 1 for far, cosine in points):
        raise SystemExit("impostor tail needs at least two [far, cosine] pairs with 0 < far < 1")
    if any(later[1] < earlier[1] for earlier, later in zip(points, points[1:])):
        raise SystemExit("impostor tail: the cosine must rise as the false-accept rate falls")
    manifest = _read()
    _embedder_entry(manifest, name)["impostor_tail"] = [list(point) for point in points]
    _write(manifest)


def set_alignment(name: str, alignment: str) -> None:
    """Record the face preparation (edge.vision.align.ALIGNERS) embedder ``name`` is used with."""
    if alignment not in ALIGNMENTS:
        raise SystemExit(f"alignment {alignment!r} is not one of {', '.join(ALIGNMENTS)}")
    manifest = _read()
    _embedder_entry(manifest, name)["alignment"] = alignment
    _write(manifest)


def set_flip_fusion(name: str, enabled: bool) -> None:
    """Record whether embedder ``name`` fuses each face's embedding with its mirror image's."""
    manifest = _read()
    _embedder_entry(manifest, name)["flip_fusion"] = bool(enabled)
    _write(manifest)


def _assignment(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise SystemExit(f"expected NAME=VALUE, got {text!r}")
    return name, value


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("yes", "true", "1", "on"):
        return True
    if lowered in ("no", "false", "0", "off"):
        return False
    raise SystemExit(f"expected yes or no, got {text!r}")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(description="Edit models/manifest.json")
    parser.add_argument("--default-embedder", help="model name to make the default embedder")
    parser.add_argument("--match-threshold", action="append", default=[], metavar="NAME=VALUE",
                        help="cosine similarity at FAR 1e-3 on LFW for an embedder (repeatable)")
    parser.add_argument("--impostor-tail", action="append", default=[], metavar="NAME=FILE",
                        help="JSON file of [[far, cosine], ...] for an embedder (evaluate_open_set.py --tail-only)")
    parser.add_argument("--alignment", action="append", default=[], metavar="NAME=METHOD",
                        help=f"face preparation of an embedder: {' or '.join(ALIGNMENTS)} (repeatable)")
    parser.add_argument("--flip-fusion", action="append", default=[], metavar="NAME=yes|no",
                        help="fuse the mirror image's embedding for an embedder (repeatable)")
    args = parser.parse_args(argv)
    if not (args.default_embedder or args.match_threshold or args.impostor_tail or args.alignment or args.flip_fusion):
        parser.error("nothing to do")
    for text in args.match_threshold:
        name, value = _assignment(text)
        try:
            threshold = float(value)
        except ValueError:
            raise SystemExit(f"match threshold {value!r} is not a number") from None
        set_match_threshold(name, threshold)
    for text in args.impostor_tail:
        name, file = _assignment(text)
        try:
            tail = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise SystemExit(f"{file}: cannot read the impostor tail ({error})") from None
        set_impostor_tail(name, tail)
    for text in args.alignment:
        set_alignment(*_assignment(text))
    for text in args.flip_fusion:
        name, value = _assignment(text)
        set_flip_fusion(name, _boolean(value))
    if args.default_embedder:
        set_default_embedder(args.default_embedder)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
