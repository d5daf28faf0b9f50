"""Which files count as images: the suffixes a camera folder and a folder of photos accept."""

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
"""Lower-case file suffixes read as images (compare with ``path.suffix.lower()``)."""
