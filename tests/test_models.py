"""Captioners for all three families, loaded offline from tiny saved models through the public path."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from medcap.models import (
    FAMILIES,
    Manifest,
    ModelLoadError,
    create_captioner,
    discover_runs,
    register_model,
    resolve_spec,
    write_manifest,
)
from medcap.models import loading


def _images() -> list[Image.Image]:
    rng = np.random.RandomState(0)
    sizes = [(64, 48), (40, 40), (96, 64), (56, 72)]
    images = [Image.fromarray((rng.rand(h, w, 3) * 255).astype("uint8")) for w, h in sizes]
    images.append(Image.fromarray((rng.rand(50, 50) * 255).astype("uint8"), mode="L"))
    return images


FAMILY_FIXTURES = {
    "blip": "tiny_blip_dir",
    "blip2": "tiny_blip2_dir",
    "qwen2-vl": "tiny_qwen2_vl_dir",
}


@pytest.mark.parametrize("name", list(FAMILY_FIXTURES))
def test_each_family_captions_a_batch_with_token_probabilities(name, request):
    folder = request.getfixturevalue(FAMILY_FIXTURES[name])
    captioner = create_captioner(resolve_spec(name, str(folder), max_new_tokens=12))
    assert not captioner.loaded  # lazy: nothing loads until first use
    images = _images()
    captions = captioner.caption(images, batch_size=2)
    assert captioner.loaded
    assert len(captions) == len(images)
    for caption in captions:
        assert caption.text and caption.text == " ".join(caption.text.split())
        assert 1 <= len(caption.tokens) <= 12
        assert "".join(t.text for t in caption.tokens) == caption.text
        assert all(0.0 < t.prob <= 1.0 for t in caption.tokens)
        assert caption.seconds > 0


@pytest.mark.parametrize("name", list(FAMILY_FIXTURES))
def test_batched_captions_equal_one_at_a_time(name, request):
    folder = request.getfixturevalue(FAMILY_FIXTURES[name])
    captioner = create_captioner(resolve_spec(name, str(folder), max_new_tokens=10))
    images = [im.resize((64, 64)) for im in _images()[:4]]  # same size: no padding differences
    batched = [c.text for c in captioner.caption(images, batch_size=4)]
    single = [captioner.caption([im])[0].text for im in images]
    assert batched == single
    assert captioner.caption(images, batch_size=3)[2].text == batched[2]  # order restored


def test_qwen2_vl_mixed_sizes_in_one_batch_keep_their_own_captions(tiny_qwen2_vl_dir):
    captioner = create_captioner(resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir),
                                              max_new_tokens=8))
    images = _images()[:3]  # three different sizes -> different visual token counts
    inputs = captioner.prepare(images).inputs
    grid = inputs["image_grid_thw"].tolist()
    assert len({tuple(g) for g in grid}) > 1  # really mixed
    assert inputs["attention_mask"][:, 0].tolist().count(0) >= 1  # left padded
    batched = [c.text for c in captioner.caption(images, batch_size=3)]
    single = [captioner.caption([im])[0].text for im in images]
    assert batched == single


def test_qwen2_vl_prompt_is_part_of_the_spec(tiny_qwen2_vl_dir):
    captioner = create_captioner(resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir),
                                              prompt="describe this chest"))
    captioner.load()
    text = captioner.chat_text()
    assert "describe this chest" in text
    assert text.count("<|image_pad|>") == 1 and text.endswith("<|im_start|>assistant\n")


def test_per_call_prompt_matches_a_spec_prompt_and_leaves_the_spec_alone(tiny_qwen2_vl_dir):
    images = _images()[:2]
    default = create_captioner(resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir), max_new_tokens=6))
    fixed = create_captioner(resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir), max_new_tokens=6,
                                          prompt="Name the imaging modality."))
    own = [c.text for c in default.caption(images, prompt="  Name the imaging modality. ")]
    assert own == [c.text for c in fixed.caption(images)]
    assert default.spec.prompt is None  # the call's prompt did not stick to the captioner
    assert "Name the imaging modality." in default.chat_text("Name the imaging modality.")
    assert "Name the imaging modality." not in default.chat_text()
    assert default.chat_text("   ") == default.chat_text()  # a blank prompt means the default


def test_qwen2_vl_max_pixels_caps_visual_tokens(tiny_qwen2_vl_dir):
    big = Image.new("RGB", (400, 300), "white")
    few = create_captioner(resolve_spec("q", str(tiny_qwen2_vl_dir), max_pixels=28 * 28 * 4))
    many = create_captioner(resolve_spec("q", str(tiny_qwen2_vl_dir), max_pixels=28 * 28 * 16))
    for c in (few, many):
        c.load()
    tokens_few = int(np.prod(few.prepare([big]).inputs["image_grid_thw"][0].tolist())) // 4
    tokens_many = int(np.prod(many.prepare([big]).inputs["image_grid_thw"][0].tolist())) // 4
    assert tokens_few <= 4 < tokens_many <= 16


def test_qwen2_vl_without_a_budget_gets_fewer_visual_tokens_on_a_cpu(tiny_qwen2_vl_dir):
    """The registry sets no max_pixels: 336 x 336 (144 tokens) on a CPU, 448 x 448 on a GPU;
    a budget in the spec (a LoRA's training budget) wins everywhere."""
    from medcap.models.registry import pin_image_budget

    assert resolve_spec("qwen2-vl").max_pixels is None
    big = Image.new("RGB", (1200, 900), "white")
    cpu = create_captioner(resolve_spec("q", str(tiny_qwen2_vl_dir), device="cpu"))
    cpu.load()
    assert cpu.image_budget() == 336 * 336
    tokens = int(np.prod(cpu.prepare([big]).inputs["image_grid_thw"][0].tolist())) // 4
    assert 100 < tokens <= 144
    pinned = pin_image_budget(resolve_spec("q", str(tiny_qwen2_vl_dir)), "cuda")
    assert pinned.max_pixels == 448 * 448
    assert create_captioner(pinned).image_budget() == 448 * 448  # not loaded: the pinned one
    own = resolve_spec("q", str(tiny_qwen2_vl_dir), max_pixels=28 * 28 * 9)
    assert pin_image_budget(own, "cpu") is own
    assert pin_image_budget(resolve_spec("blip"), "cpu").max_pixels is None


def test_decoding_is_deterministic(tiny_blip_dir):
    images = _images()[:2]
    first = create_captioner(resolve_spec("blip", str(tiny_blip_dir))).caption(images)
    second = create_captioner(resolve_spec("blip", str(tiny_blip_dir))).caption(images)
    assert [c.text for c in first] == [c.text for c in second]


def test_beam_search_returns_probabilities(tiny_blip_dir):
    captioner = create_captioner(resolve_spec("blip", str(tiny_blip_dir), num_beams=3,
                                              max_new_tokens=8))
    caption = captioner.caption(_images()[:2])[0]
    assert caption.tokens and all(0.0 < t.prob <= 1.0 for t in caption.tokens)


def test_lora_adapter_is_applied_and_matches_peft(tiny_blip2_dir, tiny_blip2_adapter_dir):
    import torch
    from peft import PeftModel
    from transformers import Blip2ForConditionalGeneration, Blip2Processor

    images = [im.resize((64, 64)) for im in _images()[:3]]
    base = create_captioner(resolve_spec("blip2", str(tiny_blip2_dir), max_new_tokens=8))
    lora = create_captioner(resolve_spec("blip2-lora", str(tiny_blip2_adapter_dir),
                                         max_new_tokens=8))
    assert lora.spec.adapter == str(tiny_blip2_adapter_dir)
    assert lora.spec.source == str(tiny_blip2_dir)  # base taken from adapter_config.json
    with_adapter = [c.text for c in lora.caption(images)]
    assert with_adapter != [c.text for c in base.caption(images)]

    processor = Blip2Processor.from_pretrained(str(tiny_blip2_dir))
    processor.tokenizer.padding_side = "left"
    model = PeftModel.from_pretrained(
        Blip2ForConditionalGeneration.from_pretrained(str(tiny_blip2_dir)),
        str(tiny_blip2_adapter_dir)).eval()
    inputs = processor(images=images, text=[""] * 3, return_tensors="pt", padding=True)
    with torch.inference_mode():
        ids = model.generate(**inputs, max_new_tokens=8, do_sample=False)
    reference = [" ".join(t.split()) for t in
                 processor.batch_decode(ids[:, inputs["input_ids"].shape[1]:],
                                        skip_special_tokens=True)]
    assert with_adapter == reference


def test_user_folder_not_made_by_medcap_is_recognised(tiny_qwen2_vl_dir, tiny_blip_dir):
    spec = resolve_spec("my-qwen", str(tiny_qwen2_vl_dir))
    assert spec.family == "qwen2-vl" and spec.source == str(tiny_qwen2_vl_dir)
    assert resolve_spec("anything", str(tiny_blip_dir)).family == "blip"


def test_finetune_manifest_runs_are_named_and_loaded(tmp_path, tiny_blip2_dir,
                                                     tiny_blip2_adapter_dir, tiny_blip_dir):
    run = tmp_path / "runs" / "blip2-radiology"
    shutil.copytree(tiny_blip2_adapter_dir, run / "adapter")
    write_manifest(run, Manifest(family="blip2", base_model=str(tiny_blip2_dir),
                                 weights="adapter", path="adapter", name="blip2-rad",
                                 max_pixels=12345))
    full = tmp_path / "runs" / "blip-ft"
    shutil.copytree(tiny_blip_dir, full / "model")
    write_manifest(full, Manifest(family="blip", base_model="Salesforce/blip-image-captioning-base",
                                  weights="full", path="model"))
    specs = {s.name: s for s in discover_runs(tmp_path / "runs")}
    assert set(specs) == {"blip2-rad", "blip-ft"}
    assert specs["blip2-rad"].adapter == str((run / "adapter").resolve())
    assert specs["blip2-rad"].max_pixels == 12345
    assert specs["blip-ft"].source == str((full / "model").resolve())
    for spec in specs.values():
        assert create_captioner(spec.with_overrides(max_new_tokens=4)).caption(_images()[:1])


# ---------------------------------------------------------------------- errors
def _load_error(spec) -> str:
    with pytest.raises(ModelLoadError) as info:
        create_captioner(spec).load()
    return str(info.value)


def test_unknown_name_lists_the_registered_ones():
    with pytest.raises(ModelLoadError, match=r"Unknown model 'gpt9'. Registered models: blip, "
                                             r"blip2, blip2-lora, qwen2-vl"):
        resolve_spec("gpt9")


def test_unknown_family_is_named():
    with pytest.raises(ModelLoadError, match="Unknown model family 'llava'"):
        resolve_spec("x", "/tmp", family="llava")


def test_missing_directory(tmp_path):
    message = _load_error(resolve_spec("blip", str(tmp_path / "nope")))
    assert message == f"The blip model directory '{tmp_path / 'nope'}' does not exist."


def test_hub_id_not_cached_offline_says_how_to_fix(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    message = _load_error(resolve_spec("blip"))
    assert "'Salesforce/blip-image-captioning-base' is not in the local Hugging Face cache" in message
    assert "hf download Salesforce/blip-image-captioning-base" in message
    assert "--model NAME=/path/to/folder" in message


def test_large_model_refused_before_loading(monkeypatch):
    monkeypatch.setattr(loading, "available_memory_bytes", lambda device: 16 * 1024**3)
    message = _load_error(resolve_spec("blip2", device="cpu", dtype="float32"))
    assert message.startswith("Not enough memory to load 'blip2' (Salesforce/blip2-opt-6.7b): "
                              "about 7.8B parameters need ~36.1 GiB in float32 on cpu, but only "
                              "16.0 GiB is free.")
    # bf16 halves the estimate (the default on CPUs with native bf16), still too big for 16 GiB.
    message = _load_error(resolve_spec("blip2", device="cpu", dtype="bfloat16"))
    assert "need ~18.0 GiB in bfloat16 on cpu" in message


@pytest.mark.parametrize("native_bf16, expected", [(True, torch.bfloat16), (False, torch.float32)])
def test_auto_dtype_on_cpu_follows_native_bf16_support(monkeypatch, native_bf16, expected):
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: native_bf16)
    assert loading.pick_dtype("auto", "cpu") == expected
    assert loading.pick_dtype("float32", "cpu") == torch.float32  # an explicit choice always wins


def test_auto_dtype_loads_tiny_model_in_that_dtype(tiny_blip_dir, monkeypatch):
    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: True)
    captioner = create_captioner(resolve_spec("blip", str(tiny_blip_dir), device="cpu"))
    captions = captioner.caption([Image.new("RGB", (40, 32), "gray")])
    assert captioner.dtype == torch.bfloat16
    assert next(captioner.model.parameters()).dtype == torch.bfloat16
    assert captions[0].tokens and all(0.0 <= t.prob <= 1.0 for t in captions[0].tokens)


def test_memory_estimate_reads_safetensors_headers(tiny_blip_dir, monkeypatch):
    from safetensors import safe_open

    with safe_open(str(Path(tiny_blip_dir) / "model.safetensors"), "pt") as weights:
        stored = sum(weights.get_tensor(k).numel() for k in weights.keys())
    assert loading.count_parameters(Path(tiny_blip_dir)) == stored
    monkeypatch.setattr(loading, "available_memory_bytes", lambda device: 1000)
    assert "Not enough memory" in _load_error(resolve_spec("blip", str(tiny_blip_dir)))


def test_wrong_family_for_folder(tiny_qwen2_vl_dir):
    spec = resolve_spec("blip", str(tiny_qwen2_vl_dir))
    message = _load_error(spec)
    assert message == (f"'blip' expects a BLIP model, but {tiny_qwen2_vl_dir} holds model_type "
                       f"'qwen2_vl'. Pick the matching family for that folder.")


def test_corrupt_weights(tmp_path, tiny_blip_dir):
    broken = tmp_path / "blip"
    shutil.copytree(tiny_blip_dir, broken)
    (broken / "model.safetensors").write_bytes(b"\x00" * 100)
    message = _load_error(resolve_spec("blip", str(broken)))
    assert message.startswith(f"Could not load 'blip' from {broken}:")


def test_adapter_folder_without_config(tmp_path, tiny_blip2_dir):
    empty = tmp_path / "adapter"
    empty.mkdir()
    spec = resolve_spec("blip2", str(tiny_blip2_dir)).with_overrides(adapter=str(empty))
    assert _load_error(spec) == (f"'blip2': '{empty}' is not a PEFT adapter (no "
                                 f"adapter_config.json). Point to the adapter folder written by "
                                 f"finetune/ or PeftModel.save_pretrained.")


def test_adapter_for_another_model_is_refused(tmp_path, tiny_blip_dir, tiny_blip2_adapter_dir):
    spec = resolve_spec("blip", str(tiny_blip_dir)).with_overrides(adapter=str(tiny_blip2_adapter_dir))
    message = _load_error(spec)
    assert message.startswith(f"'blip': the LoRA adapter in '{tiny_blip2_adapter_dir}' does not "
                              f"fit the base model {tiny_blip_dir}:")


def test_blip2_lora_without_adapter_is_explained():
    with pytest.raises(ModelLoadError, match="'blip2-lora' needs a LoRA adapter"):
        create_captioner(resolve_spec("blip2-lora"))


@pytest.mark.parametrize("family, fixture", [("blip", "tiny_blip_dir"),
                                             ("qwen2-vl", "tiny_qwen2_vl_dir")])
def test_quantization_reaches_every_family_on_the_chosen_gpu(request, family, fixture):
    """Not only BLIP-2: a quantized BLIP or Qwen2-VL must not stay on the CPU while its inputs
    go to the GPU; and --device cuda:1 puts the weights on GPU 1, where the inputs go."""
    spec = resolve_spec(family, str(request.getfixturevalue(fixture)), quantization="4bit")
    captioner = create_captioner(spec)
    captioner.device = "cuda:1"  # what load() picks for --device cuda:1 on a GPU machine
    kwargs = captioner._from_pretrained_kwargs()
    assert kwargs["quantization_config"].load_in_4bit and kwargs["device_map"] == {"": 1}
    captioner.device = "cuda"
    assert captioner._from_pretrained_kwargs()["device_map"] == {"": 0}


def test_quantization_needs_cuda(tiny_blip2_dir):
    message = _load_error(resolve_spec("blip2", str(tiny_blip2_dir), quantization="8bit",
                                       device="cpu"))
    assert "8bit quantization needs a CUDA GPU" in message


def test_broken_manifest_is_reported(tmp_path):
    (tmp_path / "medcap.json").write_text(json.dumps({"format": "medcap-model/1"}))
    with pytest.raises(ModelLoadError, match="lacks family, base_model"):
        resolve_spec("run", str(tmp_path))


def test_each_family_declares_what_it_accepts_on_its_captioner_class() -> None:
    """The traits are class attributes of the Captioner classes, and the same values the app
    and CLI read without importing the adapters."""
    from medcap.models.families import family_traits
    from medcap.models.registry import family_class, takes_prompt

    for family in FAMILIES:
        cls, traits = family_class(family), family_traits(family)
        assert issubclass(cls, traits) and cls.family == family
        assert cls.takes_prompt == takes_prompt(resolve_spec("x", "hub/id", family=family))
    assert [f for f in FAMILIES if family_traits(f).takes_prompt] == ["qwen2-vl"]


def test_a_registered_model_that_requires_an_adapter_is_refused_without_one() -> None:
    from medcap.models.registry import _MODELS, check_ready

    register_model("custom-lora")(lambda: resolve_spec("blip").with_overrides(
        name="custom-lora", requires_adapter=True))
    try:
        with pytest.raises(ModelLoadError, match="'custom-lora' needs a LoRA adapter"):
            check_ready(resolve_spec("custom-lora"))
        check_ready(resolve_spec("custom-lora").with_overrides(adapter="/some/adapter"))
        check_ready(resolve_spec("blip2"))  # same family, no adapter needed
    finally:
        _MODELS.pop("custom-lora")


def _quadratic_pieces(tokenizer, ids: list[int]) -> list[str]:
    """The old `_make_caption` (the latency benchmark's baseline), first piece stripped as
    captions are."""
    from benchmarks.bench_latency import quadratic_pieces

    pieces = quadratic_pieces(tokenizer, ids)
    if pieces:
        pieces[0] = pieces[0].lstrip()
    return pieces


@pytest.mark.parametrize("name", list(FAMILY_FIXTURES))
def test_incremental_pieces_of_a_64_token_caption_equal_the_quadratic_decode(name, request):
    folder = request.getfixturevalue(FAMILY_FIXTURES[name])
    captioner = create_captioner(resolve_spec(name, str(folder), max_new_tokens=64,
                                              min_new_tokens=64))
    captioner.load()
    tokenizer = captioner.tokenizer
    prepared = captioner.prepare(_images()[:1])
    with torch.inference_mode():
        out = captioner.model.generate(**prepared.inputs, max_new_tokens=64, min_new_tokens=64,
                                       do_sample=False)
    generated = out[0, -64:].tolist()
    # Also every word and punctuation piece the tokenizer knows, mixed in, so clean-up rules
    # ("a ." -> "a.") and WordPiece "##" joins are crossed, not only what a random model says.
    words = tokenizer(" ".join(["the", "lung", ".", "x-ray", ",", "shows", "kidney's", "a"] * 4),
                      add_special_tokens=False)["input_ids"]
    for ids in (generated, words + generated[:32]):
        caption = captioner._make_caption(ids, [0.5] * len(ids), 1.0)
        assert [t.text for t in caption.tokens] == _quadratic_pieces(tokenizer, ids)
        assert caption.text == " ".join(tokenizer.decode(
            [i for i in ids if i not in tokenizer.all_special_ids]).split())


def test_a_character_split_over_byte_tokens_is_not_shown_half_done(tiny_qwen2_vl_dir):
    captioner = create_captioner(resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir)))
    captioner.load()
    tokenizer = captioner.tokenizer
    ids = tokenizer("lung é mass", add_special_tokens=False)["input_ids"]
    assert len(ids) > 3  # é is two byte tokens in the tiny byte-level vocabulary
    caption = captioner._make_caption(ids, [0.5] * len(ids), 1.0)
    assert caption.text == "lung é mass"
    assert "".join(t.text for t in caption.tokens) == caption.text
    assert len(caption.tokens) == len(ids) and "\ufffd" not in "".join(t.text for t in caption.tokens)
