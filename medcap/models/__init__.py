"""Captioners: one adapter per model family behind the `Captioner` interface, and a registry.

    from medcap.models import resolve_spec, create_captioner
    captioner = create_captioner(resolve_spec("blip"))          # hub id, loaded lazily
    captioner = create_captioner(resolve_spec("blip", "/path/to/saved/blip"))
    captions = captioner.caption([pil_image, ...])               # -> list[Caption]
    captions = captioner.generate(captioner.prepare(images))     # the same, in two stages
    for update in captioner.stream(images, prompts, stop=event):  # words as they come, per image
        ...                                                      # (CaptionUpdate; done=True last)

Names are imported on first access (PEP 562): specs, the registry and the family traits need no
torch, so the app can list its models and answer its first page before torch and transformers
are imported (about 2.7 s on two cores); `Captioner`, `Caption` and friends import them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

_EXPORTS = {
    "medcap.models.base": ("Caption", "Captioner", "PreparedBatch", "TokenScore"),
    "medcap.models.errors": ("ModelLoadError",),
    "medcap.models.manifest": ("MANIFEST_FILE", "Manifest", "read_manifest", "write_manifest"),
    "medcap.models.registry": ("create_captioner", "discover_runs", "parse_model_arg",
                               "register_model", "registered_names", "resolve_spec"),
    "medcap.models.spec": ("DEFAULT_QWEN_PROMPT", "FAMILIES", "GenerationSettings", "ModelSpec"),
    "medcap.models.streaming": ("CaptionUpdate",),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = list(_MODULE_OF)

if TYPE_CHECKING:
    from medcap.models.base import Caption, Captioner, PreparedBatch, TokenScore
    from medcap.models.errors import ModelLoadError
    from medcap.models.manifest import MANIFEST_FILE, Manifest, read_manifest, write_manifest
    from medcap.models.registry import (
        create_captioner,
        discover_runs,
        parse_model_arg,
        register_model,
        registered_names,
        resolve_spec,
    )
    from medcap.models.spec import DEFAULT_QWEN_PROMPT, FAMILIES, GenerationSettings, ModelSpec
    from medcap.models.streaming import CaptionUpdate


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module 'medcap.models' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
