"""Loading a base model for training: where it lives, its dtype, k-bit quantization, LoRA.

Weights are found through `medcap.models.loading`, so an unreachable hub or a missing folder
ends in the same clear message the app gives, before anything large is read.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any, Sequence

import torch

from finetune.common.config import LoraTrainConfig, TrainConfig
from medcap.models import GenerationSettings, ModelLoadError, ModelSpec
from medcap.models.loading import resolve_weights_dir

log = logging.getLogger(__name__)
QUANTIZATION_CHOICES = ("auto", "8bit", "4bit", "none")


def base_weights_dir(config: TrainConfig) -> Path:
    return resolve_weights_dir(config.base_model, what="base model")


def training_dtype(full_finetune: bool) -> torch.dtype:
    """fp32 master weights for a full fine-tune (autocast does the mixed precision); a frozen
    LoRA base is stored in bf16/fp16 on a GPU to halve its memory, fp32 on a CPU."""
    if full_finetune or not torch.cuda.is_available():
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def quantization_settings(choice: str) -> tuple[str | None, dict[str, Any]]:
    """(quantization name, from_pretrained kwargs) for 8-bit / 4-bit loading with bitsandbytes.

    'auto' loads in 8-bit when a CUDA GPU is present and in full precision otherwise. Each
    process of a multi-GPU run puts its copy on its own GPU (LOCAL_RANK), as DDP expects.
    """
    if choice not in QUANTIZATION_CHOICES:
        raise ValueError(f"quantization must be one of {', '.join(QUANTIZATION_CHOICES)}")
    if choice == "auto":
        choice = "8bit" if torch.cuda.is_available() else "none"
    if choice == "none":
        return None, {}
    if not torch.cuda.is_available():
        raise ModelLoadError(
            f"{choice} loading needs a CUDA GPU and bitsandbytes (pip install bitsandbytes); "
            f"this machine has no GPU. Use --quantization none to train in full precision.")
    from transformers import BitsAndBytesConfig

    compute = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    config = BitsAndBytesConfig(
        load_in_8bit=choice == "8bit",
        load_in_4bit=choice == "4bit",
        bnb_4bit_quant_type="nf4",
        bnb_4bit_compute_dtype=compute,
        bnb_4bit_use_double_quant=True,
    )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    return choice, {"quantization_config": config, "device_map": {"": local_rank}, "dtype": compute}


def lora_target_modules(targets: Sequence[str], default: Sequence[str] | str) -> list[str] | str:
    """Configured targets, or the family default; one entry with regex characters is a regex."""
    if not targets:
        return default if isinstance(default, str) else list(default)
    if len(targets) == 1 and re.search(r"[\\.*|()\[\]^$]", targets[0]):
        return targets[0]
    return list(targets)


def apply_lora(model: Any, config: LoraTrainConfig, default_targets: Sequence[str] | str,
               quantized: bool) -> Any:
    """Freeze `model` and wrap it in a PEFT LoRA model on the target modules."""
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if quantized:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed frozen inputs still need a grad path
    lora = LoraConfig(
        r=config.lora_rank,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=lora_target_modules(config.lora_targets, default_targets),
        bias="none",
    )
    peft_model = get_peft_model(model, lora)
    trainable, total = peft_model.get_nb_trainable_parameters()
    log.info("LoRA: %d trainable of %d parameters (%.3f%%)", trainable, total,
             100 * trainable / total)
    return peft_model


def train_and_generation_processors(processor: Any) -> tuple[Any, Any]:
    """A right-padded processor for training (labels after the prompt line up) and a left-padded
    copy for generation (a decoder-only LM continues from the last real token)."""
    import copy

    processor.tokenizer.padding_side = "right"
    generation = copy.deepcopy(processor)
    generation.tokenizer.padding_side = "left"
    return processor, generation


def validation_spec(config: TrainConfig, family: str, prompt: str | None = None,
                    **fields: Any) -> ModelSpec:
    """The medcap spec used to caption validation images: greedy, like the app's default."""
    return ModelSpec(
        name=f"{config.display_name} (validation)", family=family, source=config.base_model, prompt=prompt,
        batch_size=config.eval_batch_size, check_memory=False,
        generation=GenerationSettings(max_new_tokens=config.max_new_tokens), **fields,
    )
