"""The error categories a reviewer can tick besides the verdict: one list, configurable.

The default list covers the errors that matter in radiology captions (side, modality, region,
findings, measurements). A deployment may replace it with a TOML or JSON file named by
``MEDCAP_CATEGORIES`` or by ``[review] categories`` in medcap.toml (a path, or the list inline):

    categories = [
      { key = "wrong_laterality", label = "Wrong laterality", shortcut = "l" },
      ...
    ]

Keys become export columns (``error_<key>``) and are stored with each review, so they are checked
here once: lower-case letters, digits and underscores. Shortcuts are single letters; digits and
j/k are taken by verdicts and navigation.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

SIGNIFICANT_COLUMN = "clinically_significant"
RESERVED_SHORTCUTS = frozenset("jk")  # next / previous item; 1-4 are the verdicts
_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
MAX_LABEL_CHARS = 80


class CategoryConfigError(ValueError):
    """The configured category list cannot be used; the message names the file and the entry."""


@dataclass(frozen=True)
class ErrorCategory:
    key: str
    label: str
    shortcut: str


DEFAULT_CATEGORIES: tuple[ErrorCategory, ...] = (
    ErrorCategory("wrong_laterality", "Wrong laterality", "l"),
    ErrorCategory("wrong_modality", "Wrong modality", "m"),
    ErrorCategory("wrong_anatomy", "Wrong anatomy or region", "a"),
    ErrorCategory("missed_finding", "Missed finding", "f"),
    ErrorCategory("hallucinated_finding", "Hallucinated finding", "h"),
    ErrorCategory("wrong_measurement", "Wrong size, count or measurement", "s"),
    ErrorCategory("not_a_caption", "Not a caption", "n"),
)


def category_column(key: str) -> str:
    """The export column of one category (the only place that spells it)."""
    return "error_" + key


def load_categories(settings_or_env: Any = None) -> tuple[ErrorCategory, ...]:
    """Categories from a Settings (``review_categories``), an environment mapping
    (``MEDCAP_CATEGORIES``), or ``os.environ`` when nothing is given; the defaults otherwise."""
    if settings_or_env is None:
        settings_or_env = os.environ
    if isinstance(settings_or_env, Mapping):
        source: Any = settings_or_env.get("MEDCAP_CATEGORIES") or None
    else:
        source = getattr(settings_or_env, "review_categories", None)
    if source is None:
        return DEFAULT_CATEGORIES
    if isinstance(source, (str, os.PathLike)):
        return parse_categories(_read_file(Path(source)), origin=str(source))
    return parse_categories(source, origin="medcap.toml [review] categories")


def _read_file(path: Path) -> Any:
    try:
        if path.suffix.lower() == ".json":
            data = json.loads(path.read_text(encoding="utf-8"))
        else:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:  # tomllib / json errors are ValueErrors
        raise CategoryConfigError(f"Cannot read the category file {path}: {exc}") from exc
    return data.get("categories") if isinstance(data, dict) else data


def parse_categories(entries: Any, origin: str = "categories") -> tuple[ErrorCategory, ...]:
    """Check a list of {key, label, shortcut} tables; every problem names its entry."""
    if not isinstance(entries, list) or not entries:
        raise CategoryConfigError(f"{origin}: expected a non-empty list of categories.")
    parsed: list[ErrorCategory] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, Mapping):
            raise CategoryConfigError(f"{origin}: entry {number} is not a table with key and label.")
        parsed.append(_category(entry, f"{origin}: entry {number}"))
    _require_unique([c.key for c in parsed], "key", origin)
    _require_unique([c.shortcut for c in parsed if c.shortcut], "shortcut", origin)
    return tuple(parsed)


def _category(entry: Mapping[str, Any], where: str) -> ErrorCategory:
    key = str(entry.get("key", "")).strip()
    label = str(entry.get("label", "")).strip()
    shortcut = str(entry.get("shortcut", "")).strip().lower()
    if not _KEY.match(key):
        raise CategoryConfigError(
            f"{where}: key {key!r} must be 1-40 lower-case letters, digits or _, starting with a letter.")
    if not label or len(label) > MAX_LABEL_CHARS or not label.isprintable():
        raise CategoryConfigError(f"{where}: label must be 1-{MAX_LABEL_CHARS} printable characters.")
    if shortcut and (len(shortcut) != 1 or not shortcut.isalpha() or shortcut in RESERVED_SHORTCUTS):
        raise CategoryConfigError(
            f"{where}: shortcut {shortcut!r} must be one letter other than "
            f"{', '.join(sorted(RESERVED_SHORTCUTS))}.")
    return ErrorCategory(key, label, shortcut)


def _require_unique(values: list[str], what: str, origin: str) -> None:
    seen: set[str] = set()
    for value in values:
        if value in seen:
            raise CategoryConfigError(f"{origin}: {what} {value!r} is used twice.")
        seen.add(value)
