"""The Compare tab's data: images with their ground truth and every model's caption.

Items come from a results CSV (`python -m medcap caption`), from a dataset sample read through
`medcap.data.iter_records` (images, ground truth, modality), or both joined by image id. Images are
decoded only when an item is opened. Captions generated in the app are added in memory.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any, Iterable

import pandas as pd

from medcap.app.table import ALL


@dataclass
class ComparisonItem:
    """One image: its ground truth, modality, each model's caption, and how to load the pixels."""

    image_id: str
    ground_truth: str = ""
    modality: str = ""
    captions: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    tokens: dict[str, tuple] = field(default_factory=dict)
    """Token probabilities of captions generated in the app (a results CSV has none)."""
    record: Any = None  # a medcap.data.Record (has .load()) or None when only the CSV knows it


class ComparisonSet:
    """Items in a stable order with modality filtering and next / previous / random navigation."""

    def __init__(self, name: str, items: Iterable[ComparisonItem]):
        self.name = name
        self._items: dict[str, ComparisonItem] = {}
        for item in items:
            self._items[item.image_id] = item
        self._order = list(self._items)
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._order)

    @property
    def models(self) -> list[str]:
        seen: dict[str, None] = {}
        for item in self._items.values():
            for model in (*item.captions, *item.errors):
                seen.setdefault(model, None)
        return list(seen)

    @property
    def modalities(self) -> list[str]:
        return sorted({item.modality for item in self._items.values() if item.modality})

    def ids(self, modality: str = ALL) -> list[str]:
        if modality in (ALL, "", None):
            return list(self._order)
        return [i for i in self._order if self._items[i].modality == modality]

    def get(self, image_id: str) -> ComparisonItem | None:
        return self._items.get(str(image_id).strip())

    def first(self, modality: str = ALL) -> str | None:
        ids = self.ids(modality)
        return ids[0] if ids else None

    def step(self, image_id: str | None, delta: int, modality: str = ALL) -> str | None:
        """The id `delta` places away within the filter, wrapping around; the first if unknown."""
        ids = self.ids(modality)
        if not ids:
            return None
        if image_id not in ids:
            return ids[0]
        return ids[(ids.index(image_id) + delta) % len(ids)]

    def random_id(self, modality: str = ALL, rng: random.Random | None = None,
                  avoid: str | None = None) -> str | None:
        ids = self.ids(modality)
        if len(ids) > 1 and avoid in ids:
            ids = [i for i in ids if i != avoid]
        return (rng or random).choice(ids) if ids else None

    def add_caption(self, image_id: str, model: str, caption: str, seconds: float | None,
                    tokens: tuple = ()) -> None:
        with self._lock:
            item = self._items[image_id]
            item.captions[model] = caption
            item.tokens[model] = tuple(tokens)
            item.errors.pop(model, None)
            if seconds is not None:
                item.seconds[model] = seconds

    def pairs(self, model: str) -> list[tuple[str, str, str]]:
        """(image_id, caption, ground truth) of every item the model captioned."""
        return [(i, self._items[i].captions[model], self._items[i].ground_truth)
                for i in self._order if model in self._items[i].captions]


def items_from_results(frame: pd.DataFrame) -> dict[str, ComparisonItem]:
    """Group a results CSV (one row per image and model) into items."""
    items: dict[str, ComparisonItem] = {}
    frame = frame.fillna("")
    for row in frame.itertuples(index=False):
        image_id = str(row.image_id)
        item = items.setdefault(image_id, ComparisonItem(image_id=image_id))
        item.ground_truth = item.ground_truth or str(getattr(row, "original_caption", ""))
        item.modality = item.modality or str(getattr(row, "modality", ""))
        model = str(row.model)
        error = str(getattr(row, "error", "") or "")
        if error:
            item.errors[model] = error
            continue
        item.captions[model] = str(getattr(row, "generated_caption", ""))
        seconds = getattr(row, "processing_time_sec", "")
        if seconds != "":
            item.seconds[model] = float(seconds)
    return items


def build_comparison_set(name: str, results: pd.DataFrame | None, records: Iterable[Any] = ()
                         ) -> ComparisonSet:
    """Join dataset records (images) and results (captions) by image id; order: records first."""
    from_results = items_from_results(results) if results is not None else {}
    items: list[ComparisonItem] = []
    for record in records:
        image_id = str(record.image_id)
        item = from_results.pop(image_id, None) or ComparisonItem(image_id=image_id)
        item.record = record
        item.ground_truth = str(getattr(record, "caption", "") or item.ground_truth)
        item.modality = str(getattr(record, "modality", "") or item.modality)
        items.append(item)
    items.extend(from_results.values())
    return ComparisonSet(name, items)
