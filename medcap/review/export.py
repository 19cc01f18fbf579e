"""CSV export that is safe to open in a spreadsheet.

- CSV injection (OWASP; ASVS 5.0 V1.2.10): a text cell starting with ``=``, ``+``, ``-``, ``@``,
  tab, carriage return or NUL is prefixed with a single quote, so Excel / LibreOffice show it as
  text instead of evaluating it. Numbers are written as numbers (a negative score stays numeric).
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
from typing import Any, Iterable, Mapping, Sequence

from medcap.review.records import Review


@dataclass(frozen=True)
class CsvSafety:
    """The characters that make a spreadsheet treat a cell as a formula or control sequence."""

    formula_triggers: tuple[str, ...] = ("=", "+", "-", "@", "\t", "\r", "\0")
    escape_prefix: str = "'"
    encoding: str = "utf-8-sig"


CSV_SAFETY = CsvSafety()

PREFERRED_SCORE_ORDER: tuple[str, ...] = ("bleu4", "meteor", "rouge_l", "cider_d")
"""Score columns come in this order; any other score follows alphabetically."""

EXPORT_LEAD_COLUMNS: tuple[str, ...] = (
    "image_id", "dataset", "modality", "ground_truth", "model", "generated_caption",
)
EXPORT_TAIL_COLUMNS: tuple[str, ...] = (
    "verdict", "corrected_caption", "note", "reviewer", "reviewed_at", "version",
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
    if text.startswith(safety.formula_triggers):
        return safety.escape_prefix + text
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
    for row in rows:
        writer.writerow([neutralize_cell(row.get(name), safety) for name in columns])


def score_columns(reviews: Iterable[Review]) -> list[str]:
    """Score names present in any review, preferred ones first."""
    names = {name for review in reviews for name in review.context.scores}
    preferred = [name for name in PREFERRED_SCORE_ORDER if name in names]
    return preferred + sorted(names - set(preferred))


def review_export_rows(reviews: Sequence[Review]) -> tuple[list[dict[str, Any]], list[str]]:
    """Flatten reviews into export rows; returns (rows, columns)."""
    scores = score_columns(reviews)
    columns = [*EXPORT_LEAD_COLUMNS, *scores, *EXPORT_TAIL_COLUMNS]
    rows = []
    for review in reviews:
        row: dict[str, Any] = {
            "image_id": review.key.image_id,
            "dataset": review.key.dataset,
            "modality": review.context.modality,
            "ground_truth": review.context.ground_truth,
            "model": review.key.model,
            "generated_caption": review.context.generated_caption,
            "verdict": review.verdict or "",
            "corrected_caption": review.corrected_caption,
            "note": review.note,
            "reviewer": review.key.reviewer,
            "reviewed_at": review.updated_at,
            "version": review.version,
        }
        row.update({name: review.context.scores.get(name) for name in scores})
        rows.append(row)
    return rows, columns


def export_reviews_csv(reviews: Sequence[Review], destination: str | Path) -> Path:
    """Write reviewed comparisons as a spreadsheet-safe CSV."""
    rows, columns = review_export_rows(reviews)
    return write_safe_csv(rows, columns, destination)
