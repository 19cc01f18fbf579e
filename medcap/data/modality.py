"""Imaging modality of an image, from ROCOv2's UMLS concepts or a DICOM Modality code.

ROCOv2 (Rückert et al., Scientific Data 11:688, 2024) tags every image with one manually
curated modality concept. These are the six modality CUIs of the dataset, the same ones the
ImageCLEFmedical Caption 2023/2024 concept-detection evaluation scores as its curated subset:

| CUI      | UMLS preferred name        | medcap name |
|----------|----------------------------|-------------|
| C0032743 | Positron-Emission Tomography | PET       |
| C0040405 | X-Ray Computed Tomography  | CT          |
| C0024485 | Magnetic Resonance Imaging | MRI         |
| C1306645 | Plain x-ray                | X-ray       |
| C0041618 | Ultrasonography            | Ultrasound  |
| C0002978 | Angiogram                  | Angiography |

A row with several modality concepts (a fused PET/CT image) gets the names joined with "/"
in table order ("PET/CT"); a row with none gets None.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable


@dataclass(frozen=True)
class ModalityConcept:
    cui: str
    umls_name: str
    name: str


ROCOV2_MODALITY_CONCEPTS: tuple[ModalityConcept, ...] = (
    ModalityConcept("C0032743", "Positron-Emission Tomography", "PET"),
    ModalityConcept("C0040405", "X-Ray Computed Tomography", "CT"),
    ModalityConcept("C0024485", "Magnetic Resonance Imaging", "MRI"),
    ModalityConcept("C1306645", "Plain x-ray", "X-ray"),
    ModalityConcept("C0041618", "Ultrasonography", "Ultrasound"),
    ModalityConcept("C0002978", "Angiogram", "Angiography"),
)

MODALITY_NAMES: tuple[str, ...] = tuple(c.name for c in ROCOV2_MODALITY_CONCEPTS)

# DICOM (0008,0060) codes mapped onto the same vocabulary, so one filter works for both.
DICOM_MODALITY_NAMES: dict[str, str] = {
    "CT": "CT",
    "MR": "MRI",
    "CR": "X-ray",
    "DX": "X-ray",
    "RG": "X-ray",
    "US": "Ultrasound",
    "XA": "Angiography",
    "PT": "PET",
    "NM": "Nuclear medicine",
    "MG": "Mammography",
    "RF": "Fluoroscopy",
}

_CUI_SEPARATORS = re.compile(r"[\s;,|]+")


def parse_cuis(value: object) -> tuple[str, ...]:
    """Normalise a CUI cell (list, array, or a ';'/','/space separated string) to a tuple."""
    if value is None:
        return ()
    if isinstance(value, str):
        items: Iterable[object] = _CUI_SEPARATORS.split(value)
    else:
        items = value  # type: ignore[assignment]
    return tuple(str(item).strip().upper() for item in items if item is not None and str(item).strip())


def modality_from_cuis(cuis: Iterable[str]) -> str | None:
    """The ROCOv2 modality name for a row's CUIs, e.g. ("C0040405", "C0817096") -> "CT"."""
    present = set(parse_cuis(cuis))
    names = [c.name for c in ROCOV2_MODALITY_CONCEPTS if c.cui in present]
    return "/".join(names) if names else None


def modality_from_dicom_code(code: str | None) -> str | None:
    """Map a DICOM Modality code ("MR") to the shared vocabulary ("MRI"); unknown codes pass through."""
    if not code or not str(code).strip():
        return None
    code = str(code).strip().upper()
    return DICOM_MODALITY_NAMES.get(code, code)
