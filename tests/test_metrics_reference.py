"""Each metric equals its reference implementation to 1e-6, on real ROCO captions and edge cases."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from medcap.metrics import MetricsConfig, score_captions
from medcap.metrics.tokenize import coco_tokenize
from medcap.metrics.wordnet_data import load_wordnet

TOLERANCE = 1e-6
SAMPLE_SIZE = 300


def shared_dir() -> Path:
    configured = os.environ.get("MEDCAP_SHARED_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[1].parent / "shared"


def read_captions(split: str) -> list[str]:
    path = shared_dir() / "data" / "roco" / split / "captions.txt"
    if not path.is_file():
        pytest.skip(f"ROCO captions not found at {path} (set MEDCAP_SHARED_DIR)")
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t", 1)[1].strip() for line in lines if "\t" in line]


EDGE_CANDIDATES = [
    "",                                              # empty candidate
    "Axial CT of the chest showing a right upper lobe mass.",  # identical to its reference
    "... !!! ,,, ;;",                                # punctuation only
    " ".join(["contrast enhanced axial image of the liver lesion"] * 40),  # very long
    "IRM cérébrale : lésion hyperintense du lobe frontal gauche (flèche).",  # non-ASCII
    "T2-weighted MRI, 3.5 cm lesion; patient's knee (arrow).",
]
EDGE_REFERENCES = [
    "Chest radiograph showing cardiomegaly.",
    "Axial CT of the chest showing a right upper lobe mass.",
    "Sagittal MRI of the lumbar spine.",
    "Contrast-enhanced axial CT image shows a hypodense liver lesion (arrow).",
    "IRM cérébrale montrant une lésion frontale gauche hyperintense en T2.",
    "T2-weighted MR image of the knee shows a 3 cm lesion.",
]


@pytest.fixture(scope="module")
def roco_pairs() -> tuple[list[str], list[str]]:
    """Each validation caption as the candidate for the test caption at the same position."""
    candidates = read_captions("validation")[:SAMPLE_SIZE] + EDGE_CANDIDATES
    references = read_captions("test")[:SAMPLE_SIZE] + EDGE_REFERENCES
    return candidates, references


@pytest.fixture(scope="module")
def config(tmp_path_factory) -> MetricsConfig:
    return MetricsConfig(cache_dir=tmp_path_factory.mktemp("medcap-cache"))


@pytest.fixture(scope="module")
def table(roco_pairs, config):
    candidates, references = roco_pairs
    return score_captions(candidates, references, metrics=["bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "rouge1", "cider_d"], config=config)


def coco_inputs(candidates, references):
    res = {i: [" ".join(coco_tokenize(text))] for i, text in enumerate(candidates)}
    gts = {i: [" ".join(coco_tokenize(text))] for i, text in enumerate(references)}
    return gts, res


def test_bleu_matches_pycocoevalcap(roco_pairs, table, capsys):
    from pycocoevalcap.bleu.bleu import Bleu

    corpus, per_caption = Bleu(4).compute_score(*coco_inputs(*roco_pairs), verbose=0)
    for k in range(4):
        name = f"bleu{k + 1}"
        assert table.corpus[name] == pytest.approx(corpus[k], abs=TOLERANCE)
        assert table.per_caption[name].tolist() == pytest.approx(per_caption[k], abs=TOLERANCE)


def test_cider_d_matches_pycocoevalcap(roco_pairs, table):
    from pycocoevalcap.cider.cider import Cider

    corpus, per_caption = Cider().compute_score(*coco_inputs(*roco_pairs))
    assert table.corpus["cider_d"] == pytest.approx(corpus, abs=TOLERANCE)
    assert table.per_caption["cider_d"].tolist() == pytest.approx(list(per_caption), abs=TOLERANCE)
    assert table.per_caption["cider_d"].iloc[SAMPLE_SIZE + 1] > 5  # identical strings score high


def test_meteor_matches_nltk(roco_pairs, table, config):
    from nltk.translate.meteor_score import meteor_score

    wordnet = load_wordnet(config.cache_dir)
    expected = [meteor_score([coco_tokenize(ref)], coco_tokenize(cand), wordnet=wordnet) for cand, ref in zip(*roco_pairs)]
    assert table.per_caption["meteor"].tolist() == pytest.approx(expected, abs=TOLERANCE)
    assert table.per_caption["meteor"].iloc[SAMPLE_SIZE] == 0.0  # empty candidate
    assert 0 < table.per_caption["meteor"].iloc[SAMPLE_SIZE + 1] < 1  # nltk never reaches 1 (penalty)


def test_rouge_matches_rouge_score(roco_pairs, table):
    from rouge_score.rouge_scorer import RougeScorer

    scorer = RougeScorer(["rougeL", "rouge1"], use_stemmer=False)
    results = [scorer.score(ref, cand) for cand, ref in zip(*roco_pairs)]
    assert table.per_caption["rouge_l"].tolist() == pytest.approx([r["rougeL"].fmeasure for r in results], abs=TOLERANCE)
    assert table.per_caption["rouge1"].tolist() == pytest.approx([r["rouge1"].fmeasure for r in results], abs=TOLERANCE)
    assert table.per_caption["rouge_l"].iloc[SAMPLE_SIZE + 1] == 1.0


def test_rouge_with_stemmer_matches_rouge_score(roco_pairs, config):
    from dataclasses import replace

    from rouge_score.rouge_scorer import RougeScorer

    from medcap.metrics import RougeConfig

    candidates, references = (list(side[:80]) for side in roco_pairs)
    # Words the Porter modes stem differently ("dying", "skies", "hopefully"): rouge-score uses
    # nltk's default mode, and so must we.
    candidates.append("the patient is dying under skies hopefully")
    references.append("patient dies under the sky hope")
    stemmed = score_captions(candidates, references, metrics=["rouge_l", "rouge1"], config=replace(config, rouge=RougeConfig(use_stemmer=True)))
    scorer = RougeScorer(["rougeL", "rouge1"], use_stemmer=True)
    results = [scorer.score(ref, cand) for cand, ref in zip(candidates, references)]
    assert stemmed.per_caption["rouge_l"].tolist() == pytest.approx([r["rougeL"].fmeasure for r in results], abs=TOLERANCE)
    assert stemmed.per_caption["rouge1"].tolist() == pytest.approx([r["rouge1"].fmeasure for r in results], abs=TOLERANCE)


def test_imageclef_normalisation_scores_normalised_text(roco_pairs, config):
    from rouge_score.rouge_scorer import RougeScorer

    from medcap.metrics import Normalization

    candidates, references = (list(side[:50]) + [" 12 ,. ", ""] for side in roco_pairs)
    table = score_captions(candidates, references, metrics=["rouge1", "bleu1", "cider_d"], normalization="imageclef", config=config)
    assert table.normalization == "imageclef"
    clef = Normalization.named("imageclef")
    scorer = RougeScorer(["rouge1"])
    expected = [scorer.score(clef.apply(ref), clef.apply(cand))["rouge1"].fmeasure for cand, ref in zip(candidates[:-2], references[:-2])]
    assert table.per_caption["rouge1"].tolist()[:-2] == pytest.approx(expected, abs=TOLERANCE)
    # " 12 ,. " -> "number" on both sides: identical; "" vs "": both empty, scored 1 on every metric.
    assert table.per_caption["rouge1"].iloc[-2] == 1.0
    assert table.per_caption.iloc[-1].tolist() == [1.0, 1.0, 1.0]


def test_rouge_stemmer_is_rouge_scores_porter_mode():
    """Runs without ../shared: words nltk's Porter modes stem differently."""
    from dataclasses import replace

    from rouge_score.rouge_scorer import RougeScorer

    from medcap.metrics import RougeConfig

    candidate, reference = "the patient is dying under skies hopefully", "patient dies under the sky hope"
    ours = score_captions([candidate], [reference], metrics=["rouge_l"],
                          config=replace(MetricsConfig(), rouge=RougeConfig(use_stemmer=True)))
    expected = RougeScorer(["rougeL"], use_stemmer=True).score(reference, candidate)["rougeL"].fmeasure
    assert ours.per_caption["rouge_l"].tolist() == pytest.approx([expected], abs=TOLERANCE)
