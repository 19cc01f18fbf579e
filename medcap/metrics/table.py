"""The result of scoring: per-caption rows, corpus scores, and why any metric is missing."""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd


@dataclass
class ScoreTable:
    """Scores of one set of (candidate, reference) pairs.

    `per_caption` has one row per pair and one column per metric that ran; `corpus` holds the
    corpus-level scores papers report (pycocoevalcap's corpus BLEU; the mean for the others);
    `unavailable` maps each requested metric that could not run to the reason.
    """

    per_caption: pd.DataFrame
    corpus: dict[str, float]
    unavailable: dict[str, str] = field(default_factory=dict)
    normalization: str = "none"

    @property
    def metrics(self) -> list[str]:
        """The numeric columns (text columns such as `fact_contradictions` are not scores)."""
        return [name for name in self.per_caption.columns if pd.api.types.is_numeric_dtype(self.per_caption[name])]

    def mean(self) -> dict[str, float]:
        """Mean per-caption score of each metric (what ImageCLEFmedical reports); NaN rows skipped."""
        return {name: float(self.per_caption[name].mean()) if len(self.per_caption) else float("nan") for name in self.metrics}
