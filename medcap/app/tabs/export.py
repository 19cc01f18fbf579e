"""Export tab: every completed review as a spreadsheet-safe CSV."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from medcap.app.studio import Studio, UploadError


@dataclass(frozen=True)
class ExportTab:
    """The Export tab's button and outputs (the `/export_reviews` endpoint's, in order)."""

    button: gr.Button
    file: gr.File
    status: gr.Markdown


def build_export_tab(studio: Studio) -> ExportTab:
    """The Export tab and its `/export_reviews` endpoint."""
    with gr.Tab("Export", id="export"):
        gr.Markdown(
            "Download every completed review (drafts are left out) with its ground truth, "
            "generated caption and scores. Cells that a spreadsheet would run as a formula "
            "are prefixed with `'`; the file is UTF-8 with a byte-order mark for Excel.")
        button = gr.Button("Export reviews as CSV", elem_id="export-button")
        file = gr.File(label="Reviews CSV", elem_id="export-file")
        status = gr.Markdown()

    def export():
        try:
            path = studio.export_reviews()
        except UploadError as exc:
            return None, str(exc)
        return str(path), f"Exported {path.name}."

    button.click(export, None, [file, status], api_name="export_reviews")
    return ExportTab(button, file, status)
