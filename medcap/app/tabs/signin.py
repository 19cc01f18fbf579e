"""The reviewer box of the Compare tab, and who the caller of an event or API function is.

Every handler that acts for a reviewer takes a `profile: gr.OAuthProfile | None` parameter:
Gradio fills it from the caller's signed-in session (it is not an input a client can send), and
`acting_as` applies `medcap.app.identity.resolve_reviewer` to it and the typed name. With sign-in
on, the box shows the signed-in account and cannot be edited; without it, the box takes any name
and a note beside it says that names are not verified.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from medcap.app.identity import OAUTH, UNVERIFIED_NOTE, resolve_reviewer, signed_in_name
from medcap.app.studio import Studio

SIGNED_IN_NOTE = ("Reviews are saved under your Hugging Face account. Sign in to review; you "
                  "can browse without signing in.")


def acting_as(studio: Studio, typed_name: str | None, profile: Any,
              required: bool = True) -> str:
    """The reviewer this call may act as (`resolve_reviewer` in the studio's auth mode)."""
    return resolve_reviewer(typed_name, profile, studio.options.auth, required=required)


def build_reviewer_box(studio: Studio) -> gr.Textbox:
    """The name box (elem_id `reviewer`), the sign-in button when sign-in is on, and the note
    (elem_id `reviewer-note`) saying whether names are verified."""
    oauth = studio.options.auth == OAUTH
    with gr.Column(scale=2, min_width=240):
        name = gr.Textbox(label="Reviewer (your Hugging Face account)" if oauth
                          else "Your name (reviewer)", elem_id="reviewer", interactive=not oauth,
                          placeholder="sign in to review" if oauth else "")
        if oauth:
            gr.LoginButton(size="sm", elem_id="login")
        gr.HTML(f'<p style="margin:0;font-size:0.85em;opacity:0.8">'
                f'{SIGNED_IN_NOTE if oauth else UNVERIFIED_NOTE}</p>',
                elem_id="reviewer-note")
    return name


def wire_reviewer_box(studio: Studio, demo: gr.Blocks, name: gr.Textbox) -> None:
    """On page load: the signed-in account (sign-in on), or the name this browser remembers."""
    if studio.options.auth == OAUTH:
        def account(profile: gr.OAuthProfile | None) -> str:
            return signed_in_name(profile)

        demo.load(account, None, name, api_visibility="private")
        return
    remembered = gr.BrowserState("", storage_key="medcap-reviewer-name")
    name.change(lambda typed: typed, name, remembered, api_visibility="private")
    demo.load(lambda typed: typed, remembered, name, api_visibility="private")
