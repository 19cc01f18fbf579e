"""The one training loop the three scripts share: the transformers `Trainer`, plus caption metrics.

`Trainer` (on accelerate) gives the same command on a CPU, one GPU or `accelerate launch` on
several, with gradient accumulation, mixed precision, a progress bar, seeded data order, and
checkpoints that hold model, optimizer, scheduler, RNG states and step, so a resumed run continues
exactly where the interrupted one stopped. This module adds what a captioning run needs on top:
caption metrics at each validation, the best checkpoint kept by a chosen metric, and a run folder
that `medcap` loads (see `finetune.common.outputs`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from accelerate.utils import gather_object
from transformers import Trainer, TrainerCallback, TrainingArguments, set_seed

from finetune.common import outputs
from finetune.common.config import FinetuneError, TrainConfig
from finetune.common.data import CaptionDataset, Splits, load_splits
from finetune.common.evaluation import CaptionEvaluator
from finetune.common.models import base_weights_dir

log = logging.getLogger(__name__)
CHECKPOINTS_DIR = "checkpoints"


@dataclass
class Recipe:
    """What a family script hands the shared loop: a ready model and how to feed it."""

    family: str
    model: Any  # a PreTrainedModel, or a PeftModel for LoRA
    processor: Any  # saved beside full weights; used by the collator
    eval_processor: Any  # a copy set up for generation (left padding) for validation captions
    collator: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]]
    weights: str  # "full" or "adapter"
    eval_spec: Any  # medcap ModelSpec used to caption validation images
    prompt: str | None = None


@dataclass
class RunResult:
    run_dir: Path
    manifest_path: Path
    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    trainer: Trainer | None = None


class CaptionTrainer(Trainer):
    """`Trainer` whose evaluation also captions validation images and scores the captions."""

    def __init__(self, *args: Any, caption_evaluator: CaptionEvaluator | None = None,
                 samples_file: Path | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.caption_evaluator = caption_evaluator
        self.samples_file = samples_file

    def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
        """Adds peak GPU memory to every log line, so batch-size advice can be checked."""
        if torch.cuda.is_available():
            logs["gpu_peak_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        super().log(logs, *args, **kwargs)

    def evaluation_loop(self, dataloader: Any, description: str, *args: Any, **kwargs: Any) -> Any:
        output = super().evaluation_loop(dataloader, description, *args, **kwargs)
        if self.caption_evaluator is None or description != "Evaluation":
            return output
        prefix = kwargs.get("metric_key_prefix", "eval")
        model = self.accelerator.unwrap_model(self.model)
        scores, samples = self.caption_evaluator.evaluate(
            model, self.accelerator.process_index, self.accelerator.num_processes, gather_object)
        output.metrics.update({f"{prefix}_{name}": value for name, value in scores.items()})
        if self.samples_file and self.is_world_process_zero():
            outputs.write_samples(self.samples_file, samples, step=self.state.global_step)
        return output


class HistoryCallback(TrainerCallback):
    """Rewrites the run folder's metrics history after every log, so it is readable mid-run."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def on_log(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            outputs.write_history(self.run_dir, state.log_history)


def mixed_precision_flags(choice: str) -> dict[str, bool]:
    """TrainingArguments' bf16/fp16 for a config choice; 'auto' picks what the GPU supports."""
    if choice == "auto":
        if not torch.cuda.is_available():
            return {"bf16": False, "fp16": False}
        choice = "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if choice in ("bf16", "fp16") and not torch.cuda.is_available():
        raise ValueError(f"mixed_precision={choice} needs a CUDA GPU; use 'auto' or 'no' on CPU")
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"}


def accelerator_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return torch.cuda.is_available() or bool(mps and mps.is_available())


def training_arguments(config: TrainConfig) -> TrainingArguments:
    strategy = "steps" if config.eval_steps else "epoch"
    return TrainingArguments(
        output_dir=str(config.run_dir / CHECKPOINTS_DIR),
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval_batch_size,
        gradient_accumulation_steps=config.grad_accum,
        learning_rate=config.learning_rate,
        weight_decay=config.weight_decay,
        warmup_steps=config.warmup,
        lr_scheduler_type=config.lr_scheduler,
        max_grad_norm=config.max_grad_norm,
        num_train_epochs=config.epochs,
        max_steps=config.max_steps,
        eval_strategy=strategy,
        save_strategy=strategy,
        eval_steps=config.eval_steps,
        save_steps=config.eval_steps,
        logging_steps=config.logging_steps,
        save_total_limit=config.save_total_limit,
        load_best_model_at_end=True,
        metric_for_best_model=f"eval_{config.best_metric}",
        greater_is_better=config.best_metric != "loss",
        seed=config.seed,
        data_seed=config.seed,
        activation_checkpointing=config.gradient_checkpointing,
        dataloader_num_workers=config.num_workers,
        dataloader_pin_memory=torch.cuda.is_available(),
        remove_unused_columns=False,  # the collator needs the PIL images and captions
        label_names=["labels"],  # PeftModel hides the forward signature Trainer reads them from
        report_to="none",
        disable_tqdm=not config.progress_bar,
        use_cpu=not accelerator_available(),  # also makes `torchrun` on CPUs real DDP (gloo)
        **mixed_precision_flags(config.mixed_precision),
    )


def last_complete_checkpoint(checkpoints: Path) -> Path | None:
    """The newest checkpoint whose trainer state was written (the Trainer writes it last)."""
    if not checkpoints.is_dir():
        return None
    complete = [p for p in checkpoints.glob("checkpoint-*")
                if p.name.split("-")[-1].isdigit() and (p / "trainer_state.json").is_file()]
    return max(complete, key=lambda p: int(p.name.split("-")[-1]), default=None)


def resume_checkpoint(config: TrainConfig) -> Path | None:
    """Which checkpoint to continue from, per `config.resume`."""
    last = last_complete_checkpoint(config.run_dir / CHECKPOINTS_DIR)
    if config.resume == "auto":
        return last
    if config.resume == "never":
        if last is not None:
            raise FinetuneError(
                f"{config.run_dir} already holds checkpoints (latest {last.name}). Continue it "
                f"with --resume auto, or choose a new --output-dir.")
        return None
    path = Path(config.resume)
    if not (path / "trainer_state.json").is_file():
        raise FinetuneError(f"--resume {path} is not a complete Trainer checkpoint folder.")
    return path


def run_training(config: TrainConfig, recipe: Recipe, splits: Splits,
                 callbacks: Sequence[TrainerCallback] = ()) -> RunResult:
    """Train, validate each epoch, keep the best checkpoint, and write the loadable run folder."""
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    checkpoint = resume_checkpoint(config)
    eval_records = splits.validation[: config.caption_eval_limit or None]
    required = () if config.best_metric == "loss" else (config.best_metric,)
    evaluator = CaptionEvaluator(recipe.eval_spec, recipe.eval_processor, eval_records,
                                 config.caption_metrics, required=required)
    evaluator.check()
    trainer = CaptionTrainer(
        model=recipe.model,
        args=training_arguments(config),
        train_dataset=CaptionDataset(splits.train),
        eval_dataset=CaptionDataset(splits.validation),
        data_collator=recipe.collator,
        processing_class=recipe.processor if recipe.weights == "full" else None,
        callbacks=[HistoryCallback(run_dir), *callbacks],
        caption_evaluator=evaluator,
        samples_file=run_dir / outputs.SAMPLES_FILE,
    )
    if trainer.is_world_process_zero():  # every process writing the same file raced (DDP)
        outputs.write_config(run_dir, config)
    if checkpoint:
        log.info("resuming from %s", checkpoint)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    history = list(trainer.state.log_history)
    best = outputs.best_metrics(history, trainer.state.best_model_checkpoint)
    if trainer.is_world_process_zero():
        outputs.write_history(run_dir, history)
    manifest_path = outputs.save_run(run_dir, config, recipe, trainer, splits, best)
    return RunResult(run_dir=run_dir, manifest_path=manifest_path, metrics=best,
                     history=history, trainer=trainer)


def train_family(config: TrainConfig, build_recipe: Callable[[Any], Recipe],
                 callbacks: Sequence[TrainerCallback] = (), splits: Splits | None = None
                 ) -> RunResult:
    """A script's whole run: check the base model exists, read the data, build, train."""
    set_seed(config.seed)  # before the model is built, so LoRA initialisation is seeded too
    base_weights_dir(config)  # a missing model fails now, not after reading a large dataset
    splits = splits or load_splits(config)
    return run_training(config, build_recipe(config), splits, callbacks)
