"""DICOM files -> 8-bit pictures plus non-identifying metadata.

Grayscale: modality LUT (rescale slope/intercept), then the VOI window from the file (with its
VOI LUT Function: LINEAR, LINEAR_EXACT or SIGMOID) or a
per-modality default (LoaderConfig.default_windows), then MONOCHROME1 inversion. Colour:
RGB / YBR (converted by pydicom) and PALETTE COLOR (through its lookup tables). Multi-frame
series show their middle frame. Overlay planes (annotations) are drawn in white, as viewers do
(medcap.data.overlays). Metadata comes from an allow-list of tags, so patient
identifiers (name, ID, birth date, accession number, institution, ...) can never leak out; free-text
descriptions only when MEDCAP_SHOW_DICOM_TEXT allows (medcap.data.metadata).
"""

from __future__ import annotations

import io
import re
from collections.abc import Sequence

import numpy as np
import pydicom
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_voi_lut, get_decoder, pixel_array
from pydicom.uid import UID, ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from medcap.data.config import LoaderConfig
from medcap.data.errors import ImageLoadError
from medcap.data.images import bomb_message
from medcap.data.pixels import (
    VOI_FUNCTIONS, model_image, reduction_factor, scale_to_bits, shrink_array, stretch_to_uint8,
    window_to_uint8,
)
from medcap.data.items import LoadedImage
from medcap.data.metadata import METADATA_FIELDS, free_text_allowed
from medcap.data.overlays import draw_overlays

PIXEL_DATA_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")

# pip packages that add a decoder, per family of compressed transfer syntaxes.
_PLUGIN_HINTS = (
    ("JPEG 2000", "pylibjpeg pylibjpeg-openjpeg"),
    ("JPEG-LS", "pylibjpeg pylibjpeg-libjpeg"),
    ("JPEG", "pylibjpeg pylibjpeg-libjpeg"),
    ("RLE", "pylibjpeg pylibjpeg-rle"),
)


def load_dicom(data: bytes, label: str, config: LoaderConfig) -> LoadedImage:
    """Decode one DICOM file (bytes) into a LoadedImage, or raise a specific ImageLoadError."""
    ds = _parse(data, label)
    _require_pixel_data(ds, label)
    transfer_syntax = _transfer_syntax(ds)
    _require_decoder(transfer_syntax, label)
    try:
        rows, columns = int(ds.get("Rows") or 0), int(ds.get("Columns") or 0)
    except (TypeError, ValueError) as exc:
        raise ImageLoadError(f"'{label}' has an invalid image size in its DICOM header.") from exc
    if rows * columns > config.max_pixels:
        raise ImageLoadError(bomb_message(label, rows * columns, config, (columns, rows)))
    frames = _frame_count(ds)
    index = frames // 2
    frame = _decode_frame(ds, label, transfer_syntax, index if frames > 1 else None)
    scale = reduction_factor(columns, rows, config.max_decoded_pixels)
    frame = shrink_array(frame, config.max_decoded_pixels)  # before any float conversion
    display, window = _to_display(ds, frame, label, config)
    overlays = None
    if config.draw_overlays and display.mode == "L":
        drawn, result = draw_overlays(ds, np.asarray(display), index, frames, scale)
        display, overlays = Image.fromarray(drawn, "L"), result.describe()
    show_text = free_text_allowed() if config.show_dicom_text is None else config.show_dicom_text
    metadata = _metadata(ds, transfer_syntax, frames, index, window, show_text)
    if overlays:
        metadata["overlays"] = overlays
    return LoadedImage(
        image=model_image(display, config.min_model_side),
        display=display,
        metadata=metadata,
        source_format="dicom",
    )


def read_header(data_or_path: bytes | str, *, force: bool = True) -> Dataset:
    """The dataset without pixel data; cheap enough to read while listing a folder."""
    source = io.BytesIO(data_or_path) if isinstance(data_or_path, bytes) else data_or_path
    return pydicom.dcmread(source, stop_before_pixels=True, force=force)


def _parse(data: bytes, label: str) -> Dataset:
    has_preamble = data[128:132] == b"DICM"
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=not has_preamble)
    except (InvalidDicomError, EOFError) as exc:
        raise ImageLoadError(f"'{label}' is not a readable DICOM file: {exc}.") from exc
    except Exception as exc:
        raise ImageLoadError(
            f"'{label}' is not a readable DICOM file: its header is damaged ({type(exc).__name__})."
        ) from exc
    if not any(tag.group in (0x0008, 0x0028) for tag in ds.keys()):
        if has_preamble:
            raise ImageLoadError(f"'{label}' starts like a DICOM file but holds no readable DICOM data.")
        raise ImageLoadError(f"'{label}' is not a DICOM file: no DICOM header was found in it.")
    return ds


def _sop_class_name(ds: Dataset) -> str | None:
    uid = ds.get("SOPClassUID")
    return UID(str(uid)).name if uid else None


def _require_pixel_data(ds: Dataset, label: str) -> None:
    if any(ds.get(keyword) for keyword in PIXEL_DATA_KEYWORDS):  # an empty element counts as none
        return
    sop = _sop_class_name(ds)
    modality = str(ds.get("Modality") or "").upper()
    if "WaveformSequence" in ds or (sop and "Waveform" in sop):
        raise ImageLoadError(
            f"'{label}' is a DICOM waveform ({sop or 'waveform'}), not an image: there is nothing to caption."
        )
    if modality == "SR" or (sop and re.search(r"\bSR\b", sop)):
        raise ImageLoadError(
            f"'{label}' is a DICOM Structured Report ({sop or 'SR'}), a document with no image to caption."
        )
    kind = f"DICOM {sop} file" if sop else "DICOM file"
    raise ImageLoadError(f"'{label}' is a {kind} without pixel data: there is no image to caption.")


def _transfer_syntax(ds: Dataset) -> UID:
    uid = ds.file_meta.get("TransferSyntaxUID") if getattr(ds, "file_meta", None) is not None else None
    if uid:
        return UID(str(uid))
    # A bare dataset (no file meta): fall back to the encoding it was actually read with.
    implicit, little = ds.original_encoding
    uid = ImplicitVRLittleEndian if (implicit and little) else (
        ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    )
    ds.ensure_file_meta()
    ds.file_meta.TransferSyntaxUID = uid
    return uid


def _describe_syntax(uid: UID) -> str:
    return f"'{uid.name}' ({uid})" if uid.name != str(uid) else f"'{uid}'"


def _require_decoder(uid: UID, label: str) -> None:
    try:
        decoder = get_decoder(uid)
    except NotImplementedError as exc:
        raise ImageLoadError(
            f"'{label}' uses the DICOM transfer syntax {_describe_syntax(uid)}, which medcap cannot "
            "decode: no pixel decoder exists for it. Convert the file to an uncompressed, JPEG or "
            "JPEG 2000 DICOM (e.g. with dcmtk's dcmconv or gdcmconv) and load it again."
        ) from exc
    if not decoder.is_available:
        packages = next((pkgs for key, pkgs in _PLUGIN_HINTS if key in uid.name), "pylibjpeg")
        raise ImageLoadError(
            f"'{label}' is compressed with {_describe_syntax(uid)}, which needs a decoder plugin that "
            f"is not installed: pip install {packages} (or python-gdcm)."
        )


def _frame_count(ds: Dataset) -> int:
    try:
        return max(1, int(ds.get("NumberOfFrames") or 1))
    except (TypeError, ValueError):
        return 1


_SHORT_PIXEL_DATA = re.compile(r"less than expected \((\d+) vs (\d+) bytes\)")


def _decode_frame(ds: Dataset, label: str, uid: UID, index: int | None) -> np.ndarray:
    try:
        return pixel_array(ds, index=index)
    except Exception as exc:
        short = _SHORT_PIXEL_DATA.search(str(exc))
        if short:
            raise ImageLoadError(
                f"'{label}' is a truncated DICOM file: it holds {short.group(1)} bytes of pixel data "
                f"where its header announces {short.group(2)}."
            ) from exc
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = lines[-1] if lines else type(exc).__name__
        raise ImageLoadError(
            f"'{label}': the DICOM pixel data ({uid.name}) could not be decoded; the file may be "
            f"corrupt ({detail})."
        ) from exc


def _to_display(
    ds: Dataset, frame: np.ndarray, label: str, config: LoaderConfig
) -> tuple[Image.Image, str | None]:
    photometric = str(ds.get("PhotometricInterpretation") or "MONOCHROME2").strip().upper()
    if photometric in ("MONOCHROME1", "MONOCHROME2"):
        gray, window = _grayscale(ds, frame, config)
        if photometric == "MONOCHROME1":
            gray = 255 - gray  # MONOCHROME1 stores low values as white
        return Image.fromarray(gray, "L"), window
    if photometric == "PALETTE COLOR":
        rgb = apply_color_lut(frame, ds)
        if rgb.dtype != np.uint8:
            rgb = (np.asarray(rgb, dtype=np.uint32) >> 8).astype(np.uint8)
        return Image.fromarray(np.ascontiguousarray(rgb), "RGB"), None
    if frame.ndim == 3 and frame.shape[-1] == 3:  # RGB, or YBR_* already converted to RGB
        if frame.dtype != np.uint8:
            frame = scale_to_bits(frame, int(ds.get("BitsStored") or frame.dtype.itemsize * 8))
        return Image.fromarray(np.ascontiguousarray(frame), "RGB"), None
    raise ImageLoadError(
        f"'{label}' uses the photometric interpretation '{photometric}', which medcap does not support."
    )


def _grayscale(ds: Dataset, frame: np.ndarray, config: LoaderConfig) -> tuple[np.ndarray, str]:
    values = apply_modality_lut(frame, ds).astype(np.float64)
    center, width = _first_number(ds.get("WindowCenter")), _first_number(ds.get("WindowWidth"))
    if center is not None and width is not None and width > 0:
        function = str(ds.get("VOILUTFunction") or "LINEAR").strip().upper()
        if function not in VOI_FUNCTIONS:  # an unknown value: the standard's default
            function = "LINEAR"
        label = f"C {center:g} / W {width:g} (from file)"
        if function != "LINEAR":
            label = f"C {center:g} / W {width:g} {function.lower()} (from file)"
        return window_to_uint8(values, center, width, function), label
    if "VOILUTSequence" in ds:
        return stretch_to_uint8(apply_voi_lut(values, ds)), "VOI LUT (from file)"
    modality = str(ds.get("Modality") or "").upper()
    if modality in config.default_windows:
        center, width = config.default_windows[modality]
        return window_to_uint8(values, center, width), f"C {center:g} / W {width:g} (default for {modality})"
    return stretch_to_uint8(values), f"full range {values.min():g} to {values.max():g}"


def _first_number(value: object) -> float | None:
    if value is None or value == "":
        return None
    if isinstance(value, Sequence) and not isinstance(value, str):  # MultiValue: several windows
        if not value:
            return None
        value = value[0]
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def _metadata(ds: Dataset, uid: UID, frames: int, index: int, window: str | None,
              show_text: bool = False) -> dict[str, str]:
    metadata: dict[str, str] = {}
    for field in METADATA_FIELDS:
        if field.free_text and not show_text:
            continue
        text = _clean(ds.get(field.keyword))
        if text and field.numeric:
            text = _number_text(text)
        if text:
            metadata[field.key] = text
    if ds.get("Rows") and ds.get("Columns"):
        metadata["image_size"] = f"{int(ds.Columns)} × {int(ds.Rows)}"
    spacing = ds.get("PixelSpacing")
    if spacing is not None and len(spacing) == 2:
        metadata["pixel_spacing_mm"] = f"{float(spacing[0]):g} × {float(spacing[1]):g}"
    if frames > 1:
        metadata["frames"] = str(frames)
        metadata["frame_shown"] = f"{index + 1} of {frames}"
    if window:
        metadata["window"] = window
    metadata["transfer_syntax"] = uid.name
    sop = _sop_class_name(ds)
    if sop:
        metadata["sop_class"] = sop
    return metadata


def _number_text(text: str) -> str:
    try:
        return f"{float(text):g}"
    except ValueError:
        return text


def _clean(value: object) -> str:
    if value is None:
        return ""
    text = str(value)
    return " ".join(text.replace("\x00", " ").split())
