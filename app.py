"""medcap review studio: a Gradio page wired to `medcap.app.Studio`.

Run `python app.py` (configuration: `medcap.config` and `medcap.app.options`). This file only
assembles the tabs, each built and wired by its module in `medcap.app.tabs`; what happens lives
in `medcap.app`.
"""

from __future__ import annotations

import gradio as gr

from medcap.app.cards import CARD_CSS, disclaimer_html
from medcap.app.keyboard import KEYBOARD_HEAD
from medcap.app.launch import blocks_kwargs, launch_kwargs, server_name
from medcap.app.studio import Studio
from medcap.app.tabs.agreement import build_agreement_tab
from medcap.app.tabs.caption import (
    build_caption_tab,
    forget_session_on_unload,
    wire_review_in_compare,
)
from medcap.app.tabs.compare import build_compare_tab
from medcap.app.tabs.evaluation import build_evaluation_tab
from medcap.app.tabs.export import build_export_tab
from medcap.app.tabs.review import register_review_api


def build_demo(studio: Studio) -> gr.Blocks:
    """The whole page; `studio` holds the state, so tests can build it with tiny models.
    Each tab lays out and wires itself (`medcap.app.tabs`); tabs that act on another get its
    components by name."""
    with gr.Blocks(title="medcap review studio", **blocks_kwargs(studio.options)) as demo:
        gr.HTML(disclaimer_html())
        gr.HTML(studio.notice, visible=bool(studio.notice), elem_id="notice")
        with gr.Tabs() as tabs:
            caption = build_caption_tab(studio)
            compare = build_compare_tab(studio, demo)
            build_evaluation_tab(studio, compare, tabs)
            build_agreement_tab(studio)
            build_export_tab(studio)
        register_review_api(studio)  # page-level API endpoints: gr.Tabs may hold only tabs
        wire_review_in_compare(studio, caption, compare, tabs)
        forget_session_on_unload(studio, demo)
    demo.queue(default_concurrency_limit=4)
    return demo


LAUNCH_OPTIONS = {"css": CARD_CSS, "theme": gr.themes.Soft(), "head": KEYBOARD_HEAD}
"""Gradio 6 takes theme, CSS and head scripts (the review keys) at launch, not in Blocks."""


if __name__ == "__main__":
    try:
        studio = Studio.from_environment()
    except ValueError as exc:  # a mistyped setting or medcap.toml: say which, no traceback
        raise SystemExit(f"error: {exc}") from None
    demo = build_demo(studio)
    studio.warm_up_in_background()  # data and scores, not model weights: those load on first use
    demo.launch(server_name=server_name(), **LAUNCH_OPTIONS, **launch_kwargs(studio.options))
