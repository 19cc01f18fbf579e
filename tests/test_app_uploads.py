"""What an upload leaves behind and what it may cost (issue 15, items 3 and 4): the served app
on 127.0.0.1 with tiny models, driven through gradio_client, plus the plain helpers behind it."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from PIL import Image

from medcap.app.launch import blocks_kwargs, launch_kwargs, server_name
from medcap.app.options import AppOptions
from medcap.app.tempfiles import discard_upload, prune_exports
from tests.support.data_fixtures import encode, png_bomb
from tests.test_app import HAS_DATA_LAYER, running_app

PATIENT_FILE = "Doe_Jane_1.dcm"


@pytest.fixture(scope="module")
def small_limits(tmp_path_factory, tiny_blip_dir, tiny_qwen2_vl_dir):
    """(client factory, studio, GRADIO_TEMP_DIR, url) of an app taking uploads up to 1 MB."""
    from gradio_client import Client

    work = tmp_path_factory.mktemp("uploads")
    with running_app(work, tiny_blip_dir, tiny_qwen2_vl_dir, max_upload_mb=1) as (url, studio):
        yield (lambda: Client(url, verbose=False)), studio, work / "gradio-tmp", url


def _files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file()]


def _holding(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in _files(folder) if needle in p.read_bytes()]


@pytest.mark.skipif(not HAS_DATA_LAYER, reason="DICOM reading comes with medcap.data")
def test_uploaded_dicom_is_gone_once_captioned(small_limits, tmp_path) -> None:
    from gradio_client import handle_file
    from pydicom.data import get_testdata_file

    client_factory, _, temp, _ = small_limits
    upload = tmp_path / PATIENT_FILE
    shutil.copyfile(get_testdata_file("CT_small.dcm"), upload)
    result = client_factory().predict(handle_file(str(upload)), ["blip"], "", api_name="/caption")
    assert result[3][0]["caption"] and "CT" in result[1]
    assert [p for p in _files(temp) if PATIENT_FILE in p.name] == []
    assert _holding(temp, upload.read_bytes()[-4096:]) == []  # no copy under another name
    assert _holding(temp, b"CompressedSamples") == []  # the file's PatientName
    assert [p for p in _files(temp) if p.stat().st_size == 0] == [], "no empty temp files"


def test_refused_upload_is_deleted_too(small_limits, tmp_path) -> None:
    from gradio_client import handle_file

    client_factory, _, temp, _ = small_limits
    fake = tmp_path / "Doe_Jane_notes.png"
    fake.write_text("Jane Doe, not a picture")
    with pytest.raises(Exception, match="Doe_Jane_notes.png"):
        client_factory().predict(handle_file(str(fake)), ["blip"], "", api_name="/caption")
    assert [p for p in _files(temp) if "Doe_Jane" in p.name] == []


def test_upload_above_the_size_limit_is_refused(small_limits, tmp_path) -> None:
    from gradio_client import handle_file

    import httpx

    client_factory, _, temp, url = small_limits
    big = tmp_path / "big_scan.png"
    big.write_bytes(encode(Image.new("L", (8, 8)), "PNG") + os.urandom(2 * 1024 * 1024))
    with pytest.raises(Exception, match="exceeds the maximum file size of 1048576 bytes"):
        client_factory().predict(handle_file(str(big)), ["blip"], "", api_name="/caption")
    # A caller that skips the client's own check is refused by the server, before the disk.
    response = httpx.post(f"{url}gradio_api/upload",
                          files={"files": ("big_scan.png", big.read_bytes())}, timeout=30)
    assert response.status_code == 413 and "maximum allowed size" in response.text
    assert [p for p in _files(temp) if p.stat().st_size > 1024 * 1024] == []


def test_64_megapixel_upload_is_refused_with_a_clear_message(small_limits, tmp_path) -> None:
    from gradio_client import handle_file

    client_factory, *_ = small_limits
    huge = tmp_path / "huge.png"
    huge.write_bytes(png_bomb(8000, 8000))  # 8 kB on disk, 64 MP decoded
    with pytest.raises(Exception) as caught:
        client_factory().predict(handle_file(str(huge)), ["blip"], "", api_name="/caption")
    assert "'huge.png' is too large to decode: 8000×8000 pixels, 64.0 megapixels, above the " \
           "40.0-megapixel limit" in str(caught.value)
    assert "downscale it" in str(caught.value)


def test_large_upload_is_shown_and_captioned_reduced(small_limits, tmp_path) -> None:
    from gradio_client import handle_file

    client_factory, *_ = small_limits
    wide = tmp_path / "wide.png"
    Image.new("RGB", (6000, 4000), (90, 40, 160)).save(wide)  # 24 MP, a few kB
    result = client_factory().predict(handle_file(str(wide)), ["blip"], "", api_name="/caption")
    assert result[3][0]["caption"]
    with Image.open(result[0]) as preview:
        assert preview.width * preview.height <= 4_000_000
        assert preview.size == (2000, 1334)  # reduced by 3 (Image.reduce rounds up)


def test_exports_do_not_pile_up(small_limits) -> None:
    client_factory, studio, *_ = small_limits
    client = client_factory()
    assert client.predict("ROCOv2_2023_test_000000", "blip", "Dr Pile", "correct", "", "", 0,
                          api_name="/review_save")["saved"]
    for _ in range(8):
        client.predict(api_name="/export_reviews")
    exports = list(studio.options.export_dir.glob("medcap-reviews-*.csv"))
    assert len(exports) == studio.options.exports_kept == 5


def test_server_stop_clears_what_gradio_kept(tmp_path, tiny_blip_dir, tiny_qwen2_vl_dir) -> None:
    from gradio_client import Client, handle_file

    work = tmp_path / "work"
    scan = tmp_path / "scan.png"
    Image.new("RGB", (64, 48), (10, 200, 30)).save(scan)
    with running_app(work, tiny_blip_dir, tiny_qwen2_vl_dir) as (url, _):
        Client(url, verbose=False).predict(handle_file(str(scan)), ["blip"], "",
                                           api_name="/caption")
        kept = _files(work / "gradio-tmp")
        assert kept  # the derived preview, while the page may still show it
    assert [p for p in kept if p.exists()] == []


# --- the plain helpers -------------------------------------------------------------------------

def test_discard_upload_touches_only_gradio_uploads(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    upload = tmp_path / "gradio" / "abc123" / PATIENT_FILE
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"DICM data")
    example = tmp_path / "assets" / "CT_small.dcm"
    example.parent.mkdir()
    example.write_bytes(b"example")
    cached_example = tmp_path / "gradio" / "def456" / "CT_small.dcm"
    cached_example.parent.mkdir()
    cached_example.write_bytes(b"example")
    own = tmp_path / "mine.dcm"
    own.write_bytes(b"DICM data")

    assert discard_upload(upload, keep=[example])
    assert not upload.parent.exists(), "Gradio's per-upload folder goes too"
    assert not discard_upload(cached_example, keep=[example]), "an example is served again"
    assert not discard_upload(own), "a caller's own file is never deleted"
    assert cached_example.exists() and own.exists()


def test_second_caption_of_a_discarded_upload_says_upload_again(tmp_path, monkeypatch) -> None:
    from medcap.app.studio import Studio, UploadError
    from medcap.config import Settings

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    studio = Studio(Settings(model_names=[], reviews_db=tmp_path / "r.sqlite", check_memory=False),
                    AppOptions(examples=[]))
    gone = tmp_path / "gradio" / "abc" / "scan.png"
    with pytest.raises(UploadError, match="upload the file again"):
        studio.caption_upload(gone, ["blip"])


def test_the_same_session_can_caption_its_upload_again_after_the_file_is_gone(
        tmp_path, monkeypatch) -> None:
    """Another prompt or other models on the same upload: the decoded picture is kept in memory
    for its session (never the file); other sessions, and the session after its tab closed, are
    told to upload again."""
    from medcap.app.studio import Studio, UploadError
    from medcap.config import Settings

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    studio = Studio(Settings(model_names=[], reviews_db=tmp_path / "r.sqlite", check_memory=False),
                    AppOptions(examples=[]))
    upload = tmp_path / "gradio" / "abc" / "scan.png"
    upload.parent.mkdir(parents=True)
    Image.new("L", (64, 48), 90).save(upload)
    first = studio.caption_upload(upload, ["blip"], session="tab-1")
    assert not upload.exists(), "the file is deleted once decoded"
    again = studio.caption_upload(upload, ["blip"], "Name the modality.", session="tab-1")
    assert again.preview.size == first.preview.size == (64, 48)
    assert again.metadata == first.metadata
    with pytest.raises(UploadError, match="upload the file again"):
        studio.caption_upload(upload, ["blip"], session="tab-2")
    with pytest.raises(UploadError, match="upload the file again"):
        studio.caption_upload(upload, ["blip"])  # a script without a session
    studio.forget_session("tab-1")
    with pytest.raises(UploadError, match="upload the file again"):
        studio.caption_upload(upload, ["blip"], session="tab-1")


def test_decoded_uploads_keep_one_upload_for_the_most_recent_sessions() -> None:
    from medcap.app.decoded import DecodedUploads

    kept = DecodedUploads(sessions=2)
    kept.remember("a", "/tmp/x/1.png", "one")
    kept.remember("a", "/tmp/x/2.png", "two")  # a session's next upload replaces its last
    assert kept.recall("a", "/tmp/x/1.png") is None and kept.recall("a", "/tmp/x/2.png") == "two"
    kept.remember("b", "/tmp/x/3.png", "three")
    kept.remember("c", "/tmp/x/4.png", "four")  # "a" was the least recently used
    assert len(kept) == 2 and kept.recall("a", "/tmp/x/2.png") is None
    assert kept.recall("b", "/tmp/x/3.png") == "three"


def test_prune_keeps_the_newest_exports_and_drops_old_ones(tmp_path) -> None:
    now = time.time()
    for minutes_old in (1, 2, 3, 4, 5, 6, 90):
        path = tmp_path / f"medcap-reviews-{minutes_old:03d}.csv"
        path.write_text("x")
        os.utime(path, (now - minutes_old * 60, now - minutes_old * 60))
    (tmp_path / "notes.csv").write_text("not an export")
    assert prune_exports(tmp_path, keep=4, max_age_s=3600, now=now) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "medcap-reviews-001.csv", "medcap-reviews-002.csv", "medcap-reviews-003.csv",
        "medcap-reviews-004.csv", "notes.csv"]
    assert prune_exports(tmp_path, keep=4, max_age_s=150, now=now) == 2


def test_launch_settings_come_from_the_environment() -> None:
    options = AppOptions.from_env({"MEDCAP_MAX_UPLOAD_MB": "20", "MEDCAP_TEMP_MINUTES": "30"})
    assert launch_kwargs(options) == {"max_file_size": 20 * 1024 * 1024}
    assert blocks_kwargs(options) == {"delete_cache": (300, 1800)}
    assert launch_kwargs(AppOptions(examples=[])) == {"max_file_size": 50 * 1024 * 1024}
    assert server_name({}) == "127.0.0.1" and server_name({"SPACE_ID": "x/y"}) == "0.0.0.0"
    with pytest.raises(ValueError, match="MEDCAP_MAX_UPLOAD_MB must be 1 or more megabytes"):
        AppOptions.from_env({"MEDCAP_MAX_UPLOAD_MB": "0"})
