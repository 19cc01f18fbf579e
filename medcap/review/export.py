"""CSV export that is safe to open in a spreadsheet.

- CSV injection (OWASP; ASVS 5.0 V1.2.10): a text cell starting with ``=``, ``+``, ``-``, ``@``,
  tab, carriage return or NUL is prefixed with a single quote, so Excel / LibreOffice show it as
  text instead of evaluating it. Spreadsheets skip leading blanks, quotes, zero-width spaces,
  no-break spaces and byte-order marks before a formula, so a trigger after any run of those
  counts too. Every column is treated so (ids and model names included). Numbers are written as
  numbers (a negative score stays numeric).
- RFC 4180: comma separated, CRLF line ends, fields with a quote, comma or line break quoted and
  inner quotes doubled (Python's ``csv`` module with ``QUOTE_MINIMAL`` does exactly this).
- UTF-8 with a byte-order mark, which is what makes Excel read non-ASCII text (accents, Greek,
  CJK) correctly when the file is double-clicked.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, Mapping, Sequence

from medcap.metrics.config import HEADLINE_METRICS
from medcap.review.categories import (
    DEFAULT_CATEGORIES,
    SIGNIFICANT_COLUMN,
    ErrorCategory,
    category_column,
)
from medcap.review.records import Review

if TYPE_CHECKING:
    from medcap.review.store import ReviewStore


@dataclass(frozen=True)
class CsvSafety:
    """The characters that make a spreadsheet treat a cell as a formula or control sequence."""

    formula_triggers: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r", "\0")
    escape_prefix: str = "'"
    encoding: str = "utf-8-sig"
    # Skipped before looking for a trigger: whitespace (str.isspace: NBSP included), quotes,
    # and invisible format characters (zero-width space / joiners, word joiner, BOM).
    ignorable_lead: str = " \t\r\n\v\f\u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005" \
        "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000" \
        "'\"\u2018\u2019\u201c\u201d\u200b\u200c\u200d\u2060\ufeff"


CSV_SAFETY = CsvSafety()

PREFERRED_SCORE_ORDER: tuple[str, ...] = HEADLINE_METRICS
"""Score columns come in the metric table's headline order; any other score follows
alphabetically."""

EXPORT_LEAD_COLUMNS: tuple[str, ...] = (
    "image_id", "dataset", "modality", "ground_truth", "model", "generated_caption",
)
EXPORT_TAIL_COLUMNS: tuple[str, ...] = (  # after verdict, categories and the significant flag
    "corrected_caption", "note", "reviewer", "reviewed_at", "version",
)


def neutralize_cell(value: Any, safety: CsvSafety = CSV_SAFETY) -> Any:
    """Text that a spreadsheet would run as a formula gets a leading quote; numbers pass through."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return "" if isinstance(value, float) and not math.isfinite(value) else value
    text = str(value)
    if text and (text.startswith(safety.formula_triggers) or (
            text[0] in safety.ignorable_lead
            and text.lstrip(safety.ignorable_lead).startswith(safety.formula_triggers))):
        return safety.escape_prefix + text
    return text


def restore_cell(text: str, safety: CsvSafety = CSV_SAFETY) -> str:
    """Undo `neutralize_cell` on a cell read back from an export: the prefix is dropped only where
    neutralising the rest would have added it, so a caption that really starts with a quote stays."""
    if text.startswith(safety.escape_prefix):
        rest = text[len(safety.escape_prefix):]
        if neutralize_cell(rest, safety) == text:
            return rest
    return text


def write_safe_csv(
    rows: Iterable[Mapping[str, Any]],
    columns: Sequence[str],
    destination: str | Path,
    safety: CsvSafety = CSV_SAFETY,
) -> Path:
    """Write rows (missing keys become empty cells) and return the path."""
    path = Path(destination)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding=safety.encoding, newline="") as handle:
        _write_rows(handle, rows, columns, safety)
    return path


def safe_csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str],
                  safety: CsvSafety = CSV_SAFETY) -> str:
    """The same CSV as a string (without the BOM), for previews and tests."""
    buffer = io.StringIO(newline="")
    _write_rows(buffer, rows, columns, safety)
    return buffer.getvalue()


def _write_rows(handle, rows, columns, safety: CsvSafety) -> None:
    # The header is neutralised too: column names come from metric names we do not control.
    writer = csv.writer(handle, quoting=csv.QUOTE_MINIMAL, lineterminator="\r\n")
    writer.writerow([neutralize_cell(name, safety) for name in columns])
    risky = frozenset(safety.formula_triggers) | frozenset(safety.ignorable_lead)
    for row in rows:
        writer.writerow(_safe_cells(row, columns, safety, risky))


def _safe_cells(row: Mapping[str, Any], columns: Sequence[str], safety: CsvSafety,
                risky: frozenset[str]) -> list[Any]:
    """`neutralize_cell` on every cell, skipping the call for the common safe cases (plain text
    and integers) so a 100,000-row export stays well under a few seconds."""
    cells = []
    for value in map(row.get, columns):
        kind = type(value)
        if kind is str:
            if value and value[0] in risky:
                value = neutralize_cell(value, safety)
        elif kind is float:
            if not math.isfinite(value):
                value = ""
        elif kind is not int:
            value = neutralize_cell(value, safety)
        cells.append(value)
    return cells


def score_columns(reviews: Iterable[Review]) -> list[str]:
    """Score names present in any review, preferred ones first."""
    return ordered_scores({name for review in reviews for name in review.context.scores})


def ordered_scores(names: Iterable[str]) -> list[str]:
    """Preferred score names first, any other alphabetically."""
    names = set(names)
    preferred = [name for name in PREFERRED_SCORE_ORDER if name in names]
    return preferred + sorted(names - set(preferred))


def export_columns(categories: Sequence[ErrorCategory], scores: Sequence[str]) -> list[str]:
    """The export's columns, in order: the one place that decides them."""
    return [*EXPORT_LEAD_COLUMNS, *scores, "verdict",
            *(category_column(c.key) for c in categories), SIGNIFICANT_COLUMN,
            *EXPORT_TAIL_COLUMNS]


def export_row(review: Review, categories: Sequence[ErrorCategory],
               scores: Sequence[str]) -> dict[str, Any]:
    """One review as a row keyed by `export_columns` names."""
    chosen = set(review.categories)
    row: dict[str, Any] = {
        "image_id": review.key.image_id,
        "dataset": review.key.dataset,
        "modality": review.context.modality,
        "ground_truth": review.context.ground_truth,
        "model": review.key.model,
        "generated_caption": review.context.generated_caption,
        "verdict": review.verdict or "",
        SIGNIFICANT_COLUMN: 1 if review.significant else 0,
        "corrected_caption": review.corrected_caption,
        "note": review.note,
        "reviewer": review.key.reviewer,
        "reviewed_at": review.updated_at,
        "version": review.version,
    }
    row.update({category_column(c.key): 1 if c.key in chosen else 0 for c in categories})
    row.update({name: review.context.scores.get(name) for name in scores})
    return row


def review_export_rows(
    reviews: Sequence[Review], categories: Sequence[ErrorCategory] = DEFAULT_CATEGORIES,
) -> tuple[list[dict[str, Any]], list[str]]:
    """Flatten reviews into export rows; returns (rows, columns)."""
    scores = score_columns(reviews)
    return ([export_row(r, categories, scores) for r in reviews],
            export_columns(categories, scores))


def export_reviews_csv(
    reviews: Iterable[Review], destination: str | Path, *,
    categories: Sequence[ErrorCategory] = DEFAULT_CATEGORIES,
    scores: Sequence[str] | None = None,
) -> Path:
    """Write reviews as a spreadsheet-safe CSV. With ``scores`` given, rows are written as the
    reviews arrive (an iterator is never turned into a list)."""
    if scores is None:
        reviews = list(reviews)
        scores = score_columns(reviews)
    rows = (export_row(r, categories, scores) for r in reviews)
    return write_safe_csv(rows, export_columns(categories, scores), destination)


def export_store_csv(store: ReviewStore, destination: str | Path,
                     dataset: str | None = None) -> Path:
    """Every review's latest final version, streamed from the store to a CSV file."""
    scores = ordered_scores(store.score_names(dataset))
    return export_reviews_csv(store.iter_reviews(dataset), destination,
                              categories=store.categories, scores=scores)
