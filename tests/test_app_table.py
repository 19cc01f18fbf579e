"""Evaluation table: filters, search, sorting with missing values, paging, histogram."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from medcap.app.table import ALL, UNREVIEWED, EvaluationTable, TableQuery, histogram


@pytest.fixture()
def table() -> EvaluationTable:
    frame = pd.DataFrame({
        "image_id": ["a1", "a1", "b2", "b2", "c3", "c3"],
        "model": ["blip", "qwen", "blip", "qwen", "blip", "qwen"],
        "modality": ["CT", "CT", "MRI", "MRI", "X-ray", "X-ray"],
        "generated_caption": ["axial CT", "ct of chest", "brain MRI", "MRI knee", "chest x-ray",
                              "Fracture of femur"],
        "original_caption": ["Axial CT chest", "Axial CT chest", "Brain MRI", "Brain MRI",
                             "Chest radiograph", "Chest radiograph"],
        "bleu4": [0.5, 0.1, np.nan, 0.9, 0.3, 0.0],
        "cider_d": [1.0, 0.2, 0.4, 2.0, 0.5, 0.1],
        "processing_time_sec": [1.0] * 6,
    })
    return EvaluationTable(frame, verdicts={("a1", "blip"): "correct",
                                            ("c3", "qwen"): "major error; unusable"})


def ids(page) -> list[tuple[str, str]]:
    return list(zip(page.rows["image_id"], page.rows["model"]))


def test_metric_columns_are_detected_in_preferred_order(table: EvaluationTable) -> None:
    assert table.metrics == ["bleu4", "cider_d"]
    assert "processing_time_sec" not in table.display_columns
    assert table.models == ["blip", "qwen"]
    assert table.modalities == ["CT", "MRI", "X-ray"]


def test_filters_combine(table: EvaluationTable) -> None:
    page = table.query(TableQuery(model="qwen", modality="MRI"))
    assert ids(page) == [("b2", "qwen")]
    assert page.matching_rows == 1


def test_search_is_case_insensitive_over_ids_and_both_captions(table: EvaluationTable) -> None:
    assert ids(table.query(TableQuery(search="FEMUR"))) == [("c3", "qwen")]
    assert {i for i, _ in ids(table.query(TableQuery(search="chest")))} == {"a1", "c3"}
    assert ids(table.query(TableQuery(search="b2", model="blip"))) == [("b2", "blip")]
    assert table.query(TableQuery(search="nothing like this")).label == "No rows match."


def test_verdict_filter_and_unreviewed(table: EvaluationTable) -> None:
    assert ids(table.query(TableQuery(verdict="unusable"))) == [("c3", "qwen")]
    assert ids(table.query(TableQuery(verdict="correct"))) == [("a1", "blip")]
    assert len(table.query(TableQuery(verdict=UNREVIEWED)).rows) == 4
    table.set_verdicts({})
    assert table.query(TableQuery(verdict="correct")).matching_rows == 0


def test_sort_descending_and_ascending_put_missing_last(table: EvaluationTable) -> None:
    down = table.query(TableQuery(sort_by="bleu4", descending=True))
    assert list(down.rows["bleu4"].iloc[:5]) == [0.9, 0.5, 0.3, 0.1, 0.0]
    assert np.isnan(down.rows["bleu4"].iloc[5])
    up = table.query(TableQuery(sort_by="bleu4", descending=False))
    assert list(up.rows["bleu4"].iloc[:5]) == [0.0, 0.1, 0.3, 0.5, 0.9]
    assert np.isnan(up.rows["bleu4"].iloc[5])


def test_sort_by_text_column(table: EvaluationTable) -> None:
    page = table.query(TableQuery(sort_by="generated_caption", descending=False))
    assert page.rows["generated_caption"].iloc[0] == "axial CT"
    assert page.rows["generated_caption"].iloc[-1] == "MRI knee"


def test_paging_and_clamping(table: EvaluationTable) -> None:
    first = table.query(TableQuery(page=1, page_size=4))
    second = table.query(TableQuery(page=2, page_size=4))
    assert (len(first.rows), len(second.rows)) == (4, 2)
    assert first.page_count == 2
    assert first.label == "Rows 1–4 of 6 (page 1 of 2)"
    assert second.label == "Rows 5–6 of 6 (page 2 of 2)"
    assert set(ids(first)).isdisjoint(ids(second))
    assert table.query(TableQuery(page=99, page_size=4)).page == 2
    assert table.query(TableQuery(page=-3, page_size=4)).page == 1


def test_values_are_rounded_for_display_only(table: EvaluationTable) -> None:
    table.frame.loc[0, "bleu4"] = 0.123456
    table.set_verdicts({})  # clears the cache
    page = table.query(TableQuery(model="blip", modality="CT"))
    assert page.rows["bleu4"].iloc[0] == 0.123
    assert table.frame.loc[0, "bleu4"] == 0.123456


def test_missing_columns_are_tolerated() -> None:
    table = EvaluationTable(pd.DataFrame({"image_id": ["x"], "model": ["m"], "bleu4": [0.2]}))
    page = table.query(TableQuery(search="x", model=ALL))
    assert page.rows["modality"].iloc[0] == ""
    assert table.modalities == []


def test_histogram_counts_per_model(table: EvaluationTable) -> None:
    values = table.metric_values("cider_d", TableQuery())
    hist = histogram(values, "cider_d", bins=4)
    assert set(hist["model"]) == {"blip", "qwen"}
    assert hist.groupby("model")["count"].sum().to_dict() == {"blip": 3, "qwen": 3}
    assert len(hist) == 8
    empty = histogram(table.metric_values("cider_d", TableQuery(search="zzz")), "cider_d")
    assert empty.empty
