"""Pairwise mode on the Compare tab (as in chatbot arenas): the first two caption cards of the
open item, A and B, judged against each other and stored as a preference."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import gradio as gr
from gradio.components import Component

from medcap.app.cards import status_html
from medcap.app.studio import Studio
from medcap.app.tabs.review import SlotComponents, card_outputs, refreshed_cards
from medcap.app.tabs.signin import acting_as
from medcap.review import PREFERENCE_CHOICES, ReviewError


@dataclass(frozen=True)
class PairwisePanel:
    choice: gr.Radio
    save: gr.Button
    status: gr.HTML


def build_pairwise_panel() -> PairwisePanel:
    """Lay out the panel where it is called (inside the Compare tab)."""
    with gr.Accordion("Pairwise: which caption is better?", open=False, elem_id="pairwise"):
        gr.Markdown("**A** is the first caption card, **B** the second (in blind mode: "
                    "Caption A and Caption B).")
        with gr.Row():
            choice = gr.Radio(list(PREFERENCE_CHOICES), label="Judgement",
                              elem_id="pairwise-choice", scale=3)
            save = gr.Button("Save preference", elem_id="pairwise-save", scale=1)
        status = gr.HTML(elem_id="pairwise-status")
    return PairwisePanel(choice, save, status)


def wire_pairwise(studio: Studio, panel: PairwisePanel, slots: Sequence[SlotComponents],
                  current_id: gr.State, collection: gr.State, reviewer: gr.Textbox,
                  blind: gr.Checkbox) -> None:
    """Save the judgement of slots 0 and 1, then refresh the cards (a vote reveals the names)."""
    first, second = slots[0], slots[1]

    def save(current, chosen_collection, name, blind_on, model_a, model_b, choice,
             profile: gr.OAuthProfile | None):
        try:
            name = acting_as(studio, name, profile)
            studio.save_preference(current, model_a, model_b, name, choice or "",
                                   chosen_collection or "")
        except ReviewError as exc:
            return {panel.status: status_html(str(exc), "error")}
        shown: dict[Component, Any] = {panel.status: status_html(f"Saved: {choice}.", "ok")}
        return {**shown, **refreshed_cards(studio, slots, current, name, chosen_collection,
                                           blind_on)}

    panel.save.click(save, [current_id, collection, reviewer, blind, first.model, second.model,
                            panel.choice], [panel.status, *card_outputs(slots)],
                     api_visibility="private")
    # Another item: a judgement of the previous pair must not be saved for it by mistake.
    current_id.change(lambda _: (None, ""), current_id, [panel.choice, panel.status],
                      api_visibility="private")
