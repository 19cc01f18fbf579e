"""The run folder: what a fine-tune leaves behind, laid out so `medcap` loads it by path.

    RUN_DIR/
      medcap.json             manifest: family, base model, full weights or adapter, data, metrics
      model/  or  adapter/    the best checkpoint's full model + processor, or its PEFT adapter
      train_config.json       every setting of the run (re-usable with --config)
      history.json            training loss and validation metrics per logging step / evaluation
      validation_samples.json the latest validation captions beside their references
      checkpoints/            Trainer checkpoints (model, optimizer, scheduler, RNG, step)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from medcap.models import Manifest, write_manifest

if TYPE_CHECKING:
    from finetune.common.config import TrainConfig
    from finetune.common.data import Splits
    from finetune.common.training import Recipe

CONFIG_FILE = "train_config.json"
HISTORY_FILE = "history.json"
SAMPLES_FILE = "validation_samples.json"
WEIGHTS_DIRS = {"full": "model", "adapter": "adapter"}
# Trainer's bookkeeping keys that are not model quality.
_NOT_METRICS = ("runtime", "samples_per_second", "steps_per_second", "model_preparation_time")


def _write_json(path: Path, data: Any) -> None:
    """Write atomically, so an interruption never leaves half a file behind."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, default=str), encoding="utf-8")
    os.replace(tmp, path)


def write_config(run_dir: Path, config: "TrainConfig") -> None:
    _write_json(run_dir / CONFIG_FILE, config.to_dict())


def split_history(log_history: Sequence[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Trainer's log history as training-loss entries and validation entries."""
    train = [dict(e) for e in log_history if "loss" in e]
    evals = [dict(e) for e in log_history if "eval_loss" in e]
    return {"train": train, "eval": evals}


def write_history(run_dir: Path, log_history: Sequence[dict[str, Any]]) -> None:
    _write_json(run_dir / HISTORY_FILE, split_history(log_history))


def write_samples(path: Path, samples: list[dict[str, str]], step: int) -> None:
    _write_json(path, {"step": step, "samples": samples})


def best_metrics(log_history: Sequence[dict[str, Any]], best_checkpoint: str | None
                 ) -> dict[str, Any]:
    """Validation metrics of the best checkpoint (or the last validation), without `eval_`."""
    evals = split_history(log_history)["eval"]
    if not evals:
        return {}
    chosen = evals[-1]
    if best_checkpoint:
        best_step = int(Path(best_checkpoint).name.split("-")[-1])
        chosen = next((e for e in evals if e.get("step") == best_step), chosen)
    metrics = {key.removeprefix("eval_"): value for key, value in chosen.items()
               if key.startswith("eval_") and not key.endswith(_NOT_METRICS)}
    metrics.update(step=chosen.get("step"), epoch=chosen.get("epoch"))
    return metrics


def _base_model_reference(base_model: str) -> str:
    """A local base model as an absolute path (the manifest is read from anywhere); ids as-is."""
    path = Path(base_model).expanduser()
    return str(path.resolve()) if path.is_dir() else base_model


def save_run(run_dir: Path, config: "TrainConfig", recipe: "Recipe", trainer: Any,
             splits: "Splits", metrics: dict[str, Any]) -> Path:
    """Save the (best) weights and write the manifest; call on every process, writes on rank 0."""
    weights_dir = run_dir / WEIGHTS_DIRS[recipe.weights]
    # Full model (with its processor: the Trainer saves processing_class), or only the adapter.
    trainer.save_model(str(weights_dir))
    manifest_path = run_dir / "medcap.json"
    if not trainer.is_world_process_zero():
        return manifest_path
    manifest = Manifest(
        family=recipe.family,
        base_model=_base_model_reference(config.base_model),
        weights=recipe.weights,
        path=weights_dir.name,
        prompt=recipe.prompt,
        max_pixels=getattr(config, "max_pixels", None),
        name=config.display_name,
        training_data=splits.description,
        metrics=metrics,
    )
    return write_manifest(run_dir, manifest)
