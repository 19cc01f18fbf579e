"""CIDEr-D exactly as pycocoevalcap's CiderScorer computes it.

TF-IDF n-gram vectors with document frequencies taken from the references of the scored corpus,
clipped dot products, a Gaussian penalty on the length difference, averaged over n = 1..4, times 10.
pycocoevalcap's "length" is the caption's number of bigrams (its `if n == 1` counts index 1); we
keep that quirk because exactness is the point. With one reference per caption, the per-pair
score needs only the vectors of that pair, so each caption is vectorised once.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np

from medcap.metrics.ngrams import NGramCounts


def _tfidf(counts: NGramCounts, idf: dict, unseen_idf: float):
    """pycocoevalcap's counts2vec: tf * (log N - log max(1, df)) per n-gram, norms, bigram count."""
    vectors, norms = [], []
    for counter in counts:
        vector = {gram: float(tf) * idf.get(gram, unseen_idf) for gram, tf in counter.items()}
        vectors.append(vector)
        norms.append(math.sqrt(sum(value * value for value in vector.values())))
    length = sum(counts[1].values()) if len(counts) > 1 else 0
    return vectors, norms, length


def cider_d_scores(
    candidate_ngrams: Sequence[NGramCounts], reference_ngrams: Sequence[NGramCounts], sigma: float
) -> np.ndarray:
    """Per-caption CIDEr-D; the corpus score is their mean (as in pycocoevalcap)."""
    pairs = len(candidate_ngrams)
    if pairs == 0:
        return np.zeros(0)
    document_frequency: Counter = Counter()
    for ref in reference_ngrams:
        for counter in ref:
            document_frequency.update(counter.keys())
    log_corpus_size = math.log(float(pairs))
    idf = {gram: log_corpus_size - math.log(max(1.0, df)) for gram, df in document_frequency.items()}
    reference_vectors: dict[int, tuple] = {}
    two_sigma_squared = 2 * sigma**2
    scores = np.zeros(pairs)
    for row, (cand, ref) in enumerate(zip(candidate_ngrams, reference_ngrams)):
        vec_hyp, norm_hyp, len_hyp = _tfidf(cand, idf, log_corpus_size)
        if id(ref) not in reference_vectors:  # the same reference caption object is vectorised once
            reference_vectors[id(ref)] = _tfidf(ref, idf, log_corpus_size)
        vec_ref, norm_ref, len_ref = reference_vectors[id(ref)]
        penalty = np.e ** (-(float(len_hyp - len_ref) ** 2) / two_sigma_squared)
        total = 0.0
        for n, (hyp_n, ref_n) in enumerate(zip(vec_hyp, vec_ref)):
            value = sum(min(weight, ref_n[gram]) * ref_n[gram] for gram, weight in hyp_n.items() if gram in ref_n)
            if norm_hyp[n] != 0 and norm_ref[n] != 0:
                value /= norm_hyp[n] * norm_ref[n]
            total += value * penalty
        scores[row] = total / len(vec_hyp) * 10.0
    return scores
