"""A folder of images (PNG/JPEG/.../DICOM), with an optional captions.csv (image_id,caption[,cui]).

A folder without split subfolders is one split: asking it for any split (the app asks for `test`
by default) gives the whole folder. Two files with the same stem (`a.png`, `a.jpg`) keep their
suffix in the id, so both are read.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Iterator

from medcap.data.errors import DataSourceError
from medcap.data.images import DICOM_SUFFIXES, IMAGE_SUFFIXES, load_image
from medcap.data.items import LoadedImage, Record
from medcap.data.modality import modality_from_cuis, modality_from_dicom_code, parse_cuis
from medcap.data.splits import KNOWN_SPLITS, describe_splits

CAPTIONS_FILE = "captions.csv"


def iter_folder_records(root: Path, split: str | None) -> Iterator[Record]:
    """Check the folder now (empty, splits, duplicate ids, captions.csv), then yield lazily."""
    selected, chosen, captions, ids = _plan(root, split)
    return _records(selected, chosen, captions, ids)


def _plan(root: Path, split: str | None):
    files = list(_image_files(root))
    if not files:
        raise DataSourceError(
            f"'{root}' contains no images ({', '.join(IMAGE_SUFFIXES)}) and no parquet files."
        )
    by_split: dict[str | None, list[Path]] = {}
    for path in files:
        by_split.setdefault(_folder_split(path, root), []).append(path)
    present = {s for s in by_split if s}
    if split and present:
        if split not in by_split:
            raise DataSourceError(f"'{root}' has no images for the '{split}' split (split folders "
                                  f"found: {describe_splits(present)}).")
        chosen = split
    elif len(present) > 1:
        raise DataSourceError(
            f"'{root}' holds several splits ({describe_splits(present)}): choose one with --split / split=."
        )
    else:
        chosen = next(iter(by_split)) if len(by_split) == 1 else None
    selected = files if chosen is None else by_split[chosen]
    captions = _read_captions(root, chosen)
    ids = _unique_ids(selected, root, chosen)
    return selected, chosen, captions, ids


def _records(selected: list[Path], chosen: str | None, captions, ids: dict[Path, str]) -> Iterator[Record]:
    for path in selected:
        image_id = ids[path]
        caption, cuis = captions.get(image_id, (None, ()))
        yield Record(
            image_id=image_id,
            caption=caption,
            cuis=cuis,
            modality=_dicom_modality(path) if _is_dicom_file(path) else modality_from_cuis(cuis),
            split=chosen,
            loader=_file_loader(path),
        )


def _file_loader(path: Path):
    def load() -> LoadedImage:
        return load_image(path)

    return load


def _image_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*")):
        if any(part.startswith(".") for part in path.relative_to(root).parts) or not path.is_file():
            continue
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES or (not suffix and _has_dicom_magic(path)):
            yield path


def _has_dicom_magic(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            return handle.read(132)[128:132] == b"DICM"
    except OSError:
        return False


def _is_dicom_file(path: Path) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES or (not path.suffix and _has_dicom_magic(path))


def _dicom_modality(path: Path) -> str | None:
    from medcap.data.dicom import read_header

    try:
        return modality_from_dicom_code(read_header(str(path)).get("Modality"))
    except Exception:  # an unreadable header fails later, in load(), with a specific message
        return None


def _folder_split(path: Path, root: Path) -> str | None:
    parts = path.relative_to(root).parts
    return parts[0].lower() if len(parts) > 1 and parts[0].lower() in KNOWN_SPLITS else None


def _unique_ids(files: list[Path], root: Path, split: str | None) -> dict[Path, str]:
    """image_id = path below the (split) folder without suffix (the file stem for flat folders),
    or with its suffix where two files share a stem."""
    def image_id(path: Path, keep_suffix: bool) -> str:
        parts = list(path.relative_to(root).parts)
        if split and len(parts) > 1 and parts[0].lower() == split:
            parts = parts[1:]
        if not keep_suffix:
            parts[-1] = Path(parts[-1]).stem
        return "/".join(parts)

    by_stem: dict[str, list[Path]] = {}
    for path in files:
        by_stem.setdefault(image_id(path, keep_suffix=False), []).append(path)
    return {path: image_id(path, keep_suffix=len(group) > 1)
            for group in by_stem.values() for path in group}


def _read_captions(root: Path, split: str | None) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    candidates = [root / CAPTIONS_FILE]
    if split:
        candidates += [child / CAPTIONS_FILE for child in root.iterdir() if child.is_dir() and child.name.lower() == split]
    captions: dict[str, tuple[str | None, tuple[str, ...]]] = {}
    for path in candidates:
        if path.is_file():
            captions.update(_parse_captions(path))
    return captions


def _parse_captions(path: Path) -> dict[str, tuple[str | None, tuple[str, ...]]]:
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            fields = [f.strip() for f in (reader.fieldnames or [])]
            if "image_id" not in fields or "caption" not in fields:
                raise DataSourceError(
                    f"'{path}' must have the columns image_id,caption (found: {', '.join(fields) or 'none'})."
                )
            reader.fieldnames = fields
            result = {}
            for row in reader:
                name = (row.get("image_id") or "").strip()
                if name:
                    caption = row.get("caption")
                    entry = (caption if caption and caption.strip() else None, parse_cuis(row.get("cui")))
                    result[name] = entry  # "a.png" matches an id that kept its suffix
                    result.setdefault(_strip_image_suffix(name), entry)
            return result
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise DataSourceError(f"'{path}' cannot be read as a UTF-8 CSV file: {exc}") from exc


def _strip_image_suffix(image_id: str) -> str:
    path = Path(image_id)
    return image_id[: -len(path.suffix)] if path.suffix.lower() in IMAGE_SUFFIXES else image_id
