"""Small Gradio adapters shared by the tabs."""

from __future__ import annotations

import html
from typing import Any, Callable

import gradio as gr


def progress_callback(progress: gr.Progress) -> Callable[[float, str], None]:
    """`Studio`'s (fraction, text) progress reports, shown in Gradio's progress bar."""
    return lambda fraction, text: progress(fraction, desc=text)


def user_error(exc: Exception) -> gr.Error:
    """A message for the user, without a server-side traceback; it stays on the page until
    the user closes it (duration=None), instead of vanishing after ten seconds. Gradio shows a
    toast as HTML, and messages quote file names and typed text: escaped, they stay text."""
    return gr.Error(html.escape(str(exc), quote=False), duration=None, print_exception=False)


def without_empty_temp_files(upload: gr.File) -> gr.File:
    """`upload` (type="filepath") handing over the uploaded path alone.

    Gradio 6.31's `File._process_single_file` opens a `NamedTemporaryFile(delete=False)` in its
    cache for every file it hands over and never uses or deletes it: one empty file per upload,
    left behind. Overridden on the instance, not by subclassing: a gr.File subclass makes Gradio
    write a .pyi stub beside the defining module at import time.
    """
    from gradio_client import utils as client_utils
    from gradio.utils import NamedString

    def process(file: Any) -> NamedString:
        if upload.file_types and not client_utils.is_valid_file(file.path, upload.file_types):
            raise gr.Error("Invalid file type. Please upload a file that is one of these "
                           f"formats: {upload.file_types}")
        return NamedString(file.path)

    upload._process_single_file = process  # type: ignore[method-assign]
    return upload
