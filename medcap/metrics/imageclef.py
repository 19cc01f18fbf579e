"""The ImageCLEFmedical Caption evaluators' scores, per caption, as their code computes them.

- 2022 (AIcrowd evaluator, `AIcrowdEvaluator`): lower-case, remove `string.punctuation`,
  `nltk.word_tokenize`, drop nltk's English stop words; BLEU is nltk's `sentence_bleu` (uniform
  1-4-gram weights, `SmoothingFunction().method0`), ROUGE-1 is rouge-score's F-measure on the
  remaining words re-joined by spaces; a pair with no words on either side scores 1.
- 2023: lower-case, digit runs -> "number", remove `string.punctuation`; ROUGE-1 F and BERTScore
  F1 (deberta-xlarge-mnli, layer 40, no IDF) one pair at a time; a pair whose two *normalised*
  captions are both empty scores 1.
- 2025/2026 (`CaptionEvaluator`): the 2023 normalisation; BERTScore with IDF from every
  normalised reference; a pair scores 1 only when both *raw* captions are empty.

`nltk.word_tokenize` first splits sentences with punkt, whose data cannot be downloaded here.
Punkt ends sentences only at ".", "?" and "!", all of which the evaluator has already removed,
so each caption is one sentence and `word_tokenize(text, preserve_line=True)` (no punkt) gives
the same words.
"""

from __future__ import annotations

import string
from typing import Sequence

import numpy as np

from medcap.metrics.normalize import Normalization
from medcap.metrics.rouge import rouge_1_f
from medcap.metrics.stopwords import ENGLISH_STOPWORDS
from medcap.metrics.tokenize import rouge_tokenize

_PUNCTUATION = str.maketrans("", "", string.punctuation)
#: The 2023-2026 evaluators' `preprocess_caption` (lower, digits -> number, no punctuation).
CLEF_NORMALIZATION = Normalization.named("imageclef")


def words_2022(caption: str) -> list[str]:
    """The 2022 evaluator's words: lower-cased, punctuation removed, tokenised, stop words dropped."""
    from nltk.tokenize import word_tokenize

    words = word_tokenize(caption.lower().translate(_PUNCTUATION), preserve_line=True)
    return [word for word in words if word.lower() not in ENGLISH_STOPWORDS]


def bleu_2022(candidate_words: Sequence[str], reference_words: Sequence[str]) -> float:
    """nltk sentence_bleu, no smoothing; 1 when both sides have no words."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu

    if not candidate_words and not reference_words:
        return 1.0
    return float(sentence_bleu([list(reference_words)], list(candidate_words),
                               smoothing_function=SmoothingFunction().method0))


def rouge1_2022(candidate_words: Sequence[str], reference_words: Sequence[str]) -> float:
    """rouge-score ROUGE-1 F on the words re-joined; 1 when both joined strings are empty."""
    candidate, reference = " ".join(candidate_words), " ".join(reference_words)
    if not candidate and not reference:
        return 1.0
    return rouge_1_f(rouge_tokenize(reference), rouge_tokenize(candidate))


def scores_2022(candidates: Sequence[str], references: Sequence[str]) -> dict[str, np.ndarray]:
    """Per-caption `bleu` and `rouge1` of the 2022 evaluator (its scores are their means)."""
    import warnings

    cache: dict[str, list[str]] = {}

    def words(text: str) -> list[str]:
        if text not in cache:
            cache[text] = words_2022(text)
        return cache[text]

    pairs = [(words(c), words(r)) for c, r in zip(candidates, references)]
    with warnings.catch_warnings():  # nltk warns on every caption without a 4-gram match
        warnings.simplefilter("ignore")
        bleu = np.array([bleu_2022(c, r) for c, r in pairs], dtype=np.float64)
    rouge = np.array([rouge1_2022(c, r) for c, r in pairs], dtype=np.float64)
    return {"bleu": bleu, "rouge1": rouge}


def rouge1_clef(candidates: Sequence[str], references: Sequence[str]) -> np.ndarray:
    """ROUGE-1 F of the normalised captions (HF `evaluate`'s rouge is rouge-score underneath)."""
    return np.array([rouge_1_f(rouge_tokenize(CLEF_NORMALIZATION.apply(r)), rouge_tokenize(CLEF_NORMALIZATION.apply(c)))
                     for c, r in zip(candidates, references)], dtype=np.float64)


def both_empty(candidates: Sequence[str], references: Sequence[str], *, normalised: bool) -> np.ndarray:
    """Pairs the evaluator scores 1: both captions of length 0 (2023: after normalising; 2025: raw)."""
    def text(value: str) -> str:
        return CLEF_NORMALIZATION.apply(value) if normalised else value

    return np.array([len(text(c)) == 0 and len(text(r)) == 0 for c, r in zip(candidates, references)], dtype=bool)
