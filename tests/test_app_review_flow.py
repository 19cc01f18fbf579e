"""The review workflow through the named API endpoints of a served app (gradio_client), as a
script would drive it: caption an upload and get its item id, give it a reference, review it
with categories, find it by category in the Evaluation table, export it; the queue; refusals."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from medcap.review import DEFAULT_CATEGORIES, SIGNIFICANT_COLUMN, UPLOADS_DATASET, category_column
from tests.test_app import running_app

EVIL = "see [x](http://evil.example) and ![i](http://evil.example/i.png)"


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_blip_dir, tiny_qwen2_vl_dir):
    from gradio_client import Client

    work = tmp_path_factory.mktemp("review-flow")
    with running_app(work, tiny_blip_dir, tiny_qwen2_vl_dir) as (url, studio):
        yield (lambda: Client(url, verbose=False)), studio


def png(path: Path, colour=(200, 60, 20)) -> Path:
    Image.new("RGB", (64, 48), colour).save(path)
    return path


def export_rows(client) -> tuple[list[str], list[dict[str, str]]]:
    path, message = client.predict(api_name="/export_reviews")
    assert message.startswith("Exported")
    text = Path(path).read_bytes().decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    return list(reader.fieldnames or []), list(reader)


def test_upload_is_captioned_referenced_reviewed_filtered_and_exported(served, tmp_path) -> None:
    from gradio_client import handle_file

    client_factory, studio = served
    client = client_factory()
    item_id, captions = client.predict(handle_file(str(png(tmp_path / "scan.png"))),
                                       ["blip", "qwen2-vl"], "", api_name="/caption_item")
    assert re.fullmatch(r"upload-[0-9a-f]{12}", item_id)
    assert [c["model"] for c in captions] == ["blip", "qwen2-vl"] and captions[0]["caption"]
    kept = studio.uploads.folder / item_id
    assert sorted(p.name for p in kept.iterdir()) == ["image.png", "item.json"]
    # /caption keeps its outputs: the last one is still the list of captions.
    outputs = client.predict(handle_file(str(png(tmp_path / "scan.png"))), ["blip"], "",
                             api_name="/caption")
    assert len(outputs) == 4 and outputs[3][0]["model"] == "blip"

    status = client.predict(item_id, captions[0]["caption"], api_name="/set_reference")
    assert "Reference saved" in status
    answer = client.predict(item_id, "blip", "Dr Up", "major error", "", "left, not right", 0,
                            ["wrong_laterality", "missed_finding"], True,
                            api_name="/review_save")
    assert answer["saved"], answer["message"]
    assert answer["categories"] == ["wrong_laterality", "missed_finding"]
    assert answer["collection"] == UPLOADS_DATASET and answer["significant"] is True
    got = client.predict(item_id, "blip", "Dr Up", api_name="/review_get")
    assert got["categories"] == ["wrong_laterality", "missed_finding"]

    rows, label, _ = client.predict("", "All", "All", "All", "image_id", False, 1, "All",
                                    "wrong_laterality", api_name="/query_table")
    assert label == "Rows 1–1 of 1 (page 1 of 1)"
    row = dict(zip(rows["headers"], rows["data"][0]))
    assert (row["image_id"], row["model"], row["verdict"]) == (item_id, "blip", "major error")
    assert "missed_finding" in row["errors"] and SIGNIFICANT_COLUMN in row["errors"]
    assert row["bleu4"] == pytest.approx(1.0), "scored against the reference just given"
    _, label, _ = client.predict("", "All", "All", "All", "image_id", False, 1, "All",
                                 "hallucinated_finding", api_name="/query_table")
    assert label == "No rows match."

    columns, exported = export_rows(client)
    for category in DEFAULT_CATEGORIES:
        assert columns.count(category_column(category.key)) == 1
    assert SIGNIFICANT_COLUMN in columns
    mine = next(r for r in exported if r["image_id"] == item_id)
    assert (mine["dataset"], mine["model"], mine["verdict"]) == (UPLOADS_DATASET, "blip",
                                                                 "major error")
    assert (mine["error_wrong_laterality"], mine["error_missed_finding"],
            mine["error_not_a_caption"], mine[SIGNIFICANT_COLUMN]) == ("1", "1", "0", "1")
    assert mine["ground_truth"] == captions[0]["caption"] and mine["bleu4"]


@pytest.mark.parametrize("image_id, model", [
    ("../../etc/passwd", "blip"), ("ROCOv2_2023_test_000000", "no-such-model"),
    ("x" * 100_000, "blip"), ("ROCOv2_2023_test_000000\x00", "blip"),
])
def test_review_save_refuses_unknown_items_and_models(served, image_id, model) -> None:
    client_factory, studio = served
    before = studio.store.count(include_drafts=True)
    answer = client_factory().predict(image_id, model, "Dr Probe", "correct", "", "", 0,
                                      api_name="/review_save")
    assert not answer["saved"] and answer["message"].startswith("Not saved")
    assert len(answer["message"]) < 400
    assert studio.store.count(include_drafts=True) == before


def test_unknown_category_is_refused_with_the_known_ones(served) -> None:
    client_factory, _ = served
    answer = client_factory().predict("ROCOv2_2023_test_000000", "blip", "Dr Probe", "correct",
                                      "", "", 0, ["wrong_colour"], api_name="/review_save")
    assert not answer["saved"] and "wrong_laterality" in answer["message"]


def test_queue_serves_two_reviewers_every_item_once_and_a_third_none(served) -> None:
    client_factory, studio = served
    client = client_factory()
    items = studio.queue().items
    served_to: dict[str, list[str]] = {}
    for reviewer in ("Dr Q1", "Dr Q2"):
        while True:
            answer = client.predict(reviewer, "", api_name="/next_for_me")
            if answer["image_id"] is None:
                break
            served_to.setdefault(reviewer, []).append(answer["image_id"])
            model = next(m for m in studio.slot_models
                         if studio.comparison.get(answer["image_id"]).captions.get(m))
            saved = client.predict(answer["image_id"], model, reviewer, "correct", "", "", 0,
                                   api_name="/review_save")
            assert saved["saved"], saved["message"]
        assert (answer["done"], answer["assigned"]) == (len(items), len(items))
    assert sorted(served_to["Dr Q1"]) == sorted(served_to["Dr Q2"]) == sorted(items)
    third = client.predict("Dr Q3", "", api_name="/next_for_me")
    assert third["image_id"] is None and third["assigned"] == 0


def test_other_reviewers_text_is_text_in_opened_items(served) -> None:
    client_factory, studio = served
    client = client_factory()
    image_id = "ROCOv2_2023_test_000002"
    assert client.predict(image_id, "blip", "Dr Link", "unusable", EVIL, EVIL, 0,
                          api_name="/review_save")["saved"]
    outputs = client.predict(image_id, "Dr Reader", False, api_name="/open_item")
    card = outputs[2 + 5 * studio.slot_models.index("blip")]
    assert "Dr Link" in card and "[x](http://evil.example)" in card
    assert "<a " not in card and "<img" not in card
