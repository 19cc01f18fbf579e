"""Review stores filled through the real store API, for analytics, import and export tests."""

from __future__ import annotations

from itertools import count
from pathlib import Path
from typing import Iterable, Sequence

from medcap.review import ReviewContext, ReviewInput, ReviewKey, ReviewStore


class SteppingClock:
    """A clock that moves one second per save, so review times are distinct and reproducible."""

    def __init__(self, start: int = 0) -> None:
        self._ticks = count(start)

    def __call__(self) -> str:
        seconds = next(self._ticks)
        return f"2026-03-01T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}Z"


def review(dataset: str, image_id: str, model: str, reviewer: str, verdict: str, *,
           categories: Sequence[str] = (), significant: bool = False, corrected: str = "",
           note: str = "", caption: str = "", scores: dict | None = None) -> ReviewInput:
    """A final review as the studio saves it (context included, so exports are complete)."""
    context = ReviewContext(generated_caption=caption or f"{model} caption of {image_id}",
                            ground_truth=f"reference of {image_id}", modality="CT",
                            scores=scores or {})
    return ReviewInput(key=ReviewKey(dataset, image_id, model, reviewer), verdict=verdict,
                       corrected_caption=corrected, note=note, context=context,
                       categories=tuple(categories), significant=significant)


def filled_store(path: Path, reviews: Iterable[ReviewInput], start: int = 0) -> ReviewStore:
    store = ReviewStore(path, clock=SteppingClock(start))
    for request in reviews:
        store.save(request)
    return store
