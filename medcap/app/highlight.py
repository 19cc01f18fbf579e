"""Caption HTML with meaning: words shared with the ground truth, tokens the model doubted.

All caption text is untrusted (model output, dataset text, reviewer input) and is escaped here;
nothing else in the app builds caption HTML.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass
from typing import Iterable, Sequence

WORD = re.compile(r"[^\W_]+(?:[-'][^\W_]+)*", re.UNICODE)


@dataclass(frozen=True)
class HighlightStyle:
    """CSS class names used by the cards; the stylesheet lives in `medcap.app.cards`."""

    shared_class: str = "mc-shared"
    token_class: str = "mc-token"
    uncertain_below: float = 0.5
    """Tokens whose probability is below this are shaded; the darker, the less sure."""


def highlight_shared(text: str, shared: Iterable[str], style: HighlightStyle = HighlightStyle()) -> str:
    """Escape `text` and wrap each word found in `shared` (case-insensitive) in a <mark>."""
    wanted = {word.lower() for word in shared}
    pieces, last = [], 0
    source = text or ""
    for match in WORD.finditer(source):
        pieces.append(html.escape(source[last:match.start()]))
        word = match.group(0)
        if word.lower() in wanted:
            pieces.append(f'<mark class="{style.shared_class}">{html.escape(word)}</mark>')
        else:
            pieces.append(html.escape(word))
        last = match.end()
    pieces.append(html.escape(source[last:]))
    return "".join(pieces)


def shade_tokens(tokens: Sequence, style: HighlightStyle = HighlightStyle()) -> str:
    """Render generated tokens (objects with .text and .prob) with doubtful ones shaded.

    The shade's opacity grows as the probability falls below `uncertain_below`; the exact
    probability is in the tooltip so a reviewer can check a suspicious word.
    """
    pieces = []
    for token in tokens:
        text = html.escape(str(getattr(token, "text", "")))
        prob = float(getattr(token, "prob", 1.0))
        if prob < style.uncertain_below:
            alpha = round(0.15 + 0.6 * (1 - prob / style.uncertain_below), 2)
            pieces.append(
                f'<span class="{style.token_class}" style="background: rgba(255,140,0,{alpha})"'
                f' title="p = {prob:.2f}">{text}</span>'
            )
        else:
            pieces.append(f'<span title="p = {prob:.2f}">{text}</span>')
    return "".join(pieces)
