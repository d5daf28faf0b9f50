"""What edge-enroll tells a person: a progress bar, a summary table, contact sheets and a JSON report.

Contact sheets and the JSON report describe biometric data: they are written owner-only
(folder 0700, files 0600).
"""
from __future__ import annotations

import json
import os
import sys
import unicodedata
from dataclasses import asdict
from pathlib import Path
from typing import Any, TextIO

import cv2
import numpy as np

from ..config import slug
from ..untrusted import printable
from .selection import SKIP_CODES, PersonOutcome, PhotoOutcome

REPORT_FORMAT = "edge-enroll-report"
REPORT_VERSION = 1
TILE = 160
COLUMNS = 6
_GREEN, _RED, _WHITE = (60, 170, 60), (40, 40, 220), (255, 255, 255)
SKIP_WORDS = {"unreadable": "unreadable", "too_large": "too large", "no_face": "no face",
              "several_faces": "several faces", "too_small": "face too small", "blurred": "blurred",
              "turned_away": "turned away", "duplicate": "duplicate", "inconsistent": "not matching"}
assert tuple(SKIP_WORDS) == SKIP_CODES
LISTED_PER_REASON = 5  # the summary names this many photos for each reason; report.json has every one


class Progress:
    """A one-line progress bar on ``stream``, drawn only when it is a terminal."""

    def __init__(self, total: int, stream: TextIO = sys.stderr, width: int = 30) -> None:
        self.total, self.stream, self.width = max(total, 1), stream, width
        self.done = 0
        self.enabled = stream.isatty()

    def step(self, label: str) -> None:
        """One more photo done; ``label`` names it."""
        self.done += 1
        if not self.enabled:
            return
        filled = self.width * self.done // self.total
        bar = "#" * filled + "." * (self.width - filled)
        self.stream.write(f"\r[{bar}] {self.done}/{self.total} {printable(label)[:40]:40s}")
        self.stream.flush()

    def close(self) -> None:
        """End the bar's line."""
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def skipped_counts(person: PersonOutcome) -> dict[str, int]:
    """Skip code -> number of the person's photos skipped for it, in SKIP_CODES order."""
    counts = {code: 0 for code in SKIP_CODES}
    for photo in person.photos:
        if photo.code is not None:
            counts[photo.code] += 1
    return {code: n for code, n in counts.items() if n}


def skipped_by_reason(people: list[PersonOutcome]) -> dict[str, list[tuple[PersonOutcome, int, PhotoOutcome]]]:
    """The photos left out, by skip code in SKIP_CODES order: (person, the photo's number among the
    person's photos as report.json and the contact sheets number it, from 1, the photo)."""
    found: dict[str, list[tuple[PersonOutcome, int, PhotoOutcome]]] = {code: [] for code in SKIP_CODES}
    for person in people:
        for number, photo in enumerate(person.photos, 1):
            if photo.code is not None:
                found[photo.code].append((person, number, photo))
    return {code: photos for code, photos in found.items() if photos}


def listed(lines: list[str], most: int = LISTED_PER_REASON) -> list[str]:
    """``lines`` when there are at most ``most``; else the first ``most`` and how many more."""
    return lines if len(lines) <= most else lines[:most] + [f"  ... and {len(lines) - most} more"]


def summary_table(people: list[PersonOutcome]) -> str:
    """The per-person table: photos, accepted, skipped by reason; then the skipped files, a line per
    reason with a few of them (each is in report.json, so 500 copies of a photo stay a few lines)."""
    width = max([len(printable(p.name)) for p in people] + [6])
    lines = [f"{'person':{width}s}  photos  accepted  skipped"]
    for person in people:
        skipped = ", ".join(f"{n} {SKIP_WORDS[code]}" for code, n in skipped_counts(person).items()) or "-"
        lines.append(f"{printable(person.name):{width}s}  {len(person.photos):6d}  {len(person.accepted):8d}  {skipped}")
    by_reason = skipped_by_reason(people)
    if by_reason:
        lines += ["", "skipped photos, by reason (report.json lists each):"]
    for code, photos in by_reason.items():
        lines.append(f"{SKIP_WORDS[code]}: {len(photos)} photo{'s' if len(photos) > 1 else ''}")
        lines += listed([f"  {printable(photo.relative)}: {printable(photo.reason or '')}" for _, _, photo in photos])
    return "\n".join(lines)


def ascii_name(name: str) -> str:
    """``name`` in ASCII for drawing with OpenCV's fonts (diacritics dropped, đ -> d)."""
    name = name.replace("đ", "d").replace("Đ", "D")
    return unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode() or "?"


def contact_sheet(person: PersonOutcome) -> np.ndarray | None:
    """BGR image of the person's aligned faces: accepted in green, left out (with a face) in red,
    each numbered as in the JSON report; None when no face was found at all."""
    shown = [p for p in person.photos if p.crop is not None and p.code not in ("duplicate",)]
    shown = [p for p in shown if p.accepted] + [p for p in shown if not p.accepted]
    if not shown:
        return None
    label_h, title_h, pad = 22, 34, 6
    rows = (len(shown) + COLUMNS - 1) // COLUMNS
    columns = min(len(shown), COLUMNS)
    sheet = np.full((title_h + rows * (TILE + label_h + pad) + pad, pad + columns * (TILE + pad), 3), 32, np.uint8)
    title = f"{ascii_name(person.name)}: {len(person.accepted)} accepted (green), {len(shown) - len(person.accepted)} left out (red)"
    cv2.putText(sheet, title[:80], (pad, 23), cv2.FONT_HERSHEY_SIMPLEX, 0.5, _WHITE, 1, cv2.LINE_AA)
    for index, photo in enumerate(shown):
        x = pad + (index % COLUMNS) * (TILE + pad)
        y = title_h + (index // COLUMNS) * (TILE + label_h + pad)
        tile = cv2.resize(cv2.cvtColor(photo.crop, cv2.COLOR_RGB2BGR), (TILE, TILE), interpolation=cv2.INTER_AREA)
        sheet[y:y + TILE, x:x + TILE] = tile
        colour = _GREEN if photo.accepted else _RED
        cv2.rectangle(sheet, (x, y), (x + TILE - 1, y + TILE - 1), colour, 3)
        number = person.photos.index(photo) + 1
        label = f"{number} ok" if photo.accepted else f"{number} {SKIP_WORDS[photo.code]}"
        cv2.putText(sheet, label, (x + 2, y + TILE + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, colour, 1, cv2.LINE_AA)
    return sheet


def private_folder(path: Path) -> Path:
    """Create ``path`` owner-only, and its folder too when that is new (the gallery's state folder); return it."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.mkdir(exist_ok=True, mode=0o700)
    os.chmod(path, 0o700)
    return path


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` with mode 0600 (created so, never world-readable in between)."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as stream:
        stream.write(data)
    os.chmod(path, 0o600)


def sheet_file_name(index: int, name: str) -> str:
    """File name of a person's contact sheet: their position and a file-system-safe slug."""
    return f"{index:02d}-{slug(ascii_name(name))}.png"


def write_contact_sheets(people: list[PersonOutcome], folder: Path) -> dict[str, str]:
    """One PNG per person with faces into ``folder``; person name -> file name."""
    written = {}
    for index, person in enumerate(people, 1):
        sheet = contact_sheet(person)
        if sheet is None:
            continue
        name = sheet_file_name(index, person.name)
        ok, data = cv2.imencode(".png", sheet)
        if ok:
            write_private(folder / name, data.tobytes())
            written[person.name] = name
    return written


def _photo_entry(number: int, photo: PhotoOutcome) -> dict[str, Any]:
    entry: dict[str, Any] = {"number": number, "file": photo.relative,
                             "status": "accepted" if photo.accepted else "skipped"}
    if not photo.accepted:
        entry.update(code=photo.code, reason=photo.reason)
    if photo.sha256:
        entry["sha256"] = photo.sha256
    if photo.face is not None:
        entry["face"] = {"box": [round(v, 1) for v in photo.face.box], "score": round(photo.face.score, 4)}
    if photo.quality is not None:
        entry["quality"] = {key: round(value, 3) for key, value in asdict(photo.quality).items()}
    if photo.consistency is not None:
        entry["consistency"] = round(photo.consistency, 4)
    entry["seconds"] = round(photo.seconds, 4)
    return entry


def report_dict(people: list[PersonOutcome], ids: dict[str, str], sheets: dict[str, str],
                same_people: dict[str, list[str]], ignored: list[tuple[str, str]], run: dict[str, Any]) -> dict[str, Any]:
    """The machine-readable report (documented in docs/enroll.md)."""
    photos = [photo for person in people for photo in person.photos]
    return {
        "format": REPORT_FORMAT,
        "version": REPORT_VERSION,
        **run,
        "photos": len(photos),
        "accepted": sum(photo.accepted for photo in photos),
        "seconds_per_photo": round(sum(p.seconds for p in photos) / len(photos), 4) if photos else None,
        "people": [{
            "name": person.name,
            "folder": person.folder.path.name,
            "id": ids.get(person.name),
            "accepted": len(person.accepted),
            "skipped": skipped_counts(person),
            "warnings": person.warnings,
            "likely_same_as": same_people.get(person.name, []),
            "contact_sheet": sheets.get(person.name),
            "photos": [_photo_entry(number, photo) for number, photo in enumerate(person.photos, 1)],
            "not_photos": [{"path": str(path.relative_to(person.folder.path.parent)), "reason": why}
                           for path, why in person.folder.ignored],
        } for person in people],
        "ignored": [{"path": path, "reason": why} for path, why in ignored],
    }


def write_report(report: dict[str, Any], path: Path) -> None:
    """The JSON report to ``path``, owner-only."""
    write_private(path, json.dumps(report, ensure_ascii=False, indent=2).encode("utf-8"))


def export_aligned(people: list[PersonOutcome], folder: Path) -> int:
    """Write accepted photos' margin crops as folder/<person folder>/<photo stem>.png; how many."""
    written = 0
    for person in people:
        target = private_folder(folder / person.folder.path.name)
        used: set[str] = set()
        for photo in person.accepted:
            stem = Path(photo.relative).stem
            name, n = f"{stem}.png", 1
            while name in used:
                n += 1
                name = f"{stem}_{n}.png"
            used.add(name)
            ok, data = cv2.imencode(".png", cv2.cvtColor(photo.export_crop, cv2.COLOR_RGB2BGR))
            if ok:
                write_private(target / name, data.tobytes())
                written += 1
    return written
