"""Each browser session's last decoded upload, so Caption can be pressed again (another prompt,
other models) after the uploaded file itself was deleted.

An upload's file is deleted once decoded (a DICOM's name and tags must not stay on the server),
so a second press of Caption on the same upload used to answer "upload the file again". What is
kept instead is what decoding derived from it: the model's picture, the display picture and the
allow-listed metadata, in memory only, one upload per session, for the most recent
`DEFAULT_SESSIONS` sessions (a decoded upload is at most `MEDCAP_MAX_UPLOAD_MEGAPIXELS`-reduced,
4 MP by default: ~12 MB), and dropped when the session's tab closes.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

DEFAULT_SESSIONS = 32


class DecodedUploads:
    """session -> (upload path, what decoding it gave), least recently used first out."""

    def __init__(self, sessions: int = DEFAULT_SESSIONS) -> None:
        self.sessions = sessions
        self._entries: OrderedDict[str, tuple[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    def remember(self, session: str, path: str | Path, decoded: Any) -> None:
        if not session:
            return
        with self._lock:
            self._entries[session] = (_key(path), decoded)
            self._entries.move_to_end(session)
            while len(self._entries) > self.sessions:
                self._entries.popitem(last=False)

    def recall(self, session: str, path: str | Path) -> Any | None:
        """What `session` decoded from `path`, if that is its last upload."""
        with self._lock:
            entry = self._entries.get(session) if session else None
            if entry is None or entry[0] != _key(path):
                return None
            self._entries.move_to_end(session)
            return entry[1]

    def forget(self, session: str) -> None:
        with self._lock:
            self._entries.pop(session, None)


def _key(path: str | Path) -> str:
    return str(Path(path).resolve())
