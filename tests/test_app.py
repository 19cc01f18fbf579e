"""The app served on 127.0.0.1 with tiny models, driven through gradio_client.

Covers the issue's acceptance path: caption an image (and a DICOM file when the data layer is
installed), save reviews from two clients at once, reopen them, export the CSV and check it.
"""

from __future__ import annotations

import contextlib
import csv
import importlib.util
import io
import threading
from pathlib import Path
from typing import Iterator

import pandas as pd
import pytest
from PIL import Image

from medcap.app.options import AppOptions
from medcap.app.studio import Studio
from medcap.config import Settings
from medcap.review import UPLOADS_DATASET

HAS_DATA_LAYER = importlib.util.find_spec("medcap.data") is not None
INJECTION = '=HYPERLINK("http://evil.example","click")'


def write_rocov2_parquet(path: Path, rows: int = 4) -> Path:
    """A small parquet file in the ROCOv2 schema (image struct with bytes, image_id, caption, cui)."""
    colours = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (120, 120, 120)]
    records = []
    for index in range(rows):
        buffer = io.BytesIO()
        Image.new("L" if index == 3 else "RGB", (48, 40),
                  colours[index][0] if index == 3 else colours[index]).save(buffer, "PNG")
        records.append({
            "image": {"bytes": buffer.getvalue(), "path": f"img{index}.png"},
            "image_id": f"ROCOv2_2023_test_{index:06d}",
            "caption": ["Axial CT of the chest.", "MRI of the brain.", "Chest x-ray.",
                        "Ultrasound of the liver."][index],
            "cui": [["C0040405"], ["C0024485"], ["C1306645"], ["C0041618"]][index],
        })
    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(records).to_parquet(path)
    return path


def write_results(path: Path) -> Path:
    rows = [
        ("ROCOv2_2023_test_000000", "Axial CT of the chest.", "ct of the chest", "blip", "CT"),
        ("ROCOv2_2023_test_000000", "Axial CT of the chest.", INJECTION, "qwen2-vl", "CT"),
        ("ROCOv2_2023_test_000001", "MRI of the brain.", "mri of the brain", "blip", "MRI"),
        ("ROCOv2_2023_test_000002", "Chest x-ray.", "chest radiograph", "blip", "X-ray"),
    ]
    frame = pd.DataFrame(rows, columns=["image_id", "original_caption", "generated_caption",
                                        "model", "modality"])
    frame["processing_time_sec"] = 0.5
    frame["timestamp"] = "2026-11-23T00:00:00+00:00"
    frame["split"] = "test"
    frame.to_csv(path, index=False)
    return path


def launch_app(work: Path, blip_dir: Path, qwen_dir: Path, **option_overrides):
    """Build the studio over tiny models, the results CSV and (with medcap.data) a parquet
    sample, launch it on 127.0.0.1 and return (demo, url, studio). GRADIO_TEMP_DIR must be set.
    `option_overrides`: AppOptions fields (upload limits, say) for one test's own server."""
    import app
    from medcap.app.launch import launch_kwargs

    data_source = None
    if HAS_DATA_LAYER:
        data_source = str(write_rocov2_parquet(work / "roco" / "test.parquet").parent)
    settings = Settings(
        model_names=[f"blip={blip_dir}", f"qwen2-vl={qwen_dir}", "blip2-lora"],
        data_source=data_source, data_split="test", reviews_db=work / "reviews.sqlite",
        runs_dir=work / "runs", check_memory=False)
    options = AppOptions(results_csv=write_results(work / "results.csv"),
                         dataset_label="roco-test", export_dir=work / "gradio-tmp" / "exports",
                         examples=[], **option_overrides)
    studio = Studio(settings, options)
    demo = app.build_demo(studio)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                            **app.LAUNCH_OPTIONS, **launch_kwargs(options))
    return demo, url, studio


@contextlib.contextmanager
def running_app(work: Path, blip_dir: Path, qwen_dir: Path,
                **option_overrides) -> Iterator[tuple[str, Studio]]:
    """(url, studio) of an app launched by `launch_app` with its own GRADIO_TEMP_DIR under
    `work`; closed, and the environment restored, on exit."""
    monkey = pytest.MonkeyPatch()
    monkey.setenv("GRADIO_TEMP_DIR", str(work / "gradio-tmp"))
    try:
        demo, url, studio = launch_app(work, blip_dir, qwen_dir, **option_overrides)
        try:
            yield url, studio
        finally:
            demo.close()
    finally:
        monkey.undo()


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_blip_dir, tiny_qwen2_vl_dir):
    """(client factory, studio, work dir, url) for an app launched once for this module."""
    from gradio_client import Client

    work = tmp_path_factory.mktemp("app")
    with running_app(work, tiny_blip_dir, tiny_qwen2_vl_dir) as (url, studio):
        yield (lambda: Client(url, verbose=False)), studio, work, url


def png(path: Path) -> Path:
    Image.new("RGB", (64, 48), (90, 40, 160)).save(path)
    return path


def test_caption_endpoint_returns_one_caption_per_model(served, tmp_path) -> None:
    from gradio_client import handle_file

    client_factory, *_ = served
    result = client_factory().predict(handle_file(str(png(tmp_path / "scan.png"))),
                                      ["blip", "qwen2-vl"], "Describe the scan.",
                                      api_name="/caption")
    captions = result[3]
    assert [c["model"] for c in captions] == ["blip", "qwen2-vl"]
    for entry in captions:
        assert entry["error"] == ""
        assert entry["caption"].strip()
        assert entry["seconds"] > 0
    assert 'data-model="blip"' in result[2] and 'data-model="qwen2-vl"' in result[2]


def test_model_that_cannot_load_is_a_message_on_its_card(served, tmp_path) -> None:
    from gradio_client import handle_file

    client_factory, *_ = served
    result = client_factory().predict(handle_file(str(png(tmp_path / "scan.png"))),
                                      ["blip2-lora", "blip"], "", api_name="/caption")
    lora, blip = result[3]
    assert "needs a LoRA adapter" in lora["error"] and lora["caption"] == ""
    assert blip["error"] == "" and blip["caption"]


def test_upload_that_is_not_an_image_is_refused_clearly(served, tmp_path) -> None:
    from gradio_client import handle_file

    client_factory, *_ = served
    fake = tmp_path / "notes.png"
    fake.write_text("this is not a picture")
    with pytest.raises(Exception) as caught:
        client_factory().predict(handle_file(str(fake)), ["blip"], "", api_name="/caption")
    assert "notes.png" in str(caught.value)
    assert "gradio" not in str(caught.value).lower(), "no server temp paths in the message"


@pytest.mark.skipif(not HAS_DATA_LAYER, reason="DICOM reading comes with medcap.data")
def test_caption_dicom_shows_metadata_without_patient_identifiers(served) -> None:
    from gradio_client import handle_file
    from pydicom.data import get_testdata_file

    client_factory, *_ = served
    dicom = get_testdata_file("CT_small.dcm")
    result = client_factory().predict(handle_file(dicom), ["blip"], "", api_name="/caption")
    metadata_html = result[1]
    assert "CT" in metadata_html
    assert "CompressedSamples" not in metadata_html  # the file's PatientName
    assert result[3][0]["caption"]


def test_two_clients_saving_at_once_never_overwrite_each_other(served) -> None:
    client_factory, studio, *_ = served
    image_id = "ROCOv2_2023_test_000000"
    barrier = threading.Barrier(2)
    answers: dict[str, dict] = {}

    def save(reviewer: str, verdict: str, note: str) -> None:
        client = client_factory()
        barrier.wait()
        answers[reviewer] = client.predict(image_id, "blip", reviewer, verdict, "", note, 0,
                                           api_name="/review_save")

    threads = [threading.Thread(target=save, args=("Dr Ada", "correct", "fine")),
               threading.Thread(target=save, args=("Dr Bo", "major error", "wrong plane"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers["Dr Ada"]["saved"] and answers["Dr Bo"]["saved"]
    reopened = client_factory().predict(image_id, "blip", "Dr Bo", api_name="/review_get")
    assert (reopened["verdict"], reopened["note"], reopened["version"]) == (
        "major error", "wrong plane", 1)
    assert {r.key.reviewer for r in studio.store.reviews_for_item("roco-test", image_id)} >= {
        "Dr Ada", "Dr Bo"}


def test_same_reviewer_in_two_tabs_gets_a_conflict_not_an_overwrite(served) -> None:
    client_factory, *_ = served
    first, second = client_factory(), client_factory()
    image_id = "ROCOv2_2023_test_000001"
    opened = first.predict(image_id, "blip", "Dr Cy", api_name="/review_get")
    assert opened["version"] == 0
    barrier = threading.Barrier(2)
    answers = []

    def save(client, verdict):
        barrier.wait()
        answers.append(client.predict(image_id, "blip", "Dr Cy", verdict, "", "", 0,
                                      api_name="/review_save"))

    threads = [threading.Thread(target=save, args=(first, "correct")),
               threading.Thread(target=save, args=(second, "unusable"))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    saved = [a for a in answers if a["saved"]]
    refused = [a for a in answers if not a["saved"]]
    assert len(saved) == 1 and len(refused) == 1
    assert "Not saved" in refused[0]["message"]
    assert refused[0]["current"]["verdict"] == saved[0]["verdict"]


def test_saved_review_reappears_when_the_item_is_opened_again(served) -> None:
    client_factory, studio, *_ = served
    client = client_factory()
    image_id = "ROCOv2_2023_test_000002"
    answer = client.predict(image_id, "blip", "Dr Dee", "minor error", "Frontal chest radiograph.",
                            "Läsion? 肺", 0, api_name="/review_save")
    assert answer["saved"] and answer["version"] == 1
    outputs = client.predict(image_id, "Dr Dee", False, api_name="/open_item")  # not blind
    # open_item outputs (states are not sent): image, ground truth, then per model slot:
    # card, verdict, corrected caption, note, status; then image id box and status line,
    # collection, and per slot: categories, significant.
    slot = studio.slot_models.index("blip")
    card, verdict, corrected, note, status = outputs[2 + slot * 5: 2 + slot * 5 + 5]
    assert (verdict, corrected, note) == ("minor error", "Frontal chest radiograph.", "Läsion? 肺")
    assert "version 1" in status
    assert "chest" in card and "mc-shared" in card, "shared words are highlighted"
    assert "Chest x-ray." in outputs[1]


def test_half_written_review_is_kept_as_draft(served) -> None:
    client_factory, *_ = served
    answer = client_factory().predict("ROCOv2_2023_test_000001", "blip", "Dr Eve", "",
                                      "MRI brain, axial", "", 0, api_name="/review_save")
    assert answer["saved"] and answer["status"] == "draft"
    assert "choose a verdict" in answer["message"]
    refused = client_factory().predict("ROCOv2_2023_test_000001", "blip", "", "correct", "", "",
                                       0, api_name="/review_save")
    assert not refused["saved"] and "Enter your name" in refused["message"]


def test_export_is_spreadsheet_safe_and_complete(served) -> None:
    client_factory, *_ = served
    client = client_factory()
    answer = client.predict("ROCOv2_2023_test_000000", "qwen2-vl", "@Dr Fox", "unusable",
                            "-Axial CT of the chest", "+1 see report", 0, api_name="/review_save")
    assert answer["saved"]
    path, message = client.predict(api_name="/export_reviews")
    assert message.startswith("Exported")
    raw = Path(path).read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    fox = next(r for r in rows if r["reviewer"] == "'@Dr Fox")
    assert fox["generated_caption"] == "'" + INJECTION
    assert fox["corrected_caption"] == "'-Axial CT of the chest"
    assert fox["note"] == "'+1 see report"
    assert (fox["image_id"], fox["modality"], fox["ground_truth"], fox["verdict"]) == (
        "ROCOv2_2023_test_000000", "CT", "Axial CT of the chest.", "unusable")
    assert fox["reviewed_at"]
    assert all(r["verdict"] for r in rows), "drafts are not exported"
    for column in ("image_id", "modality", "ground_truth", "model", "generated_caption",
                   "verdict", "corrected_caption", "note", "reviewer", "reviewed_at"):
        assert column in rows[0]


def upload_rows(studio: Studio) -> int:
    """Evaluation rows of the uploads collection: one per model caption."""
    uploads = studio.comparison_for(UPLOADS_DATASET)
    return sum(len(uploads.pairs(model)) for model in studio.slot_models)


def test_evaluation_tab_pages_and_filters_server_side(served) -> None:
    client_factory, studio, *_ = served
    client = client_factory()
    opened = client.predict(api_name="/open_evaluation")
    summary, label = opened[0], opened[6]
    rows = 4 + upload_rows(studio)  # captioned uploads are reviewable rows too
    assert label == f"Rows 1–{rows} of {rows} (page 1 of 1)"
    assert {row[0] for row in summary["data"]} >= {"blip", "qwen2-vl"}
    rows, label, page = client.predict("rocov2", "qwen2-vl", "All", "All", "image_id", False, 1,
                                       api_name="/query_table")  # dataset ids, not uploads
    assert label == "Rows 1–1 of 1 (page 1 of 1)"
    assert rows["data"][0][0] == "ROCOv2_2023_test_000000"


@pytest.mark.skipif(not HAS_DATA_LAYER, reason="dataset images come through medcap.data")
def test_missing_captions_are_generated_on_demand(served) -> None:
    client_factory, studio, *_ = served
    image_id = "ROCOv2_2023_test_000003"  # in the parquet sample, not in the results CSV
    assert studio.comparison.get(image_id).captions == {}
    outputs = client_factory().predict(image_id, "", api_name="/generate_missing")
    status = outputs[2 + 5 * len(studio.slot_models) + 1]  # after the slots and the id box
    assert "Generated: blip, qwen2-vl" in status
    assert set(studio.comparison.get(image_id).captions) == {"blip", "qwen2-vl"}


def test_page_config_carries_the_disclaimer(served) -> None:
    import urllib.request

    *_, url = served
    with urllib.request.urlopen(url + "config") as response:
        config = response.read().decode("utf-8")
    assert "not a medical device" in config
    assert "Research and teaching tool" in config
