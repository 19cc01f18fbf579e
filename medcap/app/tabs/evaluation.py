"""Evaluation tab: per-model summary, the server-side paged table of every caption with its
scores and verdicts, and a score distribution; a selected row opens in the Compare tab."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr
from gradio.components import Component

from medcap.app.studio import Studio
from medcap.app.table import ALL, UNREVIEWED, TableQuery, contradiction_choices
from medcap.app.tabs.compare import CompareTab
from medcap.app.views import page_values
from medcap.review import SIGNIFICANT_COLUMN, VERDICTS


@dataclass(frozen=True)
class EvaluationTab:
    """The Evaluation tab's components, by name."""

    tab: gr.Tab
    summary: gr.Dataframe
    search: gr.Textbox
    model_filter: gr.Dropdown
    modality_filter: gr.Dropdown
    verdict_filter: gr.Dropdown
    contradiction_filter: gr.Dropdown
    category_filter: gr.Dropdown
    sort_by: gr.Dropdown
    descending: gr.Checkbox
    page: gr.Number
    page_previous: gr.Button
    page_next: gr.Button
    page_label: gr.Markdown
    table: gr.Dataframe
    plot_metric: gr.Dropdown
    plot: gr.BarPlot

    @property
    def query_inputs(self) -> list[Component]:
        """The `/query_table` endpoint's inputs, in order."""
        return [self.search, self.model_filter, self.modality_filter, self.verdict_filter,
                self.sort_by, self.descending, self.page, self.contradiction_filter,
                self.category_filter]

    @property
    def table_outputs(self) -> list[Component]:
        return [self.table, self.page_label, self.page]


def build_evaluation_tab(studio: Studio, compare: CompareTab, tabs: gr.Tabs) -> EvaluationTab:
    """The Evaluation tab with its `/open_evaluation` and `/query_table` endpoints; selecting a
    row switches `tabs` to Compare and opens that image there."""
    with gr.Tab("Evaluation", id="evaluation") as tab:
        summary = gr.Dataframe(label="Per-model summary (corpus scores, review verdicts)",
                               interactive=False)
        with gr.Row():
            search = gr.Textbox(label="Search (id or caption text)", elem_id="table-search")
            model_filter = gr.Dropdown([ALL], value=ALL, label="Model")
            modality_filter = gr.Dropdown([ALL], value=ALL, label="Modality")
            verdict_filter = gr.Dropdown([ALL, UNREVIEWED, *VERDICTS], value=ALL, label="Verdict")
            contradiction_filter = gr.Dropdown(contradiction_choices(), value=ALL,
                                               label="Contradicts the reference",
                                               elem_id="contradiction-filter")
            category_filter = gr.Dropdown(
                [ALL, *((c.label, c.key) for c in studio.categories),
                 ("Clinically significant", SIGNIFICANT_COLUMN)],
                value=ALL, label="Error category (reviews)", elem_id="category-filter")
        with gr.Row():
            sort_by = gr.Dropdown(["image_id"], value="image_id", label="Sort by")
            descending = gr.Checkbox(False, label="Descending")
            page = gr.Number(1, precision=0, minimum=1, label="Page")
            page_previous = gr.Button("◀")
            page_next = gr.Button("▶")
        page_label = gr.Markdown(elem_id="page-label")
        table = gr.Dataframe(interactive=False, wrap=True, max_height=520,
                             elem_id="evaluation-table")
        gr.Markdown("Select a row to open that image in the Compare tab.")
        with gr.Row():
            plot_metric = gr.Dropdown([], label="Distribution of")
        plot = gr.BarPlot(x="bin", y="count", color="model", label="Distribution",
                          x_title="score", y_title="captions", elem_id="distribution")
    evaluation = EvaluationTab(tab, summary, search, model_filter, modality_filter,
                               verdict_filter, contradiction_filter, category_filter, sort_by,
                               descending, page, page_previous,
                               page_next, page_label, table, plot_metric, plot)
    _wire_table(studio, evaluation)
    _wire_plot(studio, evaluation)
    _wire_row_select(studio, evaluation, compare, tabs)
    return evaluation


def _wire_table(studio: Studio, evaluation: EvaluationTab) -> None:
    inputs, outputs = evaluation.query_inputs, evaluation.table_outputs

    def query(search_text, model_value, modality_value, verdict_value, sort_value,
              descending_value, page_value, contradiction_value=ALL, category_value=ALL,
              delta=0):
        table_query = TableQuery(
            search=search_text or "", model=model_value or ALL,
            modality=modality_value or ALL, verdict=verdict_value or ALL,
            sort_by=sort_value, descending=bool(descending_value),
            page=int(page_value or 1) + delta, page_size=studio.options.page_size,
            contradiction=contradiction_value or ALL, category=category_value or ALL)
        rows, label, shown = page_values(studio.query_table(table_query))
        return rows, label, shown

    def query_from_start(*values):
        return query(*values[:6], 1, *values[7:])

    def open_evaluation():
        scored = studio.evaluation
        metrics = scored.metrics
        rows, label, shown = query("", ALL, ALL, ALL, "image_id", False, 1)
        return (studio.summary(), gr.update(choices=[ALL, *scored.models]),
                gr.update(choices=[ALL, *scored.modalities]),
                gr.update(choices=["image_id", "model", "modality", *metrics]),
                gr.update(choices=metrics, value=metrics[0] if metrics else None),
                rows, label, shown)

    evaluation.tab.select(
        open_evaluation, None,
        [evaluation.summary, evaluation.model_filter, evaluation.modality_filter,
         evaluation.sort_by, evaluation.plot_metric, *outputs],
        api_name="open_evaluation")
    gr.on([evaluation.search.submit, evaluation.model_filter.input,
           evaluation.modality_filter.input, evaluation.verdict_filter.input,
           evaluation.sort_by.input, evaluation.descending.input,
           evaluation.contradiction_filter.input, evaluation.category_filter.input],
          query_from_start, inputs, outputs, api_name="query_table")
    evaluation.page.submit(query, inputs, outputs, api_visibility="private")
    evaluation.page_previous.click(lambda *v: query(*v, delta=-1), inputs, outputs,
                                   api_visibility="private")
    evaluation.page_next.click(lambda *v: query(*v, delta=1), inputs, outputs,
                               api_visibility="private")


def _wire_plot(studio: Studio, evaluation: EvaluationTab) -> None:
    def plot_values(metric, search_text, model_value, modality_value, verdict_value,
                    contradiction_value, category_value):
        if not metric:
            return None
        table_query = TableQuery(search=search_text or "", model=model_value or ALL,
                                 modality=modality_value or ALL, verdict=verdict_value or ALL,
                                 contradiction=contradiction_value or ALL,
                                 category=category_value or ALL)
        counts = studio.distribution(metric, table_query)
        centres = sorted(set(counts["bin"]))
        width = centres[1] - centres[0] if len(centres) > 1 else 1.0
        # Counts are pre-binned on the server; x_bin makes the browser draw them as bars.
        return gr.BarPlot(counts, x_bin=float(width), y_aggregate="sum")

    gr.on([evaluation.plot_metric.change, evaluation.search.submit, evaluation.model_filter.input,
           evaluation.modality_filter.input, evaluation.verdict_filter.input,
           evaluation.contradiction_filter.input, evaluation.category_filter.input],
          plot_values,
          [evaluation.plot_metric, evaluation.search, evaluation.model_filter,
           evaluation.modality_filter, evaluation.verdict_filter,
           evaluation.contradiction_filter, evaluation.category_filter], evaluation.plot,
          api_visibility="private")


def _wire_row_select(studio: Studio, evaluation: EvaluationTab, compare: CompareTab,
                     tabs: gr.Tabs) -> None:
    def open_selected(name, blind, event: gr.SelectData, profile: gr.OAuthProfile | None):
        row = event.row_value or []
        values = compare.open_item(studio, str(row[0]) if row else "", name, blind=blind,
                                   profile=profile)
        return {tabs: gr.Tabs(selected="compare"), **values}

    evaluation.table.select(open_selected, [compare.reviewer, compare.blind],
                            [tabs, *compare.open_outputs], api_visibility="private")
