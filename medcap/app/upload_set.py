"""The "uploads" collection: images captioned in the Caption tab, as a reviewable comparison set.

`medcap.review.uploads.UploadStore` keeps each upload's derived display PNG, its non-identifying
metadata, its captions and an optional reference caption; this module turns those items into the
`ComparisonItem`s that Compare, Evaluation and the review store already understand, so an upload
is opened, scored (once it has a reference), reviewed and exported like a dataset image.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping

from PIL import Image

from medcap.app.cards import CaptionCard
from medcap.app.comparison import ComparisonItem, ComparisonSet
from medcap.review.uploads import UPLOADS_DATASET, UploadItem, UploadStore


@dataclass(frozen=True)
class LoadedUpload:
    """What `Record.load()` returns for a dataset image: the model's and the viewer's picture."""

    image: Image.Image
    display: Image.Image


@dataclass(frozen=True)
class UploadRecord:
    """Loads a stored upload's display PNG on demand (the original file is never kept)."""

    image_id: str
    path: Path

    def load(self) -> LoadedUpload:
        with Image.open(self.path) as opened:
            display = opened.copy()
        return LoadedUpload(display.convert("RGB"), display)


def captions_of(cards: Iterable[CaptionCard]) -> dict[str, dict[str, Any]]:
    """Caption cards as `UploadStore.add` takes them: model -> {caption, seconds, error}."""
    return {card.model: {"caption": card.caption, "seconds": card.seconds, "error": card.error}
            for card in cards}


def comparison_item(item: UploadItem) -> ComparisonItem:
    """One stored upload as a comparison item; its reference caption is the ground truth."""
    captions: dict[str, str] = {}
    errors: dict[str, str] = {}
    seconds: dict[str, float] = {}
    for model, card in item.captions.items():
        if card.get("error"):
            errors[model] = str(card["error"])
            continue
        captions[model] = str(card.get("caption") or "")
        if card.get("seconds") is not None:
            seconds[model] = float(card["seconds"])
    return ComparisonItem(image_id=item.item_id, ground_truth=item.reference,
                          modality=_modality(item.metadata), captions=captions, seconds=seconds,
                          errors=errors, record=UploadRecord(item.item_id, item.image_path))


def upload_comparison(store: UploadStore) -> ComparisonSet:
    """Every stored upload, oldest first."""
    return ComparisonSet(UPLOADS_DATASET, (comparison_item(i) for i in store.items()))


def _modality(metadata: Mapping[str, str]) -> str:
    return str(metadata.get("modality", "") or "")
