"""20 concurrent reviewers on a store holding 20,000 reviews: nothing lost, nothing overwritten
silently (#15). Pairs of threads share a reviewer name, like one clinician with two tabs."""

from __future__ import annotations

import threading
from collections import Counter
from pathlib import Path

from benchmarks import bench_reviews  # its prefill writes rows shaped as ReviewStore.save does
from medcap.review import ReviewConflict, ReviewInput, ReviewKey, ReviewStore


def test_concurrent_reviewers_lose_nothing_and_overwrite_nothing(tmp_path: Path) -> None:
    path = tmp_path / "reviews.sqlite"
    bench_reviews.prefill(ReviewStore(path), 20_000)
    acknowledged: list[tuple[ReviewKey, int, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(20)

    def reviewer(thread: int) -> None:
        store = ReviewStore(path)
        barrier.wait()
        for item in range(12):
            key = ReviewKey("bench", f"load_{item:03d}", "blip", f"Dr {thread % 10}")
            current = store.get(key)
            note = f"thread {thread} item {item}"
            try:
                outcome = store.save(ReviewInput(key=key, verdict="minor error", note=note,
                                                 base_version=current.version if current else 0))
            except ReviewConflict:
                continue
            with lock:
                acknowledged.append((key, outcome.review.version, note))

    threads = [threading.Thread(target=reviewer, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    store = ReviewStore(path)
    assert len(acknowledged) >= 120, "each reviewer name saved every item at least once"
    versions = Counter((key, version) for key, version, _ in acknowledged)
    assert max(versions.values()) == 1, "no version was acknowledged to two writers"
    for key, version, note in acknowledged:
        history = {h.version: h.note for h in store.history(key)}
        assert history[version] == note, f"acknowledged save lost: {key} v{version}"
    per_key = Counter(key for key, _, _ in acknowledged)
    for key, count in per_key.items():
        assert len(store.history(key)) == count, "every stored version was acknowledged"
    assert store.count() == 20_000 + len(per_key)
