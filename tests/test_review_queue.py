"""Review queue: k reviewers per item, stable seeded order, per-reviewer blind card order."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from medcap.review import (
    QueueProgress,
    QueueSettings,
    ReviewInput,
    ReviewKey,
    ReviewQueue,
    ReviewStore,
    ReviewValidationError,
    blind_label,
    blind_order,
)

ITEMS = [f"ROCO_{n:03d}" for n in range(1, 7)]


@pytest.fixture()
def store(tmp_path: Path) -> ReviewStore:
    return ReviewStore(tmp_path / "reviews.sqlite")


def finish(store: ReviewStore, item: str, reviewer: str) -> None:
    store.save(ReviewInput(key=ReviewKey("roco", item, "blip", reviewer), verdict="correct"))


def work_through(queue: ReviewQueue, store: ReviewStore, reviewer: str) -> list[str]:
    served = []
    while (item := queue.next_for(reviewer)) is not None:
        assert item not in served, f"{item} served twice to {reviewer}"
        served.append(item)
        finish(store, item, reviewer)
    return served


def test_two_reviewers_get_every_item_once_and_a_third_gets_none(store: ReviewStore) -> None:
    queue = ReviewQueue(store, "roco", ITEMS, QueueSettings(overlap=2, order="id"))
    assert work_through(queue, store, "Dr Ada") == ITEMS
    assert sorted(work_through(queue, store, "Dr Bo")) == ITEMS
    assert queue.next_for("Dr Cy") is None
    assert queue.progress("Dr Ada") == QueueProgress(done=6, assigned=6)
    assert queue.progress("Dr Cy") == QueueProgress(done=0, assigned=0)
    assert all(len(holders) == 2 for holders in store.assignments("roco").values())


def test_pending_item_is_served_again_until_done(store: ReviewStore) -> None:
    queue = ReviewQueue(store, "roco", ITEMS, QueueSettings(order="id"))
    first = queue.next_for("Dr Ada")
    assert queue.next_for("dr  ada") == first, "same reviewer (normalised name), same item"
    assert queue.progress("Dr Ada") == QueueProgress(done=0, assigned=1)
    store.save(ReviewInput(key=ReviewKey("roco", first, "blip", "Dr Ada"), note="draft"))
    assert queue.next_for("Dr Ada") == first, "a draft does not finish an item"
    store.save_preference("roco", first, "blip", "qwen2-vl", "Dr Ada", "tie")
    assert queue.next_for("Dr Ada") != first, "a preference finishes it"
    assert queue.progress("Dr Ada") == QueueProgress(done=1, assigned=2)


def test_items_reviewed_outside_the_queue_are_skipped(store: ReviewStore) -> None:
    finish(store, ITEMS[0], "Dr Ada")
    queue = ReviewQueue(store, "roco", ITEMS, QueueSettings(order="id"))
    assert queue.next_for("Dr Ada") == ITEMS[1]


def test_random_order_is_seeded_and_stable(store: ReviewStore) -> None:
    items = [f"img{n}" for n in range(40)]
    one = ReviewQueue(store, "roco", items, QueueSettings(seed=7)).items
    again = ReviewQueue(store, "roco", list(reversed(items)), QueueSettings(seed=7)).items
    other = ReviewQueue(store, "roco", items, QueueSettings(seed=8)).items
    assert one == again, "same seed, same order, whatever order the ids came in"
    assert sorted(one) == sorted(items) and one != other
    by_id = ReviewQueue(store, "roco", items, QueueSettings(order="id")).items
    assert by_id[:3] == ["img0", "img1", "img2"] and by_id[10] == "img10", "natural id order"


def test_concurrent_reviewers_never_exceed_the_overlap(tmp_path: Path) -> None:
    path = tmp_path / "reviews.sqlite"
    ReviewStore(path)
    barrier = threading.Barrier(6)
    served: dict[str, str | None] = {}

    def ask(name: str) -> None:
        queue = ReviewQueue(ReviewStore(path), "roco", ["only"], QueueSettings(overlap=2))
        barrier.wait()
        served[name] = queue.next_for(name)

    threads = [threading.Thread(target=ask, args=(f"Dr {n}",)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(v for v in served.values() if v) == ["only", "only"]
    assert len(ReviewStore(path).assignments("roco")["only"]) == 2


def test_no_name_no_item(store: ReviewStore) -> None:
    with pytest.raises(ReviewValidationError, match="Enter your name"):
        ReviewQueue(store, "roco", ITEMS).next_for("  ")


def test_blind_order_is_stable_per_reviewer_and_differs_between_reviewers() -> None:
    models = ["blip", "blip2-lora", "qwen2-vl", "llava-med"]
    first = blind_order("roco", "ROCO_001", "Dr Ada", models)
    assert sorted(first) == sorted(models)
    assert blind_order("roco", "ROCO_001", "dr  ada", list(reversed(models))) == first
    differing = [item for item in (f"ROCO_{n:03d}" for n in range(20))
                 if blind_order("roco", item, "Dr Ada", models)
                 != blind_order("roco", item, "Dr Bo", models)]
    assert len(differing) >= 10
    orders = {tuple(blind_order("roco", f"ROCO_{n:03d}", "Dr Ada", models)) for n in range(20)}
    assert len(orders) > 5, "the order varies between items"


def test_blind_labels() -> None:
    assert [blind_label(i) for i in (0, 1, 25, 26, 27)] == [
        "Caption A", "Caption B", "Caption Z", "Caption AA", "Caption AB"]


def test_settings_from_env() -> None:
    assert QueueSettings.from_env({}) == QueueSettings(overlap=2, order="random", seed=0, blind=True)
    env = {"MEDCAP_QUEUE_OVERLAP": "3", "MEDCAP_QUEUE_ORDER": "ID", "MEDCAP_QUEUE_SEED": "42",
           "MEDCAP_BLIND": "0"}
    assert QueueSettings.from_env(env) == QueueSettings(overlap=3, order="id", seed=42, blind=False)
    for bad, message in (({"MEDCAP_QUEUE_OVERLAP": "0"}, "at least 1"),
                         ({"MEDCAP_QUEUE_OVERLAP": "two"}, "whole numbers"),
                         ({"MEDCAP_QUEUE_ORDER": "newest"}, "random, id"),
                         ({"MEDCAP_BLIND": "maybe"}, "MEDCAP_BLIND")):
        with pytest.raises(ValueError, match=message):
            QueueSettings.from_env(bad)
