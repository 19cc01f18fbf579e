"""Weight-only int8 on the CPU (`quantization="int8"`): the language model's Linear weights are
really int8, the vision side is left alone, and captions mostly agree with fp32 (the agreement
is printed, not asserted equal: int8 and bf16 may change a greedy pick)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medcap.config import load_settings
from medcap.models import ModelLoadError, create_captioner, resolve_spec
from medcap.models.quantize import check_device, linear_layers, token_agreement

pytest.importorskip("optimum.quanto")

FAMILIES = [("blip", "tiny_blip_dir"), ("blip2", "tiny_blip2_dir"),
            ("qwen2-vl", "tiny_qwen2_vl_dir")]


def _images() -> list[Image.Image]:
    rng = np.random.default_rng(7)
    return [Image.fromarray((rng.random((40 + 8 * i, 40)) * 255).astype("uint8"))
            for i in range(4)]


HEADS = ("lm_head", "predictions.decoder")  # the output heads, int8 unless tied


def _captioner(family: str, folder, **overrides):
    spec = resolve_spec(family, str(folder), device="cpu", max_new_tokens=12, **overrides)
    return create_captioner(spec)


@pytest.mark.parametrize("family, fixture", FAMILIES)
def test_int8_captions_run_on_cpu_with_int8_language_model(request, family, fixture):
    folder = request.getfixturevalue(fixture)
    int8 = _captioner(family, folder, quantization="int8")
    captions = int8.caption(_images())
    language, kept = linear_layers(int8.model, int8.vision_modules)
    heads = {name: dtype for name, dtype in language.items() if name.endswith(HEADS)}
    body = {name: dtype for name, dtype in language.items() if name not in heads}
    assert body and set(body.values()) == {torch.int8}
    assert kept and torch.int8 not in set(kept.values())  # the vision side stays bf16
    assert int8.dtype == torch.bfloat16 and int8.device == "cpu"
    from optimum.quanto import QTensor

    # A head tied to the embeddings stays bf16 and shared (quantize's docstring); an untied one
    # is int8 like the rest.
    storages = [t.untyped_storage().data_ptr()
                for _, t in int8.model.named_parameters(remove_duplicate=False)
                if not isinstance(t, QTensor)]  # an int8 weight's storage is quanto's own
    assert heads
    for name, dtype in heads.items():
        weight = int8.model.get_submodule(name).weight
        if isinstance(weight, QTensor):
            assert dtype == torch.int8
        else:  # left bf16 only because it is the embeddings' own memory
            assert dtype == torch.bfloat16
            assert storages.count(weight.untyped_storage().data_ptr()) > 1, name
    assert all(caption.tokens for caption in captions)

    full = _captioner(family, folder, dtype="float32").caption(_images())
    agreement = [token_agreement([t.text for t in a.tokens], [t.text for t in b.tokens])
                 for a, b in zip(full, captions)]
    print(f"{family}: int8 vs fp32 token agreement {np.mean(agreement):.2f} {agreement}")
    assert np.mean(agreement) >= 0.5


def test_int8_merges_a_lora_adapter_before_quantizing(tiny_blip2_dir, tiny_blip2_adapter_dir):
    captioner = _captioner("blip2-lora", tiny_blip2_dir, adapter=str(tiny_blip2_adapter_dir),
                           quantization="int8")
    captions = captioner.caption(_images()[:2])
    language, _ = linear_layers(captioner.model, captioner.vision_modules)
    assert {dtype for name, dtype in language.items() if not name.endswith(HEADS)} == {torch.int8}
    assert not any("lora" in name for name in language)  # merged, not kept beside the weights
    assert len(captions) == 2


def test_each_quantization_names_the_one_this_device_runs():
    with pytest.raises(ModelLoadError, match="needs a CUDA GPU.*Use quantization 'int8'"):
        check_device(resolve_spec("blip", quantization="8bit"), "cpu")
    with pytest.raises(ModelLoadError, match="on cuda use '8bit' or '4bit'"):
        check_device(resolve_spec("blip", quantization="int8"), "cuda")
    with pytest.raises(ModelLoadError, match="compute in bfloat16"):
        check_device(resolve_spec("blip", quantization="int8", dtype="float32"), "cpu")
    check_device(resolve_spec("blip", quantization="int8"), "cpu")
    check_device(resolve_spec("blip", quantization="4bit"), "cuda:1")


def test_medcap_quantization_reaches_every_model(tmp_path):
    env = {"MEDCAP_MODELS": "blip,qwen2-vl", "MEDCAP_QUANTIZATION": "int8",
           "MEDCAP_RUNS_DIR": str(tmp_path)}
    specs, problems = load_settings(env, tmp_path / "none.toml").model_specs()
    assert [s.quantization for s in specs] == ["int8", "int8"] and not problems
    specs, problems = load_settings({**env, "MEDCAP_QUANTIZATION": "int4"},
                                    tmp_path / "none.toml").model_specs()
    assert not specs and "quantization 'int4' is not one of 8bit, 4bit, int8" in problems["blip"]


def test_token_agreement_counts_positions_over_the_longer_caption():
    assert token_agreement(["a", "b", "c"], ["a", "b", "c"]) == 1.0
    assert token_agreement(["a", "b", "c", "d"], ["a", "x"]) == 0.25
    assert token_agreement([], []) == 1.0


def test_quantization_benchmark_runs_on_tiny_models(tmp_path, capsys):
    """Keeps benchmarks/bench_quantization.py from rotting (numbers are printed, not checked)."""
    from benchmarks import bench_quantization

    argv = ["--size", "tiny", "--families", "blip", "--images", "1", "--new-tokens", "3",
            "--warmup", "0", "--cache-dir", str(tmp_path), "--in-process"]
    assert bench_quantization.main(argv) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| BLIP")]
    assert [row.split("|")[2].strip() for row in rows] == ["fp32", "bf16", "int8"]


def test_an_int8_layer_given_many_rows_multiplies_in_bf16_with_the_same_result():
    """The prompt pass widens the weight instead of the few-row int8 kernel (quantize's docstring);
    both give the product of the same int8 weights."""
    from medcap.models.quantize import DEQUANTIZE_ABOVE_ROWS, quantize_language_model

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(64, 96)).to(torch.bfloat16)
    assert quantize_language_model(model, keep=()) == 1
    layer = model[0]
    weight = layer.weight._data.to(torch.float32) * layer.weight._scale.to(torch.float32)
    kernel_calls = []
    original = torch._weight_int8pack_mm
    try:
        torch._weight_int8pack_mm = lambda *a: kernel_calls.append(a[0].shape[0]) or original(*a)
        for rows in (1, DEQUANTIZE_ABOVE_ROWS, DEQUANTIZE_ABOVE_ROWS + 1, 300):
            x = torch.randn(rows, 64).to(torch.bfloat16)
            expected = x.float() @ weight.T + layer.bias.float()
            got = layer(x).float()
            assert torch.allclose(got, expected, rtol=0.02, atol=0.05), rows
    finally:
        torch._weight_int8pack_mm = original
    assert kernel_calls == [1, DEQUANTIZE_ABOVE_ROWS]  # many rows never reach the int8 kernel


def test_a_replaced_weight_hands_back_its_file_pages_and_nothing_else(tmp_path):
    """Only memory mapped from a weight file is given back (quantize's docstring)."""
    from safetensors.torch import load_file, save_file

    from medcap.models.quantize import MappedWeightFiles

    path = tmp_path / "w.safetensors"
    save_file({"w": torch.ones(1024, 1024)}, str(path))  # 4 MiB
    mapped_tensor = load_file(str(path))["w"]
    in_memory = torch.ones(1024, 1024)
    mapped = MappedWeightFiles()
    if not mapped.ranges:
        pytest.skip("no /proc/self/maps, or safetensors did not memory-map the file here")
    assert mapped.drop(in_memory) == 0 and bool(in_memory.eq(1).all())
    assert mapped.drop(mapped_tensor) > 0
    assert bool(mapped_tensor.eq(1).all())  # read again from the file
