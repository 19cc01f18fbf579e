"""CSV export: formula injection neutralised, RFC 4180 quoting, BOM for Excel, content complete."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from medcap.review import (
    ReviewContext,
    ReviewInput,
    ReviewKey,
    ReviewStore,
    export_reviews_csv,
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
