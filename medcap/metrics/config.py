"""Every tunable of the metrics layer in one place, so a score can be traced to its settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

@dataclass(frozen=True)
class MetricInfo:
    """A metric column: its display label and kind ("lexical", "model", "facts"; "contradiction"
    for the 0/1 columns the fact check adds; "protocol" for a column only an official-evaluator
    protocol writes)."""

    label: str
    kind: str = "lexical"


#: THE table of metric names and display labels, in the order tables show them; the app's cards,
#: table and summaries, the CLI and the exports read labels from here. Add a metric here (or with
#: `register_metric`) and give `medcap.metrics.scoring` its scorer.
METRICS: dict[str, MetricInfo] = {
    "bleu1": MetricInfo("BLEU-1"), "bleu2": MetricInfo("BLEU-2"), "bleu3": MetricInfo("BLEU-3"),
    "bleu4": MetricInfo("BLEU-4"), "meteor": MetricInfo("METEOR"), "rouge_l": MetricInfo("ROUGE-L"),
    "rouge1": MetricInfo("ROUGE-1"), "cider_d": MetricInfo("CIDEr-D"),
    "bertscore": MetricInfo("BERTScore F1", "model"),
    "bertscore_precision": MetricInfo("BERTScore P", "model"),
    "bertscore_recall": MetricInfo("BERTScore R", "model"),
    "clipscore": MetricInfo("CLIPScore", "model"),
    "bleu": MetricInfo("BLEU (ImageCLEF)", "protocol"),
    # The clinical fact check (medcap.metrics.facts_compare). "fact_contradictions" is a text
    # column and brings the 0/1 "contradiction" columns, whose means are the shares of captions
    # that contradict their reference, overall and by kind.
    "fact_precision": MetricInfo("Fact precision", "facts"), "fact_recall": MetricInfo("Fact recall", "facts"),
    "fact_f1": MetricInfo("Fact F1", "facts"), "fact_contradictions": MetricInfo("Contradictions", "facts"),
    "contradicts_reference": MetricInfo("Contradicts reference", "contradiction"),
    "contradicts_laterality": MetricInfo("Contradicts laterality", "contradiction"),
    "contradicts_modality": MetricInfo("Contradicts modality", "contradiction"),
    "contradicts_anatomy": MetricInfo("Contradicts anatomy", "contradiction"),
    "contradicts_finding": MetricInfo("Contradicts finding", "contradiction"),
}


#: The scores a caption card shows and tables, summaries and exports put first.
HEADLINE_METRICS: tuple[str, ...] = ("bleu4", "meteor", "rouge_l", "cider_d")


def register_metric(name: str, label: str, kind: str = "model") -> None:
    """Add a metric name and label to the table (a scorer must also be registered in scoring)."""
    METRICS[name] = MetricInfo(label, kind)


def metric_label(name: str) -> str:
    """The display label of a metric column; an unknown column shows its own name."""
    info = METRICS.get(name)
    return info.label if info else name


def metric_names(*kinds: str) -> tuple[str, ...]:
    return tuple(name for name, info in METRICS.items() if info.kind in kinds)


LEXICAL_METRICS: tuple[str, ...] = metric_names("lexical")
MODEL_METRICS: tuple[str, ...] = metric_names("model")
FACT_METRICS: tuple[str, ...] = metric_names("facts")
CONTRADICTION_COLUMNS: tuple[str, ...] = metric_names("contradiction")
ALL_METRICS: tuple[str, ...] = LEXICAL_METRICS + MODEL_METRICS + FACT_METRICS
#: What `score_captions` computes when no metric list is given (CLIPScore needs images).
DEFAULT_METRICS: tuple[str, ...] = LEXICAL_METRICS + ("bertscore", "bertscore_precision", "bertscore_recall") + FACT_METRICS


def default_cache_dir() -> Path:
    """Where prepared data (the nltk WordNet folder) lives; MEDCAP_CACHE_DIR overrides."""
    configured = os.environ.get("MEDCAP_CACHE_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "medcap"


@dataclass(frozen=True)
class BleuConfig:
    """pycocoevalcap's BLEU: up to 4-grams, 'closest' reference length."""

    max_n: int = 4


@dataclass(frozen=True)
class CiderConfig:
    """pycocoevalcap's CIDEr-D: 1..4-grams, Gaussian length penalty sigma 6, scaled by 10."""

    max_n: int = 4
    sigma: float = 6.0


@dataclass(frozen=True)
class MeteorConfig:
    """nltk's METEOR defaults (alpha, beta, gamma) over exact, Porter-stem and WordNet matches."""

    alpha: float = 0.9
    beta: float = 3.0
    gamma: float = 0.5


@dataclass(frozen=True)
class RougeConfig:
    """rouge-score's F-measure; no stemming by default (ImageCLEF's ROUGE-1 uses none)."""

    use_stemmer: bool = False


@dataclass(frozen=True)
class BertScoreConfig:
    """BERTScore as ImageCLEFmedical computes it: deberta-xlarge-mnli, layer 40, IDF from references.

    `model` may be a hub id (looked up in the local Hugging Face cache only) or a local directory.
    `num_layers` None takes bert-score's layer for a known model and the last layer otherwise.
    `batch_size` changes speed only: sentences are never padded, so scores do not depend on it.
    """

    model: str = field(default_factory=lambda: os.environ.get("MEDCAP_BERTSCORE_MODEL", "microsoft/deberta-xlarge-mnli"))
    num_layers: int | None = None
    idf: bool = True
    batch_size: int = 32
    device: str | None = None


@dataclass(frozen=True)
class MetricsConfig:
    """All metric settings together; `score_captions` takes one (defaults match the references)."""

    bleu: BleuConfig = field(default_factory=BleuConfig)
    cider: CiderConfig = field(default_factory=CiderConfig)
    meteor: MeteorConfig = field(default_factory=MeteorConfig)
    rouge: RougeConfig = field(default_factory=RougeConfig)
    bertscore: BertScoreConfig = field(default_factory=BertScoreConfig)
    cache_dir: Path = field(default_factory=default_cache_dir)
