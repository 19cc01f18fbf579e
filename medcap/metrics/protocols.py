"""Evaluation protocols: score captions exactly as an official evaluator does.

`medcap` is medcap's own metric set (`score_captions`); the others reproduce a public evaluator
and report its aggregates under its own names in `official`:

| protocol        | official evaluator                               | official names                  |
| --------------- | ------------------------------------------------ | ------------------------------- |
| imageclef-2025  | ImageCLEFmedical Caption 2025/2026 evaluator     | rouge1, bertscore               |
| imageclef-2023  | ImageCLEFmedical Caption 2023 evaluator          | rouge1, bertscore               |
| imageclef-2022  | ImageCLEFmedical Caption 2022 AIcrowd evaluator  | bleu, rouge1                    |
| coco            | pycocoevalcap 1.2 (COCO caption evaluation)      | Bleu_1..Bleu_4, METEOR, ROUGE_L, CIDEr |

Per-caption columns keep medcap's metric names (their labels live in `config.METRICS`); `official`
maps those columns to the evaluator's names. A part that cannot run here is named in
`unavailable` and never scored 0.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import pandas as pd

from medcap.metrics.bertscore import MetricUnavailable
from medcap.metrics.bleu import bleu_counts, bleu_scores
from medcap.metrics.cider import cider_d_scores
from medcap.metrics.coco import JAVA_TOKENIZER, PYTHON_TOKENIZER, find_tools, java_tokenize, meteor_15, python_tokenize, rouge_l_coco
from medcap.metrics.config import BertScoreConfig, MetricsConfig
from medcap.metrics.imageclef import CLEF_NORMALIZATION, both_empty, rouge1_clef, scores_2022
from medcap.metrics.ngrams import ngram_counts

DEFAULT_PROTOCOL = "medcap"

#: ImageCLEF 2025's composites and the parts that need models or images medcap does not have.
COMPOSITES_2025: dict[str, dict[str, str | None]] = {
    "relevance": {"bertscore": None, "rouge1": None,
                  "image_similarity": "MedImageInsight image-caption similarity needs the images and the MedImageInsight model"},
    "factuality": {"medcat": "MedCAT concept overlap needs a licensed UMLS MedCAT model",
                   "alignscore": "AlignScore needs the AlignScore checkpoint and roberta-large"},
}


@dataclass
class ProtocolScores:
    """One model's scores under a protocol."""

    per_caption: pd.DataFrame
    corpus: dict[str, float]
    official: dict[str, float] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    composites: dict[str, dict] = field(default_factory=dict)


@dataclass(frozen=True)
class Protocol:
    name: str
    evaluator: str
    official_names: dict[str, str]
    #: The evaluator's BERTScore settings (deberta-xlarge-mnli, or MEDCAP_BERTSCORE_MODEL; layer 40
    #: by bert-score's table for that model, the last layer for a model of another depth).
    bertscore: BertScoreConfig | None = None
    run: Callable[..., ProtocolScores] | None = None


def _frame(columns: dict[str, np.ndarray], size: int) -> pd.DataFrame:
    return pd.DataFrame(columns, index=pd.RangeIndex(size))


def _means(frame: pd.DataFrame) -> dict[str, float]:
    return {name: float(frame[name].mean()) if len(frame) else float("nan") for name in frame.columns}


def _official(protocol: "Protocol", corpus: dict[str, float]) -> dict[str, float]:
    return {official: corpus[column] for column, official in protocol.official_names.items() if column in corpus}


def _run_2022(protocol: "Protocol", candidates, references, config) -> ProtocolScores:
    frame = _frame(scores_2022(candidates, references), len(candidates))
    corpus = _means(frame)
    return ProtocolScores(frame, corpus, _official(protocol, corpus))


def _bertscore_columns(candidates, references, bert_config: BertScoreConfig, idf_sentences) -> dict[str, np.ndarray]:
    from medcap.metrics.scoring import _bert_scorer

    scorer = _bert_scorer(replace(MetricsConfig(), bertscore=bert_config))
    scores = scorer.score_all(candidates, references, idf_sentences=idf_sentences)
    return {"bertscore": scores.f1, "bertscore_precision": scores.precision, "bertscore_recall": scores.recall}


def _run_clef(protocol: "Protocol", candidates, references, config: MetricsConfig, *, raw_empty_rule: bool) -> ProtocolScores:
    normalised_c = [CLEF_NORMALIZATION.apply(text) for text in candidates]
    normalised_r = [CLEF_NORMALIZATION.apply(text) for text in references]
    columns = {"rouge1": rouge1_clef(candidates, references)}
    unavailable = {}
    try:
        idf_sentences = normalised_r if config.bertscore.idf else None
        columns.update(_bertscore_columns(normalised_c, normalised_r, config.bertscore, idf_sentences))
    except MetricUnavailable as exc:
        unavailable["bertscore"] = str(exc)
    ones = both_empty(candidates, references, normalised=not raw_empty_rule)
    columns = {name: np.where(ones, 1.0, values) for name, values in columns.items()}
    frame = _frame(columns, len(candidates))
    corpus = _means(frame)
    result = ProtocolScores(frame, corpus, _official(protocol, corpus), unavailable)
    if raw_empty_rule:
        result.composites = _composites_2025(result.official, unavailable)
    return result


def _composites_2025(official: dict[str, float], unavailable: dict[str, str]) -> dict[str, dict]:
    """Relevance and factuality as the 2025 evaluator averages them: null with the missing parts named."""
    composites = {}
    for name, parts in COMPOSITES_2025.items():
        missing = {part: reason for part, reason in parts.items() if reason is not None}
        missing.update({part: unavailable[part] for part in parts if part in unavailable})
        present = {part: official[part] for part in parts if part in official and part not in missing}
        value = float(np.mean(list(present.values()))) if not missing else None
        composites[name] = {"value": value, "parts": present, "missing": missing}
    return composites


def _run_coco(protocol: "Protocol", candidates, references, config) -> ProtocolScores:
    tools = find_tools()
    notes, unavailable = [], {}
    if tools.available:
        tokenized = java_tokenize(list(candidates) + list(references), tools)
        notes.append(f"tokenizer: {JAVA_TOKENIZER}")
    else:
        tokenized = python_tokenize(list(candidates) + list(references))
        notes.append(f"tokenizer: {PYTHON_TOKENIZER}: {tools.reason}")
    cand_text, ref_text = tokenized[:len(candidates)], tokenized[len(candidates):]
    cand_tokens, ref_tokens = [t.split() for t in cand_text], [t.split() for t in ref_text]
    cand_ngrams = [ngram_counts(t, 4) for t in cand_tokens]
    ref_ngrams = [ngram_counts(t, 4) for t in ref_tokens]
    cand_len, ref_len = [len(t) for t in cand_tokens], [len(t) for t in ref_tokens]
    correct, guess = bleu_counts(cand_ngrams, ref_ngrams, cand_len, 4)
    bleu_each, bleu_corpus = bleu_scores(correct, guess, cand_len, ref_len)
    columns = {f"bleu{k + 1}": bleu_each[:, k] for k in range(4)}
    corpus = {f"bleu{k + 1}": float(bleu_corpus[k]) for k in range(4)}
    try:
        corpus["meteor"], columns["meteor"] = meteor_15(cand_text, ref_text, tools)
    except MetricUnavailable as exc:
        unavailable["meteor"] = str(exc)
    columns["rouge_l"] = np.array([rouge_l_coco(c, r) for c, r in zip(cand_text, ref_text)], dtype=np.float64)
    columns["cider_d"] = cider_d_scores(cand_ngrams, ref_ngrams, sigma=6.0)
    for name in ("rouge_l", "cider_d"):
        corpus[name] = float(columns[name].mean()) if len(candidates) else float("nan")
    order = [name for name in protocol.official_names if name in columns]
    frame = _frame({name: columns[name] for name in order}, len(candidates))
    corpus = {name: corpus[name] for name in order}
    return ProtocolScores(frame, corpus, _official(protocol, corpus), unavailable, notes)


PROTOCOLS: dict[str, Protocol] = {
    "medcap": Protocol("medcap", "medcap's own metrics (see medcap.metrics)", {}),
    "imageclef-2025": Protocol(
        "imageclef-2025", "ImageCLEFmedical Caption 2025/2026 evaluator",
        {"rouge1": "rouge1", "bertscore": "bertscore"}, BertScoreConfig(idf=True),
        lambda p, c, r, cfg: _run_clef(p, c, r, cfg, raw_empty_rule=True)),
    "imageclef-2023": Protocol(
        "imageclef-2023", "ImageCLEFmedical Caption 2023 evaluator",
        {"rouge1": "rouge1", "bertscore": "bertscore"}, BertScoreConfig(idf=False),
        lambda p, c, r, cfg: _run_clef(p, c, r, cfg, raw_empty_rule=False)),
    "imageclef-2022": Protocol(
        "imageclef-2022", "ImageCLEFmedical Caption 2022 AIcrowd evaluator",
        {"bleu": "bleu", "rouge1": "rouge1"}, None, _run_2022),
    "coco": Protocol(
        "coco", "pycocoevalcap 1.2 (Java PTB tokenizer, METEOR 1.5)",
        {"bleu1": "Bleu_1", "bleu2": "Bleu_2", "bleu3": "Bleu_3", "bleu4": "Bleu_4", "meteor": "METEOR",
         "rouge_l": "ROUGE_L", "cider_d": "CIDEr"}, None, _run_coco),
}


def score_protocol(name: str, candidates: Sequence[str], references: Sequence[str],
                   config: MetricsConfig | None = None) -> ProtocolScores:
    """One model's corpus scored as protocol `name` does (not `medcap`: use `score_captions`)."""
    protocol = PROTOCOLS[name]
    if protocol.run is None:
        raise ValueError("the medcap protocol is score_captions")
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} references")
    return protocol.run(protocol, list(candidates), list(references), config or MetricsConfig())
