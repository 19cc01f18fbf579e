"""Numeric helpers that turn decoded pixel arrays into 8-bit pictures."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image


def stretch_to_uint8(values: np.ndarray) -> np.ndarray:
    """Map the array's own min..max linearly onto 0..255 (a constant array becomes 0).

    Used where the file carries no display window: 16-bit PNGs and DICOM frames without one.
    """
    values = np.asarray(values, dtype=np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros(values.shape, dtype=np.uint8)
    return np.round((values - low) * (255.0 / (high - low))).astype(np.uint8)


VOI_FUNCTIONS = ("LINEAR", "LINEAR_EXACT", "SIGMOID")


def window_to_uint8(values: np.ndarray, center: float, width: float,
                    function: str = "LINEAR") -> np.ndarray:
    """Apply a VOI window, output 0..255, with the file's VOI LUT Function (DICOM PS3.3
    C.11.2.1.2 and C.11.2.1.3): LINEAR (the default), LINEAR_EXACT or SIGMOID."""
    values = np.asarray(values, dtype=np.float64)
    if function == "SIGMOID":  # mammography and some CR: a soft shoulder instead of a hard clip
        out = 255.0 / (1.0 + np.exp(np.clip(-4.0 * (values - center) / width, -700, 700)))
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    if function == "LINEAR_EXACT":
        out = ((values - center) / width + 0.5) * 255.0
        return np.clip(np.round(out), 0, 255).astype(np.uint8)
    if width <= 1:
        return np.where(values > center - 0.5, 255, 0).astype(np.uint8)
    scaled = ((values - (center - 0.5)) / (width - 1) + 0.5) * 255.0
    lower = center - 0.5 - (width - 1) / 2
    upper = center - 0.5 + (width - 1) / 2
    out = np.where(values <= lower, 0.0, np.where(values > upper, 255.0, scaled))
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def scale_to_bits(values: np.ndarray, bits: int) -> np.ndarray:
    """Rescale an unsigned array with `bits` significant bits onto 0..255."""
    if bits <= 8:
        return np.asarray(values).astype(np.uint8)
    top = float((1 << bits) - 1)
    return np.round(np.clip(np.asarray(values, dtype=np.float64), 0, top) * (255.0 / top)).astype(np.uint8)


def upscale_small(image: Image.Image, min_side: int) -> Image.Image:
    """Repeat pixels by an integer factor until the shorter side is at least `min_side`."""
    shorter = min(image.size)
    if shorter >= min_side:
        return image
    factor = math.ceil(min_side / shorter)
    return image.resize((image.width * factor, image.height * factor), Image.Resampling.NEAREST)


def model_image(display: Image.Image, min_side: int) -> Image.Image:
    """The RGB, not-too-small picture a captioner receives, derived from the display picture."""
    return upscale_small(display.convert("RGB"), min_side)


def reduction_factor(width: int, height: int, max_pixels: int | None) -> int:
    """The smallest integer factor that brings width × height down to `max_pixels` or less."""
    if not max_pixels or width * height <= max_pixels:
        return 1
    factor = max(2, math.isqrt(width * height // max_pixels))
    while (width // factor) * (height // factor) > max_pixels:
        factor += 1
    return factor


_REDUCIBLE_MODES = {"L", "LA", "I", "F", "RGB", "RGBA", "RGBa", "CMYK", "YCbCr", "La"}


def shrink(image: Image.Image, max_pixels: int | None) -> Image.Image:
    """`image` reduced by an integer factor to at most `max_pixels` (box average; nearest
    neighbour for palette, bilevel and 16-bit modes, which `Image.reduce` does not take)."""
    factor = reduction_factor(image.width, image.height, max_pixels)
    if factor == 1:
        return image
    if image.mode in _REDUCIBLE_MODES:
        return image.reduce(factor)
    size = (max(1, image.width // factor), max(1, image.height // factor))
    return image.resize(size, Image.Resampling.NEAREST)


def shrink_array(values: np.ndarray, max_pixels: int | None) -> np.ndarray:
    """A decoded frame (rows × columns[, samples]) reduced by an integer factor to at most
    `max_pixels` by a block mean, in its own dtype. The sum runs over strided views into one
    float32 accumulator of the reduced size, so no full-size copy is made."""
    rows, columns = values.shape[:2]
    factor = reduction_factor(columns, rows, max_pixels)
    if factor == 1:
        return values
    if min(rows, columns) < factor:  # a thin strip: every factor-th sample is enough
        return np.ascontiguousarray(values[::factor, ::factor])
    out_rows, out_columns = rows // factor, columns // factor
    total = np.zeros((out_rows, out_columns, *values.shape[2:]), dtype=np.float32)
    for i in range(factor):
        for j in range(factor):
            total += values[i : out_rows * factor : factor, j : out_columns * factor : factor]
    total /= factor * factor
    if np.issubdtype(values.dtype, np.integer):
        info = np.iinfo(values.dtype)
        return np.clip(np.rint(total), info.min, info.max).astype(values.dtype)
    return total.astype(values.dtype)
