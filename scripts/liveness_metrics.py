"""Presentation-attack metrics (ISO/IEC 30107-3 names) for the liveness scripts.

APCER: attack presentations (spoofs) accepted as live; BPCER: bona fide (live) presentations
refused; both in %, at "live when score >= threshold".
"""
from __future__ import annotations

import numpy as np


def roc_auc(scores: np.ndarray, live: np.ndarray) -> float:
    """Probability that a live image scores above a spoof one (ties count half); nan without both."""
    if live.all() or not live.any():
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores))
    sorted_scores = scores[order]
    i = 0
    while i < len(scores):  # average ranks of tied scores
        j = i
        while j + 1 < len(scores) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2 + 1
        i = j + 1
    positives, negatives = int(live.sum()), int((~live).sum())
    return float((ranks[live].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def error_rates(scores: np.ndarray, live: np.ndarray, threshold: float = 0.5) -> tuple[float, float]:
    """(APCER, BPCER) in % at score >= ``threshold``; nan where a class is absent."""
    accepted = scores >= threshold
    apcer = 100 * float(accepted[~live].mean()) if (~live).any() else float("nan")
    bpcer = 100 * float((~accepted[live]).mean()) if live.any() else float("nan")
    return apcer, bpcer


def threshold_for_bpcer(scores: np.ndarray, live: np.ndarray, bpcer: float) -> float:
    """The highest threshold that refuses at most ``bpcer`` % of the live scores."""
    refused = int(np.floor(bpcer / 100 * live.sum()))
    return float(np.sort(scores[live])[refused])


def threshold_for_apcer(scores: np.ndarray, live: np.ndarray, apcer: float) -> float:
    """The lowest threshold that accepts at most ``apcer`` % of the spoof scores."""
    spoofs = np.sort(scores[~live])[::-1]
    accepted = int(np.floor(apcer / 100 * len(spoofs)))
    return float(np.nextafter(spoofs[accepted], np.inf)) if accepted < len(spoofs) else float(spoofs[-1])
