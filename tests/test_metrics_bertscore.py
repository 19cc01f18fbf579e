"""BERTScore's computation path on a tiny random BERT saved locally, against the bert-score package."""

from __future__ import annotations

from dataclasses import replace

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
