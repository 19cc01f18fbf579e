"""Synthetic phantom captioning set: generated scans whose captions state what they show.

Real radiology captions need real data and days of training; this set needs neither. Each image is
a grayscale phantom in one of three looks (a CT-like round body, an MRI-like rounded square with
an intensity gradient, an ultrasound-like speckled fan) with one bright lesion, small or large, on
the patient's left or right. The caption states exactly those three facts, e.g.

    "ct image showing a small bright lesion on the left"

so a model that learns to see them gets the caption right, and one that does not cannot. It is the
fine-tuning learning test, and an offline demo: `python -m medcap.data.synthetic --out DIR` writes
an image folder with `captions.csv` that the app and the fine-tune scripts read like any dataset.

Sides follow the radiological convention: the patient's left is on the right of the image.
Images are rendered lazily from (seed, split, index), so a record costs no memory until loaded.
"""

from __future__ import annotations

import argparse
import csv
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

MODALITIES = ("ct", "mri", "ultrasound")
SIDES = ("left", "right")
SIZES = ("small", "large")
CAPTION_TEMPLATE = "{modality} image showing a {size} bright lesion on the {side}"
# Display names and the UMLS concept ROCOv2 uses to tag each modality, so the data layer's
# CUI -> modality mapping files these phantoms under the same modality as real images.
MODALITY_LABELS = {"ct": "CT", "mri": "MRI", "ultrasound": "Ultrasound"}
MODALITY_CUIS = {"ct": "C0040405", "mri": "C0024485", "ultrasound": "C0041618"}
LESION_RADIUS = {"small": 0.06, "large": 0.15}  # as a fraction of the image side
DEFAULT_IMAGE_SIZE = 64

from medcap.data import LoadedImage
from medcap.data.config import DEFAULT_LOADER_CONFIG
from medcap.data.pixels import model_image


def phantom_caption(modality: str, side: str, size: str) -> str:
    """The caption that states a phantom's modality, lesion size and side."""
    if modality not in MODALITIES or side not in SIDES or size not in SIZES:
        raise ValueError(f"unknown phantom attributes {modality!r}, {side!r}, {size!r}")
    return CAPTION_TEMPLATE.format(modality=modality, side=side, size=size)


def render_phantom(
    modality: str, side: str, size: str, *, image_size: int = DEFAULT_IMAGE_SIZE, seed: int = 0
) -> Image.Image:
    """A grayscale ('L') phantom; `seed` jitters body shape, noise and lesion position."""
    phantom_caption(modality, side, size)  # validates the attributes
    rng = np.random.default_rng(seed)
    n = image_size
    yy, xx = np.mgrid[0:n, 0:n].astype(np.float32) / (n - 1)  # 0..1 coordinates
    canvas = np.zeros((n, n), dtype=np.float32)
    if modality == "ct":
        radius_x, radius_y = rng.uniform(0.38, 0.46), rng.uniform(0.32, 0.42)
        body = ((xx - 0.5) / radius_x) ** 2 + ((yy - 0.5) / radius_y) ** 2 <= 1.0
        canvas[body] = 0.42
        canvas += body * rng.normal(0.0, 0.03, canvas.shape)
    elif modality == "mri":
        half = rng.uniform(0.36, 0.44)
        body = (np.abs(xx - 0.5) <= half) & (np.abs(yy - 0.5) <= half)
        canvas[body] = (0.65 - 0.45 * yy)[body]  # coil-like fall-off from top to bottom
    else:  # ultrasound: a fan opening downwards from the top centre, with speckle
        angle = np.arctan2(xx - 0.5, yy + 0.05)
        distance = np.hypot(xx - 0.5, yy + 0.05)
        spread = rng.uniform(0.55, 0.7)
        body = (np.abs(angle) <= spread) & (distance >= 0.15) & (distance <= 1.0)
        canvas[body] = rng.gamma(2.0, 0.15, canvas.shape)[body]
    canvas = np.clip(canvas, 0.0, 0.8)
    # Patient's left is the image's right (radiological convention).
    centre_x = (0.7 if side == "left" else 0.3) + rng.uniform(-0.05, 0.05)
    centre_y = 0.5 + rng.uniform(-0.12, 0.12)
    radius = LESION_RADIUS[size] * rng.uniform(0.9, 1.1)
    lesion = np.hypot(xx - centre_x, yy - centre_y) <= radius
    canvas[lesion] = 1.0
    return Image.fromarray((canvas * 255).round().astype(np.uint8), mode="L")


@dataclass(frozen=True)
class SyntheticRecord:
    """A phantom with the fields of `medcap.data.Record`; `load()` renders it."""

    image_id: str
    caption: str
    modality_word: str
    side: str
    size: str
    seed: int
    image_size: int = DEFAULT_IMAGE_SIZE
    split: str | None = None
    cuis: tuple[str, ...] = field(default=())

    @property
    def modality(self) -> str:
        return MODALITY_LABELS[self.modality_word]

    def render(self) -> Image.Image:
        return render_phantom(self.modality_word, self.side, self.size,
                              image_size=self.image_size, seed=self.seed)

    def load(self) -> LoadedImage:
        display = self.render()
        metadata = {"modality": self.modality, "lesion side": self.side,
                    "lesion size": self.size, "source": "synthetic phantom"}
        # The same model picture as a loaded file gets (tiny phantoms are scaled up for Qwen2-VL).
        return LoadedImage(image=model_image(display, DEFAULT_LOADER_CONFIG.min_model_side),
                           display=display, metadata=metadata, source_format="synthetic")


def synthetic_records(
    count: int, *, split: str = "train", seed: int = 0, image_size: int = DEFAULT_IMAGE_SIZE
) -> list[SyntheticRecord]:
    """`count` phantoms with every attribute combination equally often, in a seeded order.

    Different splits draw different jitter seeds, so validation images are never training images.
    """
    combos = [(m, sd, sz) for m in MODALITIES for sd in SIDES for sz in SIZES]
    order = random.Random(f"{seed}-{split}-order")
    records = []
    deck: list[tuple[str, str, str]] = []
    for index in range(count):
        if not deck:
            deck = combos[:]
            order.shuffle(deck)
        modality, side, size = deck.pop()
        image_seed = random.Random(f"{seed}-{split}-{index}").getrandbits(32)
        records.append(SyntheticRecord(
            image_id=f"phantom-{split}-{index:05d}",
            caption=phantom_caption(modality, side, size),
            modality_word=modality, side=side, size=size, seed=image_seed,
            image_size=image_size, split=split, cuis=(MODALITY_CUIS[modality],),
        ))
    return records


def write_synthetic_folder(
    directory: str | Path, count: int, *, split: str = "test", seed: int = 0,
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> Path:
    """Write PNG phantoms plus `captions.csv` (image_id,caption,cui): an image-folder dataset
    whose CUIs give the app each phantom's modality, as ROCOv2's do."""
    folder = Path(directory)
    folder.mkdir(parents=True, exist_ok=True)
    records = synthetic_records(count, split=split, seed=seed, image_size=image_size)
    for record in records:
        record.render().save(folder / f"{record.image_id}.png")
    with open(folder / "captions.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["image_id", "caption", "cui"])
        writer.writerows((r.image_id, r.caption, ";".join(r.cuis)) for r in records)
    return folder


def write_synthetic_parquet(
    path: str | Path, count: int, *, split: str = "test", seed: int = 0,
    image_size: int = DEFAULT_IMAGE_SIZE,
) -> Path:
    """Write phantoms as one ROCOv2-style parquet shard (image struct, image_id, caption, cui).

    Name the file like the hub's shards (`data/train-00000-of-00001.parquet`) to give the data
    layer a split; the fine-tune scripts then train on it exactly as on ROCOv2.
    """
    import io

    import pyarrow as pa
    import pyarrow.parquet as pq

    records = synthetic_records(count, split=split, seed=seed, image_size=image_size)
    images = []
    for record in records:
        buffer = io.BytesIO()
        record.render().save(buffer, format="PNG")
        images.append({"bytes": buffer.getvalue(), "path": f"{record.image_id}.png"})
    table = pa.table({
        "image": pa.array(images, type=pa.struct([("bytes", pa.binary()), ("path", pa.string())])),
        "image_id": pa.array([r.image_id for r in records], type=pa.string()),
        "caption": pa.array([r.caption for r in records], type=pa.string()),
        "cui": pa.array([list(r.cuis) for r in records], type=pa.list_(pa.string())),
    })
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, target)
    return target


def lesion_side_from_pixels(image: Image.Image) -> str:
    """The side (patient's) whose image half holds more fully bright pixels: a pixel-level check."""
    pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    half = pixels.shape[1] // 2
    left_image, right_image = (pixels[:, :half] == 255).sum(), (pixels[:, half:] == 255).sum()
    return "left" if right_image > left_image else "right"


def lesion_area_fraction(image: Image.Image) -> float:
    pixels = np.asarray(image.convert("L"), dtype=np.uint8)
    return float((pixels == 255).mean())


def expected_lesion_area(size: str) -> float:
    return math.pi * LESION_RADIUS[size] ** 2


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a synthetic phantom captioning folder.")
    parser.add_argument("--out", required=True, help="folder to write PNGs and captions.csv into")
    parser.add_argument("--count", type=int, default=48)
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--image-size", type=int, default=DEFAULT_IMAGE_SIZE)
    args = parser.parse_args(argv)
    folder = write_synthetic_folder(args.out, args.count, split=args.split, seed=args.seed,
                                    image_size=args.image_size)
    print(f"wrote {args.count} phantoms and captions.csv to {folder}")


if __name__ == "__main__":
    main()
