"""ROUGE-L and ROUGE-1 F-measures as rouge-score computes them, with a fast LCS.

rouge-score fills an O(n*m) Python table per pair; we get the same LCS length with the
bit-parallel algorithm of Allison & Dix (1986) on Python integers: one add, subtract, or and
mask per reference token, whatever the caption length.
"""

from __future__ import annotations

from collections import Counter
from typing import Sequence


def lcs_length(first: Sequence[str], second: Sequence[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    if len(first) < len(second):
        first, second = second, first
    masks: dict[str, int] = {}
    for position, token in enumerate(first):
        masks[token] = masks.get(token, 0) | (1 << position)
    full = (1 << len(first)) - 1
    row = full
    for token in second:
        match = row & masks.get(token, 0)
        row = ((row + match) | (row - match)) & full
    return len(first) - bin(row).count("1")


def f_measure(precision: float, recall: float) -> float:
    """rouge_score.scoring.fmeasure."""
    return 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0


def rouge_l_f(reference: Sequence[str], candidate: Sequence[str]) -> float:
    """rouge-score's `rougeL` F-measure (0 when either side has no tokens)."""
    if not reference or not candidate:
        return 0.0
    common = lcs_length(reference, candidate)
    return f_measure(common / len(candidate), common / len(reference))


def rouge_1_f(reference: Sequence[str], candidate: Sequence[str]) -> float:
    """rouge-score's `rouge1` F-measure (clipped unigram overlap)."""
    reference_counts, candidate_counts = Counter(reference), Counter(candidate)
    overlap = sum(min(count, candidate_counts[token]) for token, count in reference_counts.items() if token in candidate_counts)
    precision = overlap / max(len(candidate), 1)
    recall = overlap / max(len(reference), 1)
    return f_measure(precision, recall)
