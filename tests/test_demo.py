"""The shipped demo workspace: when it opens, and a first run on a machine with no model hub.

The end-to-end test starts `python app.py` as a new user would (no settings, hub unreachable,
an empty Hugging Face cache) and drives the page with gradio_client: caption an example and an
extensionless DICOM file, open a phantom in Compare with its ground truth and scores, save a
review and export it.
"""

from __future__ import annotations

import csv
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from medcap.app.availability import unavailable_reason
from medcap.app.demo import DEMO_MODEL, choose_workspace, demo_dir
from medcap.app.options import AppOptions
from medcap.config import Settings
from medcap.models import read_manifest, resolve_spec

REPO = Path(__file__).resolve().parents[1]


def _settings(tmp_path: Path, models: list[str]) -> Settings:
    return Settings(model_names=models, reviews_db=tmp_path / "reviews.sqlite",
                    runs_dir=tmp_path / "runs")


def test_shipped_demo_is_complete_and_small() -> None:
    folder = demo_dir()
    manifest = read_manifest(folder / "blip-phantoms")
    assert manifest is not None and manifest.family == "blip" and manifest.name == DEMO_MODEL
    assert "python -m finetune.blip --base-model scratch" in (folder / "README.md").read_text()
    with open(folder / "phantoms" / "captions.csv", newline="", encoding="utf-8") as handle:
        truth = {row["image_id"]: row["caption"] for row in csv.DictReader(handle)}
    assert len(truth) >= 12 and all((folder / "phantoms" / f"{i}.png").is_file() for i in truth)
    with open(folder / "results.csv", newline="", encoding="utf-8") as handle:
        results = list(csv.DictReader(handle))
    assert {r["image_id"] for r in results} == set(truth)
    assert {r["model"] for r in results} == {DEMO_MODEL}
    assert all(r["original_caption"] == truth[r["image_id"]] for r in results)
    size = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    assert size < 8 * 1024 * 1024, f"the demo must stay a few MB, is {size / 2**20:.1f} MiB"


def test_demo_on_request_and_never_when_switched_off(tmp_path: Path, tiny_blip_dir: Path) -> None:
    settings = _settings(tmp_path, [f"blip={tiny_blip_dir}"])
    demo = choose_workspace(settings, AppOptions(examples=[]), {"MEDCAP_DEMO": "1"})
    assert demo.settings.model_names == [f"{DEMO_MODEL}={demo_dir() / 'blip-phantoms'}"]
    assert demo.settings.reviews_db == settings.reviews_db, "reviews stay where configured"
    assert demo.options.results_csv == demo_dir() / "results.csv"
    assert "Demo workspace" in demo.notice and "synthetic" in demo.notice
    broken = _settings(tmp_path, [f"mine={tmp_path / 'missing'}"])
    kept = choose_workspace(broken, AppOptions(examples=[]), {"MEDCAP_DEMO": "0"})
    assert kept.settings is broken and kept.notice == ""


def test_demo_opens_by_itself_only_when_nothing_configured_can_work(
        tmp_path: Path, tiny_blip_dir: Path) -> None:
    options = AppOptions(examples=[])
    broken = _settings(tmp_path, [f"mine={tmp_path / 'missing'}", "blip2-lora"])
    opened = choose_workspace(broken, options, {})
    assert opened.settings.data_source == str(demo_dir() / "phantoms")
    assert "None of the configured models (mine=" in opened.notice
    working = _settings(tmp_path, [f"blip={tiny_blip_dir}", "blip2-lora"])
    assert choose_workspace(working, options, {}).notice == ""
    own_results = AppOptions(examples=[], results_csv=tmp_path / "mine.csv")
    assert choose_workspace(broken, own_results, {}).notice == "", "the user's own results win"


def test_unavailable_reason_reads_folders_and_the_hub_state(tmp_path: Path, tiny_blip_dir) -> None:
    assert unavailable_reason(resolve_spec("blip", str(tiny_blip_dir))) is None
    missing = resolve_spec("blip").with_overrides(source=str(tmp_path / "gone"))
    assert str(unavailable_reason(missing)) == f"the folder {tmp_path / 'gone'} does not exist"
    never_cached = resolve_spec("blip").with_overrides(source="nobody/not-a-model-0")
    assert str(unavailable_reason(never_cached, lambda: "there is no internet connection")) == (
        "nobody/not-a-model-0 is not downloaded and there is no internet connection")
    assert unavailable_reason(never_cached, lambda: None) is None  # it can be downloaded


# ---------------------------------------------------------------- the first run, end to end
def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory):
    """`python app.py` from an empty folder: default settings, hub offline, empty HF cache."""
    work = tmp_path_factory.mktemp("first-run")
    port = _free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("MEDCAP_")}
    env.update(HF_HUB_OFFLINE="1", HF_HOME=str(work / "hf"), GRADIO_SERVER_PORT=str(port),
               GRADIO_TEMP_DIR=str(work / "gradio"), GRADIO_ANALYTICS_ENABLED="False")
    log = open(work / "app.log", "w")
    process = subprocess.Popen([sys.executable, str(REPO / "app.py")], cwd=work, env=env,
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, (work / "app.log").read_text()[-3000:]
            try:
                with urllib.request.urlopen(url, timeout=2) as response:
                    page = response.read().decode("utf-8")
                break
            except OSError:
                assert time.monotonic() < deadline, "the app did not answer within 120 s"
                time.sleep(0.2)
        yield url, page, work
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def test_first_run_offline_opens_the_demo_with_its_banner(first_run) -> None:
    url, _, _ = first_run
    with urllib.request.urlopen(url + "config", timeout=10) as response:
        config = response.read().decode("utf-8")
    assert "Demo workspace." in config and "None of the configured models" in config
    assert "blip2-lora" in config  # the banner names what was configured


def test_first_run_captions_an_example_and_an_extensionless_dicom(first_run, tmp_path) -> None:
    from gradio_client import Client, handle_file

    url, _, _ = first_run
    client = Client(url, verbose=False)
    phantom = demo_dir() / "phantoms" / "phantom-test-00000.png"
    captions = client.predict(handle_file(str(phantom)), [DEMO_MODEL], "", api_name="/caption")[3]
    assert captions[0]["model"] == DEMO_MODEL and captions[0]["error"] == ""
    assert "lesion" in captions[0]["caption"], captions[0]
    dicom = tmp_path / "IM000001"  # as PACS and CDs export them
    shutil.copy(REPO / "assets" / "examples" / "CT_small.dcm", dicom)
    result = client.predict(handle_file(str(dicom)), [DEMO_MODEL], "", api_name="/caption")
    assert "CT" in result[1] and result[3][0]["caption"]


def test_first_run_evaluation_table_lists_the_phantom_test_set(first_run) -> None:
    from gradio_client import Client

    url, _, _ = first_run
    opened = Client(url, verbose=False).predict(api_name="/open_evaluation")
    summary, label = opened[0], opened[6]
    rows = int(label.split(" of ")[1].split()[0])  # the 24 phantoms, plus uploads captioned here
    assert label.startswith("Rows 1–") and 24 <= rows <= 26, label
    assert [row[0] for row in summary["data"]] == [DEMO_MODEL]


def test_first_run_compares_reviews_and_exports(first_run) -> None:
    from gradio_client import Client

    url, _, work = first_run
    client = Client(url, verbose=False)
    image_id = "phantom-test-00003"
    with open(demo_dir() / "phantoms" / "captions.csv", newline="", encoding="utf-8") as handle:
        truth = {row["image_id"]: row["caption"] for row in csv.DictReader(handle)}[image_id]
    outputs = client.predict(image_id, "Dr Demo", api_name="/open_item")
    assert truth in outputs[1], "ground truth shown"
    card = outputs[2]
    assert "BLEU-4" in card and "CIDEr-D" in card and "n/a" not in card.split("BLEU-4")[1][:40]
    answer = client.predict(image_id, DEMO_MODEL, "Dr Demo", "minor error", "", "side?", 0,
                            api_name="/review_save")
    assert answer["saved"], answer
    path, message = client.predict(api_name="/export_reviews")
    assert message.startswith("Exported")
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["image_id"], r["model"], r["verdict"]) for r in rows] == [
        (image_id, DEMO_MODEL, "minor error")]
    assert (work / "reviews.sqlite").is_file(), "reviews kept in the working folder"
