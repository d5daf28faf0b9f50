"""edge-enroll: enroll people from a folder (or USB stick) of photos, one folder per person.

SOURCE/<person name>/*.jpg|jpeg|png|bmp|webp (any letter case; photos in subfolders of a
person's folder count for that person; symbolic links are not followed). Each photo is turned
upright (EXIF), its one dominant face is found, checked (size, sharpness, pose), aligned and
embedded exactly as the daemon does; photos that cannot be used are reported with the reason.
A photo that does not match the person's other photos is left out; a person who looks like
someone already enrolled is reported. The gallery is replaced atomically, and only at the end.

examples:
  edge-enroll /media/usb/FACES --dry-run          # check the photos, change nothing
  edge-enroll /media/usb/FACES --notify-daemon    # enroll, then make the daemon reload
  edge-enroll --list
  edge-enroll --remove "Nguyễn Văn An" --notify-daemon

exit status:
  0  every person folder has at least one accepted photo (and the gallery was written, unless --dry-run)
  1  some person ended with no accepted photo; the others were enrolled
  2  usage error (one line on stderr)
  3  nothing could be enrolled; the gallery was left as it was
  4  an error (configuration, gallery, model, writing files); the gallery was left as it was
  130 interrupted (Ctrl-C, SIGTERM); the gallery was left as it was

See docs/enroll.md for the report format, the quality thresholds and the USB-stick setup.
"""
from __future__ import annotations

import argparse
import contextlib
import dataclasses
import signal
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn

from ..config import Config, default_config_path, load_config_or_defaults
from ..enroll.daemon_notify import DEFAULT_UNIT, NotifyError, notify_daemon
from ..enroll.photos import scan_source
from ..enroll.report import (Progress, export_aligned, listed, private_folder, report_dict, summary_table,
                             write_contact_sheets, write_report)
from ..enroll.session import apply_to_gallery, gallery_lock, make_enroller, previous_gallery
from ..enroll.selection import EnrollmentSettings, PersonOutcome, likely_same_people
from ..errors import EdgeError
from ..recognition import gallery as gallery_file
from ..recognition.gallery import Gallery
from ..untrusted import printable

EXIT_OK, EXIT_PERSON_EMPTY, EXIT_USAGE, EXIT_NOTHING, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 3, 4, 130


class UsageError(Exception):
    """A mistake in the command line; printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command line of edge-enroll."""
    parser = _Parser(prog="edge-enroll", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", type=Path, metavar="SOURCE", help="folder with one folder of photos per person")
    what = parser.add_argument_group("instead of enrolling")
    what.add_argument("--list", action="store_true", help="list the enrolled people and exit")
    what.add_argument("--remove", metavar="NAME_OR_ID",
                      help="remove one enrolled person, by id or by name (in any letter case, as edge-actions matches)")
    where = parser.add_argument_group("gallery")
    where.add_argument("--config", type=Path,
                       help=f"the daemon's configuration, for the gallery path, embedder and quality thresholds "
                            f"(default {default_config_path()}; built-in defaults when that file does not exist)")
    where.add_argument("--gallery", type=Path, help="gallery file (default: recognition.gallery of the configuration)")
    where.add_argument("--replace", action="store_true",
                       help="the gallery becomes exactly the people in SOURCE (default: merge: people in SOURCE are "
                            "enrolled afresh from these photos, keeping their ids; everyone else stays)")
    where.add_argument("--dry-run", action="store_true", help="check and report, but do not change the gallery")
    checks = parser.add_argument_group("photo checks")
    checks.add_argument("--min-face", type=int, metavar="PX",
                        help="smallest face height accepted, pixels (default: quality.min_face_px of the configuration)")
    output = parser.add_argument_group("output")
    output.add_argument("--report-dir", type=Path,
                        help="folder for report.json and one contact sheet per person (default: enroll-report/ beside "
                             "the gallery; written owner-only: these are biometric data)")
    output.add_argument("--export-aligned", type=Path, metavar="DIR",
                        help="also write each accepted face as DIR/<person>/<photo>.png, cropped like the tutorial's "
                             "processed folder (box + margin, square)")
    output.add_argument("--export-size", type=int, default=160, metavar="PX", help="side of exported crops (default 160)")
    output.add_argument("--export-margin", type=int, default=32, metavar="PX", help="margin of exported crops (default 32)")
    daemon = parser.add_argument_group("daemon")
    daemon.add_argument("--notify-daemon", action="store_true",
                        help=f"after changing the gallery, send SIGHUP to the daemon so it reloads it (its main process "
                             f"from --daemon-pidfile, else from systemd's unit {DEFAULT_UNIT})")
    daemon.add_argument("--daemon-pidfile", type=Path, metavar="FILE", help="pidfile of the daemon to signal")
    daemon.add_argument("--daemon-unit", default=DEFAULT_UNIT, metavar="UNIT", help=f"systemd unit of the daemon (default {DEFAULT_UNIT})")
    return parser


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Parsed and cross-checked options, or UsageError."""
    args = build_parser().parse_args(argv)
    chosen = [name for name, given in (("SOURCE", args.source is not None), ("--list", args.list),
                                       ("--remove", args.remove is not None)) if given]
    if len(chosen) != 1:
        raise UsageError("give a SOURCE folder to enroll, or --list, or --remove NAME" if not chosen
                         else f"{' and '.join(chosen)} cannot be combined")
    if args.source is not None and not args.source.is_dir():
        raise UsageError(f"{args.source}: not a folder")
    if args.min_face is not None and args.min_face < 12:
        raise UsageError(f"--min-face must be at least 12 pixels, got {args.min_face}")
    if args.export_size < 16 or not 0 <= args.export_margin < args.export_size:
        raise UsageError("--export-size must be at least 16 and --export-margin between 0 and the size")
    return args


def list_people(path: Path) -> int:
    """Print the enrolled people."""
    if not path.exists():
        print(f"no one enrolled: no gallery at {path}")
        return EXIT_OK
    gallery = gallery_file.load(path)
    print(f"{path}: {len(gallery.people)} people, embedder {gallery.embedder.model}")
    width = max([len(printable(p.name)) for p in gallery.people] + [4])
    for person in gallery.people:
        print(f"  {printable(person.name):{width}s}  {person.id}  {len(person.embeddings):3d} photos  "
              f"enrolled {printable(person.enrolled)}")
    return EXIT_OK


def remove_person(args: argparse.Namespace, path: Path) -> int:
    """Remove one person and save (unless --dry-run)."""
    with gallery_lock(path) if not args.dry_run else contextlib.nullcontext():
        gallery = gallery_file.load(path)
        person = gallery.remove(args.remove)
        if args.dry_run:
            print(f"would remove {printable(person.name)} ({person.id}); --dry-run: gallery unchanged")
            return EXIT_OK
        gallery_file.save(gallery, path, allow_empty=True)
    print(f"removed {printable(person.name)} ({person.id}) from {path}")
    if args.notify_daemon:
        tell_daemon(args)
    return EXIT_OK


def tell_daemon(args: argparse.Namespace) -> None:
    """SIGHUP to the daemon; a failure is a warning (the gallery is already written), not an error."""
    try:
        print(notify_daemon(args.daemon_pidfile, args.daemon_unit))
    except NotifyError as error:
        print(f"edge-enroll: warning: the daemon was not told to reload ({error}); "
              "run: systemctl reload edge-facerec", file=sys.stderr)


@dataclass
class EnrollRun:
    """What one enrollment run decided, for the report and the summary."""

    people: list[PersonOutcome]
    ignored: list[tuple[Path, str]]
    settings: EnrollmentSettings
    embedder: str
    ids: dict[str, str] = field(default_factory=dict)
    same_people: dict[str, list[str]] = field(default_factory=dict)
    status: int = EXIT_OK
    written: bool = False
    gallery_size: int = 0


def enroll(args: argparse.Namespace, config: Config, path: Path) -> int:
    """The main job: process SOURCE, write the report, then the gallery when anything was accepted."""
    started = time.perf_counter()
    quality = (config.quality if args.min_face is None
               else dataclasses.replace(config.quality, min_face_px=args.min_face))
    people_folders, ignored = scan_source(args.source)
    enroller = make_enroller(config, quality, (args.export_size, args.export_margin) if args.export_aligned else None)
    encoder, settings = enroller.encoder, enroller.settings
    with gallery_lock(path) if not args.dry_run else contextlib.nullcontext():
        existing = previous_gallery(path, encoder.identity, args.replace)
        progress = Progress(sum(len(p.photos) for p in people_folders))
        seen: dict[str, str] = {}
        people = [enroller.person(folder, args.source, seen, lambda photo: progress.step(photo.relative))
                  for folder in people_folders]
        progress.close()
        run = EnrollRun(people, ignored, settings, encoder.identity.model)
        accepted_names = {p.name for p in people if p.accepted}
        # merge: everyone else stays (also a person whose folder gave nothing keeps their old photos);
        # replace: only the people enrolled now. Both keep the ids people had under the same name.
        others = [] if args.replace else [p for p in existing.people if p.name not in accepted_names]
        reused = [p for p in existing.people if p.name in accepted_names]
        run.same_people = likely_same_people(people, Gallery(encoder.identity, others),
                                            settings.duplicate_identity_threshold)
        for person in people:
            person.warnings.extend(f"looks like {other}: the same person twice?"
                                   for other in run.same_people.get(person.name, []))
        target = Gallery(encoder.identity, others + reused)
        run.ids = apply_to_gallery(target, people)
        run.gallery_size = len(target.people)
        run.status = (EXIT_NOTHING if not accepted_names else
                      EXIT_PERSON_EMPTY if any(not p.accepted for p in people) else EXIT_OK)
        run.written = bool(accepted_names) and not args.dry_run
        report = write_outputs(args, path, run, started)
        if run.written:  # last: a run that failed before this point leaves the gallery exactly as it was
            gallery_file.save(target, path)
    print_summary(args, path, run, report)
    return run.status


def write_outputs(args: argparse.Namespace, path: Path, run: EnrollRun, started: float) -> dict:
    """Contact sheets, report.json and the exported crops; returns the report."""
    report_dir = private_folder(args.report_dir or path.parent / "enroll-report")
    sheets = write_contact_sheets(run.people, report_dir)
    quality = run.settings.quality
    facts = {
        "time": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "source": str(args.source), "gallery": str(path), "mode": "replace" if args.replace else "merge",
        "dry_run": args.dry_run, "gallery_written": run.written, "exit_status": run.status,
        "embedder": run.embedder,
        "settings": {"min_face_px": quality.min_face_px, "min_sharpness": quality.min_sharpness,
                     "max_yaw": quality.max_yaw, "dominance": run.settings.dominance,
                     "near_duplicate": run.settings.near_duplicate,
                     "consistency_threshold": run.settings.consistency_threshold,
                     "duplicate_identity_threshold": run.settings.duplicate_identity_threshold},
        "seconds": round(time.perf_counter() - started, 3),
        "report": str(report_dir / "report.json"),
    }
    ignored = [(str(p.relative_to(args.source)), why) for p, why in run.ignored]
    report = report_dict(run.people, run.ids, sheets, run.same_people, ignored, facts)
    if args.export_aligned:
        report["exported_aligned"] = export_aligned(run.people, args.export_aligned)
    write_report(report, report_dir / "report.json")
    return report


def print_summary(args: argparse.Namespace, path: Path, run: EnrollRun, report: dict) -> None:
    """The table, warnings and outcome on stdout; tells the daemon when the gallery changed."""
    print(summary_table(run.people))
    for person in run.people:
        for warning in person.warnings:
            print(f"warning: {printable(person.name)}: {printable(warning)}")
    by_reason: dict[str, list[str]] = {}  # every entry not used, also inside person folders (links, FIFOs ...)
    for where, why in run.ignored + [entry for person in run.people for entry in person.folder.ignored]:
        by_reason.setdefault(why, []).append(f"ignored: {printable(str(where.relative_to(args.source)))}: {why}")
    for line in [line for lines in by_reason.values() for line in listed(lines)]:
        print(line)
    if args.export_aligned:
        print(f"exported {report['exported_aligned']} aligned faces to {args.export_aligned}")
    per_photo = f", {report['seconds_per_photo'] * 1000:.0f} ms per photo" if report["seconds_per_photo"] else ""
    print(f"{report['accepted']} of {report['photos']} photos accepted for "
          f"{sum(bool(p.accepted) for p in run.people)} of {len(run.people)} people in {report['seconds']:.1f} s"
          f"{per_photo}; report: {report['report']}")
    if args.dry_run:
        print(f"--dry-run: {path} unchanged")
    elif run.written:
        print(f"gallery written: {path} ({run.gallery_size} people)")
        if args.notify_daemon:
            tell_daemon(args)
    else:
        print(f"nothing enrolled: {path} unchanged")


def _terminate(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``edge-enroll``."""
    try:
        args = parse_args(argv)
    except UsageError as error:
        print(f"edge-enroll: error: {error} (see edge-enroll --help)", file=sys.stderr)
        return EXIT_USAGE
    previous_handler = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM unwinds like Ctrl-C
    try:
        config, _ = load_config_or_defaults(args.config)
        path = args.gallery or config.recognition.gallery
        if args.list:
            return list_people(path)
        if args.remove is not None:
            return remove_person(args, path)
        return enroll(args, config, path)
    except KeyboardInterrupt:
        print("\nedge-enroll: interrupted; the gallery was left as it was", file=sys.stderr)
        return EXIT_INTERRUPTED
    except EdgeError as error:
        print(f"edge-enroll: error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        print(f"edge-enroll: error: {where}{error.strerror or error}", file=sys.stderr)
        return EXIT_ERROR
    finally:
        signal.signal(signal.SIGTERM, previous_handler)


if __name__ == "__main__":
    sys.exit(main())
