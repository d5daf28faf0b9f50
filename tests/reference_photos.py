"""Photos without a face that Debian's opencv-doc package installs (CI installs it with apt)."""
from pathlib import Path

OPENCV_DOC_DATA = Path("/usr/share/doc/opencv-doc/examples/data")
OPENCV_DOC_NO_FACE = ("aero3.jpg", "apple.jpg", "baboon.jpg", "building.jpg", "fruits.jpg", "home.jpg",
                      "orange.jpg", "smarties.png", "butterfly.jpg", "board.jpg")
