"""Qwen2-VL (and Qwen2.5-VL) instruction models, prompted through their chat template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from medcap.models.base import Captioner
from medcap.models.errors import ModelLoadError
from medcap.models.spec import DEFAULT_QWEN_PROMPT


class Qwen2VLCaptioner(Captioner):
    family = "qwen2-vl"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    display_name = "Qwen2-VL"

    def _load_model(self, weights_dir: Path) -> tuple[Any, Any]:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        processor = AutoProcessor.from_pretrained(str(weights_dir))
        if not hasattr(processor, "image_processor"):
            # transformers 5 silently returns a bare tokenizer when the video processor (which
            # needs torchvision) cannot be built.
            raise ModelLoadError(
                f"'{self.spec.name}': the Qwen2-VL processor could not be built from "
                f"{weights_dir} (got {type(processor).__name__}). Install torchvision "
                f"(pip install -r requirements.txt) and check preprocessor files are present."
            )
        processor.tokenizer.padding_side = "left"
        model = AutoModelForImageTextToText.from_pretrained(str(weights_dir),
                                                            **self._from_pretrained_kwargs())
        return model, processor

    def chat_text(self, prompt: str | None = None, processor: Any = None) -> str:
        """The templated prompt for one image (the processor expands the image placeholder)."""
        instruction = self.prompt_for(prompt) or DEFAULT_QWEN_PROMPT
        messages = [{"role": "user", "content": [{"type": "image"},
                                                 {"type": "text", "text": instruction}]}]
        return (processor or self.processor).apply_chat_template(
            messages, tokenize=False, add_generation_prompt=True)

    def _prepare(self, processor: Any, images: list[Image.Image], prompt: str | None
                 ) -> dict[str, Any]:
        kwargs: dict[str, Any] = {}
        if self.spec.max_pixels:
            size = dict(processor.image_processor.size)
            size["longest_edge"] = self.spec.max_pixels
            size["shortest_edge"] = min(size.get("shortest_edge") or 0, self.spec.max_pixels)
            kwargs["size"] = size
        text = [self.chat_text(prompt, processor)] * len(images)
        return dict(processor(text=text, images=images, padding=True, return_tensors="pt",
                              **kwargs))
