"""Helpers for fine-tuning tests: tiny run configs and a simulated interruption."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

import pytest
import torch
from transformers import TrainerCallback


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread() -> Iterator[None]:
    """Tiny models gain nothing from a second thread, and on a shared 2-core machine two
    spinning OpenMP threads per process slow training down many times over."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


class InterruptAt(TrainerCallback):
    """Stops training after optimizer step `step`, as a killed job would (after its checkpoint)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
        if state.global_step >= self.step:
            control.should_training_stop = True
        return control


def tiny_config(config_class: type, base_model: Path, output_dir: Path, **overrides: Any) -> Any:
    """A config for a seconds-long CPU run on synthetic phantoms; overrides win."""
    settings: dict[str, Any] = dict(
        base_model=str(base_model), output_dir=str(output_dir), data="synthetic",
        train_limit=32, eval_limit=8, synthetic_image_size=32, epochs=2, batch_size=8,
        eval_batch_size=8, learning_rate=1e-3, warmup=0.0, weight_decay=0.0, num_workers=0,
        logging_steps=1, max_new_tokens=16, progress_bar=False, seed=0,
    )
    settings.update(overrides)
    return config_class(**settings)
