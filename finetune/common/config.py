"""One configuration dataclass per script family, all sharing `TrainConfig`, and their CLI.

Every field is a command-line flag (`batch_size` -> `--batch-size`), with its help text from the
field's metadata, so a script's flags, its defaults and the `train_config.json` a run writes are
the same thing. `--config FILE.json` loads a saved config (e.g. a previous run's) as the defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence, TypeVar

DEFAULT_DATA = "eltorio/ROCOv2-radiology"
SYNTHETIC_DATA = "synthetic"
NONE_WORDS = ("", "none", "null")


class FinetuneError(RuntimeError):
    """A problem with the run's inputs, reported as a message rather than a traceback."""


def option(default: Any, help: str, **kwargs: Any) -> Any:
    """A dataclass field with help text for the command line."""
    if isinstance(default, (list, dict, set)):
        raise TypeError("use a tuple for sequence defaults")
    return field(default=default, metadata={"help": help, **kwargs})


@dataclass
class TrainConfig:
    """What every fine-tune run needs: model, data, optimisation, evaluation, checkpointing."""

    base_model: str = option("", "hub id or local folder of the model to start from")
    output_dir: str = option("runs/run", "run folder: checkpoints, final model, manifest, history")
    run_name: str | None = option(None, "name the app shows for the result (default: folder name)")
    # data
    data: str = option(DEFAULT_DATA, "ROCOv2 hub id, local parquet file/folder, image folder with "
                       "captions.csv, or 'synthetic' (generated phantoms, offline)")
    train_split: str | None = option("train", "split to train on ('none' for an unsplit folder)")
    eval_split: str | None = option("validation", "split to validate on ('none': hold out "
                                    "--holdout-fraction of the training records)")
    holdout_fraction: float = option(0.05, "share of training records held out when there is "
                                     "no validation split")
    train_limit: int | None = option(None, "use at most this many training records")
    eval_limit: int | None = option(None, "use at most this many validation records")
    caption_eval_limit: int | None = option(200, "caption at most this many validation images "
                                            "per evaluation (loss uses all of them)")
    synthetic_image_size: int = option(64, "image side of generated phantoms (--data synthetic)")
    max_caption_tokens: int = option(96, "captions are cut to this many tokens for training")
    # optimisation
    epochs: float = option(3.0, "training epochs")
    max_steps: int = option(-1, "stop after this many optimizer steps (overrides --epochs)")
    batch_size: int = option(8, "images per device per step")
    eval_batch_size: int = option(8, "images per device when validating and captioning")
    grad_accum: int = option(1, "gradient accumulation steps (effective batch = batch x accum "
                             "x GPUs)")
    learning_rate: float = option(5e-5, "peak learning rate")
    weight_decay: float = option(0.01, "AdamW weight decay")
    warmup: float = option(0.05, "warmup: a fraction of all steps (<1) or a step count (>=1)")
    lr_scheduler: str = option("linear", "transformers scheduler name (linear, cosine, constant...)")
    max_grad_norm: float = option(1.0, "gradient clipping")
    mixed_precision: str = option("auto", "auto (bf16, else fp16, on GPU; none on CPU), bf16, "
                                  "fp16 or no", choices=("auto", "bf16", "fp16", "no"))
    gradient_checkpointing: bool = option(False, "trade compute for activation memory")
    seed: int = option(42, "seed for model init, data order and dropout")
    num_workers: int = option(2, "data loader worker processes")
    # evaluation and checkpoints
    eval_steps: int | None = option(None, "validate every N steps (default: every epoch)")
    logging_steps: int = option(10, "log the training loss every N steps")
    caption_metrics: tuple[str, ...] = option(("bleu4", "rouge_l", "cider_d"),
                                              "caption metrics computed at each validation")
    best_metric: str = option("loss", "validation metric that picks the best checkpoint: "
                              "'loss' or one of --caption-metrics")
    save_total_limit: int = option(2, "checkpoints kept (the best one is always kept)")
    resume: str = option("auto", "'auto': continue from the last complete checkpoint in the run "
                         "folder; 'never': refuse to reuse a folder with checkpoints; or a "
                         "checkpoint folder")
    max_new_tokens: int = option(64, "caption length limit when validating")
    progress_bar: bool = option(True, "show a progress bar")

    family: typing.ClassVar[str] = ""

    def __post_init__(self) -> None:
        for name in ("train_split", "eval_split", "run_name"):
            value = getattr(self, name)
            if isinstance(value, str) and value.strip().lower() in NONE_WORDS:
                setattr(self, name, None)
        if not self.base_model:
            raise ValueError("base_model is empty: give a hub id or a model folder")
        if self.best_metric != "loss" and self.best_metric not in self.caption_metrics:
            raise ValueError(f"best_metric '{self.best_metric}' is neither 'loss' nor one of "
                             f"caption_metrics {list(self.caption_metrics)}")
        if not 0 < self.holdout_fraction < 1:
            raise ValueError("holdout_fraction must be between 0 and 1")
        self.caption_metrics = tuple(self.caption_metrics)

    @property
    def run_dir(self) -> Path:
        return Path(self.output_dir)

    @property
    def display_name(self) -> str:
        return self.run_name or self.run_dir.name

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["family"] = self.family
        return data


@dataclass
class LoraTrainConfig(TrainConfig):
    """`TrainConfig` plus the LoRA settings the BLIP-2 and Qwen2-VL scripts share."""

    lora_rank: int = option(16, "LoRA rank r")
    lora_alpha: int = option(32, "LoRA scaling alpha")
    lora_dropout: float = option(0.05, "dropout on the LoRA path")
    lora_targets: tuple[str, ...] = option((), "module names (or one regex) LoRA adapts; empty: "
                                           "the script's default for its model")


ConfigT = TypeVar("ConfigT", bound=TrainConfig)


def _base_type(annotation: Any) -> tuple[Any, bool]:
    """(inner type, optional?) for `X`, `X | None` and `Optional[X]`."""
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return args[0], True
    return annotation, False


def _none_or(cast: Any) -> Any:
    def parse(text: str) -> Any:
        return None if text.strip().lower() in NONE_WORDS else cast(text)

    parse.__name__ = getattr(cast, "__name__", "value")
    return parse


def build_parser(config_class: type[TrainConfig], description: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--config", help="JSON file of settings (e.g. a run's train_config.json) "
                        "used as defaults; flags still override it")
    hints = typing.get_type_hints(config_class)
    for spec in dataclasses.fields(config_class):
        if not spec.init:
            continue
        flag = "--" + spec.name.replace("_", "-")
        kind, optional = _base_type(hints[spec.name])
        kwargs: dict[str, Any] = {"dest": spec.name, "default": spec.default,
                                  "help": spec.metadata.get("help", "")}
        if "choices" in spec.metadata:
            kwargs["choices"] = spec.metadata["choices"]
        if kind is bool:
            kwargs["action"] = argparse.BooleanOptionalAction
        elif typing.get_origin(kind) is tuple:
            kwargs.update(nargs="*", type=str)
        else:
            kwargs["type"] = _none_or(kind) if optional else kind
        parser.add_argument(flag, **kwargs)
    return parser


def parse_config(
    config_class: type[ConfigT], argv: Sequence[str] | None = None, description: str = ""
) -> ConfigT:
    """Build a config from command-line flags (and an optional `--config` JSON file)."""
    parser = build_parser(config_class, description or (config_class.__doc__ or ""))
    known, _ = parser.parse_known_args(argv)
    if known.config:
        saved = json.loads(Path(known.config).read_text(encoding="utf-8"))
        names = {f.name for f in dataclasses.fields(config_class)}
        parser.set_defaults(**{k: v for k, v in saved.items() if k in names})
    args = vars(parser.parse_args(argv))
    args.pop("config")
    try:
        return config_class(**args)
    except (TypeError, ValueError) as exc:
        parser.error(str(exc))
        raise  # unreachable: parser.error exits
