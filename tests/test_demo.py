"""edge-demo as a newcomer sees it: what happened in words, the left-out photos by reason, the summary last."""
from __future__ import annotations

import re
import subprocess
import sys

from edge.commands import demo, demo_report
from edge.events import Event, Liveness
from edge.runtime.pinned_download import cache_dir


def event(kind: str, name: str | None, live: bool | None = None) -> Event:
    return Event(kind=kind, device_id="edge-demo", device="edge-demo", camera="sample-clip",
                 person_id="p-1" if name else None, name=name, score=0.7 if name else 0.3, frames=3,
                 box=(0, 0, 10, 10), models={}, track_id=1,
                 liveness=None if live is None else Liveness(0.9 if live else 0.1, live, 3))


def test_the_demo_explains_what_happened_and_ends_with_its_summary():
    result = subprocess.run([sys.executable, "-m", "edge.commands.demo"], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    out = result.stdout
    last = out.rstrip().split("\n\n")[-1]  # the summary, after a blank line, is the last thing printed
    assert last.startswith("Summary: ") and "of 5 enrolled people named" in last.splitlines()[0]
    assert last.splitlines()[-1].strip().startswith("The daemon: ") and "fps" in last
    assert "0.5 stands for this gallery's threshold" in out
    left_out = int(re.search(r"(\d+) left out, by reason", out).group(1))
    listing = (cache_dir() / "demo" / demo_report.LEFT_OUT_FILE).read_text()
    assert len(re.findall(r"^  \S.* #\d+: .+\n    \w+/.+$", listing, re.M)) == left_out > 0
    enrollment = out.split("\n2. ")[0]
    assert "http" not in enrollment and re.search(r"[A-Z][a-z]+ [A-Z][a-z]+ #\d+", enrollment)  # names, not URLs


def test_image_mode_exits_1_when_no_photo_can_be_read(tmp_path, capsys):
    (tmp_path / "notes.jpg").write_text("not a photo")
    assert demo.main(["--image", str(tmp_path / "notes.jpg"), str(tmp_path / "absent.jpg")]) == demo.EXIT_NO_PHOTO
    err = capsys.readouterr().err
    assert "notes.jpg" in err and "absent.jpg" in err and "none of the 2 photos could be read" in err


def test_the_summary_says_who_was_missed_and_counts_wrong_names():
    truth = ["Ann", "Bob", "stranger"]
    matches = [demo_report.ShotMatch("Ann", 0.8, "Ann", 0.8), demo_report.ShotMatch("Bob", 0.41, "Bob", 0.41),
               demo_report.ShotMatch("stranger", None, "Ann", 0.2)]
    events = [event("recognized", "Ann"), event("unknown", None), event("unknown", None)]
    line = demo_report.summary(truth, matches, events, {})[0]
    assert line == ("1 of 2 enrolled people named, none wrongly; "
                    "2 unknown faces: Bob (0.41, under 0.5) and the stranger.")
    wrong = demo_report.summary(truth, matches, [event("recognized", "Ann"), event("recognized", "Cy")], {})[0]
    assert "1 wrong name; 0 unknown faces." in wrong


def test_the_summary_says_how_many_photos_liveness_caught():
    truth, matches = ["Ann"], [demo_report.ShotMatch("Ann", 0.8, "Ann", 0.8)]
    lines = demo_report.summary(truth, matches, [event("recognized", "Ann", live=False)], {})
    assert "Liveness: 1 of 1 recognitions judged NOT LIVE, rightly: the clip shows photos" in lines[1]
    fooled = demo_report.summary(truth, matches, [event("recognized", "Ann", live=True)], {})
    assert "0 of 1 recognitions judged NOT LIVE, 1 judged live although the clip shows photos" in fooled[1]
    assert len(demo_report.summary(truth, matches, [event("recognized", "Ann")], {})) == 2  # liveness off
