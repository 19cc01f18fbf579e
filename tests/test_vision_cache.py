"""The vision-feature cache: captioning an image again skips the encoder and gives the same
caption; a batch sends only its new images through the encoder; the cache is bounded."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from medcap.models import create_captioner, resolve_spec
from medcap.models.vision_cache import VisionCache

FAMILIES = [("blip", "tiny_blip_dir", "vision_model.embeddings"),
            ("blip2", "tiny_blip2_dir", "vision_model.embeddings"),
            ("qwen2-vl", "tiny_qwen2_vl_dir", "model.visual.patch_embed")]


def _images(count: int, seed: int = 5) -> list[Image.Image]:
    rng = np.random.RandomState(seed)
    return [Image.fromarray((rng.rand(56, 56 + 8 * i, 3) * 255).astype("uint8"))
            for i in range(count)]


def _spy(captioner, first_layer: str) -> list[int]:
    """The rows (images, or Qwen2-VL patches) each run of the vision encoder receives, seen by
    a hook on its first layer."""
    rows: list[int] = []
    captioner.model.get_submodule(first_layer).register_forward_pre_hook(
        lambda module, args: rows.append(int(args[0].shape[0])))
    return rows


@pytest.mark.parametrize("family, fixture, first_layer", FAMILIES)
def test_an_image_captioned_again_skips_the_encoder_with_the_same_caption(request, family,
                                                                         fixture, first_layer):
    folder = request.getfixturevalue(fixture)
    spec = resolve_spec(family, str(folder), device="cpu", max_new_tokens=8)
    cached = create_captioner(spec)
    cached.load()
    encoded = _spy(cached, first_layer)
    first, second = _images(2)
    before = cached.caption([first])
    again = cached.caption([first])
    assert len(encoded) == 1  # the second caption of the same image used the cache
    assert [c.text for c in again] == [c.text for c in before]
    assert [t.prob for t in again[0].tokens] == pytest.approx([t.prob for t in before[0].tokens])
    both = cached.caption([first, second], batch_size=2)
    second_rows = int(cached.prepare([second]).inputs["pixel_values"].shape[0])
    assert encoded[1:] == [second_rows]  # only the new image went through the encoder
    assert cached.vision_cache.hits == 2
    uncached = create_captioner(spec)
    uncached.load()
    uncached.vision_cache.images = 0
    assert [c.text for c in both] == [c.text for c in uncached.caption([first, second],
                                                                        batch_size=2)]


def test_the_cache_keeps_the_most_recently_used_images_only():
    cache = VisionCache(images=2)
    features = (torch.zeros(1), torch.zeros(1))
    for key in (b"a", b"b"):
        cache.put(key, features)
    assert cache.get(b"a") is features  # "a" is now the most recent
    cache.put(b"c", features)
    assert len(cache) == 2 and cache.get(b"b") is None and cache.get(b"a") is features


def test_outside_inference_mode_the_encoder_always_runs(tiny_blip_dir):
    """Training and gradient checks must see the encoder's own, differentiable output."""
    captioner = create_captioner(resolve_spec("blip", str(tiny_blip_dir), device="cpu"))
    captioner.load()
    encoded = _spy(captioner, "vision_model.embeddings")
    pixels = captioner.prepare(_images(1)).inputs["pixel_values"].to(captioner.dtype)
    with torch.no_grad():
        captioner.model.vision_model(pixel_values=pixels)
        captioner.model.vision_model(pixel_values=pixels)
    assert encoded == [1, 1] and len(captioner.vision_cache) == 0
