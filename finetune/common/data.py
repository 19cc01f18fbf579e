"""Training and validation examples from the data layer (ROCOv2, image folders) or phantoms.

The scripts read data only through `medcap.data.iter_records` (or the synthetic set), so every
image the app can show, grayscale included, can be trained on. A dataset wraps any sequence of
Records (objects with `image_id`, `caption` and `load()`), which keeps it testable without files.
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from typing import Any, Iterable, Protocol, Sequence

from PIL import Image
from torch.utils.data import Dataset

from finetune.common.config import SYNTHETIC_DATA, FinetuneError, TrainConfig

log = logging.getLogger(__name__)


class CaptionRecord(Protocol):
    """The part of `medcap.data.Record` training needs."""

    image_id: str
    caption: str | None

    def load(self) -> Any: ...


@dataclass
class Splits:
    train: list[CaptionRecord]
    validation: list[CaptionRecord]
    description: dict[str, Any]  # what the manifest records as `training_data`


def with_captions(records: Iterable[CaptionRecord]) -> list[CaptionRecord]:
    """Records that have a non-empty caption (a caption-less image teaches nothing)."""
    return [r for r in records if r.caption and r.caption.strip()]


def _iter_records(source: str, split: str | None, limit: int | None) -> list[CaptionRecord]:
    from medcap.data import iter_records

    return list(iter_records(source, split=split, limit=limit))


def holdout(records: Sequence[CaptionRecord], fraction: float, seed: int
            ) -> tuple[list[CaptionRecord], list[CaptionRecord]]:
    """Split off a seeded validation share (at least one record) of an unsplit dataset."""
    order = list(range(len(records)))
    random.Random(seed).shuffle(order)
    count = max(1, round(len(records) * fraction))
    held = set(order[:count])
    train = [r for i, r in enumerate(records) if i not in held]
    return train, [r for i, r in enumerate(records) if i in held]


def load_splits(config: TrainConfig) -> Splits:
    """Training and validation records as the config asks, with a description for the manifest."""
    if config.data == SYNTHETIC_DATA:
        from medcap.data.synthetic import synthetic_records

        train = synthetic_records(config.train_limit or 480, split="train", seed=config.seed,
                                  image_size=config.synthetic_image_size)
        validation = synthetic_records(config.eval_limit or 48, split="validation",
                                       seed=config.seed, image_size=config.synthetic_image_size)
        splits = (config.train_split or "train", config.eval_split or "validation")
    else:
        train = with_captions(_iter_records(config.data, config.train_split, config.train_limit))
        if config.eval_split:
            validation = with_captions(
                _iter_records(config.data, config.eval_split, config.eval_limit))
        else:
            train, validation = holdout(train, config.holdout_fraction, config.seed)
            validation = validation[: config.eval_limit] if config.eval_limit else validation
        splits = (config.train_split, config.eval_split or f"holdout {config.holdout_fraction}")
    if not train:
        raise FinetuneError(f"No captioned training records in {config.data} "
                           f"(split {config.train_split!r}).")
    if not validation:
        raise FinetuneError(f"No captioned validation records in {config.data} "
                           f"(split {config.eval_split!r}).")
    description = {"source": config.data, "train_split": splits[0], "train_examples": len(train),
                   "validation_split": splits[1], "validation_examples": len(validation)}
    return Splits(train=list(train), validation=list(validation), description=description)


class CaptionDataset(Dataset):
    """(RGB image, caption) pairs; an image that fails to load is replaced by the next one.

    Replacing instead of raising keeps a long run alive over one corrupt file, and doing it
    deterministically keeps a resumed run identical to an uninterrupted one.
    """

    def __init__(self, records: Sequence[CaptionRecord]) -> None:
        self.records = list(records)
        self._reported: set[str] = set()

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> dict[str, Any]:
        for offset in range(len(self.records)):
            record = self.records[(index + offset) % len(self.records)]
            try:
                image = load_rgb(record)
            except (ValueError, OSError) as exc:  # medcap.data.ImageLoadError is a ValueError
                if record.image_id not in self._reported:
                    self._reported.add(record.image_id)
                    log.warning("skipping image %s: %s", record.image_id, exc)
                continue
            return {"image": image, "caption": record.caption or "", "image_id": record.image_id}
        raise FinetuneError("no image in the dataset could be loaded")


def load_rgb(record: CaptionRecord) -> Image.Image:
    """The model-ready image of a record (grayscale scans are converted, not dropped)."""
    loaded = record.load()
    image = getattr(loaded, "image", loaded)
    return image if image.mode == "RGB" else image.convert("RGB")
