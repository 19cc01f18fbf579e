"""Small Gradio adapters shared by the tabs."""

from __future__ import annotations

from typing import Callable

import gradio as gr


def progress_callback(progress: gr.Progress) -> Callable[[float, str], None]:
    """`Studio`'s (fraction, text) progress reports, shown in Gradio's progress bar."""
    return lambda fraction, text: progress(fraction, desc=text)


def user_error(exc: Exception) -> gr.Error:
    """A message for the user, without a server-side traceback."""
    return gr.Error(str(exc), print_exception=False)
