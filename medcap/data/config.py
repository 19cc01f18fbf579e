"""Tunable limits and defaults of the data layer, kept in one place."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class LoaderConfig:
    """How files become images.

    max_pixels: refuse images above this many pixels before decoding (decompression bombs);
        64 MP is well above the largest radiographs and mammograms (about 30 MP).
    max_file_bytes: refuse to read larger files into memory at all.
    min_model_side: the model image is scaled up (nearest neighbour, integer factor) until its
        shorter side reaches this, because vision processors reject tiny inputs (Qwen2-VL needs 28).
    alpha_background: grey level that transparent pixels are composited onto (radiology viewers
        are black).
    default_windows: VOI window (centre, width) per DICOM modality when the file has none; CT
        gets the soft-tissue window, anything else the full range of the frame.
    draw_overlays: draw DICOM overlay planes (arrows, measurements, ROI outlines) on grayscale
        images in white, as radiology viewers do by default.
    max_decoded_pixels: decode larger images reduced by an integer factor to at most about this
        many pixels (JPEG: `Image.draft` while decoding; other rasters: `Image.reduce`; DICOM: a
        block mean of the frame before any float conversion), so no full-size float or RGB copy
        is ever made. Caption models downscale to under 1 MP anyway. None keeps full resolution.
    show_dicom_text: copy DICOM free-text descriptions (which may name the patient) into the
        metadata; None leaves it to the MEDCAP_SHOW_DICOM_TEXT setting (off unless set to 1).
    """

    max_pixels: int = 64_000_000
    max_file_bytes: int = 1 << 30
    min_model_side: int = 32
    alpha_background: int = 0
    default_windows: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {"CT": (40.0, 400.0)}
    )
    draw_overlays: bool = True
    max_decoded_pixels: int | None = None
    show_dicom_text: bool | None = None


@dataclass(frozen=True)
class SourceConfig:
    """How datasets are read.

    parquet_batch_rows: rows read per parquet batch; ROCOv2 rows carry ~100 kB-1 MB images, so
        a small batch keeps memory flat while streaming 80k rows.
    hub_probe_timeout_s: how long to wait for the hub's TCP port before declaring it unreachable
        (the hub client itself retries for ~25 s before giving up).
    """

    parquet_batch_rows: int = 16
    hub_probe_timeout_s: float = 3.0


DEFAULT_LOADER_CONFIG = LoaderConfig()
DEFAULT_SOURCE_CONFIG = SourceConfig()
