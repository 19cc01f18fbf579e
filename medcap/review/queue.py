"""The review queue: "next for me" in a fixed order, each item served to k reviewers.

Assignments live in the store (so every server worker and restart sees the same queue); claiming
an item is checked under the store's write lock, so k is never exceeded by two reviewers asking
at the same moment. Blind mode's card order is a hash of (dataset, item, reviewer), so reopening
an item shows the same order without storing it.
"""

from __future__ import annotations

import hashlib
import os
import random
import re
from dataclasses import dataclass
from typing import Mapping, Sequence

from medcap.review.records import ReviewValidationError
from medcap.review.store import ReviewStore, reviewer_key

QUEUE_ORDERS = ("random", "id")


@dataclass(frozen=True)
class QueueSettings:
    """overlap: reviewers per item (k); order: "random" (seeded) or "id"; blind: hide names."""

    overlap: int = 2
    order: str = "random"
    seed: int = 0
    blind: bool = True

    def __post_init__(self) -> None:
        if int(self.overlap) < 1:
            raise ValueError(f"Queue overlap must be at least 1 (got {self.overlap}).")
        if self.order not in QUEUE_ORDERS:
            raise ValueError(f"Queue order must be one of {', '.join(QUEUE_ORDERS)} "
                             f"(got {self.order!r}).")

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "QueueSettings":
        """MEDCAP_QUEUE_OVERLAP, MEDCAP_QUEUE_ORDER, MEDCAP_QUEUE_SEED, MEDCAP_BLIND (1/0)."""
        env = os.environ if env is None else env
        default = cls()
        try:
            overlap = int(env.get("MEDCAP_QUEUE_OVERLAP") or default.overlap)
            seed = int(env.get("MEDCAP_QUEUE_SEED") or default.seed)
        except ValueError as exc:
            raise ValueError(f"MEDCAP_QUEUE_OVERLAP and MEDCAP_QUEUE_SEED must be whole numbers: "
                             f"{exc}") from exc
        order = (env.get("MEDCAP_QUEUE_ORDER") or default.order).strip().lower()
        blind_text = (env.get("MEDCAP_BLIND") or "1").strip().lower()
        if blind_text not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
            raise ValueError(f"MEDCAP_BLIND must be 1 or 0 (got {blind_text!r}).")
        return cls(overlap=overlap, order=order, seed=seed,
                   blind=blind_text in ("1", "true", "yes", "on"))


@dataclass(frozen=True)
class QueueProgress:
    """Items of this queue assigned to a reviewer, and how many of them they have finished."""

    done: int
    assigned: int


def queue_order(item_ids: Sequence[str], settings: QueueSettings) -> list[str]:
    """Unique ids by natural id order, or shuffled with the seed (the same on every call)."""
    ordered = sorted(dict.fromkeys(str(i) for i in item_ids), key=_natural_key)
    if settings.order == "random":
        random.Random(settings.seed).shuffle(ordered)
    return ordered


def _natural_key(text: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in re.split(r"(\d+)", text) if part]


class ReviewQueue:
    """Serves each reviewer their next item of one dataset."""

    def __init__(self, store: ReviewStore, dataset: str, item_ids: Sequence[str],
                 settings: QueueSettings = QueueSettings()):
        self.store = store
        self.dataset = dataset
        self.settings = settings
        self.items = queue_order(item_ids, settings)

    def next_for(self, reviewer: str) -> str | None:
        """Their unfinished assigned item first; else claim the next item they have neither
        reviewed nor been assigned that fewer than `overlap` reviewers hold; else None."""
        who = reviewer_key(reviewer)
        if not who:
            raise ReviewValidationError("Enter your name to get the next item.")
        assigned = self.store.assignments(self.dataset)
        done = self.store.done_items(self.dataset, reviewer)
        for item in self.items:
            if who in assigned.get(item, ()) and item not in done:
                return item
        for item in self.items:
            holders = assigned.get(item, set())
            if item in done or who in holders or len(holders) >= self.settings.overlap:
                continue
            if self.store.assign(self.dataset, item, reviewer, limit=self.settings.overlap):
                return item
        return None

    def progress(self, reviewer: str) -> QueueProgress:
        who = reviewer_key(reviewer)
        assigned = self.store.assignments(self.dataset)
        mine = {item for item in self.items if who in assigned.get(item, ())}
        done = mine & self.store.done_items(self.dataset, reviewer)
        return QueueProgress(done=len(done), assigned=len(mine))


def blind_order(dataset: str, image_id: str, reviewer: str, models: Sequence[str]) -> list[str]:
    """The models in an order that looks random but is the same each time this reviewer opens
    this item (and differs between reviewers), so hidden names cannot be inferred from position."""
    who = reviewer_key(reviewer)

    def rank(model: str) -> str:
        text = "\0".join((str(dataset), str(image_id), who, str(model)))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    return sorted(dict.fromkeys(models), key=rank)


def blind_label(index: int) -> str:
    """"Caption A", "Caption B", ... "Caption Z", "Caption AA", ... for a 0-based index."""
    if index < 0:
        raise ValueError("index must be 0 or more")
    letters = ""
    number = index + 1
    while number:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return f"Caption {letters}"
