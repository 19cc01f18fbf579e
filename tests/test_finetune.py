"""Fine-tuning: the synthetic phantom set, the shared pieces, and BLIP end to end.

The BLIP learning test trains the tiny BLIP on phantoms and checks that held-out BLEU-4 rises from
~0 to far above it, and that the run folder loads through `medcap` like any model.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from finetune.blip import BlipCollator, BlipTrainConfig
from finetune.blip import train as train_blip
from finetune.common.collate import IGNORE_INDEX, label_answers
from finetune.common.config import FinetuneError, parse_config
from finetune.common.data import CaptionDataset, holdout
from finetune.common.evaluation import score
from finetune.common.training import last_complete_checkpoint, resume_checkpoint
from medcap.data import iter_records
from medcap.data.synthetic import (
    MODALITIES, MODALITY_LABELS, SIDES, SIZES, expected_lesion_area, lesion_area_fraction,
    lesion_side_from_pixels, synthetic_records, write_synthetic_folder,
)
from medcap.models import create_captioner, discover_runs, read_manifest, resolve_spec
from tests.support.tiny_training import InterruptAt, one_torch_thread, tiny_config  # noqa: F401


# ---------------------------------------------------------------- synthetic phantoms
def test_phantom_captions_state_what_the_pixels_show() -> None:
    records = synthetic_records(24, split="train", image_size=64)
    for record in records:
        image = record.load().image
        assert image.mode == "RGB" and image.size == (64, 64)
        words = record.caption.split()
        assert words[0] in MODALITIES and record.size in words and record.side in words
        assert lesion_side_from_pixels(image) == record.side
        assert lesion_area_fraction(image) == pytest.approx(expected_lesion_area(record.size),
                                                            rel=0.35)


def test_synthetic_splits_are_balanced_disjoint_and_reproducible() -> None:
    train = synthetic_records(24, split="train", seed=3)
    validation = synthetic_records(24, split="validation", seed=3)
    combos = Counter((r.modality_word, r.side, r.size) for r in train)
    assert len(combos) == len(MODALITIES) * len(SIDES) * len(SIZES)
    assert set(combos.values()) == {2}
    assert {r.seed for r in train}.isdisjoint(r.seed for r in validation)
    again = synthetic_records(24, split="train", seed=3)
    assert again == train
    assert np.array_equal(np.asarray(again[5].render()), np.asarray(train[5].render()))
    assert train[0].load().display.mode == "L"  # grayscale original kept for display
    assert train[0].cuis and train[0].modality in ("CT", "MRI", "Ultrasound")


def test_synthetic_folder_is_an_image_folder_dataset(tmp_path: Path) -> None:
    folder = write_synthetic_folder(tmp_path / "phantoms", 6, image_size=48)
    with open(folder / "captions.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 6
    for row in rows:
        image = Image.open(folder / f"{row['image_id']}.png")
        assert image.size == (48, 48)
        assert row["caption"].split()[-1] == lesion_side_from_pixels(image)
    records = list(iter_records(folder, split="test"))  # as the app reads it (MEDCAP_DATA)
    assert [r.modality for r in records] == [MODALITY_LABELS[r.caption.split()[0]] for r in records]


# ---------------------------------------------------------------- shared pieces
def test_labels_cover_only_the_answer_whatever_the_padding_side() -> None:
    right = torch.tensor([[5, 6, 7, 8, 0, 0], [5, 6, 7, 8, 9, 10]])
    right_mask = (torch.arange(6) < torch.tensor([[4], [6]])).long()
    labels = label_answers(right, right_mask, [2, 3])
    assert labels.tolist() == [[-100, -100, 7, 8, -100, -100], [-100, -100, -100, 8, 9, 10]]
    left = torch.tensor([[0, 0, 5, 6, 7, 8]])
    left_mask = torch.tensor([[0, 0, 1, 1, 1, 1]])
    assert label_answers(left, left_mask, [2]).tolist() == [[-100, -100, -100, -100, 7, 8]]
    with pytest.raises(ValueError, match="longer than its sequence"):
        label_answers(left, left_mask, [5])


def test_blip_collator_starts_captions_with_the_decoder_token(tiny_blip_dir: Path) -> None:
    from transformers import BlipProcessor

    processor = BlipProcessor.from_pretrained(str(tiny_blip_dir))
    bos = processor.tokenizer.convert_tokens_to_ids("[DEC]")
    collator = BlipCollator(processor, bos, max_caption_tokens=4)
    images = [r.load().image for r in synthetic_records(2, image_size=32)]
    batch = collator([{"image": images[0], "caption": "ct image showing a small bright lesion"},
                      {"image": images[1], "caption": "mri scan"}])
    assert batch["pixel_values"].shape == (2, 3, 32, 32)
    assert batch["input_ids"][:, 0].tolist() == [bos, bos]
    first = processor.tokenizer.decode(batch["input_ids"][0], skip_special_tokens=True)
    assert first == "ct image showing a"  # cut to 4 caption tokens
    pad = batch["attention_mask"] == 0
    assert pad.any() and (batch["labels"][pad] == IGNORE_INDEX).all()
    assert (batch["labels"][~pad] == batch["input_ids"][~pad]).all()


def test_dataset_replaces_an_unreadable_image_with_the_next() -> None:
    good = synthetic_records(2, image_size=32)

    class Broken:
        image_id, caption = "broken", "a caption"

        def load(self) -> None:
            raise ValueError("truncated PNG")

    dataset = CaptionDataset([good[0], Broken(), good[1]])
    assert dataset[1]["image_id"] == good[1].image_id
    assert dataset[1]["image"].mode == "RGB"


def test_holdout_is_seeded_and_disjoint() -> None:
    records = synthetic_records(40, image_size=32)
    train, held = holdout(records, 0.1, seed=7)
    assert len(held) == 4 and len(train) == 36
    assert {r.image_id for r in train}.isdisjoint(r.image_id for r in held)
    assert holdout(records, 0.1, seed=7)[1] == held


def test_flags_map_to_config_fields(tmp_path: Path) -> None:
    saved = tmp_path / "saved.json"
    saved.write_text(json.dumps({"learning_rate": 0.003, "train_limit": 50, "unknown": 1}))
    config = parse_config(BlipTrainConfig, [
        "--config", str(saved), "--base-model", "some/blip", "--batch-size", "3",
        "--eval-split", "none", "--caption-metrics", "bleu4", "rouge_l", "--no-progress-bar",
        "--best-metric", "bleu4", "--freeze-vision"])
    assert config.base_model == "some/blip" and config.batch_size == 3
    assert config.learning_rate == 0.003 and config.train_limit == 50  # from --config
    assert config.eval_split is None and config.progress_bar is False and config.freeze_vision
    assert config.caption_metrics == ("bleu4", "rouge_l") and config.best_metric == "bleu4"
    with pytest.raises(SystemExit):
        parse_config(BlipTrainConfig, ["--best-metric", "cider_d", "--caption-metrics", "bleu4"])


def test_sharded_validation_captions_come_back_in_record_order() -> None:
    from finetune.common.evaluation import _interleave

    records = [f"r{i}" for i in range(7)]
    shards = [records[rank::3] for rank in range(3)]  # what each of 3 processes captions
    gathered = [item for shard in shards for item in shard]  # gather_object concatenates
    assert _interleave(gathered, 3, len(records)) == records
    assert _interleave(records, 1, len(records)) == records


def test_score_reports_bleu4_of_perfect_and_unrelated_captions() -> None:
    refs = ["ct image showing a small bright lesion on the left"] * 2
    assert score(refs, refs, ["bleu4"])["bleu4"] == pytest.approx(1.0)
    assert score(["nodule arrow", "fracture"], refs, ["bleu4"])["bleu4"] < 1e-6


# ---------------------------------------------------------------- BLIP end to end
def _bleu4_of_folder(model_dir: Path, records: list) -> tuple[float, list[str]]:
    """Caption `records` through medcap's public loading path and score them."""
    captioner = create_captioner(resolve_spec("under-test", str(model_dir), max_new_tokens=16))
    captions = [c.text for c in captioner.caption([r.load().image for r in records])]
    return score(captions, [r.caption for r in records], ["bleu4"])["bleu4"], captions


def test_blip_learns_synthetic_captions_and_the_run_loads_in_medcap(
        tiny_blip_dir: Path, tmp_path: Path) -> None:
    held_out = synthetic_records(48, split="test", seed=11, image_size=32)
    untrained_bleu, _ = _bleu4_of_folder(tiny_blip_dir, held_out)

    config = tiny_config(BlipTrainConfig, tiny_blip_dir, tmp_path / "runs" / "phantom-blip",
                         train_limit=1600, eval_limit=24, epochs=2, batch_size=16,
                         learning_rate=2e-3, logging_steps=25, save_total_limit=1)
    result = train_blip(config)

    trained_bleu, captions = _bleu4_of_folder(result.run_dir, held_out)
    print(f"held-out BLEU-4: untrained {untrained_bleu:.4f} -> trained {trained_bleu:.4f}")
    assert untrained_bleu < 0.05
    assert trained_bleu > 0.6
    exact = sum(c == r.caption for c, r in zip(captions, held_out)) / len(held_out)
    assert exact > 3 / 12  # well above guessing one of the 12 attribute combinations

    manifest = read_manifest(result.run_dir)
    assert manifest.family == "blip" and manifest.weights == "full" and manifest.path == "model"
    assert manifest.base_model == str(tiny_blip_dir.resolve())
    assert manifest.training_data["train_examples"] == 1600
    assert manifest.metrics["step"] == 200 and manifest.metrics["bleu4"] > 0.6
    history = json.loads((result.run_dir / "history.json").read_text())
    assert [e["step"] for e in history["eval"]] == [100, 200]
    assert history["train"][0]["loss"] > 2 * history["train"][-1]["loss"]
    saved = json.loads((result.run_dir / "train_config.json").read_text())
    assert saved["learning_rate"] == 2e-3 and saved["family"] == "blip"

    # The saved model is the best checkpoint: it captions validation images as validation did.
    samples = json.loads((result.run_dir / "validation_samples.json").read_text())
    assert samples["step"] == manifest.metrics["step"]
    validation = synthetic_records(24, split="validation", seed=0, image_size=32)
    _, again = _bleu4_of_folder(result.run_dir, validation)
    assert again == [s["caption"] for s in samples["samples"]]

    specs = discover_runs(tmp_path / "runs")
    assert [s.name for s in specs] == ["phantom-blip"]
    assert specs[0].source == str((result.run_dir / "model").resolve())


def test_blip_resume_continues_exactly_like_an_uninterrupted_run(
        tiny_blip_dir: Path, tmp_path: Path) -> None:
    settings = dict(train_limit=32, eval_limit=8, epochs=2, batch_size=8)  # 4 steps per epoch
    straight = train_blip(tiny_config(BlipTrainConfig, tiny_blip_dir, tmp_path / "straight",
                                      **settings))

    resumed_config = tiny_config(BlipTrainConfig, tiny_blip_dir, tmp_path / "resumed", **settings)
    train_blip(resumed_config, callbacks=[InterruptAt(4)])  # killed after epoch 1's checkpoint
    checkpoint = last_complete_checkpoint(tmp_path / "resumed" / "checkpoints")
    assert checkpoint is not None and checkpoint.name == "checkpoint-4"
    assert resume_checkpoint(resumed_config) == checkpoint
    resumed = train_blip(resumed_config)

    def losses(history: list[dict]) -> dict[int, float]:
        return {e["step"]: e["loss"] for e in history if "loss" in e}

    assert sorted(losses(resumed.history)) == list(range(1, 9))
    assert losses(resumed.history) == losses(straight.history)
    weights_a = straight.trainer.model.state_dict()
    weights_b = resumed.trainer.model.state_dict()
    assert weights_a.keys() == weights_b.keys()
    for name in weights_a:
        assert torch.equal(weights_a[name], weights_b[name]), name


def test_resume_never_refuses_a_folder_with_checkpoints(tmp_path: Path) -> None:
    (tmp_path / "run" / "checkpoints" / "checkpoint-3").mkdir(parents=True)
    config = BlipTrainConfig(base_model="x", output_dir=str(tmp_path / "run"), resume="never")
    assert resume_checkpoint(config) is None  # incomplete: no trainer_state.json
    (tmp_path / "run" / "checkpoints" / "checkpoint-3" / "trainer_state.json").write_text("{}")
    with pytest.raises(FinetuneError, match="--resume auto"):
        resume_checkpoint(config)


def test_scratch_vocabulary_tokenizes_any_lowercase_word(tmp_path: Path) -> None:
    from transformers import BertTokenizer

    from finetune.common.scratch import caption_vocabulary

    vocab = caption_vocabulary(["CT image showing a lesion.", "MRI of the knee"])
    assert vocab[:6] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "[DEC]"]
    assert {"ct", "lesion", ".", "knee", "##z"} <= set(vocab)
    assert len(vocab) == len(set(vocab))
    (tmp_path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    tokenizer = BertTokenizer(str(tmp_path / "vocab.txt"))
    assert tokenizer.tokenize("CT lesion") == ["ct", "lesion"]  # known words stay whole
    pieces = tokenizer.tokenize("pneumothorax")  # an unseen word falls back to characters
    assert "[UNK]" not in pieces and "".join(p.lstrip("#") for p in pieces) == "pneumothorax"


def test_offline_demo_trains_a_scratch_blip_the_registry_lists(tmp_path: Path) -> None:
    config = BlipTrainConfig(
        base_model="scratch", data="synthetic", output_dir=str(tmp_path / "runs" / "demo"),
        train_limit=32, eval_limit=8, epochs=1, batch_size=16, num_workers=0,
        scratch_image_size=32, synthetic_image_size=32, progress_bar=False, max_new_tokens=16)
    result = train_blip(config)
    assert (result.run_dir / "scratch-base" / "vocab.txt").is_file()
    saved = json.loads((result.run_dir / "train_config.json").read_text())
    assert saved["base_model"] == str(result.run_dir / "scratch-base")
    [spec] = discover_runs(tmp_path / "runs")
    captions = create_captioner(spec).caption(
        [r.load().image for r in synthetic_records(2, split="test", image_size=32)])
    assert len(captions) == 2 and all(isinstance(c.text, str) for c in captions)


def test_blip_trains_on_rocov2_style_parquet_shards_through_the_data_layer(
        tiny_blip_dir: Path, tmp_path: Path) -> None:
    from medcap.data.synthetic import write_synthetic_parquet

    data = tmp_path / "rocov2"
    write_synthetic_parquet(data / "data" / "train-00000-of-00001.parquet", 24, split="train",
                            image_size=32)
    write_synthetic_parquet(data / "data" / "validation-00000-of-00001.parquet", 6,
                            split="validation", image_size=32)
    config = tiny_config(BlipTrainConfig, tiny_blip_dir, tmp_path / "run", data=str(data),
                         train_limit=None, eval_limit=None, epochs=1)
    result = train_blip(config)
    manifest = read_manifest(result.run_dir)
    assert manifest.training_data == {
        "source": str(data), "train_split": "train", "train_examples": 24,
        "validation_split": "validation", "validation_examples": 6}
    samples = json.loads((result.run_dir / "validation_samples.json").read_text())["samples"]
    assert [s["image_id"] for s in samples] == [f"phantom-validation-{i:05d}" for i in range(6)]


def test_a_best_metric_that_cannot_be_computed_stops_with_a_message(tiny_blip_dir: Path) -> None:
    from finetune.common.evaluation import CaptionEvaluator
    from finetune.common.models import validation_spec
    from transformers import BlipProcessor

    config = tiny_config(BlipTrainConfig, tiny_blip_dir, Path("unused"))
    evaluator = CaptionEvaluator(validation_spec(config, "blip"),
                                 BlipProcessor.from_pretrained(str(tiny_blip_dir)),
                                 synthetic_records(2, image_size=32), ["bleu4", "no_such_metric"],
                                 required=["no_such_metric"])
    with pytest.raises((FinetuneError, ValueError), match="no_such_metric"):
        evaluator.check()


def test_gradient_accumulation_gives_the_loss_of_the_larger_batch(
        tiny_blip_dir: Path, tmp_path: Path) -> None:
    """Two accumulated half batches must train like one full batch (phantom captions all have
    the same length, so the mean over halves equals the mean over the whole)."""
    common = dict(train_limit=16, eval_limit=2, epochs=1, max_steps=2)
    whole = train_blip(tiny_config(BlipTrainConfig, tiny_blip_dir, tmp_path / "whole",
                                   batch_size=8, grad_accum=1, **common))
    halves = train_blip(tiny_config(BlipTrainConfig, tiny_blip_dir, tmp_path / "halves",
                                    batch_size=4, grad_accum=2, **common))
    loss_whole = [e["loss"] for e in whole.history if "loss" in e]
    loss_halves = [e["loss"] for e in halves.history if "loss" in e]
    assert len(loss_whole) == len(loss_halves) == 2
    assert loss_halves == pytest.approx(loss_whole, rel=1e-4)
    for (name, a), (_, b) in zip(whole.trainer.model.named_parameters(),
                                 halves.trainer.model.named_parameters()):
        assert torch.allclose(a, b, atol=1e-5), name


def test_two_process_ddp_run_trains_like_one_process_with_the_global_batch(
        tiny_blip_dir: Path, tmp_path: Path) -> None:
    """`torchrun` (what `accelerate launch` does on GPUs) over 2 CPU processes: same losses,
    and validation captions gathered from both processes back in record order."""
    import os
    import subprocess
    import sys

    common = dict(train_limit=32, eval_limit=6, epochs=1, max_steps=2, learning_rate=2e-3)
    single = train_blip(tiny_config(BlipTrainConfig, tiny_blip_dir, tmp_path / "one",
                                    batch_size=8, **common))
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in common.items()]
    done = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
         "-m", "finetune.blip",
         f"--base-model={tiny_blip_dir}", "--data=synthetic", "--synthetic-image-size=32",
         "--batch-size=4", "--num-workers=0", "--no-progress-bar", "--logging-steps=1",
         "--warmup=0", "--weight-decay=0", "--seed=0", "--max-new-tokens=16",
         f"--output-dir={tmp_path / 'two'}", *flags],
        capture_output=True, text=True, timeout=240, cwd=tmp_path,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1",
             "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert done.returncode == 0, done.stderr[-3000:]
    history = json.loads((tmp_path / "two" / "history.json").read_text())
    assert [e["loss"] for e in history["train"]] == pytest.approx(
        [e["loss"] for e in single.history if "loss" in e], rel=1e-5)
    one_samples = json.loads((tmp_path / "one" / "validation_samples.json").read_text())
    two_samples = json.loads((tmp_path / "two" / "validation_samples.json").read_text())
    assert [s["image_id"] for s in two_samples["samples"]] == [
        f"phantom-validation-{i:05d}" for i in range(6)]
    assert two_samples["samples"] == one_samples["samples"]
