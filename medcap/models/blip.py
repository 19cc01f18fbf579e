"""BLIP (Salesforce/blip-image-captioning-*) and full fine-tunes of it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from medcap.models.base import Captioner
from medcap.models.families import BlipFamily
from medcap.models.vision_cache import cache_blip_vision


class BlipCaptioner(BlipFamily, Captioner):

    def _load_model(self, weights_dir: Path) -> tuple[Any, Any]:
        from transformers import BlipForConditionalGeneration

        processor = self._load_processor(weights_dir)
        model = BlipForConditionalGeneration.from_pretrained(str(weights_dir),
                                                             **self._from_pretrained_kwargs())
        return model, processor

    def _cache_vision(self, model: Any) -> None:
        cache_blip_vision(model.get_submodule("vision_model"), self.vision_cache)

    def _load_processor(self, weights_dir: Path) -> Any:
        from transformers import BlipProcessor

        return BlipProcessor.from_pretrained(str(weights_dir))

    def _prepare(self, processor: Any, images: list[Image.Image],
                 prompts: list[str | None]) -> dict[str, Any]:
        if prompts[0]:  # conditional captioning: the caption continues the prompt
            # One prompt for the batch (`mixed_prompts` is off): BLIP pads on the right.
            return dict(processor(images=images, text=list(prompts),
                                  return_tensors="pt", padding=True))
        return dict(processor(images=images, return_tensors="pt"))

    def _stop_token_ids(self) -> set[int]:
        text = self.model.config.text_config
        return {t for t in (text.sep_token_id, text.pad_token_id) if t is not None}
