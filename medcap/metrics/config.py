"""Every tunable of the metrics layer in one place, so a score can be traced to its settings."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

#: Metric names in the order the tables show them.
LEXICAL_METRICS: tuple[str, ...] = (
    "bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "rouge1", "cider_d",
)
MODEL_METRICS: tuple[str, ...] = ("bertscore", "clipscore")
#: The clinical fact check (medcap.metrics.facts_compare). "fact_contradictions" is a text column
#: and brings the 0/1 columns in CONTRADICTION_COLUMNS, whose means are the shares of captions
#: that contradict their reference, overall and by kind.
FACT_METRICS: tuple[str, ...] = ("fact_precision", "fact_recall", "fact_f1", "fact_contradictions")
CONTRADICTION_COLUMNS: tuple[str, ...] = (
    "contradicts_reference", "contradicts_laterality", "contradicts_modality",
    "contradicts_anatomy", "contradicts_finding",
)
ALL_METRICS: tuple[str, ...] = LEXICAL_METRICS + MODEL_METRICS + FACT_METRICS
#: What `score_captions` computes when no metric list is given (CLIPScore needs images).
DEFAULT_METRICS: tuple[str, ...] = LEXICAL_METRICS + ("bertscore",) + FACT_METRICS


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
    """

    model: str = field(default_factory=lambda: os.environ.get("MEDCAP_BERTSCORE_MODEL", "microsoft/deberta-xlarge-mnli"))
    num_layers: int | None = 40
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
