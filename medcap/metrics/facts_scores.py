"""The fact check as metric columns, so `score_captions` and `medcap evaluate` report it."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from medcap.metrics.config import CONTRADICTION_COLUMNS, FACT_METRICS
from medcap.metrics.facts_compare import compare_facts

_KIND_COLUMNS = {column.removeprefix("contradicts_"): column for column in CONTRADICTION_COLUMNS[1:]}


def expand_fact_metrics(names: Sequence[str]) -> list[str]:
    """Column names for requested metric names: fact_contradictions brings its 0/1 columns."""
    columns: list[str] = []
    for name in names:
        columns.append(name)
        if name == "fact_contradictions":
            columns.extend(CONTRADICTION_COLUMNS)
    return columns


def fact_columns(candidates: Sequence[str], references: Sequence[str], requested: Sequence[str]) -> dict[str, np.ndarray]:
    """The requested fact metrics per pair, from the captions as written (case and punctuation
    matter: "US" is ultrasound, a comma ends a negation), whatever the scoring normalisation."""
    wanted = [name for name in requested if name in FACT_METRICS]
    if not wanted:
        return {}
    comparisons = [compare_facts(c, r) for c, r in zip(candidates, references)]
    columns: dict[str, np.ndarray] = {}
    for name in wanted:
        if name == "fact_contradictions":
            columns[name] = np.array([c.summary for c in comparisons], dtype=object)
            columns["contradicts_reference"] = np.array([bool(c.contradictions) for c in comparisons], dtype=np.float64)
            for kind, column in _KIND_COLUMNS.items():
                columns[column] = np.array([kind in c.kinds for c in comparisons], dtype=np.float64)
        else:
            field = name.removeprefix("fact_")
            columns[name] = np.array([getattr(c, field) for c in comparisons], dtype=np.float64)
    return columns
