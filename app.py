"""medcap review studio: a Gradio page wired to `medcap.app.Studio`.

Run `python app.py` (configuration: `medcap.config` and `medcap.app.options`). This file only
lays out components and connects events; what happens lives in `medcap.app`.
"""

from __future__ import annotations

import os

import gradio as gr

from medcap.app.cards import CARD_CSS, disclaimer_html
from medcap.app.studio import Studio, UploadError
from medcap.app.table import ALL, UNREVIEWED, TableQuery
from medcap.app.tabs.caption import build_caption_tab
from medcap.app.tabs.common import progress_callback, user_error
from medcap.app.tabs.export import build_export_tab
from medcap.app.views import (
    SLOT_FIELDS,
    item_values,
    page_values,
    review_dict,
    save_values,
)
from medcap.review import VERDICTS, ReviewError, ReviewKey


def build_demo(studio: Studio) -> gr.Blocks:
    """The whole page; `studio` holds the state, so tests can build it with tiny models."""
    slot_models = studio.slot_models

    with gr.Blocks(title="medcap review studio") as demo:
        gr.HTML(disclaimer_html())
        with gr.Tabs() as tabs:
            build_caption_tab(studio)

            # ---------------------------------------------------------------- Compare
            with gr.Tab("Compare", id="compare") as compare_tab:
                current_id = gr.State("")
                opened_by = gr.State("")  # the reviewer name the open item's fields belong to
                remembered_name = gr.BrowserState("", storage_key="medcap-reviewer-name")
                with gr.Row():
                    reviewer = gr.Textbox(label="Your name (reviewer)", elem_id="reviewer",
                                          scale=2)
                    modality = gr.Dropdown([ALL], value=ALL, label="Modality", scale=1)
                    image_id_box = gr.Textbox(label="Image id", elem_id="image-id", scale=2)
                    open_button = gr.Button("Open", scale=0)
                with gr.Row():
                    previous_button = gr.Button("◀ Previous")
                    random_button = gr.Button("Random")
                    next_button = gr.Button("Next ▶", elem_id="next-button")
                    generate_button = gr.Button("Generate missing captions")
                compare_status = gr.Markdown(elem_id="compare-status")
                with gr.Row():
                    image = gr.Image(label="Image", type="pil", interactive=False, height=360,
                                     scale=1)
                    truth = gr.HTML(scale=2)
                slot_components: list[list[gr.components.Component]] = []
                save_buttons = []
                with gr.Row(equal_height=False):
                    for index, model in enumerate(slot_models):
                        with gr.Column(min_width=260, elem_id=f"slot-{index}"):
                            card = gr.HTML()
                            verdict = gr.Radio(list(VERDICTS), label=f"Verdict on {model}",
                                               elem_id=f"verdict-{index}")
                            corrected = gr.Textbox(label="Corrected caption (optional)", lines=2,
                                                   elem_id=f"corrected-{index}")
                            note = gr.Textbox(label="Note (optional)", lines=1,
                                              elem_id=f"note-{index}")
                            version = gr.State(0)
                            save_button = gr.Button("Save review", elem_id=f"save-{index}")
                            status = gr.Markdown(elem_id=f"status-{index}")
                            slot_components.append([card, verdict, corrected, note, version, status])
                            save_buttons.append(save_button)
                item_outputs = [current_id, image, truth] + [c for s in slot_components for c in s]

            # ---------------------------------------------------------------- Evaluation
            with gr.Tab("Evaluation", id="evaluation") as evaluation_tab:
                summary = gr.Dataframe(label="Per-model summary (corpus scores, review verdicts)",
                                       interactive=False)
                with gr.Row():
                    search = gr.Textbox(label="Search (id or caption text)", elem_id="table-search")
                    model_filter = gr.Dropdown([ALL], value=ALL, label="Model")
                    modality_filter = gr.Dropdown([ALL], value=ALL, label="Modality")
                    verdict_filter = gr.Dropdown([ALL, UNREVIEWED, *VERDICTS], value=ALL,
                                                 label="Verdict")
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

            build_export_tab(studio)

        # ================================================================= events: compare
        def open_item(image_id, name):
            try:
                view = studio.open_item(image_id, name or "")
            except UploadError as exc:
                raise user_error(exc) from exc
            return [*item_values(view), view.image_id, "", (name or "").strip()]

        open_outputs = item_outputs + [image_id_box, compare_status, opened_by]
        status_index = len(open_outputs) - 2

        def keep_edits(values):
            """Refresh the open item's cards (new captions, other reviewers) but leave what the
            reviewer typed, and the version it is based on, as they are: unsaved text survives a
            tab switch or a caption run, and a stale save is still caught as a conflict."""
            values = list(values)
            for start in range(3, 3 + SLOT_FIELDS * len(slot_models), SLOT_FIELDS):
                values[start + 1 : start + SLOT_FIELDS] = [gr.skip()] * (SLOT_FIELDS - 1)
            return values

        def open_or_explain(target, name, chosen_modality):
            if target:
                return open_item(target, name)
            return [*[gr.skip()] * (len(open_outputs) - 1),
                    f"No images with modality {chosen_modality} in {studio.dataset}."]

        def step(current, chosen_modality, name, delta):
            target = studio.comparison.step(current or None, delta, chosen_modality or ALL)
            return open_or_explain(target, name, chosen_modality)

        def enter_compare(current, chosen_modality, name):
            """On entering the tab: reopen the current image (fresh reviews) or the first one."""
            comparison = studio.comparison
            target = current or comparison.first(chosen_modality or ALL)
            values = open_item(target, name) if target else [gr.skip()] * len(open_outputs)
            if current:
                values = keep_edits(values)
            values[status_index] = (studio.data_problem
                                    or f"{len(comparison):,} images in {studio.dataset}.")
            return [gr.update(choices=[ALL, *comparison.modalities]), *values]

        def reopen(current, name, opened_name):
            """A new reviewer name loads that reviewer's reviews; leaving the box unchanged
            (blur fires anyway) touches nothing."""
            if not current or (name or "").strip() == opened_name:
                return [gr.skip()] * len(open_outputs)
            return open_item(current, name)

        open_button.click(open_item, [image_id_box, reviewer], open_outputs, api_name="open_item")
        image_id_box.submit(open_item, [image_id_box, reviewer], open_outputs,
                            api_visibility="private")
        next_button.click(lambda c, m, n: step(c, m, n, 1), [current_id, modality, reviewer],
                          open_outputs, api_visibility="private")
        previous_button.click(lambda c, m, n: step(c, m, n, -1), [current_id, modality, reviewer],
                              open_outputs, api_visibility="private")
        random_button.click(
            lambda c, m, n: open_or_explain(studio.comparison.random_id(m or ALL, avoid=c), n, m),
            [current_id, modality, reviewer], open_outputs, api_visibility="private")
        modality.change(lambda m, n: step(None, m, n, 0), [modality, reviewer], open_outputs,
                        api_visibility="private")
        reviewer.blur(reopen, [current_id, reviewer, opened_by], open_outputs,
                      api_visibility="private")
        reviewer.change(lambda name: name, reviewer, remembered_name, api_visibility="private")
        demo.load(lambda name: name, remembered_name, reviewer, api_visibility="private")
        compare_tab.select(enter_compare, [current_id, modality, reviewer], [modality, *open_outputs],
                           api_visibility="private")

        def generate(image_id, name, open_id, progress=gr.Progress()):
            try:
                message = studio.generate_missing(image_id, progress_callback(progress))
            except UploadError as exc:
                raise user_error(exc) from exc
            values = open_item(image_id, name)
            if image_id == open_id:  # the image on screen: keep the reviewer's unsaved text
                values = keep_edits(values)
            values[status_index] = message
            return values

        generate_button.click(generate, [image_id_box, reviewer, current_id], open_outputs,
                              api_name="generate_missing")

        for model, components, save_button in zip(slot_models, slot_components, save_buttons):
            _, verdict, corrected, note, version, status = components

            def save(current, name, verdict_value, corrected_value, note_value, base,
                     model=model):
                try:
                    outcome = studio.save_review(current, model, name, verdict_value,
                                                 corrected_value, note_value, base)
                except ReviewError as exc:
                    return save_values(exc, base)
                return save_values(outcome, base)

            save_button.click(save, [current_id, reviewer, verdict, corrected, note, version],
                              [version, status], api_visibility="private")

        def review_save(image_id: str, model: str, reviewer: str, verdict: str,
                        corrected_caption: str, note: str, base_version: int) -> dict:
            """Save a review; a stale base_version is refused and the other text returned."""
            try:
                outcome = studio.save_review(image_id, model, reviewer, verdict,
                                             corrected_caption, note, base_version)
            except ReviewError as exc:
                current = getattr(exc, "current", None)
                return {"saved": False, "message": str(exc), "current": review_dict(current)}
            return {"saved": True, "message": outcome.message, **review_dict(outcome.review)}

        def review_get(image_id: str, model: str, reviewer: str) -> dict:
            """The reviewer's saved review of one model's caption (found=False when none)."""
            return review_dict(studio.store.get(ReviewKey(studio.dataset, image_id, model,
                                                          reviewer)))

        gr.api(review_save, api_name="review_save", concurrency_limit=None)
        gr.api(review_get, api_name="review_get", concurrency_limit=None)

        # ================================================================= events: evaluation
        query_inputs = [search, model_filter, modality_filter, verdict_filter, sort_by,
                        descending, page]

        def query(search_text, model_value, modality_value, verdict_value, sort_value,
                  descending_value, page_value, delta=0):
            table_query = TableQuery(
                search=search_text or "", model=model_value or ALL,
                modality=modality_value or ALL, verdict=verdict_value or ALL,
                sort_by=sort_value, descending=bool(descending_value),
                page=int(page_value or 1) + delta, page_size=studio.options.page_size)
            rows, label, shown = page_values(studio.query_table(table_query))
            return rows, label, shown

        def query_from_start(*values):
            return query(*values[:-1], 1)

        def plot_values(metric, search_text, model_value, modality_value, verdict_value):
            if not metric:
                return None
            table_query = TableQuery(search=search_text or "", model=model_value or ALL,
                                     modality=modality_value or ALL, verdict=verdict_value or ALL)
            counts = studio.distribution(metric, table_query)
            centres = sorted(set(counts["bin"]))
            width = centres[1] - centres[0] if len(centres) > 1 else 1.0
            # Counts are pre-binned on the server; x_bin makes the browser draw them as bars.
            return gr.BarPlot(counts, x_bin=float(width), y_aggregate="sum")

        def open_evaluation():
            evaluation = studio.evaluation
            metrics = evaluation.metrics
            rows, label, shown = query("", ALL, ALL, ALL, "image_id", False, 1)
            return (studio.summary(), gr.update(choices=[ALL, *evaluation.models]),
                    gr.update(choices=[ALL, *evaluation.modalities]),
                    gr.update(choices=["image_id", "model", "modality", *metrics]),
                    gr.update(choices=metrics, value=metrics[0] if metrics else None),
                    rows, label, shown)

        evaluation_tab.select(
            open_evaluation, None,
            [summary, model_filter, modality_filter, sort_by, plot_metric, table, page_label, page],
            api_name="open_evaluation")
        table_outputs = [table, page_label, page]
        gr.on([search.submit, model_filter.input, modality_filter.input, verdict_filter.input,
               sort_by.input, descending.input], query_from_start, query_inputs, table_outputs,
              api_name="query_table")
        page.submit(query, query_inputs, table_outputs, api_visibility="private")
        page_previous.click(lambda *v: query(*v, delta=-1), query_inputs, table_outputs,
                            api_visibility="private")
        page_next.click(lambda *v: query(*v, delta=1), query_inputs, table_outputs,
                        api_visibility="private")
        gr.on([plot_metric.change, search.submit, model_filter.input, modality_filter.input,
               verdict_filter.input], plot_values,
              [plot_metric, search, model_filter, modality_filter, verdict_filter], plot,
              api_visibility="private")

        def open_selected(name, event: gr.SelectData):
            row = event.row_value or []
            values = open_item(str(row[0]) if row else "", name)
            return [gr.Tabs(selected="compare"), *values]

        table.select(open_selected, [reviewer], [tabs, *open_outputs], api_visibility="private")

    demo.queue(default_concurrency_limit=4)
    return demo


LAUNCH_OPTIONS = {"css": CARD_CSS, "theme": gr.themes.Soft()}
"""Gradio 6 takes theme and CSS at launch, not in Blocks."""


if __name__ == "__main__":
    try:
        studio = Studio.from_environment()
    except ValueError as exc:  # a mistyped setting or medcap.toml: say which, no traceback
        raise SystemExit(f"error: {exc}") from None
    demo = build_demo(studio)
    studio.warm_up_in_background()  # data and scores, not model weights: those load on first use
    # A Space must listen on all interfaces; on a workstation, stay on loopback unless asked.
    default_host = "0.0.0.0" if os.environ.get("SPACE_ID") else "127.0.0.1"
    demo.launch(server_name=os.environ.get("GRADIO_SERVER_NAME", default_host), **LAUNCH_OPTIONS)
