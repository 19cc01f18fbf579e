"""Uploaded images as a reviewable collection, keeping nothing that identifies a patient.

What is kept per upload, in ``<folder>/<id>/``: ``image.png`` (the derived display image,
re-encoded without any text, EXIF or ICC chunk; never the uploaded file or its DICOM header) and
``item.json`` (allow-listed technical metadata, the captions, an optional reference caption).
The id is a hash of the PNG, so uploading the same picture twice gives the same item.
With ``keep=False`` (``MEDCAP_KEEP_UPLOADS=0``) a session's items are deleted when the session
ends (`forget_session`).
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import re
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

from PIL import Image

UPLOADS_DATASET = "uploads"
ID_PATTERN = re.compile(r"^upload-[0-9a-f]{12}$")
# Technical fields only: free-text DICOM descriptions can hold a patient's name (#15 item 6).
KEPT_METADATA = frozenset({
    "modality", "body_part", "view_position", "photometric_interpretation",
    "slice_thickness_mm", "image_size", "pixel_spacing_mm", "frames", "frame_shown", "window",
    "overlays", "transfer_syntax", "sop_class", "format", "source_format", "mode",
})
MAX_TEXT_CHARS = 4000
MAX_NAME_CHARS = 200
MAX_MODELS = 32


class UploadItemError(ValueError):
    """An upload item cannot be stored or changed; the message is for the user."""


@dataclass(frozen=True)
class UploadItem:
    item_id: str
    image_path: Path
    metadata: dict[str, str]
    captions: dict[str, dict[str, Any]]  # model -> {caption, seconds, error}
    reference: str
    created_at: str
    session: str
    sessions: tuple[str, ...] = field(default=(), repr=False)


def keep_uploads_from_env(env: Mapping[str, str] | None = None) -> bool:
    """MEDCAP_KEEP_UPLOADS: 1 (default) keeps uploads with the reviews; 0 forgets them."""
    env = os.environ if env is None else env
    text = (env.get("MEDCAP_KEEP_UPLOADS") or "1").strip().lower()
    if text not in ("1", "0", "true", "false", "yes", "no"):
        raise ValueError(f"MEDCAP_KEEP_UPLOADS must be 1 or 0 (got {text!r}).")
    return text in ("1", "true", "yes")


def is_upload_id(item_id: object) -> bool:
    return isinstance(item_id, str) and bool(ID_PATTERN.match(item_id))


class UploadStore:
    """Upload items in one folder; safe to call from several threads of one process."""

    def __init__(self, folder: str | Path, keep: bool = True):
        self.folder = Path(folder)
        self.keep = keep
        self._lock = threading.RLock()

    @classmethod
    def from_env(cls, folder: str | Path, env: Mapping[str, str] | None = None) -> "UploadStore":
        return cls(folder, keep=keep_uploads_from_env(env))

    # -- writes --------------------------------------------------------------------------------

    def add(self, display: Image.Image, metadata: Mapping[str, str],
            captions: Mapping[str, Mapping[str, Any]], session: str = "") -> str:
        """Store the display image and captions; returns the item id (same image, same id:
        new captions are merged into the existing item)."""
        png = _clean_png(display)
        item_id = "upload-" + hashlib.sha256(png).hexdigest()[:12]
        session = _bounded(session, "session", MAX_NAME_CHARS)
        with self._lock:
            record = self._read(item_id) or {
                "item_id": item_id, "metadata": {}, "captions": {}, "reference": "",
                "created_at": _now(), "sessions": []}
            record["metadata"] = _kept_metadata(metadata)
            record["captions"].update(_clean_captions(captions))
            if len(record["captions"]) > MAX_MODELS:
                raise UploadItemError(f"At most {MAX_MODELS} models' captions per upload.")
            if session not in record["sessions"]:
                record["sessions"].append(session)
            folder = self.folder / item_id
            folder.mkdir(parents=True, exist_ok=True)
            if not (folder / "image.png").is_file():
                _atomic_write(folder / "image.png", png)
            self._write(record)
        return item_id

    def set_reference(self, item_id: str, text: str) -> UploadItem:
        """Set (or clear, with "") the reference caption an upload is scored against."""
        reference = _bounded((text or "").strip(), "reference caption", MAX_TEXT_CHARS)
        with self._lock:
            record = self._read(self._checked_id(item_id))
            if record is None:
                raise UploadItemError(f"No uploaded image with id {item_id!r}.")
            record["reference"] = reference
            self._write(record)
            return self._item(record)

    def forget_session(self, session: str) -> int:
        """When uploads are not kept, delete the items only this session uploaded; returns how
        many were deleted (0 when uploads are kept or no session is named)."""
        if self.keep or not session:
            return 0
        deleted = 0
        with self._lock:
            for record in self._records():
                if session not in record["sessions"]:
                    continue
                record["sessions"].remove(session)
                if record["sessions"]:
                    self._write(record)
                else:
                    shutil.rmtree(self.folder / record["item_id"], ignore_errors=True)
                    deleted += 1
        return deleted

    # -- reads ---------------------------------------------------------------------------------

    def get(self, item_id: str) -> UploadItem | None:
        """The item, or None (also for anything that is not an upload id: no path is built)."""
        if not is_upload_id(item_id):
            return None
        with self._lock:
            record = self._read(item_id)
        return self._item(record) if record else None

    def items(self) -> list[UploadItem]:
        """Every stored upload, oldest first."""
        with self._lock:
            records = self._records()
        return [self._item(r) for r in sorted(records, key=lambda r: (r["created_at"], r["item_id"]))]

    # -- files ---------------------------------------------------------------------------------

    def _checked_id(self, item_id: str) -> str:
        if not is_upload_id(item_id):
            raise UploadItemError(f"{str(item_id)[:40]!r} is not an upload id (upload-<12 hex>).")
        return item_id

    def _records(self) -> list[dict[str, Any]]:
        if not self.folder.is_dir():
            return []
        found = (self._read(p.name) for p in self.folder.iterdir() if is_upload_id(p.name))
        return [r for r in found if r]

    def _read(self, item_id: str) -> dict[str, Any] | None:
        path = self.folder / item_id / "item.json"
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def _write(self, record: dict[str, Any]) -> None:
        text = json.dumps(record, ensure_ascii=False, indent=1, sort_keys=True)
        _atomic_write(self.folder / record["item_id"] / "item.json", text.encode("utf-8"))

    def _item(self, record: dict[str, Any]) -> UploadItem:
        sessions = tuple(record.get("sessions", ()))
        return UploadItem(
            item_id=record["item_id"], image_path=self.folder / record["item_id"] / "image.png",
            metadata=dict(record.get("metadata", {})), captions=dict(record.get("captions", {})),
            reference=record.get("reference", ""), created_at=record.get("created_at", ""),
            session=sessions[0] if sessions else "", sessions=sessions)


def _clean_png(image: Image.Image) -> bytes:
    """PNG bytes of the pixels only: a fresh image carries no info/EXIF/ICC/text chunks."""
    mode = image.mode if image.mode in ("L", "LA", "RGB", "RGBA", "I;16") else "RGB"
    source = image if image.mode == mode else image.convert(mode)
    clean = Image.frombytes(mode, source.size, source.tobytes())
    buffer = io.BytesIO()
    clean.save(buffer, format="PNG")
    return buffer.getvalue()


def _kept_metadata(metadata: Mapping[str, Any]) -> dict[str, str]:
    return {str(k): str(v)[:MAX_NAME_CHARS] for k, v in (metadata or {}).items()
            if k in KEPT_METADATA and v is not None and str(v).strip()}


def _clean_captions(captions: Mapping[str, Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    clean = {}
    for model, card in (captions or {}).items():
        name = _bounded(str(model).strip(), "model name", MAX_NAME_CHARS)
        if not name:
            continue
        seconds = card.get("seconds")
        try:
            seconds = float(seconds) if seconds is not None else None
        except (TypeError, ValueError):
            seconds = None
        clean[name] = {
            "caption": str(card.get("caption") or "")[:MAX_TEXT_CHARS],
            "seconds": seconds if seconds is not None and math.isfinite(seconds) else None,
            "error": str(card.get("error") or "")[:MAX_TEXT_CHARS],
        }
    return clean


def _bounded(text: str, what: str, limit: int) -> str:
    text = str(text or "")
    if len(text) > limit:
        raise UploadItemError(f"The {what} is too long ({len(text)} characters; at most {limit}).")
    if "\0" in text:
        raise UploadItemError(f"The {what} contains a NUL character.")
    return text


def _atomic_write(path: Path, data: bytes) -> None:
    """Write beside the target and rename, so a crash never leaves half a file."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
