"""The fact check where reviewers look: red contradicting words and graded doubt shading on the
cards, the contradiction filter of the Evaluation table, and the review form's suggestion."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest

from medcap.app.cards import CaptionCard, caption_card_html
from medcap.app.comparison import build_comparison_set
from medcap.app.highlight import HighlightStyle, render_caption
from medcap.app.models import ModelPool
from medcap.app.options import AppOptions
from medcap.app.scores import ScoreBook
from medcap.app.studio import Studio
from medcap.app.table import ALL, CONTRADICTS_ANY, EvaluationTable, TableQuery
from medcap.app.views import item_values
from medcap.config import Settings
from medcap.data.synthetic import SIDES, synthetic_records
from medcap.results import read_evaluation_csv


@dataclass
class Token:
    """What `medcap.models.TokenScore` carries: the text a token added and its probability."""

    text: str
    prob: float


def tokens_of(caption: str, probs: dict[str, float], default: float = 0.97) -> list[Token]:
    """Word pieces with their leading space, as a decoder emits them (`_make_caption`)."""
    return [Token(piece, probs.get(piece.strip(), default))
            for piece in re.findall(r"\s*\S+", caption)]


def word_span(html: str, word: str) -> str:
    """The markup around one word: its shading span and, inside, any mark."""
    found = re.search(rf'<span[^>]*>(?:<mark[^>]*>)?{word}(?:</mark>)?</span>', html)
    assert found, f"{word!r} is not in its own span in {html}"
    return found.group(0)


# -- cards ------------------------------------------------------------------------------------

def test_phantom_demo_wrong_side_captions_are_all_flagged_and_shaded() -> None:
    """The issue's demo: captions with the lesion on the wrong side (the side word at p = 0.50)
    score high on BLEU, so the card must show the word in red and shaded."""
    records = synthetic_records(24, split="test")
    for record in records:
        wrong_side = next(side for side in SIDES if side != record.side)
        wrong = record.caption.replace(record.side, wrong_side)
        card = CaptionCard(model="phantom-blip", caption=wrong,
                           tokens=tuple(tokens_of(wrong, {wrong_side: 0.50})),
                           reference=record.caption,
                           shared_words=frozenset(set(wrong.split()) & set(record.caption.split())))
        html = caption_card_html(card, highlight=True, show_scores=True)
        side = word_span(html, wrong_side)
        assert f'<mark class="mc-contra" title="reference: {record.side}">{wrong_side}</mark>' in side
        assert "mc-unsure-1" in side and "mc-fact-doubt" in side, "p = 0.50 is shaded and marked"
        assert f"laterality: {wrong_side} vs {record.side}" in html, "the contradictions line"
        assert "contradicts the reference" in html and "mc-legend" in html
        assert html.count("mc-contra") == 2, "the word and its legend entry, nothing else"
        right = caption_card_html(CaptionCard(model="m", caption=record.caption,
                                              reference=record.caption), highlight=True)
        assert "mc-contra" not in right and "Contradicts" not in right


def test_shading_is_graded_by_probability() -> None:
    caption = "sure fairly doubtful unsure guessed"
    probs = {"sure": 0.99, "fairly": 0.8, "doubtful": 0.6, "unsure": 0.4, "guessed": 0.1}
    html = render_caption(caption, tokens=tokens_of(caption, probs)).html
    assert word_span(html, "sure") == '<span title="p = 0.99">sure</span>'
    assert word_span(html, "fairly") == '<span title="p = 0.80">fairly</span>'
    assert 'class="mc-token mc-unsure-1"' in word_span(html, "doubtful")
    assert 'class="mc-token mc-unsure-2"' in word_span(html, "unsure")
    assert 'class="mc-token mc-unsure-3"' in word_span(html, "guessed")


def test_fact_words_below_the_level_are_marked_even_when_not_shaded() -> None:
    caption = "no effusion in the left lung on CT"
    probs = {"no": 0.85, "effusion": 0.95, "left": 0.88, "lung": 0.89, "CT": 0.5, "in": 0.8}
    html = render_caption(caption, tokens=tokens_of(caption, probs)).html
    for word, kind in (("no", "negation"), ("left", "side"), ("lung", "anatomy")):
        span = word_span(html, word)
        assert 'class="mc-token mc-fact-doubt"' in span, f"{word} at p < 0.9 is marked"
        assert f"{kind} word below 0.90" in span
    assert 'class="mc-token mc-unsure-1 mc-fact-doubt"' in word_span(html, "CT")
    assert "mc-fact-doubt" not in word_span(html, "effusion"), "p = 0.95 is above the level"
    assert "mc-fact-doubt" not in word_span(html, "in"), "not a fact word"
    looser = render_caption(caption, tokens=tokens_of(caption, probs),
                            style=HighlightStyle(fact_shade_below=0.87)).html
    assert "mc-fact-doubt" in word_span(looser, "no") and "mc-fact-doubt" not in word_span(looser, "left")


def test_fact_level_is_configurable_and_validated() -> None:
    options = AppOptions.from_env({"MEDCAP_FACT_SHADE_BELOW": "0.75"})
    assert options.highlight_style.fact_shade_below == 0.75
    assert AppOptions.from_env({}).highlight_style.fact_shade_below == 0.9
    for bad in ("2", "high", "nan"):
        with pytest.raises(ValueError, match="MEDCAP_FACT_SHADE_BELOW must be a probability"):
            AppOptions.from_env({"MEDCAP_FACT_SHADE_BELOW": bad})


def test_no_token_probabilities_means_no_shading() -> None:
    """A results-CSV caption has no probabilities: no fake shading, still the red marks."""
    card = CaptionCard(model="m", caption="MRI of the right knee", reference="CT of the left knee")
    html = caption_card_html(card, highlight=True)
    assert "mc-token" not in html and "p = " not in html
    assert html.count('<mark class="mc-contra" title=') == 2
    assert 'title="reference: CT">MRI</mark>' in html and 'title="reference: left">right</mark>' in html
    mismatched = render_caption("left kidney", tokens=[Token("right", 0.2), Token(" kidney", 0.1)])
    assert "mc-token" not in mismatched.html, "tokens that do not spell the caption are ignored"


def test_caption_markup_stays_escaped_with_marks() -> None:
    caption = '<img src=x onerror="alert(1)"> left kidney'
    html = caption_card_html(CaptionCard(model="m", caption=caption,
                                         tokens=tuple(tokens_of(caption, {"left": 0.3})),
                                         reference="right kidney"), highlight=True)
    assert "<img" not in html and "&lt;" in html and "=&quot;" in html
    assert 'title="reference: right">left</mark>' in html


# -- evaluation table ---------------------------------------------------------------------------

def scored_frame() -> pd.DataFrame:
    """Per-caption rows as ScoreBook / `medcap evaluate` write them (computed, not typed in)."""
    from medcap.metrics import score_captions

    generated = ["CT of the left kidney", "MRI of the right kidney", "No pneumothorax.",
                 "Axial CT of the chest"]
    reference = ["CT of the right kidney", "CT of the right kidney",
                 "Chest radiograph with a pneumothorax.", "Axial CT of the chest"]
    table = score_captions(generated, reference, metrics=["bleu4", "fact_f1", "fact_contradictions"])
    frame = table.per_caption.copy()
    frame.insert(0, "image_id", ["a", "b", "c", "d"])
    frame.insert(1, "model", "blip")
    frame["generated_caption"], frame["original_caption"] = generated, reference
    return frame


@pytest.mark.parametrize("text_only", [False, True])
def test_table_filters_by_contradiction_kind(text_only: bool) -> None:
    frame = scored_frame()
    if text_only:  # an older CSV with the text column only
        frame = frame.drop(columns=[c for c in frame if c.startswith("contradicts_")])
    table = EvaluationTable(frame)

    def ids(choice: str) -> list[str]:
        return list(table.query(TableQuery(contradiction=choice, sort_by="image_id",
                                           descending=False)).rows["image_id"])

    assert ids(ALL) == ["a", "b", "c", "d"]
    assert ids(CONTRADICTS_ANY) == ["a", "b", "c"]
    assert ids("laterality") == ["a"]
    assert ids("modality") == ["b"]
    assert ids("finding") == ["c"]
    assert ids("anatomy") == []
    with pytest.raises(ValueError, match="Unknown contradiction filter"):
        ids("side")
    assert table.metrics == ["bleu4", "fact_f1"], "flags and text are not metrics"
    assert "fact_contradictions" in table.display_columns


def test_evaluation_csv_without_any_contradiction_keeps_it_text(tmp_path: Path) -> None:
    """Every row empty: pandas reads the column as NaN floats; it must stay text, not a metric."""
    from medcap.cli import main

    results = tmp_path / "results.csv"
    pd.DataFrame({"image_id": ["a", "b"], "model": ["blip", "blip"],
                  "original_caption": ["CT of the left kidney", "MRI of the brain"],
                  "generated_caption": ["CT of the left kidney", "MRI of the brain"]}).to_csv(results, index=False)
    out = tmp_path / "eval.csv"
    assert main(["evaluate", "--predictions", str(results), "--out", str(out),
                 "--metrics", "bleu4,fact_f1,fact_contradictions"]) == 0
    assert pd.read_csv(out)["fact_contradictions"].isna().all(), "the case this guards against"
    frame = read_evaluation_csv(out)
    assert frame["fact_contradictions"].tolist() == ["", ""]
    book = ScoreBook(build_comparison_set("x", None), frame)
    assert "fact_contradictions" not in book.model_scores("blip").per_caption.columns
    assert "fact_contradictions" not in EvaluationTable(book.table_frame(["blip"])).metrics


# -- studio: computed scores, suggestions, tokens -------------------------------------------------

@pytest.fixture()
def studio(tmp_path: Path) -> Studio:
    results = tmp_path / "results.csv"
    pd.DataFrame({
        "image_id": ["p1", "p1", "p2"], "model": ["blip", "qwen2-vl", "blip"],
        "original_caption": ["ct image showing a small bright lesion on the left"] * 2
                            + ["mri image showing a large bright lesion on the right"],
        "generated_caption": ["ct image showing a small bright lesion on the right",
                              "mri image showing a small bright lesion on the left",
                              "mri image showing a large bright lesion on the right"],
        "modality": ["CT", "CT", "MRI"],
    }).to_csv(results, index=False)
    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        runs_dir=tmp_path / "runs")
    return Studio(settings, AppOptions(results_csv=results, examples=[]), pool=ModelPool([]))


def test_computed_scores_carry_the_fact_columns(studio: Studio) -> None:
    table = studio.evaluation
    assert {"fact_f1", "fact_precision", "fact_recall"} <= set(table.metrics)
    rows = studio.query_table(TableQuery(contradiction="laterality")).rows
    assert list(zip(rows["image_id"], rows["model"])) == [("p1", "blip")]
    assert rows["fact_contradictions"].tolist() == ["laterality: right vs left"]
    rows = studio.query_table(TableQuery(contradiction="modality")).rows
    assert list(zip(rows["image_id"], rows["model"])) == [("p1", "qwen2-vl")]
    summary = studio.summary().set_index("model")
    assert summary.loc["blip", "contradicts_laterality"] == 0.5


def test_open_item_suggests_categories_and_the_card_says_so(studio: Studio) -> None:
    view = studio.open_item("p1", "ana")
    by_model = {slot.model: slot for slot in view.slots}
    assert by_model["blip"].suggested_categories == ("wrong_laterality",)
    assert by_model["qwen2-vl"].suggested_categories == ("wrong_modality",)
    shown = item_values(view).slots
    assert [s.suggested_categories for s in shown] == [("wrong_laterality",), ("wrong_modality",)]
    assert "Fact check suggests:</strong> Wrong laterality — confirm below" in shown[0].card_html
    assert 'title="reference: left">right</mark>' in shown[0].card_html
    assert "mc-token" not in shown[0].card_html, "results-CSV captions have no probabilities"
    assert studio.open_item("p2", "ana").slots[0].suggested_categories == ()


def test_app_generated_captions_keep_their_token_probabilities(studio: Studio) -> None:
    tokens = tuple(tokens_of("ct image showing a lesion on the right", {"right": 0.5}))
    studio.comparison.add_caption("p2", "qwen2-vl", "ct image showing a lesion on the right",
                                  0.1, tokens)
    card = next(s for s in item_values(studio.open_item("p2", "")).slots
                if "qwen2-vl" in s.card_html)
    assert 'class="mc-token mc-unsure-1 mc-fact-doubt"' in card.card_html
    assert 'title="reference: MRI">ct</mark>' in card.card_html


def test_query_table_endpoint_filters_by_contradiction(studio: Studio, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import app
    from gradio_client import Client

    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio-tmp"))
    demo = app.build_demo(studio)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                            **app.LAUNCH_OPTIONS)
    try:
        client = Client(url, verbose=False)
        client.predict(api_name="/open_evaluation")
        rows, label, _ = client.predict("", ALL, ALL, ALL, "image_id", False, 1, "laterality",
                                        api_name="/query_table")
        assert label == "Rows 1–1 of 1 (page 1 of 1)"
        row = dict(zip(rows["headers"], rows["data"][0]))
        assert (row["image_id"], row["model"]) == ("p1", "blip")
        assert row["fact_contradictions"] == "laterality: right vs left"
        _, label, _ = client.predict("", ALL, ALL, ALL, "image_id", False, 1, CONTRADICTS_ANY,
                                     api_name="/query_table")
        assert label == "Rows 1–2 of 2 (page 1 of 1)"
        with pytest.raises(Exception):  # not one of the dropdown's choices
            client.predict("", ALL, ALL, ALL, "image_id", False, 1, "<script>",
                           api_name="/query_table")
    finally:
        demo.close()


def test_real_decoder_tokens_line_up_with_the_card_caption(tmp_path: Path, tiny_blip_dir: Path) -> None:
    """Captions a model generates in the app (tiny BLIP): every word of the card gets its
    probability, so the token texts spell the stored caption."""
    from medcap.models import resolve_spec

    settings = Settings(model_names=[], data_source=None, reviews_db=tmp_path / "r.sqlite",
                        runs_dir=tmp_path / "runs")
    studio = Studio(settings, AppOptions(examples=[], dataset_label="phantoms"),
                    pool=ModelPool([resolve_spec("blip", str(tiny_blip_dir))]))
    record = synthetic_records(1, split="test")[0]
    studio._comparison = build_comparison_set("phantoms", None, [record])
    assert studio.generate_missing(record.image_id) == "Generated: blip."
    caption = studio.comparison.get(record.image_id).captions["blip"]
    html = item_values(studio.open_item(record.image_id, "")).slots[0].card_html
    words = re.findall(r"[^\W_]+(?:[-'][^\W_]+)*", caption)
    assert words and html.count('title="p = ') == len(words)
