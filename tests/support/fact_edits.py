"""Caption edits for measuring the fact check on real captions: flip one side, or paraphrase.

A flipped caption states the opposite side once: the check should flag it. A paraphrase states
the same facts in other words (other verbs and articles, modality and side synonyms, sentences in
another order), and a caption with a fifth of its non-fact words dropped keeps its fact words:
any contradiction the check reports for either is counted as a false alarm (dropping words can
change a meaning, e.g. "but", so that count is an upper bound).
"""

from __future__ import annotations

import random
import re

from medcap.metrics.facts import FactSpan, fact_spans

_OPPOSITE = {"left": "right", "right": "left", "lt": "rt", "rt": "lt", "l": "r", "r": "l"}
_SIDE_WORD = re.compile(r"(?i)^(left|right|lt|rt|l|r)")


def stated_sides(text: str) -> set[str]:
    return {s.value for s in fact_spans(text) if s.kind == "laterality"}


def _match_case(word: str, like: str) -> str:
    if like.isupper():
        return word.upper()
    if like[:1].isupper():
        return word.capitalize()
    return word


def flip_first_side(text: str) -> tuple[str, FactSpan] | None:
    """`text` with its first left/right word swapped for the other side, or None if it has none."""
    for span in fact_spans(text):
        if span.kind == "laterality" and span.value in ("left", "right"):
            written = text[span.start:span.end]
            match = _SIDE_WORD.match(written)
            if match is None:
                continue
            head = match.group()
            flipped = _match_case(_OPPOSITE[head.lower()], head) + written[len(head):]
            return text[:span.start] + flipped + text[span.end:], span
    return None


# Fact-free rewordings and modality synonyms (each pair says the same thing).
_REWORDINGS = [
    (r"\bshowing\b", "demonstrating"), (r"\bshows\b", "demonstrates"), (r"\bdemonstrates\b", "shows"),
    (r"\brevealing\b", "showing"), (r"\breveals\b", "shows"), (r"\bthe\b", "a"), (r"\bThe\b", "A"),
    (r"\bimage\b", "scan"), (r"\bview\b", "image"), (r"\barrows?\b", "arrowhead"), (r"\bwith\b", "and"),
    (r"\bCT\b", "computed tomography"), (r"\bcomputed tomography\b", "CT"), (r"\bMRI\b", "magnetic resonance imaging"),
    (r"\bultrasound\b", "sonography"), (r"\bX-ray\b", "radiograph"),
]
_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z])")


def _side_synonym(text: str) -> str:
    """The first stated side word "left"/"right" written as "left-sided"/"right-sided"."""
    for span in fact_spans(text):
        if span.kind == "laterality" and text[span.start:span.end].lower() in ("left", "right") \
                and not text[span.end:span.end + 1] in ("-", ")"):
            return text[:span.end] + "-sided" + text[span.end:]
    return text


def paraphrase(text: str) -> str:
    """The same facts in other words: reworded, synonyms swapped, sentences in reverse order."""
    out = _side_synonym(text)
    for pattern, replacement in _REWORDINGS:
        out = re.sub(pattern, replacement, out, count=1)
    sentences = [s if s[-1] in ".!?" else s + "." for s in _SENTENCE.split(out.strip()) if s]
    return " ".join(reversed(sentences))


_LETTERS = re.compile(r"[^\W\d_]+")


def drop_words(text: str, rng: random.Random, rate: float = 0.2) -> str:
    """`text` without a random `rate` of its words that are not part of any fact."""
    covered = set()
    for span in fact_spans(text):
        covered.update(range(span.start, span.end))
    pieces, last = [], 0
    for match in _LETTERS.finditer(text):
        if match.start() not in covered and match.end() - 1 not in covered and rng.random() < rate:
            pieces.append(text[last:match.start()])
            last = match.end()
    pieces.append(text[last:])
    return "".join(pieces)
