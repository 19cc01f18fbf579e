"""Caption tab: upload an image or DICOM file and caption it with the chosen models; the
captioned upload becomes an item of the "uploads" collection, reviewable in Compare.

Cards fill word by word: the Caption event is a generator over `Studio.stream_upload`, and the
Stop button sets this browser session's stop event, which ends the running caption where it is
(the words so far stay on the card) and skips the models not yet started; a stopped upload is
not filed as an item. Many users' requests run at once here; each model's `GenerationLoop`
batches them, so the event's concurrency limit only bounds how many wait. The scripted
`/caption` endpoint is the same event: a client gets the last output, the whole captions.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any, Iterator

import gradio as gr

from medcap.app.cards import status_html
from medcap.app.examples import stage_examples
from medcap.app.options import UPLOAD_FILE_TYPES, UPLOAD_LABEL
from medcap.app.studio import Studio, UploadError
from medcap.app.tabs.common import progress_callback, user_error, without_empty_temp_files
from medcap.app.views import upload_values
from medcap.review import UPLOADS_DATASET


@dataclass(frozen=True)
class CaptionTab:
    """The Caption tab's inputs and outputs (the `/caption` endpoint's, in order)."""

    upload: gr.File
    models: gr.CheckboxGroup
    prompt: gr.Textbox
    button: gr.Button
    stop: gr.Button
    preview: gr.Image
    metadata: gr.HTML
    cards: gr.HTML
    captions_json: gr.JSON
    item: "UploadItemPanel"


def model_choices(studio: Studio) -> list[tuple[str, str]]:
    """(shown, value) per model. Available models first, one too big for this machine's memory
    saying what it needs; unavailable ones stay pickable after them (their card says why)."""
    pool = studio.pool
    return [*pool.picker_choices(), *((p, p) for p in pool.problems if p not in pool.labels)]


def model_notes_html(problems: dict[str, str], too_big: dict[str, str]) -> str:
    """Why models cannot caption here, escaped (messages hold paths and "~" that Markdown
    would turn into links or strike-through)."""
    notes = {**problems, **too_big}
    items = [f"<li><strong>{html.escape(name)}</strong> unavailable: {html.escape(why)}</li>"
             for name, why in notes.items()]
    return f"<ul>{''.join(items)}</ul>"


def build_caption_tab(studio: Studio) -> CaptionTab:
    """The Caption tab and its `/caption` endpoint. Models too big for this machine's memory
    are marked while the page is built (`medcap.models.fit` needs no torch), and the first
    model that fits is ticked."""
    models = model_choices(studio)
    too_big = studio.pool.too_big()
    first = [value for _, value in models if value not in too_big][:1]
    with gr.Tab("Caption", id="caption"):
        with gr.Row():
            with gr.Column(scale=1):
                upload = without_empty_temp_files(gr.File(
                    label=UPLOAD_LABEL, file_types=UPLOAD_FILE_TYPES, type="filepath",
                    elem_id="upload"))
                chosen = gr.CheckboxGroup(models, value=first, label="Models",
                                          elem_id="caption-models")
                prompt = gr.Textbox(studio.pool.default_prompt(), lines=3,
                                    label="Prompt (Qwen2-VL)",
                                    visible=bool(studio.pool.prompted_labels()))
                with gr.Row():
                    button = gr.Button("Caption", variant="primary", elem_id="caption-button")
                    stop = gr.Button("Stop", variant="stop", elem_id="stop-button", scale=0)
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
                item = build_upload_item_panel()
        gr.HTML(model_notes_html(studio.pool.problems, too_big), elem_id="model-notes",
                visible=bool(studio.pool.problems or too_big))
    tab = CaptionTab(upload, chosen, prompt, button, stop, preview, metadata, cards,
                     captions_json, item)
    _wire_caption(studio, tab)
    _wire_upload_item(studio, tab)
    return tab


def _wire_caption(studio: Studio, tab: CaptionTab) -> None:
    def caption(path, labels, prompt_text, request: gr.Request) -> Iterator[Any]:
        session = _session(request)
        stop = studio.stops.start(session)
        try:
            result = None
            for index, result in enumerate(
                    studio.stream_upload(path, labels or [], prompt_text, stop, session)):
                values = upload_values(result)
                if index == 0:  # preview and metadata once, then only the cards change
                    yield *values, gr.skip()
                else:
                    yield gr.skip(), gr.skip(), values[2], gr.skip(), gr.skip()
            if result is not None:  # the last output holds everything: what API clients get
                item_id = "" if stop.is_set() else keep_upload(studio, result, request)
                yield *upload_values(result), item_id
        except UploadError as exc:
            raise user_error(exc) from exc
        finally:
            studio.stops.finish(session, stop)

    def stop_captions(request: gr.Request) -> None:
        studio.stops.stop(_session(request))

    settings = studio.pool.loop_settings
    event = tab.button.click(caption, [tab.upload, tab.models, tab.prompt],
                             [tab.preview, tab.metadata, tab.cards, tab.captions_json,
                              tab.item.item_state], api_name="caption", show_progress="minimal",
                             concurrency_limit=max(4, 2 * settings.max_batch_size))
    event.then(tab.item.shown, tab.item.item_state, tab.item.outputs, api_visibility="private")
    # Its own concurrency group without a limit: a Stop is never queued behind captions.
    tab.stop.click(stop_captions, None, None, api_visibility="private",
                   concurrency_id="caption-stop", concurrency_limit=None, show_progress="hidden")


def _session(request: gr.Request | None) -> str:
    return str(getattr(request, "session_hash", "") or id(request))

# -- the upload as a reviewable item ------------------------------------------------------------


@dataclass(frozen=True)
class UploadItemPanel:
    """Under the cards: the captioned upload's item id, its reference caption, and the way to
    review it (`/caption_item`, `/set_reference`)."""

    item_state: gr.State  # the last captioned upload's id (an output of `/caption`, not shown)
    item_id: gr.Textbox
    reference: gr.Textbox
    save_reference: gr.Button
    review: gr.Button
    status: gr.HTML
    api_button: gr.Button  # hidden: carries the `/caption_item` endpoint

    @property
    def outputs(self) -> list:
        return [self.item_id, self.reference, self.status]

    def shown(self, item_id: str) -> tuple:
        if not item_id:
            return gr.skip(), gr.skip(), gr.skip()
        return item_id, "", status_html(
            f"Kept for review as {item_id} in the uploads collection (the display image and "
            "non-identifying metadata only). Add a reference caption to score the captions.")


def build_upload_item_panel() -> UploadItemPanel:
    with gr.Group():
        item_state = gr.State("")
        with gr.Row():
            item_id = gr.Textbox(label="Review id (uploads collection)", interactive=False,
                                 elem_id="upload-item-id", scale=1)
            reference = gr.Textbox(label="Reference caption (optional; then the captions are "
                                         "scored like a dataset item's)",
                                   elem_id="upload-reference", scale=3)
        with gr.Row():
            save_reference = gr.Button("Save reference", elem_id="save-reference")
            review = gr.Button("Review in Compare", elem_id="review-upload")
            api_button = gr.Button(visible=False)
        status = gr.HTML(elem_id="upload-item-status")
    return UploadItemPanel(item_state, item_id, reference, save_reference, review, status,
                           api_button)


def keep_upload(studio: Studio, result, request: gr.Request | None) -> str:
    """File the captioned upload under this browser session (MEDCAP_KEEP_UPLOADS=0 forgets it
    when the tab closes: see `forget_session_on_unload`)."""
    session = (getattr(request, "session_hash", None) or "") if request is not None else ""
    return studio.keep_upload(result, session=session)


def _wire_upload_item(studio: Studio, tab: CaptionTab) -> None:
    panel = tab.item

    def caption_item(path, labels, prompt_text, request: gr.Request, progress=gr.Progress()):
        """For scripts: caption an upload and get its item id with the captions."""
        try:
            result = studio.caption_upload(path, labels or [], prompt_text,
                                           progress_callback(progress), _session(request))
            item_id = keep_upload(studio, result, request)
        except UploadError as exc:
            raise user_error(exc) from exc
        return item_id, upload_values(result)[3]

    def set_reference(item_id, text):
        try:
            return status_html(studio.set_reference(item_id or "", text or ""), "ok")
        except UploadError as exc:
            return status_html(str(exc), "error")

    panel.api_button.click(caption_item, [tab.upload, tab.models, tab.prompt],
                           [panel.item_id, tab.captions_json], api_name="caption_item")
    panel.save_reference.click(set_reference, [panel.item_id, panel.reference], panel.status,
                               api_name="set_reference")
    panel.reference.submit(set_reference, [panel.item_id, panel.reference], panel.status,
                           api_visibility="private")


def wire_review_in_compare(studio: Studio, tab: CaptionTab, compare, tabs: gr.Tabs) -> None:
    """"Review in Compare" opens the captioned upload in the Compare tab."""

    def review(item_id, name, blind, profile: gr.OAuthProfile | None):
        if not item_id:
            return {tab.item.status: status_html("Caption an image first.", "warning")}
        values = compare.open_item(studio, item_id, name, collection=UPLOADS_DATASET,
                                   blind=blind, profile=profile)
        return {tabs: gr.Tabs(selected="compare"), **values}

    tab.item.review.click(review, [tab.item.item_id, compare.reviewer, compare.blind],
                          [tabs, tab.item.status, *compare.open_outputs],
                          api_visibility="private")


def forget_session_on_unload(studio: Studio, demo: gr.Blocks) -> None:
    """With MEDCAP_KEEP_UPLOADS=0 a closed browser tab takes its uploads with it."""

    def forget(request: gr.Request) -> None:
        studio.forget_session(getattr(request, "session_hash", "") or "")

    demo.unload(forget)
