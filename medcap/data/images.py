"""`load_image`: any upload, path or dataset cell -> LoadedImage, or a specific ImageLoadError.

Ordinary formats go through Pillow; DICOM (magic "DICM" at byte 128, or a .dcm/.dicom name)
goes to `medcap.data.dicom`. Every failure mode is named in the message, so a user learns
whether their file is empty, cut short, not an image, or too large.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from medcap.data.config import DEFAULT_LOADER_CONFIG, LoaderConfig
from medcap.data.errors import ImageLoadError
from medcap.data.pixels import model_image, reduction_factor, shrink, stretch_to_uint8
from medcap.data.items import LoadedImage

DICOM_SUFFIXES = (".dcm", ".dicom")
RASTER_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp")
IMAGE_SUFFIXES = RASTER_SUFFIXES + DICOM_SUFFIXES
READABLE_FORMATS = "PNG, JPEG, GIF, BMP, TIFF, WebP or DICOM"

_GRAY_HIGH_DEPTH_MODES = {"I", "I;16", "I;16B", "I;16L", "I;16N", "F"}
_GRAY_MODES = {"1", "L"}
_FORMAT_ALIASES = {"mpo": "jpeg"}  # phone cameras save multi-picture JPEGs
_PIL_BOMB_PIXELS = re.compile(r"Image size \((\d+) pixels\)")


def load_image(
    source: str | os.PathLike | bytes,
    *,
    name: str | None = None,
    config: LoaderConfig = DEFAULT_LOADER_CONFIG,
) -> LoadedImage:
    """Decode a path or raw bytes; `name` (a file name) helps format detection and messages."""
    data, label = _read_source(source, name, config)
    if not data:
        raise ImageLoadError(f"'{label}' is empty (0 bytes): there is no image in it.")
    if looks_like_dicom(data, label):
        from medcap.data.dicom import load_dicom  # pydicom is only imported when needed

        return load_dicom(data, label, config)
    return _load_raster(data, label, config)


RASTER_SIGNATURES = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF8", b"BM", b"II*\x00", b"MM\x00*")


def looks_like_dicom(data: bytes, name: str | None) -> bool:
    """DICOM Part 10 files carry "DICM" after a 128-byte preamble; bare datasets only a name,
    which loses to the content: a PNG or JPEG saved as scan.dcm is still read as an image."""
    if data[128:132] == b"DICM":
        return True
    if data.startswith(RASTER_SIGNATURES) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return False
    return bool(name) and str(name).lower().endswith(DICOM_SUFFIXES)


def _read_source(
    source: str | os.PathLike | bytes, name: str | None, config: LoaderConfig
) -> tuple[bytes, str]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        label = name or "uploaded data"
        if len(data) > config.max_file_bytes:
            raise ImageLoadError(_too_big_file(label, len(data), config))
        return data, label
    path = Path(source)
    label = name or path.name or str(path)
    if not path.exists():
        raise ImageLoadError(f"'{path}' does not exist.")
    if path.is_dir():
        raise ImageLoadError(f"'{path}' is a folder, not an image file.")
    size = path.stat().st_size
    if size > config.max_file_bytes:
        raise ImageLoadError(_too_big_file(label, size, config))
    try:
        return path.read_bytes(), label
    except OSError as exc:
        raise ImageLoadError(f"'{path}' cannot be read: {exc.strerror or exc}.") from exc


def _too_big_file(label: str, size: int, config: LoaderConfig) -> str:
    return (
        f"'{label}' is {size / 2**20:.0f} MiB, above the {config.max_file_bytes / 2**20:.0f} MiB "
        "limit for a single image."
    )


def bomb_message(label: str, pixels: int, config: LoaderConfig, size: tuple[int, int] | None) -> str:
    """Shared wording for images whose declared size is too large to decode safely."""
    dims = f"{size[0]}×{size[1]} pixels, " if size else ""
    return (
        f"'{label}' is too large to decode: {dims}{pixels / 1e6:.1f} megapixels, above the "
        f"{config.max_pixels / 1e6:.1f}-megapixel limit (a possible decompression bomb). "
        "Caption models use under 1 megapixel: downscale it and load it again."
    )


def _load_raster(data: bytes, label: str, config: LoaderConfig) -> LoadedImage:
    image = _open(data, label, config)
    fmt = (image.format or "").lower()
    fmt = _FORMAT_ALIASES.get(fmt, fmt)
    pixels = image.width * image.height
    if pixels > config.max_pixels:
        raise ImageLoadError(bomb_message(label, pixels, config, image.size))
    _draft(image, config.max_decoded_pixels)
    try:
        image.seek(0)  # animated GIF/WebP/APNG: caption the first frame
        image.load()
    except Exception as exc:  # Pillow raises OSError, SyntaxError, EOFError, ... for bad data
        raise ImageLoadError(
            f"'{label}' is a truncated or corrupt {fmt.upper() or 'image'} file: its image data "
            "ends early or is damaged, so it cannot be decoded."
        ) from exc
    image = shrink(image, config.max_decoded_pixels)
    image = ImageOps.exif_transpose(image) or image
    display = to_display(image, config.alpha_background)
    return LoadedImage(
        image=model_image(display, config.min_model_side),
        display=display,
        metadata={},
        source_format=fmt,
    )


def _draft(image: Image.Image, max_pixels: int | None) -> None:
    """JPEG: let the decoder scale by 1/2, 1/4 or 1/8 while decoding, so a large photo is never
    held at full size (`shrink` finishes the job; other formats ignore draft)."""
    factor = reduction_factor(image.width, image.height, max_pixels)
    if factor > 1 and image.format in ("JPEG", "MPO"):
        image.draft(None, (image.width // factor, image.height // factor))


def _open(data: bytes, label: str, config: LoaderConfig) -> Image.Image:
    try:
        # Pillow warns above 89 MP and raises above 179 MP; our own max_pixels check (64 MP by
        # default) runs right after this and decides. No warnings filter here: changing it is
        # not thread-safe and images are decoded in a prefetch thread.
        return Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        match = _PIL_BOMB_PIXELS.search(str(exc))
        pixels = int(match.group(1)) if match else config.max_pixels + 1
        raise ImageLoadError(bomb_message(label, pixels, config, None)) from exc
    except UnidentifiedImageError as exc:
        raise ImageLoadError(_not_an_image_message(data, label)) from exc
    except Exception as exc:
        raise ImageLoadError(
            f"'{label}' is a corrupt image file: its header cannot be read ({type(exc).__name__})."
        ) from exc


def _not_an_image_message(data: bytes, label: str) -> str:
    suffix = Path(label).suffix
    named = f", although its name ends in {suffix}" if suffix.lower() in IMAGE_SUFFIXES else ""
    if _is_text(data[:4096]):
        return f"'{label}' is a text file, not an image{named}."
    return f"'{label}' is not an image in a format medcap can read ({READABLE_FORMATS}){named}."


def _is_text(head: bytes) -> bool:
    if b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A multi-byte character cut at the 4096-byte boundary is still text.
        return exc.start >= len(head) - 3
    return True


def to_display(image: Image.Image, alpha_background: int) -> Image.Image:
    """8-bit picture for the viewer: "L" for grayscale sources, "RGB" for everything else."""
    mode = image.mode
    if mode in _GRAY_HIGH_DEPTH_MODES:
        return Image.fromarray(stretch_to_uint8(np.asarray(image)), "L")
    if mode in _GRAY_MODES:
        return image.convert("L")
    if mode in ("LA", "La"):
        return _flatten_alpha(image, alpha_background).convert("L")
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        rgb = _flatten_alpha(image, alpha_background) if has_alpha else image.convert("RGB")
        return rgb.convert("L") if _is_gray(rgb) else rgb
    if mode in ("RGBA", "RGBa"):
        return _flatten_alpha(image, alpha_background)
    return image.convert("RGB")  # RGB, CMYK, YCbCr, LAB, HSV


def _flatten_alpha(image: Image.Image, background: int) -> Image.Image:
    rgba = image.convert("RGBA")
    base = Image.new("RGBA", rgba.size, (background, background, background, 255))
    return Image.alpha_composite(base, rgba).convert("RGB")


def _is_gray(rgb: Image.Image) -> bool:
    arr = np.asarray(rgb)
    return bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
