"""Errors the data layer raises on purpose.

Both derive from ValueError so callers that only want "bad input" can catch one type; the
message is written for the person who supplied the file, and is shown to them as is.
"""

from __future__ import annotations


class ImageLoadError(ValueError):
    """A single image (upload, file or dataset row) cannot be turned into a picture."""


class DataSourceError(ValueError):
    """A dataset source (folder, parquet file or hub id) cannot be read."""
