"""DICOM overlay planes (groups 60xx): arrows, measurements and ROI outlines stored beside the
pixels. Radiology viewers draw them on top of the image by default, so medcap does too: the
reviewer and the models see what a clinician would see in a viewer.

Only the planes that belong to the frame shown are drawn; a plane that cannot be decoded is
skipped (and counted), never a reason to lose the image.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydicom.dataset import Dataset

OVERLAY_GROUPS = range(0x6000, 0x6020, 2)  # the 16 repeating groups PS3.3 C.9.2 allows
OVERLAY_VALUE = 255  # drawn in white, as viewers do on a grayscale image


@dataclass
class OverlayResult:
    drawn: int = 0
    skipped: int = 0

    def describe(self) -> str | None:
        """Metadata text for the viewer's details panel, or None when the file has no overlays."""
        if not self.drawn and not self.skipped:
            return None
        parts = [f"{self.drawn} drawn"] if self.drawn else []
        if self.skipped:
            parts.append(f"{self.skipped} unreadable, left out")
        return ", ".join(parts)


def draw_overlays(ds: Dataset, gray: np.ndarray, frame_index: int, frames: int,
                  scale: int = 1) -> tuple[np.ndarray, OverlayResult]:
    """`gray` (rows x columns, uint8) with every overlay plane of frame `frame_index` (0-based,
    of `frames`) drawn in white. Returns a new array; `gray` is not modified. `scale`: the frame
    was reduced by this integer factor, so planes (and their origins) are reduced alike."""
    result = OverlayResult()
    out = gray
    for group in OVERLAY_GROUPS:
        if (group, 0x3000) not in ds:
            continue
        try:
            mask = _plane_for_frame(ds, group, frame_index, frames)
        except Exception:  # malformed overlay: wrong length, bad origin, unknown bit layout
            result.skipped += 1
            continue
        if mask is None:
            continue
        origin = ds[group, 0x0050].value if (group, 0x0050) in ds else (1, 1)
        top, left = int(origin[0]) - 1, int(origin[1]) - 1  # 1-based (row, column)
        if scale > 1:
            mask, top, left = _reduce_mask(mask, scale), top // scale, left // scale
        if out is gray:
            out = gray.copy()
        _paint(out, mask, top, left)
        result.drawn += 1
    return out, result


def _plane_for_frame(ds: Dataset, group: int, frame_index: int, frames: int
                     ) -> np.ndarray | None:
    """The plane's 2-D mask for this frame, or None when the plane covers other frames only.

    Without the Multi-frame Overlay attributes a plane applies to every frame; with them it
    covers `Number of Frames in Overlay` frames from `Image Frame Origin` (1-based).
    """
    index = 0
    if (group, 0x0015) in ds and frames > 1:
        planes = max(int(ds[group, 0x0015].value or 1), 1)
        first = int(ds[group, 0x0051].value or 1) - 1 if (group, 0x0051) in ds else 0
        index = frame_index - first
        if not 0 <= index < planes:
            return None
    array = ds.overlay_array(group)
    if array.ndim == 3:
        array = array[index]
    if array.ndim != 2:
        raise ValueError(f"overlay {group:04X} has shape {array.shape}")
    return array.astype(bool)


def _reduce_mask(mask: np.ndarray, scale: int) -> np.ndarray:
    """A mask reduced by `scale`: a reduced pixel is set when any pixel of its block is, so
    one-pixel-wide lines and arrows stay visible."""
    rows, columns = -(-mask.shape[0] // scale), -(-mask.shape[1] // scale)
    padded = np.zeros((rows * scale, columns * scale), dtype=bool)
    padded[: mask.shape[0], : mask.shape[1]] = mask
    return padded.reshape(rows, scale, columns, scale).any(axis=(1, 3))


def _paint(image: np.ndarray, mask: np.ndarray, top: int, left: int) -> None:
    """Set the mask's pixels to white, clipped to the image (origins may point off-image)."""
    rows, columns = image.shape[:2]
    r0, c0 = max(top, 0), max(left, 0)
    r1, c1 = min(top + mask.shape[0], rows), min(left + mask.shape[1], columns)
    if r0 >= r1 or c0 >= c1:
        return
    region = mask[r0 - top : r1 - top, c0 - left : c1 - left]
    image[r0:r1, c0:c1][region] = OVERLAY_VALUE

