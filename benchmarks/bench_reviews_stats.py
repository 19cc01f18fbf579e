"""Time `python -m medcap reviews stats` on 10,000 and 100,000 synthetic reviews.

The synthetic panel: 3 models, 8 reviewers, every caption reviewed by 2 of them (so N reviews
cover N/6 images), verdicts that depend on the model and on how hard the image is (so agreement
is neither 0 nor 1), a category ticked on ~15% of reviews, two scores that follow the verdict
loosely, and one pairwise preference per image. Stores are filled through `ReviewStore.save`
(the real write path) on /dev/shm when it exists, and kept in ~/.cache/medcap-bench, so a second
run only measures.

    python -m benchmarks.bench_reviews_stats [--sizes 10000 100000] [--bootstrap 1000]

Printed per size: the whole command (read the store, compute, print the tables, write JSON),
its two halves (reading the store into the export frame, computing the figures), and what the
app's Agreement tab waits for on Compute: `Studio.review_stats()` (always the default bootstrap
of 1000 resamples, as in the app).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from medcap.app.models import ModelPool
from medcap.app.options import AppOptions
from medcap.app.studio import Studio
from medcap.cli import main as medcap_main
from medcap.config import Settings
from medcap.review import (
    DEFAULT_CATEGORIES, VERDICTS, ReviewContext, ReviewInput, ReviewKey, ReviewStore,
)
from medcap.review.analytics import StatsSettings, review_stats, reviews_frame

CACHE = Path.home() / ".cache" / "medcap-bench"
MODELS = ("blip", "blip2-lora", "qwen2-vl")
REVIEWERS = tuple(f"Reviewer {k}" for k in range(8))


def synthetic_reviews(count: int, seed: int = 0):
    """`count` final reviews (a multiple of 6) and one preference per image."""
    rng = random.Random(seed)
    items = count // (len(MODELS) * 2)
    for item in range(items):
        difficulty = rng.random()
        pair = rng.sample(REVIEWERS, 2)
        for m, model in enumerate(MODELS):
            for reviewer in pair:
                level = difficulty * 2 + m * 0.4 + rng.gauss(0, 0.6)
                verdict = VERDICTS[max(0, min(3, int(level)))]
                categories = (rng.choice(DEFAULT_CATEGORIES).key,) if rng.random() < 0.15 else ()
                scores = {"bleu4": max(0.0, 0.5 - 0.1 * level + rng.gauss(0, 0.1)),
                          "cider_d": max(0.0, 1.5 - 0.3 * level + rng.gauss(0, 0.5))}
                yield ReviewInput(
                    key=ReviewKey("bench:test", f"img-{item:06d}", model, reviewer), verdict=verdict,
                    categories=categories, significant=verdict == VERDICTS[3],
                    context=ReviewContext(generated_caption=f"{model} caption {item}",
                                          ground_truth=f"reference {item}", modality="CT",
                                          scores=scores))
        yield ("preference", f"img-{item:06d}", rng.choice(["A better", "B better", "tie", "both wrong"]),
               pair[0])


def build_store(count: int, cache: Path = CACHE) -> Path:
    """The cached store of `count` reviews, built on tmpfs (saves do not wait for a disk)."""
    target = cache / f"reviews-{count}.sqlite"
    if target.is_file():
        return target
    scratch = Path(tempfile.mkdtemp(dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
    store = ReviewStore(scratch / "reviews.sqlite", clock=lambda: "2026-03-01T00:00:00Z")
    started = time.perf_counter()
    for entry in synthetic_reviews(count):
        if isinstance(entry, tuple):
            _, image_id, choice, reviewer = entry
            store.save_preference("bench:test", image_id, MODELS[0], MODELS[2], reviewer, choice)
        else:
            store.save(entry)
    with contextlib.closing(sqlite3.connect(store.path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    cache.mkdir(parents=True, exist_ok=True)
    shutil.copy(store.path, target)
    shutil.rmtree(scratch)
    print(f"built {target} ({count} reviews) in {time.perf_counter() - started:.0f} s")
    return target


def timed(function, repeats: int) -> tuple[float, float]:
    """Best of `repeats` runs as (wall, CPU) seconds: on a shared machine the minimum is the
    cost, and CPU time shows what an idle machine would take."""
    best = (float("inf"), float("inf"))
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        best = min(best, (time.perf_counter() - wall, time.process_time() - cpu))
    return best


def bench_studio(db: Path) -> Studio:
    """The app's Studio over the benchmark store (no models, no dataset: only reviews)."""
    settings = Settings(model_names=[], data_source=None, reviews_db=db, check_memory=False)
    options = AppOptions(dataset_label="bench:test", examples=[])
    return Studio(settings, options, pool=ModelPool([]), store=ReviewStore(db))


def measure(db: Path, bootstrap: int, repeats: int) -> dict[str, float]:
    store = ReviewStore(db)
    out = db.with_suffix(".stats.json")
    settings = StatsSettings(bootstrap=bootstrap)

    def command() -> None:
        with contextlib.redirect_stdout(io.StringIO()):
            assert medcap_main(["reviews", "stats", "--db", str(db), "--out", str(out),
                                "--bootstrap", str(bootstrap)]) == 0

    frame = reviews_frame(store.iter_reviews(), store.categories)
    preferences = store.preferences()
    studio = bench_studio(db)
    return {
        "command": timed(command, repeats),
        "read": timed(lambda: reviews_frame(store.iter_reviews(), store.categories), repeats),
        "figures": timed(lambda: review_stats(frame, preferences, settings), repeats),
        "app": timed(studio.review_stats, repeats),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cache-dir", type=Path, default=CACHE, help="where built stores are kept")
    args = parser.parse_args(argv)
    results = {}
    review_stats(reviews_frame([]), [], StatsSettings(bootstrap=1))  # imports the packages once
    for size in args.sizes:
        size -= size % (len(MODELS) * 2)
        results[size] = measure(build_store(size, args.cache_dir), args.bootstrap, args.repeats)
    print(f"\nreviews stats, bootstrap {args.bootstrap}, best of {args.repeats}: wall s (CPU s)")
    print(f"{'reviews':>9} {'command':>13} {'read store':>13} {'figures':>13} "
          f"{'app Compute':>13} {'per 1k reviews':>15}")
    for size, r in results.items():
        cells = " ".join(f"{r[k][0]:>6.2f} ({r[k][1]:>4.2f})"
                         for k in ("command", "read", "figures", "app"))
        print(f"{size:>9} {cells} {1000 * r['command'][0] / size:>15.3f}")
    sizes = sorted(results)
    if len(sizes) > 1:
        small, large = results[sizes[0]], results[sizes[-1]]
        print(f"\n{sizes[-1]} vs {sizes[0]} reviews ({sizes[-1] / sizes[0]:.0f}x the data): command "
              f"{large['command'][0] / small['command'][0]:.1f}x, "
              f"figures {large['figures'][0] / small['figures'][0]:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
