"""Label building the family collators share: the loss falls on the caption, nothing else.

Each sequence is [image tokens / prompt ...][caption + end token]; whatever the padding side, the
caption is the last `n` real (attention-mask 1) tokens of its row, where `n` is the caption's
length tokenized on its own. Everything before it (image placeholders, chat template, prompt) and
all padding get the ignore index -100.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch

IGNORE_INDEX = -100


def truncate_caption(tokenizer: Any, caption: str, max_tokens: int) -> str:
    """`caption` cut to `max_tokens` tokens, so the end token and the image always stay in."""
    ids = tokenizer(caption, add_special_tokens=False)["input_ids"]
    if len(ids) <= max_tokens:
        return caption
    return tokenizer.decode(ids[:max_tokens], skip_special_tokens=True).strip()


def answer_lengths(tokenizer: Any, answers: Sequence[str]) -> list[int]:
    """Token count of each answer text as it appears at the end of the full sequence."""
    encoded = tokenizer(list(answers), add_special_tokens=False)["input_ids"]
    return [len(ids) for ids in encoded]


def label_answers(input_ids: torch.Tensor, attention_mask: torch.Tensor,
                  lengths: Sequence[int]) -> torch.Tensor:
    """Labels equal to `input_ids` on each row's last `lengths[i]` real tokens, else -100."""
    labels = torch.full_like(input_ids, IGNORE_INDEX)
    for row, length in enumerate(lengths):
        real = attention_mask[row].nonzero().flatten()
        if length > len(real):
            raise ValueError(f"answer of {length} tokens is longer than its sequence ({len(real)})")
        keep = real[len(real) - length:]
        labels[row, keep] = input_ids[row, keep]
    return labels
