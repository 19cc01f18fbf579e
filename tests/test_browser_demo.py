"""The demo workspace in headless Chromium: each tab works and is screenshotted
(test-output/demo-*.png, or under $MEDCAP_TEST_OUTPUT). Skips without Chromium or playwright."""

from __future__ import annotations

import re

import pytest

from medcap.app.demo import demo_dir
from tests.test_browser import (
    CHROMIUM, CHROMIUM_FLAGS, OUTPUT, SECONDS, TIMEOUT_MS, open_tab, sync_api, textbox,
)


@pytest.fixture(scope="module")
def demo_page(tmp_path_factory):
    import app
    from medcap.app.demo import choose_workspace
    from medcap.app.options import AppOptions
    from medcap.app.studio import Studio
    from medcap.config import Settings

    work = tmp_path_factory.mktemp("browser-demo")
    monkey = pytest.MonkeyPatch()
    monkey.setenv("GRADIO_TEMP_DIR", str(work / "gradio"))
    workspace = choose_workspace(Settings(reviews_db=work / "reviews.sqlite"),
                                 AppOptions(export_dir=work / "gradio" / "exports"),
                                 {"MEDCAP_DEMO": "1"})
    studio = Studio(workspace.settings, workspace.options)
    studio.notice = workspace.notice
    demo = app.build_demo(studio)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                            **app.LAUNCH_OPTIONS)
    OUTPUT.mkdir(parents=True, exist_ok=True)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.set_default_timeout(TIMEOUT_MS)
            page = context.new_page()
            page.goto(url, wait_until="load")
            page.locator("#demo-banner").wait_for()
            yield page
            browser.close()
    finally:
        demo.close()
        monkey.undo()


def test_demo_1_caption_a_phantom_example(demo_page) -> None:
    page = demo_page
    assert "trained on synthetic phantom" in page.locator("#demo-banner").inner_text()
    phantom = demo_dir() / "phantoms" / "phantom-test-00000.png"
    page.locator("#upload input[type=file]").set_input_files(str(phantom))
    page.locator("#caption-button").click()
    card = page.locator('#caption-cards [data-model="demo-blip"]')
    # Cards stream: read the caption once its time is shown (the caption is whole), not at its
    # first word ("ct" was read once when the machine was slow).
    card.locator(".mc-meta").get_by_text(SECONDS).wait_for()
    assert "lesion" in card.locator(".mc-caption").inner_text()
    page.screenshot(path=str(OUTPUT / "demo-1-caption.png"), full_page=True)


def test_demo_2_compare_shows_ground_truth_scores_and_saves(demo_page) -> None:
    page = demo_page
    open_tab(page, "Compare")
    page.locator("#compare-status").get_by_text("images in").wait_for()
    textbox(page, "reviewer").fill("Dr Demo")
    # Leaving the name box reopens the current image for that reviewer; when that answer lands
    # after our Open, the page shows the first image again, so open until ours stays.
    for _ in range(3):
        textbox(page, "image-id").fill("phantom-test-00003")
        page.get_by_role("button", name="Open").click()
        try:
            page.get_by_text("Ground truth — phantom-test-00003").wait_for(timeout=20_000)
            break
        except sync_api.TimeoutError:
            continue
    page.get_by_text("Ground truth — phantom-test-00003").wait_for()
    page.get_by_text("BLEU-4").first.wait_for()
    page.locator("#verdict-0").get_by_label("major error", exact=True).check()
    page.locator("#save-0").click()
    page.locator("#status-0").get_by_text("Saved: major error").wait_for()
    page.screenshot(path=str(OUTPUT / "demo-2-compare.png"), full_page=True)


def test_demo_3_evaluation_and_4_export(demo_page) -> None:
    page = demo_page
    open_tab(page, "Evaluation")
    # The 24 test phantoms, plus the upload captioned in the first test.
    page.locator("#page-label").get_by_text(re.compile(r" of 2[45] ")).wait_for()
    page.screenshot(path=str(OUTPUT / "demo-3-evaluation.png"), full_page=True)
    open_tab(page, "Export")
    page.locator("#export-button").click()
    page.locator("#export-file a").first.wait_for()
    page.screenshot(path=str(OUTPUT / "demo-4-export.png"), full_page=True)
