"""How fast the review studio feels: start-up, page load, and the 30,000-row evaluation table.

    python -m benchmarks.bench_app [--rows-per-model 10000] [--models 3] [--repeat 5]

Prints (0) seconds from `python app.py` to its first page answer, as a new user starts it (default
settings, hub unreachable), against the same start with torch and transformers imported up front
(what importing them at start-up cost; the app now imports them on the first caption), (1) filter
/ search / sort / page times of `EvaluationTable` on a synthetic table the size of 3 models × the
ROCOv2 test split (9,927 images; 10,000 by default), (2) server start and first page load of the
real app (tiny BLIP, the same 30k-row results and evaluation CSVs): HTTP time to the HTML and
config, the browser's load event and first paint of the disclaimer in headless Chromium when
Playwright and /usr/bin/chromium are installed, and the first Evaluation-tab call that builds the
table and sends one page. Nothing here asserts a time; it reports.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from medcap.app.table import EvaluationTable, TableQuery, histogram  # noqa: E402

WORDS = ("axial coronal ct mri x-ray ultrasound chest abdomen brain liver kidney lung mass lesion "
         "nodule fracture effusion contrast enhanced arrow shows left right small large").split()
MODALITIES = ("CT", "MRI", "X-ray", "Ultrasound", "Angiography", "PET")


def synthetic_evaluation(rows_per_model: int, models: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    ids = [f"ROCOv2_2023_test_{i:06d}" for i in range(rows_per_model)]
    words = np.array(WORDS)

    def captions(n: int) -> list[str]:
        lengths = rng.integers(4, 18, size=n)
        return [" ".join(rng.choice(words, size=k)) for k in lengths]

    truth = captions(rows_per_model)
    modality = rng.choice(MODALITIES, size=rows_per_model)
    parts = []
    for index in range(models):
        parts.append(pd.DataFrame({
            "image_id": ids, "model": f"model-{index}", "modality": modality,
            "original_caption": truth, "generated_caption": captions(rows_per_model),
            "bleu4": rng.random(rows_per_model), "meteor": rng.random(rows_per_model),
            "rouge_l": rng.random(rows_per_model), "cider_d": rng.random(rows_per_model) * 3,
        }))
    return pd.concat(parts, ignore_index=True)


def timed(fn, repeat: int) -> tuple[float, float]:
    """(first call, median of the following calls) in milliseconds."""
    times = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times[0], statistics.median(times[1:]) if repeat else times[0]


def bench_table(frame: pd.DataFrame, repeat: int) -> None:
    started = time.perf_counter()
    table = EvaluationTable(frame)
    print(f"table: {len(table):,} rows, built in {(time.perf_counter() - started) * 1000:.0f} ms")
    cases = {
        "page 1, no filter": TableQuery(),
        "filter model": TableQuery(model="model-1"),
        "filter model+modality": TableQuery(model="model-1", modality="CT"),
        "search 'fracture'": TableQuery(search="fracture"),
        "search + sort by bleu4": TableQuery(search="liver", sort_by="bleu4"),
        "sort cider_d, all rows": TableQuery(sort_by="cider_d", descending=True),
        "verdict filter": TableQuery(verdict="correct"),
    }
    for name, query in cases.items():
        def run(query=query):
            table._cache.clear()
            return table.query(query)

        cold, median = timed(run, repeat)
        page = table.query(query)
        print(f"  {name:28s} {median:7.1f} ms (first {cold:6.1f} ms)  -> {page.matching_rows:,} "
              f"rows, {len(page.rows)} sent")
    table.query(TableQuery(sort_by="bleu4"))
    _, next_page = timed(lambda: table.query(TableQuery(sort_by="bleu4", page=37)), repeat)
    print(f"  {'next page (cached filter)':28s} {next_page:7.1f} ms")
    _, hist = timed(lambda: histogram(table.metric_values("bleu4", TableQuery()), "bleu4"), repeat)
    print(f"  {'histogram of bleu4':28s} {hist:7.1f} ms")


def bench_page_load(frame: pd.DataFrame, work: Path) -> None:
    started = time.perf_counter()
    import gradio  # noqa: F401

    import_s = time.perf_counter() - started
    from gradio_client import Client

    import app
    from medcap.app.options import AppOptions
    from medcap.app.studio import Studio
    from medcap.config import Settings
    from tests.support.tiny_models import build_tiny_blip

    blip = build_tiny_blip(work / "blip")
    results = frame.assign(processing_time_sec=0.5, timestamp="t", split="test")
    results.drop(columns=["bleu4", "meteor", "rouge_l", "cider_d"]).to_csv(work / "results.csv",
                                                                           index=False)
    frame.to_csv(work / "evaluation.csv", index=False)
    os.environ["GRADIO_TEMP_DIR"] = str(work / "gradio")
    settings = Settings(model_names=[f"blip={blip}"], data_source=None,
                        reviews_db=work / "reviews.sqlite", runs_dir=work / "runs",
                        check_memory=False)
    started = time.perf_counter()
    studio = Studio(settings, AppOptions(results_csv=work / "results.csv",
                                         evaluation_csv=work / "evaluation.csv", examples=[]))
    demo = app.build_demo(studio)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                            **app.LAUNCH_OPTIONS)
    start_s = time.perf_counter() - started
    print(f"app: import gradio {import_s:.2f} s; Studio + Blocks + launch {start_s:.2f} s "
          f"(reads the 30k-row results CSV; no model loaded)")
    try:
        for label, path in (("GET /", ""), ("GET /config", "config")):
            started = time.perf_counter()
            with urllib.request.urlopen(url + path) as response:
                size = len(response.read())
            print(f"  {label:12s} {(time.perf_counter() - started) * 1000:7.1f} ms ({size / 1024:.0f} KiB)")
        browser_load(url)
        client = Client(url, verbose=False)
        started = time.perf_counter()
        client.predict(api_name="/open_evaluation")
        print(f"  first Evaluation tab (builds 30k-row table, sends 1 page): "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")
        started = time.perf_counter()
        client.predict("fracture", "model-1", "All", "All", "bleu4", True, 1,
                       api_name="/query_table")
        print(f"  filter+search+sort through the server (round trip): "
              f"{(time.perf_counter() - started) * 1000:.0f} ms")
    finally:
        demo.close()


REPO = Path(__file__).resolve().parents[1]
EAGER_START = ("import os, runpy, sys, torch, transformers; sys.argv = [sys.argv[1]]; "
               "sys.path.insert(0, os.path.dirname(sys.argv[0])); "
               "runpy.run_path(sys.argv[0], run_name='__main__')")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def seconds_to_first_page(command: list[str], work: Path, timeout: float = 120.0) -> float:
    """Start the app with `command` in `work` and time until GET / answers 200."""
    port = _free_port()
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "HF_HUB_OFFLINE": "1",
           "MEDCAP_REVIEWS_DB": str(work / "reviews.sqlite"), "GRADIO_TEMP_DIR": str(work / "tmp")}
    started = time.perf_counter()
    process = subprocess.Popen(command, cwd=work, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    try:
        while time.perf_counter() - started < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - started
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"no page within {timeout:.0f} s")
    finally:
        process.terminate()
        process.wait(timeout=30)


def bench_start(repeat: int) -> None:
    """Median seconds to the first page, lazy (as shipped) and with torch imported up front."""
    app_file = str(REPO / "app.py")
    commands = {"python app.py": [sys.executable, app_file],
                "torch + transformers first": [sys.executable, "-c", EAGER_START, app_file]}
    medians = {}
    for label, command in commands.items():
        runs = []
        for _ in range(repeat):
            with tempfile.TemporaryDirectory() as work:
                runs.append(seconds_to_first_page(command, Path(work)))
        medians[label] = statistics.median(runs)
        print(f"start: {label:28s} first page after {medians[label]:.2f} s "
              f"(median of {repeat}: {', '.join(f'{r:.2f}' for r in runs)})")
    lazy, eager = medians.values()
    print(f"start: lazy / eager = {lazy / eager:.2f} (target: first page under 3 s on two cores)")


def browser_load(url: str) -> None:
    """Load event and disclaimer paint in headless Chromium, when it is installed."""
    chromium = Path("/usr/bin/chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        print("  browser: playwright not installed, skipped")
        return
    if not chromium.exists():
        print("  browser: /usr/bin/chromium not installed, skipped")
        return
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(chromium),
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--no-first-run"])
        for attempt in ("cold", "warm"):
            page = browser.new_page()
            started = time.perf_counter()
            page.goto(url, wait_until="load")
            loaded = time.perf_counter() - started
            page.get_by_text("not a medical device").first.wait_for(timeout=30000)
            visible = time.perf_counter() - started
            print(f"  browser ({attempt}): load event {loaded * 1000:.0f} ms, "
                  f"disclaimer visible {visible * 1000:.0f} ms")
            page.close()
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows-per-model", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--skip-app", action="store_true", help="only the table benchmark")
    parser.add_argument("--start-only", action="store_true", help="only the start-up benchmark")
    args = parser.parse_args()
    bench_start(min(args.repeat, 3))
    if args.start_only:
        return
    frame = synthetic_evaluation(args.rows_per_model, args.models)
    bench_table(frame, args.repeat)
    if not args.skip_app:
        with tempfile.TemporaryDirectory() as work:
            bench_page_load(frame, Path(work))


if __name__ == "__main__":
    main()
