"""edge-enroll end to end on real photos mixed with hostile files: every file reported, good faces enrolled,
the gallery replaced only by a run that finished."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.commands import enroll as enroll_cli
from edge.enroll.selection import Enroller
from edge.recognition.gallery import load
from enroll_photos import cmyk_jpeg, jpeg, phone_photo, png_bomb, write

AN = "Nguyễn Văn An"


def val_photos(celebrities: Path, person: str) -> list[Path]:
    return sorted((celebrities / "val" / person).iterdir())


@pytest.fixture(scope="module")
def small_source(celebrities, tmp_path_factory) -> Path:
    """One person, three good photos (ones that both the float and the int8 detector find a single clear face in)."""
    root = tmp_path_factory.mktemp("small")
    train = sorted((celebrities / "train" / "elton_john").iterdir())
    for path in val_photos(celebrities, "elton_john")[2:4] + train[1:2]:
        write(root / "Elton John" / path.name, path.read_bytes())
    return root


@pytest.fixture(scope="module")
def hostile_source(celebrities, tmp_path_factory) -> Path:
    """Real photos of three people plus every kind of bad input a stick can hold."""
    root = tmp_path_factory.mktemp("stick")
    ben = val_photos(celebrities, "ben_afflek")
    for path in ben[:4]:
        write(root / "Ben Affleck" / path.name, path.read_bytes())
    write(root / "Ben Affleck" / "z copy of the first.JPG", ben[0].read_bytes())
    write(root / "Ben Affleck" / "zero.jpg", b"")
    write(root / "Ben Affleck" / "notes.png", b"this is a text file with a photo's name\n")
    write(root / "Ben Affleck" / "cut.jpg", ben[4].read_bytes()[:3000])
    write(root / "Ben Affleck" / "readme.txt", b"not a photo")
    mindy = [cv2.imread(str(p)) for p in val_photos(celebrities, "mindy_kaling")]
    an = root / AN
    write(an / "ảnh một.jpg", jpeg(mindy[0]))
    write(an / "cmyk.jpg", cmyk_jpeg(mindy[1]))
    ok, grey = cv2.imencode(".png", cv2.cvtColor(mindy[2], cv2.COLOR_BGR2GRAY))
    write(an / "xám.png", grey.tobytes())
    write(an / "phone photo.jpg", phone_photo(mindy[3]))
    ok, webp = cv2.imencode(".webp", mindy[4])
    write(an / "2019" / "beach.webp", webp.tobytes())
    write(an / "someone else.jpg", val_photos(celebrities, "elton_john")[4].read_bytes())
    write(an / "huge 12000x9000.png", png_bomb())
    small = cv2.resize(mindy[0], None, fx=0.25, fy=0.25, interpolation=cv2.INTER_AREA)
    write(an / "tiny.jpg", jpeg(small))
    rng = np.random.default_rng(5)
    write(an / "nobody.png", cv2.imencode(".png", rng.integers(90, 110, (300, 300, 3), dtype=np.uint8))[1].tobytes())
    jerry = cv2.imread(str(val_photos(celebrities, "jerry_seinfeld")[0]))
    write(an / "two faces.jpg", jpeg(np.hstack([jerry, cv2.flip(jerry, 1)])))
    os.symlink(".", an / "loop")
    for path in sorted((celebrities / "train" / "ben_afflek").iterdir())[5:8]:
        write(root / "Ben Again" / path.name, path.read_bytes())
    (root / "Empty Person").mkdir()
    write(root / "stray.jpg", ben[0].read_bytes())
    return root


@pytest.fixture(scope="module")
def enrolled(small_source, hostile_source, tmp_path_factory):
    """A gallery made from the small source, then the hostile source merged into it."""
    work = tmp_path_factory.mktemp("enrolled")
    gallery = work / "state" / "gallery.npz"
    assert enroll_cli.main([str(small_source), "--gallery", str(gallery)]) == 0
    first = load(gallery)
    status = enroll_cli.main([str(hostile_source), "--gallery", str(gallery), "--report-dir", str(work / "report"),
                              "--export-aligned", str(work / "aligned")])
    report = json.loads((work / "report" / "report.json").read_text(encoding="utf-8"))
    return {"status": status, "gallery": gallery, "first": first, "report": report, "work": work}


def outcomes(report: dict, person: str) -> dict[str, str]:
    entry = next(p for p in report["people"] if p["name"] == person)
    return {photo["file"].split("/", 1)[1]: photo.get("code", "accepted") for photo in entry["photos"]}


def test_every_bad_file_is_reported_with_its_reason(enrolled):
    report = enrolled["report"]
    assert outcomes(report, "Ben Affleck") == {
        **{name: "accepted" for name in outcomes(report, "Ben Affleck") if name.startswith("http")},
        "z copy of the first.JPG": "duplicate", "cut.jpg": "unreadable", "notes.png": "unreadable", "zero.jpg": "unreadable",
    }
    assert sum(code == "accepted" for code in outcomes(report, "Ben Affleck").values()) == 4
    assert outcomes(report, AN) == {
        "2019/beach.webp": "accepted", "cmyk.jpg": "accepted", "huge 12000x9000.png": "too_large",
        "nobody.png": "no_face", "phone photo.jpg": "accepted", "someone else.jpg": "inconsistent",
        "tiny.jpg": "too_small", "two faces.jpg": "several_faces", "xám.png": "accepted", "ảnh một.jpg": "accepted",
    }
    an = next(p for p in report["people"] if p["name"] == AN)
    assert an["not_photos"] == [{"path": f"{AN}/loop", "reason": "symbolic link, not followed"}]
    assert report["ignored"] == [{"path": "stray.jpg", "reason": "not in a person's folder"}]
    empty = next(p for p in report["people"] if p["name"] == "Empty Person")
    assert empty["accepted"] == 0 and "the folder has no photos" in empty["warnings"]


def test_good_photos_are_enrolled_and_a_person_without_photos_fails_the_run(enrolled):
    assert enrolled["status"] == enroll_cli.EXIT_PERSON_EMPTY
    gallery = load(enrolled["gallery"])
    counts = {p.name: len(p.embeddings) for p in gallery.people}
    assert counts == {"Elton John": 3, "Ben Affleck": 4, AN: 5, "Ben Again": 3}
    assert stat.S_IMODE(enrolled["gallery"].stat().st_mode) == 0o600
    an = gallery.find(AN)
    assert "Nguyễn Văn An/phone photo.jpg" in an.sources


def test_merging_keeps_people_and_their_ids(enrolled):
    before = enrolled["first"].find("Elton John")
    after = load(enrolled["gallery"]).find("Elton John")
    assert after.id == before.id
    np.testing.assert_array_equal(after.embeddings, before.embeddings)


def test_the_same_person_under_two_names_is_reported(enrolled):
    again = next(p for p in enrolled["report"]["people"] if p["name"] == "Ben Again")
    assert [entry.split(" (")[0] for entry in again["likely_same_as"]] == ["Ben Affleck"]
    an = next(p for p in enrolled["report"]["people"] if p["name"] == AN)
    assert an["likely_same_as"] == []


def test_contact_sheets_and_exported_crops_are_written_owner_only(enrolled):
    work, report = enrolled["work"], enrolled["report"]
    an = next(p for p in report["people"] if p["name"] == AN)
    sheet = work / "report" / an["contact_sheet"]
    assert cv2.imread(str(sheet)) is not None
    assert stat.S_IMODE(sheet.stat().st_mode) == 0o600
    assert stat.S_IMODE((work / "report").stat().st_mode) == 0o700
    crops = sorted(p.name for p in (work / "aligned" / AN).iterdir())
    assert crops == ["beach.png", "cmyk.png", "phone photo.png", "xám.png", "ảnh một.png"]
    assert cv2.imread(str(work / "aligned" / AN / "cmyk.png")).shape == (160, 160, 3)
    assert report["seconds_per_photo"] > 0


def test_dry_run_changes_nothing(small_source, tmp_path):
    gallery = tmp_path / "gallery.npz"
    assert enroll_cli.main([str(small_source), "--gallery", str(gallery), "--dry-run"]) == 0
    assert not gallery.exists()
    assert (tmp_path / "enroll-report" / "report.json").exists()


def test_an_interrupted_run_leaves_the_gallery_as_it_was(enrolled, hostile_source, monkeypatch, tmp_path):
    gallery = tmp_path / "gallery.npz"
    shutil.copy(enrolled["gallery"], gallery)
    before = gallery.read_bytes()
    real_photo = Enroller.photo
    calls = []

    def interrupted(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_photo(self, *args, **kwargs)

    monkeypatch.setattr(Enroller, "photo", interrupted)
    assert enroll_cli.main([str(hostile_source), "--gallery", str(gallery), "--replace"]) == enroll_cli.EXIT_INTERRUPTED
    assert gallery.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gallery.npz.lock", "gallery.npz"]


def test_a_run_that_fails_late_leaves_the_gallery_as_it_was(enrolled, small_source, tmp_path, capsys):
    gallery = tmp_path / "gallery.npz"
    shutil.copy(enrolled["gallery"], gallery)
    before = gallery.read_bytes()
    blocker = write(tmp_path / "not a folder", b"x")
    status = enroll_cli.main([str(small_source), "--gallery", str(gallery), "--replace", "--report-dir", str(blocker)])
    assert status == enroll_cli.EXIT_ERROR
    assert gallery.read_bytes() == before
    assert capsys.readouterr().err.count("\n") == 1


@pytest.mark.parametrize("argv, words", [
    ([], "give a SOURCE folder"),
    (["/no/such/folder"], "/no/such/folder: not a folder"),
    (["--list", "--remove", "x"], "cannot be combined"),
    (["--bogus"], "unrecognized arguments: --bogus"),
])
def test_usage_errors_exit_2_with_one_line(argv, words, capsys):
    assert enroll_cli.main(argv) == enroll_cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err


def test_a_user_enrolls_into_their_own_state_folder_without_options(small_source, as_a_user, capsys):
    assert enroll_cli.main([str(small_source), "--dry-run"]) == 0  # creates the folder, for the report
    assert stat.S_IMODE((as_a_user / "state" / "edge-facerec").stat().st_mode) == 0o700
    assert enroll_cli.main([str(small_source)]) == 0
    gallery = as_a_user / "state" / "edge-facerec" / "gallery.npz"
    assert f"gallery written: {gallery} (1 people)" in capsys.readouterr().out
    assert [p.name for p in load(gallery).people] == ["Elton John"]
    assert (as_a_user / "state" / "edge-facerec" / "enroll-report" / "report.json").is_file()
    assert enroll_cli.main(["--list"]) == 0 and "Elton John" in capsys.readouterr().out


def test_500_copies_of_a_photo_are_a_few_lines_and_every_one_in_the_report(celebrities, tmp_path, capsys):
    photo = val_photos(celebrities, "elton_john")[2].read_bytes()
    for number in range(500):
        write(tmp_path / "faces" / "Elton John" / f"copy {number:03d}.jpg", photo)
    assert enroll_cli.main([str(tmp_path / "faces"), "--gallery", str(tmp_path / "gallery.npz")]) == 0
    out = capsys.readouterr().out
    assert "duplicate: 499 photos" in out and "  ... and 494 more" in out
    assert out.count("same file as Elton John/copy 000.jpg") == 5 and len(out.splitlines()) < 20
    report = json.loads((tmp_path / "enroll-report" / "report.json").read_text())
    assert report["people"][0]["skipped"] == {"duplicate": 499}
    assert len(report["people"][0]["photos"]) == 500


def test_list_and_remove(enrolled, tmp_path, capsys):
    gallery = tmp_path / "gallery.npz"
    shutil.copy(enrolled["gallery"], gallery)
    assert enroll_cli.main(["--list", "--gallery", str(gallery)]) == 0
    listed = capsys.readouterr().out
    assert AN in listed and "Ben Again" in listed
    assert enroll_cli.main(["--remove", "ben again", "--gallery", str(gallery)]) == 0  # as edge-actions: any case
    assert [p.name for p in load(gallery).people] == ["Elton John", "Ben Affleck", AN]
    capsys.readouterr()
    assert enroll_cli.main(["--remove", "Nobody", "--gallery", str(gallery)]) == enroll_cli.EXIT_ERROR
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'Nobody'" in err


RECORDER = """
import os, signal, sys, time
def hup(signum, frame):  # one line per signal, written whole then renamed: never read half-written
    before = open(sys.argv[1]).read() if os.path.exists(sys.argv[1]) else ""
    with open(sys.argv[1] + ".part", "w") as part:
        part.write(before + "HUP\\n")
    os.replace(sys.argv[1] + ".part", sys.argv[1])
signal.signal(signal.SIGHUP, hup)
print("ready", flush=True)
time.sleep(30)
"""


def test_notify_daemon_sends_sighup_to_the_pidfile_process(enrolled, tmp_path, capsys):
    gallery = tmp_path / "gallery.npz"
    shutil.copy(enrolled["gallery"], gallery)
    record = tmp_path / "signals.txt"
    child = subprocess.Popen([sys.executable, "-c", RECORDER, str(record)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "ready"
        pidfile = write(tmp_path / "edge-facerec.pid", f"{child.pid}\n".encode())
        assert enroll_cli.main(["--remove", "Ben Again", "--gallery", str(gallery), "--notify-daemon",
                                "--daemon-pidfile", str(pidfile)]) == 0
        deadline = time.monotonic() + 5
        while not record.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert record.read_text() == "HUP\n"
        assert f"sent SIGHUP to the daemon (process {child.pid}" in capsys.readouterr().out
    finally:
        child.send_signal(signal.SIGTERM)
        child.wait(5)
    gone = write(tmp_path / "stale.pid", f"{child.pid}\n".encode())  # the process has exited
    assert enroll_cli.main(["--remove", AN, "--gallery", str(gallery), "--notify-daemon",
                            "--daemon-pidfile", str(gone)]) == 0
    assert "daemon not running" in capsys.readouterr().out


def test_group_photos_bystanders_and_resized_copies_in_the_evaluation_data(shared_data, tmp_path):
    """Real group photos are refused, a photo with a small bystander is kept, a resized copy is a duplicate."""
    faces = shared_data / "faces-small"
    layout = {
        "Obama": {"obama.jpg": "knn/train/obama/obama.jpg", "obama1.jpg": "knn/test/obama1.jpg",
                  "z same photo 720p.jpg": "obama-720p.jpg", "with biden.jpg": "knn/test/obama_and_biden.jpg"},
        "Kit Harington": {"john1.jpeg": "knn/train/kit_harington/john1.jpeg",
                          "john2.jpeg": "knn/train/kit_harington/john2.jpeg",
                          "with rose.jpg": "knn/test/kit_with_rose.jpg"},
    }
    source = tmp_path / "stick"
    for person, files in layout.items():
        for name, original in files.items():
            write(source / person / name, (faces / original).read_bytes())
    status = enroll_cli.main([str(source), "--gallery", str(tmp_path / "gallery.npz"), "--report-dir", str(tmp_path / "r")])
    report = json.loads((tmp_path / "r" / "report.json").read_text(encoding="utf-8"))
    assert status == enroll_cli.EXIT_OK
    assert outcomes(report, "Obama") == {"obama.jpg": "accepted", "obama1.jpg": "accepted",
                                         "z same photo 720p.jpg": "duplicate", "with biden.jpg": "several_faces"}
    assert outcomes(report, "Kit Harington") == {"john1.jpeg": "accepted", "john2.jpeg": "accepted",
                                                 "with rose.jpg": "several_faces"}


def test_a_daemon_that_cannot_be_told_is_a_warning_not_a_failure(enrolled, tmp_path, capsys):
    gallery = tmp_path / "gallery.npz"
    shutil.copy(enrolled["gallery"], gallery)
    garbage = write(tmp_path / "bad.pid", b"not a pid\n")
    assert enroll_cli.main(["--remove", "Ben Again", "--gallery", str(gallery), "--notify-daemon",
                            "--daemon-pidfile", str(garbage)]) == 0
    assert "Ben Again" not in [p.name for p in load(gallery).people]
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a process id" in err and "systemctl reload edge-facerec" in err


def test_sigterm_during_a_run_leaves_the_gallery_as_it_was(enrolled, hostile_source, tmp_path):
    """The real signal, as systemd sends it when the stick is pulled out (BindsTo) or the unit is stopped."""
    gallery = tmp_path / "gallery.npz"
    shutil.copy(enrolled["gallery"], gallery)
    before = gallery.read_bytes()
    run = subprocess.Popen([sys.executable, "-m", "edge.commands.enroll", str(hostile_source), "--gallery", str(gallery),
                            "--replace"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lock = tmp_path / ".gallery.npz.lock"  # taken once the models are loaded, just before the photos
    deadline = time.monotonic() + 60
    while not lock.exists() and run.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    run.send_signal(signal.SIGTERM)
    out, err = run.communicate(timeout=60)
    assert run.returncode == enroll_cli.EXIT_INTERRUPTED, out + err
    assert "interrupted; the gallery was left as it was" in err
    assert gallery.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gallery.npz.lock", "gallery.npz"]
