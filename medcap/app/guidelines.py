"""The reviewing guidelines shown beside the caption cards, and the keyboard map they explain.

The text is Markdown written by whoever runs the studio: ``MEDCAP_GUIDELINES`` names a file;
without it the default below is used (kept in the code, so an installed package always has it).
The list of error categories and their keys is appended from the configured categories, so the
panel never disagrees with the checkboxes.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

from medcap.review import VERDICTS, ErrorCategory

DEFAULT_GUIDELINES = """\
### How to review

Judge each caption against the **image** (the ground truth, when there is one, is a guide,
not the answer).

| Verdict | Use it when |
|---|---|
| **1 · correct** | Every statement is true of the image; nothing important is missing. |
| **2 · minor error** | A detail is wrong or missing, but a reader would not be misled about the finding. |
| **3 · major error** | A wrong side, organ, modality or finding, or a missed main finding. |
| **4 · unusable** | Not a description of this image (empty, repeated words, another image). |

Tick every **error category** that applies, and **clinically significant** when the error
could change what a clinician does. A corrected caption and a note are optional.

In blind mode the captions are called *Caption A, B, ...* in an order of their own for each
reviewer; the model names appear once you have saved a verdict on every caption of the image.
"""

MAX_GUIDELINES_CHARS = 20_000
SIGNIFICANT_SHORTCUT_CHOICES = "cxzy"


@dataclass(frozen=True)
class KeyMap:
    """Which key does what on the Compare tab (read by the page's keyboard script)."""

    verdicts: tuple[str, ...]
    categories: tuple[str, ...]  # one key per category, in checkbox order ("" = none)
    significant: str

    def as_json(self) -> str:
        return json.dumps({"verdicts": list(self.verdicts), "categories": list(self.categories),
                           "significant": self.significant})


def key_map(categories: Sequence[ErrorCategory]) -> KeyMap:
    """1-4 for the verdicts, each category's own letter, and the first free letter of
    `SIGNIFICANT_SHORTCUT_CHOICES` for the clinically-significant flag."""
    taken = {c.shortcut for c in categories if c.shortcut}
    significant = next((k for k in SIGNIFICANT_SHORTCUT_CHOICES if k not in taken), "")
    return KeyMap(tuple(str(n) for n in range(1, len(VERDICTS) + 1)),
                  tuple(c.shortcut for c in categories), significant)


def keys_markdown(categories: Sequence[ErrorCategory], keys: KeyMap) -> str:
    """The keyboard section of the panel, from the configured categories."""
    letters = ", ".join(f"`{c.shortcut}`" for c in categories if c.shortcut)
    lines = ["### Keys (outside text boxes)",
             "- `1`–`4`: verdict of the highlighted caption (blue frame)"]
    if letters:
        lines.append(f"- {letters}: tick an error category (its letter is in brackets)")
    if keys.significant:
        lines.append(f"- `{keys.significant}`: clinically significant")
    lines += ["- `Ctrl`+`Enter`: save the highlighted caption (also in a text box), "
              "then highlight the next",
              "- `←` / `→`: highlight the previous / next caption",
              "- `J` or `↓`: next item for me (the queue); `K` or `↑`: back",
              "- `Esc`: leave a text box, so the keys above work again"]
    return "\n".join(lines)


def load_guidelines(categories: Sequence[ErrorCategory], env: Mapping[str, str] | None = None
                    ) -> str:
    """The panel's Markdown: the configured file (or the default) plus the key list."""
    env = os.environ if env is None else env
    path = env.get("MEDCAP_GUIDELINES")
    text = DEFAULT_GUIDELINES
    if path:
        try:
            text = Path(path).read_text(encoding="utf-8")[:MAX_GUIDELINES_CHARS]
        except (OSError, UnicodeDecodeError) as exc:
            text = f"*Could not read the guidelines file {_plain(path)}: {_plain(str(exc))}*\n\n" \
                + DEFAULT_GUIDELINES
    return text.rstrip() + "\n\n" + keys_markdown(categories, key_map(categories)) + "\n"


def _plain(text: str) -> str:
    """Configured text shown inside Markdown without being read as Markdown."""
    return "".join("\\" + ch if ch in "\\`*_{}[]()<>#+-.!|" else ch for ch in text)
