"""Text normalisations applied before scoring, so results can say exactly what was compared."""

from __future__ import annotations

import re
import string
from dataclasses import dataclass

_DIGIT_RUN = re.compile(r"\d+")
_PUNCTUATION_TABLE = str.maketrans("", "", string.punctuation)


@dataclass(frozen=True)
class Normalization:
    """One named normalisation.

    "none" leaves captions as they are. "imageclef" reproduces the ImageCLEFmedical Caption
    evaluator: lower-case, each run of digits becomes `number`, Python's `string.punctuation` is
    removed, and a pair whose captions are both empty afterwards scores 1 on every metric.
    """

    name: str = "none"
    lowercase: bool = False
    digit_run_replacement: str | None = None
    strip_punctuation: bool = False
    empty_pair_scores_one: bool = False

    def apply(self, text: str) -> str:
        if self.lowercase:
            text = text.lower()
        if self.digit_run_replacement is not None:
            text = _DIGIT_RUN.sub(self.digit_run_replacement, text)
        if self.strip_punctuation:
            text = text.translate(_PUNCTUATION_TABLE)
        return text

    @classmethod
    def named(cls, name: str) -> "Normalization":
        try:
            return NORMALIZATIONS[name]
        except KeyError:
            raise ValueError(
                f"unknown normalization {name!r}; choose one of {sorted(NORMALIZATIONS)}"
            ) from None


NORMALIZATIONS: dict[str, Normalization] = {
    "none": Normalization(),
    "imageclef": Normalization(
        name="imageclef",
        lowercase=True,
        digit_run_replacement="number",
        strip_punctuation=True,
        empty_pair_scores_one=True,
    ),
}
