"""LoRA on Qwen2-VL's language model (`Qwen/Qwen2-VL-2B-Instruct`) with its chat template.

    python -m finetune.qwen2vl_lora --output-dir runs/qwen2vl-lora
    python -m finetune.qwen2vl_lora --prompt "Write the figure caption." --max-pixels 200704
    accelerate launch --num_processes 4 -m finetune.qwen2vl_lora ...

Each example is the conversation the app sends (user: image + prompt) followed by the reference
caption as the assistant's answer. The loss covers the answer tokens only: the template, prompt
and image placeholder tokens are masked with -100. peft has no default LoRA targets for Qwen2-VL,
so they are named: the attention and MLP projections of the language model, not the vision tower.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Sequence

if __package__ in (None, ""):  # run as a file: finetune.common would not import
    sys.exit("Run it as a module from the repository folder: python -m finetune.qwen2vl_lora --help")

import torch

from finetune.common.cli import run_script
from finetune.common.collate import answer_lengths, label_answers, truncate_caption
from finetune.common.config import FinetuneError, LoraTrainConfig, option
from finetune.common.models import (
    apply_lora, base_weights_dir, train_and_generation_processors, training_dtype, validation_spec,
)
from finetune.common.training import Recipe, RunResult, train_family
from medcap.models import DEFAULT_QWEN_PROMPT
from medcap.models.qwen2_vl import image_size_kwargs, user_turn

# The language model's projections; the vision tower names its own `qkv`, `proj`, `fc1`, `fc2`.
QWEN_LORA_TARGETS = (r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj"
                     r"|down_proj)$")


@dataclass
class Qwen2VLLoraConfig(LoraTrainConfig):
    """Settings of a Qwen2-VL LoRA fine-tune."""

    base_model: str = option("Qwen/Qwen2-VL-2B-Instruct", "Qwen2-VL model (hub id or folder)")
    output_dir: str = option("runs/qwen2vl-lora", "run folder")
    learning_rate: float = option(1e-4, "peak learning rate")
    batch_size: int = option(4, "images per device per step")
    grad_accum: int = option(4, "gradient accumulation steps")
    prompt: str = option(DEFAULT_QWEN_PROMPT, "instruction sent with each image; saved in the "
                         "manifest so the app captions with the same prompt")
    max_pixels: int | None = option(448 * 448, "resize images above this many pixels (visual "
                                    "tokens grow with image area)")
    max_new_tokens: int = option(128, "caption length limit when validating")

    family: ClassVar[str] = "qwen2-vl"


class Qwen2VLCollator:
    """Conversations -> Qwen2-VL inputs whose labels are the assistant answer only."""

    def __init__(self, processor: Any, prompt: str, max_caption_tokens: int,
                 max_pixels: int | None) -> None:
        self.processor = processor
        self.max_caption_tokens = max_caption_tokens
        self.user_turn = user_turn(prompt)
        self.prompt_text = processor.apply_chat_template(
            self.user_turn, tokenize=False, add_generation_prompt=True)
        self.image_kwargs = image_size_kwargs(processor, max_pixels)

    def answer_text(self, caption: str) -> str:
        """The templated assistant turn after the prompt: the caption plus its end markers."""
        conversation = self.user_turn + [
            {"role": "assistant", "content": [{"type": "text", "text": caption}]}]
        full = self.processor.apply_chat_template(conversation, tokenize=False)
        if not full.startswith(self.prompt_text):
            raise FinetuneError("the chat template renders the user turn differently with and "
                                "without an answer; cannot tell prompt from answer tokens")
        return full[len(self.prompt_text):]

    def __call__(self, examples: Sequence[dict[str, Any]]) -> dict[str, torch.Tensor]:
        tokenizer = self.processor.tokenizer
        answers = [self.answer_text(truncate_caption(tokenizer, e["caption"],
                                                     self.max_caption_tokens)) for e in examples]
        encoded = self.processor(text=[self.prompt_text + a for a in answers],
                                 images=[e["image"] for e in examples], padding=True,
                                 return_tensors="pt", **self.image_kwargs)
        encoded["labels"] = label_answers(encoded["input_ids"], encoded["attention_mask"],
                                          answer_lengths(tokenizer, answers))
        return dict(encoded)


def load_processors(weights: Path) -> tuple[Any, Any]:
    """A right-padded processor for training and a left-padded copy for generation."""
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(str(weights))
    if not hasattr(processor, "image_processor"):
        raise FinetuneError(f"{weights}: the Qwen2-VL processor could not be built (got "
                            f"{type(processor).__name__}); install torchvision.")
    return train_and_generation_processors(processor)


def build_recipe(config: Qwen2VLLoraConfig) -> Recipe:
    from transformers import AutoModelForImageTextToText

    weights = base_weights_dir(config)
    model = AutoModelForImageTextToText.from_pretrained(str(weights),
                                                        dtype=training_dtype(False))
    model = apply_lora(model, config, QWEN_LORA_TARGETS, quantized=False)
    processor, generation_processor = load_processors(weights)
    return Recipe(
        family="qwen2-vl", model=model, processor=processor,
        eval_processor=generation_processor,
        collator=Qwen2VLCollator(processor, config.prompt, config.max_caption_tokens,
                                 config.max_pixels),
        weights="adapter", prompt=config.prompt,
        eval_spec=validation_spec(config, "qwen2-vl", prompt=config.prompt,
                                  max_pixels=config.max_pixels),
    )


def train(config: Qwen2VLLoraConfig, callbacks: Sequence[Any] = ()) -> RunResult:
    return train_family(config, build_recipe, callbacks)


def main(argv: Sequence[str] | None = None) -> int:
    return run_script(Qwen2VLLoraConfig, train, argv)


if __name__ == "__main__":
    sys.exit(main())
