"""How people's display names compare when a person types one: Unicode NFC, letter case ignored.

``edge-actions`` rules and ``edge-enroll --remove`` both name people this way, so
"zoë o'brien" typed on a keyboard finds "Zoë O'Brien" enrolled from a Mac's decomposed
folder name.
"""
from __future__ import annotations

import unicodedata


def same_name(a: str, b: str) -> bool:
    """Whether two display names name the same person: equal after NFC normalisation and case folding."""
    return unicodedata.normalize("NFC", a).casefold() == unicodedata.normalize("NFC", b).casefold()
