"""What a user of the Caption tab waits for: today's path vs the streamed, batched one.

Three measurements, each side by side in one run, real-size shapes with random weights (no hub):

1. Per-token decoding: the old `_make_caption` (decode the growing prefix after every token,
   quadratic) vs the incremental detokenizer, for one 64-token caption.
2. Latency of one image (batch 1, N new tokens, greedy, min = max so both paths do equal work):
   today a card shows nothing until `captioner.caption([image])` returns, so its time to first
   word is the whole caption's time; the new path streams through the model's `GenerationLoop`
   and shows the first word after the first decoding step.
3. The app under load: R requests one after another (today: one `generate` per request behind
   the model's lock) vs the same R requests sent at once from R threads to the `GenerationLoop`,
   which batches them; images/s and the ratio.

Like Gradio, which runs event handlers in long-lived worker threads, every path generates in a
long-lived thread other than the main one (today's path in a handler thread, the new one in the
loop's thread): on this loaded 2-core machine the same `generate` was measured several times
slower or faster depending on the thread it ran in, which must not decide the comparison. Each
path is warmed up first, the batch of R included (oneDNN builds kernels per shape: the first
call at a new batch size took tens of seconds). Random weights
mostly pick special tokens, which end a caption at its first token; the benchmark suppresses
them for both paths so each caption really has N visible tokens, as a trained model's would.

    python -m benchmarks.bench_latency                         # BLIP-base, CPU
    python -m benchmarks.bench_latency --models blip,qwen2-vl  # + Qwen2-VL-2B (slow on a CPU)
    python -m benchmarks.bench_latency --size tiny --requests 3 --new-tokens 4 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import queue
import statistics
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks import _common, bench_caption  # noqa: E402  (model sizes, labels and builders)

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from medcap.app.generation import GenerationLoop, LoopSettings  # noqa: E402
from medcap.models import create_captioner, resolve_spec  # noqa: E402


@dataclass
class LatencyConfig:
    models: tuple[str, ...] = ("blip",)
    size: str = "real"
    new_tokens: int = 48
    requests: int = 8
    repeat: int = 3
    rounds: int = 2
    image_sizes: str = "512x512,640x512,512x640,576x576"
    dtype: str = "auto"
    gather_ms: int = 30
    cache_dir: Path = _common.DEFAULT_CACHE


# ---------------------------------------------------------------------------- 1. detokenizing
SENTENCE = ("Axial contrast-enhanced CT of the chest shows a 3.2 cm mass in the left upper lobe, "
            "with mediastinal lymph nodes (arrows); no pleural effusion.")
"""Caption text for the decoding comparison, repeated to 64 tokens (a random model's tokens
are mostly filler entries that say nothing about real captions)."""
def quadratic_pieces(tokenizer: Any, ids: Sequence[int]) -> list[str]:
    """The old `_make_caption` loop: decode every growing prefix."""
    special = set(tokenizer.all_special_ids)
    pieces, previous, kept = [], "", []
    for token_id in ids:
        if token_id in special:
            continue
        kept.append(token_id)
        text = tokenizer.decode(kept, skip_special_tokens=True)
        pieces.append(text[len(previous):] if text.startswith(previous) else text)
        previous = text
    return pieces


def bench_detokenize(captioner: Any, ids: Sequence[int], repeat: int = 50) -> tuple[float, float]:
    """(old ms, new ms) per caption, medians."""
    tokenizer = captioner.tokenizer

    def median_ms(run: Callable[[], object]) -> float:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            run()
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    old = median_ms(lambda: quadratic_pieces(tokenizer, ids))
    new = median_ms(lambda: captioner._make_caption(list(ids), [1.0] * len(ids), 0.0))
    return old, new


# ---------------------------------------------------------------------------- 2. latency
class HandlerThread:
    """One long-lived thread that runs what it is given, as a Gradio worker thread runs event
    handlers; `run(f)` returns `f()`'s result or raises its exception."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._results: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="bench-handler", daemon=True).start()

    def _serve(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                self._results.put(("ok", job()))
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                self._results.put(("error", exc))

    def run(self, job: Callable[[], Any]) -> Any:
        self._jobs.put(job)
        kind, value = self._results.get()
        if kind == "error":
            raise value
        return value


HANDLER: HandlerThread | None = None


def in_worker_thread(job: Callable[[], Any]) -> Any:
    """`job()` in the benchmark's long-lived handler thread (made on first use)."""
    global HANDLER
    if HANDLER is None:
        HANDLER = HandlerThread()
    return HANDLER.run(job)


def today_latency(captioner: Any, image: Image.Image) -> tuple[float, float]:
    """(first word, whole caption) seconds: nothing is shown before the caption returns."""
    started = time.perf_counter()
    in_worker_thread(lambda: captioner.caption([image]))
    whole = time.perf_counter() - started
    return whole, whole


def streamed_latency(loop: GenerationLoop, image: Image.Image) -> tuple[float, float]:
    """(first word, whole caption) seconds through the generation loop's stream."""
    started = time.perf_counter()
    first = None
    for update in loop.submit(image):
        if first is None and update.text:
            first = time.perf_counter() - started
        if update.done:
            if update.error:
                raise RuntimeError(update.error)
            break
    whole = time.perf_counter() - started
    return (first if first is not None else whole), whole


# ---------------------------------------------------------------------------- 3. under load
def one_after_another(captioner: Any, images: Sequence[Image.Image]) -> tuple[float, list[int]]:
    """Today's app: each request's handler thread waits for the model's lock in turn."""
    started = time.perf_counter()
    tokens = [len(in_worker_thread(lambda image=image: captioner.caption([image]))[0].tokens)
              for image in images]
    return time.perf_counter() - started, tokens


def all_at_once(loop: GenerationLoop, images: Sequence[Image.Image]) -> tuple[float, list[int]]:
    """Every request from its own thread at the same moment, as concurrent users."""
    tokens: list[int] = [0] * len(images)
    barrier = threading.Barrier(len(images) + 1)

    def user(index: int) -> None:
        barrier.wait()
        final = loop.submit(images[index]).result()
        if final.error:
            raise RuntimeError(final.error)
        tokens[index] = len(final.caption.tokens)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, tokens


# ---------------------------------------------------------------------------- running
def load_captioner(family: str, config: LatencyConfig) -> Any:
    bench = bench_caption.BenchConfig(models=(family,), size=config.size,
                                      cache_dir=config.cache_dir)
    model_dir = bench_caption.build_model(family, bench)
    spec = resolve_spec(family, str(model_dir), device="cpu", dtype=config.dtype,
                        max_new_tokens=config.new_tokens, min_new_tokens=config.new_tokens,
                        num_beams=1, check_memory=False,
                        max_pixels=(bench_caption.qwen_max_pixels(bench)
                                    if family == "qwen2-vl" else None))
    captioner = create_captioner(spec)
    captioner.load()
    special = sorted(set(captioner.tokenizer.all_special_ids))
    captioner._extra_generate_kwargs = lambda: {"suppress_tokens": special}  # see the docstring
    return captioner


def bench_family(family: str, config: LatencyConfig, log: Callable[[str], None] = print
                 ) -> dict[str, Any]:
    label = bench_caption.LABELS[config.size][family]
    captioner = load_captioner(family, config)
    images = _common.make_images(max(config.requests, 1),
                                 _common.parse_sizes(config.image_sizes))
    loop = GenerationLoop(captioner, LoopSettings(max_batch_size=max(1, config.requests),
                                                  gather_seconds=config.gather_ms / 1000))
    try:
        caption = in_worker_thread(lambda: captioner.caption(images[:1]))[0]  # warm-ups
        streamed_latency(loop, images[0])
        in_worker_thread(lambda: captioner.caption(images[1:2]))
        all_at_once(loop, images[: config.requests])
        if len(caption.tokens) != config.new_tokens:
            raise RuntimeError(f"the caption has {len(caption.tokens)} visible tokens, not "
                               f"{config.new_tokens}: {caption.text!r}")
        ids = captioner.tokenizer([SENTENCE], add_special_tokens=False)["input_ids"][0]
        ids = (ids * (64 // max(1, len(ids)) + 1))[:64]
        old_ms, new_ms = bench_detokenize(captioner, ids)
        log(f"{label}: detokenize 64 tokens: old {old_ms:.2f} ms, new {new_ms:.2f} ms")
        today, streamed = [], []
        for _ in range(config.repeat):  # interleaved, so a busy spell hits both paths alike
            today.append(today_latency(captioner, images[0]))
            streamed.append(streamed_latency(loop, images[0]))
        log(f"{label}: latency today {_median(today, 1):.2f} s, streamed first word "
            f"{_median(streamed, 0):.2f} s / whole {_median(streamed, 1):.2f} s")
        serial_runs, batched_runs, batches = [], [], []
        for _ in range(config.rounds):
            serial_s, serial_tokens = one_after_another(captioner, images[: config.requests])
            loop.batches.clear()
            batched_s, batched_tokens = all_at_once(loop, images[: config.requests])
            if serial_tokens != batched_tokens:
                raise RuntimeError(f"unequal output: {serial_tokens} vs {batched_tokens} tokens")
            serial_runs.append(serial_s)
            batched_runs.append(batched_s)
            batches = list(loop.batches)
            log(f"{label}: {config.requests} requests one after another {serial_s:.2f} s, "
                f"at once {batched_s:.2f} s (batches {batches})")
        serial_s, batched_s = statistics.median(serial_runs), statistics.median(batched_runs)
        return {"label": label, "dtype": str(captioner.dtype).removeprefix("torch."),
                "detok": (old_ms, new_ms), "today": today, "streamed": streamed,
                "serial": serial_s, "batched": batched_s, "batches": batches}
    finally:
        loop.close()
        captioner.unload()


def _median(pairs: Sequence[tuple[float, float]], index: int) -> float:
    return statistics.median(p[index] for p in pairs)


def format_tables(results: Sequence[dict[str, Any]], config: LatencyConfig) -> str:
    lines = ["| model | decode a 64-token caption | old (quadratic) | new (incremental) | ratio |",
             "|---|---|---:|---:|---:|"]
    for r in results:
        old, new = r["detok"]
        lines.append(f"| {r['label']} | pieces + text | {old:.2f} ms | {new:.2f} ms | "
                     f"{old / new:.1f}x |")
    lines += ["", f"| model | path (1 image, batch 1, {config.new_tokens} new tokens; median of "
              f"{config.repeat}) | time to first word | whole caption |",
              "|---|---|---:|---:|"]
    for r in results:
        today_first, today_whole = _median(r["today"], 0), _median(r["today"], 1)
        first, whole = _median(r["streamed"], 0), _median(r["streamed"], 1)
        lines.append(f"| {r['label']} | today: caption() then show ({r['dtype']}) | "
                     f"{today_first:.2f} s | {today_whole:.2f} s |")
        lines.append(f"| {r['label']} | streamed via GenerationLoop ({r['dtype']}) | "
                     f"{first:.2f} s ({first / today_first:.0%} of today's) | {whole:.2f} s |")
    lines += ["", f"| model | {config.requests} requests (median of {config.rounds}) | seconds | "
              "images/s | ratio |",
              "|---|---|---:|---:|---:|"]
    for r in results:
        n = config.requests
        serial, batched = r["serial"], r["batched"]
        lines.append(f"| {r['label']} | one after another (today) | {serial:.2f} | "
                     f"{n / serial:.2f} | 1.00x |")
        lines.append(f"| {r['label']} | at once, batched by the loop {r['batches']} | "
                     f"{batched:.2f} | {n / batched:.2f} | {serial / batched:.2f}x |")
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> LatencyConfig:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="blip",
                        help="comma-separated: blip, qwen2-vl, blip2 (default blip)")
    parser.add_argument("--size", choices=sorted(bench_caption.SIZES), default="real")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--requests", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=3, help="latency runs per path")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of (one after another, at once); medians are printed")
    parser.add_argument("--image-sizes", default=LatencyConfig.image_sizes)
    parser.add_argument("--dtype", default="auto")
    parser.add_argument("--gather-ms", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE)
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m not in bench_caption.MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(bench_caption.MODELS)}")
    return LatencyConfig(models=models, size=args.size, new_tokens=args.new_tokens,
                         requests=max(1, args.requests), repeat=max(1, args.repeat),
                         rounds=max(1, args.rounds),
                         image_sizes=args.image_sizes, dtype=args.dtype,
                         gather_ms=args.gather_ms, cache_dir=args.cache_dir)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    print(f"CPU, {torch.get_num_threads()} torch thread(s), {os.cpu_count()} core(s); torch "
          f"{torch.__version__}; size {config.size}; {config.new_tokens} new tokens (greedy, "
          f"min=max); load average {bench_caption._load_average()}")
    results = [bench_family(family, config) for family in config.models]
    print(format_tables(results, config))
    print(f"load average after: {bench_caption._load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
