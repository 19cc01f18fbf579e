"""All configuration in one place: which models, which data, where reviews and runs live.

Values come from, in order of precedence: environment variables (`MEDCAP_*`), a TOML file
(`medcap.toml` in the working directory, or the path in `MEDCAP_CONFIG`), then the defaults below.

    # medcap.toml
    models = ["blip", "qwen2-vl", "blip2-lora"]     # registry names, or "name=hub_id_or_folder"
    data_source = "eltorio/ROCOv2-radiology"        # or a local parquet folder / image folder
    data_split = "test"
    reviews_db = "reviews.sqlite"
    runs_dir = "runs"
    blip2_adapter = "runs/blip2-lora/adapter"
    [prompts]
    qwen2-vl = "Describe this medical image in detail."
    [review]
    categories = "categories.toml"                 # or the list inline (medcap.review.categories)

Environment: MEDCAP_MODELS (comma separated), MEDCAP_DATA, MEDCAP_SPLIT, MEDCAP_REVIEWS_DB,
MEDCAP_RUNS_DIR, MEDCAP_BLIP2_ADAPTER, MEDCAP_CATEGORIES, MEDCAP_DEVICE, MEDCAP_DTYPE,
MEDCAP_QUANTIZATION (int8 on a CPU; 8bit or 4bit on a CUDA GPU), MEDCAP_SKIP_MEMORY_CHECK=1.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from medcap.models import ModelLoadError, ModelSpec, discover_runs, parse_model_arg, resolve_spec
from medcap.models.registry import check_ready
from medcap.models.spec import DTYPES, QUANTIZATIONS

DEFAULT_MODELS = ("blip", "blip2-lora", "qwen2-vl")
DEFAULT_DATA_SOURCE = "eltorio/ROCOv2-radiology"
SPACE_PERSISTENT_DIR = Path("/data")  # Hugging Face Spaces mount persistent storage here


def default_reviews_db() -> Path:
    """On a Space with persistent storage, keep reviews there; else in the working directory."""
    if SPACE_PERSISTENT_DIR.is_dir() and os.access(SPACE_PERSISTENT_DIR, os.W_OK):
        return SPACE_PERSISTENT_DIR / "medcap" / "reviews.sqlite"
    return Path("reviews.sqlite")


@dataclass
class Settings:
    model_names: list[str] = field(default_factory=lambda: list(DEFAULT_MODELS))
    data_source: str | None = DEFAULT_DATA_SOURCE
    data_split: str = "test"
    reviews_db: Path = field(default_factory=default_reviews_db)
    runs_dir: Path = Path("runs")
    blip2_adapter: str | None = None
    prompts: dict[str, str] = field(default_factory=dict)
    device: str = "auto"
    dtype: str = "auto"  # auto: bf16 on GPUs and CPUs with native bf16, else fp32
    quantization: str | None = None  # int8 (CPU) or 8bit/4bit (CUDA): medcap.models.quantize
    check_memory: bool = True
    max_pixels: Any = None  # image budget for models that take one (Qwen2-VL); None: per device
    review_categories: Any = None  # a file path or an inline list; None: the default categories

    def model_specs(self) -> tuple[list[ModelSpec], dict[str, str]]:
        """Specs for the configured models plus fine-tune runs; problems come back as messages."""
        specs: list[ModelSpec] = []
        problems: dict[str, str] = {}
        try:
            runtime = self._runtime_overrides()
        except ModelLoadError as exc:  # e.g. a mistyped MEDCAP_DTYPE: every model says why
            return [], {entry: str(exc) for entry in self.model_names}
        for entry in self.model_names:
            try:
                name, source = parse_model_arg(entry)
                overrides: dict[str, Any] = dict(runtime)
                if name in self.prompts:
                    overrides["prompt"] = self.prompts[name]
                spec = resolve_spec(name, source, **overrides)
                if spec.requires_adapter and not spec.adapter and self.blip2_adapter:
                    spec = resolve_spec(name, self.blip2_adapter, **overrides)
                spec = self._with_image_budget(spec)
                check_ready(spec)  # listed as unavailable now, not after a user's first click
                specs.append(spec)
            except ModelLoadError as exc:
                problems[entry] = str(exc)
        known = {s.name for s in specs}
        runs = [s for s in discover_runs(self.runs_dir) if s.name not in known]
        specs += [self._with_image_budget(replace(s, **runtime)) for s in runs]
        return specs, problems

    def _with_image_budget(self, spec: ModelSpec) -> ModelSpec:
        """`max_pixels` from the settings, except where the spec has its own (a fine-tune's
        training budget)."""
        if self.max_pixels is None or spec.max_pixels:
            return spec
        return spec.with_overrides(max_pixels=self.max_pixels)

    def _runtime_overrides(self) -> dict[str, Any]:
        """Where and how every model runs, the same for configured models and fine-tune runs."""
        if self.dtype not in DTYPES:
            raise ModelLoadError(f"dtype '{self.dtype}' is not one of {', '.join(DTYPES)}.")
        if self.quantization not in QUANTIZATIONS:
            raise ModelLoadError(f"quantization '{self.quantization}' is not one of "
                                 f"{', '.join(q for q in QUANTIZATIONS if q)} (or empty).")
        if self.max_pixels is not None:
            self.max_pixels = _checked_max_pixels(self.max_pixels)
        return {"device": self.device, "dtype": self.dtype, "check_memory": self.check_memory,
                "quantization": self.quantization}


MAX_PIXELS_RANGE = (28 * 28 * 4, 28 * 28 * 16384)  # 4 to 16,384 Qwen2-VL patches of 28 x 28


def _checked_max_pixels(value: Any) -> int:
    low, high = MAX_PIXELS_RANGE
    try:
        pixels = int(str(value).strip())
    except ValueError:
        pixels = None
    if pixels is None or not low <= pixels <= high:
        raise ModelLoadError(f"max_pixels must be a whole number of pixels from {low:,} to "
                             f"{high:,} (e.g. 200704 for 448 x 448), not {value!r}.")
    return pixels


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    with open(path, "rb") as handle:
        return tomllib.load(handle)


def load_settings(env: Mapping[str, str] | None = None, config_file: str | Path | None = None) -> Settings:
    env = os.environ if env is None else env
    path = Path(config_file or env.get("MEDCAP_CONFIG") or "medcap.toml")
    data = _read_toml(path)
    settings = Settings()
    if "models" in data:
        settings.model_names = [str(m) for m in data["models"]]
    for key in ("data_source", "data_split", "blip2_adapter", "device", "dtype", "quantization",
                "max_pixels"):
        if key in data:
            setattr(settings, key, data[key])
    for key in ("reviews_db", "runs_dir"):
        if key in data:
            setattr(settings, key, Path(data[key]))
    settings.prompts.update(data.get("prompts", {}))
    settings.review_categories = data.get("review", {}).get("categories")
    if env.get("MEDCAP_MODELS"):
        settings.model_names = [m.strip() for m in env["MEDCAP_MODELS"].split(",") if m.strip()]
    if "MEDCAP_DATA" in env:
        settings.data_source = env["MEDCAP_DATA"] or None
    if env.get("MEDCAP_SPLIT"):
        settings.data_split = env["MEDCAP_SPLIT"]
    if env.get("MEDCAP_REVIEWS_DB"):
        settings.reviews_db = Path(env["MEDCAP_REVIEWS_DB"])
    if env.get("MEDCAP_RUNS_DIR"):
        settings.runs_dir = Path(env["MEDCAP_RUNS_DIR"])
    if env.get("MEDCAP_BLIP2_ADAPTER"):
        settings.blip2_adapter = env["MEDCAP_BLIP2_ADAPTER"]
    if env.get("MEDCAP_CATEGORIES"):
        settings.review_categories = env["MEDCAP_CATEGORIES"]
    if env.get("MEDCAP_DEVICE"):
        settings.device = env["MEDCAP_DEVICE"]
    if env.get("MEDCAP_DTYPE"):
        settings.dtype = env["MEDCAP_DTYPE"]
    if "MEDCAP_QUANTIZATION" in env:
        settings.quantization = env["MEDCAP_QUANTIZATION"].strip() or None
    if env.get("MEDCAP_MAX_PIXELS", "").strip():
        settings.max_pixels = env["MEDCAP_MAX_PIXELS"].strip()
    if env.get("MEDCAP_SKIP_MEMORY_CHECK", "").lower() in ("1", "true", "yes"):
        settings.check_memory = False
    return settings
