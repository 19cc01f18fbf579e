"""Agreement tab: do the reviewers agree, which model is better and how sure, which metric follows
the reviewers; the figures of `medcap reviews stats`, computed when asked (not on every save),
and the `/review_stats` endpoint that returns them as JSON."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass
from typing import Any

import gradio as gr

from medcap.app.agreement import (
    PLOT_TITLES, SECTIONS, AgreementView, agreement_view, empty_view, no_reviews_message,
)
from medcap.app.studio import Studio

STATS_CONCURRENCY = "review-stats"
"""One stats computation at a time, button and API together: it is CPU-bound (a second on a
large store) and two at once would only halve each other's speed."""


@dataclass(frozen=True)
class AgreementTab:
    """The Agreement tab's components, by name (tables and plots in `SECTIONS` order)."""

    compute: gr.Button
    status: gr.Markdown
    notes: tuple[gr.Markdown, ...]
    tables: tuple[gr.Dataframe, ...]
    plots: tuple[gr.BarPlot, ...]

    @property
    def outputs(self) -> list[Any]:
        return [self.status, *self.notes, *self.tables, *self.plots]

    def show(self, view: AgreementView) -> list[Any]:
        """Values for `outputs`; a plot without bars is hidden rather than drawn empty."""
        plots = [gr.BarPlot(visible=False) if plot is None else
                 gr.BarPlot(plot.frame, x=plot.x, y=plot.y, color=plot.colour,
                            x_title=plot.x_title, y_lim=list(plot.y_lim), visible=True)
                 for plot in view.plots]
        return [html.escape(view.status), *(html.escape(n) for n in view.notes),
                *view.tables, *plots]


def build_agreement_tab(studio: Studio) -> AgreementTab:
    """The Agreement tab, its Compute button and the `/review_stats` endpoint."""
    plots_by_title = {}
    with gr.Tab("Agreement", id="agreement"):
        gr.Markdown(
            "Figures from the completed reviews saved so far, the same as "
            "`python -m medcap reviews stats`. They are computed when you press Compute, not on "
            "every save. A dash marks a figure that is undefined on these reviews; the note "
            "beside it says why. Hover a bar for its 95% interval (also in the tables).")
        compute = gr.Button("Compute", variant="primary", elem_id="agreement-compute")
        status = gr.Markdown("Press Compute to calculate the figures.", elem_id="agreement-status")
        notes, tables = [], []
        for index, section in enumerate(SECTIONS):
            gr.Markdown(f"### {section.table}")
            notes.append(gr.Markdown(elem_id=f"agreement-note-{index}"))
            tables.append(gr.Dataframe(interactive=False, wrap=True, max_height=360,
                                       elem_id=f"agreement-table-{index}"))
            for title in section.plots:  # full width each: bar labels need the room
                plots_by_title[title] = gr.BarPlot(
                    label=title, tooltip="all", x_label_angle=-30, visible=False,
                    elem_id=f"agreement-plot-{PLOT_TITLES.index(title)}")
        tab = AgreementTab(compute, status, tuple(notes), tuple(tables),
                           tuple(plots_by_title[title] for title in PLOT_TITLES))
        _wire(studio, tab)
    return tab


def _wire(studio: Studio, tab: AgreementTab) -> None:
    """Compute button and `/review_stats`, registered inside the tab (gr.Tabs holds only tabs)."""

    def compute_view():
        started = time.perf_counter()
        try:
            stats = studio.review_stats()
        except ValueError as exc:  # reviews the figures cannot use: say why, keep the page
            return tab.show(empty_view(f"The figures could not be computed: {exc}"))
        if stats is None:
            return tab.show(empty_view(no_reviews_message(studio.dataset)))
        return tab.show(agreement_view(stats, studio.dataset, time.perf_counter() - started))

    def review_stats() -> dict:
        """The stats.json document of this dataset's completed reviews (agreement, shares with
        intervals, preference ranking, metric agreement), or {"message": why} when there is
        no completed review to compute from."""
        stats = studio.review_stats()
        return stats if stats is not None else {"message": no_reviews_message(studio.dataset)}

    tab.compute.click(compute_view, None, tab.outputs, api_visibility="private",
                  concurrency_limit=1, concurrency_id=STATS_CONCURRENCY)
    gr.api(review_stats, api_name="review_stats", concurrency_limit=1,
           concurrency_id=STATS_CONCURRENCY)
