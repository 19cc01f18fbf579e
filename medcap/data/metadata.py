"""Which DICOM tags medcap shows, and their labels: an allow-list, so identifiers never leak.

Patient name, ID, birth date, sex, age, accession number, institution, physicians, dates and
UIDs are deliberately absent: only tags listed here are ever copied out of a file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetadataField:
    key: str
    keyword: str
    label: str
    numeric: bool = False  # decimal strings such as "5.000000" are shown as "5"


# The only tags ever read into metadata. Nothing here identifies a patient or an institution.
METADATA_FIELDS: tuple[MetadataField, ...] = (
    MetadataField("modality", "Modality", "Modality"),
    MetadataField("body_part", "BodyPartExamined", "Body part"),
    MetadataField("study_description", "StudyDescription", "Study description"),
    MetadataField("series_description", "SeriesDescription", "Series description"),
    MetadataField("view_position", "ViewPosition", "View position"),
    MetadataField("photometric_interpretation", "PhotometricInterpretation", "Photometric interpretation"),
    MetadataField("slice_thickness_mm", "SliceThickness", "Slice thickness (mm)", numeric=True),
)

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
