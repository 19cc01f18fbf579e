"""Keyboard-first reviewing in headless Chromium: three queue items reviewed with keys only,
blind mode hiding model names until the reviewer has finished an item, a stable card order per
reviewer, and other reviewers' text shown as text (no link, no image) in cards and conflicts.

Needs Debian's `chromium` and `pip install playwright` (no browser download); skips otherwise.
Saves the Compare tab's review area as test-output/compare-review.png.
"""

from __future__ import annotations

import pytest
from PIL import Image

from medcap.review import ReviewKey
from tests.test_browser import CHROMIUM, OUTPUT, open_page, textbox
from tests.test_app import running_app

sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} is not installed", allow_module_level=True)

MODELS = ("blip", "qwen2-vl")
EVIL = "see [x](http://evil.example) ![i](http://evil.example/i.png) <b>bold</b>"


@pytest.fixture(scope="module")
def app(tmp_path_factory, tiny_blip_dir, tiny_qwen2_vl_dir):
    work = tmp_path_factory.mktemp("browser-review")
    with running_app(work, tiny_blip_dir, tiny_qwen2_vl_dir) as (url, studio):
        yield url, studio


@pytest.fixture(scope="module")
def page(app):
    with open_page(app[0]) as page:
        yield page


class Keys:
    """Presses keys on the page and counts them (a chord such as Control+Enter is one)."""

    def __init__(self, page):
        self.page = page
        self.count = 0

    def press(self, key: str) -> None:
        self.page.keyboard.press(key)
        self.count += 1


def slot_text(page) -> str:
    return " ".join(page.locator(f"#slot-{i}").inner_text() for i in range(len(MODELS)))


def headings(page) -> list[str]:
    return [page.locator(f"#slot-{i} .mc-card h4").inner_text() for i in range(len(MODELS))]


def captions(page) -> list[str]:
    return [page.locator(f"#slot-{i} .mc-card .mc-caption").inner_text()
            for i in range(len(MODELS))]


def open_compare(page) -> None:
    page.get_by_role("tab", name="Compare").click()
    page.locator("#compare-status").get_by_text("images in").wait_for()
    opened = textbox(page, "image-id").input_value()
    name = textbox(page, "reviewer")
    name.focus()
    page.keyboard.type("Dr Keys")  # "k" and "s" are keys too, but not while typing
    assert page.locator("#slot-0 input:checked").count() == 0
    assert textbox(page, "image-id").input_value() == opened
    page.keyboard.press("Escape")  # leave the text box: the review keys work again


def wait_for_item(page, previous: str) -> str:
    page.wait_for_function(
        "prev => { const b = document.querySelector('#image-id input, #image-id textarea');"
        " return b && b.value && b.value !== prev; }", arg=previous)
    page.locator("#slot-0 .mc-card h4").wait_for()
    page.wait_for_timeout(300)
    return textbox(page, "image-id").input_value()


def test_three_queue_items_reviewed_with_the_keyboard_only(page, app) -> None:
    _, studio = app
    open_compare(page)
    keys = Keys(page)
    seen: list[str] = []
    per_caption: list[int] = []
    for number in range(3):
        keys.press("j")  # next item for me
        image_id = wait_for_item(page, seen[-1] if seen else "")
        assert image_id not in seen
        seen.append(image_id)
        # Blind: cards are "Caption A/B" in this reviewer's own stable order; no model name shown.
        assert headings(page) == ["Caption A", "Caption B"]
        assert not any(model in slot_text(page) for model in MODELS)
        order = studio._slot_order(studio.comparison.get(image_id), studio.dataset, "Dr Keys",
                                   True)
        item = studio.comparison.get(image_id)
        assert captions(page)[0].strip() == item.captions[order[0]].strip()
        reviewed = [i for i, model in enumerate(order) if item.captions.get(model)]
        for position, slot in enumerate(reviewed):  # captioned cards come first when blind
            before = keys.count
            keys.press(str(1 + (number + slot) % 4))  # a verdict
            keys.press("l")  # wrong laterality
            keys.press("Control+Enter")  # save, highlight moves to the next caption
            page.locator(f"#status-{slot}").get_by_text("Saved:").wait_for()
            per_caption.append(keys.count - before)
            if position < len(reviewed) - 1:
                assert not any(model in slot_text(page) for model in MODELS), \
                    "names stay hidden until every caption of the item is saved"
        # Finished: the names are revealed, in the same order.
        page.wait_for_function(
            "() => document.querySelector('#slot-0 .mc-card h4').innerText !== 'Caption A'")
        assert headings(page) == order
        for slot in reviewed:
            review = studio.store.get(ReviewKey(studio.dataset, image_id, order[slot], "Dr Keys"))
            assert review.verdict and review.categories == ("wrong_laterality",)
    keys.press("j")  # every captioned item is done: the queue says so
    page.locator("#compare-status").get_by_text("Nothing left for you").wait_for()
    assert "3 done / 3 assigned" in page.locator("#queue-progress").inner_text()
    # K goes back to the item shown before: same cards in the same order (stable per reviewer).
    keys.press("k")
    back = wait_for_item(page, seen[-1])
    assert back == seen[-2]
    order = studio._slot_order(studio.comparison.get(back), studio.dataset, "Dr Keys", True)
    assert headings(page) == order  # finished earlier, so revealed; order unchanged
    page.locator("#slot-0").screenshot(path=str(OUTPUT / "compare-slot.png"))
    print(f"\nkeystrokes per caption review (verdict, one category, Ctrl+Enter): "
          f"{per_caption}; total with J per item and one K: {keys.count}")
    assert set(per_caption) == {3}


def test_other_reviewers_text_is_text_in_cards_and_conflicts(page, app) -> None:
    _, studio = app
    image_id = textbox(page, "image-id").input_value()
    order = studio._slot_order(studio.comparison.get(image_id), studio.dataset, "Dr Keys", True)
    model = order[0]
    mine = studio.store.get(ReviewKey(studio.dataset, image_id, model, "Dr Keys"))
    # Another reviewer's note, and the same reviewer saving from a second tab (a conflict).
    studio.save_review(image_id, model, "Dr Other", "unusable", "", EVIL, 0)
    studio.save_review(image_id, model, "Dr Keys", "unusable", EVIL, EVIL, mine.version)
    keys = Keys(page)
    keys.press("4")
    keys.press("Control+Enter")
    status = page.locator("#status-0")
    status.get_by_text("Not saved").wait_for()
    assert "[x](http://evil.example)" in status.inner_text()
    assert "<b>bold</b>" in status.inner_text()
    assert status.locator("a, img, b").count() == 0
    # Reopen: the other reviewer's note is in the card as characters.
    page.locator("#open-button").click()
    page.locator("#slot-0").get_by_text("Dr Other").wait_for()
    card = page.locator("#card-0")  # the caption card with other reviews and history
    assert "![i](http://evil.example/i.png)" in card.inner_text()
    assert card.locator("a, img, b").count() == 0


def test_an_upload_is_reviewed_in_compare_and_judged_pairwise(page, app) -> None:
    """Caption tab → "Review in Compare" → blind cards of the upload → a pairwise vote."""
    _, studio = app
    pydicom_data = pytest.importorskip("pydicom.data")
    page.get_by_role("tab", name="Caption").click()
    page.locator("#upload input[type=file]").set_input_files(
        pydicom_data.get_testdata_file("CT_small.dcm"))
    page.locator("#caption-models").get_by_label("qwen2-vl").check()
    page.locator("#caption-button").click()
    page.wait_for_function(
        "() => (document.querySelector('#upload-item-id input, #upload-item-id textarea')"
        " || {}).value?.startsWith('upload-')")
    item_id = textbox(page, "upload-item-id").input_value()
    textbox(page, "upload-reference").fill("Axial CT of the abdomen.")
    page.locator("#save-reference").click()
    page.locator("#upload-item-status").get_by_text("Reference saved").wait_for()
    page.locator("#review-upload").click()
    page.locator("#compare-status").wait_for()
    page.wait_for_function(
        "id => (document.querySelector('#image-id input, #image-id textarea') || {}).value === id",
        arg=item_id)
    page.locator("#card-0").get_by_text("Caption A").wait_for()
    assert "uploads" in page.locator("#collection").inner_text() or \
        page.locator("#collection input").input_value() == "uploads"
    assert not any(model in slot_text(page) for model in MODELS)
    keys = Keys(page)
    for key in ("2", "l", "c"):  # minor error, wrong laterality, clinically significant
        keys.press(key)
    page.locator("#pairwise").get_by_text("Pairwise").click()
    page.locator("#pairwise-choice").get_by_label("B better").check()
    page.wait_for_timeout(300)
    page.locator("#compare-review-area, #slot-0").first.scroll_into_view_if_needed()
    page.screenshot(path=str(OUTPUT / "compare-review.png"), full_page=True)
    page.locator("#pairwise-save").click()
    page.locator("#pairwise-status").get_by_text("Saved: B better").wait_for()
    page.wait_for_function(
        "() => document.querySelector('#slot-0 .mc-card h4').innerText !== 'Caption A'")
    assert set(headings(page)) == set(MODELS), "a vote reveals the names"
    (preference,) = studio.store.preferences("uploads")
    assert preference.image_id == item_id and preference.reviewer == "Dr Keys"


def test_uploads_are_forgotten_when_the_tab_closes_if_not_kept(page, app) -> None:
    """MEDCAP_KEEP_UPLOADS=0: the browser tab's unload takes its uploads along."""
    url, studio = app
    studio.uploads.keep = False
    try:
        browser = page.context.browser
        context = browser.new_context(viewport={"width": 1200, "height": 900})
        other = context.new_page()
        other.goto(url, wait_until="load")
        other.get_by_text("not a medical device").first.wait_for()
        image = OUTPUT / "forget-me.png"
        Image.new("RGB", (64, 48), (5, 99, 201)).save(image)
        other.locator("#upload input[type=file]").set_input_files(str(image))
        other.locator("#caption-button").click()
        other.wait_for_function(
            "() => (document.querySelector('#upload-item-id input, #upload-item-id textarea')"
            " || {}).value?.startsWith('upload-')")
        item_id = textbox(other, "upload-item-id").input_value()
        assert studio.uploads.get(item_id) is not None
        other.close()
        context.close()
        for _ in range(120):  # the server notices the closed tab on its next heartbeat
            if studio.uploads.get(item_id) is None:
                break
            page.wait_for_timeout(500)
        assert studio.uploads.get(item_id) is None
        assert not (studio.uploads.folder / item_id).exists()
    finally:
        studio.uploads.keep = True
