"""Merge CSV files written by the Export tab (or `medcap reviews export`) into a review store.

A panel reviews on several machines, exports, and merges the files into one store for the
analysis. The rules:
- every file is read and checked completely before anything is written: a wrong column, an
  unknown verdict or category, an empty or non-UTF-8 file stops the import with the file and line
  named, and the store is left as it was;
- a row equal to the stored review (verdict, categories, significance, corrected caption, note)
  changes nothing, so importing the same file twice adds nothing;
- a row saved later than the stored review replaces it (as a new version, with the row's own
  time, so a later merge still knows how old it is); a row saved earlier than (or at the same
  second as) a different stored review is a conflict: reported, not applied.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Iterable, Sequence

from medcap.review.categories import SIGNIFICANT_COLUMN, ErrorCategory, category_column
from medcap.review.export import export_columns, restore_cell
from medcap.review.records import (
    VERDICTS, Review, ReviewConflict, ReviewContext, ReviewInput, ReviewKey, ReviewLimits,
    ReviewRevision, ReviewValidationError,
)
from medcap.review.store import ReviewStore, reviewer_key

TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"


class ImportFileError(ValueError):
    """A file cannot be imported as it is; the message names the file, the line and the fix."""


@dataclass(frozen=True)
class ImportedReview:
    """One checked row: what to save, when it was saved, and where it came from."""

    request: ReviewInput
    reviewed_at: str
    origin: str  # "file.csv line 7"


@dataclass
class ImportReport:
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    conflicts: list[str] = field(default_factory=list)

    def summary(self) -> str:
        return (f"{self.added} added, {self.updated} updated, {self.unchanged} unchanged, "
                f"{len(self.conflicts)} conflict(s) not applied")


# ------------------------------------------------------------------------------- reading
def read_export_file(path: str | Path, categories: Sequence[ErrorCategory]) -> list[ImportedReview]:
    """Every row of one export file, checked against the export format (the store's own rules
    on names and lengths are checked by `import_files`); raises ImportFileError on the first
    problem."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        raise ImportFileError(f"{path}: cannot be read ({exc.strerror or exc}).") from exc
    except UnicodeDecodeError as exc:
        raise ImportFileError(f"{path}: is not UTF-8 text (byte {exc.start}); export it again "
                              "from the review studio, or save it as 'CSV UTF-8'.") from exc
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise ImportFileError(f"{path}: is not a readable CSV file ({exc}).") from exc
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ImportFileError(f"{path}: is empty; expected a review export with a header row.")
    header = [restore_cell(name.strip()) for name in rows[0]]
    columns = _check_header(path, header, categories)
    body = [(number, row) for number, row in enumerate(rows[1:], start=2) if any(c.strip() for c in row)]
    if not body:
        raise ImportFileError(f"{path}: has a header but no reviews.")
    parsed, seen = [], {}
    for number, cells in body:
        origin = f"{path.name} line {number}"
        if len(cells) != len(header):
            raise ImportFileError(f"{origin}: has {len(cells)} cells for {len(header)} columns.")
        item = _parse_row(origin, dict(zip(header, cells)), columns)
        identity = _identity(item.request.key)
        if identity in seen:
            raise ImportFileError(f"{origin}: repeats the review on {seen[identity]} (same dataset, "
                                  "image, model and reviewer); an export holds each review once.")
        seen[identity] = origin
        parsed.append(item)
    return parsed


@dataclass(frozen=True)
class _Columns:
    categories: list[tuple[str, str]]  # (key, column)
    scores: list[str]
    significant: bool


def _check_header(path: Path, header: list[str], categories: Sequence[ErrorCategory]) -> _Columns:
    required = export_columns([], [])
    required.remove(SIGNIFICANT_COLUMN)  # absent from exports made before categories existed
    missing = [name for name in required if name not in header]
    if missing:
        raise ImportFileError(
            f"{path}: is not a review export: the column(s) {', '.join(missing)} are missing "
            f"(found: {', '.join(header[:12])}{' ...' if len(header) > 12 else ''}).")
    duplicated = sorted({name for name in header if header.count(name) > 1})
    if duplicated:
        raise ImportFileError(f"{path}: the column(s) {', '.join(duplicated)} appear twice.")
    known = {category_column(c.key): c.key for c in categories}
    prefix = category_column("")
    unknown = [name for name in header if name.startswith(prefix) and name not in known]
    if unknown:
        raise ImportFileError(
            f"{path}: unknown error category column(s) {', '.join(unknown)}; the configured "
            f"categories are {', '.join(c.key for c in categories)} (set MEDCAP_CATEGORIES to the "
            "list the file was reviewed with).")
    taken = set(required) | set(known) | {SIGNIFICANT_COLUMN}
    return _Columns(categories=[(key, column) for column, key in known.items() if column in header],
                    scores=[name for name in header if name not in taken],
                    significant=SIGNIFICANT_COLUMN in header)


def _parse_row(origin: str, row: dict[str, str], columns: _Columns) -> ImportedReview:
    text = {name: restore_cell(value).strip() for name, value in row.items()}
    verdict = text["verdict"]
    if verdict not in VERDICTS:
        shown = repr(verdict) if verdict else "empty"
        raise ImportFileError(f"{origin}: verdict {shown} is not one of {', '.join(VERDICTS)}.")
    for name in ("dataset", "image_id", "model", "reviewer"):
        if not text[name]:
            raise ImportFileError(f"{origin}: the {name} cell is empty.")
    reviewed_at = _timestamp(origin, text["reviewed_at"])
    ticked = tuple(key for key, column in columns.categories if _flag(origin, column, text[column]))
    significant = columns.significant and _flag(origin, SIGNIFICANT_COLUMN, text[SIGNIFICANT_COLUMN])
    context = ReviewContext(generated_caption=text["generated_caption"], ground_truth=text["ground_truth"],
                            modality=text["modality"], scores=_scores(origin, columns.scores, text))
    request = ReviewInput(
        key=ReviewKey(text["dataset"], text["image_id"], text["model"], text["reviewer"]),
        verdict=verdict, corrected_caption=text["corrected_caption"], note=text["note"],
        context=context, categories=ticked, significant=bool(significant))
    return ImportedReview(request=request, reviewed_at=reviewed_at, origin=origin)


def _timestamp(origin: str, value: str) -> str:
    try:
        return datetime.strptime(value, TIME_FORMAT).strftime(TIME_FORMAT)
    except ValueError:
        raise ImportFileError(f"{origin}: reviewed_at {value!r} is not a time like "
                              "2026-01-31T14:05:09Z (as the export writes it).") from None


def _flag(origin: str, column: str, value: str) -> bool:
    if value in ("1", "0", ""):
        return value == "1"
    raise ImportFileError(f"{origin}: {column} must be 1 or 0, not {value!r}.")


def _scores(origin: str, names: Iterable[str], text: dict[str, str]) -> dict[str, float]:
    scores = {}
    for name in names:
        if not text[name]:
            continue  # a metric that was unavailable for this caption
        try:
            value = float(text[name])
        except ValueError:
            raise ImportFileError(f"{origin}: score {name} = {text[name]!r} is not a number.") from None
        if math.isfinite(value):
            scores[name] = value
    return scores


# ------------------------------------------------------------------------------- merging
class _RowClock:
    """The store's clock during an import: each save is stamped with the row's own time."""

    def __init__(self) -> None:
        self.now = ""

    def __call__(self) -> str:
        return self.now


def _identity(key: ReviewKey) -> tuple[str, str, str, str]:
    return key.dataset, key.image_id, key.model, reviewer_key(key.reviewer)


def _content(verdict, categories, significant, corrected, note) -> tuple:
    return verdict, tuple(sorted(categories)), bool(significant), corrected, note


def _same(stored: Review | ReviewRevision, request: ReviewInput) -> bool:
    return _content(stored.verdict, stored.categories, stored.significant, stored.corrected_caption,
                    stored.note) == _content(request.verdict, request.categories, request.significant,
                                             request.corrected_caption, request.note)


def _already_saved(store: ReviewStore, stored: Review, item: ImportedReview) -> bool:
    """The row is the stored review, or one of its saved versions (a later draft on top of the
    exported final version does not make the same file import twice)."""
    if _same(stored, item.request):
        return True
    return any(revision.saved_at == item.reviewed_at and _same(revision, item.request)
               for revision in store.history(item.request.key))


def check_with_store(store: ReviewStore, reviews: Sequence[ImportedReview]) -> None:
    """The store's own save rules (name, id and text bounds, printable keys, known categories)
    on every row, before anything is written."""
    for item in reviews:
        try:
            store.check(item.request)
        except ReviewValidationError as exc:
            raise ImportFileError(f"{item.origin}: {exc}") from None


def merge_reviews(store: ReviewStore, clock: _RowClock, reviews: Sequence[ImportedReview]) -> ImportReport:
    """Apply checked rows, oldest first (so of two files holding the same review, the later
    version wins whatever the order of the files); `clock` must be the store's clock."""
    report = ImportReport()
    for item in sorted(reviews, key=lambda r: (r.reviewed_at, _identity(r.request.key))):
        request = item.request
        stored = store.get(request.key)
        if stored is not None and _already_saved(store, stored, item):
            report.unchanged += 1
            continue
        if stored is not None and stored.updated_at >= item.reviewed_at:
            report.conflicts.append(
                f"{item.origin}: {request.key.reviewer}'s review of {request.key.model} on "
                f"{request.key.dataset}/{request.key.image_id} saved {item.reviewed_at} is not newer "
                f"than the stored version {stored.version} saved {stored.updated_at} "
                f"({stored.summary()}); kept the stored one.")
            continue
        clock.now = item.reviewed_at
        base = stored.version if stored is not None else 0
        try:
            store.save(ReviewInput(key=request.key, verdict=request.verdict,
                                   corrected_caption=request.corrected_caption, note=request.note,
                                   base_version=base, context=request.context,
                                   categories=request.categories, significant=request.significant))
        except ReviewConflict as exc:  # someone saved this review while the import ran
            report.conflicts.append(f"{item.origin}: {exc}")
            continue
        if stored is None:
            report.added += 1
        else:
            report.updated += 1
    return report


def import_files(db_path: str | Path, paths: Sequence[str | Path],
                 categories: Sequence[ErrorCategory], limits: ReviewLimits = ReviewLimits()) -> ImportReport:
    """Read and check every file, then merge them all; a bad file stops before any write (and
    a store file the import had to create is removed again)."""
    rows = [row for path in paths for row in read_export_file(path, categories)]
    db_path = Path(db_path)
    existed = db_path.exists()
    clock = _RowClock()
    store = ReviewStore(db_path, clock=clock, categories=categories, limits=limits)
    try:
        check_with_store(store, rows)
    except ImportFileError:
        if not existed:
            for leftover in (db_path, *(db_path.with_name(db_path.name + s) for s in ("-wal", "-shm"))):
                leftover.unlink(missing_ok=True)
        raise
    return merge_reviews(store, clock, rows)
