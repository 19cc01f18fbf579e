"""Compare tab: one image, its ground truth and every model's caption side by side, reviewed
per model; navigation by id, modality, previous / next / random."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components import Component

from medcap.app.studio import Studio, UploadError
from medcap.app.table import ALL
from medcap.app.tabs.common import progress_callback, user_error
from medcap.app.tabs.review import SlotComponents, build_slot
from medcap.app.views import ItemValues, item_values


@dataclass(frozen=True)
class CompareTab:
    """The Compare tab's components that events (its own and other tabs') read or update."""

    tab: gr.Tab
    reviewer: gr.Textbox
    modality: gr.Dropdown
    image_id: gr.Textbox
    status: gr.Markdown
    current_id: gr.State  # the open item's id
    opened_by: gr.State  # the reviewer name the open item's fields belong to
    image: gr.Image
    truth: gr.HTML
    slots: tuple[SlotComponents, ...]

    @property
    def open_outputs(self) -> list[Component]:
        """Everything opening an item updates, in the `/open_item` endpoint's output order."""
        return [self.current_id, self.image, self.truth,
                *(c for slot in self.slots for c in slot.outputs()),
                self.image_id, self.status, self.opened_by]

    def show(self, values: ItemValues, keep_edits: bool = False) -> dict[Component, Any]:
        """Component -> value for an opened item (`SlotComponents.show` on `keep_edits`)."""
        shown: dict[Component, Any] = {self.current_id: values.image_id, self.image: values.image,
                                       self.truth: values.truth_html}
        for slot, slot_values in zip(self.slots, values.slots, strict=True):
            shown.update(slot.show(slot_values, keep_edits))
        return shown

    def open_item(self, studio: Studio, image_id: str, name: str,
                  keep_edits: bool = False) -> dict[Component, Any]:
        """Values (for `open_outputs`) that show item `image_id` with `name`'s reviews."""
        try:
            view = studio.open_item(image_id, name or "")
        except UploadError as exc:
            raise user_error(exc) from exc
        return {**self.show(item_values(view), keep_edits), self.image_id: view.image_id,
                self.status: "", self.opened_by: (name or "").strip()}


def build_compare_tab(studio: Studio, demo: gr.Blocks) -> CompareTab:
    """The Compare tab with its `/open_item` and `/generate_missing` endpoints (the reviews'
    own API is `review.register_review_api`); `demo` restores the remembered reviewer name."""
    with gr.Tab("Compare", id="compare") as tab:
        current_id = gr.State("")
        opened_by = gr.State("")
        remembered_name = gr.BrowserState("", storage_key="medcap-reviewer-name")
        with gr.Row():
            reviewer = gr.Textbox(label="Your name (reviewer)", elem_id="reviewer", scale=2)
            modality = gr.Dropdown([ALL], value=ALL, label="Modality", scale=1)
            image_id = gr.Textbox(label="Image id", elem_id="image-id", scale=2)
            open_button = gr.Button("Open", scale=0)
        with gr.Row():
            previous_button = gr.Button("◀ Previous")
            random_button = gr.Button("Random")
            next_button = gr.Button("Next ▶", elem_id="next-button")
            generate_button = gr.Button("Generate missing captions")
        status = gr.Markdown(elem_id="compare-status")
        with gr.Row():
            image = gr.Image(label="Image", type="pil", interactive=False, height=360, scale=1)
            truth = gr.HTML(scale=2)
        with gr.Row(equal_height=False):
            slots = tuple(build_slot(studio, index, model, current_id, reviewer)
                          for index, model in enumerate(studio.slot_models))
    compare = CompareTab(tab, reviewer, modality, image_id, status, current_id, opened_by,
                         image, truth, slots)
    _wire_navigation(studio, compare, open_button, previous_button, next_button, random_button)
    reviewer.change(lambda name: name, reviewer, remembered_name, api_visibility="private")
    demo.load(lambda name: name, remembered_name, reviewer, api_visibility="private")
    _wire_entering(studio, compare)
    _wire_generate(studio, compare, generate_button)
    return compare


def _wire_navigation(studio: Studio, compare: CompareTab, open_button: gr.Button,
                     previous_button: gr.Button, next_button: gr.Button,
                     random_button: gr.Button) -> None:
    outputs = compare.open_outputs
    position = [compare.current_id, compare.modality, compare.reviewer]

    def open_item(image_id, name):
        return compare.open_item(studio, image_id, name)

    def open_or_explain(target, name, chosen_modality):
        if target:
            return open_item(target, name)
        return {compare.status: f"No images with modality {chosen_modality} in {studio.dataset}."}

    def step(current, chosen_modality, name, delta):
        target = studio.comparison.step(current or None, delta, chosen_modality or ALL)
        return open_or_explain(target, name, chosen_modality)

    def reopen(current, name, opened_name):
        """A new reviewer name loads that reviewer's reviews; leaving the box unchanged
        (blur fires anyway) touches nothing."""
        if not current or (name or "").strip() == opened_name:
            return gr.skip()
        return open_item(current, name)

    open_button.click(open_item, [compare.image_id, compare.reviewer], outputs,
                      api_name="open_item")
    compare.image_id.submit(open_item, [compare.image_id, compare.reviewer], outputs,
                            api_visibility="private")
    next_button.click(lambda c, m, n: step(c, m, n, 1), position, outputs,
                      api_visibility="private")
    previous_button.click(lambda c, m, n: step(c, m, n, -1), position, outputs,
                          api_visibility="private")
    random_button.click(
        lambda c, m, n: open_or_explain(studio.comparison.random_id(m or ALL, avoid=c), n, m),
        position, outputs, api_visibility="private")
    compare.modality.change(lambda m, n: step(None, m, n, 0), [compare.modality, compare.reviewer],
                            outputs, api_visibility="private")
    compare.reviewer.blur(reopen, [compare.current_id, compare.reviewer, compare.opened_by],
                          outputs, api_visibility="private")


def _wire_entering(studio: Studio, compare: CompareTab) -> None:
    def enter_compare(current, chosen_modality, name):
        """On entering the tab: reopen the current image (fresh reviews, the reviewer's unsaved
        text kept) or the first one."""
        comparison = studio.comparison
        target = current or comparison.first(chosen_modality or ALL)
        values = (compare.open_item(studio, target, name, keep_edits=bool(current))
                  if target else {})
        values[compare.status] = (studio.data_problem
                                  or f"{len(comparison):,} images in {studio.dataset}.")
        return {compare.modality: gr.update(choices=[ALL, *comparison.modalities]), **values}

    compare.tab.select(enter_compare, [compare.current_id, compare.modality, compare.reviewer],
                       [compare.modality, *compare.open_outputs], api_visibility="private")


def _wire_generate(studio: Studio, compare: CompareTab, generate_button: gr.Button) -> None:
    def generate(image_id, name, open_id, progress=gr.Progress()):
        try:
            message = studio.generate_missing(image_id, progress_callback(progress))
        except UploadError as exc:
            raise user_error(exc) from exc
        # The image on screen: keep the reviewer's unsaved text.
        values = compare.open_item(studio, image_id, name, keep_edits=image_id == open_id)
        values[compare.status] = message
        return values

    generate_button.click(generate, [compare.image_id, compare.reviewer, compare.current_id],
                          compare.open_outputs, api_name="generate_missing")
