"""Card HTML: escaping of untrusted text, shared-word marks, token shading, n/a scores."""

from __future__ import annotations

from dataclasses import dataclass

from medcap.app.cards import (
    CaptionCard,
    caption_card_html,
    caption_row_html,
    format_score,
    ground_truth_html,
    metadata_html,
    scores_html,
)
from medcap.app.highlight import highlight_shared, shade_tokens


@dataclass
class Token:
    text: str
    prob: float


def test_shared_words_are_marked_case_insensitively() -> None:
    html = highlight_shared("Axial CT of the chest.", {"ct", "chest"})
    assert html == ('Axial <mark class="mc-shared">CT</mark> of the '
                    '<mark class="mc-shared">chest</mark>.')


def test_partial_words_are_not_marked() -> None:
    assert "<mark" not in highlight_shared("chesty", {"chest"})


def test_caption_markup_is_escaped() -> None:
    html = highlight_shared('<img src=x onerror="alert(1)"> lung', {"lung", "img"})
    assert "<img" not in html
    assert "&lt;" in html and '<mark class="mc-shared">lung</mark>' in html


def test_uncertain_tokens_are_shaded_and_escaped() -> None:
    html = shade_tokens([Token("a", 0.95), Token(" <b>mass", 0.1)])
    assert 'title="p = 0.95">a</span>' in html
    assert "&lt;" in html and "<b>" not in html
    assert '<span class="mc-token mc-unsure-3 mc-fact-doubt" title="p = 0.10 · finding word' in html
    assert html.count("mc-token") == 2, "each word of the doubtful token, never the confident one"


def test_scores_missing_read_na_never_zero() -> None:
    html = scores_html({"bleu4": 0.25, "meteor": float("nan")})
    assert "<strong>BLEU-4</strong> 0.250" in html
    assert "<strong>METEOR</strong> n/a" in html
    assert "<strong>CIDEr-D</strong> n/a" in html
    assert format_score("bad") == "n/a"


def test_card_shows_error_time_and_model() -> None:
    card = caption_card_html(CaptionCard(model="qwen<2>", error="Model could not load: no weights"))
    assert "mc-error" in card and "qwen&lt;2&gt;" in card and "no weights" in card
    ok = caption_card_html(CaptionCard(model="blip", caption="a & b", seconds=1.234))
    assert "a &amp; b" in ok and "1.23 s" in ok


def test_card_prefers_highlight_then_tokens() -> None:
    card = CaptionCard(model="m", caption="chest film", tokens=[Token("chest", 0.2)],
                       shared_words=frozenset({"chest"}))
    assert "<mark" in caption_card_html(card, highlight=True)
    assert "mc-token" in caption_card_html(card, highlight=False)


def test_row_and_truth_and_metadata() -> None:
    assert "Choose at least one model" in caption_row_html([])
    assert caption_row_html([CaptionCard("a", "x"), CaptionCard("b", "y")]).count("data-model=") == 2
    assert "ROCO_1 · CT" in ground_truth_html("ROCO_1", "text", "CT")
    assert "<th>Modality</th><td>CT</td>" in metadata_html({"Modality": "CT"})
    assert metadata_html({}) == ""


def test_identifying_metadata_is_never_shown() -> None:
    html = metadata_html({"Modality": "CT", "Patient's Name": "Doe^John", "PatientID": "123",
                          "Accession Number": "A1", "Institution Name": "General",
                          "Body Part": "CHEST", "Study Instance UID": "1.2.3"})
    assert "CHEST" in html and "CT" in html
    for leaked in ("Doe^John", "123", "A1", "General", "1.2.3"):
        assert leaked not in html


def test_history_lists_versions_only_when_there_are_several() -> None:
    from medcap.app.cards import history_html
    from medcap.review import ReviewRevision

    one = ReviewRevision(1, "major error", "", "", "final", "2026-01-01T00:00:00Z")
    two = ReviewRevision(2, None, "<b>fixed</b>", "n", "draft", "2026-01-02T00:00:00Z")
    assert history_html([one]) == ""
    html = history_html([one, two])
    assert "v1 · 2026-01-01T00:00:00Z · major error" in html
    assert "v2" in html and "draft" in html and "&lt;b&gt;fixed&lt;/b&gt;" in html


def test_an_empty_generated_caption_is_told_apart_from_a_missing_one() -> None:
    generated = caption_card_html(CaptionCard(model="blip", caption="", seconds=0.4))
    missing = caption_card_html(CaptionCard(model="blip"))
    assert "empty caption (no words" in generated and "Generate missing" not in generated
    assert "Generate missing captions" in missing
