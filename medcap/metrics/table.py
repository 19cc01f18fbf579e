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
        return list(self.per_caption.columns)

    def mean(self) -> dict[str, float]:
        """Mean per-caption score of each metric (what ImageCLEFmedical reports)."""
        return {name: float(self.per_caption[name].mean()) if len(self.per_caption) else float("nan") for name in self.metrics}
