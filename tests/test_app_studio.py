"""Studio and comparison set without a server: joining data, navigation, generation, views."""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from medcap.app.comparison import build_comparison_set, items_from_results
from medcap.app.models import ModelPool
from medcap.app.options import AppOptions
from medcap.app.studio import Studio, UploadError
from medcap.app.table import ALL
from medcap.app.views import item_values, save_values
from medcap.config import Settings
from medcap.models import resolve_spec
from medcap.review import ReviewConflict, ReviewStore
from medcap.results import read_results_csv


@dataclass
class FakeLoaded:
    image: Image.Image
    display: Image.Image


@dataclass
class FakeRecord:
    """Stands in for medcap.data.Record: same attributes, an in-memory image."""

    image_id: str
    caption: str
    modality: str
    loads: int = 0

    def load(self) -> FakeLoaded:
        self.loads += 1
        image = Image.new("RGB", (40, 40), (10, 120, 200))
        return FakeLoaded(image, image)


RESULTS = pd.DataFrame({
    "image_id": ["0012", "0012", "0013", "0014"],
    "original_caption": ["CT chest", "CT chest", "MRI brain", "US liver"],
    "generated_caption": ["ct of chest", "", "mri", "liver"],
    "processing_time_sec": [0.5, 0.0, 0.25, 1.0],
    "model": ["blip", "qwen2-vl", "blip", "blip"],
    "modality": ["CT", "CT", "MRI", "Ultrasound"],
    "error": ["", "out of memory", "", ""],
})


def test_results_are_grouped_per_image_with_errors_apart(tmp_path: Path) -> None:
    path = tmp_path / "results.csv"
    RESULTS.to_csv(path, index=False)
    frame = read_results_csv(path)
    items = items_from_results(frame)
    assert list(items) == ["0012", "0013", "0014"], "leading zeros in ids survive"
    first = items["0012"]
    assert first.captions == {"blip": "ct of chest"}
    assert first.errors == {"qwen2-vl": "out of memory"}
    assert first.seconds == {"blip": 0.5}
    assert (first.ground_truth, first.modality) == ("CT chest", "CT")


def test_not_a_results_csv_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.csv"
    pd.DataFrame({"a": [1]}).to_csv(path, index=False)
    with pytest.raises(ValueError, match="not a results CSV"):
        read_results_csv(path)


def test_records_join_results_and_come_first() -> None:
    records = [FakeRecord("9999", "Chest film", "X-ray"), FakeRecord("0013", "MRI of brain", "MRI")]
    comparison = build_comparison_set("roco", RESULTS, records)
    assert comparison.ids() == ["9999", "0013", "0012", "0014"]
    joined = comparison.get("0013")
    assert joined.record is records[1] and joined.captions == {"blip": "mri"}
    assert joined.ground_truth == "MRI of brain", "the dataset's caption is the ground truth"
    assert comparison.models == ["blip", "qwen2-vl"]
    assert comparison.modalities == ["CT", "MRI", "Ultrasound", "X-ray"]


def test_navigation_wraps_and_respects_the_modality_filter() -> None:
    comparison = build_comparison_set("roco", RESULTS)
    assert comparison.step("0012", 1) == "0013"
    assert comparison.step("0014", 1) == "0012"
    assert comparison.step("0012", -1) == "0014"
    assert comparison.step("nope", 1) == "0012"
    assert comparison.step("0012", 1, "MRI") == "0013", "an id outside the filter starts over"
    assert comparison.ids("CT") == ["0012"]
    assert comparison.step(None, 1, "PET") is None
    rng = random.Random(0)
    assert {comparison.random_id(ALL, rng, avoid="0012") for _ in range(20)} == {"0013", "0014"}


@pytest.fixture()
def studio(tmp_path: Path, tiny_blip_dir: Path) -> Studio:
    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        runs_dir=tmp_path / "runs")
    results = tmp_path / "results.csv"
    RESULTS.to_csv(results, index=False)
    pool = ModelPool([resolve_spec("blip", str(tiny_blip_dir))])
    studio = Studio(settings, AppOptions(results_csv=results, dataset_label="roco", examples=[],
                                         export_dir=tmp_path / "exports"),
                    pool=pool, store=ReviewStore(tmp_path / "r.sqlite"))
    record = FakeRecord("7777", "Axial CT of the abdomen", "CT")
    studio._comparison = build_comparison_set("roco", studio.results, [record])
    return studio


def test_nothing_heavy_happens_before_first_use(tmp_path: Path, tiny_blip_dir: Path) -> None:
    settings = Settings(model_names=[f"blip={tiny_blip_dir}"], data_source=None,
                        reviews_db=tmp_path / "r.sqlite", runs_dir=tmp_path / "runs")
    studio = Studio(settings, AppOptions(examples=[]))
    assert studio.pool.labels == ["blip"] and not studio.pool.is_loaded("blip")
    assert studio._comparison is None and studio._table is None


def test_mistyped_csv_paths_are_explained_and_the_app_still_works(tmp_path: Path) -> None:
    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        runs_dir=tmp_path / "runs")
    results = tmp_path / "results.csv"
    RESULTS.to_csv(results, index=False)
    studio = Studio(settings, AppOptions(results_csv=tmp_path / "typo.csv", examples=[],
                                         evaluation_csv=tmp_path / "typo_eval.csv"))
    assert studio.results is None
    assert "Could not read the results CSV" in studio.data_problem
    assert "typo.csv" in studio.data_problem
    # With good results but a missing evaluation CSV, items still open and scores are computed.
    studio = Studio(settings, AppOptions(results_csv=results, examples=[],
                                         evaluation_csv=tmp_path / "typo_eval.csv"))
    first = studio.comparison.first(ALL)
    assert studio.open_item(first).image_id == first
    assert "Could not read the evaluation CSV" in studio.data_problem


def test_non_numeric_sample_size_names_the_setting() -> None:
    with pytest.raises(ValueError, match="MEDCAP_SAMPLE must be a whole number of dataset rows, "
                                         "not 'lots'"):
        AppOptions.from_env({"MEDCAP_SAMPLE": "lots"})


def test_slots_cover_configured_models_and_models_only_in_results(studio: Studio) -> None:
    assert studio.slot_models == ["blip", "qwen2-vl"]


def test_generate_missing_captions_then_scores_and_table_update(studio: Studio) -> None:
    assert studio.comparison.get("7777").captions == {}
    assert len(studio.evaluation) == 3
    steps = []
    message = studio.generate_missing("7777", lambda fraction, text: steps.append(text))
    assert message == "Generated: blip."
    assert studio.comparison.get("7777").captions["blip"]
    assert steps and "blip" in steps[0]
    assert len(studio.evaluation) == 4, "the evaluation table is rebuilt with the new caption"
    assert studio.generate_missing("7777") == "Every model already has a caption for this image."


def test_generate_for_an_image_without_pixels_is_explained(studio: Studio) -> None:
    studio.comparison.get("0013").captions.clear()  # known from the CSV only, caption missing
    with pytest.raises(UploadError, match="not in the loaded dataset sample"):
        studio.generate_missing("0013")


def test_open_item_carries_reviews_of_this_and_other_reviewers(studio: Studio) -> None:
    studio.save_review("0012", "blip", "Dr Ada", "correct", "", "", 0)
    studio.save_review("0012", "blip", "Dr Bo", "unusable", "", "wrong organ", 0)
    view = studio.open_item("0012", "dr ada")
    blip = view.slots[0]
    assert blip.review.verdict == "correct"
    assert blip.others == [("Dr Bo", 'verdict: unusable; note: "wrong organ"')]
    assert view.slots[1].card.error == "out of memory"
    assert view.image is None and "captions only" in view.image_note
    values = item_values(view)
    assert values.image_id == "0012" and len(values.slots) == len(view.slots)
    assert "Dr Bo" in values.slots[0].card_html and values.slots[0].verdict == "correct"


def test_open_unknown_item_is_a_message(studio: Studio) -> None:
    with pytest.raises(UploadError, match="No image with id 'missing'"):
        studio.open_item("missing")


def test_review_context_snapshot_is_what_was_shown(studio: Studio) -> None:
    outcome = studio.save_review("0012", "blip", "Dr Ada", "minor error", "", "", 0)
    context = outcome.review.context
    assert (context.generated_caption, context.ground_truth, context.modality) == (
        "ct of chest", "CT chest", "CT")


def test_verdicts_flow_into_the_evaluation_table(studio: Studio) -> None:
    from medcap.app.table import TableQuery

    studio.save_review("0013", "blip", "Dr Ada", "major error", "", "", 0)
    page = studio.query_table(TableQuery(verdict="major error"))
    assert list(page.rows["image_id"]) == ["0013"]
    summary = studio.summary()
    assert summary.set_index("model").loc["blip", "major error"] == 1


def test_export_without_reviews_says_so(studio: Studio) -> None:
    with pytest.raises(UploadError, match="No completed reviews"):
        studio.export_reviews()


def test_save_values_format_conflicts_and_errors(studio: Studio) -> None:
    saved = studio.save_review("0012", "blip", "Dr Ada", "correct", "", "", 0)
    version, text = save_values(saved, 0)
    assert version == 1 and "✅ " + saved.message in text and "mc-status-ok" in text
    conflict = ReviewConflict(saved.review, 0)
    version, text = save_values(conflict, 0)
    assert version == 0 and "⚠️ Not saved" in text and "mc-status-warning" in text


def test_options_from_env() -> None:
    options = AppOptions.from_env({"MEDCAP_RESULTS": "r.csv", "MEDCAP_SAMPLE": "50",
                                   "MEDCAP_DATASET_LABEL": "roco"})
    assert (options.results_csv, options.sample_size, options.dataset_label) == (
        Path("r.csv"), 50, "roco")


def test_evaluation_csv_drives_table_cards_summary_and_plot(tmp_path: Path) -> None:
    from medcap.app.table import TableQuery

    evaluation = tmp_path / "eval.csv"
    pd.DataFrame({
        "image_id": ["0012", "0013", "0014", "0012"], "model": ["blip", "blip", "blip", "qwen2-vl"],
        "generated_caption": ["ct of chest", "mri", "liver", "x"],
        "original_caption": ["CT chest", "MRI brain", "US liver", "CT chest"],
        "bleu4": [0.5, 0.25, 0.0, 0.1], "cider_d": [1.0, 2.0, 0.5, 0.2],
    }).to_csv(evaluation, index=False)
    results = tmp_path / "results.csv"
    RESULTS.to_csv(results, index=False)
    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        runs_dir=tmp_path / "runs")
    studio = Studio(settings, AppOptions(results_csv=results, evaluation_csv=evaluation,
                                         examples=[]), pool=ModelPool([]))
    assert studio.scores.from_file
    assert studio.scores.scores("0013", "blip") == {"bleu4": 0.25, "cider_d": 2.0}
    assert studio.evaluation.metrics == ["bleu4", "cider_d"]
    page = studio.query_table(TableQuery(sort_by="cider_d"))
    assert list(page.rows["image_id"][:2]) == ["0013", "0012"]
    assert set(page.rows["modality"]) == {"CT", "MRI", "Ultrasound"}, "modality joined from results"
    summary = studio.summary().set_index("model")
    assert summary.loc["blip", "bleu4"] == 0.25 and summary.loc["blip", "captions"] == 3
    hist = studio.distribution("bleu4", TableQuery(model="blip"))
    assert hist["count"].sum() == 3
    view = studio.open_item("0013", "")
    assert view.slots[0].card.scores == {"bleu4": 0.25, "cider_d": 2.0}


def test_summary_takes_corpus_scores_from_medcap_evaluates_summary(tmp_path: Path) -> None:
    """Corpus BLEU-4 is not the mean of per-caption BLEU-4: with the summary JSON that
    `medcap evaluate` writes beside its CSV, the app shows the same corpus number."""
    import json

    from medcap.cli import main

    results = tmp_path / "results.csv"
    pd.DataFrame({
        "image_id": ["a", "b"], "model": ["blip", "blip"], "modality": ["CT", "CT"],
        "original_caption": ["axial ct of the chest shows a large mass in the right upper lobe",
                             "mri of the brain shows a small lesion in the left frontal lobe"],
        "generated_caption": ["axial ct of the chest shows a large mass in the right upper lobe",
                              "ct of the brain shows no lesion in the frontal lobe today"],
        "error": ["", ""],
    }).to_csv(results, index=False)
    evaluation = tmp_path / "eval.csv"
    assert main(["evaluate", "--predictions", str(results), "--out", str(evaluation),
                 "--metrics", "bleu4,rouge_l"]) == 0
    corpus = json.loads((tmp_path / "eval_summary.json").read_text())["models"]["blip"]["corpus"]
    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        runs_dir=tmp_path / "runs")
    studio = Studio(settings, AppOptions(results_csv=results, evaluation_csv=evaluation,
                                         examples=[]), pool=ModelPool([]))
    summary = studio.summary().set_index("model")
    assert summary.loc["blip", "bleu4"] == pytest.approx(corpus["bleu4"], abs=5e-4)
    per_caption_mean = pd.read_csv(evaluation).query("model == 'blip'")["bleu4"].mean()
    assert abs(corpus["bleu4"] - per_caption_mean) > 0.01  # so the test can tell them apart


def test_examples_are_staged_where_gradio_serves_them(tmp_path: Path) -> None:
    from medcap.app.examples import stage_examples

    source = tmp_path / "src" / "scan.png"
    source.parent.mkdir()
    Image.new("RGB", (4, 4)).save(source)
    staged = stage_examples([source, tmp_path / "missing.dcm"], tmp_path / "served")
    assert staged == [tmp_path / "served" / "scan.png"]
    assert staged[0].read_bytes() == source.read_bytes()


def test_warm_up_prepares_comparison_and_table_without_loading_models(studio: Studio) -> None:
    studio._comparison = None
    studio.warm_up_in_background().join(timeout=60)
    assert studio._comparison is not None and studio._table is not None
    assert not studio.pool.is_loaded("blip")


def test_reopened_item_shows_the_reviewers_edit_history(studio: Studio) -> None:
    studio.save_review("0012", "blip", "Dr Ada", "major error", "", "", 0)
    studio.save_review("0012", "blip", "Dr Ada", "minor error", "CT chest", "", 1)
    slot = studio.open_item("0012", "Dr Ada").slots[0]
    assert [(h.version, h.verdict) for h in slot.history] == [(1, "major error"), (2, "minor error")]
    shown = item_values(studio.open_item("0012", "Dr Ada")).slots[0]
    assert "Your edit history" in shown.card_html
