"""load_image on DICOM: pydicom's shipped test files, windowing, colour, multi-frame,
compressed syntaxes, non-image objects, and the guarantee that no identifier leaks out."""

from __future__ import annotations

import numpy as np
import pydicom
import pytest
from pydicom.pixels import apply_color_lut, get_decoder
from pydicom.uid import JPEGLSLossless, UID

from medcap.data import METADATA_LABELS, ImageLoadError, load_image
from medcap.data.config import LoaderConfig
from medcap.data.pixels import window_to_uint8
from tests.support.data_fixtures import edited_dicom, pydicom_file

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


NO_OVERLAYS = LoaderConfig(draw_overlays=False)


def reference(name: str) -> pydicom.Dataset:
    return pydicom.dcmread(pydicom_file(name))


def hounsfield(ds: pydicom.Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


# --- grayscale: rescale, window, inversion -----------------------------------------------------

def test_ct_small_uses_rescale_and_the_default_ct_window():
    loaded = load_image(pydicom_file("CT_small.dcm"), config=LoaderConfig(show_dicom_text=True))
    ds = reference("CT_small.dcm")
    assert loaded.source_format == "dicom"
    assert loaded.display.mode == "L" and loaded.display.size == (128, 128)
    assert loaded.image.mode == "RGB" and loaded.image.size == (128, 128)
    assert np.array_equal(np.asarray(loaded.display), window_to_uint8(hounsfield(ds), 40, 400))
    assert round(float(np.asarray(loaded.display).mean()), 3) == 101.521
    assert loaded.metadata == {
        "modality": "CT",
        "study_description": "e+1",
        "photometric_interpretation": "MONOCHROME2",
        "slice_thickness_mm": "5",
        "image_comments": "Uncompressed",
        "image_size": "128 × 128",
        "pixel_spacing_mm": "0.661468 × 0.661468",
        "window": "C 40 / W 400 (default for CT)",
        "transfer_syntax": "Explicit VR Little Endian",
        "sop_class": "CT Image Storage",
    }


def test_window_formula_matches_dicom_definition():
    values = np.array([-1000.0, -160.5, -160.0, 40.0, 239.5, 240.0, 1000.0])
    assert window_to_uint8(values, 40, 400).tolist() == [0, 0, 0, 128, 255, 255, 255]


def test_sigmoid_and_linear_exact_voi_functions_follow_the_standard():
    values = np.array([-1000.0, -160.0, 40.0, 240.0, 1000.0])
    sigmoid = window_to_uint8(values, 40, 400, "SIGMOID")
    # y = 255 / (1 + exp(-4 (x - c) / w)): 0.5 at the centre, 1/(1+e^2) at c - w/2, no hard clip
    assert sigmoid.tolist() == [0, 30, 128, 225, 255]
    exact = window_to_uint8(values, 40, 400, "LINEAR_EXACT")
    assert exact.tolist() == [0, 0, 128, 255, 255]


@pytest.mark.parametrize("function, expected_label", [
    ("SIGMOID", "C 600 / W 1600 sigmoid (from file)"),
    ("LINEAR_EXACT", "C 600 / W 1600 linear_exact (from file)"),
    ("BOGUS", "C 600 / W 1600 (from file)"),  # unknown: the standard's default, LINEAR
])
def test_voi_lut_function_in_the_file_is_applied(tmp_path, function, expected_label):
    def set_function(ds):
        ds.VOILUTFunction = function

    loaded = load_image(edited_dicom("MR_small.dcm", tmp_path / "voi.dcm", set_function))
    pixels = reference("MR_small.dcm").pixel_array
    used = function if function != "BOGUS" else "LINEAR"
    assert np.array_equal(np.asarray(loaded.display), window_to_uint8(pixels, 600, 1600, used))
    assert loaded.metadata["window"] == expected_label
    if function == "SIGMOID":  # and it really differs from the linear window
        assert not np.array_equal(np.asarray(loaded.display), window_to_uint8(pixels, 600, 1600))


def test_mr_small_uses_the_window_in_the_file():
    loaded = load_image(pydicom_file("MR_small.dcm"))
    ds = reference("MR_small.dcm")
    assert np.array_equal(np.asarray(loaded.display), window_to_uint8(ds.pixel_array, 600, 1600))
    assert loaded.metadata["window"] == "C 600 / W 1600 (from file)"
    assert loaded.metadata["modality"] == "MR"


def test_rescale_slope_and_intercept_are_applied_before_windowing(tmp_path):
    def steeper(ds):
        ds.RescaleSlope = 2
        ds.RescaleIntercept = -2048

    path = edited_dicom("CT_small.dcm", tmp_path / "ct_slope2.dcm", steeper)
    loaded = load_image(path)
    raw = reference("CT_small.dcm").pixel_array.astype(np.float64)
    assert np.array_equal(np.asarray(loaded.display), window_to_uint8(raw * 2 - 2048, 40, 400))


def test_monochrome1_is_inverted(tmp_path):
    def invert(ds):
        ds.PhotometricInterpretation = "MONOCHROME1"

    normal = np.asarray(load_image(pydicom_file("MR_small.dcm")).display).astype(int)
    inverted = np.asarray(load_image(edited_dicom("MR_small.dcm", tmp_path / "m1.dcm", invert)).display)
    assert np.array_equal(inverted, 255 - normal)


def test_examples_overlay_takes_first_of_several_windows():
    loaded = load_image(pydicom_file("examples_overlay.dcm"),
                        config=LoaderConfig(draw_overlays=False, show_dicom_text=True))
    ds = reference("examples_overlay.dcm")
    assert loaded.display.size == (484, 300)
    assert np.array_equal(np.asarray(loaded.display), window_to_uint8(ds.pixel_array, 450, 790))
    assert loaded.metadata["window"] == "C 450 / W 790 (from file)"
    assert "overlays" not in loaded.metadata
    assert loaded.metadata["body_part"] == "ABDOMEN"
    assert loaded.metadata["study_description"] == "abdomen^liver"


# --- overlay planes ---------------------------------------------------------------------------

def test_overlay_plane_of_the_file_is_drawn_in_white():
    ds = reference("examples_overlay.dcm")
    mask = ds.overlay_array(0x6000).astype(bool)  # Siemens graphics, 222 pixels, origin (1, 1)
    windowed = window_to_uint8(ds.pixel_array, 450, 790)
    loaded = load_image(pydicom_file("examples_overlay.dcm"))
    shown = np.asarray(loaded.display)
    assert (shown[mask] == 255).all() and mask.sum() == 222
    assert np.array_equal(shown[~mask], windowed[~mask])  # nothing else touched
    assert not np.array_equal(shown, windowed)  # and the overlay really changed the picture
    assert loaded.metadata["overlays"] == "1 drawn"
    assert np.asarray(loaded.image.convert("L"))[mask].min() == 255  # the models see it too


def _with_overlay(mask: np.ndarray, origin=(1, 1), group=0x6000, **frames):
    """An edit for edited_dicom that adds one overlay plane (1-bit packed, like scanners write)."""
    from pydicom.pixels import pack_bits

    def edit(ds):
        ds.add_new((group, 0x0010), "US", mask.shape[-2])
        ds.add_new((group, 0x0011), "US", mask.shape[-1])
        ds.add_new((group, 0x0040), "CS", "G")
        ds.add_new((group, 0x0050), "SS", list(origin))
        ds.add_new((group, 0x0100), "US", 1)
        ds.add_new((group, 0x0102), "US", 0)
        if "planes" in frames:
            ds.add_new((group, 0x0015), "IS", frames["planes"])
            ds.add_new((group, 0x0051), "US", frames["first"])
        ds.add_new((group, 0x3000), "OW", pack_bits(mask.astype(np.uint8)))
    return edit


def test_overlay_origin_places_the_plane_and_is_clipped_at_the_border(tmp_path):
    cross = np.zeros((8, 8), dtype=bool)
    cross[3, :] = cross[:, 3] = True
    placed = load_image(edited_dicom("MR_small.dcm", tmp_path / "placed.dcm",
                                     _with_overlay(cross, origin=(11, 21))), config=NO_OVERLAYS)
    plain = np.asarray(placed.display)
    shown = np.asarray(load_image(tmp_path / "placed.dcm").display)
    assert (shown[10:18, 20:28][cross] == 255).all()
    assert np.array_equal(shown[10:18, 20:28][~cross], plain[10:18, 20:28][~cross])
    assert np.array_equal(np.delete(np.delete(shown, range(10, 18), 0), range(20, 28), 1),
                          np.delete(np.delete(plain, range(10, 18), 0), range(20, 28), 1))
    # Origin (61, 61) on a 64 x 64 image: only the top-left 4 x 4 of the plane is visible.
    edge = np.asarray(load_image(edited_dicom("MR_small.dcm", tmp_path / "edge.dcm",
                                              _with_overlay(cross, origin=(61, 61)))).display)
    assert (edge[60:64, 60:64][cross[:4, :4]] == 255).all()


def test_unreadable_overlay_is_left_out_and_the_image_still_loads(tmp_path):
    def broken(ds):
        _with_overlay(np.ones((8, 8), dtype=bool))(ds)
        ds[0x6000, 0x3000].value = b"\x01"  # 1 byte for a 64-bit plane
        _with_overlay(np.ones((4, 4), dtype=bool), group=0x6002)(ds)

    loaded = load_image(edited_dicom("MR_small.dcm", tmp_path / "broken.dcm", broken))
    assert loaded.metadata["overlays"] == "1 drawn, 1 unreadable, left out"
    assert (np.asarray(loaded.display)[:4, :4] == 255).all()


def _three_frames(ds):
    """MR_small repeated as a 3-frame series (the middle frame, index 1, is shown)."""
    ds.NumberOfFrames = 3
    ds.PixelData = ds.PixelData * 3


@pytest.mark.parametrize("first_frame, drawn", [(2, True), (1, False), (3, False)])
def test_multi_frame_overlay_is_drawn_only_on_its_own_frame(tmp_path, first_frame, drawn):
    mask = np.ones((4, 4), dtype=bool)

    def edit(ds):
        _three_frames(ds)
        _with_overlay(mask, planes=1, first=first_frame)(ds)

    loaded = load_image(edited_dicom("MR_small.dcm", tmp_path / "mf.dcm", edit))
    assert loaded.metadata["frame_shown"] == "2 of 3"
    corner = np.asarray(loaded.display)[:4, :4]
    assert (corner == 255).all() == drawn
    assert ("overlays" in loaded.metadata) == drawn


def test_no_window_and_no_default_uses_the_full_range():
    loaded = load_image(pydicom_file("JPEG2000.dcm"))  # NM, JPEG 2000, no window in the file
    values = np.asarray(loaded.display)
    assert loaded.metadata["window"] == "full range -30 to 245"
    assert (values.min(), values.max()) == (0, 255)


@pytest.mark.parametrize(
    "name",
    [
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
    ],
)
def test_lossless_encodings_of_mr_small_give_identical_pixels(name):
    expected = np.asarray(load_image(pydicom_file("MR_small.dcm")).display)
    assert np.array_equal(np.asarray(load_image(pydicom_file(name)).display), expected)


# --- colour and multi-frame ----------------------------------------------------------------------

def test_rgb_colour():
    loaded = load_image(pydicom_file("examples_rgb_color.dcm"))
    assert loaded.display.mode == "RGB" and loaded.display.size == (320, 240)
    assert np.array_equal(np.asarray(loaded.image), reference("examples_rgb_color.dcm").pixel_array)


def test_palette_colour_goes_through_its_lookup_tables():
    loaded = load_image(pydicom_file("examples_palette.dcm"))
    ds = reference("examples_palette.dcm")
    expected = (apply_color_lut(ds.pixel_array, ds) >> 8).astype(np.uint8)
    assert loaded.display.mode == "RGB" and loaded.display.size == (800, 350)
    assert np.array_equal(np.asarray(loaded.image), expected)
    assert loaded.metadata["photometric_interpretation"] == "PALETTE COLOR"


def test_multi_frame_ybr_shows_the_middle_frame():
    loaded = load_image(pydicom_file("examples_ybr_color.dcm"))
    frames = reference("examples_ybr_color.dcm").pixel_array  # (30, 240, 320, 3), converted to RGB
    assert np.array_equal(np.asarray(loaded.image), frames[15])
    assert not np.array_equal(frames[15], frames[0])
    assert loaded.metadata["frames"] == "30"
    assert loaded.metadata["frame_shown"] == "16 of 30"


def test_jpeg2000_colour_example():
    loaded = load_image(pydicom_file("examples_jpeg2k.dcm"))
    assert loaded.display.mode == "RGB" and loaded.display.size == (640, 480)
    assert np.array_equal(np.asarray(loaded.image), reference("examples_jpeg2k.dcm").pixel_array)
    assert loaded.metadata["transfer_syntax"] == "JPEG 2000 Image Compression (Lossless Only)"


def test_tiny_dicom_is_scaled_up_for_models():
    loaded = load_image(pydicom_file("SC_rgb_small_odd.dcm"))
    assert loaded.display.size == (3, 3)
    assert loaded.image.size == (33, 33)


def test_dicom_bytes_are_recognised_by_magic_without_a_name():
    loaded = load_image(pydicom_file("MR_small.dcm").read_bytes())
    assert loaded.source_format == "dicom"


# --- DICOM that must fail ------------------------------------------------------------------------

def test_dicom_without_pixel_data(tmp_path):
    def drop_pixels(ds):
        del ds.PixelData

    path = edited_dicom("CT_small.dcm", tmp_path / "ct_no_pixels.dcm", drop_pixels)
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert str(caught.value) == (
        "'ct_no_pixels.dcm' is a DICOM CT Image Storage file without pixel data: there is no image to caption."
    )


def test_dicom_with_an_empty_pixel_data_element(tmp_path):
    def empty_pixels(ds):
        ds.PixelData = b""

    path = edited_dicom("CT_small.dcm", tmp_path / "ct_empty_pixels.dcm", empty_pixels)
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert str(caught.value) == ("'ct_empty_pixels.dcm' is a DICOM CT Image Storage file without "
                                 "pixel data: there is no image to caption.")


def test_structured_report_is_not_an_image():
    with pytest.raises(ImageLoadError) as caught:
        load_image(pydicom_file("test-SR.dcm"))
    assert str(caught.value) == (
        "'test-SR.dcm' is a DICOM Structured Report (Comprehensive SR Storage), a document with no image to caption."
    )


def test_ecg_waveform_is_not_an_image():
    with pytest.raises(ImageLoadError) as caught:
        load_image(pydicom_file("waveform_ecg.dcm"))
    assert str(caught.value) == (
        "'waveform_ecg.dcm' is a DICOM waveform (12-lead ECG Waveform Storage), not an image: "
        "there is nothing to caption."
    )


def test_truncated_mr():
    with pytest.raises(ImageLoadError) as caught:
        load_image(pydicom_file("MR_truncated.dcm"))
    assert str(caught.value) == (
        "'MR_truncated.dcm' is a truncated DICOM file: it holds 8130 bytes of pixel data where its "
        "header announces 8192."
    )


def test_unsupported_transfer_syntax(tmp_path):
    def as_mpeg2(ds):
        ds.file_meta.TransferSyntaxUID = UID("1.2.840.10008.1.2.4.100")

    path = edited_dicom("MR_small_jp2klossless.dcm", tmp_path / "video.dcm", as_mpeg2)
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert str(caught.value) == (
        "'video.dcm' uses the DICOM transfer syntax 'MPEG2 Main Profile / Main Level' "
        "(1.2.840.10008.1.2.4.100), which medcap cannot decode: no pixel decoder exists for it. "
        "Convert the file to an uncompressed, JPEG or JPEG 2000 DICOM (e.g. with dcmtk's dcmconv "
        "or gdcmconv) and load it again."
    )


def test_missing_decoder_plugin_is_named(monkeypatch):
    monkeypatch.setattr(get_decoder(JPEGLSLossless), "_available", {})
    with pytest.raises(ImageLoadError) as caught:
        load_image(pydicom_file("MR_small_jpeg_ls_lossless.dcm"))
    assert str(caught.value) == (
        "'MR_small_jpeg_ls_lossless.dcm' is compressed with 'JPEG-LS Lossless Image Compression' "
        "(1.2.840.10008.1.2.4.80), which needs a decoder plugin that is not installed: "
        "pip install pylibjpeg pylibjpeg-libjpeg (or python-gdcm)."
    )


def test_dicom_declaring_a_huge_image_is_refused_before_decoding(tmp_path):
    def enormous(ds):
        ds.Rows = 20000
        ds.Columns = 20000

    path = edited_dicom("MR_small.dcm", tmp_path / "bomb.dcm", enormous)
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert str(caught.value) == (
        "'bomb.dcm' is too large to decode: 20000×20000 pixels, 400.0 megapixels, above the "
        "64.0-megapixel limit (a possible decompression bomb). Caption models use under 1 "
        "megapixel: downscale it and load it again."
    )


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_raster_image_misnamed_dcm_is_read_as_the_image_it_is(tmp_path, fmt):
    path = tmp_path / "scan.dcm"
    from PIL import Image as PILImage

    PILImage.new("L", (40, 30), 120).save(path, format=fmt)
    loaded = load_image(path)
    assert loaded.display.size == (40, 30)
    assert loaded.source_format == fmt.lower()


def test_text_file_named_dcm(tmp_path):
    path = tmp_path / "report.dcm"
    path.write_text("not a dicom file at all\n" * 20)
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert str(caught.value) == "'report.dcm' is not a DICOM file: no DICOM header was found in it."


def test_dicom_magic_followed_by_garbage(tmp_path):
    path = tmp_path / "broken.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"garbage" * 5)
    with pytest.raises(ImageLoadError) as caught:
        load_image(path)
    assert str(caught.value) == "'broken.dcm' starts like a DICOM file but holds no readable DICOM data."


# --- privacy -------------------------------------------------------------------------------------

IDENTIFYING_KEYWORDS = (
    "PatientName", "PatientID", "PatientBirthDate", "AccessionNumber", "InstitutionName",
    "InstitutionAddress", "ReferringPhysicianName", "OtherPatientIDs", "StudyID",
)

SHIPPED_IMAGES = (
    "CT_small.dcm", "MR_small.dcm", "examples_overlay.dcm", "examples_rgb_color.dcm",
    "examples_palette.dcm", "examples_ybr_color.dcm", "examples_jpeg2k.dcm", "JPEG2000.dcm",
    "MR_small_jp2klossless.dcm", "MR_small_jpeg_ls_lossless.dcm",
)


@pytest.mark.parametrize("name", SHIPPED_IMAGES)
def test_no_patient_identifier_reaches_the_metadata(name):
    ds = reference(name)
    values = (str(ds.get(k) or "").strip() for k in IDENTIFYING_KEYWORDS)
    secrets = {v for v in values if len(v) >= 3}  # a one-digit StudyID would match any number
    loaded = load_image(pydicom_file(name))
    assert set(loaded.metadata) <= set(METADATA_LABELS)
    shown = " | ".join(f"{k}={v}" for k, v in loaded.metadata.items())
    assert [s for s in secrets if s in shown] == []


def test_ct_small_identifiers_are_really_there_and_not_shown():
    ds = reference("CT_small.dcm")
    assert (str(ds.PatientName), ds.PatientID, ds.InstitutionName) == (
        "CompressedSamples^CT1", "1CT1", "JFK IMAGING CENTER",
    )
    shown = repr(load_image(pydicom_file("CT_small.dcm")).metadata)
    for secret in ("CompressedSamples", "1CT1", "JFK"):
        assert secret not in shown


# --- large frames are reduced before any float conversion (issue 15, item 4) -------------------

def test_large_frame_is_block_averaged_before_windowing():
    ds = reference("CT_small.dcm")  # 128 x 128, no window in the file: the CT default
    config = LoaderConfig(max_decoded_pixels=64 * 64)
    loaded = load_image(pydicom_file("CT_small.dcm"), config=config)
    assert loaded.display.size == (64, 64)
    blocks = ds.pixel_array.astype(np.float64).reshape(64, 2, 64, 2).mean(axis=(1, 3))
    hu = np.rint(blocks) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)
    expected = window_to_uint8(hu, 40.0, 400.0)
    assert np.abs(np.asarray(loaded.display).astype(int) - expected).max() <= 1
    assert loaded.metadata["image_size"] == "128 × 128"  # the file's own size is still reported


def test_overlay_plane_is_reduced_with_the_frame():
    ds = reference("examples_overlay.dcm")
    mask = ds.overlay_array(0x6000).astype(bool)
    rows, columns = mask.shape
    loaded = load_image(pydicom_file("examples_overlay.dcm"),
                        config=LoaderConfig(max_decoded_pixels=rows * columns // 4))
    shown = np.asarray(loaded.display)
    assert shown.shape == (rows // 2, columns // 2)
    reduced = mask[: rows // 2 * 2, : columns // 2 * 2].reshape(rows // 2, 2, columns // 2, 2)
    assert (shown[reduced.any(axis=(1, 3))] == 255).all()
    assert loaded.metadata["overlays"] == "1 drawn"


# --- free-text tags can name the patient: hidden unless allowed (issue 15, item 6) -------------

def _named_in_free_text(ds):
    ds.StudyDescription = "CT chest for Doe^Jane"
    ds.SeriesDescription = "Jane Doe follow-up"
    ds.ImageComments = "pt Jane Doe, bed 4"


def test_free_text_tags_are_hidden_by_default(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDCAP_SHOW_DICOM_TEXT", raising=False)
    path = edited_dicom("CT_small.dcm", tmp_path / "scan.dcm", _named_in_free_text)
    metadata = load_image(path).metadata
    assert not any("Doe" in value for value in metadata.values())
    assert {"study_description", "series_description", "image_comments"}.isdisjoint(metadata)
    assert metadata["modality"] == "CT"  # coded tags are still shown


@pytest.mark.parametrize("value, shown", [("1", True), ("true", True), ("0", False), ("", False),
                                          ("maybe", False)])
def test_free_text_tags_follow_the_setting(tmp_path, monkeypatch, value, shown):
    monkeypatch.setenv("MEDCAP_SHOW_DICOM_TEXT", value)
    path = edited_dicom("CT_small.dcm", tmp_path / "scan.dcm", _named_in_free_text)
    metadata = load_image(path).metadata
    assert ("image_comments" in metadata) is shown
    if shown:
        assert metadata["study_description"] == "CT chest for Doe^Jane"
        assert METADATA_LABELS["image_comments"] == "Image comments"
