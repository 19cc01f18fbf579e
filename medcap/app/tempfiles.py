"""What the app leaves in Gradio's temp folder, and how it goes away.

An uploaded DICOM carries the patient's name in its file name and tags, so the upload is deleted
as soon as it has been decoded (`discard_upload`); only the derived picture is shown. Review
exports are pruned to the newest few (`prune_exports`). Gradio's own copies (previews, export
downloads) are swept by `delete_cache` (see `medcap.app.launch`).
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path
from typing import Iterable

EXPORT_PATTERN = "medcap-reviews-*.csv"


def gradio_temp_dir() -> Path:
    """Where Gradio keeps uploads and served files: $GRADIO_TEMP_DIR or <tmp>/gradio."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def _same_content(path: Path, other: Path) -> bool:
    try:
        return other.stat().st_size == path.stat().st_size and other.read_bytes() == path.read_bytes()
    except OSError:
        return False


def discard_upload(path: str | Path, keep: Iterable[Path] = ()) -> bool:
    """Delete an upload Gradio stored in its temp folder, and the folder Gradio made for it.

    Files outside that folder (a path a script passed in) are never touched, nor Gradio's copy
    of an example in `keep` (the next click on that example serves the same copy). Returns
    whether the file was deleted.
    """
    root = gradio_temp_dir().resolve()
    target = Path(path).resolve()
    if root not in target.parents or not target.is_file():
        return False
    if any(Path(k).name == target.name and _same_content(target, Path(k)) for k in keep):
        return False
    target.unlink(missing_ok=True)
    if target.parent != root:
        try:
            target.parent.rmdir()  # Gradio's per-upload folder, named after the file's hash
        except OSError:
            pass  # not empty: another upload of the same content is in flight
    return True


def was_discarded(path: str | Path) -> bool:
    """True for a missing file in Gradio's temp folder: an upload deleted after its first use."""
    target = Path(path).resolve()
    return gradio_temp_dir().resolve() in target.parents and not target.exists()


def prune_exports(folder: Path, keep: int, max_age_s: float, now: float | None = None) -> int:
    """Delete review exports older than `max_age_s` and all but the newest `keep`; returns how
    many went. Run before writing a new export, so the folder never holds more than keep + 1."""
    now = time.time() if now is None else now
    exports = sorted(Path(folder).glob(EXPORT_PATTERN), key=_mtime, reverse=True)
    removed = 0
    for index, path in enumerate(exports):
        if index >= keep or now - _mtime(path) > max_age_s:
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
