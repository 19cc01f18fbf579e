"""Streaming a dataset from the Hugging Face hub (e.g. eltorio/ROCOv2-radiology) with `datasets`.

Streaming reads the first rows of a split without downloading 80k images. Without network the
hub client retries for ~25 s and then fails with a generic error, so we first check that the
endpoint answers at all and say plainly how to use a local copy instead.
"""

from __future__ import annotations

import os
import re
import socket
from typing import Iterator
from urllib.parse import urlparse

from medcap.data.config import DEFAULT_SOURCE_CONFIG, SourceConfig
from medcap.data.errors import DataSourceError
from medcap.data.images import IMAGE_SUFFIXES
from medcap.data.items import Record
from medcap.data.rows import record_from_row

HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*$")
DEFAULT_ENDPOINT = "https://huggingface.co"
_TRUE = {"1", "true", "yes", "on"}


_FILE_SUFFIXES = (".parquet", ".csv", ".zip", ".tar", ".gz") + IMAGE_SUFFIXES


def looks_like_hub_id(text: str) -> bool:
    """"owner/name", but not something that is evidently a (missing) local file."""
    return bool(HUB_ID.match(text)) and not text.lower().endswith(_FILE_SUFFIXES)


def local_copy_hint(dataset_id: str, split: str) -> str:
    return (
        "To use a local copy, download the parquet shards on a machine with network access, e.g. "
        f"`hf download {dataset_id} --repo-type dataset --include 'data/{split}-*' --local-dir rocov2`, "
        f"and pass the folder instead: --images rocov2/data --split {split}."
    )


def iter_hub_records(
    dataset_id: str, split: str | None, config: SourceConfig = DEFAULT_SOURCE_CONFIG
) -> Iterator[Record]:
    if not split:
        raise DataSourceError(
            f"No local file or folder '{dataset_id}' exists; to stream it from the Hugging Face hub, "
            "choose a split (ROCOv2 has train, validation and test): --split test / split='test'."
        )
    problem = hub_problem(config)
    if problem:
        raise DataSourceError(
            f"No local file or folder '{dataset_id}' exists, and it cannot be streamed from the "
            f"Hugging Face hub: {problem}. "
            + local_copy_hint(dataset_id, split)
        )
    try:
        import datasets
    except ImportError as exc:
        raise DataSourceError("Streaming from the hub needs the 'datasets' package: pip install datasets.") from exc
    try:
        stream = datasets.load_dataset(dataset_id, split=split, streaming=True)
        if stream.features and "image" in stream.features:
            stream = stream.cast_column("image", datasets.Image(decode=False))
        rows = iter(stream)
    except Exception as exc:
        raise DataSourceError(
            f"Cannot stream split '{split}' of '{dataset_id}' from the Hugging Face hub "
            f"({type(exc).__name__}: {exc}). " + local_copy_hint(dataset_id, split)
        ) from exc
    yield from iter_rows_as_records(rows, split=split, where=f"'{dataset_id}' ({split})")


def iter_rows_as_records(rows, *, split: str | None, where: str) -> Iterator[Record]:
    """Rows as `datasets` yields them (image not decoded) -> lazy Records."""
    for number, row in enumerate(rows):
        yield record_from_row(row, fallback_id=f"{split or 'row'}-{number}", split=split, where=where)


def hub_problem(config: SourceConfig = DEFAULT_SOURCE_CONFIG) -> str | None:
    """Why the Hugging Face hub cannot be used now (offline mode, no connection), or None."""
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        if os.environ.get(variable, "").strip().lower() in _TRUE:
            return f"offline mode is on ({variable}={os.environ[variable]})"
    endpoint = os.environ.get("HF_ENDPOINT", DEFAULT_ENDPOINT)
    parsed = urlparse(endpoint)
    host = parsed.hostname or "huggingface.co"
    port = parsed.port or (80 if parsed.scheme == "http" else 443)
    try:
        with socket.create_connection((host, port), timeout=config.hub_probe_timeout_s):
            return None
    except OSError as exc:
        return f"the hub is unreachable ({host}:{port}: {exc.strerror or exc})"
