"""A model too big for this machine's memory is marked in the Caption tab's picker before anyone
clicks (with the memory it needs and the option that would fit), and captioning with it is
refused without loading, judged again when captioning starts. The free memory is faked; the hub models' sizes are known without
downloading them (BLIP-2 OPT-6.7B 7.75B parameters: ~18 GiB in bf16; Qwen2-VL-2B 2.21B: ~10.3 GiB
in fp32, ~5.1 GiB to load in int8, which loads in bf16 and quantizes after)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

from medcap.app import models as app_models
from medcap.app.models import ModelPool
from medcap.app.tabs.caption import model_choices, model_notes_html
from medcap.models import create_captioner, loading, resolve_spec
from medcap.models.fit import memory_fit

GIB = 1024**3


@pytest.fixture
def free_memory(monkeypatch):
    """Set the free memory the app sees, in GiB."""
    def set_free(gib: float) -> None:
        monkeypatch.setattr(loading, "available_memory_bytes", lambda device: int(gib * GIB))
    return set_free


def _pool(tiny_blip_dir, *specs) -> ModelPool:
    return ModelPool([resolve_spec("blip", str(tiny_blip_dir), device="cpu"), *specs])


def _blip2(**overrides):
    return resolve_spec("blip2", device="cpu", dtype="bfloat16", **overrides)


def _qwen(**overrides):
    return resolve_spec("qwen2-vl", device="cpu", **overrides)


def test_picker_marks_a_model_that_does_not_fit_with_need_and_option(tiny_blip_dir, free_memory):
    free_memory(8)
    pool = _pool(tiny_blip_dir, _qwen(dtype="float32"), _blip2())
    choices = model_choices(SimpleNamespace(pool=pool))
    assert choices[0] == ("blip", "blip")  # a tiny model fits and is shown as it is
    assert choices[1] == ("qwen2-vl (needs ~10 GiB, 8 GiB free)", "qwen2-vl")
    assert choices[2] == ("blip2 (needs ~18 GiB, 8 GiB free)", "blip2")
    why = pool.too_big()
    assert set(why) == {"qwen2-vl", "blip2"}
    assert ("Qwen2-VL is not loaded: it needs about 10.3 GiB of memory in float32 "
            "and this machine has 8.0 GiB free.") in why["qwen2-vl"]
    assert ("With int8 weights it needs about 5.1 GiB and fits: set MEDCAP_QUANTIZATION=int8"
            in why["qwen2-vl"])
    assert "needs about 18.0 GiB of memory in bfloat16" in why["blip2"]
    assert "Run it on a GPU with at least 4.5 GiB free and 4-bit weights" in why["blip2"]


def test_captioning_a_model_that_does_not_fit_is_refused_without_loading(
        tiny_blip_dir, free_memory, monkeypatch):
    free_memory(16)
    pool = _pool(tiny_blip_dir, _blip2())
    monkeypatch.setattr(app_models, "create_captioner",
                        lambda spec: pytest.fail(f"{spec.name} was created, to be loaded"))
    card = pool.caption_cards(["blip2"], Image.new("RGB", (32, 32)))[0]
    assert card.caption == "" and "BLIP-2 is not loaded: it needs about 18.0 GiB" in card.error
    assert not pool.is_loaded("blip2")


def test_a_model_configured_in_the_option_that_fits_is_not_marked(tiny_blip_dir, free_memory):
    free_memory(8)
    assert _pool(tiny_blip_dir, _qwen(quantization="int8")).too_big() == {}
    fit = memory_fit(resolve_spec("blip2", device="cuda", quantization="8bit"))
    assert fit.device == "cuda" and fit.smaller == ("4bit", fit.needed // 2)


def test_skipping_the_memory_check_skips_the_mark(free_memory):
    free_memory(1)
    pool = ModelPool([resolve_spec("blip2", device="cpu", check_memory=False)])
    assert pool.too_big() == {} and pool.picker_choices() == [("blip2", "blip2")]


def test_the_check_runs_again_when_captioning_starts(tiny_blip_dir, free_memory, monkeypatch):
    free_memory(32)
    pool = _pool(tiny_blip_dir, _blip2())
    assert pool.too_big() == {}  # it fitted when the page was built ...
    free_memory(8)  # ... then something else took the memory
    monkeypatch.setattr(app_models, "create_captioner",
                        lambda spec: pytest.fail(f"{spec.name} was created, to be loaded"))
    streamed = list(pool.stream_cards(["blip2"], Image.new("RGB", (32, 32)), every=0))
    assert "BLIP-2 is not loaded: it needs about 18.0 GiB" in streamed[-1][0].error
    assert not any("Loading" in cards[0].status for cards in streamed)  # no load was started


def test_a_tiny_model_with_no_memory_free_is_marked_and_its_load_refused(tiny_blip_dir,
                                                                          free_memory):
    free_memory(1 / 1024**2)  # 1 KiB
    pool = _pool(tiny_blip_dir)
    assert "Run it on a GPU with at least" in pool.too_big()["blip"]  # nothing smaller fits
    with pytest.raises(Exception, match="Not enough memory"):  # the load's own check agrees
        create_captioner(resolve_spec("blip", str(tiny_blip_dir), device="cpu")).load()


def test_the_notes_under_the_picker_are_escaped_html(tiny_blip_dir, free_memory):
    free_memory(8)
    pool = ModelPool([resolve_spec("blip", str(tiny_blip_dir), device="cpu"), _blip2()],
                     {"broken": "no weights in /data/<models>/~old~"})
    notes = model_notes_html(pool.problems, pool.too_big())
    assert "<strong>broken</strong> unavailable: no weights in /data/&lt;models&gt;/~old~" in notes
    assert "<strong>blip2</strong> unavailable: BLIP-2 is not loaded" in notes
    assert "<strong>blip</strong>" not in notes
