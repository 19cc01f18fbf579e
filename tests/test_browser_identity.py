"""The reviewer box in headless Chromium: locally a typed name with the "not verified" note beside
it; with sign-in on, the box shows the signed-in account (Gradio's sign-in, mocked outside a
Space as in tests/test_app_identity.py) and a review saved from the page is filed under it.
Screenshots: test-output/compare-reviewer-local.png, compare-reviewer-signed-in.png."""

from __future__ import annotations

import pytest

from medcap.app.identity import NONE, OAUTH
from tests.test_app_identity import serving
from tests.test_browser import CHROMIUM, CHROMIUM_FLAGS, OUTPUT, TIMEOUT_MS, textbox

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

pytestmark = pytest.mark.filterwarnings("ignore:Gradio does not support OAuth")


def compare_page(playwright, url: str):
    browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.goto(url, wait_until="load")
    page.get_by_text("not a medical device").first.wait_for()
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-status").get_by_text("images in").wait_for()
    return browser, page


def header(page):
    """The Compare tab's first row: reviewer box, collection, modality, image id."""
    return page.locator("#reviewer").locator("xpath=ancestor::div[contains(@class, 'row')][1]")


def test_local_names_are_typed_with_a_note_that_they_are_not_verified(tmp_path,
                                                                      monkeypatch) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with serving(tmp_path, NONE, monkeypatch) as (url, studio), \
            sync_api.sync_playwright() as playwright:
        browser, page = compare_page(playwright, url)
        try:
            note = page.locator("#reviewer-note")
            assert "Names are not verified" in note.inner_text()
            assert header(page).locator("#reviewer-note").count() == 1, "beside the name box"
            assert page.locator("#login").count() == 0
            textbox(page, "reviewer").fill("Dr Alice")
            header(page).screenshot(path=str(OUTPUT / "compare-reviewer-local.png"))
        finally:
            browser.close()


def test_signed_in_page_reviews_as_the_account(tmp_path, monkeypatch) -> None:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    with serving(tmp_path, OAUTH, monkeypatch) as (url, studio), \
            sync_api.sync_playwright() as playwright:
        browser, page = compare_page(playwright, url)
        try:
            assert textbox(page, "reviewer").input_value() == ""
            assert not textbox(page, "reviewer").is_editable()
            # Gradio's button: /login/huggingface, then the page again, signed in.
            with page.expect_navigation(url=url + "/"):
                page.locator("#login").click()
            page.get_by_role("tab", name="Compare").click()
            page.wait_for_function(
                "() => document.querySelector('#reviewer input, #reviewer textarea')"
                "?.value === 'alice-hf'")
            page.locator("#slot-0 .mc-card h4").wait_for()
            assert "alice-hf" in page.locator("#login").inner_text()  # "Logout (alice-hf)"
            header(page).screenshot(path=str(OUTPUT / "compare-reviewer-signed-in.png"))
            image_id = textbox(page, "image-id").input_value()
            page.locator("#verdict-0").get_by_text("correct", exact=True).click()
            page.locator("#save-0").click()
            page.locator("#status-0").get_by_text("Saved").wait_for()
            saved = [(r.key.image_id, r.key.reviewer) for r in studio.store.iter_reviews()]
            assert saved == [(image_id, "alice-hf")], saved
        finally:
            browser.close()
