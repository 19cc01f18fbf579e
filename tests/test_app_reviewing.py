"""The review workflow in the Studio, without a server: uploads as a collection, refusing what
does not exist, the queue's overlap, blind labels, guidelines, escaped status lines."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from medcap.app.cards import CaptionCard, status_html
from medcap.app.guidelines import key_map, load_guidelines
from medcap.app.models import ModelPool
from medcap.app.options import AppOptions
from medcap.app.studio import Studio, UploadError, UploadResult
from medcap.app.table import TableQuery
from medcap.app.views import item_values
from medcap.config import Settings
from medcap.review import (
    DEFAULT_CATEGORIES,
    UPLOADS_DATASET,
    ErrorCategory,
    QueueSettings,
    ReviewValidationError,
    UploadStore,
)

RESULTS = pd.DataFrame({
    "image_id": ["0012", "0012", "0013", "0014", "0015"],
    "original_caption": ["CT chest", "CT chest", "MRI brain", "US liver", "X-ray hand"],
    "generated_caption": ["ct of chest", "left chest", "mri", "liver", ""],
    "processing_time_sec": [0.5, 0.7, 0.25, 1.0, 0.1],
    "model": ["blip", "qwen2-vl", "blip", "blip", "blip"],
    "modality": ["CT", "CT", "MRI", "Ultrasound", "X-ray"],
    "error": ["", "", "", "", "out of memory"],
})
EVIL = "[x](http://evil.example) ![i](http://evil.example/i.png) <img src=x onerror=alert(1)>"


def make_studio(tmp_path: Path, keep: bool = True, overlap: int = 2) -> Studio:
    results = tmp_path / "results.csv"
    RESULTS.to_csv(results, index=False)
    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        runs_dir=tmp_path / "runs")
    return Studio(settings, AppOptions(results_csv=results, dataset_label="roco", examples=[],
                                       export_dir=tmp_path / "exports"), pool=ModelPool([]),
                  uploads=UploadStore(tmp_path / "uploads", keep=keep),
                  queue_settings=QueueSettings(overlap=overlap, order="id"))


@pytest.fixture()
def studio(tmp_path: Path) -> Studio:
    return make_studio(tmp_path)


def uploaded(studio: Studio, session: str = "tab-1", colour=(120, 30, 30)) -> str:
    """What the Caption tab files after captioning: display image, metadata, two cards."""
    result = UploadResult(
        preview=Image.new("L", (40, 32), colour[0]),
        metadata={"modality": "CT", "PatientName": "Doe^Jane", "study_description": "Jane's CT",
                  "image_size": "40 × 32"},
        cards=[CaptionCard("blip", "left lung nodule", 0.4),
               CaptionCard("qwen2-vl", "right lung nodule", 0.9)],
        source_format="dicom")
    return studio.keep_upload(result, session=session)


def test_an_upload_becomes_a_reviewable_scored_exported_item(studio: Studio) -> None:
    item_id = uploaded(studio)
    folder = studio.uploads.folder / item_id
    assert sorted(p.name for p in folder.iterdir()) == ["image.png", "item.json"]
    stored = json.loads((folder / "item.json").read_text(encoding="utf-8"))
    assert "Doe" not in json.dumps(stored) and "Jane" not in json.dumps(stored)
    assert stored["metadata"]["modality"] == "CT"
    assert UPLOADS_DATASET in studio.collections and studio.collection_of(item_id) == UPLOADS_DATASET
    view = studio.open_item(item_id, "Dr Ada")
    assert view.collection == UPLOADS_DATASET and view.image is not None
    assert [s.card.caption for s in view.slots] == ["left lung nodule", "right lung nodule"]
    assert view.slots[0].card.scores == {}, "no reference yet: nothing to score against"
    studio.set_reference(item_id, "Right lung nodule.")
    scored = studio.open_item(item_id, "Dr Ada").slots[1].card.scores
    assert scored and scored["bleu4"] > 0
    outcome = studio.save_review(item_id, "blip", "Dr Ada", "major error", "", "", 0,
                                 categories=("wrong_laterality",), significant=True)
    assert outcome.review.key.dataset == UPLOADS_DATASET
    assert outcome.review.context.ground_truth == "Right lung nodule."
    page = studio.query_table(TableQuery(category="wrong_laterality"))
    assert [(r.image_id, r.model) for r in page.rows.itertuples()] == [(item_id, "blip")]
    assert studio.query_table(TableQuery(category="clinically_significant")).matching_rows == 1
    assert studio.query_table(TableQuery(category="missed_finding")).matching_rows == 0
    exported = pd.read_csv(studio.export_reviews(), encoding="utf-8-sig", dtype=str)
    row = exported.set_index("image_id").loc[item_id]
    assert (row["dataset"], row["error_wrong_laterality"], row["clinically_significant"]) == (
        UPLOADS_DATASET, "1", "1")


def test_uploads_of_a_closed_tab_are_forgotten_when_not_kept(tmp_path: Path) -> None:
    studio = make_studio(tmp_path, keep=False)
    mine = uploaded(studio, session="tab-1")
    other = uploaded(studio, session="tab-2", colour=(10, 200, 10))
    assert studio.query_table(TableQuery(search="upload-")).matching_rows == 4
    assert studio.forget_session("tab-1") == 1
    assert studio.uploads.get(mine) is None and studio.uploads.get(other) is not None
    assert not (studio.uploads.folder / mine).exists()
    assert studio.query_table(TableQuery(search="upload-")).matching_rows == 2
    with pytest.raises(UploadError, match="No image with id"):
        studio.open_item(mine, "Dr Ada")


def test_kept_uploads_survive_a_closed_tab(studio: Studio) -> None:
    item_id = uploaded(studio, session="tab-1")
    assert studio.forget_session("tab-1") == 0
    assert studio.uploads.get(item_id) is not None


@pytest.mark.parametrize("image_id, model, message", [
    ("../../etc/passwd", "blip", "no image with id"),
    ("0012", "no-such-model", "unknown model"),
    ("00\n12", "blip", "no image with id"),
    ("x" * 10_000, "blip", "no image with id"),
    ("0015", "blip", "has no caption"),  # the model failed on this image
    ("upload-0123456789ab", "blip", "no image with id"),
])
def test_reviews_of_things_that_do_not_exist_are_refused(studio: Studio, image_id, model,
                                                         message) -> None:
    with pytest.raises(ReviewValidationError, match=message) as refused:
        studio.save_review(image_id, model, "Dr Ada", "correct", "", "", 0)
    assert len(str(refused.value)) < 400, "the message quotes a bounded piece of the input"
    assert studio.store.count(include_drafts=True) == 0


def test_unknown_collection_is_refused(studio: Studio) -> None:
    with pytest.raises(ReviewValidationError, match="Unknown collection"):
        studio.save_review("0012", "blip", "Dr Ada", "correct", "", "", 0, collection="../x")


def test_two_reviewers_with_overlap_two_get_every_item_once_and_a_third_none(
        studio: Studio) -> None:
    captioned = ["0012", "0013", "0014"]  # 0015 has no caption: nothing to review
    served: dict[str, list[str]] = {}
    for reviewer in ("Dr Ada", "Dr Bo"):
        while True:
            image_id, progress = studio.next_for(reviewer)
            if image_id is None:
                break
            served.setdefault(reviewer, []).append(image_id)
            studio.save_review(image_id, "blip", reviewer, "correct", "", "", 0)
        assert (progress.done, progress.assigned) == (3, 3)
    assert served == {"Dr Ada": captioned, "Dr Bo": captioned}
    assert studio.next_for("Dr Cy") == (None, studio.queue().progress("Dr Cy"))
    assert studio.queue().progress("Dr Cy").assigned == 0


def test_blind_labels_until_the_reviewer_finished_the_item(studio: Studio) -> None:
    hidden = studio.open_item("0012", "Dr Ada", blind=True)
    assert [s.label for s in hidden.slots] == ["Caption A", "Caption B"] and hidden.blind
    order = [s.model for s in hidden.slots]
    assert [s.model for s in studio.open_item("0012", "dr  ada", blind=True).slots] == order
    html = "".join(s.card_html for s in item_values(hidden).slots)
    assert "blip" not in html and "qwen2-vl" not in html
    studio.save_review("0012", order[0], "Dr Ada", "correct", "", "", 0)
    assert studio.open_item("0012", "Dr Ada", blind=True).blind, "one of two captions judged"
    studio.save_review("0012", order[1], "Dr Ada", "minor error", "", "", 0)
    revealed = studio.open_item("0012", "Dr Ada", blind=True)
    assert not revealed.blind and [s.label for s in revealed.slots] == order
    orders = {tuple(s.model for s in studio.open_item("0012", f"Dr {n}", blind=True).slots)
              for n in range(12)}
    assert len(orders) == 2, "the order differs between reviewers"


def test_preference_reveals_names_and_refuses_a_missing_caption(studio: Studio) -> None:
    view = studio.open_item("0012", "Dr Ada", blind=True)
    a, b = (s.model for s in view.slots)
    studio.save_preference("0012", a, b, "Dr Ada", "A better")
    assert not studio.open_item("0012", "Dr Ada", blind=True).blind
    with pytest.raises(ReviewValidationError, match="no caption"):
        studio.save_preference("0013", "blip", "qwen2-vl", "Dr Ada", "tie")


def test_status_lines_show_user_text_as_text() -> None:
    shown = status_html("Not saved: note: " + EVIL, "warning")
    assert "<img" not in shown and "<a" not in shown
    assert "[x](http://evil.example)" in shown and "&lt;img src=x" in shown


def test_other_reviewers_notes_are_escaped_in_cards(studio: Studio) -> None:
    studio.save_review("0012", "blip", "Dr Evil", "unusable", "", EVIL, 0)
    card = item_values(studio.open_item("0012", "Dr Ada")).slots[0].card_html
    assert "<img" not in card and "<a " not in card
    assert "![i](http://evil.example/i.png)" in card


def test_guidelines_come_from_a_file_and_list_the_configured_keys(tmp_path: Path) -> None:
    categories = (ErrorCategory("wrong_view", "Wrong [view]", "c"),)
    path = tmp_path / "guide.md"
    path.write_text("# Our rules\nBe kind.", encoding="utf-8")
    text = load_guidelines(categories, {"MEDCAP_GUIDELINES": str(path)})
    assert text.startswith("# Our rules") and "`c`" in text
    assert key_map(categories).significant == "x", "c is taken by a category"
    assert "could not read" in load_guidelines(DEFAULT_CATEGORIES,
                                               {"MEDCAP_GUIDELINES": str(tmp_path / "no")}).lower()
    assert key_map(DEFAULT_CATEGORIES).categories == tuple(c.shortcut for c in DEFAULT_CATEGORIES)


def test_a_new_upload_does_not_reread_every_review(studio: Studio, monkeypatch) -> None:
    studio.save_review("0012", "blip", "Dr Ada", "major error", "", "", 0,
                       categories=("wrong_laterality",))
    assert studio.query_table(TableQuery(category="wrong_laterality")).matching_rows == 1

    def everything(*args, **kwargs):
        raise AssertionError("an upload must not reread every review")

    monkeypatch.setattr(studio.store, "iter_reviews", everything)
    item_id = uploaded(studio)
    studio.save_review(item_id, "qwen2-vl", "Dr Ada", "minor error", "", "", 0,
                       categories=("wrong_laterality",))
    page = studio.query_table(TableQuery(category="wrong_laterality"))
    assert sorted(page.rows["image_id"]) == ["0012", item_id]
    studio.set_reference(item_id, "left lung nodule")
    assert studio.query_table(TableQuery(verdict="minor error")).matching_rows == 1


def test_uploads_alone_work_without_a_dataset(tmp_path: Path) -> None:
    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        runs_dir=tmp_path / "runs")
    studio = Studio(settings, AppOptions(examples=[]), pool=ModelPool([]),
                    uploads=UploadStore(tmp_path / "uploads"))
    assert studio.collections == [UPLOADS_DATASET]
    item_id = uploaded(studio)
    assert studio.open_item(item_id, "Dr Ada").collection == UPLOADS_DATASET
    assert studio.next_for("Dr Ada")[0] == item_id
    studio.save_review(item_id, "blip", "Dr Ada", "correct", "", "", 0)
    assert studio.query_table(TableQuery(verdict="correct")).matching_rows == 1
    assert studio.summary().set_index("model").loc["blip", "correct"] == 1
