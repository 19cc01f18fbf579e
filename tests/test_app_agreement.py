"""The Agreement tab: `/review_stats` through gradio_client on reviews saved by the real
`Studio.save_review`, and what the tab shows for undefined figures (a reason, never NaN)."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from medcap.app.agreement import PLOT_TITLES, SECTIONS, agreement_view, empty_view
from medcap.review import VERDICTS
from tests.test_app import running_app

CAPTIONS = [("ROCOv2_2023_test_000000", "blip"), ("ROCOv2_2023_test_000000", "qwen2-vl"),
            ("ROCOv2_2023_test_000001", "blip"), ("ROCOv2_2023_test_000002", "blip")]
VERDICTS_BY = {"Dr Ada": ["correct", "major error", "correct", "minor error"],
               "Dr Bo": ["correct", "unusable", "minor error", "minor error"]}


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_blip_dir, tiny_qwen2_vl_dir):
    from gradio_client import Client

    work = tmp_path_factory.mktemp("agreement")
    with running_app(work, tiny_blip_dir, tiny_qwen2_vl_dir) as (url, studio):
        yield Client(url, verbose=False), studio


def save_panel(studio) -> None:
    """Two reviewers on the same four captions, plus a draft that must not count."""
    for reviewer, verdicts in VERDICTS_BY.items():
        for (image_id, model), verdict in zip(CAPTIONS, verdicts):
            categories = ("wrong_modality",) if verdict == "unusable" else ()
            studio.save_review(image_id, model, reviewer, verdict, "", "", 0,
                               categories=categories, significant=verdict == "unusable")
    studio.save_review(CAPTIONS[0][0], "blip", "Dr Cy", None, "", "half done", 0)


def test_review_stats_endpoint(served) -> None:
    client, studio = served
    empty = client.predict(api_name="/review_stats")
    assert set(empty) == {"message"} and "No completed reviews in roco-test" in empty["message"]

    save_panel(studio)
    stats = client.predict(api_name="/review_stats")
    assert {"overall", "models", "pairs", "categories", "ranking", "preferences",
            "metrics"} <= set(stats)
    assert (stats["overall"]["reviews"], stats["overall"]["reviewers"]) == (8, 2)  # no draft
    assert "krippendorff_alpha_ordinal" in stats["overall"]
    assert set(stats["models"]) == {"blip", "qwen2-vl"}
    assert "krippendorff_alpha_ordinal" in stats["models"]["blip"]
    codes = {r: [VERDICTS.index(v) for v in vs] for r, vs in VERDICTS_BY.items()}
    [pair] = stats["pairs"]
    assert (pair["reviewers"], pair["n"]) == (["Dr Ada", "Dr Bo"], 4)
    assert pair["cohen_kappa"] == pytest.approx(cohen_kappa_score(
        codes["Dr Ada"], codes["Dr Bo"], labels=list(range(len(VERDICTS)))))
    # qwen2-vl has one caption rated twice with different verdicts; one model compared: no BT.
    assert stats["preferences"]["ranking"] is None and stats["preferences"]["ranking_undefined"]
    assert stats == studio.review_stats()
    json.dumps(stats, allow_nan=False)


def test_view_shows_reasons_not_nan(served) -> None:
    _, studio = served
    stats = studio.review_stats()
    assert stats is not None  # saved by the test above
    view = agreement_view(stats, studio.dataset, 0.25)
    assert "8 completed reviews" in view.status and "2 reviewers" in view.status
    assert len(view.tables) == len(SECTIONS) and len(view.plots) == len(PLOT_TITLES)
    for table in view.tables:
        text = table.to_csv(index=False)
        assert "nan" not in text.lower() and "None" not in text
    agreement = view.tables[0].set_index("scope")
    # qwen2-vl: one caption rated twice, 'major error' vs 'unusable' -> a number; blip: a number
    assert agreement.loc["all models", "alpha"] != "—"
    preferences = view.notes[[s.table for s in SECTIONS].index("Preference ranking (Bradley-Terry)")]
    assert preferences.startswith("No ranking: fewer than two models were compared")
    categories = view.plots[PLOT_TITLES.index("Error category shares per model")]
    assert categories.x == "bar" and categories.colour == "model"  # side by side, not stacked
    assert "qwen2-vl · wrong_modality" in set(categories.frame["bar"])


def test_undefined_alpha_is_a_dash_with_its_reason() -> None:
    stats = {
        "settings": {"bootstrap": 10, "seed": 0}, "verdict_scale": list(VERDICTS),
        "overall": {"krippendorff_alpha_ordinal": None, "units": 1, "reviews": 2, "captions": 1,
                    "items": 1, "reviewers": 2,
                    "krippendorff_alpha_ordinal_undefined": "every verdict is 'correct'"},
        "models": {}, "pairs": [], "categories": {}, "ranking": [],
        "preferences": {"comparisons": 0, "both_wrong": 0, "models": [], "ranking": None,
                        "ranking_undefined": "fewer than two models were compared"},
        "metrics": {},
    }
    view = agreement_view(stats, "roco-test", 0.1)
    row = view.tables[0].iloc[0]
    assert (row["alpha"], row["note"]) == ("—", "every verdict is 'correct'")
    assert view.plots[PLOT_TITLES.index("Agreement (alpha)")] is None  # nothing to draw
    assert view.notes[1] == "No two reviewers have reviewed the same caption yet."
    assert empty_view("x").tables[0].equals(pd.DataFrame())
