"""Builders for small test inputs: ROCOv2-style parquet files, image folders, odd image files
and edited copies of pydicom's shipped DICOM test files. Other test modules reuse these.
"""

from __future__ import annotations

import csv
import io
import shutil
import struct
import zlib
from pathlib import Path
from typing import Iterable, Mapping

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

# CUIs as ROCOv2 tags them: one modality concept plus anatomy / findings.
CT_CUIS = ("C0040405", "C0817096")  # X-Ray Computed Tomography, Chest
MRI_CUIS = ("C0024485", "C0037303")  # Magnetic Resonance Imaging, Bone structure of cranium
XRAY_CUIS = ("C1306645", "C0817096")  # Plain x-ray, Chest


def encode(image: Image.Image, fmt: str = "PNG", **save_args) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **save_args)
    return buffer.getvalue()


def gradient(width: int = 48, height: int = 32) -> np.ndarray:
    """uint8 horizontal ramp 0..255, handy for exact pixel checks."""
    row = np.round(np.linspace(0, 255, width)).astype(np.uint8)
    return np.tile(row, (height, 1))


def gray_png(width: int = 48, height: int = 32) -> bytes:
    return encode(Image.fromarray(gradient(width, height), "L"))


def rgb_jpeg(width: int = 40, height: int = 30, color=(200, 30, 30)) -> bytes:
    return encode(Image.new("RGB", (width, height), color), "JPEG", quality=95)


def rocov2_rows(count: int = 3, *, prefix: str = "ROCOv2_2023_test") -> list[dict]:
    """Rows in the ROCOv2 hub schema, cycling CT (gray PNG), MRI (RGB JPEG), X-ray (gray JPEG)."""
    kinds = [
        ("CT chest showing a right lower lobe mass.", CT_CUIS, gray_png(48, 32), "png"),
        ("Axial T2 MRI of the brain.", MRI_CUIS, rgb_jpeg(40, 30), "jpg"),
        ("Chest X-ray with bilateral infiltrates.", XRAY_CUIS, encode(Image.fromarray(gradient(36, 36), "L"), "JPEG", quality=95), "jpg"),
    ]
    rows = []
    for number in range(count):
        caption, cuis, data, suffix = kinds[number % len(kinds)]
        image_id = f"{prefix}_{number + 1:06d}"
        rows.append({
            "image": {"bytes": data, "path": f"{image_id}.{suffix}"},
            "image_id": image_id,
            "caption": caption,
            "cui": list(cuis),
        })
    return rows


def write_rocov2_parquet(
    path: Path, rows: Iterable[Mapping] | None = None, *, image_as: str = "struct", cui_as: str = "list"
) -> Path:
    """Write rows as the hub's parquet: image as struct{bytes,path} (or plain binary), cui as list (or ';' string)."""
    rows = list(rows if rows is not None else rocov2_rows())
    images = []
    for row in rows:
        cell = row.get("image")
        if image_as == "bytes":
            images.append(cell["bytes"] if isinstance(cell, Mapping) else cell)
        else:
            images.append(cell if isinstance(cell, Mapping) or cell is None else {"bytes": cell, "path": None})
    image_type = pa.binary() if image_as == "bytes" else pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    cuis = [row.get("cui") for row in rows]
    if cui_as == "string":
        cuis = [";".join(c) if c is not None else None for c in cuis]
        cui_type = pa.string()
    else:
        cui_type = pa.list_(pa.string())
    table = pa.table({
        "image": pa.array(images, type=image_type),
        "image_id": pa.array([row.get("image_id") for row in rows], type=pa.string()),
        "caption": pa.array([row.get("caption") for row in rows], type=pa.string()),
        "cui": pa.array(cuis, type=cui_type),
    })
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=2)
    return path


def write_rocov2_shards(folder: Path, rows_per_split: Mapping[str, int], shards: int = 2) -> dict[str, list[str]]:
    """Lay out `folder/data/{split}-0000k-of-0000n.parquet` like the hub repo; return ids per split."""
    ids: dict[str, list[str]] = {}
    for split, count in rows_per_split.items():
        rows = rocov2_rows(count, prefix=f"ROCOv2_2023_{split}")
        ids[split] = [row["image_id"] for row in rows]
        per_shard = -(-count // shards)
        for shard in range(shards):
            chunk = rows[shard * per_shard:(shard + 1) * per_shard]
            write_rocov2_parquet(folder / "data" / f"{split}-{shard:05d}-of-{shards:05d}.parquet", chunk)
    return ids


def write_image_folder(
    folder: Path, images: Mapping[str, bytes | Image.Image], captions: Mapping[str, str] | None = None
) -> Path:
    """Files named by `images` keys (e.g. "a.png", "test/b.jpg"); captions.csv if `captions` given."""
    for name, content in images.items():
        target = folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Image.Image):
            content = encode(content, "PNG")
        target.write_bytes(content)
    if captions is not None:
        folder.mkdir(parents=True, exist_ok=True)
        with (folder / "captions.csv").open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["image_id", "caption"])
            writer.writerows(captions.items())
    return folder


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """A genuine 1-bit PNG of `width`x`height` black pixels: ~50 kB on disk, 400 MP decoded."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    row = b"\x00" * (1 + (width + 7) // 8)
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


def pydicom_file(name: str) -> Path:
    """Path of a DICOM file shipped inside the pydicom wheel (never downloads)."""
    from pydicom.data import get_testdata_file

    path = get_testdata_file(name, download=False)
    if path is None:
        raise FileNotFoundError(f"{name} is not shipped with pydicom")
    return Path(path)


def edited_dicom(name: str, target: Path, edit) -> Path:
    """Copy a pydicom test file, apply `edit(dataset)`, save it to `target`."""
    import pydicom

    ds = pydicom.dcmread(pydicom_file(name))
    edit(ds)
    target.parent.mkdir(parents=True, exist_ok=True)
    ds.save_as(target, enforce_file_format=True)
    return target


def copy_dicom(name: str, target: Path) -> Path:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(pydicom_file(name), target)
    return target
