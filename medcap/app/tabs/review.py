"""One model's review column on the Compare tab, and the `/review_save` / `/review_get` API."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr
from gradio.components import Component

from medcap.app.studio import Studio
from medcap.app.views import SlotValues, review_dict, save_values
from medcap.review import VERDICTS, ReviewError, ReviewKey


@dataclass(frozen=True)
class SlotComponents:
    """The components of one model's review column, by name."""

    model: str
    card: gr.HTML
    verdict: gr.Radio
    corrected: gr.Textbox
    note: gr.Textbox
    version: gr.State
    save: gr.Button
    status: gr.Markdown

    def outputs(self) -> list[Component]:
        """What opening an item updates in this column (in `/open_item`'s output order)."""
        return [self.card, self.verdict, self.corrected, self.note, self.version, self.status]

    def show(self, values: SlotValues, keep_edits: bool = False) -> dict[Component, Any]:
        """Component -> value. With `keep_edits` only the card is refreshed (new captions, other
        reviewers): what the reviewer typed, and the version it is based on, stay as they are, so
        unsaved text survives a tab switch or a caption run and a stale save is still a conflict."""
        shown: dict[Component, Any] = {self.card: values.card_html}
        if not keep_edits:
            shown.update({self.verdict: values.verdict, self.corrected: values.corrected_caption,
                          self.note: values.note, self.version: values.version,
                          self.status: values.status})
        return shown


def build_slot(studio: Studio, index: int, model: str, current_id: gr.State,
               reviewer: gr.Textbox) -> SlotComponents:
    """Column `index` (elem_ids `verdict-<index>`, ...) for `model`, with its Save button wired
    to save the review of the open item (`current_id`) by `reviewer`."""
    with gr.Column(min_width=260, elem_id=f"slot-{index}"):
        slot = SlotComponents(
            model=model,
            card=gr.HTML(),
            verdict=gr.Radio(list(VERDICTS), label=f"Verdict on {model}",
                             elem_id=f"verdict-{index}"),
            corrected=gr.Textbox(label="Corrected caption (optional)", lines=2,
                                 elem_id=f"corrected-{index}"),
            note=gr.Textbox(label="Note (optional)", lines=1, elem_id=f"note-{index}"),
            version=gr.State(0),
            save=gr.Button("Save review", elem_id=f"save-{index}"),
            status=gr.Markdown(elem_id=f"status-{index}"),
        )

    def save(current, name, verdict_value, corrected_value, note_value, base):
        try:
            outcome = studio.save_review(current, model, name, verdict_value, corrected_value,
                                         note_value, base)
        except ReviewError as exc:
            return save_values(exc, base)
        return save_values(outcome, base)

    slot.save.click(save, [current_id, reviewer, slot.verdict, slot.corrected, slot.note,
                           slot.version], [slot.version, slot.status], api_visibility="private")
    return slot


def register_review_api(studio: Studio) -> None:
    """`/review_save` and `/review_get`: reviews for scripts, without the page's components."""

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
        return review_dict(studio.store.get(ReviewKey(studio.dataset, image_id, model, reviewer)))

    gr.api(review_save, api_name="review_save", concurrency_limit=None)
    gr.api(review_get, api_name="review_get", concurrency_limit=None)
