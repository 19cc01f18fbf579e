"""One ROCOv2-style row (parquet or hub) -> Record, shared by both readers."""

from __future__ import annotations

from typing import Any, Mapping

from medcap.data.errors import ImageLoadError
from medcap.data.images import load_image
from medcap.data.items import LoadedImage, Record
from medcap.data.modality import modality_from_cuis, parse_cuis


def image_cell(cell: Any) -> tuple[bytes | None, str | None]:
    """The `image` column holds raw bytes or the datasets struct {bytes, path}."""
    if cell is None:
        return None, None
    if isinstance(cell, (bytes, bytearray, memoryview)):
        return bytes(cell), None
    if isinstance(cell, Mapping):
        data = cell.get("bytes")
        path = cell.get("path")
        return (bytes(data) if data is not None else None), (str(path) if path else None)
    raise TypeError(f"unexpected image cell of type {type(cell).__name__}")


def record_from_row(row: Mapping[str, Any], *, fallback_id: str, split: str | None, where: str) -> Record:
    """Build a lazy Record; a row without image bytes fails only when it is loaded."""
    image_id = _text(row.get("image_id")) or fallback_id
    caption = _text(row.get("caption"))
    cuis = parse_cuis(row.get("cui"))
    try:
        data, path = image_cell(row.get("image"))
    except TypeError as exc:
        data, path, problem = None, None, str(exc)
    else:
        problem = "no image bytes"
    name = path.rsplit("/", 1)[-1] if path else image_id

    def load() -> LoadedImage:
        if data is None:
            raise ImageLoadError(f"Row '{image_id}' in {where} has {problem}: there is no image to load.")
        return load_image(data, name=name)

    return Record(
        image_id=image_id,
        caption=caption,
        cuis=cuis,
        modality=modality_from_cuis(cuis),
        split=split,
        loader=load,
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value)
    return text if text.strip() else None
