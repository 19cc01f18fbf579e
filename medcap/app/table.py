"""Server-side filtering, sorting and paging of the evaluation table.

Gradio's Dataframe sends and scrolls every row it is given, so a 30,000-row table would freeze the
browser. This module keeps the full table in the server process and hands the UI one page at a
time; search text is lower-cased once up front so each keystroke is a vectorised substring scan.
"""

from __future__ import annotations

import math
import re
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Any, Iterable, Mapping

import numpy as np
import pandas as pd

from medcap.metrics.config import HEADLINE_METRICS, METRICS
from medcap.review.categories import SIGNIFICANT_COLUMN

ALL = "All"
"""Filter value meaning "no filter" (what the dropdowns show)."""

UNREVIEWED = "unreviewed"

CONTRADICTS_ANY = "any"
"""Contradiction filter value: rows that contradict their reference in any way."""


def contradiction_choices() -> list[tuple[str, str]]:
    """(label, value) of the "contradicts the reference" filter: any kind, or one kind."""
    from medcap.metrics import FACT_KINDS

    return [(ALL, ALL), ("any contradiction", CONTRADICTS_ANY),
            *((f"{kind} contradicts", kind) for kind in FACT_KINDS)]


def _contradiction_columns() -> dict[str, str]:
    """Filter value -> the 0/1 column `medcap evaluate` writes for it (one owner: the metrics)."""
    from medcap.metrics import CONTRADICTION_COLUMNS

    any_column, *kind_columns = CONTRADICTION_COLUMNS
    return {CONTRADICTS_ANY: any_column,
            **{column.removeprefix("contradicts_"): column for column in kind_columns}}


@dataclass(frozen=True)
class TableLayout:
    """Which columns the table knows by meaning; every other numeric column is a metric."""

    image_id: str = "image_id"
    model: str = "model"
    modality: str = "modality"
    generated: str = "generated_caption"
    reference: str = "original_caption"
    verdict: str = "verdict"
    contradictions: str = "fact_contradictions"  # "laterality: left vs right; ..." or ""
    errors: str = "errors"  # error-category keys ticked by reviewers, joined with ", "
    text_columns: tuple[str, ...] = (
        "image_id", "model", "modality", "split", "timestamp", "error", "dataset",
        "generated_caption", "original_caption", "verdict", "fact_contradictions", "errors",
        "collection",
    )
    not_metrics: tuple[str, ...] = ("processing_time_sec", "seconds", "version")
    preferred_metrics: tuple[str, ...] = HEADLINE_METRICS + tuple(m for m in METRICS if m not in HEADLINE_METRICS)
    decimals: int = 3


@dataclass(frozen=True)
class TableQuery:
    """One view of the table: the UI's search box, dropdowns, sort choice and page."""

    search: str = ""
    model: str = ALL
    modality: str = ALL
    verdict: str = ALL
    sort_by: str | None = None
    descending: bool = True
    page: int = 1
    page_size: int = 25
    contradiction: str = ALL
    """ALL, CONTRADICTS_ANY, or a fact kind (laterality, modality, anatomy, finding): rows whose
    caption contradicts its reference (in that way)."""
    category: str = ALL  # an error-category key (or "clinically_significant"): rows that have it

    def filter_key(self) -> tuple:
        return (self.search.strip().lower(), self.model, self.modality, self.verdict,
                self.sort_by, self.descending, self.contradiction, self.category)


@dataclass(frozen=True)
class TablePage:
    """The rows to show plus what the page controls need."""

    rows: pd.DataFrame
    matching_rows: int
    page: int
    page_count: int
    page_size: int
    query: TableQuery = field(default_factory=TableQuery)

    @property
    def label(self) -> str:
        if self.matching_rows == 0:
            return "No rows match."
        first = (self.page - 1) * self.page_size + 1
        last = first + len(self.rows) - 1
        return (f"Rows {first:,}–{last:,} of {self.matching_rows:,} "
                f"(page {self.page} of {self.page_count})")


class EvaluationTable:
    """The per-image evaluation table (one row per image and model), queried page by page."""

    def __init__(self, frame: pd.DataFrame, layout: TableLayout = TableLayout(),
                 verdicts: Mapping[tuple[str, str], str] | None = None, cache_size: int = 8):
        self.layout = layout
        frame = frame.reset_index(drop=True).copy()
        for column in (layout.image_id, layout.model, layout.modality, layout.generated,
                       layout.reference, layout.contradictions):
            if column not in frame.columns:
                frame[column] = ""
            frame[column] = frame[column].fillna("").astype(str)
        self.metrics = self._metric_columns(frame)
        self._frame = frame
        self._haystack = (frame[layout.image_id] + "\n" + frame[layout.generated] + "\n"
                          + frame[layout.reference]).str.lower().to_numpy(dtype=object)
        self._cache: OrderedDict[tuple, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._rows_by_key: dict[tuple[str, str], list[int]] | None = None
        self.set_verdicts(verdicts or {})

    # -- shape ---------------------------------------------------------------------------------

    def _metric_columns(self, frame: pd.DataFrame) -> list[str]:
        layout = self.layout
        # The 0/1 contradiction flags drive the filter; the text column says what contradicts.
        flags = set(_contradiction_columns().values())
        numeric = [c for c in frame.columns
                   if c not in layout.text_columns and c not in layout.not_metrics
                   and c not in flags and pd.api.types.is_numeric_dtype(frame[c])]
        preferred = [c for c in layout.preferred_metrics if c in numeric]
        return preferred + [c for c in numeric if c not in preferred]

    def __len__(self) -> int:
        return len(self._frame)

    @property
    def frame(self) -> pd.DataFrame:
        return self._frame

    @property
    def models(self) -> list[str]:
        return sorted(self._frame[self.layout.model].unique().tolist())

    @property
    def modalities(self) -> list[str]:
        return sorted(m for m in self._frame[self.layout.modality].unique().tolist() if m)

    @property
    def display_columns(self) -> list[str]:
        layout = self.layout
        return [layout.image_id, layout.model, layout.modality, *self.metrics, layout.verdict,
                layout.errors, layout.contradictions, layout.generated, layout.reference]

    def set_verdicts(self, verdicts: Mapping[tuple[str, str], str],
                     errors: Mapping[tuple[str, str], str] | None = None) -> None:
        """Attach review verdicts (and ticked error categories) per (image_id, model); several
        reviewers join with '; ' (verdicts) and ', ' (categories)."""
        layout = self.layout
        keys = list(zip(self._frame[layout.image_id], self._frame[layout.model]))
        index = self._frame.index  # object dtype: an empty table's columns stay text columns
        self._frame[layout.verdict] = pd.Series([verdicts.get(k, "") for k in keys], index=index,
                                                dtype=object)
        self._frame[layout.errors] = pd.Series([(errors or {}).get(k, "") for k in keys],
                                               index=index, dtype=object)
        self._cache.clear()

    def set_verdict(self, image_id: str, model: str, text: str, errors: str | None = None) -> None:
        """Update the verdict (and categories) of one (image_id, model) row after a save,
        without a full rebuild."""
        if self._rows_by_key is None:
            layout = self.layout
            self._rows_by_key = {}
            for position, key in enumerate(zip(self._frame[layout.image_id],
                                               self._frame[layout.model])):
                self._rows_by_key.setdefault(key, []).append(position)
        positions = self._rows_by_key.get((str(image_id), str(model)), [])
        if positions:
            column = self._frame.columns.get_loc(self.layout.verdict)
            self._frame.iloc[positions, column] = text
            if errors is not None:
                self._frame.iloc[positions, self._frame.columns.get_loc(self.layout.errors)] = errors
            self._cache.clear()

    # -- querying ------------------------------------------------------------------------------

    def _matching_order(self, query: TableQuery) -> np.ndarray:
        """Row positions that match the filters, in display order (cached per filter+sort)."""
        key = query.filter_key()
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        layout, frame = self.layout, self._frame
        mask = np.ones(len(frame), dtype=bool)
        needle = key[0]
        if needle:
            mask &= np.fromiter((needle in text for text in self._haystack), dtype=bool,
                                count=len(self._haystack))
        if query.model != ALL:
            mask &= (frame[layout.model] == query.model).to_numpy()
        if query.modality != ALL:
            mask &= (frame[layout.modality] == query.modality).to_numpy()
        if query.verdict == UNREVIEWED:
            mask &= (frame[layout.verdict] == "").to_numpy()
        elif query.verdict != ALL:
            mask &= frame[layout.verdict].str.contains(query.verdict, regex=False).to_numpy()
        if query.contradiction != ALL:
            mask &= self._contradicts(query.contradiction)
        if query.category not in (ALL, "", None):
            token = rf"(?:^|, ){re.escape(query.category)}(?:,|$)"
            mask &= frame[layout.errors].str.contains(token, regex=True).to_numpy()
        positions = np.flatnonzero(mask)
        if query.sort_by in frame.columns and len(positions):
            values = frame[query.sort_by].to_numpy()[positions]
            positions = positions[_stable_order(values, query.descending)]
        self._cache[key] = positions
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return positions

    def _contradicts(self, choice: str) -> np.ndarray:
        """Rows that contradict their reference (in the way `choice` names): the 0/1 column when
        the table has it, else the text column ("laterality: left vs right; ...")."""
        columns = _contradiction_columns()
        if choice not in columns:
            raise ValueError(f"Unknown contradiction filter {str(choice)[:40]!r}; choose one of: "
                             f"{', '.join([ALL, *columns])}.")
        frame = self._frame
        if columns[choice] in frame:
            flags = pd.to_numeric(frame[columns[choice]], errors="coerce").fillna(0)
            return (flags > 0).to_numpy()
        text = frame[self.layout.contradictions]
        if choice == CONTRADICTS_ANY:
            return (text != "").to_numpy()
        return text.str.contains(rf"(?:^|; ){re.escape(choice)}:", regex=True).to_numpy()

    def query(self, query: TableQuery) -> TablePage:
        """One page of matching rows; an out-of-range page is clamped, not an error."""
        positions = self._matching_order(query)
        page_size = max(1, int(query.page_size))
        page_count = max(1, math.ceil(len(positions) / page_size))
        page = min(max(1, int(query.page)), page_count)
        chosen = positions[(page - 1) * page_size: page * page_size]
        rows = self._frame.iloc[chosen][self.display_columns].copy()
        if self.metrics:
            rows[self.metrics] = rows[self.metrics].round(self.layout.decimals)
        return TablePage(rows=rows.reset_index(drop=True), matching_rows=len(positions),
                         page=page, page_count=page_count, page_size=page_size,
                         query=replace(query, page=page, page_size=page_size))

    def metric_values(self, metric: str, query: TableQuery) -> pd.DataFrame:
        """All matching rows' values of one metric with their model, for the distribution plot."""
        positions = self._matching_order(query)
        subset = self._frame.iloc[positions]
        return pd.DataFrame({"model": subset[self.layout.model].to_numpy(),
                             metric: subset[metric].to_numpy() if metric in subset else np.nan})


def _stable_order(values: np.ndarray, descending: bool) -> np.ndarray:
    """Argsort that keeps ties in table order and puts missing values last either way."""
    if values.dtype.kind in "fiub":
        numbers = values.astype(float)
        missing = np.isnan(numbers)
        keys = -numbers if descending else numbers
        keys = np.where(missing, np.inf, keys)
        return np.argsort(keys, kind="stable")
    text = pd.Series(values).fillna("").astype(str).str.lower()
    order = text.sort_values(ascending=not descending, kind="stable").index.to_numpy()
    return order


def histogram(values: pd.DataFrame, metric: str, bins: int = 20) -> pd.DataFrame:
    """Counts per bin and model, so the plot receives ~bins×models points, not 30,000."""
    clean = values.dropna(subset=[metric]) if metric in values else values.iloc[0:0]
    if clean.empty:
        return pd.DataFrame({"bin": pd.Series(dtype=float), "count": pd.Series(dtype=int),
                             "model": pd.Series(dtype=str)})
    low, high = float(clean[metric].min()), float(clean[metric].max())
    if high <= low:
        high = low + 1.0
    edges = np.linspace(low, high, bins + 1)
    centres = np.round((edges[:-1] + edges[1:]) / 2, 4)
    parts = []
    for model, group in clean.groupby("model", sort=True):
        counts, _ = np.histogram(group[metric].to_numpy(dtype=float), bins=edges)
        parts.append(pd.DataFrame({"bin": centres, "count": counts, "model": model}))
    return pd.concat(parts, ignore_index=True)


Cells = dict[tuple[str, str], str]
"""(image_id, model) -> the text of one table cell."""


def review_cells(reviews: Iterable[Any]) -> tuple[Cells, Cells]:
    """Per (image_id, model) of final reviews: the verdicts joined with '; ' and the ticked
    category keys (plus "clinically_significant") joined with ', ', as the table shows them."""
    verdicts: dict[tuple[str, str], set[str]] = {}
    errors: dict[tuple[str, str], set[str]] = {}
    for review in reviews:
        key = (review.key.image_id, review.key.model)
        verdicts.setdefault(key, set()).add(review.verdict or "")
        ticked = errors.setdefault(key, set())
        ticked.update(review.categories)
        if review.significant:
            ticked.add(SIGNIFICANT_COLUMN)
    return ({k: "; ".join(sorted(v - {""})) for k, v in verdicts.items()},
            {k: ", ".join(sorted(v)) for k, v in errors.items()})
