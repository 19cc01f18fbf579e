"""The results CSV of `python -m medcap caption`: append-only, resumable, never left corrupt.

Rows are appended one batch at a time with a single `os.write` on an O_APPEND descriptor and
fsync'd, so an interrupted run leaves whole rows behind; the only damage a hard kill or power loss
can do is a torn last line, which `ResultsWriter` detects and cuts off when it reopens the file.
Finished (image_id, model) pairs are read back so a rerun skips them. A fresh start
(`overwrite=True`) writes beside the old file and replaces it only at `commit()`, so a run that
fails or is interrupted leaves the old results as they were.
"""

from __future__ import annotations

import csv
import io
import os
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable


@dataclass
class ResultRow:
    image_id: str
    original_caption: str
    generated_caption: str
    processing_time_sec: float
    model: str
    timestamp: str
    split: str
    modality: str = ""
    model_source: str = ""
    error: str = ""

    @staticmethod
    def now() -> str:
        return datetime.now(timezone.utc).isoformat(timespec="seconds")


COLUMNS = [f.name for f in fields(ResultRow)]


class ResultsFileError(ValueError):
    """The output file exists but is not a results CSV this writer can continue."""


def _encode(rows: Iterable[ResultRow]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for row in rows:
        values = []
        for name in COLUMNS:
            value = getattr(row, name)
            values.append(f"{value:.4f}" if isinstance(value, float) else value)
        writer.writerow(values)
    return buffer.getvalue().encode("utf-8")


def _repair_torn_tail(path: Path) -> int:
    """Cut an incomplete last line (a write interrupted mid-row); returns bytes removed."""
    size = path.stat().st_size
    if size == 0:
        return 0
    with open(path, "rb+") as handle:
        handle.seek(size - 1)
        if handle.read(1) == b"\n":
            return 0
        handle.seek(0)
        data = handle.read()
        # A newline inside a quoted field is not a row end: back off until quotes balance.
        cut = data.rfind(b"\n") + 1
        while cut > 0 and data[:cut].count(b'"') % 2:
            cut = data.rfind(b"\n", 0, cut - 1) + 1
        handle.truncate(cut)
        return size - cut


def staging_path(path: Path) -> Path:
    """Where an overwriting run writes until `commit()`: a hidden file beside `path`."""
    return path.with_name(f".{path.name}.partial")


class ResultsWriter:
    """Appends result rows to a CSV and knows which (image_id, model) pairs are finished."""

    def __init__(self, path: str | Path, *, overwrite: bool = False) -> None:
        self.target = Path(path)
        if self.target.is_dir():
            raise ResultsFileError(
                f"{self.target} is a folder; the results need a file name, such as "
                f"{self.target / 'results.csv'}.")
        self.path = staging_path(self.target) if overwrite else self.target
        self.repaired_bytes = 0
        self.done: set[tuple[str, str]] = set()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if overwrite:
            self.path.unlink(missing_ok=True)  # a previous interrupted fresh start
        if self.path.exists() and self.path.stat().st_size > 0:
            self.repaired_bytes = _repair_torn_tail(self.path)
            self.done = self._read_done()
        if not self.path.exists() or self.path.stat().st_size == 0:
            self._append(",".join(COLUMNS).encode("utf-8") + b"\n")

    def _read_done(self) -> set[tuple[str, str]]:
        with open(self.path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ("image_id", "model", "generated_caption")
                       if c not in (reader.fieldnames or [])]
            if missing:
                raise ResultsFileError(
                    f"{self.path} exists but is not a medcap results CSV (no column "
                    f"{', '.join(missing)}). Choose another --out or pass --overwrite.")
            if reader.fieldnames != COLUMNS:
                raise ResultsFileError(
                    f"{self.path} has columns {reader.fieldnames}, not the ones this version "
                    f"writes ({COLUMNS}). Choose another --out or pass --overwrite.")
            return {(row["image_id"], row["model"]) for row in reader}

    def _append(self, data: bytes) -> None:
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)

    def is_done(self, image_id: str, model: str) -> bool:
        return (image_id, model) in self.done

    def write(self, rows: list[ResultRow]) -> None:
        if not rows:
            return
        self._append(_encode(rows))
        self.done.update((row.image_id, row.model) for row in rows)

    def commit(self) -> None:
        """Put an overwriting run's rows in place of the old file (atomic rename)."""
        if self.path != self.target:
            os.replace(self.path, self.target)
            self.path = self.target

    def discard(self) -> None:
        """Drop an overwriting run's rows; the old file stays as it was."""
        if self.path != self.target:
            self.path.unlink(missing_ok=True)
