"""What a user of the Caption tab waits for, and the memory it takes: today's path vs the app's.

Real-size shapes with random weights (no hub), one image, measured side by side in one run:

1. Per-token decoding: the old `_make_caption` (decode the growing prefix after every token,
   quadratic) vs the incremental detokenizer, for one 64-token caption.
2. Latency of one image (batch 1, N new tokens, greedy, min = max so both paths do equal work),
   a new image each run (same size, other pixels) so the vision-feature cache cannot answer; and
   on the new path, the same image once more (another prompt, a shared example image).
   *today*: bf16, Qwen2-VL at 448 x 448 (256 visual tokens), `captioner.caption([image])` in a
   request handler's thread, nothing on the card until it returns, so its first word is its whole
   caption. *new* (the app's CPU path with `MEDCAP_QUANTIZATION=int8`): int8 language model,
   the family's CPU image budget (Qwen2-VL 336 x 336, 144 tokens), streamed through the model's
   `GenerationLoop` in the app's shared `ComputeThread`: the first word shows after the first step.
3. The app under load (with `--requests` R > 1, new path): R requests one after another vs the
   same R sent at once from R threads, which the loop batches; images/s and the ratio.
4. Memory (when both BLIP and Qwen2-VL are asked for): one process per path loads both models and
   captions one image with each; peak RSS while loading, and while captioning with both loaded.

Each path runs in a process of its own (`--worker`), as each app would: torch's OpenMP worker
teams and the allocator's heap of one path must not slow or inflate the other. Each is warmed up
first (oneDNN builds kernels per shape). Random weights mostly pick special tokens, which end a
caption at its first token; both paths suppress them so each caption has N visible tokens.

    python -m benchmarks.bench_latency                         # BLIP-base, CPU
    python -m benchmarks.bench_latency --models blip,qwen2-vl --requests 0
    python -m benchmarks.bench_latency --size tiny --requests 3 --new-tokens 4 --repeat 1
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks import _common, bench_caption  # noqa: E402  (model sizes, labels and builders)

PATHS = ("today", "new")
TODAY_QWEN_PIXELS = 448 * 448  # the registry's budget before the CPU default existed
WORKER_TIMEOUT_S = 3600  # a real-size Qwen2-VL worker on a loaded machine takes minutes


@dataclass
class LatencyConfig:
    models: tuple[str, ...] = ("blip",)
    size: str = "real"
    new_tokens: int = 48
    requests: int = 8
    repeat: int = 3
    rounds: int = 2
    image_sizes: str = "512x512,640x512,512x640,576x576"
    gather_ms: int = 30
    threads: int | None = None
    cache_dir: Path = _common.DEFAULT_CACHE


@dataclass
class PathResult:
    """What one worker process measured for one model and path."""

    label: str
    path: str
    setting: str
    latency: list[tuple[float, float]]  # (first word, whole caption) seconds per run
    again: list[tuple[float, float]] = field(default_factory=list)  # an image captioned before
    detok: tuple[float, float] | None = None  # (old, new) ms
    serial: float | None = None
    batched: float | None = None
    batches: list[int] = field(default_factory=list)


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


def bench_detokenize(captioner: Any, repeat: int = 50) -> tuple[float, float]:
    """(old ms, new ms) per 64-token caption, medians."""
    tokenizer = captioner.tokenizer
    ids = tokenizer([SENTENCE], add_special_tokens=False)["input_ids"][0]
    ids = (ids * (64 // max(1, len(ids)) + 1))[:64]

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


# ---------------------------------------------------------------------------- 2. the two paths
class TodayPath:
    """caption() in a handler thread; the card shows the caption when it returns."""

    def __init__(self, captioner: Any, handler: Any) -> None:
        self.captioner, self.handler = captioner, handler

    def caption(self, image: Any) -> Any:
        return self.handler.run(lambda: self.captioner.caption([image]))[0]

    def latency(self, image: Any) -> tuple[float, float]:
        started = time.perf_counter()
        self.caption(image)
        whole = time.perf_counter() - started
        return whole, whole

    def close(self) -> None:
        pass


class StreamedPath:
    """The app's path: the model's generation loop, its batches run in a shared compute thread."""

    def __init__(self, captioner: Any, config: LatencyConfig, compute: Any) -> None:
        from medcap.app.generation import GenerationLoop, LoopSettings

        self.compute = compute
        settings = LoopSettings(max_batch_size=max(1, config.requests),
                                gather_seconds=config.gather_ms / 1000)
        self.loop = GenerationLoop(captioner, settings, self.compute)

    def caption(self, image: Any) -> Any:
        return self.loop.caption(image)

    def latency(self, image: Any) -> tuple[float, float]:
        started = time.perf_counter()
        first = None
        for update in self.loop.submit(image):
            if first is None and update.text:
                first = time.perf_counter() - started
            if update.done:
                if update.error:
                    raise RuntimeError(update.error)
                break
        whole = time.perf_counter() - started
        return (first if first is not None else whole), whole

    def close(self) -> None:
        self.loop.close()
        self.compute.close()


def one_after_another(path: StreamedPath, images: Sequence[Any]) -> tuple[float, list[int]]:
    """Each request waits for the previous one's caption."""
    started = time.perf_counter()
    tokens = [len(path.caption(image).tokens) for image in images]
    return time.perf_counter() - started, tokens


def all_at_once(path: StreamedPath, images: Sequence[Any]) -> tuple[float, list[int]]:
    """Every request from its own thread at the same moment, as concurrent users."""
    tokens: list[int] = [0] * len(images)
    barrier = threading.Barrier(len(images) + 1)

    def user(index: int) -> None:
        barrier.wait()
        tokens[index] = len(path.caption(images[index]).tokens)

    threads = [threading.Thread(target=user, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    return time.perf_counter() - started, tokens


# ---------------------------------------------------------------------------- workers
def path_spec(family: str, path: str, config: LatencyConfig) -> Any:
    """The model spec each path uses (the same random-weight folder)."""
    from medcap.models import resolve_spec

    bench = bench_caption.BenchConfig(models=(family,), size=config.size,
                                      cache_dir=config.cache_dir)
    model_dir = bench_caption.build_model(family, bench)
    max_pixels = None  # the new path: the family's CPU budget
    if family == "qwen2-vl" and (path == "today" or config.size != "real"):
        # The small sizes keep their own budget on both paths (a tiny model's image is tiny).
        max_pixels = (TODAY_QWEN_PIXELS if config.size == "real"
                      else bench_caption.qwen_max_pixels(bench))
    return resolve_spec(family, str(model_dir), device="cpu", dtype="auto",
                        quantization="int8" if path == "new" else None,
                        max_new_tokens=config.new_tokens, min_new_tokens=config.new_tokens,
                        num_beams=1, check_memory=False, max_pixels=max_pixels)


class Threads:
    """The thread each path loads and generates in: today a request handler's, the new path the
    app's shared compute thread."""

    def __init__(self) -> None:
        from medcap.app.generation import ComputeThread

        # A Gradio request handler is a long-lived thread too: the same class stands in for it.
        self.handler, self.compute = ComputeThread("bench-handler"), ComputeThread()

    def runner(self, path: str) -> Callable[[Callable[[], Any]], Any]:
        return self.handler.run if path == "today" else self.compute.run

    def make_path(self, captioner: Any, path: str, config: LatencyConfig) -> Any:
        special = sorted(set(captioner.tokenizer.all_special_ids))
        captioner._extra_generate_kwargs = lambda: {"suppress_tokens": special}  # see docstring
        if path == "today":
            return TodayPath(captioner, self.handler)
        return StreamedPath(captioner, config, self.compute)

    def loaded(self, family: str, path: str, config: LatencyConfig) -> Any:
        """A loaded captioner of `family` for `path`, loaded in the thread that generates."""
        from medcap.models import create_captioner

        captioner = create_captioner(path_spec(family, path, config))
        self.runner(path)(captioner.load)
        return captioner


def model_words(captioner: Any) -> str:
    budget = captioner.image_budget()
    pixels = f", {budget // 784} visual tokens max" if budget else ""
    return ("int8 weights" if captioner.spec.quantization else "bf16 weights") + pixels


def setting_words(captioner: Any, path: str) -> str:
    how = "caption() then show" if path == "today" else "streamed, GenerationLoop"
    return f"{how}; {model_words(captioner)}"


def latency_worker(family: str, path: str, config: LatencyConfig) -> PathResult:
    threads = Threads()
    captioner = threads.loaded(family, path, config)
    if path == "today":
        captioner.vision_cache.images = 0  # today's path had no vision-feature cache
    runner_path = threads.make_path(captioner, path, config)
    sizes = _common.parse_sizes(config.image_sizes)
    # A new image (same size, other pixels) for every run: the vision cache must not answer.
    fresh = _common.make_images(config.repeat + 2, sizes[:1], seed=1)
    label = bench_caption.LABELS[config.size][family]
    try:
        caption = runner_path.caption(fresh[0])  # warm-up
        if len(caption.tokens) != config.new_tokens:
            raise RuntimeError(f"the caption has {len(caption.tokens)} visible tokens, not "
                               f"{config.new_tokens}: {caption.text!r}")
        runner_path.latency(fresh[1])
        result = PathResult(label=label, path=path, setting=setting_words(captioner, path),
                            latency=[runner_path.latency(image) for image in fresh[2:]])
        if path == "new":
            result.again = [runner_path.latency(fresh[2]) for _ in range(config.repeat)]
            result.detok = bench_detokenize(captioner)
            if config.requests > 1:
                under_load(runner_path, config, result)
        return result
    finally:
        runner_path.close()


def under_load(path: StreamedPath, config: LatencyConfig, result: PathResult) -> None:
    """One after another vs at once, each pass on images not captioned before (the vision
    cache would otherwise answer the second pass)."""
    n, sizes = config.requests, _common.parse_sizes(config.image_sizes)
    pool = iter(_common.make_images(n * (2 * config.rounds + 1), sizes, seed=2))
    batch = lambda: [next(pool) for _ in range(n)]  # noqa: E731
    all_at_once(path, batch())  # warm-up of the batch shape
    serial_runs, batched_runs = [], []
    for _ in range(config.rounds):
        serial_s, serial_tokens = one_after_another(path, batch())
        path.loop.batches.clear()
        batched_s, batched_tokens = all_at_once(path, batch())
        if serial_tokens != batched_tokens:
            raise RuntimeError(f"unequal output: {serial_tokens} vs {batched_tokens} tokens")
        serial_runs.append(serial_s)
        batched_runs.append(batched_s)
        result.batches = list(path.loop.batches)
    result.serial = statistics.median(serial_runs)
    result.batched = statistics.median(batched_runs)


def rss_gib() -> dict[str, float]:
    """This process's resident memory now and at its peak (VmHWM), GiB."""
    values = {}
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0]) / 2**20
    return values


def reset_peak_rss() -> bool:
    """Restart the kernel's peak-RSS count (Linux): the captioning peak excludes loading."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as refs:
            refs.write("5")
        return True
    except OSError:
        return False


def memory_worker(path: str, config: LatencyConfig) -> dict[str, Any]:
    """Load BLIP then Qwen2-VL for `path`, caption one image with each; peak RSS per phase."""
    from medcap.models.quantize import release_freed_memory

    threads = Threads()
    captioners = [threads.loaded(family, path, config) for family in ("blip", "qwen2-vl")]
    if path == "today":  # the trim the int8 load ends with, so resting sizes compare fairly
        threads.runner(path)(release_freed_memory)
        for captioner in captioners:
            captioner.vision_cache.images = 0
    after_load = rss_gib()
    reset = reset_peak_rss()
    paths = [threads.make_path(c, path, config) for c in captioners]
    image = _common.make_images(1, _common.parse_sizes(config.image_sizes))[0]
    for p in paths:
        p.caption(image)
    captioning = rss_gib()
    for p in paths:
        p.close()
    return {"path": path, "load_peak": after_load["VmHWM"], "loaded": after_load["VmRSS"],
            "caption_peak": captioning["VmHWM"] if reset else None,
            "setting": "; ".join(f"{c.display_name} {model_words(c)}" for c in captioners)}


def run_worker(kind: str, path: str, family: str, config: LatencyConfig,
               log: Callable[[str], None]) -> dict[str, Any]:
    """Run one worker in a fresh interpreter; its last stdout line is its JSON result."""
    command = [sys.executable, "-m", "benchmarks.bench_latency", "--worker", kind, "--path", path,
               "--family", family, *config_args(config)]
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S,
                          cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise RuntimeError(f"{kind} worker ({family}, {path}) failed:\n{done.stderr[-3000:]}")
    log(f"{kind} {family} {path}: {time.perf_counter() - started:.0f} s")
    return json.loads(done.stdout.strip().splitlines()[-1])


def config_args(config: LatencyConfig) -> list[str]:
    args = ["--size", config.size, "--new-tokens", str(config.new_tokens),
            "--requests", str(config.requests), "--repeat", str(config.repeat),
            "--rounds", str(config.rounds), "--image-sizes", config.image_sizes,
            "--gather-ms", str(config.gather_ms), "--cache-dir", str(config.cache_dir)]
    return args + (["--threads", str(config.threads)] if config.threads else [])


# ---------------------------------------------------------------------------- tables
def _median(pairs: Sequence[Sequence[float]], index: int) -> float:
    return statistics.median(p[index] for p in pairs)


def latency_table(results: Sequence[dict[str, Any]], config: LatencyConfig) -> list[str]:
    lines = [f"| model | path (1 image, batch 1, {config.new_tokens} new tokens; median of "
             f"{config.repeat}) | time to first word | whole caption | first word vs today | "
             "whole vs today |", "|---|---|---:|---:|---:|---:|"]
    today = {r["label"]: r for r in results if r["path"] == "today"}
    for r in results:
        first, whole = _median(r["latency"], 0), _median(r["latency"], 1)
        base = today.get(r["label"])
        base_first = _median(base["latency"], 0) if base else first
        base_whole = _median(base["latency"], 1) if base else whole
        lines.append(f"| {r['label']} | {r['path']}: {r['setting']} | {first:.2f} s | "
                     f"{whole:.2f} s | {base_first / first:.2f}x | {base_whole / whole:.2f}x |")
        if r.get("again"):
            first, whole = _median(r["again"], 0), _median(r["again"], 1)
            lines.append(f"| {r['label']} | new, an image captioned before (vision features "
                         f"cached) | {first:.2f} s | {whole:.2f} s | {base_first / first:.2f}x | "
                         f"{base_whole / whole:.2f}x |")
    return lines


def detok_table(results: Sequence[dict[str, Any]]) -> list[str]:
    lines = ["| model | decode a 64-token caption | old (quadratic) | new (incremental) | ratio |",
             "|---|---|---:|---:|---:|"]
    for r in results:
        if r.get("detok"):
            old, new = r["detok"]
            lines.append(f"| {r['label']} | pieces + text | {old:.2f} ms | {new:.2f} ms | "
                         f"{old / new:.1f}x |")
    return lines


def load_table(results: Sequence[dict[str, Any]], config: LatencyConfig) -> list[str]:
    rows = [r for r in results if r.get("serial")]
    if not rows:
        return []
    n = config.requests
    lines = [f"| model | {n} requests, new path (median of {config.rounds}) | seconds | "
             "images/s | ratio |", "|---|---|---:|---:|---:|"]
    for r in rows:
        serial, batched = r["serial"], r["batched"]
        lines.append(f"| {r['label']} | one after another | {serial:.2f} | {n / serial:.2f} | "
                     "1.00x |")
        lines.append(f"| {r['label']} | at once, batched by the loop {r['batches']} | "
                     f"{batched:.2f} | {n / batched:.2f} | {serial / batched:.2f}x |")
    return lines


def memory_table(results: Sequence[dict[str, Any]]) -> list[str]:
    if not results:
        return []
    lines = ["| path (BLIP-base + Qwen2-VL-2B loaded, one caption each) | peak RSS while "
             "loading | RSS loaded | peak RSS while captioning |", "|---|---:|---:|---:|"]
    for r in results:
        peak = f"{r['caption_peak']:.2f} GiB" if r["caption_peak"] is not None else "n/a"
        lines.append(f"| {r['path']}: {r['setting']} | {r['load_peak']:.2f} GiB | "
                     f"{r['loaded']:.2f} GiB | {peak} |")
    return lines


def format_tables(latency: Sequence[dict[str, Any]], memory: Sequence[dict[str, Any]],
                  config: LatencyConfig) -> str:
    blocks = [detok_table(latency), latency_table(latency, config), load_table(latency, config),
              memory_table(memory)]
    return "\n\n".join("\n".join(block) for block in blocks if block)


# ---------------------------------------------------------------------------- command line
def parse_args(argv: Sequence[str] | None = None) -> tuple[LatencyConfig, argparse.Namespace]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="blip",
                        help="comma-separated: blip, qwen2-vl, blip2 (default blip)")
    parser.add_argument("--size", choices=sorted(bench_caption.SIZES), default="real")
    parser.add_argument("--new-tokens", type=int, default=48)
    parser.add_argument("--requests", type=int, default=8,
                        help="concurrent requests for the under-load table (0 or 1: skip it)")
    parser.add_argument("--repeat", type=int, default=3, help="latency runs per path")
    parser.add_argument("--rounds", type=int, default=2,
                        help="rounds of (one after another, at once); medians are printed")
    parser.add_argument("--image-sizes", default=LatencyConfig.image_sizes)
    parser.add_argument("--gather-ms", type=int, default=30)
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--no-memory", action="store_true",
                        help="skip the memory table (it needs both blip and qwen2-vl)")
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE)
    parser.add_argument("--worker", choices=("latency", "memory"), help=argparse.SUPPRESS)
    parser.add_argument("--path", choices=PATHS, help=argparse.SUPPRESS)
    parser.add_argument("--family", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    unknown = [m for m in models if m not in bench_caption.MODELS]
    if unknown:
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from "
                     f"{', '.join(bench_caption.MODELS)}")
    config = LatencyConfig(models=models, size=args.size, new_tokens=args.new_tokens,
                           requests=max(0, args.requests), repeat=max(1, args.repeat),
                           rounds=max(1, args.rounds), image_sizes=args.image_sizes,
                           gather_ms=args.gather_ms, threads=args.threads,
                           cache_dir=args.cache_dir)
    return config, args


def worker_main(config: LatencyConfig, args: argparse.Namespace) -> int:
    import torch

    if config.threads:
        torch.set_num_threads(config.threads)
    if args.worker == "latency":
        result: Any = asdict(latency_worker(args.family, args.path, config))
    else:
        result = memory_worker(args.path, config)
    print(json.dumps(result))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    config, args = parse_args(argv)
    if args.worker:
        return worker_main(config, args)
    log = lambda text: print(text, flush=True)  # noqa: E731
    log(f"CPU, {config.threads or 'all'} torch thread(s), {os.cpu_count()} core(s); size "
        f"{config.size}; {config.new_tokens} new tokens (greedy, min=max); load average "
        f"{bench_caption._load_average()}")
    latency = [run_worker("latency", path, family, config, log)
               for family in config.models for path in PATHS]
    both = {"blip", "qwen2-vl"} <= set(config.models) and not args.no_memory
    memory = [run_worker("memory", path, "blip", config, log) for path in PATHS] if both else []
    print(format_tables(latency, memory, config))
    print(f"load average after: {bench_caption._load_average()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
