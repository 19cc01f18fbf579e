"""SQLite review storage with edit history and optimistic concurrency.

Why this shape:
- one connection per operation, so Gradio's worker threads never share a connection;
- every save runs in ``BEGIN IMMEDIATE``: the version check and the write happen under the
  database write lock, so two saves based on the same version cannot both succeed;
- each save appends the full new state to ``review_history``; nothing is ever updated in place
  without a history row, so an earlier version can always be shown again;
- a review without a verdict is kept as a *draft* (the reviewer's text is not lost), and is left
  out of verdict counts and exports until a verdict is chosen.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterator, Mapping

from medcap.review.records import (
    STATUS_DRAFT,
    STATUS_FINAL,
    VERDICTS,
    Review,
    ReviewConflict,
    ReviewContext,
    ReviewInput,
    ReviewKey,
    ReviewLimits,
    ReviewRevision,
    ReviewValidationError,
    SaveOutcome,
)

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS reviews (
    id                INTEGER PRIMARY KEY,
    dataset           TEXT NOT NULL,
    image_id          TEXT NOT NULL,
    model             TEXT NOT NULL,
    reviewer          TEXT NOT NULL,
    reviewer_key      TEXT NOT NULL,
    verdict           TEXT,
    corrected_caption TEXT NOT NULL DEFAULT '',
    note              TEXT NOT NULL DEFAULT '',
    status            TEXT NOT NULL CHECK (status IN ('draft', 'final')),
    version           INTEGER NOT NULL CHECK (version >= 1),
    generated_caption TEXT NOT NULL DEFAULT '',
    ground_truth      TEXT NOT NULL DEFAULT '',
    modality          TEXT NOT NULL DEFAULT '',
    scores_json       TEXT NOT NULL DEFAULT '{}',
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL,
    UNIQUE (dataset, image_id, model, reviewer_key)
);
CREATE INDEX IF NOT EXISTS reviews_by_item ON reviews (dataset, image_id);
CREATE TABLE IF NOT EXISTS review_history (
    id                INTEGER PRIMARY KEY,
    review_id         INTEGER NOT NULL REFERENCES reviews (id),
    version           INTEGER NOT NULL,
    reviewer          TEXT NOT NULL,
    verdict           TEXT,
    corrected_caption TEXT NOT NULL,
    note              TEXT NOT NULL,
    status            TEXT NOT NULL,
    generated_caption TEXT NOT NULL,
    saved_at          TEXT NOT NULL,
    UNIQUE (review_id, version)
);
"""


def utc_now() -> str:
    """Second-resolution UTC timestamp, readable in a spreadsheet and sortable as text."""
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class StoreOptions:
    """Connection behaviour; the busy timeout is how long a save waits for another writer."""

    busy_timeout_s: float = 10.0
    journal_mode: str = "wal"


def normalize_reviewer(name: str | None) -> str:
    """Collapse whitespace so "Dr  Smith " and "Dr Smith" are one reviewer."""
    return " ".join((name or "").split())


def _reviewer_key(name: str) -> str:
    return normalize_reviewer(name).casefold()


class ReviewStore:
    """Reviews of model captions, kept in one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        limits: ReviewLimits = ReviewLimits(),
        options: StoreOptions = StoreOptions(),
        clock: Callable[[], str] = utc_now,
    ):
        self.path = Path(path)
        self.limits = limits
        self.options = options
        self._clock = clock
        self._init_lock = threading.Lock()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._create_schema()

    # -- connections -------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(
            self.path, timeout=self.options.busy_timeout_s, isolation_level=None,
            check_same_thread=False,
        )
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA foreign_keys = ON")
        return conn

    @contextmanager
    def _write_transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE takes the write lock up front, making check-then-write atomic."""
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _create_schema(self) -> None:
        """Create tables once. Switching to WAL needs a moment of exclusive access and does not
        wait on SQLite's busy handler, so several stores opening a new file at once retry here."""
        deadline = time.monotonic() + self.options.busy_timeout_s
        with self._init_lock:
            while True:
                try:
                    self._create_schema_once()
                    return
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.02)

    def _create_schema_once(self) -> None:
        with closing(self._connect()) as conn:
            mode = conn.execute("PRAGMA journal_mode").fetchone()[0]
            if mode.lower() != self.options.journal_mode.lower():
                conn.execute(f"PRAGMA journal_mode = {self.options.journal_mode}")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- validation --------------------------------------------------------------------------

    def _validated(self, request: ReviewInput) -> tuple[ReviewKey, str | None, str, str]:
        reviewer = normalize_reviewer(request.key.reviewer)
        if not reviewer:
            raise ReviewValidationError("Enter your name before saving a review.")
        if len(reviewer) > self.limits.max_reviewer_chars:
            raise ReviewValidationError(
                f"Reviewer name is too long ({len(reviewer)} characters; "
                f"at most {self.limits.max_reviewer_chars})."
            )
        for part, value in (("dataset", request.key.dataset), ("image id", request.key.image_id),
                            ("model", request.key.model)):
            if not str(value or "").strip():
                raise ReviewValidationError(f"Cannot save: no {part} is selected.")
        verdict = (request.verdict or "").strip() or None
        if verdict is not None and verdict not in VERDICTS:
            raise ReviewValidationError(
                f"Unknown verdict {verdict!r}; choose one of: {', '.join(VERDICTS)}."
            )
        corrected = (request.corrected_caption or "").strip()
        note = (request.note or "").strip()
        if len(corrected) > self.limits.max_caption_chars:
            raise ReviewValidationError(
                f"Corrected caption is too long ({len(corrected)} characters; "
                f"at most {self.limits.max_caption_chars})."
            )
        if len(note) > self.limits.max_note_chars:
            raise ReviewValidationError(
                f"Note is too long ({len(note)} characters; at most {self.limits.max_note_chars})."
            )
        if verdict is None and not corrected and not note:
            raise ReviewValidationError(
                "Nothing to save: choose a verdict, or enter a corrected caption or a note."
            )
        key = ReviewKey(
            dataset=str(request.key.dataset), image_id=str(request.key.image_id),
            model=str(request.key.model), reviewer=reviewer,
        )
        return key, verdict, corrected, note

    # -- writes ------------------------------------------------------------------------------

    def save(self, request: ReviewInput) -> SaveOutcome:
        """Store a new version of a review, or refuse with `ReviewConflict` if it is stale.

        Raises `ReviewValidationError` when the input cannot be saved; a missing verdict is not
        an error but makes the review a draft, and the message says so.
        """
        key, verdict, corrected, note = self._validated(request)
        status = STATUS_FINAL if verdict else STATUS_DRAFT
        context = request.context
        scores_json = json.dumps(_clean_scores(context.scores), sort_keys=True)
        now = self._clock()
        with self._write_transaction() as conn:
            row = conn.execute(
                "SELECT * FROM reviews WHERE dataset=? AND image_id=? AND model=? AND reviewer_key=?",
                (key.dataset, key.image_id, key.model, _reviewer_key(key.reviewer)),
            ).fetchone()
            current_version = row["version"] if row else 0
            if request.base_version != current_version:
                if row is None:
                    raise ReviewValidationError(
                        f"Cannot save: you were editing version {request.base_version} of a "
                        "review that no longer exists. Reload the item."
                    )
                raise ReviewConflict(_review_from_row(row), request.base_version)
            if row is not None and (row["verdict"], row["corrected_caption"], row["note"]) == (
                verdict, corrected, note
            ):
                return SaveOutcome(_review_from_row(row), "No changes to save.")
            version = current_version + 1
            if row is None:
                cursor = conn.execute(
                    "INSERT INTO reviews (dataset, image_id, model, reviewer, reviewer_key, verdict,"
                    " corrected_caption, note, status, version, generated_caption, ground_truth,"
                    " modality, scores_json, created_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (key.dataset, key.image_id, key.model, key.reviewer, _reviewer_key(key.reviewer),
                     verdict, corrected, note, status, version, context.generated_caption,
                     context.ground_truth, context.modality, scores_json, now, now),
                )
                review_id = cursor.lastrowid
            else:
                review_id = row["id"]
                conn.execute(
                    "UPDATE reviews SET reviewer=?, verdict=?, corrected_caption=?, note=?,"
                    " status=?, version=?, generated_caption=?, ground_truth=?, modality=?,"
                    " scores_json=?, updated_at=? WHERE id=?",
                    (key.reviewer, verdict, corrected, note, status, version,
                     context.generated_caption, context.ground_truth, context.modality,
                     scores_json, now, review_id),
                )
            conn.execute(
                "INSERT INTO review_history (review_id, version, reviewer, verdict,"
                " corrected_caption, note, status, generated_caption, saved_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (review_id, version, key.reviewer, verdict, corrected, note, status,
                 context.generated_caption, now),
            )
            saved = conn.execute("SELECT * FROM reviews WHERE id=?", (review_id,)).fetchone()
        review = _review_from_row(saved)
        if review.is_draft:
            message = (f"Saved as a draft (version {version}): choose a verdict to complete "
                       "this review. Drafts are not counted or exported.")
        else:
            message = f"Saved: {verdict} (version {version}, {now})."
        return SaveOutcome(review, message)

    # -- reads -------------------------------------------------------------------------------

    def get(self, key: ReviewKey) -> Review | None:
        """The reviewer's latest review of this caption, or None (also when no name is given)."""
        if not normalize_reviewer(key.reviewer):
            return None
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT * FROM reviews WHERE dataset=? AND image_id=? AND model=? AND reviewer_key=?",
                (str(key.dataset), str(key.image_id), str(key.model), _reviewer_key(key.reviewer)),
            ).fetchone()
        return _review_from_row(row) if row else None

    def reviews_for_item(self, dataset: str, image_id: str) -> list[Review]:
        """Every reviewer's review of every model's caption for one image (drafts included)."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT * FROM reviews WHERE dataset=? AND image_id=? ORDER BY model, reviewer_key",
                (str(dataset), str(image_id)),
            ).fetchall()
        return [_review_from_row(row) for row in rows]

    def history(self, key: ReviewKey) -> list[ReviewRevision]:
        """All saved versions of one review, oldest first."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                "SELECT h.* FROM review_history h JOIN reviews r ON r.id = h.review_id"
                " WHERE r.dataset=? AND r.image_id=? AND r.model=? AND r.reviewer_key=?"
                " ORDER BY h.version",
                (str(key.dataset), str(key.image_id), str(key.model), _reviewer_key(key.reviewer)),
            ).fetchall()
        return [
            ReviewRevision(version=row["version"], verdict=row["verdict"],
                           corrected_caption=row["corrected_caption"], note=row["note"],
                           status=row["status"], saved_at=row["saved_at"])
            for row in rows
        ]

    def all_reviews(self, dataset: str | None = None, *, include_drafts: bool = False) -> list[Review]:
        """Reviews for export, in a stable order (dataset, image, model, reviewer)."""
        clauses, params = [], []
        if dataset is not None:
            clauses.append("dataset = ?")
            params.append(dataset)
        if not include_drafts:
            clauses.append("status = 'final'")
        where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT * FROM reviews {where} ORDER BY dataset, image_id, model, reviewer_key",
                params,
            ).fetchall()
        return [_review_from_row(row) for row in rows]

    def verdict_counts(self, dataset: str | None = None) -> dict[str, dict[str, int]]:
        """model -> verdict -> number of final reviews, for the evaluation summary."""
        params: list[str] = []
        where = "WHERE status = 'final'"
        if dataset is not None:
            where += " AND dataset = ?"
            params.append(dataset)
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT model, verdict, COUNT(*) AS n FROM reviews {where} GROUP BY model, verdict",
                params,
            ).fetchall()
        counts: dict[str, dict[str, int]] = {}
        for row in rows:
            counts.setdefault(row["model"], {})[row["verdict"]] = row["n"]
        return counts


def _clean_scores(scores: Mapping[str, float]) -> dict[str, float]:
    """Keep finite numeric scores only: an unavailable metric is absent, never stored as 0."""
    clean = {}
    for name, value in (scores or {}).items():
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            clean[str(name)] = number
    return clean


def _review_from_row(row: sqlite3.Row) -> Review:
    return Review(
        key=ReviewKey(dataset=row["dataset"], image_id=row["image_id"], model=row["model"],
                      reviewer=row["reviewer"]),
        verdict=row["verdict"],
        corrected_caption=row["corrected_caption"],
        note=row["note"],
        status=row["status"],
        version=row["version"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        context=ReviewContext(
            generated_caption=row["generated_caption"], ground_truth=row["ground_truth"],
            modality=row["modality"], scores=json.loads(row["scores_json"] or "{}"),
        ),
    )
