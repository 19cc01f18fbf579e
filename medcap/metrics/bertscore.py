"""BERTScore precision, recall and F1 as the `bert-score` package (0.3.13) computes them.

ImageCLEFmedical ranks captions by BERTScore with `microsoft/deberta-xlarge-mnli` (layer 40)
and IDF weights from the reference captions, scoring one pair at a time. Padding a batch changes
the embeddings in the last digits and, with some models, by up to 3e-3, so every distinct sentence
is embedded only beside sentences of the same token length (never padded): the scores are the
same whatever the batch size, and equal bert-score's unpadded (batch size 1) scores.

The model is never downloaded here: it is loaded from a local directory or the local Hugging Face
cache only, and its absence is reported as a reason, never as a score of 0.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from medcap.metrics.config import BertScoreConfig

#: bert-score 0.3.13's default layer for the models ImageCLEFmedical and papers use
#: (`bert_score.utils.model2layers`); any other model uses its last layer unless told.
DEFAULT_LAYERS: dict[str, int] = {
    "microsoft/deberta-xlarge-mnli": 40, "microsoft/deberta-large-mnli": 18,
    "microsoft/deberta-base-mnli": 9, "roberta-large": 17, "roberta-base": 10,
    "bert-base-uncased": 9, "distilbert-base-uncased": 5,
    "allenai/scibert_scivocab_uncased": 8, "microsoft/deberta-v2-xlarge-mnli": 17,
}


class MetricUnavailable(RuntimeError):
    """A metric cannot run here; the message says why and how to enable it."""


@dataclass(frozen=True)
class BertScores:
    """Per-pair BERTScore precision, recall and F1 (bert-score's P, R, F)."""

    precision: np.ndarray
    recall: np.ndarray
    f1: np.ndarray


class BertScorer:
    """Greedy cosine matching of contextual token embeddings, optionally IDF-weighted."""

    def __init__(self, config: BertScoreConfig = BertScoreConfig()) -> None:
        self.config = config
        self._tokenizer, self._model, self._device, self.num_layers = _load(config)

    def _encode(self, sentence: str) -> tuple[int, ...]:
        """bert_score.utils.sent_encode: strip, special tokens, truncate to the model maximum."""
        sentence = sentence.strip()
        if not sentence:  # bert-score's build_inputs_with_special_tokens([]) (gone in transformers 5)
            return tuple(self._tokenizer.encode("", add_special_tokens=True))
        extra = {"add_prefix_space": True} if _is_byte_level(self._tokenizer) else {}
        return tuple(self._tokenizer.encode(
            sentence, add_special_tokens=True, max_length=self._tokenizer.model_max_length,
            truncation=True, **extra))

    def idf_weights(self, sentences: Sequence[str]) -> dict[int, float]:
        """bert_score.utils.get_idf_dict: log((N + 1) / (documents with the token + 1))."""
        counts: Counter = Counter()
        for text in sentences:
            counts.update(set(self._encode(text)))
        documents = len(sentences)
        return {token: math.log((documents + 1) / (count + 1)) for token, count in counts.items()}

    def _embed_all(self, encoded: Sequence[tuple[int, ...]]) -> dict[tuple[int, ...], object]:
        """Unit-normalised last-layer embeddings of each distinct id sequence, never padded."""
        import torch

        by_length: dict[int, list[tuple[int, ...]]] = defaultdict(list)
        for ids in dict.fromkeys(encoded):
            by_length[len(ids)].append(ids)
        size = max(1, self.config.batch_size)
        embeddings: dict[tuple[int, ...], object] = {}
        for group in by_length.values():
            for start in range(0, len(group), size):
                batch = group[start:start + size]
                ids = torch.tensor(batch, device=self._device)
                with torch.no_grad():
                    hidden = self._model(ids, attention_mask=torch.ones_like(ids)).last_hidden_state.float().cpu()
                hidden = hidden / hidden.norm(dim=-1, keepdim=True)
                embeddings.update(zip(batch, hidden))
        return embeddings

    def _weights(self, ids: tuple[int, ...], idf: dict[int, float] | None, unseen: float):
        import torch

        special = {self._tokenizer.sep_token_id, self._tokenizer.cls_token_id}
        values = [0.0 if token in special else (idf.get(token, unseen) if idf is not None else 1.0) for token in ids]
        return torch.tensor(values, dtype=torch.float32)

    def score_all(self, candidates: Sequence[str], references: Sequence[str],
                  idf_sentences: Sequence[str] | None = None) -> BertScores:
        """P, R, F1 per pair; 0 where either side is empty, as bert-score does.

        IDF weights come from `idf_sentences` when given (ImageCLEF: every normalised reference
        of the test set), else from `references`; with `config.idf` off every token weighs 1.
        """
        cand_ids = [self._encode(text) for text in candidates]
        ref_ids = [self._encode(text) for text in references]
        idf = None
        unseen = 1.0
        if self.config.idf:
            pool = list(idf_sentences) if idf_sentences is not None else list(references)
            idf = self.idf_weights(pool)
            unseen = math.log(len(pool) + 1)
        embedded = self._embed_all(cand_ids + ref_ids)
        rows = [_pair_scores(embedded[c], embedded[r], self._weights(c, idf, unseen), self._weights(r, idf, unseen), len(c), len(r))
                for c, r in zip(cand_ids, ref_ids)]
        array = np.array(rows, dtype=np.float64).reshape(len(rows), 3)
        return BertScores(precision=array[:, 0], recall=array[:, 1], f1=array[:, 2])

    def score(self, candidates: Sequence[str], references: Sequence[str]) -> np.ndarray:
        """Per-pair BERTScore F1."""
        return self.score_all(candidates, references).f1


def _pair_scores(hyp, ref, hyp_w, ref_w, hyp_len: int, ref_len: int) -> tuple[float, float, float]:
    """bert_score.utils.greedy_cos_idf for one pair (float32, the package's arithmetic)."""
    import torch

    sim = hyp @ ref.T
    precision = (sim.max(dim=1)[0] * (hyp_w / hyp_w.sum())).sum()
    recall = (sim.max(dim=0)[0] * (ref_w / ref_w.sum())).sum()
    f1 = 2 * precision * recall / (precision + recall)
    if hyp_len == 2 or ref_len == 2:  # only [CLS] [SEP]: an empty sentence
        precision, recall = torch.zeros(()), torch.zeros(())
    if hyp_len == 2 or ref_len == 2 or torch.isnan(f1):
        f1 = torch.zeros(())
    return float(precision), float(recall), float(f1)


def _is_byte_level(tokenizer) -> bool:
    """bert-score passes add_prefix_space to GPT-2 and RoBERTa tokenizers (byte-level BPE)."""
    names = {cls.__name__ for cls in type(tokenizer).__mro__}
    return bool(names & {"GPT2Tokenizer", "RobertaTokenizer", "GPT2TokenizerFast", "RobertaTokenizerFast"})


def default_layers(model: str, depth: int) -> int:
    """bert-score's layer for a known model (by hub id or folder name), else the last layer."""
    if model in DEFAULT_LAYERS:
        return DEFAULT_LAYERS[model]
    folder = Path(model).name
    for name, layer in DEFAULT_LAYERS.items():
        if name.split("/")[-1] == folder:
            return layer
    return depth


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
            f"--bertscore-model / MEDCAP_BERTSCORE_MODEL at a local copy "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from exc
    if hasattr(model, "decoder") and hasattr(model, "encoder"):
        model = model.encoder
    layers = getattr(getattr(model, "encoder", None), "layer", None)
    depth = len(layers) if layers is not None else 0
    num_layers = config.num_layers
    if num_layers is None:  # a model of another depth than the table's gets its last layer
        num_layers = min(default_layers(config.model, depth), depth) if depth else 0
    if layers is not None:
        if not 1 <= num_layers <= depth:
            raise MetricUnavailable(
                f"--bertscore-layers {num_layers} does not exist in {config.model!r}, which has "
                f"{depth} layers; choose 1..{depth}")
        model.encoder.layer = torch.nn.ModuleList(list(layers)[:num_layers])
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    return tokenizer, model.eval().to(device), device, num_layers
