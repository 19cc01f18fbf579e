"""One caption's review column on the Compare tab, and the review API (`/review_save`,
`/review_get`, `/preference_save`, `/next_for_me`).

A column is not tied to a model: in blind mode the models are shuffled per item and reviewer, so
each column keeps the model it shows in a server-side `gr.State` (never sent to the browser) and
the page only ever sees its label ("Caption A" until the reviewer has finished the item).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gradio as gr
from gradio.components import Component

from medcap.app.studio import Studio
from medcap.app.tabs.signin import acting_as
from medcap.app.views import SlotValues, item_values, review_dict, save_values
from medcap.review import VERDICTS, ReviewError, ReviewKey, ReviewValidationError


@dataclass(frozen=True)
class SlotComponents:
    """The components of one review column, by name."""

    index: int
    model: gr.State  # the model whose caption this column shows now
    card: gr.HTML
    verdict: gr.Radio
    categories: gr.CheckboxGroup
    significant: gr.Checkbox
    corrected: gr.Textbox
    note: gr.Textbox
    version: gr.State
    save: gr.Button
    status: gr.HTML

    def outputs(self) -> list[Component]:
        """What opening an item updates in this column (in `/open_item`'s output order; the
        fields added with error categories follow in `extra_outputs`, after every column's)."""
        return [self.card, self.verdict, self.corrected, self.note, self.version, self.status]

    def extra_outputs(self) -> list[Component]:
        return [self.model, self.categories, self.significant]

    def show(self, values: SlotValues, keep_edits: bool = False) -> dict[Component, Any]:
        """Component -> value. With `keep_edits` only the card is refreshed (new captions, other
        reviewers): what the reviewer typed or ticked, and the version it is based on, stay as
        they are, so unsaved work survives a tab switch or a caption run and a stale save is
        still a conflict. The card's heading is the only place a model name (or "Caption A")
        appears, so labels never need updating."""
        shown: dict[Component, Any] = {self.card: values.card_html, self.model: values.model}
        if keep_edits:
            return shown
        # No saved review yet: the fact check's suggestions come pre-ticked, to confirm or untick.
        ticked = values.categories if values.version else values.suggested_categories
        shown.update({self.verdict: values.verdict,
                      self.categories: list(ticked),
                      self.significant: values.significant,
                      self.corrected: values.corrected_caption, self.note: values.note,
                      self.version: values.version, self.status: values.status})
        return shown

    def refreshed(self, values: SlotValues) -> dict[Component, Any]:
        """After a save elsewhere on the item: the card only (names may be revealed)."""
        return {self.card: values.card_html, self.model: values.model}


def build_slot(studio: Studio, index: int, model: str) -> SlotComponents:
    """Column `index` (elem_ids `slot-<index>`, `verdict-<index>`, `categories-<index>`, ...),
    first showing `model`; `wire_saves` connects its Save button."""
    choices = [(f"{c.label} ({c.shortcut})" if c.shortcut else c.label, c.key)
               for c in studio.categories]
    with gr.Column(min_width=260, elem_id=f"slot-{index}"):
        return SlotComponents(
            index=index,
            model=gr.State(model),
            card=gr.HTML(elem_id=f"card-{index}"),
            verdict=gr.Radio(list(VERDICTS), label="Verdict (keys 1-4)",
                             elem_id=f"verdict-{index}"),
            categories=gr.CheckboxGroup(choices, label="Errors (tick all that apply)",
                                        elem_id=f"categories-{index}"),
            significant=gr.Checkbox(False, label="Clinically significant",
                                    elem_id=f"significant-{index}"),
            corrected=gr.Textbox(label="Corrected caption (optional)", lines=2,
                                 elem_id=f"corrected-{index}"),
            note=gr.Textbox(label="Note (optional)", lines=1, elem_id=f"note-{index}"),
            version=gr.State(0),
            save=gr.Button("Save review", elem_id=f"save-{index}"),
            status=gr.HTML(elem_id=f"status-{index}"),
        )


def wire_saves(studio: Studio, slots: Sequence[SlotComponents], current_id: gr.State,
               collection: gr.State, reviewer: gr.Textbox, blind: gr.Checkbox) -> None:
    """Each column's Save stores its review, then refreshes every card of the item (other
    reviews, and in blind mode the model names once the reviewer has finished the item)."""
    for slot in slots:
        def save(current, chosen_collection, name, blind_on, model, verdict_value, ticked,
                 significant_value, corrected_value, note_value, base,
                 profile: gr.OAuthProfile | None, slot=slot):
            try:
                name = acting_as(studio, name, profile)
                outcome: Any = studio.save_review(
                    current, model, name, verdict_value, corrected_value, note_value, base,
                    categories=ticked or (), significant=bool(significant_value),
                    collection=chosen_collection or "")
            except ReviewError as exc:
                outcome = exc
            version, status = save_values(outcome, base)
            shown: dict[Component, Any] = {slot.version: version, slot.status: status}
            if isinstance(outcome, ReviewError):
                return shown
            return {**shown, **refreshed_cards(studio, slots, current, name,
                                               chosen_collection, blind_on)}

        slot.save.click(
            save, [current_id, collection, reviewer, blind, slot.model, slot.verdict,
                   slot.categories, slot.significant, slot.corrected, slot.note, slot.version],
            [slot.version, slot.status, *card_outputs(slots)], api_visibility="private")


def card_outputs(slots: Sequence[SlotComponents]) -> list[Component]:
    """What `refreshed_cards` updates."""
    return [c for slot in slots for c in (slot.card, slot.model)]


def refreshed_cards(studio: Studio, slots: Sequence[SlotComponents], image_id: str, name: str,
                    collection: str, blind: bool) -> dict[Component, Any]:
    """Every card of the open item again after a save or a vote (other reviews, and in blind
    mode the model names once the reviewer has finished); typed fields are left alone."""
    values = item_values(studio.open_item(image_id, name, collection or "", bool(blind)))
    shown: dict[Component, Any] = {}
    for slot, slot_values in zip(slots, values.slots, strict=True):
        shown.update(slot.refreshed(slot_values))
    return shown


def register_review_api(studio: Studio) -> None:
    """Reviews for scripts, without the page's components: `/review_save`, `/review_get`,
    `/preference_save`, `/next_for_me` (built by `review_api`)."""
    for name, function in review_api(studio).items():
        gr.api(function, api_name=name, concurrency_limit=None)


def review_api(studio: Studio) -> dict[str, Any]:
    """api_name -> function. Each takes the caller's `profile` (Gradio fills it from the signed-in
    session; no client can send it): with sign-in on, `reviewer` must be the signed-in account
    ("" means it) or the call is refused (`medcap.app.identity`)."""

    def review_save(image_id: str, model: str, reviewer: str, verdict: str,
                    corrected_caption: str, note: str, base_version: int,
                    categories: list[str] | None = None, significant: bool = False,
                    collection: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Save a review; a stale base_version is refused and the other text returned.
        categories: error-category keys; collection: "" finds the item's own collection."""
        try:
            reviewer = acting_as(studio, reviewer, profile)
            outcome = studio.save_review(image_id, model, reviewer, verdict,
                                         corrected_caption, note, base_version,
                                         categories=_keys(categories),
                                         significant=bool(significant),
                                         collection=collection or "")
        except ReviewError as exc:
            current = getattr(exc, "current", None)
            return {"saved": False, "message": str(exc), "current": review_dict(current)}
        return {"saved": True, "message": outcome.message, **review_dict(outcome.review)}

    def review_get(image_id: str, model: str, reviewer: str, collection: str = "",
                   profile: gr.OAuthProfile | None = None) -> dict:
        """The reviewer's saved review of one model's caption (found=False when none)."""
        try:
            reviewer = acting_as(studio, reviewer, profile)
            where = studio.collection_of(str(image_id), collection or "")
        except ReviewValidationError as exc:
            return {"found": False, "version": 0, "message": str(exc)}
        return review_dict(studio.store.get(ReviewKey(where, image_id, model, reviewer)))

    def preference_save(image_id: str, model_a: str, model_b: str, reviewer: str, choice: str,
                        collection: str = "", profile: gr.OAuthProfile | None = None) -> dict:
        """Pairwise judgement: choice is "A better", "B better", "tie" or "both wrong"."""
        try:
            reviewer = acting_as(studio, reviewer, profile)
            saved = studio.save_preference(image_id, model_a, model_b, reviewer, choice,
                                           collection or "")
        except ReviewError as exc:
            return {"saved": False, "message": str(exc)}
        return {"saved": True, "message": f"Saved: {choice}.", "model_a": saved.model_a,
                "model_b": saved.model_b, "choice": saved.choice, "saved_at": saved.saved_at}

    def next_for_me(reviewer: str, collection: str = "",
                    profile: gr.OAuthProfile | None = None) -> dict:
        """The reviewer's next queue item (image_id null when none is left) and progress."""
        try:
            reviewer = acting_as(studio, reviewer, profile)
            image_id, progress = studio.next_for(reviewer, collection or "")
        except ReviewError as exc:
            return {"image_id": None, "message": str(exc)}
        return {"image_id": image_id, "done": progress.done, "assigned": progress.assigned,
                "message": "" if image_id else "Nothing left for you in this queue."}

    return {"review_save": review_save, "review_get": review_get,
            "preference_save": preference_save, "next_for_me": next_for_me}


def _keys(categories: Any) -> tuple[str, ...]:
    """A list of keys, or one comma-separated string (what a quick script sends)."""
    if not categories:
        return ()
    if isinstance(categories, str):
        return tuple(k.strip() for k in categories.split(",") if k.strip())
    if not isinstance(categories, (list, tuple)):
        raise ReviewValidationError("categories must be a list of category keys.")
    return tuple(str(k) for k in categories)
