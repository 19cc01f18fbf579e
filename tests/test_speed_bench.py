"""Keeps benchmarks/bench_caption.py from rotting (tiny models, 2 images, no timing asserts) and
checks that the lean greedy probability path gives the same numbers as generate's scores."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from benchmarks import _common, bench_caption
from medcap.models import create_captioner, resolve_spec


def test_benchmark_runs_all_paths_on_tiny_models(tmp_path, capsys):
    argv = ["--size", "tiny", "--images", "2", "--new-tokens", "4", "--batch-size", "2",
            "--warmup", "0", "--cache-dir", str(tmp_path), "--image-sizes", "64x48,40x56"]
    assert bench_caption.main(argv) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 7  # header + 2 models x (seed, batched, pipelined)
    for label in ("BLIP (tiny)", "Qwen2-VL (tiny)"):
        rows = [line for line in table if line.startswith(f"| {label} |")]
        assert [" ".join(r.split("|")[2].split()[:2]) for r in rows] == [
            "seed loop", "medcap batched", "medcap pipelined"]
        assert all(r.split("|")[4].strip() == "4" for r in rows)  # equal output: 4 tokens each
        assert rows[0].rstrip(" |").endswith("1.00x") and rows[1].rstrip(" |").endswith("x")


def test_bench_model_results_count_real_tokens_and_memory(tmp_path):
    config = bench_caption.parse_args(["--size", "tiny", "--images", "2", "--new-tokens", "3",
                                       "--warmup", "1", "--cache-dir", str(tmp_path)])
    results = bench_caption.bench_model("qwen2-vl", config, log=lambda s: None)
    assert [r.tokens_per_image for r in results] == [3, 3, 3]
    assert [r.images for r in results] == [2, 2, 2]
    assert all(r.peak_bytes > 0 and r.images_per_second > 0 for r in results)


def test_blip2_preset_builds_and_benchmarks_on_equal_output(tmp_path):
    """The GPU-sized BLIP-2 OPT-6.7B row uses this builder and seed loop; tiny here."""
    config = bench_caption.parse_args(["--size", "tiny", "--models", "blip2", "--images", "2",
                                       "--new-tokens", "3", "--warmup", "0",
                                       "--cache-dir", str(tmp_path)])
    results = bench_caption.bench_model("blip2", config, log=lambda s: None)
    assert [r.tokens_per_image for r in results] == [3, 3, 3]


def test_real_size_presets_match_the_hub_models():
    qwen = _common.QWEN2_VL_2B  # Qwen/Qwen2-VL-2B-Instruct config.json
    assert (qwen.text_hidden, qwen.text_layers, qwen.text_heads, qwen.text_kv_heads,
            qwen.text_intermediate, qwen.vocab_size) == (1536, 28, 12, 2, 8960, 151936)
    assert qwen.mrope_section == [16, 24, 24]
    assert _common.visual_tokens(512, 512, qwen) == 256  # the registry's 448x448 budget
    blip2 = _common.BLIP2_OPT_67B  # Salesforce/blip2-opt-6.7b config.json
    assert (blip2.vision_layers, blip2.vision_hidden, blip2.text_layers, blip2.text_hidden,
            blip2.num_query_tokens) == (39, 1408, 32, 4096, 32)
    assert bench_caption.parse_args(["--size", "real"]).max_pixels is None
    assert bench_caption.qwen_max_pixels(bench_caption.parse_args(["--size", "real"])) == 448 * 448
    assert bench_caption.qwen_max_pixels(bench_caption.parse_args([])) == 224 * 224


def test_builders_cache_by_config(tmp_path):
    first = _common.build_blip(tmp_path, _common.BLIP_TINY)
    assert _common.build_blip(tmp_path, _common.BLIP_TINY) == first
    other = _common.build_blip(tmp_path, _common.BlipSize(**{**_common.BLIP_TINY.__dict__,
                                                            "text_layers": 1}))
    assert other != first and (other / "config.json").is_file()


def test_stated_visual_token_counts():
    size = _common.QWEN2_VL_05B_LM  # max_pixels 224*224
    assert _common.visual_tokens(512, 512, size) == 64
    assert _common.visual_tokens(448, 448, _common.QwenSize(max_pixels=448 * 448)) == 256
    assert _common.QWEN2_VL_05B_LM.mrope_section == [8, 12, 12]  # sums to head_dim / 2 = 32


def test_images_and_sizes_flags():
    sizes = _common.parse_sizes("512x384, 64")
    assert sizes == [(512, 384), (64, 64)]
    images = _common.make_images(3, sizes)
    assert [im.size for im in images] == [(512, 384), (64, 64), (512, 384)]
    assert all(im.mode == "L" for im in images)


def test_peak_memory_sees_a_large_allocation():
    memory = _common.PeakMemory("cpu")
    memory.reset()
    before = memory.peak_bytes()
    block = torch.ones(64 * 1024 * 1024)  # 256 MiB of float32, touched
    assert memory.peak_bytes() >= before + 200 * 1024**2
    del block


@pytest.mark.parametrize("name,fixture,overrides", [
    ("qwen2-vl", "tiny_qwen2_vl_dir", {}),
    ("blip", "tiny_blip_dir", {"repetition_penalty": 1.5}),  # processor order matters here
])
def test_greedy_probabilities_equal_generate_scores(name, fixture, overrides, request):
    folder = request.getfixturevalue(fixture)
    captioner = create_captioner(resolve_spec(name, str(folder), max_new_tokens=6,
                                              min_new_tokens=6, **overrides))
    images = [Image.new("RGB", (64, 64), c) for c in ("white", "gray")]
    captions = captioner.caption(images, batch_size=2)

    inputs = {k: captioner._to_device(v) for k, v in captioner.prepare(images).inputs.items()}
    kwargs = captioner.spec.generation.generate_kwargs()
    with torch.inference_mode():
        out = captioner.model.generate(**inputs, return_dict_in_generate=True, output_scores=True,
                                       **kwargs)
    reference = captioner.model.compute_transition_scores(out.sequences, out.scores,
                                                          normalize_logits=True).exp()
    special = set(captioner.tokenizer.all_special_ids)
    stop = captioner._stop_token_ids()
    new_ids = out.sequences[:, -len(out.scores):].tolist()
    for row, caption in enumerate(captions):
        ids = new_ids[row]
        cut = next((i for i, t in enumerate(ids) if t in stop), len(ids))
        kept = [p for t, p in zip(ids[:cut], reference[row].tolist()) if t not in special]
        assert [t.prob for t in caption.tokens] == pytest.approx(kept, rel=1e-5)


def test_latency_benchmark_runs_on_tiny_models(tmp_path, capsys):
    """Both paths of both models, each in its own process, and the memory table."""
    from benchmarks import bench_latency

    argv = ["--size", "tiny", "--requests", "3", "--new-tokens", "4", "--repeat", "1",
            "--rounds", "1", "--cache-dir", str(tmp_path), "--image-sizes", "64x48",
            "--models", "blip,qwen2-vl"]
    assert bench_latency.main(argv) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = {model: [line for line in lines if line.startswith(f"| {model}")]
            for model in ("BLIP (tiny)", "Qwen2-VL (tiny)")}
    for model, table in rows.items():
        assert len(table) == 6, table  # detokenize, today / new / again, one by one / at once
        assert table[0].rstrip(" |").endswith("x") and "old (quadratic)" not in table[0]
        assert "today: caption() then show; bf16 weights" in table[1]
        assert "new: streamed, GenerationLoop; int8 weights" in table[2]
        assert "vision features cached" in table[3]
        assert "batched by the loop [3]" in table[5] and table[5].rstrip(" |").endswith("x")
    memory = [line for line in lines if line.startswith(("| today: BLIP", "| new: BLIP"))]
    assert len(memory) == 2 and all(line.count("GiB") == 3 for line in memory), memory
