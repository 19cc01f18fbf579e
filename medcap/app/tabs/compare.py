"""Compare tab: one image, its ground truth and every model's caption side by side, reviewed
per caption; a collection switch (dataset sample / results CSV, or the uploads), navigation by
id, modality, previous / next / random, the review queue ("Next for me") and blind mode."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components import Component

from medcap.app.cards import status_html
from medcap.app.guidelines import key_map, load_guidelines
from medcap.app.keyboard import keymap_html
from medcap.app.studio import Studio, UploadError
from medcap.app.table import ALL
from medcap.app.tabs.common import progress_callback
from medcap.app.tabs.pairwise import build_pairwise_panel, wire_pairwise
from medcap.app.tabs.review import SlotComponents, build_slot, wire_saves
from medcap.app.tabs.signin import acting_as, build_reviewer_box, wire_reviewer_box
from medcap.app.views import ItemValues, item_values
from medcap.review import ReviewError


@dataclass(frozen=True)
class CompareTab:
    """The Compare tab's components that events (its own and other tabs') read or update."""

    tab: gr.Tab
    reviewer: gr.Textbox
    collection: gr.Dropdown  # which collection navigation and the queue walk
    modality: gr.Dropdown
    image_id: gr.Textbox
    blind: gr.Checkbox
    status: gr.HTML  # stays until the next action (errors, conflicts, counts)
    progress: gr.HTML
    current_id: gr.State  # the open item's id
    current_collection: gr.State  # ... and its collection
    opened_by: gr.State  # the reviewer name the open item's fields belong to
    image: gr.Image
    truth: gr.HTML
    slots: tuple[SlotComponents, ...]

    @property
    def open_outputs(self) -> list[Component]:
        """Everything opening an item updates, in the `/open_item` endpoint's output order
        (fields added later come last, so older scripts' positions still hold)."""
        return [self.current_id, self.image, self.truth,
                *(c for slot in self.slots for c in slot.outputs()),
                self.image_id, self.status, self.opened_by, self.current_collection,
                self.collection, *(c for slot in self.slots for c in slot.extra_outputs())]

    def show(self, values: ItemValues, keep_edits: bool = False) -> dict[Component, Any]:
        """Component -> value for an opened item (`SlotComponents.show` on `keep_edits`)."""
        shown: dict[Component, Any] = {self.current_id: values.image_id, self.image: values.image,
                                       self.truth: values.truth_html,
                                       self.current_collection: values.collection,
                                       self.collection: values.collection}
        for slot, slot_values in zip(self.slots, values.slots, strict=True):
            shown.update(slot.show(slot_values, keep_edits))
        return shown

    def open_item(self, studio: Studio, image_id: str, name: str, keep_edits: bool = False,
                  collection: str = "", blind: bool = False,
                  profile: Any = None) -> dict[Component, Any]:
        """Values (for `open_outputs`) that show item `image_id` with `name`'s reviews (with
        sign-in on: the signed-in account's, and another name is refused); an unknown id is a
        message in the status area, and the open item stays as it was."""
        try:
            name = acting_as(studio, name, profile, required=False)
            view = studio.open_item(image_id, name, collection or "", bool(blind))
        except (UploadError, ReviewError) as exc:
            return {self.status: status_html(str(exc), "error")}
        return {**self.show(item_values(view), keep_edits), self.image_id: view.image_id,
                self.status: "", self.opened_by: name.strip()}


def build_compare_tab(studio: Studio, demo: gr.Blocks) -> CompareTab:
    """The Compare tab with its `/open_item`, `/next_item` and `/generate_missing` endpoints
    (the reviews' own API is `review.register_review_api`); on `demo`'s load the reviewer box
    gets the signed-in account or the name this browser remembers (`signin.wire_reviewer_box`)."""
    with gr.Tab("Compare", id="compare") as tab:
        current_id = gr.State("")
        current_collection = gr.State("")
        opened_by = gr.State("")
        gr.HTML(keymap_html(key_map(studio.categories)))
        with gr.Row():
            reviewer = build_reviewer_box(studio)
            wire_reviewer_box(studio, demo, reviewer)
            collection = gr.Dropdown(studio.collections, value=studio.collections[0],
                                     label="Collection", elem_id="collection", scale=1)
            modality = gr.Dropdown([ALL], value=ALL, label="Modality", scale=1)
            image_id = gr.Textbox(label="Image id", elem_id="image-id", scale=2)
            open_button = gr.Button("Open", scale=0, elem_id="open-button")
        with gr.Row():
            next_for_me = gr.Button("Next for me (J)", variant="primary", elem_id="next-for-me")
            blind = gr.Checkbox(studio.queue_settings.blind, label="Blind (hide model names)",
                                elem_id="blind")
            previous_button = gr.Button("◀ Previous", elem_id="previous-button")
            random_button = gr.Button("Random")
            next_button = gr.Button("Next ▶", elem_id="next-button")
            generate_button = gr.Button("Generate missing captions")
        progress = gr.HTML(elem_id="queue-progress")
        status = gr.HTML(elem_id="compare-status")
        with gr.Row():
            image = gr.Image(label="Image", type="pil", interactive=False, height=360, scale=1)
            truth = gr.HTML(scale=2)
        with gr.Row(equal_height=False):
            slots = tuple(build_slot(studio, index, model)
                          for index, model in enumerate(studio.slot_models))
            with gr.Column(min_width=260, elem_id="guidelines"):
                with gr.Accordion("Guidelines and keys", open=True):
                    gr.Markdown(load_guidelines(studio.categories))
        pairwise = build_pairwise_panel() if len(slots) >= 2 else None
    compare = CompareTab(tab, reviewer, collection, modality, image_id, blind, status, progress,
                         current_id, current_collection, opened_by, image, truth, slots)
    wire_saves(studio, slots, current_id, current_collection, reviewer, blind)
    if pairwise is not None:
        wire_pairwise(studio, pairwise, slots, current_id, current_collection, reviewer, blind)
    _wire_navigation(studio, compare, open_button, previous_button, next_button, random_button)
    _wire_reopening(studio, compare)
    _wire_queue(studio, compare, next_for_me)
    _wire_entering(studio, compare)
    _wire_generate(studio, compare, generate_button)
    return compare


def _wire_navigation(studio: Studio, compare: CompareTab, open_button: gr.Button,
                     previous_button: gr.Button, next_button: gr.Button,
                     random_button: gr.Button) -> None:
    """Open, previous / next / random, modality and collection switches. Each handler takes the
    caller's `profile` (Gradio fills it) for `CompareTab.open_item`'s identity check."""
    outputs = compare.open_outputs
    position = [compare.current_id, compare.collection, compare.modality, compare.reviewer,
                compare.blind]

    def open_item(image_id, name, blind, profile: gr.OAuthProfile | None):
        return compare.open_item(studio, image_id, name, blind=blind, profile=profile)

    def open_or_explain(target, name, blind, collection, chosen_modality, profile):
        if target:
            return compare.open_item(studio, target, name, collection=collection, blind=blind,
                                     profile=profile)
        return {compare.status: status_html(
            f"No images with modality {chosen_modality} in {collection}.", "warning")}

    def step(current, collection, chosen_modality, name, blind, profile, delta):
        target = studio.comparison_for(collection).step(current or None, delta,
                                                        chosen_modality or ALL)
        return open_or_explain(target, name, blind, collection, chosen_modality, profile)

    def forward(current, collection, chosen_modality, name, blind,
                profile: gr.OAuthProfile | None):
        return step(current, collection, chosen_modality, name, blind, profile, 1)

    def back(current, collection, chosen_modality, name, blind,
             profile: gr.OAuthProfile | None):
        return step(current, collection, chosen_modality, name, blind, profile, -1)

    def random_item(current, collection, chosen_modality, name, blind,
                    profile: gr.OAuthProfile | None):
        target = studio.comparison_for(collection).random_id(chosen_modality or ALL, avoid=current)
        return open_or_explain(target, name, blind, collection, chosen_modality, profile)

    def switch_modality(collection, chosen_modality, name, blind,
                        profile: gr.OAuthProfile | None):
        return step(None, collection, chosen_modality, name, blind, profile, 0)

    def switch_collection(collection, name, blind, profile: gr.OAuthProfile | None):
        """Another collection: its modalities, and its first item."""
        comparison = studio.comparison_for(collection)
        shown = step(None, collection, ALL, name, blind, profile, 0)
        return {compare.modality: gr.update(choices=[ALL, *comparison.modalities], value=ALL),
                compare.progress: "", **shown}  # the progress line was another queue's

    open_button.click(open_item, [compare.image_id, compare.reviewer, compare.blind], outputs,
                      api_name="open_item")
    compare.image_id.submit(open_item, [compare.image_id, compare.reviewer, compare.blind],
                            outputs, api_visibility="private")
    next_button.click(forward, position, outputs, api_visibility="private")
    previous_button.click(back, position, outputs, api_visibility="private")
    random_button.click(random_item, position, outputs, api_visibility="private")
    compare.modality.input(switch_modality,
                           [compare.collection, compare.modality, compare.reviewer,
                            compare.blind], outputs, api_visibility="private")
    compare.collection.input(switch_collection,
                             [compare.collection, compare.reviewer, compare.blind],
                             [compare.modality, compare.progress, *outputs],
                             api_visibility="private")


def _wire_reopening(studio: Studio, compare: CompareTab) -> None:
    """The open item again, for a new reviewer name or a blind-mode switch."""
    outputs = compare.open_outputs

    def toggle_blind(current, collection, name, blind, profile: gr.OAuthProfile | None):
        if not current:
            return gr.skip()
        return compare.open_item(studio, current, name, collection=collection, blind=blind,
                                 profile=profile)

    def reopen(current, collection, name, opened_name, blind, profile: gr.OAuthProfile | None):
        """A new reviewer name loads that reviewer's reviews; leaving the box unchanged
        (blur fires anyway) touches nothing."""
        if (name or "").strip() == opened_name:
            return gr.skip()
        return toggle_blind(current, collection, name, blind, profile)

    compare.reviewer.blur(reopen, [compare.current_id, compare.current_collection,
                                   compare.reviewer, compare.opened_by, compare.blind],
                          outputs, api_visibility="private")
    compare.blind.input(toggle_blind, [compare.current_id, compare.current_collection,
                                       compare.reviewer, compare.blind],
                        outputs, api_visibility="private")


def _wire_queue(studio: Studio, compare: CompareTab, next_for_me: gr.Button) -> None:
    """"Next for me": the reviewer's next item of the chosen collection's queue (each item goes
    to `MEDCAP_QUEUE_OVERLAP` reviewers), with their progress."""
    settings = studio.queue_settings

    def next_item(name, collection, blind, profile: gr.OAuthProfile | None):
        try:  # the queue assigns items: only to the caller themself
            name = acting_as(studio, name, profile)
            target, progress = studio.next_for(name, collection or "")
        except ReviewError as exc:
            return {compare.status: status_html(str(exc), "error")}
        line = status_html(f"Your queue in {collection}: {progress.done} done / "
                           f"{progress.assigned} assigned (each item goes to "
                           f"{settings.overlap} reviewer{'s' if settings.overlap != 1 else ''}, "
                           f"{settings.order} order).")
        if target is None:
            return {compare.progress: line, compare.status: status_html(
                f"Nothing left for you in {collection}: every item is done by you or already "
                f"has {settings.overlap} reviewers.", "ok")}
        return {**compare.open_item(studio, target, name, collection=collection, blind=blind,
                                    profile=profile), compare.progress: line}

    next_for_me.click(next_item, [compare.reviewer, compare.collection, compare.blind],
                      [compare.progress, *compare.open_outputs], api_name="next_item")


def _wire_entering(studio: Studio, compare: CompareTab) -> None:
    def enter_compare(current, kept, chosen, chosen_modality, name, blind,
                      profile: gr.OAuthProfile | None):
        """On entering the tab: reopen the current item (fresh reviews, the reviewer's unsaved
        work kept) or the first one of the chosen collection."""
        collection = kept or chosen
        comparison = studio.comparison_for(collection)
        target = current or comparison.first(chosen_modality or ALL)
        values = (compare.open_item(studio, target, name, keep_edits=bool(current),
                                    collection=collection, blind=blind, profile=profile)
                  if target else {})
        if compare.status not in values or not values[compare.status]:
            values[compare.status] = status_html(
                studio.data_problem or f"{len(comparison):,} images in {collection}.",
                "error" if studio.data_problem else "")
        return {compare.modality: gr.update(choices=[ALL, *comparison.modalities]), **values}

    compare.tab.select(
        enter_compare,
        [compare.current_id, compare.current_collection, compare.collection, compare.modality,
         compare.reviewer, compare.blind],
        [compare.modality, *compare.open_outputs], api_visibility="private")


def _wire_generate(studio: Studio, compare: CompareTab, generate_button: gr.Button) -> None:
    def generate(image_id, name, open_id, collection, blind, profile: gr.OAuthProfile | None,
                 progress=gr.Progress()):
        try:
            message = studio.generate_missing(image_id, progress_callback(progress),
                                              collection=collection if image_id == open_id else "")
        except (UploadError, ReviewError) as exc:
            return {compare.status: status_html(str(exc), "error")}
        # The image on screen: keep the reviewer's unsaved text.
        values = compare.open_item(studio, image_id, name, keep_edits=image_id == open_id,
                                   blind=blind, profile=profile)
        values[compare.status] = status_html(message, "ok")
        return values

    generate_button.click(generate, [compare.image_id, compare.reviewer, compare.current_id,
                                     compare.current_collection, compare.blind],
                          compare.open_outputs, api_name="generate_missing")
