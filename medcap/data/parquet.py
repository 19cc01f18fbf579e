"""ROCOv2-style parquet files (columns image, image_id, caption, cui), streamed batch by batch."""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from medcap.data.config import DEFAULT_SOURCE_CONFIG, SourceConfig
from medcap.data.errors import DataSourceError
from medcap.data.items import Record
from medcap.data.rows import record_from_row
from medcap.data.splits import describe_splits, split_of

ROCOV2_COLUMNS = ("image", "image_id", "caption", "cui")


def parquet_shards(root: Path) -> list[Path]:
    """The .parquet files under a folder, sorted, leaving out hidden files and folders (caches)."""
    return sorted(p for p in root.rglob("*.parquet") if not _hidden(p, root))


def parquet_files_for(root: Path, split: str | None) -> list[tuple[Path, str | None]]:
    """The shards to read under a file or folder, each with its split, in a stable order."""
    if root.is_file():
        found = split_of(root, root.parent)
        if split and found and found != split:
            raise DataSourceError(f"'{root}' holds the '{found}' split, not '{split}'.")
        return [(root, split or found)]
    files = parquet_shards(root)
    if not files:
        raise DataSourceError(f"'{root}' has no parquet files (hidden folders are not read).")
    labelled = [(path, split_of(path, root)) for path in files]
    present = {s for _, s in labelled if s}
    if split:
        chosen = [(path, s) for path, s in labelled if s == split]
        if not chosen:
            found = f"splits found: {describe_splits(present)}" if present else "no file is named for a split"
            raise DataSourceError(f"'{root}' has no parquet files for the '{split}' split ({found}).")
        return chosen
    if len(present) > 1:
        raise DataSourceError(
            f"'{root}' holds several splits ({describe_splits(present)}): choose one with --split / split=."
        )
    return labelled


def iter_parquet_records(
    files: list[tuple[Path, str | None]], config: SourceConfig = DEFAULT_SOURCE_CONFIG
) -> Iterator[Record]:
    """Check every file's footer and schema now (cheap), then stream the rows lazily."""
    opened = [(path, split, _open(path)) for path, split in files]
    return _iter_files(opened, config)


def _iter_files(opened, config: SourceConfig) -> Iterator[Record]:
    for path, split, parquet in opened:
        yield from _iter_file(path, split, parquet, config)


def _open(path: Path) -> pq.ParquetFile:
    try:
        # pre_buffer=False: with pyarrow's default read-ahead, memory grew with the file
        # (610 MB peak for a 600 MB file); without it a 1000-row file streams in ~180 MB.
        parquet = pq.ParquetFile(path, pre_buffer=False)
    except (pa.ArrowException, OSError) as exc:
        raise DataSourceError(f"'{path}' is not a readable parquet file: {exc}") from exc
    names = parquet.schema_arrow.names
    if "image" not in names:
        raise DataSourceError(
            f"'{path}' has no 'image' column (columns: {', '.join(names) or 'none'}); "
            f"expected the ROCOv2 columns {', '.join(ROCOV2_COLUMNS)}."
        )
    return parquet


def _iter_file(path: Path, split: str | None, parquet: pq.ParquetFile, config: SourceConfig) -> Iterator[Record]:
    columns = [c for c in ROCOV2_COLUMNS if c in parquet.schema_arrow.names]
    row_number = 0
    batches = parquet.iter_batches(batch_size=config.parquet_batch_rows, columns=columns)
    while True:
        try:
            batch = next(batches)
        except StopIteration:
            return
        except (pa.ArrowException, OSError) as exc:
            raise DataSourceError(f"'{path}' is corrupt after row {row_number}: {exc}") from exc
        for row in batch.to_pylist():
            yield record_from_row(
                row, fallback_id=f"{path.stem}-{row_number}", split=split, where=f"'{path.name}'"
            )
            row_number += 1


def _hidden(path: Path, root: Path) -> bool:
    return any(part.startswith(".") for part in path.relative_to(root).parts)
