"""BLEU-1..4 exactly as pycocoevalcap's BleuScorer computes them (single reference, 'closest').

Per caption: the product of smoothed clipped n-gram precisions ((correct + 1e-15) /
(guess + 1e-9)), its k-th root, times the brevity penalty. Corpus: the same formula over the
summed counts. We keep counts in numpy arrays so the per-caption formula runs vectorised.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medcap.metrics.ngrams import NGramCounts

_SMALL = 1e-9
_TINY = 1e-15


def bleu_counts(
    candidate_ngrams: Sequence[NGramCounts], reference_ngrams: Sequence[NGramCounts],
    candidate_lengths: Sequence[int], max_n: int,
) -> tuple[np.ndarray, np.ndarray]:
    """(correct, guess) arrays of shape (pairs, max_n): clipped matches and candidate n-gram totals."""
    pairs = len(candidate_ngrams)
    correct = np.zeros((pairs, max_n), dtype=np.int64)
    for row, (cand, ref) in enumerate(zip(candidate_ngrams, reference_ngrams)):
        for k in range(max_n):
            ref_k = ref[k]
            correct[row, k] = sum(min(count, ref_k[gram]) for gram, count in cand[k].items() if gram in ref_k)
    lengths = np.asarray(candidate_lengths, dtype=np.int64)[:, None]
    guess = np.maximum(0, lengths - np.arange(max_n)[None, :])
    return correct, guess


def _bleu_from_counts(correct: np.ndarray, guess: np.ndarray, test_len, ref_len) -> np.ndarray:
    """pycocoevalcap's formula on rows of counts; returns (rows, max_n)."""
    max_n = correct.shape[-1]
    ratios = (correct.astype(np.float64) + _TINY) / (guess.astype(np.float64) + _SMALL)
    products = np.cumprod(ratios, axis=-1)
    scores = products ** (1.0 / np.arange(1, max_n + 1))
    ratio = (np.asarray(test_len, dtype=np.float64) + _TINY) / (np.asarray(ref_len, dtype=np.float64) + _SMALL)
    with np.errstate(divide="ignore", over="ignore"):
        penalty = np.where(ratio < 1, np.exp(1 - 1 / ratio), 1.0)
    return scores * np.asarray(penalty)[..., None]


def bleu_scores(
    correct: np.ndarray, guess: np.ndarray, candidate_lengths: Sequence[int], reference_lengths: Sequence[int]
) -> tuple[np.ndarray, np.ndarray]:
    """(per-caption BLEU-1..n of shape (pairs, n), corpus BLEU-1..n of shape (n,))."""
    test_len = np.asarray(candidate_lengths, dtype=np.int64)
    ref_len = np.asarray(reference_lengths, dtype=np.int64)
    per_caption = _bleu_from_counts(correct, guess, test_len, ref_len)
    corpus = _bleu_from_counts(correct.sum(axis=0), guess.sum(axis=0), test_len.sum(), ref_len.sum())
    return per_caption, corpus
