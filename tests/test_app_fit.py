"""A model too big for this machine's memory is marked in the Caption tab's picker before anyone
clicks (with the memory it needs and the option that would fit), and captioning with it is
refused without loading. The free memory is faked; BLIP-2 OPT-6.7B's size is known without
downloading it (7.75B parameters: ~18 GiB in bf16, ~11.7 GiB with int8 weights)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from PIL import Image

from medcap.app import models as app_models
from medcap.app.models import ModelPool
from medcap.app.tabs.caption import model_choices
from medcap.models import loading, resolve_spec
from medcap.models.fit import memory_fit

GIB = 1024**3


@pytest.fixture
def free_memory(monkeypatch):
    """Set the free memory the app sees, in GiB."""
    def set_free(gib: float) -> None:
        monkeypatch.setattr(loading, "available_memory_bytes", lambda device: int(gib * GIB))
    return set_free


def _pool(tiny_blip_dir, **blip2) -> ModelPool:
    return ModelPool([resolve_spec("blip", str(tiny_blip_dir), device="cpu"),
                      resolve_spec("blip2", device="cpu", dtype="bfloat16", **blip2)])


def test_picker_marks_a_model_that_does_not_fit_with_need_and_option(tiny_blip_dir, free_memory):
    free_memory(16)
    pool = _pool(tiny_blip_dir)
    choices = model_choices(SimpleNamespace(pool=pool))
    assert choices[0] == ("blip", "blip")  # a tiny model fits and is shown as it is
    shown, value = choices[1]
    assert value == "blip2" and shown == "blip2 (needs ~18 GiB, 16 GiB free)"
    why = pool.too_big()["blip2"]
    assert "needs about 18.0 GiB of memory in bfloat16 and this machine has 16.0 GiB free" in why
    assert "With int8 weights it needs about 11.7 GiB and fits: set MEDCAP_QUANTIZATION=int8" in why
    assert set(pool.too_big()) == {"blip2"}


def test_captioning_a_model_that_does_not_fit_is_refused_without_loading(
        tiny_blip_dir, free_memory, monkeypatch):
    free_memory(16)
    pool = _pool(tiny_blip_dir)
    monkeypatch.setattr(app_models, "create_captioner",
                        lambda spec: pytest.fail(f"{spec.name} was created, to be loaded"))
    card = pool.caption_cards(["blip2"], Image.new("RGB", (32, 32)))[0]
    assert card.caption == "" and "BLIP-2 is not loaded: it needs about 18.0 GiB" in card.error
    assert not pool.is_loaded("blip2")


def test_the_suggested_option_is_the_one_that_fits(tiny_blip_dir, free_memory):
    free_memory(13)  # int8 (11.7 GiB) fits: the configured int8 model is not marked
    assert _pool(tiny_blip_dir, quantization="int8").too_big() == {}
    free_memory(8)  # nothing fits on this CPU: a GPU with 4-bit weights is the way
    why = _pool(tiny_blip_dir).too_big()["blip2"]
    assert "Run it on a GPU with at least 4.5 GiB free and 4-bit weights" in why
    fit = memory_fit(resolve_spec("blip2", device="cuda", quantization="8bit"))
    assert fit.device == "cuda" and fit.smaller == ("4bit", fit.needed // 2)


def test_skipping_the_memory_check_skips_the_mark(tiny_blip_dir, free_memory):
    free_memory(1)
    pool = ModelPool([resolve_spec("blip2", device="cpu", check_memory=False)])
    assert pool.too_big() == {} and pool.picker_choices() == [("blip2", "blip2")]
