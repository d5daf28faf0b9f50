"""What edge-demo tells a newcomer: the photos enrollment left out, grouped by reason and named
so a person can read them; what the scores mean and why someone shown was not named; the summary.
"""
from __future__ import annotations

import os
import textwrap
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..enroll.report import SKIP_WORDS, skipped_by_reason
from ..enroll.selection import PersonOutcome, PhotoOutcome
from ..events import Event
from ..recognition.gallery import Gallery

LEFT_OUT_FILE = "left-out.txt"  # in the demo's cache folder: every photo enrollment left out, with why
REASON_NOTES = {"duplicate": " (copies of another photo)",
                "inconsistent": " (unlike the person's other photos: perhaps someone else's)"}
WIDTH = 100  # columns of the explanation


def display_name(folder_name: str) -> str:
    """``ben_afflek`` -> ``Ben Afflek``."""
    return folder_name.replace("_", " ").title()


def photo_label(person: str, number: int) -> str:
    """A sample photo as a person reads it, ``Madonna #4`` (the 4th of her photos in name order, as
    edge-enroll's report.json and contact sheets number them), rather than its file name: the sample
    photos are named after the mangled URLs they were downloaded from."""
    return f"{person} #{number}"


def _labels(photos: list[tuple[PersonOutcome, int, PhotoOutcome]]) -> str:
    """``Ben Afflek #3; Mindy Kaling #5, #9``: the photos of a reason, person by person."""
    numbers: dict[str, list[int]] = {}
    for person, number, _ in photos:
        numbers.setdefault(display_name(person.name), []).append(number)
    return "; ".join(photo_label(name, found[0]) + "".join(f", #{n}" for n in found[1:])
                     for name, found in numbers.items())


def write_atomically(path: Path, text: str) -> None:
    """``text`` to ``path`` through a temporary file and a rename, so that a demo running beside another
    (the cache folder is shared) never reads a half-written file."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


def left_out_listing(people: list[PersonOutcome]) -> str:
    """The text of the left-out file: every photo left out, by reason, with its file and why."""
    by_reason = skipped_by_reason(people)
    lines = [f"edge-demo: the {sum(map(len, by_reason.values()))} of {sum(len(p.photos) for p in people)} train "
             f"photos left out when enrolling, by reason. #N: the person's N-th photo in name order (as edge-enroll's "
             f"report.json and contact sheets number them)."]
    if people:
        lines.append(f"The files are in {people[0].folder.path.parent}/.")
    for code, photos in by_reason.items():
        lines += ["", f"{SKIP_WORDS[code]} ({len(photos)})"]
        lines += [f"  {photo_label(display_name(person.name), number)}: {photo.reason}\n    {photo.relative}"
                  for person, number, photo in photos]
    return "\n".join(lines) + "\n"


def report_enrollment(people: list[PersonOutcome], listing: Path) -> None:
    """Step 1 on stdout: who was enrolled from how many photos, the photos left out grouped by reason
    (all of them, with why, in ``listing``)."""
    total, used = sum(len(p.photos) for p in people), sum(len(p.accepted) for p in people)
    print(f"1. Enrolled {sum(bool(p.accepted) for p in people)} people from {used} of their {total} train photos, "
          f"as edge-enroll does:")
    print("   " + ", ".join(f"{display_name(p.name)} {len(p.accepted)} of {len(p.photos)}" for p in people))
    by_reason = skipped_by_reason(people)
    write_atomically(listing, left_out_listing(people))
    if not by_reason:
        return
    print(f"   {total - used} left out, by reason (each photo, its file and why: {listing}):")
    width = max(len(SKIP_WORDS[code]) for code in by_reason)
    for code, photos in by_reason.items():
        print(f"     {SKIP_WORDS[code]:{width}s} {len(photos):3d}  {_labels(photos)}{REASON_NOTES.get(code, '')}")


@dataclass(frozen=True)
class ShotMatch:
    """One photo of the clip matched on its own, as the clip shows it: how close to whom."""

    who: str  # the person shown (display name), or "stranger"
    own_score: float | None  # score against the person's own enrolled photos; None: not enrolled, or no face
    closest: str | None  # the enrolled person it is closest to; None: no face found
    score: float | None  # the score against them


def _alike(person: PersonOutcome) -> float:
    """Median over the person's enrolled photos of each one's median cosine to the others."""
    values = [p.consistency for p in person.accepted if p.consistency is not None]
    return float(np.median(values)) if values else float("nan")


def paragraph(text: str, indent: str = "   ", hanging: str = "   ") -> str:
    """``text`` wrapped to the demo's width, its first line indented by ``indent``, the others by ``hanging``."""
    return textwrap.fill(text, WIDTH, initial_indent=indent, subsequent_indent=hanging)


def explain(matches: list[ShotMatch], people: list[PersonOutcome], gallery: Gallery, named: set[str],
            pair_threshold: float, threshold: float, stranger_far: float) -> list[str]:
    """Step 3, as paragraphs: what a score is, what 0.5 stands for here, why each person shown who is not
    in ``named`` (by the daemon's events) was not named, and how the stranger fared."""
    photos = sum(len(p.embeddings) for p in gallery.people)
    said = [f"A score says how alike a face is to the closest enrolled person, from 0 to 1, and the daemon names "
            f"the person at 0.5 or more. 0.5 stands for this gallery's threshold, cosine similarity {threshold:.3f}: "
            f"the model's {pair_threshold:.3f} for one pair of photos, raised because a stranger is compared with "
            f"all {photos} enrolled photos and should still be taken for someone enrolled at most once in "
            f"{1 / stranger_far:.0f} faces (recognition.stranger_far). Below 0.5 the daemon says \"unknown\" "
            f"rather than risk a wrong name."]
    alike = {display_name(p.name): _alike(p) for p in people if p.accepted}
    outcomes = {display_name(p.name): p for p in people}
    for match in matches:
        if match.who == "stranger":
            said.append("The stranger: no face found in the photo as the clip shows it." if match.score is None else
                        f"The stranger (never enrolled) scores {match.score:.2f} at best (closest: {match.closest}): "
                        + ("reported unknown, as it should be." if match.score < 0.5
                           else "taken for an enrolled person, a false accept."))
        elif match.who in named:
            continue
        elif match.closest is None:
            said.append(f"{match.who} was not named: no face is found in the held-out photo as the clip shows it.")
        else:
            said.append(_why_not_named(match, outcomes[match.who], alike))
    return said


def _why_not_named(match: ShotMatch, person: PersonOutcome, alike: dict[str, float]) -> str:
    """Why ``match.who`` was not named, from the scores and how alike each person's photos are."""
    who = match.who
    enrolled = f"the {len(person.accepted)} enrolled photos of {who}"
    said = (f"{who} was not named: {who}'s held-out photo scores {match.own_score:.2f} against {enrolled}, under "
            f"0.5." if match.closest == who or match.own_score is None else
            f"{who} was not named: {who}'s held-out photo is closest to {match.closest} ({match.score:.2f}) and "
            f"scores {match.own_score:.2f} against {enrolled}.")
    others = [value for name, value in alike.items() if name != who]
    mismatched = sum(photo.code == "inconsistent" for photo in person.photos)
    if others and alike[who] < min(others):
        said += (f" {who}'s photos are the least alike of the {len(alike)} people (median cosine {alike[who]:.2f} "
                 f"between them, {min(others):.2f} to {max(others):.2f} for the others)"
                 + (f", and {mismatched} more were left out as unlike the rest" if mismatched else "")
                 + ": to the model they look like several people.")
    return said + (" With your own photos: enroll several recent, sharp photos of each person, facing the camera "
                   "as the door camera will see them.")


def liveness_line(events: list[Event]) -> str | None:
    """How many recognitions the liveness check judged not live, and what that means for a clip of
    photos; None when liveness is off."""
    judged = [e for e in events if e.kind == "recognized" and e.liveness is not None]
    if not judged:
        return None
    fooled = sum(e.liveness.live for e in judged)
    return (f"Liveness: {len(judged) - fooled} of {len(judged)} recognitions judged NOT LIVE, "
            + ("rightly: the clip shows photos, and a photo held to a door camera must not open the door"
               if not fooled else f"{fooled} judged live although the clip shows photos") + " (docs/liveness.md).")


def _and(items: list[str]) -> str:
    """``a, b and c``."""
    return f"{', '.join(items[:-1])} and {items[-1]}" if len(items) > 1 else "".join(items)


def summary(truth: list[str], matches: list[ShotMatch], events: list[Event], status: dict) -> list[str]:
    """The summary's sentences: who was named, wrong names, unknown faces; liveness (when on); the
    daemon's speed and memory."""
    shown = [who for who in truth if who != "stranger"]
    named = {e.name for e in events if e.kind == "recognized"}
    wrong = sum(e.kind == "recognized" and e.name not in shown for e in events)
    unknown = sum(e.kind == "unknown" for e in events)
    missed = [who for who in shown if who not in named]
    scores = {m.who: m.own_score for m in matches}
    expected = [f"{who} ({scores[who]:.2f}, under 0.5)" if scores.get(who) is not None else who for who in missed]
    expected += ["the stranger"] if "stranger" in truth else []
    which = f": {_and(expected)}" if expected and len(expected) == unknown else ""  # who they were, when it adds up
    unknown_faces = f"{unknown} unknown face{'s' if unknown != 1 else ''}{which}"
    frames, latency = status.get("frames", {}), status.get("latency", {}).get("total", {})
    liveness = liveness_line(events)
    return [f"{len(shown) - len(missed)} of {len(shown)} enrolled people named, "
            f"{'none wrongly' if not wrong else f'{wrong} wrong name' + ('s' if wrong > 1 else '')}; {unknown_faces}.",
            *([liveness] if liveness else []),
            f"The daemon: {frames.get('processed', 0)} frames at {status.get('fps', 0)} fps, "
            f"{latency.get('median_ms', 0)} ms a frame (median), {status.get('rss_mb', 0)} MiB."]


def summary_block(sentences: list[str]) -> str:
    """The summary as printed last: ``Summary:`` and each sentence on its own lines, wrapped."""
    hanging = " " * len("Summary: ")
    return "\n".join(paragraph(sentence, "Summary: " if number == 0 else hanging, hanging)
                     for number, sentence in enumerate(sentences))
