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
import re
import sqlite3
import threading
import time
from contextlib import closing, contextmanager
from dataclasses import dataclass
from functools import lru_cache
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from medcap.review.categories import DEFAULT_CATEGORIES, ErrorCategory
from medcap.review.records import (
    PREFERENCE_CHOICES,
    STATUS_DRAFT,
    STATUS_FINAL,
    VERDICTS,
    Preference,
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

SCHEMA_VERSION = 2
"""v1: reviews + history. v2 (added in place by `_migrate`): categories and the significant flag,
the latest final version kept beside the latest draft (``final_*``), preferences, assignments."""

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
CREATE TABLE IF NOT EXISTS preferences (
    id           INTEGER PRIMARY KEY,
    dataset      TEXT NOT NULL,
    image_id     TEXT NOT NULL,
    model_a      TEXT NOT NULL,
    model_b      TEXT NOT NULL,
    reviewer     TEXT NOT NULL,
    reviewer_key TEXT NOT NULL,
    choice       TEXT NOT NULL,
    saved_at     TEXT NOT NULL,
    UNIQUE (dataset, image_id, model_a, model_b, reviewer_key)
);
CREATE TABLE IF NOT EXISTS assignments (
    id           INTEGER PRIMARY KEY,
    dataset      TEXT NOT NULL,
    image_id     TEXT NOT NULL,
    reviewer     TEXT NOT NULL,
    reviewer_key TEXT NOT NULL,
    assigned_at  TEXT NOT NULL,
    UNIQUE (dataset, image_id, reviewer_key)
)
"""

# Columns v2 adds to v1 tables (ALTER TABLE ADD COLUMN keeps every existing row).
_V2_COLUMNS: dict[str, tuple[str, ...]] = {
    "reviews": (
        "categories_json TEXT NOT NULL DEFAULT '[]'",
        "significant INTEGER NOT NULL DEFAULT 0",
        "final_verdict TEXT",
        "final_corrected_caption TEXT",
        "final_note TEXT",
        "final_categories_json TEXT",
        "final_significant INTEGER",
        "final_version INTEGER",
        "final_at TEXT",
    ),
    "review_history": (
        "categories_json TEXT NOT NULL DEFAULT '[]'",
        "significant INTEGER NOT NULL DEFAULT 0",
    ),
}

_V2_INDEXES = (
    "CREATE INDEX IF NOT EXISTS reviews_by_reviewer ON reviews (dataset, reviewer_key)",
    "CREATE INDEX IF NOT EXISTS assignments_by_reviewer ON assignments (dataset, reviewer_key)",
)

# v1 rows: a final row is its own final version; a draft saved over a final one (which v1 hid
# from exports) gets that final version back from its history.
_V2_BACKFILL = (
    """UPDATE reviews SET final_verdict = verdict, final_corrected_caption = corrected_caption,
       final_note = note, final_categories_json = categories_json, final_significant = significant,
       final_version = version, final_at = updated_at
       WHERE status = 'final' AND final_version IS NULL""",
    """UPDATE reviews SET (final_verdict, final_corrected_caption, final_note, final_version,
       final_at) = (SELECT h.verdict, h.corrected_caption, h.note, h.version, h.saved_at
                    FROM review_history h WHERE h.review_id = reviews.id AND h.status = 'final'
                    ORDER BY h.version DESC LIMIT 1),
       final_categories_json = '[]', final_significant = 0
       WHERE status = 'draft' AND final_version IS NULL AND EXISTS (
           SELECT 1 FROM review_history h WHERE h.review_id = reviews.id AND h.status = 'final')""",
)

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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


def reviewer_key(name: str | None) -> str:
    """The identity of a reviewer: normalised and case-folded ("Dr Ada" is "dr  ada")."""
    return normalize_reviewer(name).casefold()


_reviewer_key = reviewer_key

_FILE_LOCKS: dict[str, threading.Lock] = {}
_FILE_LOCKS_GUARD = threading.Lock()


def _file_lock(path: Path) -> threading.Lock:
    """One lock per database file, shared by every ReviewStore object of this process."""
    name = str(path.resolve())
    with _FILE_LOCKS_GUARD:
        return _FILE_LOCKS.setdefault(name, threading.Lock())

_FINAL_WHERE = "final_version IS NOT NULL"


class ReviewStore:
    """Reviews of model captions, kept in one SQLite file."""

    def __init__(
        self,
        path: str | Path,
        *,
        limits: ReviewLimits = ReviewLimits(),
        options: StoreOptions = StoreOptions(),
        clock: Callable[[], str] = utc_now,
        categories: Sequence[ErrorCategory] = DEFAULT_CATEGORIES,
    ):
        self.path = Path(path)
        self.limits = limits
        self.options = options
        self.categories = tuple(categories)
        self._category_keys = tuple(c.key for c in self.categories)
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
        """BEGIN IMMEDIATE takes the write lock up front, making check-then-write atomic.

        Writers of this process queue on a per-file thread lock first: a waiting thread wakes
        the moment the previous save commits, instead of polling in SQLite's busy handler (whose
        sleeps grow to 100 ms and made p95 under 20 concurrent reviewers several times p50)."""
        with _file_lock(self.path), closing(self._connect()) as conn:
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
                found = conn.execute("PRAGMA user_version").fetchone()[0]
                if found > SCHEMA_VERSION:
                    raise ReviewValidationError(
                        f"{self.path} was written by a newer medcap (review schema {found}; "
                        f"this version reads up to {SCHEMA_VERSION}). Upgrade medcap.")
                for statement in _SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                _migrate(conn)
                conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- validation --------------------------------------------------------------------------

    def _checked_key(self, dataset: object, image_id: object, model: object,
                     reviewer: str | None) -> ReviewKey:
        """Bounded, printable keys: a key is an id, never a payload (#15)."""
        name = self._checked_reviewer(reviewer)
        parts = [self._checked_id(label, value) for label, value in (
            ("dataset", dataset), ("image id", image_id), ("model", model))]
        return ReviewKey(dataset=parts[0], image_id=parts[1], model=parts[2], reviewer=name)

    def _checked_reviewer(self, reviewer: str | None) -> str:
        name = normalize_reviewer(reviewer)
        if not name:
            raise ReviewValidationError("Enter your name before saving a review.")
        _check_printable("reviewer name", str(reviewer))
        if len(name) > self.limits.max_reviewer_chars:
            raise ReviewValidationError(
                f"Reviewer name is too long ({len(name)} characters; "
                f"at most {self.limits.max_reviewer_chars})."
            )
        return name

    def _checked_id(self, label: str, value: object) -> str:
        text = "" if value is None else str(value)
        if not text.strip():
            raise ReviewValidationError(f"Cannot save: no {label} is selected.")
        if len(text) > self.limits.max_key_chars:
            raise ReviewValidationError(
                f"Cannot save: the {label} is too long ({len(text)} characters; "
                f"at most {self.limits.max_key_chars}).")
        _check_printable(label, text)
        return text

    def _checked_categories(self, categories: Iterable[str]) -> tuple[str, ...]:
        """Known keys only, each once, in the configured order (so exports and history agree)."""
        if isinstance(categories, str):  # one key from a form field, not its letters
            categories = (categories,) if categories else ()
        chosen = {str(c) for c in (categories or ())}
        unknown = sorted(chosen - set(self._category_keys))
        if unknown:
            raise ReviewValidationError(
                f"Unknown error categor{'y' if len(unknown) == 1 else 'ies'} "
                f"{', '.join(repr(u[:40]) for u in unknown[:5])}; choose from: "
                f"{', '.join(self._category_keys)}.")
        return tuple(k for k in self._category_keys if k in chosen)

    def check(self, request: ReviewInput) -> None:
        """Raise `ReviewValidationError` if `save` would refuse `request` for its content (bounds,
        printable keys, known verdict and categories), without writing: lets an importer check
        every row before it saves any. Version conflicts are not checked (they depend on the
        moment of saving)."""
        self._validated(request)
        self._checked_categories(request.categories)

    def _validated(self, request: ReviewInput) -> tuple[ReviewKey, str | None, str, str]:
        key = self._checked_key(request.key.dataset, request.key.image_id, request.key.model,
                                request.key.reviewer)
        verdict = (request.verdict or "").strip() or None
        if verdict is not None and verdict not in VERDICTS:
            raise ReviewValidationError(
                f"Unknown verdict {verdict[:40]!r}; choose one of: {', '.join(VERDICTS)}."
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
        if "\0" in corrected or "\0" in note:
            raise ReviewValidationError("The corrected caption or note contains a NUL character.")
        if verdict is None and not corrected and not note and not request.categories:
            raise ReviewValidationError(
                "Nothing to save: choose a verdict, or enter a corrected caption or a note."
            )
        return key, verdict, corrected, note

    # -- writes ------------------------------------------------------------------------------

    def save(self, request: ReviewInput) -> SaveOutcome:
        """Store a new version of a review, or refuse with `ReviewConflict` if it is stale.

        Raises `ReviewValidationError` when the input cannot be saved; a missing verdict is not
        an error but makes the review a draft, and the message says so. A draft never replaces
        the reviewer's last final version in exports and counts (``final_*`` columns).
        """
        key, verdict, corrected, note = self._validated(request)
        categories = self._checked_categories(request.categories)
        significant = 1 if request.significant else 0
        categories_json = json.dumps(list(categories))
        status = STATUS_FINAL if verdict else STATUS_DRAFT
        context = request.context
        scores_json = json.dumps(_clean_scores(context.scores), sort_keys=True)
        now = self._clock()
        with self._write_transaction() as conn:
            row = conn.execute(
                "SELECT * FROM reviews WHERE dataset=? AND image_id=? AND model=? AND reviewer_key=?",
                (key.dataset, key.image_id, key.model, reviewer_key(key.reviewer)),
            ).fetchone()
            current_version = row["version"] if row else 0
            if request.base_version != current_version:
                if row is None:
                    raise ReviewValidationError(
                        f"Cannot save: you were editing version {request.base_version} of a "
                        "review that no longer exists. Reload the item."
                    )
                raise ReviewConflict(_review_from_row(row), request.base_version)
            if row is not None and (row["verdict"], row["corrected_caption"], row["note"],
                                    row["categories_json"], row["significant"]) == (
                verdict, corrected, note, categories_json, significant
            ):
                return SaveOutcome(_review_from_row(row), "No changes to save.")
            version = current_version + 1
            values = dict(reviewer=key.reviewer, verdict=verdict, corrected_caption=corrected,
                          note=note, status=status, version=version,
                          generated_caption=context.generated_caption,
                          ground_truth=context.ground_truth, modality=context.modality,
                          scores_json=scores_json, categories_json=categories_json,
                          significant=significant, updated_at=now)
            if status == STATUS_FINAL:
                values.update(final_verdict=verdict, final_corrected_caption=corrected,
                              final_note=note, final_categories_json=categories_json,
                              final_significant=significant, final_version=version, final_at=now)
            if row is None:
                values.update(dataset=key.dataset, image_id=key.image_id, model=key.model,
                              reviewer_key=reviewer_key(key.reviewer), created_at=now)
                names = ", ".join(values)
                cursor = conn.execute(
                    f"INSERT INTO reviews ({names}) VALUES ({', '.join('?' * len(values))})",
                    tuple(values.values()))
                review_id = cursor.lastrowid
            else:
                review_id = row["id"]
                assignments = ", ".join(f"{name}=?" for name in values)
                conn.execute(f"UPDATE reviews SET {assignments} WHERE id=?",
                             (*values.values(), review_id))
            conn.execute(
                "INSERT INTO review_history (review_id, version, reviewer, verdict,"
                " corrected_caption, note, status, generated_caption, saved_at, categories_json,"
                " significant) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (review_id, version, key.reviewer, verdict, corrected, note, status,
                 context.generated_caption, now, categories_json, significant),
            )
            saved = conn.execute("SELECT * FROM reviews WHERE id=?", (review_id,)).fetchone()
        review = _review_from_row(saved)
        if review.is_draft:
            kept = (f" Your completed version {saved['final_version']} stays in exports and counts."
                    if saved["final_version"] else " Drafts are not counted or exported.")
            message = (f"Saved as a draft (version {version}): choose a verdict to complete "
                       f"this review.{kept}")
        else:
            message = f"Saved: {verdict} (version {version}, {now})."
        return SaveOutcome(review, message)

    def save_preference(self, dataset: str, image_id: str, model_a: str, model_b: str,
                        reviewer: str, choice: str) -> Preference:
        """Store (or replace) one reviewer's pairwise judgement of two captions of one image."""
        key_a = self._checked_key(dataset, image_id, model_a, reviewer)
        key_b = self._checked_key(dataset, image_id, model_b, reviewer)
        if choice not in PREFERENCE_CHOICES:
            raise ReviewValidationError(
                f"Unknown preference {str(choice)[:40]!r}; choose one of: "
                f"{', '.join(PREFERENCE_CHOICES)}.")
        if key_a.model == key_b.model:
            raise ReviewValidationError("A preference compares two different models.")
        first, second = key_a.model, key_b.model
        if first > second:
            first, second = second, first
            choice = {"A better": "B better", "B better": "A better"}.get(choice, choice)
        now = self._clock()
        with self._write_transaction() as conn:
            conn.execute(
                "INSERT INTO preferences (dataset, image_id, model_a, model_b, reviewer,"
                " reviewer_key, choice, saved_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
                " ON CONFLICT (dataset, image_id, model_a, model_b, reviewer_key) DO UPDATE SET"
                " reviewer = excluded.reviewer, choice = excluded.choice,"
                " saved_at = excluded.saved_at",
                (key_a.dataset, key_a.image_id, first, second, key_a.reviewer,
                 reviewer_key(key_a.reviewer), choice, now))
        return Preference(key_a.dataset, key_a.image_id, first, second, key_a.reviewer, choice, now)

    def assign(self, dataset: str, image_id: str, reviewer: str, *,
               limit: int | None = None) -> bool:
        """Assign an item to a reviewer (idempotent). With ``limit``, only while fewer than
        ``limit`` reviewers hold it, checked under the write lock so k is never exceeded.
        True when the reviewer holds the item afterwards."""
        name = self._checked_reviewer(reviewer)
        dataset = self._checked_id("dataset", dataset)
        image_id = self._checked_id("image id", image_id)
        who = reviewer_key(name)
        with self._write_transaction() as conn:
            holders = {row[0] for row in conn.execute(
                "SELECT reviewer_key FROM assignments WHERE dataset=? AND image_id=?",
                (dataset, image_id))}
            if who in holders:
                return True
            if limit is not None and len(holders) >= limit:
                return False
            conn.execute(
                "INSERT INTO assignments (dataset, image_id, reviewer, reviewer_key, assigned_at)"
                " VALUES (?, ?, ?, ?, ?)", (dataset, image_id, name, who, self._clock()))
        return True

    # -- reads -------------------------------------------------------------------------------

    def get(self, key: ReviewKey) -> Review | None:
        """The reviewer's latest review of this caption (a draft included), or None."""
        if not normalize_reviewer(key.reviewer):
            return None
        with closing(self._connect()) as conn:
            row = conn.execute(
                "SELECT * FROM reviews WHERE dataset=? AND image_id=? AND model=? AND reviewer_key=?",
                (str(key.dataset), str(key.image_id), str(key.model), reviewer_key(key.reviewer)),
            ).fetchone()
        return _review_from_row(row) if row else None

    def reviews_for_item(self, dataset: str, image_id: str) -> list[Review]:
        """Every reviewer's latest review of every model's caption for one image (drafts too)."""
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
                (str(key.dataset), str(key.image_id), str(key.model), reviewer_key(key.reviewer)),
            ).fetchall()
        return [
            ReviewRevision(version=row["version"], verdict=row["verdict"],
                           corrected_caption=row["corrected_caption"], note=row["note"],
                           status=row["status"], saved_at=row["saved_at"],
                           categories=_categories(row["categories_json"]),
                           significant=bool(row["significant"]))
            for row in rows
        ]

    def iter_reviews(self, dataset: str | None = None,
                     include_drafts: bool = False) -> Iterator[Review]:
        """Reviews in a stable order (dataset, image, model, reviewer), read as they are used.

        Without drafts, each review is its latest FINAL version (a later draft does not hide
        it); with drafts, each review is its latest version, whatever its status."""
        where = [] if include_drafts else [_FINAL_WHERE]
        params: list[str] = []
        if dataset is not None:
            where.append("dataset = ?")
            params.append(str(dataset))
        clause = f"WHERE {' AND '.join(where)}" if where else ""
        build = _review_from_row if include_drafts else _final_review_from_row
        with closing(self._connect()) as conn:
            cursor = conn.execute(
                f"SELECT * FROM reviews {clause} ORDER BY dataset, image_id, model, reviewer_key",
                params)
            for row in cursor:
                yield build(row)

    def all_reviews(self, dataset: str | None = None, *, include_drafts: bool = False) -> list[Review]:
        """`iter_reviews` as a list (small stores, tests)."""
        return list(self.iter_reviews(dataset, include_drafts=include_drafts))

    def count(self, dataset: str | None = None, *, include_drafts: bool = False) -> int:
        """How many reviews `iter_reviews` would yield."""
        where = "" if include_drafts else f"WHERE {_FINAL_WHERE}"
        params: list[str] = []
        if dataset is not None:
            where += (" AND " if where else "WHERE ") + "dataset = ?"
            params.append(str(dataset))
        with closing(self._connect()) as conn:
            return conn.execute(f"SELECT COUNT(*) FROM reviews {where}", params).fetchone()[0]

    def score_names(self, dataset: str | None = None) -> set[str]:
        """Every score name stored with a final review (the export's score columns)."""
        where, params = f"WHERE {_FINAL_WHERE}", []
        if dataset is not None:
            where += " AND dataset = ?"
            params.append(str(dataset))
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT DISTINCT j.key FROM reviews, json_each(reviews.scores_json) AS j {where}",
                params).fetchall()
        return {row[0] for row in rows}

    def item_verdicts(self, dataset: str, image_id: str, model: str) -> str:
        """The final verdicts of one caption joined with '; ' (what the evaluation table shows);
        one indexed lookup, so the app can refresh one row after a save."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT DISTINCT final_verdict FROM reviews WHERE dataset=? AND image_id=?"
                f" AND model=? AND {_FINAL_WHERE}",
                (str(dataset), str(image_id), str(model))).fetchall()
        return "; ".join(sorted(row[0] for row in rows if row[0]))

    def verdict_counts(self, dataset: str | None = None) -> dict[str, dict[str, int]]:
        """model -> verdict -> number of final reviews, for the evaluation summary."""
        params: list[str] = []
        where = f"WHERE {_FINAL_WHERE}"
        if dataset is not None:
            where += " AND dataset = ?"
            params.append(dataset)
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT model, final_verdict AS verdict, COUNT(*) AS n FROM reviews {where}"
                " GROUP BY model, final_verdict",
                params,
            ).fetchall()
        counts: dict[str, dict[str, int]] = {}
        for row in rows:
            counts.setdefault(row["model"], {})[row["verdict"]] = row["n"]
        return counts

    def preferences(self, dataset: str | None = None) -> list[Preference]:
        """Pairwise judgements, in a stable order (dataset, image, pair, reviewer)."""
        where, params = ("WHERE dataset = ?", [str(dataset)]) if dataset is not None else ("", [])
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT * FROM preferences {where}"
                " ORDER BY dataset, image_id, model_a, model_b, reviewer_key", params).fetchall()
        return [Preference(r["dataset"], r["image_id"], r["model_a"], r["model_b"], r["reviewer"],
                           r["choice"], r["saved_at"]) for r in rows]

    def assignments(self, dataset: str) -> dict[str, set[str]]:
        """image_id -> keys of the reviewers it is assigned to (see `reviewer_key`)."""
        result: dict[str, set[str]] = {}
        with closing(self._connect()) as conn:
            for row in conn.execute(
                    "SELECT image_id, reviewer_key FROM assignments WHERE dataset=?",
                    (str(dataset),)):
                result.setdefault(row[0], set()).add(row[1])
        return result

    def done_items(self, dataset: str, reviewer: str) -> set[str]:
        """Items the reviewer has finished: a final review of any model, or a preference."""
        who = reviewer_key(reviewer)
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT image_id FROM reviews WHERE dataset=? AND reviewer_key=? AND {_FINAL_WHERE}"
                " UNION SELECT image_id FROM preferences WHERE dataset=? AND reviewer_key=?",
                (str(dataset), who, str(dataset), who)).fetchall()
        return {row[0] for row in rows}

    def final_reviews_for_item(self, dataset: str, image_id: str) -> list[Review]:
        """Every review of one image as its latest FINAL version (one indexed lookup): what the
        evaluation table's verdict and category cells of that image are made of."""
        with closing(self._connect()) as conn:
            rows = conn.execute(
                f"SELECT * FROM reviews WHERE dataset=? AND image_id=? AND {_FINAL_WHERE}"
                " ORDER BY model, reviewer_key", (str(dataset), str(image_id))).fetchall()
        return [_final_review_from_row(row) for row in rows]


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring a v1 file (or a new one) to v2 in place; adding columns keeps every review."""
    added = False
    for table, columns in _V2_COLUMNS.items():
        present = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
        for column in columns:
            if column.split()[0] not in present:
                conn.execute(f"ALTER TABLE {table} ADD COLUMN {column}")
                added = True
    for statement in _V2_INDEXES:
        conn.execute(statement)
    if added:
        for statement in _V2_BACKFILL:
            conn.execute(statement)


def _check_printable(label: str, text: str) -> None:
    if _CONTROL.search(text):
        raise ReviewValidationError(
            f"Cannot save: the {label} contains a control character or a line break.")


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


@lru_cache(maxsize=4096)
def _categories(text: str | None) -> tuple[str, ...]:
    """Parsed once per distinct list: a store holds few distinct category combinations."""
    return tuple(json.loads(text or "[]"))


def _context(row: sqlite3.Row) -> ReviewContext:
    return ReviewContext(
        generated_caption=row["generated_caption"], ground_truth=row["ground_truth"],
        modality=row["modality"], scores=json.loads(row["scores_json"] or "{}"),
    )


def _key(row: sqlite3.Row) -> ReviewKey:
    return ReviewKey(dataset=row["dataset"], image_id=row["image_id"], model=row["model"],
                     reviewer=row["reviewer"])


def _review_from_row(row: sqlite3.Row) -> Review:
    """The latest version of a review, draft or final."""
    return Review(
        key=_key(row), verdict=row["verdict"], corrected_caption=row["corrected_caption"],
        note=row["note"], status=row["status"], version=row["version"],
        created_at=row["created_at"], updated_at=row["updated_at"], context=_context(row),
        categories=_categories(row["categories_json"]), significant=bool(row["significant"]),
    )


def _final_review_from_row(row: sqlite3.Row) -> Review:
    """The latest FINAL version of a review (what exports and counts use)."""
    return Review(
        key=_key(row), verdict=row["final_verdict"],
        corrected_caption=row["final_corrected_caption"] or "", note=row["final_note"] or "",
        status=STATUS_FINAL, version=row["final_version"], created_at=row["created_at"],
        updated_at=row["final_at"], context=_context(row),
        categories=_categories(row["final_categories_json"]),
        significant=bool(row["final_significant"]),
    )
