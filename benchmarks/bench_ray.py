"""`medcap caption --engine ray` with N workers x 1 thread vs the local engine with 1 thread.

Both runs are the real CLI on the same folder of PNGs and the same random-weight model (no hub),
writing a results CSV; the script checks that both CSVs hold the same captions and prints
images/s and the ratio. Ray is started before the timed run (its start-up, a few seconds, is
printed separately), so the ratio is the steady one a long job sees.

    python -m benchmarks.bench_ray                         # BLIP-base, 2 workers, 24 images
    python -m benchmarks.bench_ray --size tiny --images 8  # smoke run
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks import _common, bench_caption  # noqa: E402

import torch  # noqa: E402

from medcap.cli import main as medcap  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]  # Ray's workers import medcap from here


def _captions(path: Path) -> list[tuple[str, str]]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [(row["image_id"], row["generated_caption"]) for row in csv.DictReader(handle)]


def _run(argv: list[str]) -> float:
    started = time.perf_counter()
    code = medcap(argv)
    if code != 0:
        raise SystemExit(f"medcap {' '.join(argv)} exited {code}")
    return time.perf_counter() - started


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["full", "tiny"], default="full",
                   help="full: BLIP-base (224M); tiny: smoke test")
    p.add_argument("--images", type=int, default=24)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--new-tokens", type=int, default=16)
    p.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE)
    a = p.parse_args(argv)
    import ray

    model_dir = _common.build_blip(a.cache_dir, bench_caption.SIZES[a.size]["blip"])
    with tempfile.TemporaryDirectory() as work:
        folder = Path(work) / "images"
        folder.mkdir()
        for i, image in enumerate(_common.make_images(a.images, _common.parse_sizes(
                bench_caption.BenchConfig.image_sizes))):
            image.save(folder / f"img{i:04d}.png")
        common = ["caption", "--model", f"blip={model_dir}", "--images", str(folder),
                  "--batch-size", str(a.batch_size), "--max-new-tokens", str(a.new_tokens),
                  "--dtype", "float32", "--no-progress"]
        torch.set_num_threads(1)
        local_csv, ray_csv = Path(work) / "local.csv", Path(work) / "ray.csv"
        local = _run(common + ["--out", str(local_csv)])
        started = time.perf_counter()
        ray.init(num_cpus=a.workers, include_dashboard=False, log_to_driver=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT),
                                           "OMP_NUM_THREADS": "1"}})
        startup = time.perf_counter() - started
        try:
            distributed = _run(common + ["--out", str(ray_csv), "--engine", "ray",
                                         "--workers", str(a.workers)])
        finally:
            ray.shutdown()
        same = _captions(local_csv) == _captions(ray_csv)
    print(f"\nBLIP {a.size}, {a.images} images (PNG folder), batch {a.batch_size}, "
          f"{a.new_tokens} max new tokens, fp32; {os.cpu_count()} core(s), "
          f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}; "
          f"Ray start-up {startup:.1f} s (not in the Ray row)")
    print("| engine | wall s | images/s | ratio |\n|---|---:|---:|---:|")
    print(f"| local, 1 thread | {local:.1f} | {a.images / local:.2f} | 1.00x |")
    print(f"| ray, {a.workers} workers x 1 thread | {distributed:.1f} | "
          f"{a.images / distributed:.2f} | {local / distributed:.2f}x |")
    print(f"same captions in both CSVs: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
