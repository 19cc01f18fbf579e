"""Time `score_captions` on 3 models x 10,000 real ROCO captions against the naive per-sentence loop.

The fact check (fact precision/recall/F1 and contradictions) is timed on the same pairs, with each
model's captions made distinct (no cache hits across models, as with real models) while the
references repeat across models, as they do in `medcap evaluate`. CPU seconds are printed beside
wall seconds because the wall clock of a shared machine also counts other people's work.

Pairing (documented, honest): ROCO has no model outputs, so "model k" captions image i of the
test split with the validation caption at position (i + k) mod n: real radiology language,
unrelated content, like a weak captioner. 10,000 rows per model cycle through the 8,179 test
captions. The naive loop calls the reference libraries one pair at a time (pycocoevalcap Bleu,
nltk meteor_score, rouge-score), plus pycocoevalcap Cider once per model (CIDEr-D is corpus-level);
it runs on a sample and is extrapolated linearly, because in full it takes many minutes.

    python -m benchmarks.bench_metrics [--rows 10000] [--models 3] [--naive-sample 600]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import time
from pathlib import Path

from medcap.metrics import FACT_METRICS, LEXICAL_METRICS, MetricsConfig, score_captions  # noqa: E402
from medcap.metrics.tokenize import coco_tokenize  # noqa: E402
from medcap.metrics.wordnet_data import load_wordnet  # noqa: E402


def shared_dir() -> Path:
    configured = os.environ.get("MEDCAP_SHARED_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[1].parent / "shared"


def read_captions(split: str) -> list[str]:
    path = shared_dir() / "data" / "roco" / split / "captions.txt"
    return [line.split("\t", 1)[1].strip() for line in path.read_text(encoding="utf-8").splitlines() if "\t" in line]


def model_pairs(test: list[str], validation: list[str], rows: int, model: int) -> tuple[list[str], list[str]]:
    references = [test[i % len(test)] for i in range(rows)]
    candidates = [validation[(i + model) % len(validation)] for i in range(rows)]
    return candidates, references


def naive_scores(candidates: list[str], references: list[str], wordnet) -> float:
    """Seconds for the per-sentence reference loop over these pairs (+ corpus CIDEr-D)."""
    from nltk.translate.meteor_score import meteor_score
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from rouge_score.rouge_scorer import RougeScorer

    rouge = RougeScorer(["rougeL", "rouge1"])
    start = time.perf_counter()
    cand_tokens = [coco_tokenize(text) for text in candidates]
    ref_tokens = [coco_tokenize(text) for text in references]
    with contextlib.redirect_stdout(io.StringIO()):
        for cand, ref, cand_text, ref_text in zip(cand_tokens, ref_tokens, candidates, references):
            Bleu(4).compute_score({0: [" ".join(ref)]}, {0: [" ".join(cand)]}, verbose=0)
            meteor_score([ref], cand, wordnet=wordnet)
            rouge.score(ref_text, cand_text)
        Cider().compute_score({i: [" ".join(t)] for i, t in enumerate(ref_tokens)}, {i: [" ".join(t)] for i, t in enumerate(cand_tokens)})
    return time.perf_counter() - start


def fact_check_seconds(test: list[str], validation: list[str], rows: int, models: int) -> tuple[float, float]:
    """Wall and CPU seconds of the fact metrics over every model, from a cold cache."""
    from medcap.metrics.facts import _cached_spans

    _cached_spans.cache_clear()
    wall = cpu = 0.0
    for model in range(models):
        candidates, references = model_pairs(test, validation, rows, model)
        candidates = [f"{text} (model {model})" for text in candidates]
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        score_captions(candidates, references, metrics=FACT_METRICS)
        wall += time.perf_counter() - start_wall
        cpu += time.process_time() - start_cpu
    return wall, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--naive-sample", type=int, default=600, help="pairs per model timed in the naive loop")
    args = parser.parse_args()

    test, validation = read_captions("test"), read_captions("validation")
    config = MetricsConfig()
    start = time.perf_counter()
    wordnet = load_wordnet(config.cache_dir)
    print(f"WordNet reader ready in {time.perf_counter() - start:.2f} s (one-off per process)")

    fast_total = 0.0
    for model in range(args.models):
        candidates, references = model_pairs(test, validation, args.rows, model)
        start = time.perf_counter()
        table = score_captions(candidates, references, metrics=LEXICAL_METRICS, config=config)
        elapsed = time.perf_counter() - start
        fast_total += elapsed
        corpus = ", ".join(f"{k}={v:.4f}" for k, v in table.corpus.items())
        print(f"model {model}: {args.rows} captions in {elapsed:.2f} s  [{corpus}]")
    print(f"score_captions, {args.models} models x {args.rows} captions, all lexical metrics: {fast_total:.2f} s")
    facts_wall, facts_cpu = fact_check_seconds(test, validation, args.rows, args.models)
    print(f"fact check, {args.models} models x {args.rows} captions: {facts_wall:.2f} s wall, {facts_cpu:.2f} s CPU "
          f"({facts_wall / fast_total:.2f}x the lexical metrics' time)")

    sample = min(args.naive_sample, args.rows)
    candidates, references = model_pairs(test, validation, sample, 0)
    naive_sample_s = naive_scores(candidates, references, wordnet)
    naive_estimate = naive_sample_s / sample * args.rows * args.models
    start = time.perf_counter()
    score_captions(candidates, references, metrics=LEXICAL_METRICS, config=config)
    fast_sample_s = time.perf_counter() - start
    print(f"naive per-sentence loop: {naive_sample_s:.2f} s for {sample} pairs "
          f"-> {naive_estimate:.0f} s estimated for {args.models} x {args.rows}")
    print(f"same {sample} pairs with score_captions: {fast_sample_s:.2f} s (ratio {naive_sample_s / fast_sample_s:.1f}x)")
    print(f"full-corpus ratio (naive estimate / measured): {naive_estimate / fast_total:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
