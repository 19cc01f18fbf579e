"""The vision features of recently captioned images, so captioning the same image again skips the
vision encoder: another prompt for Qwen2-VL, Caption pressed again, or another
student clicking the same example image on a shared Space.

On a CPU the encoder is most of the wait for a caption's first word (BLIP-base: 0.25 of 0.28 s;
Qwen2-VL-2B at 144 visual tokens: 1.4 of 2.4 s). Entries are keyed by a digest of the image's
model input (its preprocessed pixels, and Qwen2-VL's patch grid), so only an identical input
hits and a hit returns exactly the features the encoder gave; each image of a batch is looked up
on its own, and only the missing ones go through the encoder, in one call. At most
`DEFAULT_IMAGES` images are kept per model (least recently used first out): BLIP-base keeps
0.9 MB per image, Qwen2-VL-2B up to 0.8 MB. Only inference (`torch.inference_mode`, as
`Captioner.generate` runs) uses the cache; training and calls asking for attentions or hidden
states go straight to the encoder.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from typing import Any, Callable, Sequence

import torch

DEFAULT_IMAGES = 16
Features = tuple[torch.Tensor, torch.Tensor]  # (last_hidden_state, pooler_output) of one image


class VisionCache:
    """A bounded, thread-safe LRU of per-image encoder outputs; counts hits and misses."""

    def __init__(self, images: int = DEFAULT_IMAGES) -> None:
        self.images = images
        self._entries: OrderedDict[bytes, Features] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: bytes) -> Features | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return found

    def put(self, key: bytes, features: Features) -> None:
        with self._lock:
            self._entries[key] = features
            self._entries.move_to_end(key)
            while len(self._entries) > self.images:
                self._entries.popitem(last=False)


def digest(tensor: torch.Tensor, *extra: Any) -> bytes:
    """A digest of a tensor's bytes, dtype and shape (and `extra`, e.g. an image's grid)."""
    data = tensor.detach().contiguous().reshape(-1).view(torch.uint8).cpu().numpy()
    hasher = hashlib.blake2b(data, digest_size=20)
    hasher.update(repr((str(tensor.dtype), tuple(tensor.shape), extra)).encode())
    return hasher.digest()


def _cacheable(kwargs: dict[str, Any]) -> bool:
    wants_more = any(kwargs.get(name) for name in ("output_attentions", "output_hidden_states"))
    return torch.is_inference_mode_enabled() and not wants_more


def _lookup(cache: VisionCache, keys: Sequence[bytes]) -> tuple[list[Features | None], list[int]]:
    found = [cache.get(key) for key in keys]
    return found, [i for i, features in enumerate(found) if features is None]


def _output(found: Sequence[Features], join: Callable[[list[torch.Tensor]], torch.Tensor]) -> Any:
    from transformers.modeling_outputs import BaseModelOutputWithPooling

    return BaseModelOutputWithPooling(last_hidden_state=join([f[0] for f in found]),
                                      pooler_output=join([f[1] for f in found]))


def cache_blip_vision(vision_model: Any, cache: VisionCache) -> None:
    """Route a BLIP / BLIP-2 vision model's forward (images along dim 0) through `cache`."""
    encode = vision_model.forward

    def forward(pixel_values: torch.Tensor | None = None, *args: Any, **kwargs: Any) -> Any:
        if pixel_values is None or args or not _cacheable(kwargs):
            return encode(pixel_values, *args, **kwargs)
        flags = tuple(sorted((k, repr(v)) for k, v in kwargs.items()))
        keys = [digest(image, flags) for image in pixel_values]
        found, missing = _lookup(cache, keys)
        if missing:
            out = encode(pixel_values[missing], **kwargs)
            for row, index in enumerate(missing):
                found[index] = (out.last_hidden_state[row].clone(), out.pooler_output[row].clone())
                cache.put(keys[index], found[index])
        return _output(found, torch.stack)

    vision_model.forward = forward


def cache_qwen2_vl_vision(visual: Any, cache: VisionCache) -> None:
    """Route a Qwen2-VL vision tower's forward (all images' patches concatenated, one
    (t, h, w) grid row per image) through `cache`."""
    encode = visual.forward
    merge = int(getattr(visual, "spatial_merge_size", 2)) ** 2

    def forward(hidden_states: torch.Tensor, grid_thw: torch.Tensor, **kwargs: Any) -> Any:
        if kwargs or not _cacheable({}):
            return encode(hidden_states, grid_thw=grid_thw, **kwargs)
        grids = [tuple(int(v) for v in row) for row in grid_thw.tolist()]
        patches = [t * h * w for t, h, w in grids]
        images = hidden_states.split(patches)
        keys = [digest(image, grid) for image, grid in zip(images, grids)]
        found, missing = _lookup(cache, keys)
        if missing:
            out = encode(torch.cat([images[i] for i in missing]), grid_thw=grid_thw[missing])
            hidden = out.last_hidden_state.split([patches[i] for i in missing])
            pooled = out.pooler_output.split([patches[i] // merge for i in missing])
            for row, index in enumerate(missing):
                found[index] = (hidden[row].clone(), pooled[row].clone())
                cache.put(keys[index], found[index])
        return _output(found, torch.cat)

    visual.forward = forward
