"""Caption quality metrics (BLEU, METEOR, ROUGE, CIDEr-D, model-based ones when available).

`score_captions(candidates, references)` returns a `ScoreTable` of per-caption and corpus scores
that equal the reference implementations: BLEU-1..4 and CIDEr-D as pycocoevalcap computes them,
METEOR as nltk 3.10 computes it, ROUGE-L / ROUGE-1 as rouge-score computes them, BERTScore
P/R/F1 as bert-score computes them unpadded. The clinical fact check (`fact_spans`,
`compare_facts`) adds fact precision / recall / F1 and contradictions of side, modality, anatomy
and negated findings. Tokenisation for BLEU, METEOR and CIDEr-D is a pure-Python port of
pycocoevalcap's PTB tokenizer (see `medcap.metrics.tokenize`).

`score_protocol` reproduces an official evaluator instead (ImageCLEFmedical 2022/2023/2025,
pycocoevalcap with Java); see `medcap.metrics.protocols`. Metric names and display labels live
in one table, `medcap.metrics.config.METRICS`.
"""

from medcap.metrics.bertscore import MetricUnavailable
from medcap.metrics.config import (
    ALL_METRICS, CONTRADICTION_COLUMNS, DEFAULT_METRICS, FACT_METRICS, LEXICAL_METRICS,
    BertScoreConfig, BleuConfig, CiderConfig, MeteorConfig, MetricsConfig, RougeConfig, metric_label,
)
from medcap.metrics.facts import SHADE_KINDS, FactSpan, fact_spans
from medcap.metrics.facts_lexicon import FACT_KINDS
from medcap.metrics.facts_compare import (
    CONTRADICTION_CATEGORIES, FactComparison, compare_facts, contradicting_spans,
    fact_contradictions, suggested_categories,
)
from medcap.metrics.highlight import shared_words
from medcap.metrics.normalize import NORMALIZATIONS, Normalization
from medcap.metrics.protocols import PROTOCOLS, score_protocol
from medcap.metrics.scoring import score_captions
from medcap.metrics.table import ScoreTable
from medcap.metrics.tokenize import coco_tokenize, rouge_tokenize

__all__ = [
    "ALL_METRICS", "CONTRADICTION_CATEGORIES", "CONTRADICTION_COLUMNS", "DEFAULT_METRICS",
    "FACT_KINDS", "FACT_METRICS", "LEXICAL_METRICS", "NORMALIZATIONS", "SHADE_KINDS",
    "FactComparison", "FactSpan", "compare_facts", "contradicting_spans", "fact_contradictions",
    "fact_spans", "suggested_categories",
    "BertScoreConfig", "BleuConfig", "CiderConfig", "MeteorConfig", "MetricsConfig", "RougeConfig",
    "MetricUnavailable", "Normalization", "ScoreTable",
    "PROTOCOLS", "coco_tokenize", "metric_label", "rouge_tokenize", "score_captions", "score_protocol",
    "shared_words",
]
