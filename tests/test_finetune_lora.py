"""LoRA fine-tuning of the tiny BLIP-2 and Qwen2-VL: label masking, targets, learning, resume.

Both runs must raise held-out BLEU-4 on synthetic phantoms from ~0 to far above it, and their run
folders must load in `medcap` (base model + adapter) with no code change.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from finetune.blip2_lora import Blip2Collator, Blip2LoraConfig, OPT_LORA_TARGETS
from finetune.blip2_lora import load_processors as blip2_processors
from finetune.blip2_lora import train as train_blip2
from finetune.common.collate import IGNORE_INDEX
from finetune.common.evaluation import score
from finetune.common.models import apply_lora, quantization_settings
from finetune.qwen2vl_lora import QWEN_LORA_TARGETS, Qwen2VLCollator, Qwen2VLLoraConfig
from finetune.qwen2vl_lora import load_processors as qwen_processors
from finetune.qwen2vl_lora import train as train_qwen
from medcap.data.synthetic import synthetic_records
from medcap.models import ModelLoadError, create_captioner, read_manifest, resolve_spec
from tests.support.tiny_training import InterruptAt, one_torch_thread, tiny_config  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
PROMPT = "describe this medical image"
# The tiny models' embeddings are random and small, so LoRA on every projection of the language
# model (not only q/v, the real-model default) is what lets them learn in a few hundred steps.
BLIP2_ALL_PROJECTIONS = r".*language_model.*\.(q_proj|k_proj|v_proj|out_proj|fc1|fc2)$"


def _examples(captions: list[str], image_size: int) -> list[dict]:
    records = synthetic_records(len(captions), image_size=image_size)
    return [{"image": r.load().image, "caption": c} for r, c in zip(records, captions)]


def _labelled_text(tokenizer, batch: dict, row: int) -> str:
    keep = batch["labels"][row] != IGNORE_INDEX
    return tokenizer.decode(batch["input_ids"][row][keep])


# ---------------------------------------------------------------- collators
def test_qwen_collator_labels_the_answer_tokens_only(tiny_qwen2_vl_dir: Path) -> None:
    processor, _ = qwen_processors(tiny_qwen2_vl_dir)
    collator = Qwen2VLCollator(processor, PROMPT, max_caption_tokens=64, max_pixels=None)
    captions = ["ct image showing a small bright lesion on the left", "mri scan"]
    batch = collator(_examples(captions, 56))
    tokenizer = processor.tokenizer
    image_token = tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for row, caption in enumerate(captions):
        assert _labelled_text(tokenizer, batch, row) == caption + "<|im_end|>\n"
    is_image = batch["input_ids"] == image_token
    assert is_image.sum() > 0 and (batch["labels"][is_image] == IGNORE_INDEX).all()
    padded = batch["attention_mask"] == 0
    assert padded.any() and (batch["labels"][padded] == IGNORE_INDEX).all()
    # Everything before the answer, prompt text included, is masked.
    prompt_ids = tokenizer(collator.prompt_text, add_special_tokens=False)["input_ids"]
    assert len(prompt_ids) < batch["input_ids"].shape[1]
    assert "image_grid_thw" in batch and "pixel_values" in batch


def test_blip2_collator_labels_caption_and_end_token_only(tiny_blip2_dir: Path) -> None:
    processor, generation = blip2_processors(tiny_blip2_dir)
    assert (processor.tokenizer.padding_side, generation.tokenizer.padding_side) == ("right", "left")
    collator = Blip2Collator(processor, max_caption_tokens=64)
    captions = ["ultrasound image showing a large bright lesion on the right", "ct scan"]
    batch = collator(_examples(captions, 32))
    tokenizer = processor.tokenizer
    for row, caption in enumerate(captions):
        assert _labelled_text(tokenizer, batch, row) == caption + tokenizer.eos_token
    image_token = tokenizer.convert_tokens_to_ids("<image>")
    is_image = batch["input_ids"] == image_token
    assert is_image.sum(dim=1).tolist() == [4, 4]  # the tiny model's query tokens
    assert (batch["labels"][is_image] == IGNORE_INDEX).all()


# ---------------------------------------------------------------- LoRA set-up
def _lora_module_names(model) -> list[str]:
    return sorted({n.rsplit(".lora_A", 1)[0] for n, _ in model.named_parameters() if "lora_A" in n})


def test_qwen_lora_targets_every_language_projection_and_no_vision_module(
        tiny_qwen2_vl_dir: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForImageTextToText

    config = tiny_config(Qwen2VLLoraConfig, tiny_qwen2_vl_dir, tmp_path, prompt=PROMPT)
    model = apply_lora(AutoModelForImageTextToText.from_pretrained(str(tiny_qwen2_vl_dir)), config,
                       QWEN_LORA_TARGETS, quantized=False)
    names = _lora_module_names(model)
    assert names and all("language_model" in n and "visual" not in n for n in names)
    kinds = {n.rsplit(".", 1)[-1] for n in names}
    assert kinds == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)


def test_blip2_lora_defaults_to_opt_attention(tiny_blip2_dir: Path, tmp_path: Path) -> None:
    from transformers import Blip2ForConditionalGeneration

    config = tiny_config(Blip2LoraConfig, tiny_blip2_dir, tmp_path, quantization="none")
    model = apply_lora(Blip2ForConditionalGeneration.from_pretrained(str(tiny_blip2_dir)), config,
                       OPT_LORA_TARGETS, quantized=False)
    names = _lora_module_names(model)
    assert len(names) == 2 * 2  # two OPT layers x (q_proj, v_proj)
    assert all("language_model" in n for n in names)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU-only refusal")
def test_kbit_loading_needs_a_gpu_and_auto_falls_back_to_full_precision() -> None:
    assert quantization_settings("auto") == (None, {})
    with pytest.raises(ModelLoadError, match="needs a CUDA GPU"):
        quantization_settings("8bit")


# ---------------------------------------------------------------- learning, loading, resume
def _held_out_bleu4(name: str, source: Path, records: list) -> float:
    captioner = create_captioner(resolve_spec(name, str(source), max_new_tokens=24))
    captions = [c.text for c in captioner.caption([r.load().image for r in records])]
    return score(captions, [r.caption for r in records], ["bleu4"])["bleu4"]


def _assert_adapter_run(run_dir: Path, base: Path, family: str) -> None:
    manifest = read_manifest(run_dir)
    assert (manifest.family, manifest.weights, manifest.path) == (family, "adapter", "adapter")
    assert manifest.base_model == str(base.resolve())
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    assert not (run_dir / "adapter" / "model.safetensors").exists()  # adapter only
    spec = resolve_spec("check", str(run_dir))
    assert spec.source == str(base.resolve()) and spec.adapter == str((run_dir / "adapter").resolve())


def test_blip2_lora_learns_synthetic_captions_and_loads_as_base_plus_adapter(
        tiny_blip2_dir: Path, tmp_path: Path) -> None:
    held_out = synthetic_records(32, split="test", seed=11, image_size=32)
    untrained = _held_out_bleu4("blip2", tiny_blip2_dir, held_out)
    config = tiny_config(
        Blip2LoraConfig, tiny_blip2_dir, tmp_path / "blip2-lora", quantization="none",
        train_limit=2400, eval_limit=16, epochs=1, batch_size=16, grad_accum=1,
        learning_rate=1e-2, lora_rank=16, lora_alpha=32, lora_dropout=0.0,
        lora_targets=(BLIP2_ALL_PROJECTIONS,), max_new_tokens=24, logging_steps=25)
    result = train_blip2(config)
    _assert_adapter_run(result.run_dir, tiny_blip2_dir, "blip2")
    trained = _held_out_bleu4("blip2-lora", result.run_dir, held_out)
    print(f"BLIP-2 LoRA held-out BLEU-4: untrained {untrained:.4f} -> trained {trained:.4f}")
    assert untrained < 0.05
    assert trained > 0.3


def test_qwen2vl_lora_learns_synthetic_captions_and_keeps_its_prompt(
        tiny_qwen2_vl_dir: Path, tmp_path: Path) -> None:
    held_out = synthetic_records(32, split="test", seed=11, image_size=56)
    untrained = _held_out_bleu4("qwen-base", tiny_qwen2_vl_dir, held_out)
    config = tiny_config(
        Qwen2VLLoraConfig, tiny_qwen2_vl_dir, tmp_path / "qwen-lora", prompt=PROMPT, max_pixels=None,
        synthetic_image_size=56, train_limit=2400, eval_limit=16, epochs=1, batch_size=16,
        grad_accum=1, learning_rate=1e-2, lora_rank=16, lora_alpha=32, lora_dropout=0.0,
        max_new_tokens=24, logging_steps=25)
    result = train_qwen(config)
    _assert_adapter_run(result.run_dir, tiny_qwen2_vl_dir, "qwen2-vl")
    assert read_manifest(result.run_dir).prompt == PROMPT
    assert resolve_spec("qwen-phantoms", str(result.run_dir)).prompt == PROMPT
    trained = _held_out_bleu4("qwen-phantoms", result.run_dir, held_out)
    print(f"Qwen2-VL LoRA held-out BLEU-4: untrained {untrained:.4f} -> trained {trained:.4f}")
    assert untrained < 0.05
    assert trained > 0.3


def test_qwen_lora_resume_with_dropout_continues_exactly(tiny_qwen2_vl_dir: Path, tmp_path: Path) -> None:
    settings = dict(prompt=PROMPT, max_pixels=None, synthetic_image_size=56, train_limit=16,
                    eval_limit=4, epochs=2, batch_size=4, grad_accum=2, lora_dropout=0.3,
                    lora_rank=4, lora_alpha=8)  # 2 optimizer steps per epoch, dropout on
    straight = train_qwen(tiny_config(Qwen2VLLoraConfig, tiny_qwen2_vl_dir, tmp_path / "a", **settings))
    config = tiny_config(Qwen2VLLoraConfig, tiny_qwen2_vl_dir, tmp_path / "b", **settings)
    train_qwen(config, callbacks=[InterruptAt(2)])
    assert sorted(p.name for p in (tmp_path / "b" / "checkpoints").iterdir()) == ["checkpoint-2"]
    resumed = train_qwen(config)

    def losses(result) -> dict[int, float]:
        return {e["step"]: e["loss"] for e in result.history if "loss" in e}

    assert sorted(losses(resumed)) == [1, 2, 3, 4]
    assert losses(resumed) == losses(straight)
    lora_a = {n: p for n, p in straight.trainer.model.named_parameters() if "lora_" in n}
    lora_b = {n: p for n, p in resumed.trainer.model.named_parameters() if "lora_" in n}
    assert lora_a.keys() == lora_b.keys() and lora_a
    for name in lora_a:
        assert torch.equal(lora_a[name], lora_b[name]), name


def test_script_reports_a_missing_base_model_as_a_message(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "finetune.blip2_lora", "--base-model", str(missing),
         "--data", "synthetic", "--output-dir", str(tmp_path / "run")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert done.returncode == 2
    assert f"'{missing}' does not exist" in done.stderr
    assert "Traceback" not in done.stderr
