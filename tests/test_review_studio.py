"""Studio saves: categories pass through, and a save refreshes one table row, not every verdict."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from medcap.app.models import ModelPool
from medcap.app.options import AppOptions
from medcap.app.studio import Studio
from medcap.app.table import EvaluationTable, TableQuery
from medcap.config import Settings
from medcap.review import ReviewStore

RESULTS = pd.DataFrame({
    "image_id": ["0012", "0012", "0013"],
    "original_caption": ["CT chest", "CT chest", "MRI brain"],
    "generated_caption": ["ct of chest", "left chest", "mri"],
    "processing_time_sec": [0.5, 0.7, 0.25],
    "model": ["blip", "qwen2-vl", "blip"],
    "modality": ["CT", "CT", "MRI"],
    "error": ["", "", ""],
})


@pytest.fixture()
def studio(tmp_path: Path) -> Studio:
    results = tmp_path / "results.csv"
    RESULTS.to_csv(results, index=False)
    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        runs_dir=tmp_path / "runs")
    return Studio(settings, AppOptions(results_csv=results, dataset_label="roco", examples=[],
                                       export_dir=tmp_path / "exports"), pool=ModelPool([]))


def test_save_passes_categories_and_updates_only_its_row(studio: Studio, monkeypatch) -> None:
    assert len(studio.evaluation) == 3
    studio.save_review("0012", "blip", "Dr Bo", "correct", "", "", 0)

    def everything(*args, **kwargs):
        raise AssertionError("a save must not reread every review")

    monkeypatch.setattr(studio.store, "iter_reviews", everything)
    monkeypatch.setattr(studio.store, "all_reviews", everything)
    outcome = studio.save_review("0012", "qwen2-vl", "Dr Ada", "major error", "", "", 0,
                                 categories=("wrong_laterality",), significant=True)
    assert outcome.review.categories == ("wrong_laterality",) and outcome.review.significant
    studio.save_review("0012", "blip", "Dr Ada", "unusable", "", "", 0)
    frame = studio.evaluation.frame.set_index(["image_id", "model"])
    assert frame.loc[("0012", "blip"), "verdict"] == "correct; unusable"
    assert frame.loc[("0012", "qwen2-vl"), "verdict"] == "major error"
    assert frame.loc[("0013", "blip"), "verdict"] == ""
    page = studio.query_table(TableQuery(verdict="unusable"))
    assert list(page.rows["model"]) == ["blip"], "the filter cache saw the new verdict"


def test_studio_store_uses_the_configured_categories(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    path.write_text('[{"key": "wrong_view", "label": "Wrong view"}]', encoding="utf-8")
    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        review_categories=str(path))
    studio = Studio(settings, AppOptions(examples=[]), pool=ModelPool([]))
    assert [c.key for c in studio.store.categories] == ["wrong_view"]


def test_set_verdict_touches_one_row_and_ignores_unknown_keys() -> None:
    frame = pd.DataFrame({"image_id": ["1", "1", "2"], "model": ["a", "b", "a"],
                          "bleu4": [0.1, 0.2, 0.3]})
    table = EvaluationTable(frame, verdicts={("2", "a"): "correct"})
    assert table.query(TableQuery(verdict="correct")).matching_rows == 1
    table.set_verdict("1", "b", "minor error")
    table.set_verdict("9", "z", "unusable")
    assert list(table.frame["verdict"]) == ["", "minor error", "correct"]
    assert table.query(TableQuery(verdict="minor error")).matching_rows == 1
