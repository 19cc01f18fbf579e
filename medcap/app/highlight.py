"""Caption HTML with meaning: words shared with the ground truth, words that contradict it, and
words the model doubted (graded, with decision words marked whenever they are not near-certain).

All caption text is untrusted (model output, dataset text, reviewer input) and is escaped here;
nothing else in the app builds caption HTML.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)

#: What a shaded fact word is called in its tooltip, by fact kind (see medcap.metrics.SHADE_KINDS).
FACT_WORD_NAMES = {"laterality": "side", "modality": "modality", "anatomy": "anatomy",
                   "finding": "finding", "negation": "negation"}

#: Mark kinds a rendered caption can contain (the card's legend lists the ones present).
SHARED, CONTRADICTION, UNSURE, FACT_DOUBT = "shared", "contradiction", "unsure", "fact_doubt"


@dataclass(frozen=True)
class HighlightStyle:
    """CSS class names and shading levels; the stylesheet lives in `medcap.app.cards`."""

    shared_class: str = "mc-shared"
    contradiction_class: str = "mc-contra"
    token_class: str = "mc-token"
    level_class: str = "mc-unsure-"
    fact_class: str = "mc-fact-doubt"
    levels: tuple[float, ...] = (0.75, 0.5, 0.25)
    """A word whose probability is below levels[i] gets class `mc-unsure-<i+1>`: the darker the
    shade, the less sure the model was (graded, so a 0.50 word is not treated like a 0.99 one)."""
    fact_shade_below: float = 0.9
    """Fact words (side, modality, anatomy, finding, negation) below this are always marked."""

    def level(self, prob: float) -> int:
        """0 for a confident word, else 1..len(levels), higher for less sure."""
        return sum(prob < bound for bound in self.levels)


@dataclass(frozen=True)
class Contradicting:
    """Characters `start:end` of the caption contradict the reference, which says `reference`."""

    start: int
    end: int
    reference: str


@dataclass(frozen=True)
class RenderedCaption:
    """Caption HTML plus which kinds of marks it contains (for the legend)."""

    html: str
    marks: frozenset[str]


def token_probabilities(text: str, tokens: Sequence) -> list[float | None] | None:
    """Each character's token probability (None for whitespace and characters no token covers),
    or None when the tokens do not spell `text` (then nothing is shaded rather than the wrong
    words). Whitespace is skipped on both sides: captions are tidied after decoding."""
    probs: list[float | None] = [None] * len(text)
    position = 0
    for token in tokens:
        prob = float(getattr(token, "prob", 1.0))
        for char in str(getattr(token, "text", "")):
            if char.isspace():
                continue
            while position < len(text) and text[position].isspace():
                position += 1
            if position >= len(text) or text[position] != char:
                return None
            probs[position] = prob
            position += 1
    return probs


def _fact_kinds(text: str) -> list[tuple[int, int, str]]:
    from medcap.metrics import SHADE_KINDS, fact_spans

    return [(s.start, s.end, s.kind) for s in fact_spans(text) if s.kind in SHADE_KINDS]


def _word_prob(probs: list[float | None] | None, start: int, end: int) -> float | None:
    """A word is as sure as its least sure token."""
    if probs is None:
        return None
    known = [p for p in probs[start:end] if p is not None]
    return min(known) if known else None


def _inner(word: str, contradiction: Contradicting | None, shared: bool, style: HighlightStyle
           ) -> tuple[str, str | None]:
    escaped = html.escape(word)
    if contradiction is not None:
        title = html.escape(f"reference: {contradiction.reference}", quote=True)
        return (f'<mark class="{style.contradiction_class}" title="{title}">{escaped}</mark>',
                CONTRADICTION)
    if shared:
        return f'<mark class="{style.shared_class}">{escaped}</mark>', SHARED
    return escaped, None


def _shaded(inner: str, prob: float, fact_kind: str | None, style: HighlightStyle
            ) -> tuple[str, set[str]]:
    classes, marks = [], set()
    title = f"p = {prob:.2f}"
    level = style.level(prob)
    if level:
        classes.append(f"{style.level_class}{level}")
        marks.add(UNSURE)
    if fact_kind is not None and prob < style.fact_shade_below:
        classes.append(style.fact_class)
        marks.add(FACT_DOUBT)
        title += f" · {FACT_WORD_NAMES.get(fact_kind, fact_kind)} word below {style.fact_shade_below:.2f}"
    if not classes:
        return f'<span title="{title}">{inner}</span>', marks
    return (f'<span class="{style.token_class} {" ".join(classes)}" title="{title}">{inner}</span>',
            marks)


def render_caption(text: str, *, tokens: Sequence = (), shared: Iterable[str] = (),
                   contradictions: Sequence[Contradicting] = (),
                   style: HighlightStyle = HighlightStyle()) -> RenderedCaption:
    """Escape `text` and mark, word by word: contradicting words (red, hover says what the
    reference says), shared words (green), and, when `tokens` carry probabilities, doubtful
    words (graded orange) and fact words below `style.fact_shade_below` (dashed outline).
    Without token probabilities nothing is shaded: a results CSV knows none."""
    source = text or ""
    wanted = {word.lower() for word in shared}
    probs = token_probabilities(source, tokens) if tokens else None
    facts = _fact_kinds(source) if probs is not None else []
    pieces, marks, last = [], set(), 0
    for match in WORD.finditer(source):
        start, end = match.span()
        pieces.append(html.escape(source[last:start]))
        contradiction = next((c for c in contradictions if c.start < end and start < c.end), None)
        inner, mark = _inner(match.group(0), contradiction, match.group(0).lower() in wanted, style)
        marks.update({mark} - {None})
        prob = _word_prob(probs, start, end)
        if prob is not None:
            fact_kind = next((kind for s, e, kind in facts if s < end and start < e), None)
            inner, shade_marks = _shaded(inner, prob, fact_kind, style)
            marks |= shade_marks
        pieces.append(inner)
        last = end
    pieces.append(html.escape(source[last:]))
    return RenderedCaption("".join(pieces), frozenset(marks))


def highlight_shared(text: str, shared: Iterable[str], style: HighlightStyle = HighlightStyle()) -> str:
    """Escape `text` and wrap each word found in `shared` (case-insensitive) in a <mark>."""
    return render_caption(text, shared=shared, style=style).html


def shade_tokens(tokens: Sequence, style: HighlightStyle = HighlightStyle()) -> str:
    """Render generated tokens (objects with .text and .prob), doubtful words shaded by level;
    the exact probability is in each word's tooltip so a reviewer can check a suspicious word."""
    text = "".join(str(getattr(token, "text", "")) for token in tokens)
    return render_caption(text, tokens=tokens, style=style).html
