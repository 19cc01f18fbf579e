"""`python -m medcap reviews import|stats|export`: merging exports made by the real exporter,
conflicts, bad files that change nothing, and the stats/exports the command writes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import pytest

from medcap.cli import main
from medcap.review import VERDICTS, ReviewInput, ReviewKey, ReviewStore
from tests.support.reviews import SteppingClock, filled_store, review

DATASETS = ("roco:test", "phantoms:all", "uploads")


def panel_reviews():
    """Three datasets, three reviewers, two models; categories, flags, scores and text a
    spreadsheet would run as a formula."""
    for d, dataset in enumerate(DATASETS):
        for item in range(6):
            for m, model in enumerate(("blip", "qwen")):
                for r, reviewer in enumerate(("Ann", "@bob", "Cy Smith")):
                    if (item + r + d) % 4 == 3:
                        continue  # missing ratings
                    verdict = VERDICTS[(item * (m + 1) + r + d) % 4]
                    yield review(dataset, f"img-{item}", model, reviewer, verdict,
                                 categories=("missed_finding",) if (item + r) % 3 == 0 else (),
                                 significant=verdict == VERDICTS[3],
                                 corrected="-Axial CT of the chest" if verdict == VERDICTS[2] else "",
                                 note='=HYPERLINK("x")' if item == 1 else "",
                                 caption=f"+{model} says {item}",
                                 scores={"bleu4": 0.1 * item - 0.05 * m, "cider_d": item / 3})


def panel_store(path: Path) -> ReviewStore:
    store = filled_store(path, panel_reviews())
    for k in range(6):  # preferences exist in the store but are not part of a CSV export
        store.save_preference("roco:test", f"img-{k}", "blip", "qwen", "Ann", "A better")
    return store


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> ReviewStore:
    """Read-only for the tests that share it (filling a store takes seconds)."""
    return panel_store(tmp_path_factory.mktemp("panel") / "source.sqlite")


def export(store: ReviewStore, out: Path, *extra: str) -> Path:
    assert main(["reviews", "export", "--db", str(store.path), "--out", str(out), *extra]) == 0
    return out


def stats_of(db: Path, out: Path, capsys) -> dict:
    assert main(["reviews", "stats", "--db", str(db), "--out", str(out), "--bootstrap", "200"]) == 0
    capsys.readouterr()
    return json.loads(out.read_text(encoding="utf-8"))


def without_preferences(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if k != "preferences"}


def test_three_exported_files_merge_into_a_store_with_identical_stats(source, tmp_path, capsys) -> None:
    files = [export(source, tmp_path / f"part{k}.csv", "--dataset", d) for k, d in enumerate(DATASETS)]
    merged = tmp_path / "merged.sqlite"
    assert main(["reviews", "import", *map(str, files), "--db", str(merged)]) == 0
    assert f"{source.count()} added, 0 updated, 0 unchanged" in capsys.readouterr().out
    original = stats_of(source.path, tmp_path / "a.json", capsys)
    copy = stats_of(merged, tmp_path / "b.json", capsys)
    assert without_preferences(copy) == without_preferences(original)
    assert original["preferences"]["comparisons"] == 6 and copy["preferences"]["comparisons"] == 0
    # text the export neutralised comes back as it was typed
    stored = ReviewStore(merged).get(ReviewKey("roco:test", "img-1", "qwen", "@bob"))
    assert stored.note == '=HYPERLINK("x")' and stored.context.generated_caption == "+qwen says 1"
    assert stored.categories == source.get(stored.key).categories
    assert stored.updated_at == source.get(stored.key).updated_at
    # ... and the merged store exports the very same file
    assert export(ReviewStore(merged), tmp_path / "again.csv").read_bytes() == \
        export(source, tmp_path / "all.csv").read_bytes()


def test_importing_the_same_file_twice_adds_nothing(source, tmp_path, capsys) -> None:
    file = export(source, tmp_path / "all.csv")
    merged = tmp_path / "merged.sqlite"
    assert main(["reviews", "import", str(file), "--db", str(merged)]) == 0
    history_before = ReviewStore(merged).history(ReviewKey("uploads", "img-0", "blip", "Ann"))
    capsys.readouterr()
    copy = tmp_path / "copy.csv"
    shutil.copy(file, copy)
    assert main(["reviews", "import", str(file), str(copy), "--db", str(merged)]) == 0
    assert f"0 added, 0 updated, {2 * source.count()} unchanged" in capsys.readouterr().out
    assert ReviewStore(merged).history(ReviewKey("uploads", "img-0", "blip", "Ann")) == history_before


def test_a_row_older_than_the_stored_review_is_reported_not_applied(tmp_path, capsys) -> None:
    source = panel_store(tmp_path / "source.sqlite")
    old_file = export(source, tmp_path / "old.csv", "--dataset", "roco:test")
    key = ReviewKey("roco:test", "img-0", "blip", "Ann")
    later = ReviewStore(source.path, clock=SteppingClock(10_000))
    current = later.get(key)
    new_verdict = next(v for v in VERDICTS if v != current.verdict)
    later.save(ReviewInput(key=key, verdict=new_verdict, base_version=current.version,
                           context=current.context))
    new_file = export(source, tmp_path / "new.csv", "--dataset", "roco:test")

    target = tmp_path / "target.sqlite"
    assert main(["reviews", "import", str(new_file), "--db", str(target)]) == 0
    capsys.readouterr()
    assert main(["reviews", "import", str(old_file), "--db", str(target)]) == 1
    captured = capsys.readouterr()
    assert "1 conflict(s) not applied" in captured.out
    assert "conflict: old.csv line" in captured.err and "kept the stored one" in captured.err
    assert ReviewStore(target).get(key).verdict == new_verdict

    # the other order: the newer file replaces the older review (a new version, newer time)
    other = tmp_path / "other.sqlite"
    assert main(["reviews", "import", str(old_file), "--db", str(other)]) == 0
    assert main(["reviews", "import", str(new_file), "--db", str(other)]) == 0
    assert "1 updated" in capsys.readouterr().out
    assert ReviewStore(other).get(key).verdict == new_verdict
    assert [r.verdict for r in ReviewStore(other).history(key)] == [current.verdict, new_verdict]


def snapshot(store: ReviewStore) -> list:
    """Every review (drafts too) with its whole history and every preference."""
    return [(r, store.history(r.key)) for r in store.all_reviews(include_drafts=True)] + store.preferences()


def _rewrite(path: Path, old: str, new: str) -> Path:
    text = path.read_text(encoding="utf-8-sig").replace(old, new, 1)
    path.write_text(text, encoding="utf-8-sig")
    return path


@pytest.mark.parametrize(("damage", "message"), [
    (lambda p: _rewrite(p, "verdict", "verdikt"), "column(s) verdict are missing"),
    (lambda p: _rewrite(p, ",correct,", ",fine,"), "verdict 'fine' is not one of"),
    (lambda p: _rewrite(p, "error_missed_finding", "error_typo"), "unknown error category column"),
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.write_bytes(p.read_bytes()[:400]), "cells for"),
    (lambda p: p.write_bytes(p.read_text(encoding="utf-8-sig").encode("utf-8-sig")
                             + "r\u00e9sum\u00e9".encode("latin-1")), "is not UTF-8"),
    (lambda p: _rewrite(p, "2026-03-01T", "01/03/2026 "), "reviewed_at"),
    (lambda p: _rewrite(p, "img-5", "img\x07-5"), "control character"),  # the store's own rule
])
def test_a_bad_file_is_refused_with_a_clear_message_and_changes_nothing(
        source, tmp_path, capsys, damage, message) -> None:
    good = export(source, tmp_path / "good.csv", "--dataset", "uploads")
    bad = export(source, tmp_path / "bad.csv", "--dataset", "roco:test")
    damage(bad)
    target = tmp_path / "target.sqlite"
    filled_store(target, [review("roco:test", "img-9", "blip", "Zoe", VERDICTS[0])])
    before = snapshot(ReviewStore(target))
    assert main(["reviews", "import", str(good), str(bad), "--db", str(target)]) == 2
    err = capsys.readouterr().err
    assert message in err and "bad.csv" in err and "Nothing was imported" in err
    assert snapshot(ReviewStore(target)) == before and len(before) == 1


def test_a_bad_file_does_not_leave_a_new_empty_store_behind(source, tmp_path, capsys) -> None:
    bad = _rewrite(export(source, tmp_path / "bad.csv"), "img-5", "img\x07-5")
    target = tmp_path / "new.sqlite"
    assert main(["reviews", "import", str(bad), "--db", str(target)]) == 2
    assert "control character" in capsys.readouterr().err
    assert not target.exists() and list(tmp_path.glob("new.sqlite*")) == []


def test_stats_prints_tables_and_writes_the_documented_keys(source, tmp_path, capsys) -> None:
    out = tmp_path / "out" / "stats.json"
    assert main(["reviews", "stats", "--db", str(source.path), "--out", str(out), "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    assert "== Agreement (Krippendorff's alpha, ordinal) ==" in printed and "all models" in printed
    stats = json.loads(out.read_text())
    assert isinstance(stats["overall"]["krippendorff_alpha_ordinal"], float)
    assert set(stats["models"]) == {"blip", "qwen"}
    assert "krippendorff_alpha_ordinal" in stats["models"]["blip"]
    assert {tuple(p["reviewers"]) for p in stats["pairs"]} == {("@bob", "Ann"), ("@bob", "Cy Smith"),
                                                               ("Ann", "Cy Smith")}
    assert all({"reviewers", "cohen_kappa", "n"} <= set(p) for p in stats["pairs"])
    assert set(stats["metrics"]) == {"bleu4", "cider_d"}
    assert [m["model"] for m in stats["preferences"]["models"]] == ["blip", "qwen"]


def test_stats_on_a_missing_store_is_an_error_not_an_empty_store(tmp_path, capsys) -> None:
    assert main(["reviews", "stats", "--db", str(tmp_path / "typo.sqlite")]) == 2
    assert "no review store" in capsys.readouterr().err
    assert not (tmp_path / "typo.sqlite").exists()


def test_parquet_export_holds_the_csv_export_values_unescaped(source, tmp_path) -> None:
    csv_file = export(source, tmp_path / "r.csv")
    parquet = pd.read_parquet(export(source, tmp_path / "r.parquet"))
    table = pd.read_csv(csv_file, encoding="utf-8-sig", keep_default_na=False)
    assert list(parquet.columns) == list(table.columns)
    assert len(parquet) == len(table) == source.count()
    assert parquet["note"].str.startswith("=").any()  # no spreadsheet escaping in Parquet
    assert table["note"].str.startswith("'=").any()
    assert main(["reviews", "export", "--db", str(source.path), "--out", str(tmp_path / "r.xlsx")]) == 2


@pytest.mark.parametrize("text", ["=1+1", "'=1+1", "' =cmd", "'quoted", "''", "\u200b@x", "-2",
                                  "plain", "", "\ufeff+x", "a'=b"])
def test_restore_cell_undoes_the_export_escaping_exactly(text: str) -> None:
    from medcap.review.export import neutralize_cell, restore_cell

    assert restore_cell(neutralize_cell(text)) == text
