"""BERTScore (F1) as the `bert-score` package computes it, using transformers directly.

ImageCLEFmedical ranks captions by BERTScore with `microsoft/deberta-xlarge-mnli` (layer 40)
and IDF weights from the reference captions. The model is never downloaded here: it is loaded
from a local directory or the local Hugging Face cache only, and its absence is reported as a
reason, never as a score of 0.
"""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np

from medcap.metrics.config import BertScoreConfig


class MetricUnavailable(RuntimeError):
    """A metric cannot run here; the message says why and how to enable it."""


class BertScorer:
    """Greedy cosine matching of contextual token embeddings, IDF-weighted (bert-score 0.3.13)."""

    def __init__(self, config: BertScoreConfig = BertScoreConfig()) -> None:
        self.config = config
        self._tokenizer, self._model, self._device = _load(config)

    def _encode(self, sentence: str) -> list[int]:
        """bert_score.utils.sent_encode: strip, special tokens, truncate to the model maximum."""
        sentence = sentence.strip()
        if not sentence:  # bert-score's build_inputs_with_special_tokens([]) (gone in transformers 5)
            return self._tokenizer.encode("", add_special_tokens=True)
        return self._tokenizer.encode(
            sentence, add_special_tokens=True, max_length=self._tokenizer.model_max_length, truncation=True
        )

    def _idf(self, references: list[list[int]]) -> dict[int, float]:
        counts: Counter = Counter()
        for ids in references:
            counts.update(set(ids))
        documents = len(references)
        return {token: math.log((documents + 1) / (count + 1)) for token, count in counts.items()}

    def _embed(self, encoded: list[list[int]]):
        """Unit-normalised embeddings, padded, with the attention mask, for a batch of id lists."""
        import torch

        width = max(len(ids) for ids in encoded)
        pad = self._tokenizer.pad_token_id or 0
        ids = torch.tensor([row + [pad] * (width - len(row)) for row in encoded], device=self._device)
        mask = torch.tensor([[1] * len(row) + [0] * (width - len(row)) for row in encoded], device=self._device)
        with torch.no_grad():
            hidden = self._model(ids, attention_mask=mask).last_hidden_state.float()
        return hidden / hidden.norm(dim=-1, keepdim=True), mask

    def _weights(self, encoded: list[list[int]], idf: dict[int, float] | None, width: int, default: float):
        import torch

        special = {self._tokenizer.sep_token_id, self._tokenizer.cls_token_id}
        rows = []
        for ids in encoded:
            row = [0.0 if token in special else (idf.get(token, default) if idf is not None else 1.0) for token in ids]
            rows.append(row + [0.0] * (width - len(row)))
        return torch.tensor(rows, device=self._device)

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """Per-pair BERTScore F1 (0 where either side is empty, as bert-score does)."""
        import torch

        cand_ids = [self._encode(text) for text in candidates]
        ref_ids = [self._encode(text) for text in references]
        idf = self._idf(ref_ids) if self.config.idf else None
        unseen_idf = math.log(len(ref_ids) + 1)
        scores = np.zeros(len(cand_ids))
        size = self.config.batch_size
        for start in range(0, len(cand_ids), size):
            hyp_batch, ref_batch = cand_ids[start:start + size], ref_ids[start:start + size]
            hyp_emb, hyp_mask = self._embed(hyp_batch)
            ref_emb, ref_mask = self._embed(ref_batch)
            sim = torch.bmm(hyp_emb, ref_emb.transpose(1, 2))
            sim = sim * (hyp_mask.unsqueeze(2).float() * ref_mask.unsqueeze(1).float())
            hyp_w = self._weights(hyp_batch, idf, hyp_emb.shape[1], unseen_idf)
            ref_w = self._weights(ref_batch, idf, ref_emb.shape[1], unseen_idf)
            precision = (sim.max(dim=2)[0] * hyp_w / hyp_w.sum(dim=1, keepdim=True)).sum(dim=1)
            recall = (sim.max(dim=1)[0] * ref_w / ref_w.sum(dim=1, keepdim=True)).sum(dim=1)
            empty = (hyp_mask.sum(dim=1) == 2) | (ref_mask.sum(dim=1) == 2)
            f1 = 2 * precision * recall / (precision + recall)
            f1 = torch.where(empty | torch.isnan(f1), torch.zeros_like(f1), f1)
            scores[start:start + len(hyp_batch)] = f1.cpu().numpy()
        return scores


def _load(config: BertScoreConfig):
    """Tokenizer and layer-truncated encoder from local files only, or MetricUnavailable."""
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError as exc:
        raise MetricUnavailable(f"BERTScore needs torch and transformers ({exc})") from exc
    try:
        tokenizer = AutoTokenizer.from_pretrained(config.model, local_files_only=True)
        model = AutoModel.from_pretrained(config.model, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise MetricUnavailable(
            f"BERTScore model {config.model!r} is not in the local Hugging Face cache and the hub is "
            f"not used; download it where the hub is reachable (`hf download {config.model}`) or point "
            f"MEDCAP_BERTSCORE_MODEL at a local copy ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from exc
    if hasattr(model, "decoder") and hasattr(model, "encoder"):
        model = model.encoder
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    if config.num_layers is not None and layers is not None:
        if not 0 <= config.num_layers <= len(layers):
            raise MetricUnavailable(f"BERTScore layer {config.num_layers} does not exist in {config.model!r} ({len(layers)} layers)")
        model.encoder.layer = torch.nn.ModuleList(list(layers)[: config.num_layers])
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return tokenizer, model.eval().to(device), device
