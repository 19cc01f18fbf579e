"""Per-caption scores for cards and the evaluation table, from one place.

Scores come from the `medcap evaluate` CSV when one is configured; otherwise they are computed
with `medcap.metrics.score_captions` over each model's captions in the comparison set (CIDEr-D
needs the whole corpus for its document frequencies, so a single pair is never scored alone).
Computation happens on first use and again only for a model that got new captions.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Mapping

import numpy as np
import pandas as pd

from medcap.app.comparison import ComparisonSet
from medcap.metrics.config import HEADLINE_METRICS
from medcap.results import TEXT_COLUMNS

CARD_METRICS: tuple[str, ...] = HEADLINE_METRICS


@dataclass(frozen=True)
class ModelScores:
    """One model's per-caption scores (indexed by image id), corpus scores and missing metrics."""

    per_caption: pd.DataFrame
    corpus: Mapping[str, float]
    unavailable: Mapping[str, str]


def shared_words(candidate: str, reference: str) -> set[str]:
    """Words to highlight: the metric tokenizer's view of the words both captions share."""
    from medcap.metrics import shared_words as metric_shared_words

    return set(metric_shared_words(candidate, reference))


def score_model(captions: list[str], references: list[str], image_ids: list[str],
                metrics: tuple[str, ...] | None = None) -> ModelScores:
    """Score one model's corpus; metrics that cannot run come back in `unavailable`. By default
    the card metrics plus the fact check (fact F1 and friends, `fact_contradictions` as text and
    the 0/1 `contradicts_*` columns the table filters on)."""
    from medcap.metrics import FACT_METRICS, score_captions

    if metrics is None:
        metrics = CARD_METRICS + FACT_METRICS

    table = score_captions(captions, references, metrics=list(metrics))
    per_caption = table.per_caption.copy()
    per_caption.index = pd.Index(image_ids, name="image_id")
    return ModelScores(per_caption, dict(table.corpus), dict(table.unavailable))


class ScoreBook:
    """Scores keyed by (image_id, model). With `require_reference` only captions whose item has a
    reference are scored (uploads: a score against no reference would be a meaningless 0)."""

    def __init__(self, comparison: ComparisonSet, evaluation: pd.DataFrame | None = None,
                 require_reference: bool = False):
        self._comparison = comparison
        self._evaluation = evaluation
        self._require_reference = require_reference
        self._by_model: dict[str, ModelScores] = {}
        self._lock = threading.Lock()
        if evaluation is not None:
            self._by_model = _split_evaluation(evaluation)

    @property
    def from_file(self) -> bool:
        return self._evaluation is not None

    def invalidate(self, model: str) -> None:
        """A model got a new caption: rescore its corpus next time (computed scores only)."""
        if not self.from_file:
            with self._lock:
                self._by_model.pop(model, None)

    def model_scores(self, model: str) -> ModelScores:
        with self._lock:
            if model not in self._by_model:
                pairs = [p for p in self._comparison.pairs(model)
                         if p[2].strip() or not self._require_reference]
                self._by_model[model] = score_model(
                    [c for _, c, _ in pairs], [r for _, _, r in pairs], [i for i, _, _ in pairs])
            return self._by_model[model]

    def scores(self, image_id: str, model: str) -> dict[str, float]:
        per_caption = self.model_scores(model).per_caption
        if image_id not in per_caption.index:
            return {}
        row = per_caption.loc[image_id]
        if isinstance(row, pd.DataFrame):  # duplicated id: take the last result
            row = row.iloc[-1]
        return {name: float(value) for name, value in row.items()
                if isinstance(value, (int, float, np.floating)) and np.isfinite(value)}

    def table_frame(self, models: list[str]) -> pd.DataFrame:
        """The per-image evaluation table: one row per (image_id, model)."""
        if self._evaluation is not None:
            frame = self._evaluation.copy()
            if "modality" not in frame or (frame["modality"] == "").all():
                frame["modality"] = frame["image_id"].map(self._modality)
            return frame
        parts = []
        for model in models:
            pairs = self._comparison.pairs(model)
            if not pairs:
                continue
            ids = [i for i, _, _ in pairs]
            scored = self.model_scores(model).per_caption
            scored = scored[~scored.index.duplicated(keep="last")].reindex(ids)
            part = pd.DataFrame({
                "image_id": [i for i, _, _ in pairs], "model": model,
                "modality": [self._modality(i) for i, _, _ in pairs],
                "generated_caption": [c for _, c, _ in pairs],
                "original_caption": [r for _, _, r in pairs],
            })
            for column in scored.columns:
                part[column] = scored[column].to_numpy()
            parts.append(part)
        if not parts:
            return pd.DataFrame(columns=["image_id", "model", "modality", "generated_caption",
                                         "original_caption"])
        return pd.concat(parts, ignore_index=True)

    def summary(self, models: list[str], verdicts: Mapping[str, Mapping[str, int]],
                verdict_names: tuple[str, ...]) -> pd.DataFrame:
        """Per model: caption count, corpus score per metric, and review verdict counts."""
        rows = []
        for model in models:
            scores = self.model_scores(model)
            row: dict[str, object] = {"model": model, "captions": len(scores.per_caption)}
            metrics = scores.corpus or {c: float(scores.per_caption[c].mean())
                                        for c in scores.per_caption.columns}
            row.update({name: round(value, 3) for name, value in metrics.items()})
            counts = verdicts.get(model, {})
            row.update({name: counts.get(name, 0) for name in verdict_names})
            row["unavailable"] = _group_reasons(scores.unavailable)
            rows.append(row)
        return pd.DataFrame(rows)

    def _modality(self, image_id: str) -> str:
        item = self._comparison.get(image_id)
        return item.modality if item else ""


def _group_reasons(unavailable: Mapping[str, str]) -> str:
    """'bleu4, meteor: reason' instead of repeating one reason per metric."""
    by_reason: dict[str, list[str]] = {}
    for metric, reason in unavailable.items():
        by_reason.setdefault(reason, []).append(metric)
    return "; ".join(f"{', '.join(metrics)}: {reason}" for reason, metrics in by_reason.items())


def _split_evaluation(frame: pd.DataFrame) -> dict[str, ModelScores]:
    """Per-model score frames from an evaluation CSV (its metric columns are the numeric ones)."""
    metrics = [c for c in frame.columns if c not in TEXT_COLUMNS and c != "processing_time_sec"
               and pd.api.types.is_numeric_dtype(frame[c])]
    summary = frame.attrs.get("summary_models", {})
    result = {}
    for model, group in frame.groupby("model", sort=False):
        per_caption = group.set_index("image_id")[metrics]
        saved = summary.get(str(model), {})
        # Corpus BLEU/CIDEr are not means of per-caption scores: take medcap evaluate's own
        # corpus numbers from its summary JSON; the mean only when that file is missing.
        corpus = {m: float(saved.get("corpus", {}).get(m, per_caption[m].mean())) for m in metrics}
        result[str(model)] = ModelScores(per_caption, corpus, dict(saved.get("unavailable", {})))
    return result


