"""A small BLIP built from scratch, for the offline demo (`python -m finetune.blip --base-model scratch`).

No captioning weights can be downloaded here (or anywhere offline), so the demo starts from a
randomly initialised BLIP whose word vocabulary is taken from the training captions: a few
million parameters that learn the synthetic phantom captions in a couple of CPU minutes. It is
not a substitute for fine-tuning the pretrained BLIP on real data.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Iterable

SCRATCH = "scratch"
SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
CHARACTERS = list("abcdefghijklmnopqrstuvwxyz0123456789")
MAX_WORDS = 8000


def caption_vocabulary(captions: Iterable[str], max_words: int = MAX_WORDS) -> list[str]:
    """Special tokens, characters (so unseen words still tokenize) and the commonest words."""
    counts = Counter(w for c in captions for w in re.findall(r"[a-z0-9]+|[^\sa-z0-9]", c.lower()))
    words = [w for w, _ in counts.most_common(max_words)]
    pieces = CHARACTERS + ["##" + c for c in CHARACTERS]
    return SPECIAL_TOKENS + list(dict.fromkeys(pieces + words))


def build_scratch_blip(directory: str | Path, captions: Iterable[str], *, image_size: int = 64,
                       hidden_size: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """Save a randomly initialised BLIP + processor to `directory` (kept if already there)."""
    import torch
    from transformers import (
        BertTokenizer, BlipConfig, BlipForConditionalGeneration, BlipImageProcessor,
        BlipProcessor,
    )

    directory = Path(directory)
    if (directory / "config.json").is_file():
        return directory  # a resumed run keeps the base it started from
    directory.mkdir(parents=True, exist_ok=True)
    vocab_file = directory / "vocab.txt"
    vocab_file.write_text("\n".join(caption_vocabulary(captions)) + "\n", encoding="utf-8")
    tokenizer = BertTokenizer(str(vocab_file), bos_token="[DEC]")
    tokenizer.model_input_names = ["input_ids", "attention_mask"]
    torch.manual_seed(seed)
    heads = max(1, hidden_size // 32)
    shared = {"hidden_size": hidden_size, "intermediate_size": 4 * hidden_size,
              "num_hidden_layers": layers, "num_attention_heads": heads}
    config = BlipConfig(
        vision_config={**shared, "image_size": image_size, "patch_size": 8},
        text_config={**shared, "vocab_size": len(tokenizer), "max_position_embeddings": 128,
                     "bos_token_id": tokenizer.convert_tokens_to_ids("[DEC]"),
                     "pad_token_id": tokenizer.pad_token_id,
                     "sep_token_id": tokenizer.sep_token_id,
                     "eos_token_id": tokenizer.sep_token_id},
        projection_dim=hidden_size,
    )
    model = BlipForConditionalGeneration(config)
    image_processor = BlipImageProcessor(size={"height": image_size, "width": image_size})
    BlipProcessor(image_processor=image_processor, tokenizer=tokenizer).save_pretrained(directory)
    model.save_pretrained(directory)
    return directory
