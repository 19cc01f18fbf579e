"""iter_records over ROCOv2 parquet files and shard folders, image folders and the hub."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from medcap.data import DataSourceError, ImageLoadError, Record, iter_records
from medcap.data.hub import iter_rows_as_records
from tests.support.data_fixtures import (
    CT_CUIS,
    copy_dicom,
    gradient,
    gray_png,
    rgb_jpeg,
    rocov2_rows,
    write_image_folder,
    write_rocov2_parquet,
    write_rocov2_shards,
)

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def summary(records: list[Record]) -> list[tuple]:
    return [(r.image_id, r.caption, r.cuis, r.modality, r.split) for r in records]


# --- parquet -------------------------------------------------------------------------------------

def test_rocov2_parquet_file_gives_captions_cuis_and_modality(tmp_path):
    path = write_rocov2_parquet(tmp_path / "rocov2.parquet", rocov2_rows(3))
    records = list(iter_records(path))
    assert summary(records) == [
        ("ROCOv2_2023_test_000001", "CT chest showing a right lower lobe mass.", ("C0040405", "C0817096"), "CT", None),
        ("ROCOv2_2023_test_000002", "Axial T2 MRI of the brain.", ("C0024485", "C0037303"), "MRI", None),
        ("ROCOv2_2023_test_000003", "Chest X-ray with bilateral infiltrates.", ("C1306645", "C0817096"), "X-ray", None),
    ]
    first = records[0].load()
    assert first.source_format == "png" and first.display.mode == "L"  # grayscale kept, not dropped
    assert np.array_equal(np.asarray(first.display), gradient(48, 32))
    assert first.image.mode == "RGB"
    second = records[1].load()
    assert second.display.mode == "RGB" and second.display.size == (40, 30)


def test_plain_bytes_image_column_and_string_cuis(tmp_path):
    path = write_rocov2_parquet(tmp_path / "flat.parquet", rocov2_rows(2), image_as="bytes", cui_as="string")
    records = list(iter_records(path))
    assert [(r.cuis, r.modality) for r in records] == [(CT_CUIS, "CT"), (("C0024485", "C0037303"), "MRI")]
    assert records[0].load().display.size == (48, 32)


def test_shard_folder_selects_the_requested_split_in_order(tmp_path):
    ids = write_rocov2_shards(tmp_path / "ROCOv2", {"train": 4, "test": 5}, shards=2)
    records = list(iter_records(tmp_path / "ROCOv2", split="test"))
    assert [r.image_id for r in records] == ids["test"]
    assert {r.split for r in records} == {"test"}
    assert [r.image_id for r in iter_records(tmp_path / "ROCOv2" / "data", split="train")] == ids["train"]


def test_shard_folder_with_several_splits_needs_a_split(tmp_path):
    write_rocov2_shards(tmp_path / "ROCOv2", {"train": 2, "test": 2, "validation": 2}, shards=1)
    with pytest.raises(DataSourceError) as caught:
        iter_records(tmp_path / "ROCOv2")
    assert str(caught.value) == (
        f"'{tmp_path / 'ROCOv2'}' holds several splits (test, train, validation): choose one with --split / split=."
    )
    with pytest.raises(DataSourceError) as caught:
        iter_records(tmp_path / "ROCOv2", split="dev")
    assert str(caught.value) == (
        f"'{tmp_path / 'ROCOv2'}' has no parquet files for the 'dev' split (splits found: test, train, validation)."
    )


def test_single_split_file_reports_its_split_and_refuses_another(tmp_path):
    path = write_rocov2_parquet(tmp_path / "test-00000-of-00001.parquet", rocov2_rows(1))
    assert [r.split for r in iter_records(path)] == ["test"]
    with pytest.raises(DataSourceError) as caught:
        iter_records(path, split="train")
    assert str(caught.value) == f"'{path}' holds the 'test' split, not 'train'."


def test_limit_caps_the_count(tmp_path):
    write_rocov2_shards(tmp_path / "r", {"test": 7}, shards=3)
    assert len(list(iter_records(tmp_path / "r", split="test", limit=4))) == 4
    assert list(iter_records(tmp_path / "r", split="test", limit=0)) == []
    with pytest.raises(ValueError) as caught:
        iter_records(tmp_path / "r", limit=-1)
    assert str(caught.value) == "limit must be zero or positive, got -1"


def test_broken_rows_fail_only_when_loaded(tmp_path):
    rows = rocov2_rows(3)
    rows[1]["image"] = {"bytes": b"\x89PNG\r\n\x1a\n broken", "path": "broken.png"}
    rows[2]["image"] = None
    records = list(iter_records(write_rocov2_parquet(tmp_path / "mixed.parquet", rows)))
    assert len(records) == 3
    assert records[0].load().display.size == (48, 32)
    with pytest.raises(ImageLoadError) as caught:
        records[1].load()
    assert str(caught.value) == "'broken.png' is not an image in a format medcap can read (PNG, JPEG, GIF, BMP, TIFF, WebP or DICOM), although its name ends in .png."
    with pytest.raises(ImageLoadError) as caught:
        records[2].load()
    assert str(caught.value) == (
        "Row 'ROCOv2_2023_test_000003' in 'mixed.parquet' has no image bytes: there is no image to load."
    )


def test_records_stream_without_decoding(tmp_path, monkeypatch):
    path = write_rocov2_parquet(tmp_path / "lazy.parquet", rocov2_rows(6))
    calls = []
    import medcap.data.rows as rows_module

    monkeypatch.setattr(rows_module, "load_image", lambda *a, **k: calls.append(k) or None)
    records = list(iter_records(path))
    assert len(records) == 6 and calls == []
    records[4].load()
    assert calls == [{"name": "ROCOv2_2023_test_000005.jpg"}]


def test_unreadable_parquet(tmp_path):
    path = tmp_path / "fake.parquet"
    path.write_text("this is not parquet")
    with pytest.raises(DataSourceError) as caught:
        iter_records(path)
    assert str(caught.value).startswith(f"'{path}' is not a readable parquet file: ")


def test_parquet_without_image_column(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "captions.parquet"
    pq.write_table(pa.table({"image_id": ["a"], "caption": ["b"]}), path)
    with pytest.raises(DataSourceError) as caught:
        iter_records(path)
    assert str(caught.value) == (
        f"'{path}' has no 'image' column (columns: image_id, caption); expected the ROCOv2 columns "
        "image, image_id, caption, cui."
    )


# --- image folders -------------------------------------------------------------------------------

def test_image_folder_with_captions_csv(tmp_path):
    folder = write_image_folder(
        tmp_path / "imgs",
        {"b.jpg": rgb_jpeg(), "a.png": gray_png(), "c.png": gray_png(20, 20)},
        captions={"a": "Axial CT of the chest.", "b.jpg": "Colour Doppler ultrasound."},
    )
    records = list(iter_records(folder))
    assert summary(records) == [
        ("a", "Axial CT of the chest.", (), None, None),
        ("b", "Colour Doppler ultrasound.", (), None, None),
        ("c", None, (), None, None),
    ]
    assert records[0].load().display.mode == "L"
    assert records[1].load().source_format == "jpeg"


def test_hidden_parquet_cache_does_not_hide_an_image_folder(tmp_path):
    folder = write_image_folder(tmp_path / "imgs", {"a.png": gray_png(), "b.jpg": rgb_jpeg()})
    write_rocov2_parquet(folder / ".cache" / "old.parquet")  # e.g. a tool's hidden cache
    assert [r.image_id for r in iter_records(folder)] == ["a", "b"]


def test_folder_with_only_hidden_parquet_files_says_so(tmp_path):
    from medcap.data.parquet import parquet_files_for

    write_rocov2_parquet(tmp_path / "data" / ".cache" / "old.parquet")
    with pytest.raises(DataSourceError, match="has no parquet files"):
        parquet_files_for(tmp_path / "data", None)


def test_image_folder_without_captions_and_with_dicom(tmp_path):
    folder = write_image_folder(tmp_path / "mixed", {"photo.png": Image.new("RGB", (40, 40))})
    copy_dicom("CT_small.dcm", folder / "ct.dcm")
    copy_dicom("MR_small.dcm", folder / "IM0001")  # DICOM files often have no extension
    (folder / "notes.txt").write_text("ignored")
    records = list(iter_records(folder))
    assert summary(records) == [
        ("IM0001", None, (), "MRI", None),
        ("ct", None, (), "CT", None),
        ("photo", None, (), None, None),
    ]
    assert records[1].load().metadata["modality"] == "CT"


def test_image_folder_with_split_subfolders(tmp_path):
    folder = write_image_folder(
        tmp_path / "ds", {"train/t1.png": gray_png(), "test/x1.png": gray_png(), "test/x2.png": gray_png()}
    )
    (folder / "test" / "captions.csv").write_text("image_id,caption\nx2,Sagittal MRI.\n")
    assert summary(list(iter_records(folder, split="test"))) == [
        ("x1", None, (), None, "test"),
        ("x2", "Sagittal MRI.", (), None, "test"),
    ]
    with pytest.raises(DataSourceError) as caught:
        iter_records(folder)
    assert str(caught.value) == f"'{folder}' holds several splits (test, train): choose one with --split / split=."


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "empty" / "readme.txt").write_text("nothing here")
    with pytest.raises(DataSourceError) as caught:
        iter_records(tmp_path / "empty")
    assert str(caught.value) == (
        f"'{tmp_path / 'empty'}' contains no images (.png, .jpg, .jpeg, .gif, .bmp, .tif, .tiff, .webp, "
        ".dcm, .dicom) and no parquet files."
    )


def test_missing_path(tmp_path):
    with pytest.raises(DataSourceError) as caught:
        iter_records(tmp_path / "no" / "such" / "folder")
    assert str(caught.value) == f"'{tmp_path / 'no' / 'such' / 'folder'}' does not exist."


def test_missing_relative_parquet_is_not_mistaken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(DataSourceError) as caught:
        iter_records("data/test.parquet")
    assert str(caught.value) == "'data/test.parquet' does not exist."


def test_two_files_with_the_same_stem_keep_their_suffix_in_the_id(tmp_path):
    folder = write_image_folder(tmp_path / "dup", {"a.png": gray_png(), "a.jpg": rgb_jpeg(),
                                                   "b.png": gray_png(), "sub/a.png": gray_png()})
    (folder / "captions.csv").write_text("image_id,caption\na.png,Gray.\nb.png,Bee.\na,Which one?\n")
    records = list(iter_records(folder))
    assert summary(records) == [
        ("a.jpg", None, (), None, None),  # "a" in captions.csv could be either file: not guessed
        ("a.png", "Gray.", (), None, None),
        ("b", "Bee.", (), None, None),
        ("sub/a", None, (), None, None),
    ]
    assert [r.load().source_format for r in records[:2]] == ["jpeg", "png"]


def test_flat_folder_serves_any_requested_split(tmp_path):
    """The app asks for `test` by default; a folder without split subfolders is that split."""
    folder = write_image_folder(tmp_path / "phantoms", {"p1.png": gray_png(), "p2.png": gray_png()})
    (folder / "captions.csv").write_text("image_id,caption\np1,CT of the head.\n")
    assert summary(list(iter_records(folder, split="test"))) == [
        ("p1", "CT of the head.", (), None, None), ("p2", None, (), None, None)]


def test_captions_csv_with_wrong_columns(tmp_path):
    folder = write_image_folder(tmp_path / "bad", {"a.png": gray_png()})
    (folder / "captions.csv").write_text("file,text\na.png,hello\n")
    with pytest.raises(DataSourceError) as caught:
        iter_records(folder)
    assert str(caught.value) == f"'{folder / 'captions.csv'}' must have the columns image_id,caption (found: file, text)."


# --- hub -----------------------------------------------------------------------------------------

HINT = (
    "To use a local copy, download the parquet shards on a machine with network access, e.g. "
    "`hf download eltorio/ROCOv2-radiology --repo-type dataset --include 'data/test-*' --local-dir rocov2`, "
    "and pass the folder instead: --images rocov2/data --split test."
)


def test_hub_in_offline_mode(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(DataSourceError) as caught:
        iter_records("eltorio/ROCOv2-radiology", split="test", limit=5)
    assert str(caught.value) == (
        "No local file or folder 'eltorio/ROCOv2-radiology' exists, and it cannot be streamed from the "
        "Hugging Face hub: offline mode is on (HF_HUB_OFFLINE=1). " + HINT
    )


def test_hub_unreachable(monkeypatch):
    for variable in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"):
        monkeypatch.delenv(variable, raising=False)
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(DataSourceError) as caught:
        iter_records("eltorio/ROCOv2-radiology", split="test")
    assert str(caught.value) == (
        "No local file or folder 'eltorio/ROCOv2-radiology' exists, and it cannot be streamed from the "
        "Hugging Face hub: the hub is unreachable (127.0.0.1:9: Connection refused). " + HINT
    )


def test_hub_needs_a_split():
    with pytest.raises(DataSourceError) as caught:
        iter_records("eltorio/ROCOv2-radiology")
    assert str(caught.value) == (
        "No local file or folder 'eltorio/ROCOv2-radiology' exists; to stream it from the Hugging Face "
        "hub, choose a split (ROCOv2 has train, validation and test): --split test / split='test'."
    )


def test_streamed_rows_become_the_same_records_as_parquet(tmp_path):
    """The hub path minus the network: `datasets` streaming over local shards."""
    import datasets

    ids = write_rocov2_shards(tmp_path / "hubcopy", {"test": 4}, shards=2)
    files = sorted(str(p) for p in (tmp_path / "hubcopy" / "data").glob("test-*.parquet"))
    stream = datasets.load_dataset("parquet", data_files={"test": files}, split="test", streaming=True)
    records = list(iter_rows_as_records(iter(stream), split="test", where="local stream"))
    expected = list(iter_records(tmp_path / "hubcopy", split="test"))
    assert [r.image_id for r in records] == ids["test"]
    assert summary(records) == summary(expected)
    assert np.array_equal(np.asarray(records[0].load().display), np.asarray(expected[0].load().display))


def test_tiny_synthetic_phantom_gets_the_same_model_picture_as_a_loaded_file():
    from medcap.data.synthetic import synthetic_records

    loaded = synthetic_records(1, image_size=16)[0].load()
    assert loaded.display.size == (16, 16)
    assert loaded.image.mode == "RGB" and min(loaded.image.size) >= 28  # Qwen2-VL's minimum
