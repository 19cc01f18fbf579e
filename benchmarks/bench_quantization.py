"""What each precision costs and changes on a CPU: fp32, bf16 and weight-only int8.

For each model, each precision runs in its own process (so peak RSS is that precision's alone,
loading included) and captions the same images one at a time, greedy. Printed per precision:
load time, median seconds per caption, peak RSS (loading included: an fp32 checkpoint's mapped
file pages count too), RSS after the captions, and token agreement with the bf16 and fp32
captions (share of positions with the same token; identical captions give 1.0).

Random weights (`--size real`, the default here) make per-caption time and memory real, but
their agreement says little about a trained model (random logits are nearly flat, so small
numeric changes flip greedy picks more often); `--model NAME=FOLDER` measures a trained model,
e.g. the demo BLIP on its phantoms:

    python -m benchmarks.bench_quantization --size real --images 4 --new-tokens 48
    python -m benchmarks.bench_quantization --model demo=assets/demo/blip-phantoms \
        --image-dir assets/demo/phantoms --new-tokens 0
    python -m benchmarks.bench_quantization --size tiny --images 2   # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

PRECISIONS = {"fp32": ("float32", None), "bf16": ("bfloat16", None), "int8": ("auto", "int8")}


def worker(family: str, folder: str, precision: str, images: list[str], new_tokens: int,
           warmup: int, threads: int = 0) -> dict:
    """Load one model in one precision and caption `images` one at a time (runs in a child)."""
    import torch
    from PIL import Image

    from medcap.models import create_captioner, resolve_spec

    dtype, quantization = PRECISIONS[precision]
    generation = {"max_new_tokens": new_tokens, "min_new_tokens": new_tokens} if new_tokens \
        else {}
    spec = resolve_spec(family, folder, device="cpu", dtype=dtype, quantization=quantization,
                        check_memory=False, **generation)
    captioner = create_captioner(spec)
    if threads:
        torch.set_num_threads(threads)
    started = time.perf_counter()
    captioner.load()
    load_seconds = time.perf_counter() - started
    pictures = [Image.open(path) for path in images]
    for picture in pictures[:warmup]:
        captioner.caption([picture])
    seconds, tokens = [], []
    for picture in pictures:
        started = time.perf_counter()
        caption = captioner.caption([picture])[0]
        seconds.append(time.perf_counter() - started)
        tokens.append([t.text for t in caption.tokens])
    return {"load_s": load_seconds, "seconds": seconds, "tokens": tokens,
            "peak_rss": _status_bytes("VmHWM"), "rss": _status_bytes("VmRSS")}


def _status_bytes(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    return 0


def run_precision(family: str, folder: Path, precision: str, images: Sequence[Path],
                  args: argparse.Namespace) -> dict:
    if args.in_process:  # the smoke test: no child process, so peak RSS is the process's
        return worker(family, str(folder), precision, list(map(str, images)), args.new_tokens,
                      args.warmup, args.threads)
    command = [sys.executable, "-m", "benchmarks.bench_quantization", "--worker", family,
               str(folder), precision, "--new-tokens", str(args.new_tokens),
               "--warmup", str(args.warmup), "--threads", str(args.threads), "--",
               *map(str, images)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"{family} {precision} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def agreement(a: dict, b: dict) -> tuple[float, float]:
    """Mean token agreement and the share of identical captions."""
    from medcap.models.quantize import token_agreement

    scores = [token_agreement(x, y) for x, y in zip(a["tokens"], b["tokens"])]
    same = [x == y for x, y in zip(a["tokens"], b["tokens"])]
    return statistics.mean(scores), sum(same) / len(same)


def bench(label: str, family: str, folder: Path, images: Sequence[Path],
          args: argparse.Namespace) -> list[str]:
    results = {p: run_precision(family, folder, p, images, args) for p in PRECISIONS}
    rows = []
    for precision, result in results.items():
        vs_bf16 = agreement(results["bf16"], result)
        vs_fp32 = agreement(results["fp32"], result)
        per_caption = statistics.median(result["seconds"])
        rows.append(
            f"| {label} | {precision} | {result['load_s']:.1f} s | {per_caption:.2f} s "
            f"({results['fp32']['seconds'] and statistics.median(results['fp32']['seconds']) / per_caption:.2f}x fp32) | "
            f"{result['peak_rss'] / 2**30:.2f} GiB | {result['rss'] / 2**30:.2f} GiB | "
            f"{vs_fp32[0]:.2f} ({vs_fp32[1]:.0%}) | "
            f"{vs_bf16[0]:.2f} ({vs_bf16[1]:.0%}) |")
        print(rows[-1], flush=True)
    return rows


def model_images(args: argparse.Namespace, workdir: Path) -> list[Path]:
    if args.image_dir:
        found = sorted(p for p in Path(args.image_dir).iterdir()
                       if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
        return found[: args.images] if args.images else found
    from benchmarks import _common

    paths = []
    sizes = _common.parse_sizes(args.image_sizes)
    for index, image in enumerate(_common.make_images(args.images, sizes)):
        path = workdir / f"image-{index}.png"
        image.save(path)
        paths.append(path)
    return paths


def targets(args: argparse.Namespace) -> list[tuple[str, str, Path]]:
    """(label, family, folder) per model to measure."""
    if args.model:
        from medcap.models import parse_model_arg, resolve_spec

        out = []
        for entry in args.model:
            name, source = parse_model_arg(entry)
            spec = resolve_spec(name, source)
            out.append((name, spec.family, Path(spec.source)))
        return out
    from benchmarks import bench_caption

    config = bench_caption.BenchConfig(size=args.size, cache_dir=args.cache_dir)
    return [(bench_caption.LABELS[args.size][family], family,
             bench_caption.build_model(family, config)) for family in args.families.split(",")]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    from benchmarks import _common

    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", choices=["real", "full", "tiny"], default="real")
    p.add_argument("--families", default="blip,qwen2-vl")
    p.add_argument("--model", action="append", help="NAME=FOLDER of a trained model instead")
    p.add_argument("--images", type=int, default=4, help="images (0: all in --image-dir)")
    p.add_argument("--image-dir", default=None)
    p.add_argument("--image-sizes", default="512x512,640x512,512x640,576x576")
    p.add_argument("--new-tokens", type=int, default=48,
                   help="tokens per caption, forced (0: the model's own length)")
    p.add_argument("--warmup", type=int, default=1)
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (0: torch's default; 1 is steadier on a busy machine)")
    p.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE)
    p.add_argument("--in-process", action="store_true",
                   help="run every precision in this process (smoke test; peak RSS is shared)")
    p.add_argument("--worker", nargs=3, metavar=("FAMILY", "FOLDER", "PRECISION"),
                   help=argparse.SUPPRESS)
    p.add_argument("paths", nargs="*", help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.worker:
        family, folder, precision = args.worker
        print(json.dumps(worker(family, folder, precision, args.paths, args.new_tokens,
                                args.warmup, args.threads)))
        return 0
    import tempfile

    print(f"| model | precision | load | per caption | peak RSS | RSS after | agreement with "
          f"fp32 (identical) | with bf16 (identical) |\n|---|---|---|---|---|---|---|---|",
          flush=True)
    with tempfile.TemporaryDirectory() as workdir:
        images = model_images(args, Path(workdir))
        for label, family, folder in targets(args):
            bench(label, family, folder, images, args)
    print(f"{len(images)} images, {args.new_tokens or 'own-length'} tokens each, "
          f"{args.threads or 'default'} torch threads, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
