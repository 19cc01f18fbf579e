"""Reviewed captions become training data that finetune/blip.py trains on unchanged."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
from PIL import Image

from finetune.blip import BlipTrainConfig
from finetune.blip import train as train_blip
from medcap.cli import main
from medcap.data import iter_records
from medcap.data.synthetic import synthetic_records, write_synthetic_folder
from medcap.review import VERDICTS, UploadStore
from tests.support.reviews import filled_store, review
from tests.support.tiny_training import one_torch_thread, tiny_config  # noqa: F401

DATASET = "phantoms:all"  # the label the app files a whole image folder's reviews under
CORRECT, MINOR, MAJOR, _ = VERDICTS


def phantom_reviews(records, upload_id: str):
    """Per phantom: a corrected caption, a generated caption judged correct, or an error left
    uncorrected (not training data); two reviewers sometimes agree on the same correction."""
    for k, record in enumerate(records):
        if k % 3 == 0:
            yield review(DATASET, record.image_id, "blip", "Ann", MAJOR, corrected=record.caption)
            yield review(DATASET, record.image_id, "blip", "Bob", MINOR, corrected=record.caption)
        elif k % 3 == 1:
            yield review(DATASET, record.image_id, "qwen", "Ann", CORRECT, caption=record.caption)
        else:
            yield review(DATASET, record.image_id, "blip", "Ann", MAJOR, caption="a chest x-ray")
    yield review("results", "ROCO_1", "blip", "Ann", CORRECT, caption="no image for this one")
    yield review("uploads", upload_id, "blip", "Cy", MINOR, corrected="=ct image of an upload")


def test_training_export_of_phantom_reviews_trains_blip(tiny_blip_dir: Path, tmp_path: Path,
                                                        capsys) -> None:
    phantoms = write_synthetic_folder(tmp_path / "phantoms", 12, image_size=32)
    records = list(iter_records(phantoms))
    uploads = UploadStore(tmp_path / "uploads")
    upload_id = uploads.add(synthetic_records(1, split="test", seed=5, image_size=32)[0].render(),
                            {"modality": "CT"}, {})
    store = filled_store(tmp_path / "reviews.sqlite", phantom_reviews(records, upload_id))
    out = tmp_path / "reviewed"
    assert main(["reviews", "export", "--db", str(store.path), "--training", str(out),
                 "--images", f"{DATASET}={phantoms}", "--uploads", str(uploads.folder),
                 "--validation-share", "0.25"]) == 0
    printed = capsys.readouterr()
    assert "skipped results/ROCO_1" in printed.err

    with open(out / "captions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    by_source = {(r["dataset"], r["source_image_id"]): r for r in rows}
    expected = {(DATASET, r.image_id) for k, r in enumerate(records) if k % 3 != 2} | {("uploads", upload_id)}
    assert set(by_source) == expected and len(rows) == len(expected)  # equal corrections: one example
    truth = {r.image_id: r.caption for r in records}
    for (dataset, image_id), row in by_source.items():
        if dataset == DATASET:
            assert row["caption"] == truth[image_id]
            split = next(s for s in ("train", "validation") if (out / s / f"{row['image_id']}.png").is_file())
            written = np.asarray(Image.open(out / split / f"{row['image_id']}.png"))
            assert np.array_equal(written, np.asarray(Image.open(phantoms / f"{image_id}.png")))
    assert by_source[("uploads", upload_id)]["caption"] == "=ct image of an upload"  # not escaped
    with open(out / "skipped.csv", newline="", encoding="utf-8") as handle:
        assert [(r["dataset"], r["image_id"]) for r in csv.DictReader(handle)] == [("results", "ROCO_1")]
    assert len(list((out / "validation").glob("*.png"))) == 2  # a quarter of 9 images

    config = tiny_config(BlipTrainConfig, tiny_blip_dir, tmp_path / "run", data=str(out),
                         train_limit=None, eval_limit=None, epochs=1, max_steps=2, batch_size=4)
    result = train_blip(config)
    assert result.history and any("loss" in entry for entry in result.history)
    assert (result.run_dir / "medcap.json").is_file()


def test_training_export_refuses_a_folder_in_use(tmp_path: Path, capsys) -> None:
    store = filled_store(tmp_path / "r.sqlite", [review("d", "i", "m", "Ann", CORRECT)])
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "keep.txt").write_text("mine")
    assert main(["reviews", "export", "--db", str(store.path), "--training", str(tmp_path / "busy")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "busy").iterdir()] == ["keep.txt"]


def test_items_whose_source_cannot_be_read_are_listed_and_nothing_is_claimed(tmp_path: Path, capsys) -> None:
    store = filled_store(tmp_path / "r.sqlite", [review("gone:all", "i1", "m", "Ann", CORRECT)])
    out = tmp_path / "out"
    assert main(["reviews", "export", "--db", str(store.path), "--training", str(out),
                 "--images", f"gone:all={tmp_path / 'missing'}"]) == 2
    err = capsys.readouterr().err
    assert "skipped gone/i1" not in err and "skipped gone:all/i1: image source" in err
    assert "nothing to train on" in err
    with open(out / "skipped.csv", newline="", encoding="utf-8") as handle:
        assert [r["image_id"] for r in csv.DictReader(handle)] == ["i1"]
