"""load_image on ordinary image files: every bad input gets its own message, every odd but
valid input gets the right pixels (issue 3, point 4)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from medcap.data import ImageLoadError, LoaderConfig, load_image
from tests.support.data_fixtures import encode, gradient, png_bomb


def noise_rgb(size: int = 64) -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (size, size, 3), dtype=np.uint8))


# --- inputs that must fail, each with its own message -----------------------------------------

def test_zero_byte_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert str(caught.value) == "'empty.png' is empty (0 bytes): there is no image in it."


def test_truncated_png():
    data = encode(noise_rgb(), "PNG")
    with pytest.raises(ImageLoadError) as caught:
        load_image(data[: len(data) // 2], name="scan.png")
    assert str(caught.value) == (
        "'scan.png' is a truncated or corrupt PNG file: its image data ends early or is damaged, "
        "so it cannot be decoded."
    )


def test_truncated_jpeg():
    data = encode(noise_rgb(), "JPEG", quality=90)
    with pytest.raises(ImageLoadError) as caught:
        load_image(data[: len(data) // 2], name="scan.jpg")
    assert str(caught.value) == (
        "'scan.jpg' is a truncated or corrupt JPEG file: its image data ends early or is damaged, "
        "so it cannot be decoded."
    )


def test_text_file_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("Patient presented with cough.\nCXR ordered.\n", encoding="utf-8")
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert str(caught.value) == "'notes.png' is a text file, not an image, although its name ends in .png."


def test_unknown_binary_format():
    with pytest.raises(ImageLoadError) as caught:
        load_image(bytes(range(256)) * 4, name="blob.bin")
    assert str(caught.value) == (
        "'blob.bin' is not an image in a format medcap can read (PNG, JPEG, GIF, BMP, TIFF, WebP or "
        "DICOM)."
    )


def test_decompression_bomb_20000_square():
    data = png_bomb(20000, 20000)  # ~50 kB that would decode to 400 megapixels
    assert len(data) < 100_000
    with pytest.raises(ImageLoadError) as caught:
        load_image(data, name="bomb.png")
    assert str(caught.value) == (
        "'bomb.png' is too large to decode: 400.0 megapixels, above the 64.0-megapixel limit "
        "(a possible decompression bomb). Caption models use under 1 megapixel: downscale it "
        "and load it again."
    )


def test_image_above_our_limit_but_below_pillows_is_refused_with_its_size():
    with pytest.raises(ImageLoadError) as caught:
        load_image(png_bomb(9000, 9000), name="big.png")
    assert str(caught.value) == (
        "'big.png' is too large to decode: 9000×9000 pixels, 81.0 megapixels, above the "
        "64.0-megapixel limit (a possible decompression bomb). Caption models use under 1 "
        "megapixel: downscale it and load it again."
    )


def test_missing_path_and_folder(tmp_path):
    with pytest.raises(ImageLoadError) as caught:
        load_image(tmp_path / "nope.png")
    assert str(caught.value) == f"'{tmp_path / 'nope.png'}' does not exist."
    with pytest.raises(ImageLoadError) as caught:
        load_image(tmp_path)
    assert str(caught.value) == f"'{tmp_path}' is a folder, not an image file."


def test_file_above_size_limit_is_not_read():
    with pytest.raises(ImageLoadError) as caught:
        load_image(b"x" * (3 << 20), name="huge.png", config=LoaderConfig(max_file_bytes=2 << 20))
    assert str(caught.value) == "'huge.png' is 3 MiB, above the 2 MiB limit for a single image."


# --- valid but unusual inputs, decoded correctly ------------------------------------------------

def test_grayscale_png_keeps_l_for_display_and_gives_rgb_to_models():
    loaded = load_image(encode(Image.fromarray(gradient(48, 32), "L")), name="ct.png")
    assert loaded.source_format == "png"
    assert loaded.display.mode == "L"
    assert np.array_equal(np.asarray(loaded.display), gradient(48, 32))
    assert loaded.image.mode == "RGB"
    rgb = np.asarray(loaded.image)
    assert np.array_equal(rgb[..., 0], gradient(48, 32)) and np.array_equal(rgb[..., 2], gradient(48, 32))
    assert loaded.metadata == {}


def test_16_bit_grayscale_png_is_stretched_over_its_own_range():
    values = np.array([[1000, 1500, 2000, 2500, 3000]] * 40, dtype=np.uint16)
    data = encode(Image.fromarray(values))
    assert Image.open(io.BytesIO(data)).mode == "I;16"
    loaded = load_image(data, name="xray16.png")
    assert loaded.display.mode == "L"
    assert np.asarray(loaded.display)[0].tolist() == [0, 64, 128, 191, 255]
    assert loaded.image.mode == "RGB"


def test_cmyk_jpeg_becomes_rgb():
    data = encode(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), "JPEG", quality=95)
    loaded = load_image(data, name="print.jpg")
    assert loaded.source_format == "jpeg"
    assert loaded.display.mode == "RGB"
    assert np.asarray(loaded.image)[8, 8].tolist() == [255, 0, 0]


def test_rgba_is_flattened_onto_black():
    pixels = np.zeros((32, 40, 4), dtype=np.uint8)
    pixels[:, :20] = (255, 0, 0, 255)  # opaque red
    pixels[:, 20:30] = (0, 255, 0, 0)  # fully transparent green
    pixels[:, 30:] = (255, 255, 255, 128)  # half-transparent white
    loaded = load_image(encode(Image.fromarray(pixels, "RGBA")), name="overlay.png")
    out = np.asarray(loaded.image)
    assert loaded.display.mode == "RGB" and loaded.image.mode == "RGB"
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 25].tolist() == [0, 0, 0]
    assert out[0, 35].tolist() == [128, 128, 128]


def test_la_keeps_grayscale_display_and_flattens_alpha():
    gray = np.full((32, 32), 200, dtype=np.uint8)
    alpha = np.zeros((32, 32), dtype=np.uint8)
    alpha[:, :16] = 255
    loaded = load_image(encode(Image.fromarray(np.dstack([gray, alpha]), "LA")), name="la.png")
    assert loaded.display.mode == "L"
    assert np.asarray(loaded.display)[0, :16].tolist() == [200] * 16
    assert np.asarray(loaded.display)[0, 16:].tolist() == [0] * 16


def test_palette_image_in_colour_and_in_gray():
    colour = Image.new("P", (32, 32))
    colour.putpalette([0, 0, 0, 10, 200, 30] + [0] * 762)
    colour.paste(1, (0, 0, 16, 32))
    loaded = load_image(encode(colour), name="chart.png")
    assert loaded.display.mode == "RGB"
    assert np.asarray(loaded.image)[0, 0].tolist() == [10, 200, 30]
    assert np.asarray(loaded.image)[0, 31].tolist() == [0, 0, 0]

    gray = Image.new("P", (32, 32))
    gray.putpalette([v for level in range(256) for v in (level, level, level)])
    gray.paste(77, (0, 0, 32, 32))
    loaded = load_image(encode(gray), name="gray-palette.png")
    assert loaded.display.mode == "L"
    assert np.unique(np.asarray(loaded.display)).tolist() == [77]


def test_palette_transparency_is_flattened():
    image = Image.new("P", (32, 32))
    image.putpalette([255, 255, 255, 255, 0, 0] + [0] * 762)
    image.paste(1, (0, 0, 16, 32))
    loaded = load_image(encode(image, "PNG", transparency=0), name="icon.png")
    out = np.asarray(loaded.image)
    assert out[0, 0].tolist() == [255, 0, 0]
    assert out[0, 31].tolist() == [0, 0, 0]  # transparent white -> background


def test_exif_rotated_jpeg_is_turned_upright():
    pixels = np.zeros((20, 40), dtype=np.uint8)
    pixels[:, :20] = 255  # left half white as stored
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° clockwise to display
    data = encode(Image.fromarray(pixels, "L"), "JPEG", quality=95, exif=exif.tobytes())
    loaded = load_image(data, name="phone.jpg")
    assert loaded.display.size == (20, 40)
    upright = np.asarray(loaded.display).astype(int)
    assert upright[:18].mean() > 250 and upright[22:].mean() < 5  # stored left is now on top


def test_animated_gif_gives_first_frame():
    frames = [Image.new("L", (24, 24), value) for value in (255, 0, 128)]
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    assert Image.open(io.BytesIO(buffer.getvalue())).n_frames == 3
    loaded = load_image(buffer.getvalue(), name="cine.gif")
    assert loaded.source_format == "gif"
    assert loaded.display.mode == "L"
    assert np.unique(np.asarray(loaded.display)).tolist() == [255]


def test_very_small_images_are_scaled_up_for_models_only():
    loaded = load_image(encode(Image.new("L", (1, 1), 77)), name="dot.png")
    assert loaded.display.size == (1, 1)
    assert loaded.image.size == (32, 32)
    assert np.unique(np.asarray(loaded.image)).tolist() == [77]

    wide = np.arange(6, dtype=np.uint8).reshape(2, 3) * 40
    loaded = load_image(encode(Image.fromarray(wide, "L")), name="strip.png")
    assert loaded.image.size == (48, 32)  # factor 16 keeps the aspect ratio and exact pixels
    assert np.asarray(loaded.image)[0, ::16, 0].tolist() == [0, 40, 80]
    assert np.asarray(loaded.image)[31, ::16, 0].tolist() == [120, 160, 200]


def test_bytes_without_name_are_labelled_in_messages():
    with pytest.raises(ImageLoadError) as caught:
        load_image(b"")
    assert str(caught.value) == "'uploaded data' is empty (0 bytes): there is no image in it."


def test_every_example_asset_loads_and_stays_small():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "assets" / "examples"
    examples = sorted(p for p in folder.iterdir() if p.suffix in (".dcm", ".png", ".jpg"))
    assert [p.name for p in examples] == [
        "CT_small.dcm", "MR_small.dcm", "ct_small_soft_tissue.png", "examples_jpeg2k.dcm", "examples_overlay.dcm",
    ]
    for path in examples:
        assert path.stat().st_size < 1_000_000
        loaded = load_image(path)
        assert loaded.image.mode == "RGB" and min(loaded.image.size) >= 32
    png = load_image(folder / "ct_small_soft_tissue.png")
    assert np.array_equal(np.asarray(png.display), np.asarray(load_image(folder / "CT_small.dcm").display))


# --- large images are decoded reduced, never at full size (issue 15, item 4) -------------------

def test_large_png_is_decoded_reduced_to_the_configured_pixel_budget():
    pixels = np.zeros((3000, 4000, 3), dtype=np.uint8)
    pixels[:, 2000:] = (200, 100, 50)  # left half black, right half one colour
    config = LoaderConfig(max_decoded_pixels=1_000_000)
    loaded = load_image(encode(Image.fromarray(pixels), "PNG"), name="wide.png", config=config)
    assert loaded.display.size == (1000, 750)  # 12 MP reduced by 4, under 1 MP
    assert loaded.image.size == (1000, 750)
    shown = np.asarray(loaded.display)
    assert (shown[:, :499] == 0).all() and (shown[:, 501:] == (200, 100, 50)).all()
    full = load_image(encode(Image.fromarray(pixels), "PNG"), name="wide.png")
    assert full.display.size == (4000, 3000)  # the library default keeps full resolution


def test_large_jpeg_is_scaled_while_decoding():
    photo = Image.fromarray(np.tile(gradient(3200, 2400)[..., None], (1, 1, 3)))
    config = LoaderConfig(max_decoded_pixels=500_000)
    loaded = load_image(encode(photo, "JPEG", quality=90), name="photo.jpg", config=config)
    width, height = loaded.display.size
    assert width * height <= 500_000 and width / height == pytest.approx(4 / 3, abs=0.01)


@pytest.mark.parametrize("mode", ["P", "I;16", "1", "LA"])
def test_every_mode_is_reduced(mode):
    image = Image.new("L", (1200, 900), 128).convert(mode) if mode != "I;16" else \
        Image.fromarray(np.full((900, 1200), 40000, dtype=np.uint16))
    loaded = load_image(encode(image, "PNG"), name=f"{mode}.png",
                        config=LoaderConfig(max_decoded_pixels=100_000))
    assert loaded.display.width * loaded.display.height <= 100_000
