"""Review saves and exports as the store grows (#15 item 2): is a save O(1) in the store size?

    python -m benchmarks.bench_reviews [--sizes 0,20000,100000] [--saves 200] [--clients 20]

For each store size the store is pre-filled (one transaction of rows shaped exactly as
`ReviewStore.save` writes them: latest row + one history row each), then it prints:
- save p50/p95, one client: `store.save` + `store.item_verdicts` (what `Studio.save_review` does
  now: refresh the saved caption's table row);
- the same with the old refresh (every verdict recomputed after each save, as v1's Studio did),
  timed on fewer saves, and the ratio;
- save p50/p95 with `--clients` threads saving at once (own store object each, as server workers);
- streamed CSV export of every final review (`export_store_csv`): wall and CPU seconds (CPU is
  what the export costs when other processes share the two cores), and rows per second.
Nothing here asserts a time; it reports.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from contextlib import closing
from pathlib import Path

from medcap.review import (
    VERDICTS,
    ReviewContext,
    ReviewInput,
    ReviewKey,
    ReviewStore,
    export_store_csv,
)
from medcap.review.store import reviewer_key

MODELS = ("blip", "blip2-lora", "qwen2-vl")
REVIEWERS = ("Dr Ada", "Dr Bo", "Dr Cy", "Dr Di")
SCORES = json.dumps({"bleu4": 0.21, "cider_d": 0.9, "meteor": 0.3, "rouge_l": 0.4}, sort_keys=True)
NOW = "2026-11-30T05:00:00Z"


def prefill(store: ReviewStore, count: int) -> None:
    """`count` final reviews over images x models x reviewers, in one transaction."""
    rows, history = [], []
    for index in range(count):
        image = f"ROCOv2_2023_test_{index // 12:06d}"
        model, reviewer = MODELS[index % 3], REVIEWERS[(index // 3) % 4]
        verdict = VERDICTS[index % 4]
        rows.append((index + 1, "bench", image, model, reviewer, reviewer_key(reviewer), verdict,
                     "", "note", "final", 1, "axial ct of the chest", "CT of the chest", "CT",
                     SCORES, "[]", 0, verdict, "", "note", "[]", 0, 1, NOW, NOW, NOW))
        history.append((index + 1, 1, reviewer, verdict, "", "note", "final",
                        "axial ct of the chest", NOW, "[]", 0))
    with closing(store._connect()) as conn:
        conn.execute("BEGIN")
        conn.executemany(
            "INSERT INTO reviews (id, dataset, image_id, model, reviewer, reviewer_key, verdict,"
            " corrected_caption, note, status, version, generated_caption, ground_truth, modality,"
            " scores_json, categories_json, significant, final_verdict, final_corrected_caption,"
            " final_note, final_categories_json, final_significant, final_version, final_at,"
            " created_at, updated_at) VALUES (" + ", ".join("?" * 26) + ")", rows)
        conn.executemany(
            "INSERT INTO review_history (review_id, version, reviewer, verdict, corrected_caption,"
            " note, status, generated_caption, saved_at, categories_json, significant)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", history)
        conn.execute("COMMIT")


def one_save(store: ReviewStore, reviewer: str, index: int, refresh) -> float:
    key = ReviewKey("bench", f"new_{index:06d}", MODELS[index % 3], reviewer)
    start = time.perf_counter()
    store.save(ReviewInput(key=key, verdict=VERDICTS[index % 4], note="benchmark",
                           categories=("wrong_laterality",),
                           context=ReviewContext("caption", "reference", "CT", {"bleu4": 0.2})))
    refresh(store, key)
    return time.perf_counter() - start


def new_refresh(store: ReviewStore, key: ReviewKey) -> None:
    store.item_verdicts(key.dataset, key.image_id, key.model)


def old_refresh(store: ReviewStore, key: ReviewKey) -> None:
    """v1 Studio: every review re-read and every verdict re-joined after each save."""
    joined: dict[tuple[str, str], set[str]] = {}
    for review in store.iter_reviews(key.dataset):
        joined.setdefault((review.key.image_id, review.key.model), set()).add(review.verdict or "")
    {k: "; ".join(sorted(v)) for k, v in joined.items()}


def percentiles(times: list[float]) -> tuple[float, float]:
    ordered = sorted(times)
    p95 = ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]
    return statistics.median(ordered) * 1000, p95 * 1000


def concurrent_saves(path: Path, clients: int, per_client: int) -> list[float]:
    times: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(clients)

    def client(number: int) -> None:
        store = ReviewStore(path)
        barrier.wait()
        mine = [one_save(store, f"Client {number}", 10_000 + number * per_client + i, new_refresh)
                for i in range(per_client)]
        with lock:
            times.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return times


def bench_size(size: int, saves: int, old_saves: int, clients: int, folder: Path) -> dict:
    path = folder / f"reviews-{size}.sqlite"
    store = ReviewStore(path)
    prefill(store, size)
    new = [one_save(store, "Dr Bench", i, new_refresh) for i in range(saves)]
    old = [one_save(store, "Dr Old", i, old_refresh) for i in range(old_saves)]
    together = concurrent_saves(path, clients, max(1, saves // clients))
    start, cpu = time.perf_counter(), time.process_time()
    export_store_csv(store, folder / f"export-{size}.csv")
    export_s, export_cpu = time.perf_counter() - start, time.process_time() - cpu
    return {"size": size, "new": percentiles(new), "old": percentiles(old),
            "concurrent": percentiles(together), "export_s": export_s, "export_cpu": export_cpu,
            "rows": store.count()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="0,20000,100000")
    parser.add_argument("--saves", type=int, default=200)
    parser.add_argument("--old-saves", type=int, default=10)
    parser.add_argument("--clients", type=int, default=20)
    args = parser.parse_args(argv)
    print(f"| reviews in store | save p50 / p95 (ms) | old refresh p50 / p95 (ms) | old / new p50 |"
          f" {args.clients} clients p50 / p95 (ms) | export wall / CPU (s) | rows/s |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory() as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            r = bench_size(size, args.saves, args.old_saves, args.clients, Path(tmp))
            ratio = r["old"][0] / r["new"][0] if r["new"][0] else float("nan")
            print(f"| {size:,} | {r['new'][0]:.1f} / {r['new'][1]:.1f} | {r['old'][0]:.1f} / "
                  f"{r['old'][1]:.1f} | {ratio:.1f}x | {r['concurrent'][0]:.1f} / "
                  f"{r['concurrent'][1]:.1f} | {r['export_s']:.2f} / {r['export_cpu']:.2f} | "
                  f"{r['rows'] / r['export_s']:,.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
