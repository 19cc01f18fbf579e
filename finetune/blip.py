"""Full fine-tune of BLIP (`Salesforce/blip-image-captioning-base`) on radiology captions.

    python -m finetune.blip --data eltorio/ROCOv2-radiology --output-dir runs/blip-roco
    accelerate launch --num_processes 2 -m finetune.blip --output-dir runs/blip-roco
    python -m finetune.blip --help

All weights train, as in the MedBLIP seed. The run folder holds the best checkpoint as a complete
model + processor and a `medcap.json` manifest, so `--model NAME=RUN_DIR` loads it in medcap.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, replace
from typing import Any, ClassVar, Sequence

if __package__ in (None, ""):  # run as a file: finetune.common would not import
    sys.exit("Run it as a module from the repository folder: python -m finetune.blip --help")

import torch

from finetune.common.cli import run_script
from finetune.common.collate import IGNORE_INDEX, truncate_caption
from finetune.common.config import TrainConfig, option
from finetune.common.data import load_splits
from finetune.common.models import base_weights_dir, training_dtype, validation_spec
from finetune.common.scratch import SCRATCH, build_scratch_blip
from finetune.common.training import Recipe, RunResult, train_family


@dataclass
class BlipTrainConfig(TrainConfig):
    """Settings of a BLIP full fine-tune."""

    base_model: str = option("Salesforce/blip-image-captioning-base",
                             "BLIP captioning model (hub id or folder) to fine-tune, or "
                             "'scratch': a small random BLIP for the offline demo")
    output_dir: str = option("runs/blip", "run folder")
    learning_rate: float = option(5e-5, "peak learning rate")
    freeze_vision: bool = option(False, "keep the ViT frozen and train the text decoder only")
    scratch_image_size: int = option(64, "image side of the --base-model scratch model")

    family: ClassVar[str] = "blip"


class BlipCollator:
    """Images + captions -> BLIP inputs; the caption starts with the decoder's [DEC] token.

    BLIP's `generate` replaces the first token with the decoder bos token; training on the
    tokenizer's [CLS] instead would teach a start the model never sees when captioning.
    """

    def __init__(self, processor: Any, bos_token_id: int, max_caption_tokens: int) -> None:
        self.processor = processor
        self.bos_token_id = bos_token_id
        self.max_caption_tokens = max_caption_tokens

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        tokenizer = self.processor.tokenizer
        captions = [truncate_caption(tokenizer, e["caption"], self.max_caption_tokens)
                    for e in examples]
        encoded = self.processor(images=[e["image"] for e in examples], text=captions,
                                 padding=True, return_tensors="pt")
        input_ids = encoded["input_ids"].clone()
        input_ids[:, 0] = self.bos_token_id
        labels = input_ids.masked_fill(encoded["attention_mask"] == 0, IGNORE_INDEX)
        return {"pixel_values": encoded["pixel_values"], "input_ids": input_ids,
                "attention_mask": encoded["attention_mask"], "labels": labels}


def build_recipe(config: BlipTrainConfig) -> Recipe:
    from transformers import BlipForConditionalGeneration, BlipProcessor

    weights = base_weights_dir(config)
    processor = BlipProcessor.from_pretrained(str(weights))
    model = BlipForConditionalGeneration.from_pretrained(str(weights), dtype=training_dtype(True))
    if config.freeze_vision:
        model.vision_model.requires_grad_(False)
    # BLIP's forward takes **kwargs, so Trainer assumes it divides the loss by the token count
    # of the whole accumulated batch; its text decoder takes a plain mean instead. Saying so
    # makes Trainer scale the loss itself for gradient accumulation and several processes.
    model.accepts_loss_kwargs = False
    bos = model.config.text_config.bos_token_id
    return Recipe(
        family="blip", model=model, processor=processor,
        eval_processor=processor,  # captioning without a prompt: no padding side to differ
        collator=BlipCollator(processor, bos, config.max_caption_tokens),
        weights="full", eval_spec=validation_spec(config, "blip"),
    )


def train(config: BlipTrainConfig, callbacks: Sequence[Any] = ()) -> RunResult:
    if config.base_model != SCRATCH:
        return train_family(config, build_recipe, callbacks)
    # The demo path: a random BLIP whose vocabulary comes from the training captions.
    splits = load_splits(config)
    base = build_scratch_blip(config.run_dir / "scratch-base", [r.caption for r in splits.train],
                              image_size=config.scratch_image_size, seed=config.seed)
    return train_family(replace(config, base_model=str(base)), build_recipe, callbacks, splits)


def main(argv: Sequence[str] | None = None) -> int:
    return run_script(BlipTrainConfig, train, argv)


if __name__ == "__main__":
    sys.exit(main())
