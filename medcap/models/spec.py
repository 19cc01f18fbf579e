"""Plain dataclasses that describe a captioner: which weights, which device, how to decode."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from medcap.models.families import FAMILIES  # noqa: F401  (re-exported: one owner, families.py)

DTYPES = ("auto", "float32", "bfloat16", "float16")
# 8bit / 4bit: bitsandbytes on a CUDA GPU; int8: weight-only int8 of the language model on a CPU
# (medcap/models/quantize.py).
QUANTIZATIONS = (None, "8bit", "4bit", "int8")

DEFAULT_QWEN_PROMPT = (
    "Describe this medical image in detail: the imaging modality, the body region and the "
    "main findings, in one or two sentences as in a radiology figure caption."
)


@dataclass
class GenerationSettings:
    """Decoding settings; greedy (or beam) by default so captions are reproducible."""

    max_new_tokens: int = 64
    num_beams: int = 1
    repetition_penalty: float = 1.0
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    min_new_tokens: int = 0

    def generate_kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": self.max_new_tokens,
            "num_beams": self.num_beams,
            "do_sample": self.do_sample,
            "repetition_penalty": self.repetition_penalty,
        }
        if self.min_new_tokens:
            kwargs["min_new_tokens"] = self.min_new_tokens
        if self.do_sample:
            kwargs.update(temperature=self.temperature, top_p=self.top_p)
        return kwargs


@dataclass
class ModelSpec:
    """Everything needed to build one captioner.

    `source` is a hub id (``Salesforce/blip-image-captioning-base``) or a local directory in the
    Hugging Face layout; `adapter` is an optional PEFT (LoRA) adapter directory applied on top.
    """

    name: str
    family: str
    source: str
    adapter: str | None = None
    requires_adapter: bool = False  # e.g. blip2-lora: without its adapter it is another model
    prompt: str | None = None
    dtype: str = "auto"
    device: str = "auto"
    quantization: str | None = None
    batch_size: int = 8
    max_pixels: int | None = None
    # None lets transformers pick (SDPA where the model supports it); "flash_attention_2" on GPUs
    # with flash-attn installed, "eager" to debug.
    attn_implementation: str | None = None
    generation: GenerationSettings = field(default_factory=GenerationSettings)
    check_memory: bool = True
    description: str = ""

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, not {self.dtype!r}")
        if self.quantization not in QUANTIZATIONS:
            raise ValueError(f"quantization must be 8bit, 4bit, int8 or empty, "
                             f"not {self.quantization!r}")
        if self.batch_size < 1:
            raise ValueError("batch_size must be at least 1")

    @property
    def label(self) -> str:
        """Short human label for pickers and CSV `model` columns: the name, plus the adapter."""
        return self.name

    def describe(self) -> str:
        """One line for logs and the app: what will be loaded."""
        text = f"{self.name} ({self.family}: {self.source}"
        if self.adapter:
            text += f" + adapter {self.adapter}"
        return text + ")"

    def with_overrides(self, **overrides: Any) -> "ModelSpec":
        """Copy with some fields changed; generation fields may be given by name too."""
        gen_fields = {k: overrides.pop(k) for k in list(overrides) if hasattr(GenerationSettings, k)}
        spec = replace(self, **overrides)
        if gen_fields:
            spec = replace(spec, generation=replace(spec.generation, **gen_fields))
        return spec
