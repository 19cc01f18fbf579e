"""The results CSV of `python -m medcap caption` and the evaluation files of `medcap evaluate`.

This module is the one owner of both formats: the caption command, the evaluate command, the app
and the tests read and write them only through it.

The results CSV is append-only, resumable, never left corrupt.

Rows are appended one batch at a time with a single `os.write` on an O_APPEND descriptor and
fsync'd, so an interrupted run leaves whole rows behind; the only damage a hard kill or power loss
can do is a torn last line, which `ResultsWriter` detects and cuts off when it reopens the file.
Finished (image_id, model) pairs are read back so a rerun skips them. A fresh start
(`overwrite=True`) writes beside the old file and replaces it only at `commit()`, so a run that
fails or is interrupted leaves the old results as they were.
"""

from __future__ import annotations

import csv
import json
import os
import re
import tempfile
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import pandas as pd


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


#: Unquoted, these cells mean "no value" (as pandas and spreadsheets write it); quoted, they are text.
NAN_STRINGS = frozenset({"NaN", "nan"})
_NEEDS_QUOTES = re.compile(r'[,"\r\n]|^\s|\s$')


def csv_field(value: object) -> str:
    """One CSV cell: RFC 4180 quoting, plus quotes around text that would read back as NaN."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if value != value else repr(value)
    text = str(value)
    if text in NAN_STRINGS or _NEEDS_QUOTES.search(text):
        return '"' + text.replace('"', '""') + '"'
    return text


def csv_line(values: Iterable[object]) -> str:
    return ",".join(csv_field(value) for value in values) + "\n"


def _encode(rows: Iterable[ResultRow]) -> bytes:
    lines = []
    for row in rows:
        values = []
        for name in COLUMNS:
            value = getattr(row, name)
            values.append(f"{value:.4f}" if isinstance(value, float) else value)
        lines.append(csv_line(values))
    return "".join(lines).encode("utf-8")


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


# -- reading ---------------------------------------------------------------------------------------

#: The longest CSV line or field accepted (csv's own default field limit): a caption is a few
#: hundred characters; a 1 GB line is refused with a message instead of exhausting memory.
MAX_LINE_CHARS = 131_072
RESULTS_KEY_COLUMNS = ("image_id", "model", "generated_caption")
#: Columns that hold text in results and evaluation files; every other column of an evaluation
#: file is a score.
TEXT_COLUMNS = frozenset({
    "image_id", "model", "modality", "split", "timestamp", "error", "model_source", "dataset",
    "generated_caption", "original_caption", "verdict", "fact_contradictions",
})
_FIELD = re.compile(r'"(?:[^"]|"")*"|[^,\r\n]*')


def _quoted_fields(record: str) -> list[bool]:
    """Which fields of one raw CSV record were quoted (only asked of the rare rows holding 'NaN')."""
    text, flags, position = record.rstrip("\r\n"), [], 0
    while True:
        match = _FIELD.match(text, position)
        flags.append(match.group().startswith('"'))
        position = match.end()
        if position >= len(text) or text[position] != ",":
            return flags
        position += 1


class _BoundedLines:
    """Lines of a text file, each at most MAX_LINE_CHARS, remembering the current record's lines."""

    def __init__(self, handle, path: Path) -> None:
        self._handle, self._path = handle, path
        self.number = 0
        self.record: list[str] = []

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        line = self._handle.readline(MAX_LINE_CHARS + 1)
        if not line:
            raise StopIteration
        self.number += 1
        if len(line) > MAX_LINE_CHARS:
            raise ResultsFileError(
                f"{self._path}: line {self.number} is longer than {MAX_LINE_CHARS:,} characters; "
                f"a caption file has short lines (is this the right file?)")
        self.record.append(line)
        return line


def read_csv_text(path: str | Path) -> pd.DataFrame:
    """Every cell as text; an unquoted NaN/nan cell is empty (no value), a quoted one is text."""
    path = Path(path)
    if path.is_dir():
        raise ResultsFileError(f"{path} is a folder, not a CSV file")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = _BoundedLines(handle, path)
            reader = csv.reader(lines)
            header = next(reader, None)
            if header is None:
                raise ResultsFileError(f"{path} is empty")
            lines.record.clear()
            rows = []
            for row in reader:
                if any(value in NAN_STRINGS for value in row):
                    quoted = _quoted_fields("".join(lines.record))
                    row = [v if v not in NAN_STRINGS or (i < len(quoted) and quoted[i]) else "" for i, v in enumerate(row)]
                lines.record.clear()
                if row:
                    rows.append(row + [""] * (len(header) - len(row)) if len(row) < len(header) else row[:len(header)])
    except csv.Error as exc:
        raise ResultsFileError(f"{path}: not a readable CSV near line {lines.number}: {exc}") from None
    except UnicodeDecodeError as exc:
        raise ResultsFileError(f"{path} is not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    return pd.DataFrame(rows, columns=header, dtype=object).astype(str) if rows else pd.DataFrame(columns=header, dtype=str)


def read_results_csv(path: str | Path, required: Sequence[str] = RESULTS_KEY_COLUMNS) -> pd.DataFrame:
    """A results CSV with text kept as text (image ids like '0012' stay intact)."""
    frame = read_csv_text(path)
    missing = [column for column in required if column not in frame.columns]
    if missing:
        raise ResultsFileError(f"{path} is not a results CSV: missing column(s) {', '.join(missing)}.")
    if "processing_time_sec" in frame:
        frame["processing_time_sec"] = pd.to_numeric(frame["processing_time_sec"], errors="coerce")
    return frame


def read_evaluation_csv(path: str | Path) -> pd.DataFrame:
    """The per-caption CSV of `medcap evaluate`: ids and captions as text, scores as numbers.

    The per-model summary JSON beside it, when readable, is attached as
    `frame.attrs["summary_models"]` (corpus scores are not means of per-caption scores).
    """
    frame = read_csv_text(path)
    missing = {"image_id", "model"} - set(frame.columns)
    if missing:
        raise ResultsFileError(f"{path} is not an evaluation CSV: missing {', '.join(sorted(missing))}.")
    for column in frame.columns:
        if column not in TEXT_COLUMNS:
            numbers = pd.to_numeric(frame[column].replace("", None), errors="coerce")
            if numbers.notna().sum() == (frame[column] != "").sum():  # every filled cell is a number
                frame[column] = numbers.astype(float)
    summary = EvaluationPaths(Path(path)).summary_json
    if summary.is_file():
        try:
            frame.attrs["summary_models"] = json.loads(summary.read_text(encoding="utf-8"))["models"]
        except (OSError, ValueError, KeyError, TypeError):
            pass  # an unreadable summary: the app falls back to per-caption means
    return frame


# -- evaluation files ------------------------------------------------------------------------------

#: The per-caption evaluation CSV: these columns first (those present), then one per metric.
EVALUATION_LEAD_COLUMNS = ("image_id", "model", "split", "modality", "generated_caption", "original_caption")


@dataclass(frozen=True)
class EvaluationPaths:
    """Where `medcap evaluate` writes: per-caption CSV, summary CSV and summary JSON."""

    per_caption: Path

    @property
    def summary_csv(self) -> Path:
        return self.per_caption.with_name(self.per_caption.stem + "_summary.csv")

    @property
    def summary_json(self) -> Path:
        return self.per_caption.with_name(self.per_caption.stem + "_summary.json")

    @property
    def all(self) -> tuple[Path, Path, Path]:
        return (self.per_caption, self.summary_csv, self.summary_json)

    def check_writable(self, inputs: Sequence[Path] = ()) -> None:
        """Raise ResultsFileError (one line) unless all three outputs can be written, before any work."""
        for target in self.all:
            if any(_same_file(target, source) for source in inputs):
                raise ResultsFileError(f"{target} is also the input: choose another --out (it would replace the predictions)")
            if target.is_dir():
                raise ResultsFileError(f"{target} is a folder; --out must name a CSV file")
        folder = self.per_caption.parent
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder, prefix=".medcap-write-test-"):
                pass
        except OSError as exc:
            raise ResultsFileError(f"cannot write to {folder}: {exc.strerror or exc}") from None
        for target in self.all:
            if target.exists() and not os.access(target, os.W_OK):
                raise ResultsFileError(f"cannot overwrite {target}: permission denied")


def _same_file(first: Path, second: Path) -> bool:
    try:
        return first.resolve() == Path(second).resolve()
    except OSError:
        return False


def write_text_atomic(path: Path, text: str) -> None:
    """Write beside the target and rename over it: a reader never sees half a file."""
    handle = tempfile.NamedTemporaryFile("w", dir=path.parent, prefix=f".{path.name}.", delete=False, encoding="utf-8", newline="")
    try:
        with handle:
            handle.write(text)
        os.replace(handle.name, path)
    except BaseException:
        Path(handle.name).unlink(missing_ok=True)
        raise


def frame_to_csv_text(frame: pd.DataFrame) -> str:
    """A frame as this module's CSV: captions quoted when they would read back as NaN."""
    lines = [csv_line(frame.columns)]
    lines.extend(csv_line(row) for row in frame.itertuples(index=False, name=None))
    return "".join(lines)


def write_evaluation(paths: EvaluationPaths, per_caption: pd.DataFrame, summary_table: pd.DataFrame, summary: dict) -> None:
    """The three evaluation files; the per-caption CSV carries the captions the app shows."""
    lead = [c for c in EVALUATION_LEAD_COLUMNS if c in per_caption.columns]
    ordered = per_caption[lead + [c for c in per_caption.columns if c not in lead]]
    write_text_atomic(paths.per_caption, frame_to_csv_text(ordered))
    write_text_atomic(paths.summary_csv, frame_to_csv_text(summary_table))
    write_text_atomic(paths.summary_json, json.dumps(summary, indent=2, ensure_ascii=False, allow_nan=True) + "\n")
