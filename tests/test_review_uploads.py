"""Uploads as a reviewable collection: only the derived PNG and technical metadata are kept."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from PIL import Image, PngImagePlugin

from medcap.review import UPLOADS_DATASET, UploadItemError, UploadStore
from medcap.review.uploads import keep_uploads_from_env

# What medcap.data's DICOM loader hands over (see medcap/data/metadata.py), free text included.
DICOM_METADATA = {
    "modality": "CT", "body_part": "CHEST", "study_description": "Doe^Jane follow-up",
    "series_description": "Jane Doe axial", "image_size": "64 × 64",
    "transfer_syntax": "Explicit VR Little Endian", "window": "C 40 / W 400 (default for CT)",
}
CAPTIONS = {"blip": {"caption": "ct of the chest", "seconds": 0.4, "error": ""},
            "qwen2-vl": {"caption": "", "seconds": None, "error": "out of memory"}}


def display(shade: int = 90) -> Image.Image:
    image = Image.new("RGB", (64, 64), (shade, shade, shade))
    image.info["comment"] = "PatientName=Doe^Jane"
    return image


def test_add_keeps_png_and_technical_metadata_only(tmp_path: Path) -> None:
    store = UploadStore(tmp_path / "uploads")
    item_id = store.add(display(), DICOM_METADATA, CAPTIONS, session="s1")
    assert item_id.startswith("upload-") and len(item_id) == len("upload-") + 12
    item = store.get(item_id)
    assert sorted(p.name for p in (tmp_path / "uploads" / item_id).iterdir()) == [
        "image.png", "item.json"]
    assert item.image_path == tmp_path / "uploads" / item_id / "image.png"
    assert item.metadata == {"modality": "CT", "body_part": "CHEST", "image_size": "64 × 64",
                             "transfer_syntax": "Explicit VR Little Endian",
                             "window": "C 40 / W 400 (default for CT)"}
    stored = (tmp_path / "uploads").rglob("*")
    assert not any(b"Doe" in p.read_bytes() for p in stored if p.is_file())
    with Image.open(item.image_path) as png:
        assert png.format == "PNG" and png.size == (64, 64) and "comment" not in png.info
    assert item.captions["blip"] == {"caption": "ct of the chest", "seconds": 0.4, "error": ""}
    assert item.captions["qwen2-vl"]["error"] == "out of memory"
    assert (item.reference, item.session) == ("", "s1")
    assert UPLOADS_DATASET == "uploads"


def test_same_image_same_item_new_captions_merge(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    first = store.add(display(), {}, {"blip": {"caption": "a"}})
    again = store.add(display(), {}, {"qwen2-vl": {"caption": "b"}})
    other = store.add(display(shade=30), {}, {"blip": {"caption": "c"}})
    assert first == again != other
    assert set(store.get(first).captions) == {"blip", "qwen2-vl"}
    assert [i.item_id for i in store.items()] == [first, other]


def test_reference_caption_is_kept_and_bounded(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    item_id = store.add(display(), {}, CAPTIONS)
    assert store.set_reference(item_id, "  Axial CT of the chest ").reference == \
        "Axial CT of the chest"
    assert UploadStore(tmp_path).get(item_id).reference == "Axial CT of the chest"
    with pytest.raises(UploadItemError, match="too long"):
        store.set_reference(item_id, "x" * 5000)
    with pytest.raises(UploadItemError, match="No uploaded image"):
        store.set_reference("upload-000000000000", "text")


@pytest.mark.parametrize("bad", ["../../etc/passwd", "upload-../../x", "upload-ABCDEF123456",
                                 "upload-0123456789ab/..", "", "upload-0123456789abc"])
def test_ids_that_are_not_upload_ids_build_no_path(tmp_path: Path, bad: str) -> None:
    store = UploadStore(tmp_path / "uploads")
    assert store.get(bad) is None
    with pytest.raises(UploadItemError, match="not an upload id"):
        store.set_reference(bad, "text")


def test_forget_session_deletes_only_when_not_kept(tmp_path: Path) -> None:
    kept = UploadStore(tmp_path / "kept", keep=True)
    kept.add(display(), {}, CAPTIONS, session="s1")
    assert kept.forget_session("s1") == 0 and len(kept.items()) == 1
    store = UploadStore(tmp_path / "gone", keep=False)
    mine = store.add(display(), {}, CAPTIONS, session="s1")
    shared = store.add(display(shade=20), {}, CAPTIONS, session="s1")
    store.add(display(shade=20), {}, CAPTIONS, session="s2")
    theirs = store.add(display(shade=40), {}, CAPTIONS, session="s2")
    assert store.forget_session("") == 0
    assert store.forget_session("s1") == 1
    assert store.get(mine) is None and not (tmp_path / "gone" / mine).exists()
    assert store.get(shared) is not None, "another session uploaded it too"
    assert store.forget_session("s2") == 2
    assert store.items() == [] and store.get(theirs) is None


def test_captions_are_bounded(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    item_id = store.add(display(), {}, {"blip": {"caption": "x" * 10_000, "seconds": "nan"}})
    card = store.get(item_id).captions["blip"]
    assert len(card["caption"]) == 4000 and card["seconds"] is None
    with pytest.raises(UploadItemError, match="model name is too long"):
        store.add(display(), {}, {"m" * 300: {"caption": "x"}})


def test_item_json_is_plain_json(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    item_id = store.add(display(), {"modality": "MR"}, CAPTIONS, session="s")
    data = json.loads((tmp_path / item_id / "item.json").read_text(encoding="utf-8"))
    assert data["item_id"] == item_id and data["sessions"] == ["s"]


def test_sixteen_bit_and_float_images_are_stored(tmp_path: Path) -> None:
    store = UploadStore(tmp_path)
    for mode in ("I;16", "F", "P", "CMYK"):
        item_id = store.add(Image.new(mode, (8, 8)), {}, {})
        with Image.open(store.get(item_id).image_path) as png:
            assert png.size == (8, 8)


def test_keep_setting_from_env() -> None:
    assert keep_uploads_from_env({}) is True
    assert keep_uploads_from_env({"MEDCAP_KEEP_UPLOADS": "0"}) is False
    with pytest.raises(ValueError, match="MEDCAP_KEEP_UPLOADS"):
        keep_uploads_from_env({"MEDCAP_KEEP_UPLOADS": "sometimes"})
    assert UploadStore.from_env(Path("x"), {"MEDCAP_KEEP_UPLOADS": "0"}).keep is False


def test_png_text_chunks_are_not_copied(tmp_path: Path) -> None:
    source = tmp_path / "in.png"
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "Doe^Jane")
    Image.new("L", (16, 16), 7).save(source, pnginfo=info)
    with Image.open(source) as opened:
        item_id = UploadStore(tmp_path / "u").add(opened, {}, {})
    assert b"Doe" not in (tmp_path / "u" / item_id / "image.png").read_bytes()
