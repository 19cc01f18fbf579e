"""Each evaluation protocol against its reference on real ROCO captions (skipped without ../shared).

- coco: pycocoevalcap 1.2 itself (Java PTB tokenizer, Bleu, Meteor 1.5, Rouge, Cider) to 1e-6.
- imageclef-*: an independent re-implementation written from the official evaluators' code (the
  2022 AIcrowd evaluator, the 2023 and 2025/2026 CaptionEvaluator), to 1e-6.
"""

from __future__ import annotations

import re
import shutil
import string
import warnings

import numpy as np
import pytest

from medcap.metrics.protocols import score_protocol
from medcap.metrics.stopwords import ENGLISH_STOPWORDS
from tests.test_metrics_reference import read_captions

TOLERANCE = 1e-6
SAMPLE = 200
EDGES = [  # (candidate, reference): empty sides, punctuation only, digits, non-ASCII
    ("", ""), ("", "Chest X-ray."), (".", ""), ("...", "!!"), ("12 mm lesion", "A 3 cm lesion (arrow)."),
    ("The of and", "a the"), ("IRM cérébrale : lésion", "IRM cérébrale montrant une lésion."),
    ("Axial CT of the chest showing a mass.", "Axial CT of the chest showing a mass."),
]


@pytest.fixture(scope="module")
def pairs() -> tuple[list[str], list[str]]:
    candidates = read_captions("validation")[:SAMPLE] + [c for c, _ in EDGES]
    references = read_captions("test")[:SAMPLE] + [r for _, r in EDGES]
    return candidates, references


# -- the official evaluators, re-implemented from their code ------------------------------------

def _punkt_free_word_tokenize(text: str) -> list[str]:
    """nltk.word_tokenize with an untrained punkt (no data): sentences first, then Treebank words."""
    from nltk.tokenize import NLTKWordTokenizer
    from nltk.tokenize.punkt import PunktSentenceTokenizer

    return [w for sentence in PunktSentenceTokenizer().tokenize(text) for w in NLTKWordTokenizer().tokenize(sentence)]


def official_2022(candidates, references):
    """AIcrowdEvaluator.compute_bleu / compute_rouge (remove_stopwords=True, no stemming/lemmas)."""
    from nltk.translate.bleu_score import SmoothingFunction, sentence_bleu
    from rouge_score import rouge_scorer

    translator = str.maketrans("", "", string.punctuation)
    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False)
    bleu, rouge = [], []
    for candidate, gt in zip(candidates, references):
        cand_words = [w for w in _punkt_free_word_tokenize(candidate.lower().translate(translator)) if w.lower() not in ENGLISH_STOPWORDS]
        gt_words = [w for w in _punkt_free_word_tokenize(gt.lower().translate(translator)) if w.lower() not in ENGLISH_STOPWORDS]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if len(gt_words) == 0 and len(cand_words) == 0:
                bleu.append(1)
            else:
                bleu.append(sentence_bleu([gt_words], cand_words, smoothing_function=SmoothingFunction().method0))
        gt_caption, cand_caption = " ".join(gt_words), " ".join(cand_words)
        if len(gt_caption) == 0 and len(cand_caption) == 0:
            rouge.append(1)
        else:
            rouge.append(scorer.score(gt_caption, cand_caption)["rouge1"].fmeasure)
    return np.array(bleu, dtype=float), np.array(rouge, dtype=float)


def preprocess_caption(caption: str) -> str:
    """CaptionEvaluator.preprocess_caption (2023-2026)."""
    caption = caption.lower()
    caption = re.compile(r"\d+").sub("number", caption)
    return caption.translate(str.maketrans("", "", string.punctuation))


def official_rouge1(candidates, references, raw_empty_rule: bool):
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1"], use_stemmer=False)
    scores = []
    for candidate, gt in zip(candidates, references):
        cand, ref = preprocess_caption(candidate), preprocess_caption(gt)
        empty = (len(gt) == 0 and len(candidate) == 0) if raw_empty_rule else (len(ref) == 0 and len(cand) == 0)
        scores.append(1.0 if empty else scorer.score(ref, cand)["rouge1"].fmeasure)
    return np.array(scores)


# -- tests ------------------------------------------------------------------------------------------

def test_imageclef_2022_matches_the_aicrowd_evaluator(pairs):
    candidates, references = pairs
    result = score_protocol("imageclef-2022", candidates, references)
    bleu, rouge = official_2022(candidates, references)
    assert result.per_caption["bleu"].tolist() == pytest.approx(bleu.tolist(), abs=TOLERANCE)
    assert result.per_caption["rouge1"].tolist() == pytest.approx(rouge.tolist(), abs=TOLERANCE)
    assert result.official["bleu"] == pytest.approx(bleu.mean(), abs=TOLERANCE)
    assert result.official["rouge1"] == pytest.approx(rouge.mean(), abs=TOLERANCE)
    assert 0 < result.official["bleu"] < 1 and result.per_caption["bleu"].iloc[SAMPLE] == 1.0  # both empty


@pytest.mark.parametrize("protocol, raw_rule", [("imageclef-2023", False), ("imageclef-2025", True)])
def test_imageclef_rouge1_and_empty_rule_match_the_evaluator(pairs, protocol, raw_rule):
    candidates, references = pairs
    result = score_protocol(protocol, candidates, references)
    expected = official_rouge1(candidates, references, raw_rule)
    assert result.per_caption["rouge1"].tolist() == pytest.approx(expected.tolist(), abs=TOLERANCE)
    assert result.official["rouge1"] == pytest.approx(expected.mean(), abs=TOLERANCE)
    # "..." vs "!!": empty after normalising (2023 scores 1), not raw (2025 scores 0).
    assert result.per_caption["rouge1"].iloc[SAMPLE + 3] == (0.0 if raw_rule else 1.0)
    assert "bertscore" in result.unavailable or "bertscore" in result.official  # never a silent 0


def test_imageclef_2025_composites_name_what_is_missing(pairs):
    result = score_protocol("imageclef-2025", *(side[:5] for side in pairs))
    relevance = result.composites["relevance"]
    assert relevance["value"] is None and "image_similarity" in relevance["missing"]
    assert result.composites["factuality"]["value"] is None
    assert set(result.composites["factuality"]["missing"]) == {"medcat", "alignscore"}


def test_stopword_list_is_nltks_without_apostrophes():
    assert len(ENGLISH_STOPWORDS) == 179 and {"the", "of", "and", "wouldn", "ma"} <= ENGLISH_STOPWORDS
    try:
        from nltk.corpus import stopwords
        nltk_words = set(stopwords.words("english"))
    except LookupError:
        pytest.skip("nltk's stopwords data is not installed (cannot be downloaded here)")
    assert {w for w in nltk_words if "'" not in w} == {w for w in ENGLISH_STOPWORDS if "'" not in w}


def _pycocoevalcap(candidates, references):
    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider
    from pycocoevalcap.meteor.meteor import Meteor
    from pycocoevalcap.rouge.rouge import Rouge
    from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

    tokenizer = PTBTokenizer()
    gts = tokenizer.tokenize({i: [{"caption": r}] for i, r in enumerate(references)})
    res = tokenizer.tokenize({i: [{"caption": c}] for i, c in enumerate(candidates)})
    results = {}
    for scorer, names in ((Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]), (Meteor(), ["METEOR"]),
                          (Rouge(), ["ROUGE_L"]), (Cider(), ["CIDEr"])):
        score, scores = scorer.compute_score(gts, res)
        if len(names) == 1:
            score, scores = [score], [scores]
        for name, value, each in zip(names, score, scores):
            results[name] = (value, list(each))
    return results


@pytest.mark.skipif(shutil.which("java") is None, reason="Java is not installed (CI installs default-jre-headless)")
def test_coco_matches_pycocoevalcap(pairs, capsys):
    pytest.importorskip("pycocoevalcap")
    candidates, references = pairs
    result = score_protocol("coco", candidates, references)
    assert result.notes[0].startswith("tokenizer: java")
    expected = _pycocoevalcap(candidates, references)
    columns = {"Bleu_1": "bleu1", "Bleu_2": "bleu2", "Bleu_3": "bleu3", "Bleu_4": "bleu4", "METEOR": "meteor", "ROUGE_L": "rouge_l", "CIDEr": "cider_d"}
    for official, column in columns.items():
        value, each = expected[official]
        assert result.official[official] == pytest.approx(value, abs=TOLERANCE), official
        assert result.per_caption[column].tolist() == pytest.approx(each, abs=TOLERANCE), official


def test_coco_without_java_says_so_and_uses_the_python_tokenizer(pairs, monkeypatch):
    import medcap.metrics.coco as coco

    monkeypatch.setattr(coco.shutil, "which", lambda name: None)
    result = score_protocol("coco", *(side[:20] for side in pairs))
    assert "python port" in result.notes[0] and "Java" in result.notes[0]
    assert "meteor" in result.unavailable and "METEOR" not in result.official
    assert set(result.official) == {"Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4", "ROUGE_L", "CIDEr"}
