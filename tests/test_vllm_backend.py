"""The vLLM glue, tested without vLLM: a fake engine stands in for `vllm.LLM`."""

from __future__ import annotations

import math
import sys
from types import SimpleNamespace

import pytest
from PIL import Image

from medcap.cli import build_parser
from medcap.models import ModelLoadError, create_captioner, resolve_spec
from medcap.models.vllm_backend import (
    VllmQwen2VLCaptioner,
    VllmSettings,
    create_vllm_captioner,
    sampling_kwargs,
)

WORDS_BY_WIDTH = {64: ["chest", "x-ray"], 40: ["brain", "mri"], 96: ["liver", "lesion", "shows"]}


class FakeEngine:
    """Answers each request with words chosen by the image's width, then <|im_end|> and padding."""

    def __init__(self, kwargs, tokenizer):
        self.kwargs = kwargs
        self.tokenizer = tokenizer
        self.calls = []

    def generate(self, requests, sampling_params, use_tqdm=True):
        self.calls.append((requests, sampling_params))
        outputs = []
        for request in requests:
            words = WORDS_BY_WIDTH[request["multi_modal_data"]["image"].width]
            ids = [self.tokenizer.convert_tokens_to_ids("Ġ" + w) for w in words]
            ids += [self.tokenizer.convert_tokens_to_ids("<|im_end|>")]
            logprobs = [{t: SimpleNamespace(logprob=math.log(0.25)), -1: SimpleNamespace(logprob=0.0)}
                        for t in ids]
            outputs.append(SimpleNamespace(outputs=[SimpleNamespace(token_ids=ids,
                                                                    logprobs=logprobs)]))
        return outputs


@pytest.fixture
def vllm_captioner(tiny_qwen2_vl_dir):
    from transformers import AutoProcessor

    tokenizer = AutoProcessor.from_pretrained(str(tiny_qwen2_vl_dir)).tokenizer
    made = {}

    def factory(kwargs):
        made["engine"] = FakeEngine(kwargs, tokenizer)
        return made["engine"], lambda **kw: dict(kw)

    spec = resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir), max_new_tokens=16,
                        max_pixels=28 * 28 * 8, prompt="describe this chest")
    captioner = VllmQwen2VLCaptioner(spec, VllmSettings(tensor_parallel_size=2), factory)
    return captioner, made


def _images():
    return [Image.new("L", (64, 48), 90), Image.new("RGB", (40, 40), "white"),
            Image.new("RGB", (96, 64), "gray")]


def test_requests_carry_the_transformers_chat_template_and_the_image(vllm_captioner,
                                                                     tiny_qwen2_vl_dir):
    captioner, made = vllm_captioner
    images = _images()
    captioner.caption(images, batch_size=2)
    engine = made["engine"]
    reference = create_captioner(captioner.spec)
    reference.load()
    expected_prompt = reference.chat_text()
    requests = [r for call in engine.calls for r in call[0]]
    assert len(engine.calls) == 2 and len(requests) == 3  # batches of 2 + 1
    for request in requests:
        assert request["prompt"] == expected_prompt
        assert request["prompt"].count("<|image_pad|>") == 1  # vLLM expands it per image
        assert "describe this chest" in request["prompt"]
        assert request["multi_modal_data"]["image"].mode == "RGB"
    assert sorted(r["multi_modal_data"]["image"].size for r in requests) == sorted(
        im.size for im in images)
    assert engine.kwargs["model"] == str(tiny_qwen2_vl_dir)
    assert engine.kwargs["mm_processor_kwargs"] == {"max_pixels": 28 * 28 * 8}
    assert engine.kwargs["limit_mm_per_prompt"] == {"image": 1}
    assert engine.kwargs["tensor_parallel_size"] == 2
    params = engine.calls[0][1]
    assert params["temperature"] == 0.0 and params["max_tokens"] == 16 and params["logprobs"] == 0


def test_engine_outputs_become_captions_in_input_order(vllm_captioner):
    captioner, _ = vllm_captioner
    captions = captioner.caption(_images(), batch_size=2)
    assert [c.text for c in captions] == ["chest x-ray", "brain mri", "liver lesion shows"]
    for caption in captions:
        assert "".join(t.text for t in caption.tokens) == caption.text  # eos cut off
        assert all(t.prob == pytest.approx(0.25) for t in caption.tokens)
        assert caption.seconds >= 0


def test_sampling_settings_follow_the_spec():
    spec = resolve_spec("qwen2-vl", max_new_tokens=32, min_new_tokens=32, repetition_penalty=1.1)
    kwargs = sampling_kwargs(spec.generation)
    assert kwargs == {"max_tokens": 32, "min_tokens": 32, "repetition_penalty": 1.1,
                      "temperature": 0.0, "logprobs": 0}
    with pytest.raises(ModelLoadError, match="beam search"):
        sampling_kwargs(spec.with_overrides(num_beams=3).generation)


def test_missing_vllm_is_a_message_not_a_traceback(monkeypatch, tiny_qwen2_vl_dir):
    monkeypatch.setitem(sys.modules, "vllm", None)  # makes `import vllm` raise ImportError
    captioner = create_vllm_captioner(resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir)))
    with pytest.raises(ModelLoadError, match="pip install vllm"):
        captioner.load()
    assert not captioner.loaded


def test_other_families_and_adapters_are_refused(tiny_blip_dir, tiny_qwen2_vl_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="serves Qwen2-VL only"):
        create_vllm_captioner(resolve_spec("blip", str(tiny_blip_dir)))
    spec = resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir)).with_overrides(adapter=str(tmp_path))
    with pytest.raises(ModelLoadError, match="LoRA adapters are not wired"):
        create_vllm_captioner(spec).load()


def test_cli_has_a_backend_flag():
    base = ["caption", "--model", "qwen2-vl", "--images", "x", "--out", "y.csv"]
    assert build_parser().parse_args(base).backend == "transformers"
    assert build_parser().parse_args(base + ["--backend", "vllm"]).backend == "vllm"
    with pytest.raises(SystemExit):
        build_parser().parse_args(base + ["--backend", "tgi"])


def test_engine_that_cannot_start_is_a_model_load_error(tiny_qwen2_vl_dir):
    """No CUDA or too little GPU memory must read as one model failing, not a traceback."""
    def factory(kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB\nmore detail")

    spec = resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir))
    captioner = VllmQwen2VLCaptioner(spec, VllmSettings(), factory)
    with pytest.raises(ModelLoadError) as caught:
        captioner.load()
    assert str(caught.value) == (
        f"Could not start a vLLM engine for 'qwen2-vl' from {tiny_qwen2_vl_dir}: "
        "RuntimeError: CUDA out of memory. Tried to allocate 2.00 GiB")
    assert not captioner.loaded
