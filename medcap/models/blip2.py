"""BLIP-2 (Salesforce/blip2-opt-*), usually with a LoRA adapter from finetune/blip2_lora.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from medcap.models.base import Captioner
from medcap.models.families import Blip2Family
from medcap.models.vision_cache import cache_blip_vision


class Blip2Captioner(Blip2Family, Captioner):
    mixed_prompts = True  # left padded: one batch may hold different prompts

    def _load_model(self, weights_dir: Path) -> tuple[Any, Any]:
        from transformers import Blip2ForConditionalGeneration

        processor = self._load_processor(weights_dir)
        model = Blip2ForConditionalGeneration.from_pretrained(str(weights_dir),
                                                              **self._from_pretrained_kwargs())
        return model, processor

    def _cache_vision(self, model: Any) -> None:
        cache_blip_vision(model.get_submodule("vision_model"), self.vision_cache)

    def _load_processor(self, weights_dir: Path) -> Any:
        from transformers import Blip2Processor

        processor = Blip2Processor.from_pretrained(str(weights_dir))
        processor.tokenizer.padding_side = "left"  # decoder-only LM: pad on the left for batching
        return processor

    def _prepare(self, processor: Any, images: list[Image.Image],
                 prompts: list[str | None]) -> dict[str, Any]:
        text = [prompt or "" for prompt in prompts]  # left padded: prompts may differ per image
        return dict(processor(images=images, text=text, return_tensors="pt", padding=True))
