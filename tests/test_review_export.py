"""CSV export: formula injection neutralised, RFC 4180 quoting, BOM for Excel, content complete."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from medcap.review import (
    DEFAULT_CATEGORIES,
    ErrorCategory,
    Review,
    ReviewContext,
    ReviewInput,
    ReviewKey,
    ReviewStore,
    export_columns,
    export_reviews_csv,
    export_store_csv,
    neutralize_cell,
    safe_csv_text,
    write_safe_csv,
)


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("=HYPERLINK(\"http://x\",\"y\")", "'=HYPERLINK(\"http://x\",\"y\")"),
        ("+1+1", "'+1+1"),
        ("-2+3", "'-2+3"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"),
        ("\r=1", "'\r=1"),
        ("\0=1", "'\0=1"),
        (" =1+1", "' =1+1"),
        ("  \t@SUM(A1)", "'  \t@SUM(A1)"),
        ("'=1", "''=1"),
        ('"=1', "'\"=1"),
        ("\u200b=HYPERLINK(1)", "'\u200b=HYPERLINK(1)"),
        ("\ufeff+1", "'\ufeff+1"),
        ("\u00a0-1", "'\u00a0-1"),
        ("\u00a0 '\u200b\ufeff=1", "'\u00a0 '\u200b\ufeff=1"),
        (" normal", " normal"),
        ("'quoted'", "'quoted'"),
        ("\u200bword", "\u200bword"),
        ("normal caption", "normal caption"),
        ("a=b", "a=b"),
        ("", ""),
        (None, ""),
        (-0.5, -0.5),
        (3, 3),
        (float("nan"), ""),
    ],
)
def test_neutralize_cell(cell, expected) -> None:
    assert neutralize_cell(cell) == expected


def test_rfc4180_quoting_and_crlf() -> None:
    text = safe_csv_text([{"a": 'say "hi", then\nleave', "b": "plain"}], ["a", "b"])
    assert text == 'a,b\r\n"say ""hi"", then\nleave",plain\r\n'


def test_file_has_bom_and_keeps_non_ascii(tmp_path: Path) -> None:
    path = write_safe_csv([{"caption": "Läsion im Lungenoberlappen — 肺结节"}], ["caption"],
                          tmp_path / "out" / "x.csv")
    raw = path.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    assert raw[3:].decode("utf-8") == "caption\r\nLäsion im Lungenoberlappen — 肺结节\r\n"


def test_exported_reviews_round_trip_with_injection_neutralised(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "reviews.sqlite")
    context = ReviewContext(generated_caption="=cmd|' /C calc'!A0", ground_truth="CT, axial",
                            modality="CT", scores={"bleu4": 0.1, "cider_d": 1.5, "meteor": 0.2})
    store.save(ReviewInput(
        key=ReviewKey("roco-test", "ROCO_7", "blip", "@admin"),
        verdict="unusable", corrected_caption="-Axial CT", note="+ see \"report\"",
        context=context))
    store.save(ReviewInput(key=ReviewKey("roco-test", "ROCO_8", "blip", "Dr Ada"),
                           corrected_caption="draft only"))
    path = export_reviews_csv(store.all_reviews(), tmp_path / "export.csv")
    with path.open(encoding="utf-8-sig", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1, "the draft is not exported"
    row = rows[0]
    assert list(row) == ["image_id", "dataset", "modality", "ground_truth", "model",
                         "generated_caption", "bleu4", "meteor", "cider_d", "verdict",
                         "error_wrong_laterality", "error_wrong_modality", "error_wrong_anatomy",
                         "error_missed_finding", "error_hallucinated_finding",
                         "error_wrong_measurement", "error_not_a_caption",
                         "clinically_significant",
                         "corrected_caption", "note", "reviewer", "reviewed_at", "version"]
    assert row["generated_caption"] == "'=cmd|' /C calc'!A0"
    assert row["corrected_caption"] == "'-Axial CT"
    assert row["note"] == "'+ see \"report\""
    assert row["reviewer"] == "'@admin"
    assert row["ground_truth"] == "CT, axial"
    assert (row["bleu4"], row["cider_d"], row["verdict"]) == ("0.1", "1.5", "unusable")
    assert row["reviewed_at"].endswith("Z")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        return list(csv.DictReader(handle))


def test_every_column_is_neutralised_ids_and_models_included(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "reviews.sqlite")
    store.save(ReviewInput(
        key=ReviewKey("\u200b=dataset", " =cmd|' /C calc'!A0", "\ufeff@model", "\u00a0+Dr"),
        verdict="correct", note="\t=1", corrected_caption="'=2",
        context=ReviewContext(generated_caption=" -3", ground_truth="\u200b+4", modality="=CT")))
    [row] = read_rows(export_store_csv(store, tmp_path / "export.csv"))
    for column in ("dataset", "image_id", "model", "reviewer", "note", "corrected_caption",
                   "generated_caption", "ground_truth", "modality"):
        assert row[column].startswith("'"), column


def test_one_column_per_category_and_significance(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "reviews.sqlite")
    store.save(ReviewInput(key=ReviewKey("roco", "1", "blip", "Dr Ada"), verdict="major error",
                           categories=("wrong_laterality", "missed_finding"), significant=True,
                           context=ReviewContext(scores={"bleu4": 0.5})))
    store.save(ReviewInput(key=ReviewKey("roco", "2", "blip", "Dr Ada"), verdict="correct"))
    rows = read_rows(export_store_csv(store, tmp_path / "export.csv"))
    assert [r["error_wrong_laterality"] for r in rows] == ["1", "0"]
    assert [r["error_missed_finding"] for r in rows] == ["1", "0"]
    assert [r["error_not_a_caption"] for r in rows] == ["0", "0"]
    assert [r["clinically_significant"] for r in rows] == ["1", "0"]
    assert [r["bleu4"] for r in rows] == ["0.5", ""]
    assert list(rows[0]) == export_columns(DEFAULT_CATEGORIES, ["bleu4"])


def test_export_columns_follow_the_configured_categories() -> None:
    columns = export_columns((ErrorCategory("wrong_view", "Wrong view", "v"),), ["meteor"])
    assert columns[columns.index("verdict"):columns.index("corrected_caption")] == [
        "verdict", "error_wrong_view", "clinically_significant"]
    assert "meteor" in columns


def test_store_export_uses_the_latest_final_version(tmp_path: Path) -> None:
    store = ReviewStore(tmp_path / "reviews.sqlite")
    key = ReviewKey("roco", "1", "blip", "Dr Alice")
    store.save(ReviewInput(key=key, verdict="major error", categories=("wrong_modality",)))
    store.save(ReviewInput(key=key, note="someone typed her name and saved a draft",
                           base_version=1))
    [row] = read_rows(export_store_csv(store, tmp_path / "export.csv"))
    assert (row["verdict"], row["error_wrong_modality"], row["note"], row["version"]) == (
        "major error", "1", "", "1")


def test_export_streams_rows_without_holding_them(tmp_path: Path) -> None:
    """With the score columns known, rows go to the file as they come: memory stays flat."""
    import tracemalloc

    template = Review(key=ReviewKey("roco", "", "blip", "Dr Ada"), verdict="correct",
                      corrected_caption="", note="n" * 200, status="final", version=1,
                      created_at="t", updated_at="t", context=ReviewContext(scores={"bleu4": 0.1}))

    def reviews(n: int):
        for index in range(n):
            yield Review(**{**template.__dict__,
                            "key": ReviewKey("roco", f"ROCO_{index}", "blip", "Dr Ada")})

    peaks = []
    for n in (1_000, 12_000):
        tracemalloc.start()
        export_reviews_csv(reviews(n), tmp_path / f"{n}.csv", scores=["bleu4"])
        peaks.append(tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    assert peaks[1] < 2 * peaks[0] + 1_000_000, f"memory grew with the row count: {peaks}"
    assert len(read_rows(tmp_path / "12000.csv")) == 12_000
