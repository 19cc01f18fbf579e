"""`score_captions`: every requested metric over a list of pairs, with the expensive parts shared."""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import pandas as pd

from medcap.metrics.bertscore import BertScorer, BertScores, MetricUnavailable
from medcap.metrics.bleu import bleu_counts, bleu_scores
from medcap.metrics.cider import cider_d_scores
from medcap.metrics.config import DEFAULT_METRICS, MetricsConfig, metric_names
from medcap.metrics.facts_scores import expand_fact_metrics, fact_columns
from medcap.metrics.meteor import MeteorScorer
from medcap.metrics.ngrams import ngram_counts
from medcap.metrics.normalize import Normalization
from medcap.metrics.rouge import rouge_1_f, rouge_l_f
from medcap.metrics.table import ScoreTable
from medcap.metrics.tokenize import coco_tokenize, rouge_tokenize
from medcap.metrics.wordnet_data import WordNetUnavailable, load_wordnet

#: Metrics whose corpus score is not the mean of the per-caption scores.
_CORPUS_LEVEL = ("bleu1", "bleu2", "bleu3", "bleu4")
_scorer_cache: dict[tuple, object] = {}


def _meteor_scorer(config: MetricsConfig) -> MeteorScorer:
    """One scorer per configuration, so stem and synonym caches survive across calls."""
    key = ("meteor", config.meteor, str(config.cache_dir))
    if key not in _scorer_cache:
        _scorer_cache[key] = MeteorScorer(load_wordnet(config.cache_dir), config.meteor)
    return _scorer_cache[key]


def _bert_scorer(config: MetricsConfig) -> BertScorer:
    """Loaded once; a missing model is remembered too, so each model's table doesn't retry it."""
    key = ("bertscore", config.bertscore)
    if key not in _scorer_cache:
        try:
            _scorer_cache[key] = BertScorer(config.bertscore)
        except MetricUnavailable as exc:
            _scorer_cache[key] = exc
    scorer = _scorer_cache[key]
    if isinstance(scorer, MetricUnavailable):
        raise scorer
    return scorer


def loaded_bertscore_layers(config: MetricsConfig) -> int | None:
    """The layer the BERTScore scorer for `config` uses, once it has been loaded."""
    scorer = _scorer_cache.get(("bertscore", config.bertscore))
    return scorer.num_layers if isinstance(scorer, BertScorer) else None


def _rouge_stemmer(config: MetricsConfig):
    if not config.rouge.use_stemmer:
        return None
    from nltk.stem import porter

    return porter.PorterStemmer()  # rouge-score's own choice (NLTK_EXTENSIONS mode)


class _Pairs:
    """Normalised texts and their token lists, computed once and shared by the metrics."""

    def __init__(self, candidates: Sequence[str], references: Sequence[str], normalization: Normalization, config: MetricsConfig):
        self.config = config
        self.candidates = [normalization.apply(text) for text in candidates]
        self.references = [normalization.apply(text) for text in references]
        self._coco: tuple | None = None
        self._rouge: tuple | None = None
        self._ngrams: tuple | None = None
        self._bert: BertScores | None = None

    @property
    def coco_tokens(self) -> tuple[list[list[str]], list[list[str]]]:
        if self._coco is None:
            cache: dict[str, list[str]] = {}

            def tokens(text: str) -> list[str]:
                if text not in cache:
                    cache[text] = coco_tokenize(text)
                return cache[text]

            self._coco = ([tokens(t) for t in self.candidates], [tokens(t) for t in self.references])
        return self._coco

    @property
    def rouge_tokens(self) -> tuple[list[list[str]], list[list[str]]]:
        if self._rouge is None:
            stemmer = _rouge_stemmer(self.config)
            self._rouge = ([rouge_tokenize(t, stemmer) for t in self.candidates], [rouge_tokenize(t, stemmer) for t in self.references])
        return self._rouge

    @property
    def ngrams(self):
        if self._ngrams is None:
            max_n = max(self.config.bleu.max_n, self.config.cider.max_n)
            cand, ref = self.coco_tokens
            cache: dict[tuple, list] = {}

            def counts(tokens: list[str]):
                key = tuple(tokens)
                if key not in cache:
                    cache[key] = ngram_counts(tokens, max_n)
                return cache[key]

            self._ngrams = ([counts(t) for t in cand], [counts(t) for t in ref])
        return self._ngrams


def _bleu(pairs: _Pairs) -> tuple[dict[str, np.ndarray], dict[str, float]]:
    cand_tokens, ref_tokens = pairs.coco_tokens
    cand_ngrams, ref_ngrams = pairs.ngrams
    max_n = pairs.config.bleu.max_n
    cand_len = [len(t) for t in cand_tokens]
    ref_len = [len(t) for t in ref_tokens]
    correct, guess = bleu_counts(cand_ngrams, ref_ngrams, cand_len, max_n)
    per_caption, corpus = bleu_scores(correct, guess, cand_len, ref_len)
    names = [f"bleu{k}" for k in range(1, max_n + 1)]
    return ({name: per_caption[:, k] for k, name in enumerate(names)}, {name: float(corpus[k]) for k, name in enumerate(names)})


def _cider(pairs: _Pairs) -> np.ndarray:
    cand_ngrams, ref_ngrams = pairs.ngrams
    n = pairs.config.cider.max_n
    if n < pairs.config.bleu.max_n:  # counts were built up to BLEU's order
        cand_ngrams, ref_ngrams = [c[:n] for c in cand_ngrams], [r[:n] for r in ref_ngrams]
    return cider_d_scores(cand_ngrams, ref_ngrams, pairs.config.cider.sigma)


def _meteor(pairs: _Pairs) -> np.ndarray:
    scorer = _meteor_scorer(pairs.config)
    cand_tokens, ref_tokens = pairs.coco_tokens
    return np.array([scorer.score(ref, cand) for cand, ref in zip(cand_tokens, ref_tokens)], dtype=np.float64)


def _rouge_l(pairs: _Pairs) -> np.ndarray:
    cand_tokens, ref_tokens = pairs.rouge_tokens
    return np.array([rouge_l_f(ref, cand) for cand, ref in zip(cand_tokens, ref_tokens)], dtype=np.float64)


def _rouge_1(pairs: _Pairs) -> np.ndarray:
    cand_tokens, ref_tokens = pairs.rouge_tokens
    return np.array([rouge_1_f(ref, cand) for cand, ref in zip(cand_tokens, ref_tokens)], dtype=np.float64)


def bert_scores(pairs: _Pairs) -> BertScores:
    """P, R and F1 computed once for the pairs, whichever of the three was asked for first."""
    if pairs._bert is None:
        pairs._bert = _bert_scorer(pairs.config).score_all(pairs.candidates, pairs.references)
    return pairs._bert


def _clipscore(pairs: _Pairs) -> np.ndarray:
    raise MetricUnavailable("CLIPScore compares a caption with its image; scoring text pairs has no images to embed")


_SINGLE: dict[str, Callable[[_Pairs], np.ndarray]] = {
    "meteor": _meteor, "rouge_l": _rouge_l, "rouge1": _rouge_1, "cider_d": _cider,
    "bertscore": lambda pairs: bert_scores(pairs).f1,
    "bertscore_precision": lambda pairs: bert_scores(pairs).precision,
    "bertscore_recall": lambda pairs: bert_scores(pairs).recall,
    "clipscore": _clipscore,
}


def register_scorer(name: str, scorer: Callable[[_Pairs], np.ndarray]) -> None:
    """Plug in a per-caption metric (its name and label go in `config.METRICS`)."""
    _SINGLE[name] = scorer


def known_metrics() -> tuple[str, ...]:
    """Metric names `score_captions` accepts: the table's lexical and model metrics with a scorer,
    and the fact check's."""
    scored = tuple(name for name in metric_names("lexical", "model") if name in _SINGLE or name.startswith("bleu"))
    return scored + metric_names("facts")


def score_captions(
    candidates: Sequence[str],
    references: Sequence[str],
    *,
    metrics: Sequence[str] | None = None,
    normalization: str = "none",
    config: MetricsConfig | None = None,
) -> ScoreTable:
    """Score each candidate against its reference on every requested metric.

    A metric that cannot run (no WordNet, no BERTScore model) lands in `unavailable` with the
    reason and the others still run. CIDEr-D's document frequencies come from `references`, so
    score one model's corpus per call. The fact metrics read the captions as written (before
    normalisation); `fact_contradictions` is a text column plus 0/1 `contradicts_*` columns.
    """
    if len(candidates) != len(references):
        raise ValueError(f"{len(candidates)} candidates but {len(references)} references")
    requested = list(dict.fromkeys(metrics if metrics is not None else DEFAULT_METRICS))
    unknown = [name for name in requested if name not in known_metrics()]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {list(known_metrics())}")
    config = config or MetricsConfig()
    norm = Normalization.named(normalization)
    pairs = _Pairs(candidates, references, norm, config)

    columns: dict[str, np.ndarray] = {}
    corpus: dict[str, float] = {}
    unavailable: dict[str, str] = {}
    if any(name.startswith("bleu") for name in requested):
        bleu_columns, bleu_corpus = _bleu(pairs)
        for name in requested:
            if name in bleu_columns:
                columns[name], corpus[name] = bleu_columns[name], bleu_corpus[name]
    for name in requested:
        if name in _SINGLE:
            try:
                columns[name] = _SINGLE[name](pairs)
            except (MetricUnavailable, WordNetUnavailable) as exc:
                unavailable[name] = str(exc)

    if norm.empty_pair_scores_one:
        both_empty = np.array([not c.strip() and not r.strip() for c, r in zip(pairs.candidates, pairs.references)], dtype=bool)
        for name in columns:
            columns[name] = np.where(both_empty, 1.0, columns[name])
    columns.update(fact_columns(candidates, references, requested))  # raw text; no empty-pair rule
    ordered = [name for name in expand_fact_metrics(requested) if name in columns]
    per_caption = pd.DataFrame({name: columns[name] for name in ordered}, index=pd.RangeIndex(len(candidates)))
    ordered = [name for name in ordered if pd.api.types.is_numeric_dtype(per_caption[name])]
    for name in ordered:
        if name not in _CORPUS_LEVEL:
            corpus[name] = float(per_caption[name].mean()) if len(per_caption) else float("nan")
    return ScoreTable(per_caption=per_caption, corpus={name: corpus[name] for name in ordered}, unavailable=unavailable, normalization=norm.name)
