"""Reviews copied to a Hugging Face dataset repo with CommitScheduler, against a local fake hub."""

from __future__ import annotations

import sqlite3
import time
from concurrent.futures import Future
from contextlib import closing
from pathlib import Path
from types import SimpleNamespace

import pytest

from medcap.app.reviews_backup import start_reviews_backup
from medcap.review import ReviewInput, ReviewKey, ReviewStore


class FakeHub:
    """The three HfApi calls CommitScheduler makes, recording each commit's files."""

    def __init__(self) -> None:
        self.repos: list[tuple[str, str, bool]] = []
        self.commits: list[dict[str, bytes]] = []

    def create_repo(self, repo_id, private=None, repo_type=None, exist_ok=False):
        self.repos.append((repo_id, repo_type, private))
        return SimpleNamespace(repo_id=repo_id)

    def run_as_future(self, function) -> Future:
        future: Future = Future()
        future.set_result(function())
        return future

    def create_commit(self, repo_id, repo_type, operations, commit_message, revision=None):
        self.commits.append({op.path_in_repo: op.path_or_fileobj.read() for op in operations})
        return SimpleNamespace(oid=str(len(self.commits)))


def _reviewers(snapshot: bytes, where: Path) -> list[str]:
    where.write_bytes(snapshot)
    with closing(sqlite3.connect(where)) as conn:
        return sorted(r[0] for r in conn.execute("SELECT DISTINCT reviewer FROM reviews"))


def _save(store: ReviewStore, reviewer: str) -> None:
    store.save(ReviewInput(key=ReviewKey("demo", "img-1", "blip", reviewer), verdict="correct"))


def test_reviews_reach_the_dataset_repo_and_unchanged_ones_are_not_recommitted(tmp_path) -> None:
    database = tmp_path / "data" / "reviews.sqlite"
    database.parent.mkdir()
    store = ReviewStore(database)
    _save(store, "Dr Ada")
    hub = FakeHub()
    backup = start_reviews_backup(database, {"MEDCAP_REVIEWS_REPO": "lab/medcap-reviews",
                                             "MEDCAP_REVIEWS_EVERY": "60"}, hf_api=hub)
    try:
        deadline = time.monotonic() + 30
        while not hasattr(backup, "last_future"):  # the timer thread's first push, at start
            assert time.monotonic() < deadline
            time.sleep(0.05)
        backup.trigger().result()
        assert hub.repos == [("lab/medcap-reviews", "dataset", True)]
        assert len(hub.commits) == 1 and list(hub.commits[0]) == ["reviews/reviews.sqlite"]
        assert _reviewers(hub.commits[0]["reviews/reviews.sqlite"], tmp_path / "a") == ["Dr Ada"]
        _save(store, "Dr Bo")
        backup.trigger().result()
        assert len(hub.commits) == 2
        assert _reviewers(hub.commits[1]["reviews/reviews.sqlite"], tmp_path / "b") == [
            "Dr Ada", "Dr Bo"]
        backup.trigger().result()
        assert len(hub.commits) == 2, "an unchanged database is not committed again"
    finally:
        backup.stop()


def test_no_repo_no_backup_and_a_bad_interval_is_named(tmp_path) -> None:
    assert start_reviews_backup(tmp_path / "r.sqlite", {}) is None
    with pytest.raises(ValueError, match="MEDCAP_REVIEWS_EVERY must be a number of minutes"):
        start_reviews_backup(tmp_path / "r.sqlite", {"MEDCAP_REVIEWS_REPO": "a/b",
                                                     "MEDCAP_REVIEWS_EVERY": "soon"})
