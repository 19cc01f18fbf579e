"""Modality from ROCOv2 CUIs and DICOM Modality codes."""

from __future__ import annotations

import pytest

from medcap.data import MODALITY_NAMES, ROCOV2_MODALITY_CONCEPTS, modality_from_cuis, modality_from_dicom_code
from medcap.data.modality import parse_cuis


def test_the_documented_table():
    assert [(c.cui, c.name) for c in ROCOV2_MODALITY_CONCEPTS] == [
        ("C0032743", "PET"),
        ("C0040405", "CT"),
        ("C0024485", "MRI"),
        ("C1306645", "X-ray"),
        ("C0041618", "Ultrasound"),
        ("C0002978", "Angiography"),
    ]
    assert MODALITY_NAMES == ("PET", "CT", "MRI", "X-ray", "Ultrasound", "Angiography")


@pytest.mark.parametrize(
    "cuis, expected",
    [
        (["C0040405", "C0817096"], "CT"),
        (("C0817096", "C0024485"), "MRI"),
        (["C1306645"], "X-ray"),
        (["C0041618", "C0000726"], "Ultrasound"),
        (["C0002978"], "Angiography"),
        (["C0040405", "C0032743"], "PET/CT"),  # fused image: both concepts, PET first
        (["c0040405 "], "CT"),  # case and whitespace are normalised
        ("C1306645;C0817096", "X-ray"),  # a ';'-joined string, as some exports store it
        (["C0817096", "C0037303"], None),  # anatomy only
        ([], None),
        (None, None),
    ],
)
def test_modality_from_cuis(cuis, expected):
    assert modality_from_cuis(cuis) == expected


def test_parse_cuis_handles_the_cell_shapes_parquet_gives():
    assert parse_cuis(["C1", None, " c2 "]) == ("C1", "C2")
    assert parse_cuis("C1 C2,C3|C4") == ("C1", "C2", "C3", "C4")
    assert parse_cuis(None) == ()


@pytest.mark.parametrize(
    "code, expected",
    [("CT", "CT"), ("MR", "MRI"), ("CR", "X-ray"), ("DX", "X-ray"), ("US", "Ultrasound"),
     ("XA", "Angiography"), ("PT", "PET"), ("mg", "Mammography"), ("OT", "OT"), ("", None), (None, None)],
)
def test_modality_from_dicom_code(code, expected):
    assert modality_from_dicom_code(code) == expected
