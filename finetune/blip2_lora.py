"""LoRA on BLIP-2's language model (`Salesforce/blip2-opt-6.7b`), 8-bit on a GPU, as the seed did.

    python -m finetune.blip2_lora --output-dir runs/blip2-lora            # 8-bit on one GPU
    python -m finetune.blip2_lora --quantization 4bit --batch-size 8 ...  # smaller GPUs
    accelerate launch --num_processes 4 -m finetune.blip2_lora ...        # one 8-bit copy per GPU

The vision encoder, Q-Former and OPT stay frozen; LoRA adapts OPT's attention projections
(`q_proj`, `v_proj`, which only OPT has). The loss covers the caption and its end token, not the
image query tokens. The run folder holds the best adapter and a manifest naming the base model,
so `--model blip2-lora=RUN_DIR` loads base + adapter in medcap.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

if __package__ in (None, ""):  # run as a file: finetune.common would not import
    sys.exit("Run it as a module from the repository folder: python -m finetune.blip2_lora --help")

import torch

from finetune.common.cli import run_script
from finetune.common.collate import answer_lengths, label_answers, truncate_caption
from finetune.common.config import LoraTrainConfig, option
from finetune.common.models import (
    QUANTIZATION_CHOICES, apply_lora, base_weights_dir, quantization_settings, training_dtype,
    train_and_generation_processors, validation_spec,
)
from finetune.common.training import Recipe, RunResult, train_family

OPT_LORA_TARGETS = ("q_proj", "v_proj")


@dataclass
class Blip2LoraConfig(LoraTrainConfig):
    """Settings of a BLIP-2 LoRA fine-tune."""

    base_model: str = option("Salesforce/blip2-opt-6.7b", "BLIP-2 model (hub id or folder)")
    output_dir: str = option("runs/blip2-lora", "run folder")
    learning_rate: float = option(1e-4, "peak learning rate")
    batch_size: int = option(4, "images per device per step")
    grad_accum: int = option(8, "gradient accumulation steps")
    quantization: str = option("auto", "load the frozen base in 8-bit or 4-bit (bitsandbytes, "
                               "CUDA only); auto: 8bit on a GPU, none on a CPU",
                               choices=QUANTIZATION_CHOICES)

    family: ClassVar[str] = "blip2"


class Blip2Collator:
    """Images + captions -> BLIP-2 inputs: query placeholders, then bos, caption, eos."""

    def __init__(self, processor: Any, max_caption_tokens: int) -> None:
        self.processor = processor
        self.max_caption_tokens = max_caption_tokens

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        tokenizer = self.processor.tokenizer
        # The end token is part of the target, so the adapted model learns where to stop.
        captions = [truncate_caption(tokenizer, e["caption"], self.max_caption_tokens)
                    + tokenizer.eos_token for e in examples]
        encoded = self.processor(images=[e["image"] for e in examples], text=captions,
                                 padding=True, return_tensors="pt")
        encoded["labels"] = label_answers(encoded["input_ids"], encoded["attention_mask"],
                                          answer_lengths(tokenizer, captions))
        return dict(encoded)


def load_processors(weights: Path) -> tuple[Any, Any]:
    """A right-padded processor for training and a left-padded copy for generation."""
    from transformers import Blip2Processor

    return train_and_generation_processors(Blip2Processor.from_pretrained(str(weights)))


def build_recipe(config: Blip2LoraConfig) -> Recipe:
    from transformers import Blip2ForConditionalGeneration

    weights = base_weights_dir(config)
    quantization, load_kwargs = quantization_settings(config.quantization)
    load_kwargs.setdefault("dtype", training_dtype(False))
    model = Blip2ForConditionalGeneration.from_pretrained(str(weights), **load_kwargs)
    model = apply_lora(model, config, OPT_LORA_TARGETS, quantized=quantization is not None)
    processor, generation_processor = load_processors(weights)
    return Recipe(
        family="blip2", model=model, processor=processor, eval_processor=generation_processor,
        collator=Blip2Collator(processor, config.max_caption_tokens), weights="adapter",
        eval_spec=validation_spec(config, "blip2", quantization=quantization),
    )


def train(config: Blip2LoraConfig, callbacks: Sequence[Any] = ()) -> RunResult:
    return train_family(config, build_recipe, callbacks)


def main(argv: Sequence[str] | None = None) -> int:
    return run_script(Blip2LoraConfig, train, argv)


if __name__ == "__main__":
    sys.exit(main())
