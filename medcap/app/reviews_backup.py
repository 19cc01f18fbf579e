"""Copy the review database to a Hugging Face dataset repo (`MEDCAP_REVIEWS_REPO`).

A Space without persistent storage loses its files, reviews.sqlite included, on every restart;
with `MEDCAP_REVIEWS_REPO=owner/name` (and an `HF_TOKEN` secret that may write to it) the app
commits a consistent snapshot of the database every `MEDCAP_REVIEWS_EVERY` minutes (default 10)
and on exit, using huggingface_hub's `CommitScheduler`. The snapshot is taken with SQLite's
backup API, never by copying a file that a save may be writing; an unchanged database is not
committed again. Restoring is a download of `reviews/reviews.sqlite` to `MEDCAP_REVIEWS_DB`.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any, Mapping

from huggingface_hub import CommitScheduler

SNAPSHOT_NAME = "reviews.sqlite"


class ReviewsBackup(CommitScheduler):
    """A `CommitScheduler` whose folder holds a fresh snapshot of `database` at each push."""

    def __init__(self, database: Path, repo_id: str, folder: Path, every: float = 10,
                 hf_api: Any = None, token: str | None = None) -> None:
        self.database = Path(database)
        self._snapshot_of: tuple[float, ...] | None = None
        self._snapshot_lock = threading.Lock()  # the timer thread and an exit push may overlap
        super().__init__(repo_id=repo_id, folder_path=folder, every=every, path_in_repo="reviews",
                         repo_type="dataset", private=True, token=token, hf_api=hf_api,
                         allow_patterns=[SNAPSHOT_NAME])

    def push_to_hub(self) -> Any:
        self.snapshot()
        return super().push_to_hub()

    def snapshot(self) -> bool:
        """Write the database's current state to the folder; False when nothing changed."""
        with self._snapshot_lock:
            stamp = tuple(p.stat().st_mtime_ns for p in (self.database,
                                                         Path(f"{self.database}-wal")) if p.exists())
            if not stamp or stamp == self._snapshot_of:
                return False
            target = self.folder_path / SNAPSHOT_NAME
            partial = target.with_suffix(".partial")
            # Not mode=ro: reading a WAL database needs its shared-memory file, which ro
            # cannot create; the connection only reads.
            with closing(sqlite3.connect(self.database)) as source, \
                    closing(sqlite3.connect(partial)) as copy:
                source.backup(copy)
            os.replace(partial, target)
            self._snapshot_of = stamp
            return True


def start_reviews_backup(database: Path, env: Mapping[str, str] | None = None,
                         hf_api: Any = None) -> ReviewsBackup | None:
    """The backup when `MEDCAP_REVIEWS_REPO` is set, else None."""
    env = os.environ if env is None else env
    repo_id = env.get("MEDCAP_REVIEWS_REPO", "").strip()
    if not repo_id:
        return None
    try:
        every = float(env.get("MEDCAP_REVIEWS_EVERY") or 10)
    except ValueError:
        raise ValueError(f"MEDCAP_REVIEWS_EVERY must be a number of minutes, not "
                         f"{env['MEDCAP_REVIEWS_EVERY']!r}.") from None
    folder = Path(database).parent / ".reviews-backup"
    return ReviewsBackup(Path(database), repo_id, folder, every=every, hf_api=hf_api,
                         token=env.get("HF_TOKEN") or None)
