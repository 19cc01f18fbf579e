"""Recognising which split a shard or subfolder belongs to, from its name."""

from __future__ import annotations

import re
from pathlib import Path

KNOWN_SPLITS = ("train", "validation", "valid", "val", "test", "dev")

# "test-00000-of-00003.parquet", "rocov2-test.parquet", "test.parquet", "train_0.parquet"
_SPLIT_IN_NAME = re.compile(r"(?:^|[-_.])(" + "|".join(KNOWN_SPLITS) + r")(?=$|[-_.])", re.IGNORECASE)


def split_of(path: Path, root: Path) -> str | None:
    """The split named by the file name, else by the nearest folder below `root`."""
    match = _SPLIT_IN_NAME.search(path.stem)
    if match:
        return match.group(1).lower()
    for parent in path.relative_to(root).parents:
        if parent.name.lower() in KNOWN_SPLITS:
            return parent.name.lower()
    return None


def describe_splits(splits: set[str]) -> str:
    return ", ".join(sorted(splits))
