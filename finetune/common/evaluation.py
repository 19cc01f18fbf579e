"""Validation captions and their scores, produced exactly as the app will produce them.

Captions come from `medcap.models`' own captioner for the family, handed the model being trained
instead of loading one, so validation uses the same preprocessing, prompt and decoding as the app.
Scores come from `medcap.metrics`; where that package is absent, BLEU-4 falls back to nltk's
corpus BLEU on lower-cased whitespace tokens (close to, not equal to, pycocoevalcap's).
"""

from __future__ import annotations

import logging
from typing import Any, Sequence

import torch

from finetune.common.config import FinetuneError
from finetune.common.data import CaptionRecord, load_rgb
from medcap.models import ModelSpec, create_captioner

log = logging.getLogger(__name__)


def score(candidates: Sequence[str], references: Sequence[str],
          metrics: Sequence[str]) -> dict[str, float]:
    """Corpus scores of `candidates` against one reference each, for the requested metrics."""
    from medcap.metrics import score_captions

    table = score_captions(list(candidates), list(references), metrics=list(metrics))
    return {name: float(value) for name, value in table.corpus.items() if name in metrics}


def model_dtype(model: Any) -> torch.dtype:
    """The dtype inputs must have: that of the input embeddings (fp32 after k-bit preparation)."""
    try:
        return model.get_input_embeddings().weight.dtype
    except AttributeError:
        return next(p.dtype for p in model.parameters() if p.is_floating_point())


def caption_with_model(spec: ModelSpec, model: Any, processor: Any,
                       images: Sequence[Any]) -> list[str]:
    """Caption `images` with an in-memory model through the family's `medcap` captioner."""
    captioner = create_captioner(spec)
    captioner.attach(model, processor, dtype=model_dtype(model))
    was_training = model.training
    model.eval()
    try:
        return [c.text for c in captioner.caption(list(images))]
    finally:
        model.train(was_training)


class CaptionEvaluator:
    """Captions a fixed validation subset and scores it; shards the work over processes."""

    def __init__(self, spec: ModelSpec, processor: Any, records: Sequence[CaptionRecord],
                 metrics: Sequence[str], required: Sequence[str] = ()) -> None:
        self.spec = spec
        self.processor = processor
        self.records = list(records)
        self.metrics = tuple(metrics)
        self.required = tuple(required)  # the metric that picks the best checkpoint

    def check(self) -> None:
        """Fail before training, not at the first validation, if a needed metric cannot run."""
        self.scores(["a bright lesion"], ["a bright lesion"])

    def scores(self, captions: Sequence[str], references: Sequence[str]) -> dict[str, float]:
        """Corpus scores; a missing best-checkpoint metric is an error, others a warning."""
        scores = score(captions, references, self.metrics)
        missing = [name for name in self.metrics if name not in scores]
        if missing:
            log.warning("caption metrics not available here: %s", ", ".join(missing))
        if any(name in missing for name in self.required):
            raise FinetuneError(
                f"the best-checkpoint metric {self.required[0]!r} could not be computed (its "
                f"resources are missing here); choose --best-metric loss or bleu4.")
        return scores

    def captions(self, model: Any, process_index: int = 0, num_processes: int = 1) -> list[str]:
        """This process's share of the captions (every `num_processes`-th record)."""
        mine = self.records[process_index::num_processes]
        return caption_with_model(self.spec, model, self.processor, [load_rgb(r) for r in mine])

    def evaluate(self, model: Any, process_index: int = 0, num_processes: int = 1,
                 gather: Any = None) -> tuple[dict[str, float], list[dict[str, str]]]:
        """Scores over all records, and (image_id, reference, caption) samples."""
        mine = self.captions(model, process_index, num_processes)
        # `gather` (accelerate's gather_object) concatenates every process's list in rank order.
        flat = gather(mine) if gather is not None and num_processes > 1 else mine
        captions = _interleave(flat, num_processes, len(self.records))
        references = [r.caption or "" for r in self.records]
        samples = [{"image_id": r.image_id, "reference": ref, "caption": cap}
                   for r, ref, cap in zip(self.records, references, captions)]
        scores = self.scores(captions, references)
        return scores, samples


def _interleave(flat: list[str], num_processes: int, total: int) -> list[str]:
    """Undo the round-robin sharding: record i was captioned by process i % num_processes."""
    if num_processes == 1:
        return list(flat)
    per_process, start = [], 0
    for rank in range(num_processes):
        size = len(range(rank, total, num_processes))
        per_process.append(flat[start:start + size])
        start += size
    return [per_process[i % num_processes][i // num_processes] for i in range(total)]
