"""`iter_records`: one entry point for every dataset source medcap reads."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Iterator

from medcap.data.config import DEFAULT_SOURCE_CONFIG, SourceConfig
from medcap.data.errors import DataSourceError
from medcap.data.folder import iter_folder_records
from medcap.data.hub import iter_hub_records, looks_like_hub_id
from medcap.data.items import Record
from medcap.data.parquet import iter_parquet_records, parquet_files_for, parquet_shards


def iter_records(
    source: str | os.PathLike,
    *,
    split: str | None = None,
    limit: int | None = None,
    config: SourceConfig = DEFAULT_SOURCE_CONFIG,
) -> Iterator[Record]:
    """Records from a folder of images, a parquet file/folder, or a hub dataset id.

    Checks the source eagerly (so a bad path fails at the call, not at the first next()) and
    then yields lazily; `limit` caps the count, `split` picks shards/subfolders of that split.
    """
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be zero or positive, got {limit}")
    records = _open_source(source, split, config)
    return itertools.islice(records, limit) if limit is not None else records


def _open_source(source: str | os.PathLike, split: str | None, config: SourceConfig) -> Iterator[Record]:
    path = Path(source)
    if path.exists():
        if path.is_file():
            if path.suffix.lower() != ".parquet":
                raise DataSourceError(
                    f"'{path}' is a single file; pass a folder of images or a .parquet file "
                    "(to caption one image, load it with load_image)."
                )
            return iter_parquet_records(parquet_files_for(path, split), config)
        if parquet_shards(path):  # a hidden cache's .parquet does not make it a parquet folder
            return iter_parquet_records(parquet_files_for(path, split), config)
        return iter_folder_records(path, split)
    text = str(source)
    if looks_like_hub_id(text):
        return _hub(text, split, config)
    raise DataSourceError(f"'{path}' does not exist.")


def _hub(dataset_id: str, split: str | None, config: SourceConfig) -> Iterator[Record]:
    # Start the generator now so that "offline" and "no split" surface at the call.
    records = iter_hub_records(dataset_id, split, config)
    try:
        first = next(records)
    except StopIteration:
        return iter(())
    return itertools.chain([first], records)
