"""The real page in headless Chromium: upload and caption, review, evaluation, export.

Needs Debian's `chromium` (/usr/bin/chromium) and `pip install playwright` (no browser
download); skips cleanly when either is missing. Saves one screenshot per tab under
test-output/ (or $MEDCAP_TEST_OUTPUT).
"""

from __future__ import annotations

import contextlib
import csv
import io
import os
import re
import time
import urllib.request
from pathlib import Path

import pytest
from PIL import Image

from tests.test_app import running_app, upload_rows

CHROMIUM = Path(os.environ.get("MEDCAP_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking", "--disable-component-update",
                  "--no-first-run"]
OUTPUT = Path(os.environ.get("MEDCAP_TEST_OUTPUT",
                             Path(__file__).resolve().parents[1] / "test-output"))
TIMEOUT_MS = 60_000

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def page_url(tmp_path_factory, tiny_blip_dir, tiny_qwen2_vl_dir):
    work = tmp_path_factory.mktemp("browser")
    with running_app(work, tiny_blip_dir, tiny_qwen2_vl_dir) as (url, studio):
        yield url, studio, work


@contextlib.contextmanager
def open_page(url: str, width: int = 1400, height: int = 1000, ready: str = "not a medical device"):
    """Headless Chromium on `url`, once the page shows `ready` (every browser test's page)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        context = browser.new_context(viewport={"width": width, "height": height})
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.goto(url, wait_until="load")
        page.get_by_text(ready).first.wait_for()
        try:
            yield page
        finally:
            browser.close()


@pytest.fixture(scope="module")
def page(page_url):
    with open_page(page_url[0]) as page:
        yield page


def textbox(page, elem_id: str):
    return page.locator(f"#{elem_id} textarea, #{elem_id} input").first


def open_tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def test_1_caption_tab_upload_and_caption(page, tmp_path) -> None:
    image = tmp_path / "scan.png"
    Image.new("RGB", (64, 48), (40, 90, 160)).save(image)
    page.locator("#upload input[type=file]").set_input_files(str(image))
    page.locator("#caption-button").click()
    finished = page.locator('#caption-cards [data-model="blip"] .mc-meta').get_by_text(SECONDS)
    finished.wait_for()
    assert page.locator('#caption-cards [data-model="blip"] .mc-caption').inner_text().strip()
    page.screenshot(path=str(OUTPUT / "tab-1-caption.png"), full_page=True)


SECONDS = re.compile(r"\d+\.\d\d s")  # a finished card's time


@contextlib.contextmanager
def slow_generation(studio, label: str, tokens: int, seconds_per_token: float):
    """Make a tiny model as slow as a real one on a CPU, so a person (or this test) can see its
    card grow: a fixed caption length and a pause after each token (cut short by Stop)."""
    captioner = studio.pool.loop(label).captioner
    original_rows, original_spec = captioner.generate_rows, captioner.spec
    captioner.spec = original_spec.with_overrides(min_new_tokens=tokens, max_new_tokens=tokens)

    def slow(images, prompts, on_token, stops):
        def on_token_slowly(row, token):
            on_token(row, token)
            stops[row].wait(seconds_per_token)
        return original_rows(images, prompts, on_token_slowly, stops)

    captioner.generate_rows = slow
    try:
        yield
    finally:
        captioner.generate_rows, captioner.spec = original_rows, original_spec


def caption_fresh_upload(page, folder: Path) -> None:
    """Upload again (the server deletes an upload once read), then press Caption."""
    image = folder / "scan.png"
    Image.new("RGB", (64, 48), (40, 90, 160)).save(image)
    clear = page.locator("#upload").get_by_label("Clear")
    if clear.count():
        clear.first.click()
    page.locator("#upload input[type=file]").set_input_files(str(image))
    page.locator("#caption-button").click()


def test_1b_caption_card_grows_word_by_word_and_stop_ends_it(page, page_url, tmp_path) -> None:
    _, studio, _ = page_url
    card = page.locator('#caption-cards [data-model="blip"]')
    with slow_generation(studio, "blip", tokens=12, seconds_per_token=0.25):
        caption_fresh_upload(page, tmp_path)
        card.locator(".mc-meta").get_by_text("Generating").wait_for()  # the new run's card
        seen: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            caption = card.locator(".mc-caption")
            text = caption.inner_text().strip() if caption.count() else ""
            if text and (not seen or seen[-1] != text):
                seen.append(text)
            if card.locator(".mc-meta").get_by_text(SECONDS).count():
                break
            page.wait_for_timeout(80)
        final = card.locator(".mc-caption").inner_text().strip()
    assert len(set(seen) - {final}) >= 2, seen  # several growing texts before the whole one
    assert all(final.startswith(text) or text == final for text in seen)

    with slow_generation(studio, "blip", tokens=60, seconds_per_token=0.5):
        caption_fresh_upload(page, tmp_path)
        card.locator(".mc-meta").get_by_text("Generating").wait_for()
        card.locator(".mc-caption").wait_for()
        page.locator("#stop-button").click()
        card.locator(".mc-meta").get_by_text("Stopped.").wait_for()
    page.screenshot(path=str(OUTPUT / "tab-1-caption-stopped.png"), full_page=True)


def test_2_compare_tab_review_is_saved_and_reappears(page, page_url) -> None:
    _, studio, _ = page_url
    open_tab(page, "Compare")
    page.locator("#blind input").uncheck()  # named cards in model order (blind: test_browser_review)
    reviewer = textbox(page, "reviewer")
    reviewer.fill("Dr Browser")
    textbox(page, "image-id").fill("ROCOv2_2023_test_000000")
    page.get_by_role("button", name="Open").click()
    page.get_by_text("Ground truth — ROCOv2_2023_test_000000").wait_for()
    page.locator("#verdict-0").get_by_label("minor error", exact=True).check()
    textbox(page, "corrected-0").fill("Axial CT of the chest, lung window.")
    page.locator("#save-0").click()
    page.locator("#status-0").get_by_text("Saved: minor error").wait_for()
    saved = studio.store.reviews_for_item("roco-test", "ROCOv2_2023_test_000000")
    assert [(r.key.reviewer, r.verdict) for r in saved] == [("Dr Browser", "minor error")]
    page.screenshot(path=str(OUTPUT / "tab-2-compare.png"), full_page=True)
    # Away and back again: the saved review is shown in the widgets.
    page.locator("#next-button").click()
    page.get_by_text("Ground truth — ROCOv2_2023_test_000000").wait_for(state="detached")
    textbox(page, "image-id").fill("ROCOv2_2023_test_000000")
    page.get_by_role("button", name="Open").click()
    page.locator("#status-0").get_by_text("Saved review, version 1").wait_for()
    assert textbox(page, "corrected-0").input_value() == "Axial CT of the chest, lung window."


def test_2b_unsaved_review_text_survives_a_tab_switch_and_the_name_box(page) -> None:
    draft = "Unsaved: consolidation in the left lower lobe."
    textbox(page, "corrected-0").fill(draft)
    textbox(page, "reviewer").click()
    textbox(page, "image-id").click()  # the name box loses focus without a change
    open_tab(page, "Evaluation")
    open_tab(page, "Compare")
    page.locator("#compare-status").get_by_text("images in").wait_for()
    assert textbox(page, "corrected-0").input_value() == draft
    page.locator("#status-0").get_by_text("Saved review, version 1").wait_for()  # not re-saved


def test_3_evaluation_tab_shows_a_page_and_opens_a_row(page, page_url) -> None:
    _, studio, _ = page_url
    open_tab(page, "Evaluation")
    rows = 4 + upload_rows(studio)  # the upload captioned in test_1 is reviewable too
    page.locator("#page-label").get_by_text(f"Rows 1–{rows} of {rows}").wait_for()
    if studio.evaluation.metrics:  # scores exist when medcap.metrics is installed
        page.locator("#distribution canvas, #distribution svg").first.wait_for()
    page.screenshot(path=str(OUTPUT / "tab-3-evaluation.png"), full_page=True)
    page.locator("#evaluation-table").get_by_text("mri of the brain").first.click()
    page.get_by_text("Ground truth — ROCOv2_2023_test_000001").wait_for()


def test_4_export_tab_downloads_a_safe_csv(page, page_url) -> None:
    url = page_url[0]
    open_tab(page, "Export")
    page.locator("#export-button").click()
    link = page.locator("#export-file a").first
    link.wait_for()
    page.screenshot(path=str(OUTPUT / "tab-4-export.png"), full_page=True)
    href = link.get_attribute("href")
    with urllib.request.urlopen(href if href.startswith("http") else url.rstrip("/") + href) as r:
        raw = r.read()
    assert raw.startswith(b"\xef\xbb\xbf")
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"), newline="")))
    assert [(r["reviewer"], r["verdict"]) for r in rows] == [("Dr Browser", "minor error")]


def test_5_agreement_tab_computes_on_demand(page, page_url) -> None:
    _, studio, _ = page_url
    for reviewer, verdicts in {"Dr Browser": ["minor error", "correct", "major error"],
                               "Dr Second": ["minor error", "minor error", "major error"]}.items():
        for (image_id, model), verdict in zip([("ROCOv2_2023_test_000000", "qwen2-vl"),
                                               ("ROCOv2_2023_test_000001", "blip"),
                                               ("ROCOv2_2023_test_000002", "blip")], verdicts):
            studio.save_review(image_id, model, reviewer, verdict, "", "", 0,
                               categories=("missed_finding",) if verdict == "major error" else ())
    open_tab(page, "Agreement")
    page.locator("#agreement-compute").click()
    page.locator("#agreement-status").get_by_text("completed reviews of").wait_for()
    page.locator("#agreement-plot-0 canvas, #agreement-plot-0 svg").first.wait_for()
    page.screenshot(path=str(OUTPUT / "tab-5-agreement.png"), full_page=True)
    assert "Dr Second" in page.locator("#agreement-table-1").inner_text()
    assert "NaN" not in page.locator("#agreement-table-0").inner_text()
