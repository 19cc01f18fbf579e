"""Where the review database lives by default.

On a Hugging Face Space only ``/data`` (persistent storage, when the Space has it) survives a
restart; everything else is wiped. So: an explicit path wins, then ``/data`` when it exists and is
writable, then the working directory.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ReviewDbLocation:
    """Inputs to the default-path decision, as a dataclass so tests can point them elsewhere."""

    env_var: str = "MEDCAP_REVIEWS_DB"
    persistent_dir: Path = Path("/data")
    file_name: str = "reviews.sqlite"
    fallback_dir: Path = Path(".")


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def default_reviews_db(
    configured: str | os.PathLike[str] | None = None,
    location: ReviewDbLocation = ReviewDbLocation(),
) -> Path:
    """Pick the review database path: configured > $MEDCAP_REVIEWS_DB > Space storage > cwd."""
    if configured:
        return Path(configured).expanduser()
    from_env = os.environ.get(location.env_var)
    if from_env:
        return Path(from_env).expanduser()
    if _writable_dir(location.persistent_dir):
        return location.persistent_dir / location.file_name
    return location.fallback_dir / location.file_name
