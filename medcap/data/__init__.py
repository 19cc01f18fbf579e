"""Data layer: every user file or dataset row becomes a model-ready image here.

- `load_image(path_or_bytes, name=...)` -> LoadedImage (PNG/JPEG/GIF/BMP/TIFF/WebP/DICOM),
  or an ImageLoadError whose message says exactly what is wrong with the file.
- `iter_records(source, split=..., limit=...)` -> lazy Records from an image folder (optional
  captions.csv), ROCOv2-style parquet file(s), or a hub dataset id (streaming).
- `modality_from_cuis(cuis)` -> "CT", "MRI", "X-ray", ... from ROCOv2's UMLS concepts.
"""

from medcap.data.config import DEFAULT_LOADER_CONFIG, DEFAULT_SOURCE_CONFIG, LoaderConfig, SourceConfig
from medcap.data.errors import DataSourceError, ImageLoadError
from medcap.data.images import IMAGE_SUFFIXES, load_image
from medcap.data.items import LoadedImage, Record
from medcap.data.metadata import METADATA_LABELS
from medcap.data.modality import (
    MODALITY_NAMES,
    ROCOV2_MODALITY_CONCEPTS,
    modality_from_cuis,
    modality_from_dicom_code,
)
from medcap.data.sources import iter_records

__all__ = [
    "DEFAULT_LOADER_CONFIG",
    "DEFAULT_SOURCE_CONFIG",
    "DataSourceError",
    "IMAGE_SUFFIXES",
    "ImageLoadError",
    "LoadedImage",
    "LoaderConfig",
    "METADATA_LABELS",
    "MODALITY_NAMES",
    "ROCOV2_MODALITY_CONCEPTS",
    "Record",
    "SourceConfig",
    "iter_records",
    "load_image",
    "modality_from_cuis",
    "modality_from_dicom_code",
]
