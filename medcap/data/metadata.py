"""Which DICOM tags medcap shows, and their labels: an allow-list, so identifiers never leak.

Patient name, ID, birth date, sex, age, accession number, institution, physicians, dates and
UIDs are deliberately absent: only tags listed here are ever copied out of a file. Free-text
descriptions (study, series, image comments) are typed by people and can hold a patient's name,
so they are copied only when MEDCAP_SHOW_DICOM_TEXT=1 allows it (off by default).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

SHOW_TEXT_SETTING = "MEDCAP_SHOW_DICOM_TEXT"


@dataclass(frozen=True)
class MetadataField:
    key: str
    keyword: str
    label: str
    numeric: bool = False  # decimal strings such as "5.000000" are shown as "5"
    free_text: bool = False  # typed by a person: may name the patient, hidden unless allowed


# The only tags ever read into metadata. Nothing here identifies a patient or an institution.
METADATA_FIELDS: tuple[MetadataField, ...] = (
    MetadataField("modality", "Modality", "Modality"),
    MetadataField("body_part", "BodyPartExamined", "Body part"),
    MetadataField("study_description", "StudyDescription", "Study description", free_text=True),
    MetadataField("series_description", "SeriesDescription", "Series description", free_text=True),
    MetadataField("view_position", "ViewPosition", "View position"),
    MetadataField("photometric_interpretation", "PhotometricInterpretation", "Photometric interpretation"),
    MetadataField("slice_thickness_mm", "SliceThickness", "Slice thickness (mm)", numeric=True),
    MetadataField("image_comments", "ImageComments", "Image comments", free_text=True),
)


def free_text_allowed(env: Mapping[str, str] | None = None) -> bool:
    """Whether MEDCAP_SHOW_DICOM_TEXT allows free-text tags; anything but 1/true/yes is off."""
    env = os.environ if env is None else env
    return env.get(SHOW_TEXT_SETTING, "").strip().lower() in ("1", "true", "yes")

# Labels for every metadata key load_dicom can produce, in display order.
METADATA_LABELS: dict[str, str] = {
    **{f.key: f.label for f in METADATA_FIELDS},
    "image_size": "Image size",
    "pixel_spacing_mm": "Pixel spacing (mm)",
    "frames": "Frames",
    "frame_shown": "Frame shown",
    "window": "Window",
    "overlays": "Overlays",
    "transfer_syntax": "Transfer syntax",
    "sop_class": "SOP class",
}
