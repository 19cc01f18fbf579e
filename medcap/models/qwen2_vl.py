"""Qwen2-VL (and Qwen2.5-VL) instruction models, prompted through their chat template."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from medcap.models.base import Captioner
from medcap.models.errors import ModelLoadError
from medcap.models.families import Qwen2VLFamily
from medcap.models.spec import DEFAULT_QWEN_PROMPT
from medcap.models.vision_cache import cache_qwen2_vl_vision


class Qwen2VLCaptioner(Qwen2VLFamily, Captioner):
    mixed_prompts = True  # left padded: one batch may hold different prompts

    def _load_model(self, weights_dir: Path) -> tuple[Any, Any]:
        from transformers import AutoModelForImageTextToText

        processor = self._load_processor(weights_dir)
        model = AutoModelForImageTextToText.from_pretrained(str(weights_dir),
                                                            **self._from_pretrained_kwargs())
        return model, processor

    def _cache_vision(self, model: Any) -> None:
        cache_qwen2_vl_vision(model.get_submodule("model.visual"), self.vision_cache)

    def _load_processor(self, weights_dir: Path) -> Any:
        from transformers import AutoProcessor

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
        return processor

    def chat_text(self, prompt: str | None = None, processor: Any = None) -> str:
        """The templated prompt for one image (the processor expands the image placeholder)."""
        instruction = self.prompt_for(prompt) or DEFAULT_QWEN_PROMPT
        return (processor or self.processor).apply_chat_template(
            user_turn(instruction), tokenize=False, add_generation_prompt=True)

    def _prepare(self, processor: Any, images: list[Image.Image],
                 prompts: list[str | None]) -> dict[str, Any]:
        text = [self.chat_text(prompt, processor) for prompt in prompts]  # left padded
        return dict(processor(text=text, images=images, padding=True, return_tensors="pt",
                              **image_size_kwargs(processor, self.image_budget())))


# Shared with finetune/qwen2vl_lora.py, so training sees exactly the inputs captioning sends.
def user_turn(instruction: str) -> list[dict[str, Any]]:
    """The chat messages for one image and its instruction."""
    return [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": instruction}]}]


def image_size_kwargs(processor: Any, max_pixels: int | None) -> dict[str, Any]:
    """Processor kwargs capping an image's area at `max_pixels` (visual tokens = area / 784)."""
    if not max_pixels:
        return {}
    size = dict(processor.image_processor.size)
    size["longest_edge"] = max_pixels
    size["shortest_edge"] = min(size.get("shortest_edge") or 0, max_pixels)
    return {"size": size}
