"""Caption tab: upload an image or DICOM file and caption it with the chosen models."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from medcap.app.examples import stage_examples
from medcap.app.studio import Studio, UploadError
from medcap.app.tabs.common import progress_callback, user_error, without_empty_temp_files
from medcap.app.views import upload_values


@dataclass(frozen=True)
class CaptionTab:
    """The Caption tab's inputs and outputs (the `/caption` endpoint's, in order)."""

    upload: gr.File
    models: gr.CheckboxGroup
    prompt: gr.Textbox
    button: gr.Button
    preview: gr.Image
    metadata: gr.HTML
    cards: gr.HTML
    captions_json: gr.JSON


def model_choices(studio: Studio) -> list[str]:
    """Available models first; unavailable ones stay pickable after them (their card says why)."""
    pool = studio.pool
    return [*pool.labels, *(p for p in pool.problems if p not in pool.labels)]


def build_caption_tab(studio: Studio) -> CaptionTab:
    """The Caption tab and its `/caption` endpoint."""
    models = model_choices(studio)
    with gr.Tab("Caption", id="caption"):
        with gr.Row():
            with gr.Column(scale=1):
                upload = without_empty_temp_files(gr.File(
                    label="Image (PNG / JPEG) or DICOM (.dcm)",
                    file_types=["image", ".dcm", ".dicom"], type="filepath", elem_id="upload"))
                chosen = gr.CheckboxGroup(models, value=models[:1], label="Models",
                                          elem_id="caption-models")
                prompt = gr.Textbox(studio.pool.default_prompt(), lines=3,
                                    label="Prompt (Qwen2-VL)",
                                    visible=bool(studio.pool.prompted_labels()))
                button = gr.Button("Caption", variant="primary", elem_id="caption-button")
                examples = stage_examples(studio.options.examples)
                if examples:
                    gr.Examples([[str(p)] for p in examples], [upload],
                                label="Examples (DICOM and PNG samples)")
            with gr.Column(scale=2):
                preview = gr.Image(label="Image", type="pil", interactive=False, height=320)
                metadata = gr.HTML(label="Metadata")
                cards = gr.HTML(elem_id="caption-cards")
                gr.Markdown("Orange shading marks words the model was unsure of, darker for "
                            "less sure; a dashed outline marks a side, modality, anatomy, "
                            "finding or negation word it was not sure of (hover for the "
                            "probability).")
                captions_json = gr.JSON(label="Captions (JSON)", visible=False)
        if studio.pool.problems:
            gr.Markdown("\n".join(f"- **{name}** unavailable: {why}"
                                  for name, why in studio.pool.problems.items()))
    tab = CaptionTab(upload, chosen, prompt, button, preview, metadata, cards, captions_json)
    _wire_caption(studio, tab)
    return tab


def _wire_caption(studio: Studio, tab: CaptionTab) -> None:
    def caption(path, labels, prompt_text, progress=gr.Progress()):
        try:
            result = studio.caption_upload(path, labels or [], prompt_text,
                                           progress_callback(progress))
        except UploadError as exc:
            raise user_error(exc) from exc
        return upload_values(result)

    tab.button.click(caption, [tab.upload, tab.models, tab.prompt],
                     [tab.preview, tab.metadata, tab.cards, tab.captions_json], api_name="caption")
