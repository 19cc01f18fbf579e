"""What each model family is and accepts, declared once and readable without importing torch.

Each family's `Captioner` class inherits its declaration (`BlipCaptioner(BlipFamily, Captioner)`),
so `captioner.takes_prompt` and `family_traits("qwen2-vl").takes_prompt` are the same attribute.
The app and the CLI ask these attributes instead of comparing family names, and can do so at
start-up before any model code (torch, transformers) is imported.
"""

from __future__ import annotations

import importlib
from typing import ClassVar


class FamilyTraits:
    """Class-level facts about one model family."""

    family: ClassVar[str]
    display_name: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]  # accepted `model_type` values in config.json
    takes_prompt: ClassVar[bool] = False  # follows a free-text instruction (the app's prompt box)
    captioner_path: ClassVar[str]  # "module:Class" of the family's Captioner, imported on demand
    # Modules outside the language model (vision encoder, BLIP-2's Q-Former and projection), kept
    # in full precision by the CPU int8 quantization (medcap.models.quantize); transformers 5 names.
    vision_modules: ClassVar[tuple[str, ...]] = ()
    # Image area budget (pixels) when a spec sets none, by where the model runs; None: the
    # family's processor decides (BLIP: a fixed 384 x 384).
    gpu_max_pixels: ClassVar[int | None] = None
    cpu_max_pixels: ClassVar[int | None] = None

    @classmethod
    def default_max_pixels(cls, device: str) -> int | None:
        """The image budget a spec without `max_pixels` gets on `device`."""
        return cls.cpu_max_pixels if device == "cpu" else cls.gpu_max_pixels


class BlipFamily(FamilyTraits):
    family = "blip"
    display_name = "BLIP"
    model_types = ("blip",)
    vision_modules = ("vision_model",)
    captioner_path = "medcap.models.blip:BlipCaptioner"


class Blip2Family(FamilyTraits):
    family = "blip2"
    display_name = "BLIP-2"
    model_types = ("blip-2",)
    vision_modules = ("vision_model", "qformer", "language_projection")
    captioner_path = "medcap.models.blip2:Blip2Captioner"


class Qwen2VLFamily(FamilyTraits):
    family = "qwen2-vl"
    display_name = "Qwen2-VL"
    model_types = ("qwen2_vl", "qwen2_5_vl")
    takes_prompt = True
    vision_modules = ("model.visual",)
    captioner_path = "medcap.models.qwen2_vl:Qwen2VLCaptioner"
    # Visual tokens = area / 784. On a GPU 448 x 448 (256 tokens); on a CPU 336 x 336 (144): the
    # vision tower and the prompt pass grow with the tokens, and at 256 the first word of a
    # caption came after 5.2 s on 2 cores, at 144 after 2.2 s (`benchmarks.bench_latency`).
    gpu_max_pixels = 448 * 448
    cpu_max_pixels = 336 * 336


_TRAITS: dict[str, type[FamilyTraits]] = {
    traits.family: traits for traits in (BlipFamily, Blip2Family, Qwen2VLFamily)}
FAMILIES: tuple[str, ...] = tuple(_TRAITS)


def family_traits(family: str) -> type[FamilyTraits] | None:
    """The declaration of `family`, or None for an unknown name."""
    return _TRAITS.get(family)


def family_for_model_type(model_type: str | None) -> str | None:
    """The family whose adapter accepts a config.json `model_type`."""
    return next((f for f, traits in _TRAITS.items() if model_type in traits.model_types), None)


def import_captioner(family: str) -> type:
    """The family's `Captioner` class (imports torch and the family's module on first call)."""
    module, _, name = _TRAITS[family].captioner_path.partition(":")
    return getattr(importlib.import_module(module), name)
