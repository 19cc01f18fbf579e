"""Concurrent reviewers through the served app's `/review_save` as the review store grows.

    python -m benchmarks.bench_review_load [--sizes 0,20000,100000] [--clients 20] [--rounds 3]

For each store size: pre-fills reviews.sqlite (`bench_reviews.prefill`: rows shaped exactly as
`ReviewStore.save` writes them, in the app's dataset, on the same image ids), launches the real
app (`app.build_demo`, no models: captions and scores come from results and evaluation CSVs) on
127.0.0.1 in this process, and runs `--clients` gradio_client reviewers at once; pairs of clients share a name, as
one clinician with two tabs. Each client, `--rounds` times over every (item, model): reads its
review (`/review_get`) and saves a new version of it (`/review_save`) on that base.

Prints save p50/p95 server-side (`Studio.save_review`, what the issue's 300 ms target is about)
and as a client sees it (HTTP round trip through Gradio's queue), plus the audit the load test
asserts: acknowledged saves missing from the store (lost) and versions acknowledged twice
(silent overwrites). Client and server share this process and the machine's cores; nothing is
asserted here.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.bench_reviews import MODELS, percentiles, prefill  # noqa: E402
from medcap.review import ReviewKey, ReviewStore  # noqa: E402

DATASET = "bench"  # the dataset `prefill` files its reviews under


def write_results(folder: Path, items: int) -> tuple[Path, Path]:
    """(results CSV, evaluation CSV): `items` images × the prefill's models, on ids the prefill
    also reviews; the scores come from the evaluation CSV, as in a deployed app, so nothing is
    scored (WordNet loaded) before the first save."""
    rows = [{"image_id": f"ROCOv2_2023_test_{i:06d}", "original_caption": "CT of the chest",
             "generated_caption": f"axial ct of the chest {i}", "processing_time_sec": 0.5,
             "model": model, "timestamp": "2026-11-30T00:00:00+00:00", "split": "test",
             "modality": "CT"} for i in range(items) for model in MODELS]
    frame = pd.DataFrame(rows)
    frame.to_csv(folder / "results.csv", index=False)
    scores = frame[["image_id", "model", "modality", "original_caption", "generated_caption"]]
    scores = scores.assign(bleu4=0.21, meteor=0.3, rouge_l=0.4, cider_d=0.9)
    scores.to_csv(folder / "evaluation.csv", index=False)
    return folder / "results.csv", folder / "evaluation.csv"


def launch_loaded_app(work: Path, reviews: int, items: int = 8):
    """(demo, url, studio): the app over a store pre-filled with `reviews` reviews, warmed up
    (scores computed) so the first save does not pay for them. GRADIO_TEMP_DIR must be set."""
    import app
    from medcap.app.options import AppOptions
    from medcap.app.studio import Studio
    from medcap.config import Settings

    work.mkdir(parents=True, exist_ok=True)
    prefill(ReviewStore(work / "reviews.sqlite"), reviews)
    settings = Settings(model_names=[], data_source=None, reviews_db=work / "reviews.sqlite",
                        runs_dir=work / "runs", check_memory=False)
    results, evaluation = write_results(work, items)
    options = AppOptions(results_csv=results, evaluation_csv=evaluation, dataset_label=DATASET,
                         export_dir=work / "exports", examples=[])
    studio = Studio(settings, options)
    studio.warm_up()
    demo = app.build_demo(studio)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
    return demo, url, studio


@dataclass
class LoadResult:
    """What the reviewers were told, and how long each save took from the client's side."""

    acknowledged: list[tuple[ReviewKey, int, str]] = field(default_factory=list)
    conflicts: int = 0
    errors: list[str] = field(default_factory=list)
    round_trips: list[float] = field(default_factory=list)


def run_reviewers(url: str, keys: list[tuple[str, str]], clients: int, rounds: int) -> LoadResult:
    """`clients` gradio_client reviewers (two per name) saving every key `rounds` times."""
    from gradio_client import Client

    result, lock = LoadResult(), threading.Lock()
    barrier = threading.Barrier(clients)

    def reviewer(number: int) -> None:
        client, name = Client(url, verbose=False), f"Load reviewer {number // 2}"
        barrier.wait()
        for round_ in range(rounds):
            for image_id, model in keys:
                note = f"client {number} round {round_} {image_id} {model}"
                base = client.predict(image_id, model, name, api_name="/review_get")["version"]
                start = time.perf_counter()
                answer = client.predict(image_id, model, name, "minor error", "", note, base,
                                        api_name="/review_save")
                seconds = time.perf_counter() - start
                with lock:
                    result.round_trips.append(seconds)
                    if answer["saved"]:
                        key = ReviewKey(DATASET, image_id, model, name)
                        result.acknowledged.append((key, answer["version"], note))
                    elif "Not saved" in answer["message"]:
                        result.conflicts += 1
                    else:
                        result.errors.append(answer["message"])

    threads = [threading.Thread(target=reviewer, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return result


def audit(store: ReviewStore, result: LoadResult) -> tuple[int, int, int]:
    """(lost, overwritten, unacknowledged): acknowledged saves not in the history at their
    version with their note; versions acknowledged to two writers; stored versions no writer
    was told about."""
    overwritten = sum(n - 1 for n in Counter((k, v) for k, v, _ in result.acknowledged).values())
    lost = 0
    for key, version, note in result.acknowledged:
        history = {h.version: h.note for h in store.history(key)}
        lost += history.get(version) != note
    per_key = Counter(key for key, _, _ in result.acknowledged)
    unacknowledged = sum(len(store.history(key)) - n for key, n in per_key.items())
    return lost, overwritten, unacknowledged


def timed_saves(studio) -> list[float]:
    """Wrap `studio.save_review` to record its duration (server-side save time)."""
    times: list[float] = []
    original = studio.save_review

    def save_review(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            times.append(time.perf_counter() - start)

    studio.save_review = save_review
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="0,20000,100000")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--items", type=int, default=4, help="images reviewed (× 3 models)")
    args = parser.parse_args(argv)
    keys = [(f"ROCOv2_2023_test_{i:06d}", m) for i in range(args.items) for m in MODELS]
    print(f"| reviews in store | saves (acknowledged / conflicts / errors) | server save p50 / p95"
          f" (ms) | client round trip p50 / p95 (ms) | lost | silent overwrites |")
    print("| --- | --- | --- | --- | --- | --- |")
    with tempfile.TemporaryDirectory(prefix="medcap-bench-load-") as tmp:
        for size in (int(s) for s in args.sizes.split(",")):
            work = Path(tmp) / str(size)
            os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")
            demo, url, studio = launch_loaded_app(work, size, args.items)
            try:
                server = timed_saves(studio)
                result = run_reviewers(url, keys, args.clients, args.rounds)
            finally:
                demo.close()
            lost, overwritten, _ = audit(studio.store, result)
            s50, s95 = percentiles(server)
            c50, c95 = percentiles(result.round_trips)
            print(f"| {size:,} | {len(result.acknowledged)} / {result.conflicts} / "
                  f"{len(result.errors)} | {s50:.0f} / {s95:.0f} | {c50:.0f} / {c95:.0f} | "
                  f"{lost} | {overwritten} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
