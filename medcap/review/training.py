"""Reviewed captions as training data: an image folder that `finetune/*.py --data DIR` reads.

What becomes an example: a reviewer's corrected caption, and the generated caption of a review
whose verdict is "correct". Each distinct caption of an image is one example (two reviewers'
different corrections are two examples of the same picture).

Layout (the image-folder format of `medcap.data.folder`): ``DIR/train/<id>.png`` and
``DIR/validation/<id>.png`` (a seeded share of the images, split by image so no picture is in
both), ``DIR/captions.csv`` (image_id, caption, plus where each caption came from) and
``DIR/skipped.csv`` (items left out, and why). Images come from the dataset a review was filed
under (a source given per dataset label) or from the upload store; an item whose image cannot be
found (a review of a results CSV without the images) is listed in skipped.csv, not guessed.
"""

from __future__ import annotations

import csv
import hashlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Mapping, Sequence

from PIL import Image

from medcap.review.records import VERDICTS, Review
from medcap.review.uploads import UPLOADS_DATASET, UploadStore

ImageLoader = Callable[[], Image.Image]
EXAMPLE_COLUMNS = ("image_id", "caption", "dataset", "source_image_id", "origin", "model", "reviewer")
SKIPPED_COLUMNS = ("dataset", "image_id", "reason")
ALL_SPLIT = "all"  # the app files reviews of a whole source under "<name>:all"


class TrainingExportError(ValueError):
    """The export cannot be written as asked (folder not empty, nothing to export...)."""


@dataclass(frozen=True)
class Example:
    dataset: str
    image_id: str
    caption: str
    origin: str  # "corrected" or "generated (verdict correct)"
    model: str
    reviewer: str


@dataclass
class TrainingExport:
    folder: Path
    examples: int = 0
    images: dict[str, int] = field(default_factory=dict)  # split -> images written
    skipped: list[tuple[str, str, str]] = field(default_factory=list)

    def summary(self) -> str:
        splits = ", ".join(f"{n} {split}" for split, n in self.images.items()) or "no"
        return (f"{self.examples} examples ({splits} images) in {self.folder}; "
                f"{len(self.skipped)} item(s) skipped (see skipped.csv)")


def examples_from_reviews(reviews: Iterable[Review]) -> dict[tuple[str, str], list[Example]]:
    """(dataset, image_id) -> its distinct training captions, in review order."""
    items: dict[tuple[str, str], list[Example]] = {}
    for review in reviews:
        if review.is_draft:
            continue
        caption, origin = review.corrected_caption.strip(), "corrected"
        if not caption and review.verdict == VERDICTS[0]:
            caption, origin = review.context.generated_caption.strip(), f"generated ({VERDICTS[0]})"
        if not caption:
            continue
        key = (review.key.dataset, review.key.image_id)
        known = items.setdefault(key, [])
        if all(example.caption != caption for example in known):
            known.append(Example(key[0], key[1], caption, origin, review.key.model, review.key.reviewer))
    return items


class ImageFinder:
    """Finds the picture behind a reviewed item: dataset labels map to data sources (the label
    "name:split" reads that split; "name:all" the whole source), "uploads" to the upload store."""

    def __init__(self, sources: Mapping[str, str], uploads: UploadStore | None = None):
        self.sources = dict(sources)
        self.uploads = uploads

    def loaders(self, dataset: str, image_ids: set[str]) -> tuple[dict[str, ImageLoader], str]:
        """Loaders for the ids found, and why the others are missing."""
        if dataset == UPLOADS_DATASET and self.uploads is not None:
            return self._upload_loaders(image_ids), f"image not in the upload store {self.uploads.folder}"
        if dataset not in self.sources:
            return {}, (f"no image source for dataset '{dataset}' (pass --images "
                        f"'{dataset}=FOLDER_OR_PARQUET')")
        from medcap.data import DataSourceError, iter_records

        source = self.sources[dataset]
        split = dataset.rsplit(":", 1)[1] if ":" in dataset else None
        found: dict[str, ImageLoader] = {}
        try:
            for record in iter_records(source, split=None if split == ALL_SPLIT else split):
                if record.image_id in image_ids:
                    found[record.image_id] = _display_loader(record)
                    if len(found) == len(image_ids):
                        break
        except (DataSourceError, OSError) as exc:
            return {}, f"image source {source} cannot be read: {exc}"
        return found, f"image not in {source}"

    def _upload_loaders(self, image_ids: set[str]) -> dict[str, ImageLoader]:
        found = {}
        for image_id in image_ids:
            item = self.uploads.get(image_id) if self.uploads else None
            if item is not None and item.image_path.is_file():
                found[image_id] = lambda path=item.image_path: Image.open(path)
        return found


def _display_loader(record) -> ImageLoader:
    return lambda: record.load().display


def file_stem(dataset: str, image_id: str, taken: set[str]) -> str:
    """A file name for the item that is safe everywhere and unique in this export."""
    def clean(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._") or "x"

    stem = f"{clean(dataset)}__{clean(image_id)}"[:120]
    if stem in taken:
        stem += "-" + hashlib.sha256(f"{dataset}\0{image_id}".encode()).hexdigest()[:10]
    taken.add(stem)
    return stem


def write_training_folder(reviews: Iterable[Review], folder: str | Path, finder: ImageFinder, *,
                          validation_share: float = 0.1, seed: int = 0) -> TrainingExport:
    """Write the folder described in the module docstring; refuses a non-empty folder."""
    folder = Path(folder)
    if folder.exists() and any(folder.iterdir()):
        raise TrainingExportError(f"{folder} is not empty; choose a new folder for the training data.")
    items = examples_from_reviews(reviews)
    if not items:
        raise TrainingExportError("No review has a corrected caption or a 'correct' verdict: "
                                  "nothing to train on.")
    result = TrainingExport(folder=folder)
    loaders: dict[tuple[str, str], ImageLoader] = {}
    for dataset in sorted({d for d, _ in items}):
        wanted = {i for d, i in items if d == dataset}
        found, why = finder.loaders(dataset, wanted)
        loaders.update({(dataset, i): loader for i, loader in found.items()})
        result.skipped += [(dataset, i, why) for i in sorted(wanted - set(found))]
    keys = sorted(loaders)
    validation = _validation_keys(keys, validation_share, seed)
    rows, taken = [], set()
    for key in keys:
        split = "validation" if key in validation else "train"
        try:
            image = loaders[key]()
        except (OSError, ValueError) as exc:  # medcap.data.ImageLoadError is a ValueError
            result.skipped.append((*key, f"image cannot be read: {exc}"))
            continue
        for example in items[key]:
            stem = file_stem(*key, taken)
            (folder / split).mkdir(parents=True, exist_ok=True)
            image.save(folder / split / f"{stem}.png")
            rows.append({"image_id": stem, "caption": example.caption, "dataset": example.dataset,
                         "source_image_id": example.image_id, "origin": example.origin,
                         "model": example.model, "reviewer": example.reviewer})
            result.images[split] = result.images.get(split, 0) + 1
    result.examples = len(rows)
    folder.mkdir(parents=True, exist_ok=True)
    _write_csv(folder / "captions.csv", EXAMPLE_COLUMNS, rows)
    _write_csv(folder / "skipped.csv", SKIPPED_COLUMNS,
               [dict(zip(SKIPPED_COLUMNS, entry)) for entry in result.skipped])
    return result


def _validation_keys(keys: Sequence[tuple[str, str]], share: float, seed: int) -> set[tuple[str, str]]:
    """A seeded share of the images (at least one when there are two or more)."""
    if len(keys) < 2 or share <= 0:
        return set()
    order = list(keys)
    random.Random(seed).shuffle(order)
    return set(order[: max(1, round(len(keys) * share))])


def _write_csv(path: Path, columns: Sequence[str], rows: Iterable[Mapping[str, str]]) -> None:
    """Plain UTF-8 CSV: a training file for scripts, not a spreadsheet (no formula escaping, so
    captions train exactly as written)."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)
