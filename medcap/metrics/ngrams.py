"""N-gram counts shared by BLEU and CIDEr-D, computed once per caption."""

from __future__ import annotations

from collections import Counter
from typing import Sequence

NGramCounts = list  # list[Counter[tuple[str, ...]]], index k holds the (k+1)-grams


def ngram_counts(tokens: Sequence[str], max_n: int) -> NGramCounts:
    """Counters of 1..max_n-grams, as pycocoevalcap's `precook` builds them."""
    return [Counter(zip(*(tokens[i:] for i in range(n)))) for n in range(1, max_n + 1)]
