"""What the Agreement tab shows: the `medcap reviews stats` document as display tables, bar-plot
frames and plain-text messages (no gradio here; `medcap.app.tabs.agreement` only wires them).

The figures and their tables are `medcap.review.analytics`'s (one owner); this module only
groups them into sections, writes undefined figures as a dash with the reason beside them
(never NaN), and keeps bars from stacking where stacked heights would mean nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Mapping

import pandas as pd

from medcap.review.analytics import plot_frames, stats_tables

UNDEFINED = "—"
UNBOUNDED_PLOTS = frozenset({"Bradley-Terry strength"})
"""Plots of figures without a natural top; the others (shares, alpha, kappa, tau) reach 1."""
STACKED_PLOTS = frozenset({"Verdict shares per model"})
"""Plots whose colour groups are parts of one whole (a model's verdict shares sum to 1); the
others put one bar per (x, colour) pair side by side instead of stacking them."""


@dataclass(frozen=True)
class Section:
    """One block of the tab: a table of `stats_tables`, its plots of `plot_frames`, and what to
    say when the table has no row."""

    table: str
    plots: tuple[str, ...]
    empty: str


SECTIONS: tuple[Section, ...] = (
    Section("Agreement (Krippendorff's alpha, ordinal)", ("Agreement (alpha)",),
            "No reviews to measure agreement on."),
    Section("Reviewer pairs (Cohen's kappa)", ("Reviewer pair agreement (kappa)",),
            "No two reviewers have reviewed the same caption yet."),
    Section("Error categories (reviewers agree)", ("Error category agreement",),
            "No error categories are configured."),
    Section("Shares per model (95% bootstrap intervals)",
            ("Verdict shares per model", "Error category shares per model"),
            "No completed reviews."),
    Section("Preference ranking (Bradley-Terry)", ("Bradley-Terry strength",),
            "No pairwise preferences saved yet."),
    Section("Metrics vs reviewers (Kendall's tau-b)", ("Metric agreement (tau-b)",),
            "No automatic scores were stored with the reviewed captions."),
)
PLOT_TITLES: tuple[str, ...] = tuple(title for section in SECTIONS for title in section.plots)


@dataclass(frozen=True)
class PlotValue:
    """A bar plot's data: y against x, coloured by `colour` (None: one colour), on an axis
    `y_lim` from 0 (or below) so equal bars still show and heights compare."""

    frame: pd.DataFrame
    x: str
    y: str
    colour: str | None
    x_title: str
    y_lim: tuple[float, float]


@dataclass(frozen=True)
class AgreementView:
    """Everything the tab shows after a Compute: per section a note and a table (in `SECTIONS`
    order), per plot its bars or None when it has none (in `PLOT_TITLES` order)."""

    status: str
    notes: tuple[str, ...]
    tables: tuple[pd.DataFrame, ...]
    plots: tuple[PlotValue | None, ...]


def empty_view(status: str) -> AgreementView:
    """No figures, only `status` (before the first Compute, or with no completed review)."""
    return AgreementView(status, tuple("" for _ in SECTIONS),
                         tuple(pd.DataFrame() for _ in SECTIONS), tuple(None for _ in PLOT_TITLES))


def no_reviews_message(dataset: str) -> str:
    return (f"No completed reviews in {dataset} yet: save a review with a verdict on the Compare "
            "tab (drafts are not counted), then press Compute.")


def agreement_view(stats: Mapping[str, Any], dataset: str, seconds: float) -> AgreementView:
    """The tab's tables, plots and messages for one stats document."""
    tables = stats_tables(stats)
    plots = plot_frames(stats)
    notes = []
    for section in SECTIONS:
        note = section.empty if tables[section.table].empty else ""
        if section.table.startswith("Preference"):
            note = _preference_note(stats["preferences"]) or note
        notes.append(note)
    return AgreementView(
        status=_status(stats, dataset, seconds),
        notes=tuple(notes),
        tables=tuple(display_table(tables[section.table]) for section in SECTIONS),
        plots=tuple(_plot_value(title, *plots[title]) for title in PLOT_TITLES),
    )


def _status(stats: Mapping[str, Any], dataset: str, seconds: float) -> str:
    overall, settings = stats["overall"], stats["settings"]
    reviewers = overall["reviewers"]
    return (f"{overall['reviews']:,} completed reviews of {overall['captions']:,} captions "
            f"({overall['items']:,} images) by {reviewers} reviewer{'s' if reviewers != 1 else ''} "
            f"in {dataset}; intervals from {settings['bootstrap']:,} bootstrap resamples "
            f"(seed {settings['seed']}); computed in {seconds:.2f} s. Press Compute again to "
            "include reviews saved since.")


def _preference_note(preferences: Mapping[str, Any]) -> str:
    parts = []
    if preferences.get("ranking_undefined"):
        parts.append(f"No ranking: {preferences['ranking_undefined']}.")
    if preferences.get("comparisons") or preferences.get("both_wrong"):
        parts.append(f"{preferences['comparisons']:,} comparisons; {preferences['both_wrong']:,} "
                     "'both wrong' answers are left out of the fit.")
    if preferences.get("note"):
        parts.append(f"Note: {preferences['note']}.")
    return " ".join(parts)


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """Numbers as short text and undefined ones as a dash (the 'note' column says why), so no
    cell ever reads NaN or None."""
    shown = table.astype(object).copy()
    for column in shown.columns:
        shown[column] = [_cell(value, column) for value in table[column]]
    return shown


def _cell(value: Any, column: str) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "" if column == "note" else UNDEFINED
    if isinstance(value, float):
        return f"{value:g}" if column in ("wins", "losses") else f"{value:.3f}"
    return value


def _plot_value(title: str, frame: pd.DataFrame, x: str, y: str,
                colour: str | None) -> PlotValue | None:
    if frame.empty:
        return None
    values = pd.to_numeric(frame[y])
    top = 0.0 if title in UNBOUNDED_PLOTS else 1.0
    y_lim = (min(0.0, float(values.min())), max(top, float(values.max())))
    x_title = x
    if colour is not None and title not in STACKED_PLOTS:
        # One bar per (x, colour) pair, coloured by x: a side-by-side view of figures that do not
        # add up (a native bar plot stacks colour groups).
        frame = frame.assign(bar=frame[x].astype(str) + " · " + frame[colour].astype(str))
        x_title = f"{x} · {colour}"
        x, colour = "bar", x
    return PlotValue(frame, x, y, colour, x_title, y_lim)
