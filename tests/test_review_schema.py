"""Schema v2: a reviews.sqlite written by the v1 store opens in place and keeps every review."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from medcap.review import ReviewInput, ReviewKey, ReviewStore, ReviewValidationError
from medcap.review.store import SCHEMA_VERSION

V1_DUMP = Path(__file__).parent / "support" / "reviews_v1.sql"


@pytest.fixture()
def v1_file(tmp_path: Path) -> Path:
    path = tmp_path / "reviews.sqlite"
    with sqlite3.connect(path) as conn:
        conn.executescript(V1_DUMP.read_text(encoding="utf-8"))
    conn.close()
    return path


def test_v1_file_opens_keeps_reviews_and_history(v1_file: Path) -> None:
    store = ReviewStore(v1_file)
    with sqlite3.connect(v1_file) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    conn.close()
    latest = store.all_reviews(include_drafts=True)
    assert [(r.key.image_id, r.key.reviewer, r.status, r.version) for r in latest] == [
        ("ROCO_001", "Dr Ada", "draft", 3), ("ROCO_001", "Dr Bo", "final", 1),
        ("ROCO_002", "Dr Bo", "draft", 1)]
    assert all(r.categories == () and r.significant is False for r in latest)
    ada = ReviewKey("roco-test", "ROCO_001", "blip", "Dr Ada")
    assert [(h.version, h.status, h.categories) for h in store.history(ada)] == [
        (1, "final", ()), (2, "final", ()), (3, "draft", ())]


def test_v1_draft_no_longer_hides_the_completed_review(v1_file: Path) -> None:
    """v1 exported nothing for Dr Ada (her draft replaced her final review); v2 exports it."""
    store = ReviewStore(v1_file)
    finals = store.all_reviews()
    assert [(r.key.reviewer, r.verdict, r.version, r.note) for r in finals] == [
        ("Dr Ada", "minor error", 2, "wrong side, small"), ("Dr Bo", "correct", 1, "")]
    assert store.verdict_counts() == {"blip": {"correct": 1, "minor error": 1}}


def test_migrated_file_takes_new_saves_and_reopens(v1_file: Path) -> None:
    ReviewStore(v1_file)
    store = ReviewStore(v1_file)  # second open: nothing left to migrate, nothing duplicated
    ada = ReviewKey("roco-test", "ROCO_001", "blip", "Dr Ada")
    saved = store.save(ReviewInput(key=ada, verdict="major error", categories=("wrong_laterality",),
                                   significant=True, base_version=3))
    assert saved.review.version == 4
    assert store.get(ada).categories == ("wrong_laterality",)
    assert len(store.history(ada)) == 4


def test_a_newer_schema_is_refused_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "reviews.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(ReviewValidationError, match="newer medcap"):
        ReviewStore(path)
