"""The fact check's marks on the real page (headless Chromium): a phantom captioner that puts the
lesion on the wrong side, at p = 0.50 for the side word, as in the issue's offline demo.

Screenshots: test-output/facts-caption.png, facts-compare.png (or $MEDCAP_TEST_OUTPUT).
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from medcap.app.comparison import build_comparison_set
from medcap.app.models import ModelPool
from medcap.app.options import AppOptions
from medcap.app.studio import Studio
from medcap.config import Settings
from medcap.data.synthetic import SIDES, synthetic_records
from medcap.models import Caption, ModelSpec, TokenScore
from tests.test_browser import OUTPUT, SECONDS, open_page, open_tab, textbox

RECORDS = synthetic_records(6, split="test")


class WrongSidePool(ModelPool):
    """A captioner stand-in: the record's own caption with the side flipped, side word p = 0.50,
    size word p = 0.40, "bright" p = 0.20, the rest p = 0.97 (token pieces with their leading space)."""

    def caption_one(self, label, images, prompt=None):
        record = RECORDS[0]
        wrong = next(s for s in SIDES if s != record.side)
        text = record.caption.replace(record.side, wrong)
        probs = {wrong: 0.50, record.size: 0.40, "bright": 0.20}
        tokens = [TokenScore(piece, probs.get(piece.strip(), 0.97))
                  for piece in re.findall(r"\s*\S+", text)]
        return [Caption(text=text, seconds=0.1, tokens=tokens)]

    def _updates(self, label, image, prompt, stop):
        """What the model's generation loop would stream: here, only the whole caption."""
        from medcap.models import CaptionUpdate

        caption = self.caption_one(label, [image], prompt)[0]
        yield CaptionUpdate(0, caption.text, tuple(caption.tokens), done=True, caption=caption)


@pytest.fixture(scope="module")
def page_url(tmp_path_factory):
    import app

    work = tmp_path_factory.mktemp("facts-browser")
    monkey = pytest.MonkeyPatch()
    monkey.setenv("GRADIO_TEMP_DIR", str(work / "gradio-tmp"))
    settings = Settings(model_names=[], data_source=None, reviews_db=work / "r.sqlite",
                        runs_dir=work / "runs")
    pool = WrongSidePool([ModelSpec(name="phantom-blip", family="blip", source=str(work))])
    studio = Studio(settings, AppOptions(examples=[], dataset_label="phantoms"), pool=pool)
    studio._comparison = build_comparison_set("phantoms", None, RECORDS)
    demo = app.build_demo(studio)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                            **app.LAUNCH_OPTIONS)
    try:
        yield url, studio, work
    finally:
        demo.close()
        monkey.undo()


@pytest.fixture(scope="module")
def page(page_url):
    with open_page(page_url[0], 1300, 900) as page:
        yield page


def test_caption_tab_shades_doubtful_and_fact_words(page, tmp_path: Path) -> None:
    image = tmp_path / "phantom.png"
    RECORDS[0].render().save(image)
    page.locator("#upload input[type=file]").set_input_files(str(image))
    page.locator("#caption-button").click()
    card = page.locator('#caption-cards [data-model="phantom-blip"]')
    card.locator(".mc-meta").get_by_text(SECONDS).wait_for()  # whole, not mid-stream
    wrong = next(s for s in SIDES if s != RECORDS[0].side)
    side = card.locator(".mc-caption .mc-fact-doubt", has_text=wrong).first
    assert "mc-unsure-1" in side.get_attribute("class")
    assert side.get_attribute("title").startswith("p = 0.50")
    caption = card.locator(".mc-caption")
    assert caption.locator(".mc-unsure-2").count() == 1 and caption.locator(".mc-unsure-3").count() == 1
    assert card.locator(".mc-contra").count() == 0, "an upload has no reference to contradict"
    card.screenshot(path=str(OUTPUT / "facts-caption.png"))
    page.screenshot(path=str(OUTPUT / "facts-caption-tab.png"), full_page=True)


def test_compare_card_marks_the_wrong_side_in_red(page, page_url) -> None:
    record = RECORDS[0]
    wrong = next(s for s in SIDES if s != record.side)
    open_tab(page, "Compare")
    page.locator("#blind input").uncheck()  # cards named by model (blind mode: test_browser_review)
    textbox(page, "image-id").fill(record.image_id)
    page.get_by_role("button", name="Open", exact=True).click()
    page.get_by_role("button", name="Generate missing captions").click()
    card = page.locator('#slot-0 [data-model="phantom-blip"]')
    red = card.locator(".mc-caption mark.mc-contra")
    red.wait_for()
    assert red.inner_text() == wrong
    assert red.get_attribute("title") == f"reference: {record.side}"
    shade = card.locator(".mc-caption .mc-fact-doubt", has=page.locator("mark.mc-contra"))
    assert "mc-unsure-1" in shade.get_attribute("class")
    assert f"laterality: {wrong} vs {record.side}" in card.locator(".mc-facts").inner_text()
    assert "Wrong laterality" in page.locator(".mc-suggest").first.inner_text()
    assert card.locator(".mc-legend").inner_text().count("contradicts the reference") == 1
    card.evaluate("node => node.parentElement.scrollIntoView()")
    card.locator("xpath=..").screenshot(path=str(OUTPUT / "facts-compare.png"))
    page.screenshot(path=str(OUTPUT / "facts-compare-tab.png"), full_page=True)
