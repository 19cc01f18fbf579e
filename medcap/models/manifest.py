"""The small JSON file a fine-tune run writes beside its weights, so the registry can load it.

`medcap.json` in a run's output folder:
    {"format": "medcap-model/1", "family": "blip2", "base_model": "Salesforce/blip2-opt-6.7b",
     "weights": "adapter", "path": "adapter", "prompt": null, "max_pixels": null,
     "training_data": {...}, "metrics": {...}, "created": "2026-11-23T10:00:00+00:00"}
`weights` is "full" (the folder `path` holds a complete model) or "adapter" (`path` holds a PEFT
adapter applied on top of `base_model`). `path` is relative to the manifest's folder.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

MANIFEST_FILE = "medcap.json"
MANIFEST_FORMAT = "medcap-model/1"


class ManifestError(ValueError):
    """A manifest exists but cannot be used; the message says which field is wrong."""


@dataclass
class Manifest:
    family: str
    base_model: str
    weights: str = "full"  # "full" or "adapter"
    path: str = "."
    prompt: str | None = None
    max_pixels: int | None = None  # Qwen2-VL image budget the run was trained with
    name: str | None = None
    training_data: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    format: str = MANIFEST_FORMAT


def write_manifest(directory: str | Path, manifest: Manifest) -> Path:
    target = Path(directory) / MANIFEST_FILE
    tmp = target.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(target)
    return target


def read_manifest(directory: str | Path) -> Manifest | None:
    """The manifest of a run folder, or None when the folder has none."""
    source = Path(directory) / MANIFEST_FILE
    if not source.is_file():
        return None
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{source} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict) or data.get("format") != MANIFEST_FORMAT:
        raise ManifestError(f"{source} is not a {MANIFEST_FORMAT} manifest.")
    known = {f for f in Manifest.__dataclass_fields__}
    missing = [k for k in ("family", "base_model") if not data.get(k)]
    if missing:
        raise ManifestError(f"{source} lacks {', '.join(missing)}.")
    if data.get("weights", "full") not in ("full", "adapter"):
        raise ManifestError(f"{source}: weights must be 'full' or 'adapter'.")
    return Manifest(**{k: v for k, v in data.items() if k in known})
