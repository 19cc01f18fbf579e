"""Captioners: one adapter per model family behind the `Captioner` interface, and a registry.

    from medcap.models import resolve_spec, create_captioner
    captioner = create_captioner(resolve_spec("blip"))          # hub id, loaded lazily
    captioner = create_captioner(resolve_spec("blip", "/path/to/saved/blip"))
    captions = captioner.caption([pil_image, ...])               # -> list[Caption]
    captions = captioner.generate(captioner.prepare(images))     # the same, in two stages
"""

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

__all__ = [
    "Caption", "Captioner", "PreparedBatch", "TokenScore", "ModelLoadError", "MANIFEST_FILE", "Manifest",
    "read_manifest", "write_manifest", "create_captioner", "discover_runs", "parse_model_arg",
    "register_model", "registered_names", "resolve_spec", "DEFAULT_QWEN_PROMPT", "FAMILIES",
    "GenerationSettings", "ModelSpec",
]
