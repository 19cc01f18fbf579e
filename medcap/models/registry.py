"""Named captioners: small factory functions that return a `ModelSpec`, as timm registers models.

Code elsewhere (app, CLI, fine-tune evaluation) asks for a name, optionally with a source (hub id,
model folder, PEFT adapter folder or fine-tune run folder), and gets a `Captioner` back; it never
touches a model class.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from medcap.models.errors import ModelLoadError
from medcap.models.families import FAMILIES, family_for_model_type, family_traits, import_captioner
from medcap.models.manifest import MANIFEST_FILE, ManifestError, read_manifest
from medcap.models.spec import GenerationSettings, ModelSpec

if TYPE_CHECKING:  # the adapters import torch; this module must not (fast app start)
    from medcap.models.base import Captioner

_MODELS: dict[str, Callable[[], ModelSpec]] = {}


def register_model(name: str) -> Callable[[Callable[[], ModelSpec]], Callable[[], ModelSpec]]:
    def decorate(factory: Callable[[], ModelSpec]) -> Callable[[], ModelSpec]:
        _MODELS[name] = factory
        return factory

    return decorate


@register_model("blip")
def blip() -> ModelSpec:
    return ModelSpec(
        name="blip", family="blip", source="Salesforce/blip-image-captioning-base",
        generation=GenerationSettings(max_new_tokens=64, num_beams=1, repetition_penalty=1.0),
        description="BLIP base (ViT-B/16), full fine-tune target of finetune/blip.py",
    )


@register_model("blip2")
def blip2() -> ModelSpec:
    return ModelSpec(
        name="blip2", family="blip2", source="Salesforce/blip2-opt-6.7b", batch_size=4,
        generation=GenerationSettings(max_new_tokens=64),
        description="BLIP-2 OPT-6.7B without an adapter (the zero-shot baseline)",
    )


@register_model("blip2-lora")
def blip2_lora() -> ModelSpec:
    return ModelSpec(
        name="blip2-lora", family="blip2", source="Salesforce/blip2-opt-6.7b", batch_size=4,
        requires_adapter=True, generation=GenerationSettings(max_new_tokens=64),
        description="BLIP-2 OPT-6.7B + a radiology LoRA adapter from finetune/blip2_lora.py",
    )


@register_model("qwen2-vl")
def qwen2_vl() -> ModelSpec:
    return ModelSpec(
        name="qwen2-vl", family="qwen2-vl", source="Qwen/Qwen2-VL-2B-Instruct", batch_size=8,
        generation=GenerationSettings(max_new_tokens=128),
        description="Qwen2-VL-2B-Instruct prompted for a radiology caption",
    )


def registered_names() -> list[str]:
    return list(_MODELS)


def family_class(family: str) -> type[Captioner]:
    """The family's `Captioner` class; importing it imports torch and transformers."""
    if family_traits(family) is None:
        raise ModelLoadError(f"Unknown model family '{family}'. Known families: "
                             f"{', '.join(FAMILIES)}.")
    return import_captioner(family)


def takes_prompt(spec: ModelSpec) -> bool:
    """Whether the model follows a free-text instruction (answered without importing torch)."""
    traits = family_traits(spec.family)
    return bool(traits and traits.takes_prompt)


def parse_model_arg(text: str) -> tuple[str, str | None]:
    """`NAME` or `NAME=SOURCE` (the CLI's --model syntax)."""
    name, sep, source = text.partition("=")
    name, source = name.strip(), source.strip()
    if not name:
        raise ModelLoadError(f"'{text}' does not name a model; use NAME or NAME=ID_OR_DIR.")
    return name, (source if sep and source else None)


def _folder_family(folder: Path) -> str | None:
    config = folder / "config.json"
    if not config.is_file():
        return None
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        return None
    # Each family lists the config.json `model_type`s it accepts; the same list checks at load.
    return family_for_model_type(model_type)


def _spec_from_folder(name: str, folder: Path, base: ModelSpec | None) -> ModelSpec | None:
    """A spec for a local folder: a fine-tune run (manifest), a PEFT adapter, or a model."""
    try:
        manifest = read_manifest(folder)
    except ManifestError as exc:
        raise ModelLoadError(f"'{name}': {exc}") from exc
    if manifest:
        if manifest.family not in FAMILIES:
            raise ModelLoadError(f"'{name}': {folder / MANIFEST_FILE} names unknown family "
                                 f"'{manifest.family}'.")
        template = base if base and base.family == manifest.family else None
        spec = template or ModelSpec(name=name, family=manifest.family, source=manifest.base_model)
        target = str((folder / manifest.path).resolve())
        if manifest.weights == "adapter":
            spec = spec.with_overrides(source=manifest.base_model, adapter=target)
        else:
            spec = spec.with_overrides(source=target, adapter=None)
        if manifest.prompt:
            spec = spec.with_overrides(prompt=manifest.prompt)
        if manifest.max_pixels:
            spec = spec.with_overrides(max_pixels=manifest.max_pixels)
        return spec.with_overrides(name=name, description=f"fine-tuned run {folder}")
    adapter_config = folder / "adapter_config.json"
    if adapter_config.is_file():
        try:
            base_id = json.loads(adapter_config.read_text(encoding="utf-8")).get(
                "base_model_name_or_path")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"'{name}': {adapter_config} is not valid JSON ({exc}).") from exc
        if base is None:
            raise ModelLoadError(
                f"'{name}': {folder} is a LoRA adapter; name the model family it belongs to, e.g. "
                f"--model blip2-lora={folder}")
        source = base.source
        if base_id and (Path(base_id).is_dir() or base_id.count("/") == 1):
            source = base_id
        return base.with_overrides(name=name, source=source, adapter=str(folder))
    family = _folder_family(folder)
    if base is not None:
        return base.with_overrides(name=name, source=str(folder), adapter=None)
    if family:
        return ModelSpec(name=name, family=family, source=str(folder))
    return None


def pin_image_budget(spec: ModelSpec, device: str) -> ModelSpec:
    """`spec` with the family's image budget for `device` written in when it sets none: for
    processes that prepare images for a model running elsewhere (the Ray engine's workers)."""
    traits = family_traits(spec.family)
    if spec.max_pixels or traits is None or traits.default_max_pixels(device) is None:
        return spec
    return spec.with_overrides(max_pixels=traits.default_max_pixels(device))


def resolve_spec(name: str, source: str | None = None, **overrides: Any) -> ModelSpec:
    """The spec for a registered name, or for any name given with a source folder / hub id.

    `resolve_spec("blip")` gives the default; `resolve_spec("blip", "/runs/blip")` the same family
    loaded from a folder; `resolve_spec("mine", "/some/qwen2-vl-folder")` infers the family from
    the folder's manifest or config.json. Keyword overrides set spec or generation fields.
    """
    base = _MODELS[name]() if name in _MODELS else None
    if "family" in overrides and overrides["family"] and base and base.family != overrides["family"]:
        base = None
    if base is None and overrides.get("family"):
        if overrides["family"] not in FAMILIES:
            raise ModelLoadError(f"Unknown model family '{overrides['family']}'. "
                                 f"Known families: {', '.join(FAMILIES)}.")
        if not source:
            raise ModelLoadError(f"'{name}': give a hub id or folder for a {overrides['family']} model.")
        base = ModelSpec(name=name, family=overrides["family"], source=source)
    if source is None:
        if base is None:
            raise ModelLoadError(
                f"Unknown model '{name}'. Registered models: {', '.join(_MODELS)}; or give a "
                f"source: NAME=HUB_ID_OR_FOLDER.")
        spec = base
    else:
        folder = Path(source).expanduser()
        spec = _spec_from_folder(name, folder, base) if folder.is_dir() else None
        if spec is None:
            if base is None:
                raise ModelLoadError(
                    f"Cannot tell which model family '{source}' is: it is not a folder with a "
                    f"medcap.json manifest or a known config.json. Use a registered name "
                    f"({', '.join(_MODELS)}) as NAME, e.g. --model blip={source}.")
            spec = base.with_overrides(name=name, source=source)
    overrides.pop("family", None)
    clean = {k: v for k, v in overrides.items() if v is not None}
    return spec.with_overrides(**clean) if clean else spec


def check_ready(spec: ModelSpec) -> None:
    """Raise `ModelLoadError` for a spec that can never load as configured (known before any
    weights are read), so the app can list it as unavailable at start-up."""
    if spec.requires_adapter and not spec.adapter:
        raise ModelLoadError(
            f"'{spec.name}' needs a LoRA adapter: pass --adapter {spec.name}=DIR (the folder "
            f"the fine-tune script wrote) or --model {spec.name}=RUN_DIR; in the app set "
            f"MEDCAP_BLIP2_ADAPTER. Use blip2 for BLIP-2 without an adapter.")


def create_captioner(spec: ModelSpec) -> Captioner:
    """A captioner for `spec`; nothing is loaded until it is first used."""
    cls = family_class(spec.family)
    check_ready(spec)
    return cls(spec)


def discover_runs(runs_dir: str | Path) -> list[ModelSpec]:
    """Specs for every fine-tune output (a folder with medcap.json) under `runs_dir`."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    specs = []
    for manifest_file in sorted(root.rglob(MANIFEST_FILE)):
        folder = manifest_file.parent
        try:
            manifest = read_manifest(folder)
        except ManifestError:
            continue
        if manifest is None:
            continue
        name = manifest.name or folder.relative_to(root).as_posix().replace("/", "-")
        try:
            specs.append(resolve_spec(name, str(folder)))
        except ModelLoadError:
            continue
    return specs
