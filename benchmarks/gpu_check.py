"""One GPU, one table: medcap's captioning paths at real size against the targets of issue 17.

Peak memory is CUDA's allocator peak on a GPU (for vLLM, what the GPU holds: it preallocates
its KV cache), peak RSS on a CPU. Rows: BLIP-base, Qwen2-VL-2B (transformers and vLLM) and BLIP-2 OPT-6.7B (bf16 and 8-bit), each
at real size with random weights (bench_caption.py's presets, phases and equal-output token
counting), with images/s, peak GPU memory and the ratio to the seed loop. A path that does not
run is a FAILED row with its reason and the exit status is 1 (never a skip); a path that runs
but misses its target makes the status 3. `benchmarks/gpu_check.sh` is the entry point.

    bash benchmarks/gpu_check.sh                       # on the GPU machine, < 8 minutes
    python -m benchmarks.gpu_check --size tiny --device cpu --images 2   # the table logic, CPU
"""

from __future__ import annotations

import argparse
import sys
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Sequence

from benchmarks import _common, bench_caption  # bench_caption sets the offline env

GIB = 1024**3


@dataclass(frozen=True)
class Target:
    """What a row must reach: images/s at least, and/or peak memory below (GiB)."""

    min_images_per_second: float | None = None
    max_peak_gib: float | None = None

    def describe(self) -> str:
        parts = []
        if self.min_images_per_second is not None:
            parts.append(f">= {self.min_images_per_second:g} img/s")
        if self.max_peak_gib is not None:
            parts.append(f"< {self.max_peak_gib:g} GB")
        return ", ".join(parts) or "-"

    def met(self, images_per_second: float, peak_bytes: int) -> bool:
        fast = (self.min_images_per_second is None
                or images_per_second >= self.min_images_per_second)
        small = self.max_peak_gib is None or peak_bytes < self.max_peak_gib * 1e9
        return fast and small


@dataclass
class Row:
    label: str
    path: str
    target: Target
    result: bench_caption.PhaseResult | None = None
    seed_rate: float | None = None
    error: str = ""

    @property
    def status(self) -> str:
        if self.error or self.result is None:
            return "FAILED"
        met = self.target.met(self.result.images_per_second, self.result.peak_bytes)
        return "ok" if met else "below target"


@dataclass(frozen=True)
class Check:
    family: str
    path: str  # "seed", "transformers", "vllm", "8bit"
    target: Target = Target()


CHECKS = (
    Check("blip", "seed"),
    Check("blip", "transformers", Target(min_images_per_second=200)),
    Check("qwen2-vl", "seed"),
    Check("qwen2-vl", "transformers", Target(min_images_per_second=20)),
    Check("qwen2-vl", "vllm", Target(min_images_per_second=50)),
    Check("blip2", "seed"),
    Check("blip2", "transformers"),
    Check("blip2", "8bit", Target(max_peak_gib=16)),
)
PATH_NAMES = {"seed": "seed loop (fp32, 1/call)", "transformers": "medcap pipelined (transformers)",
              "vllm": "medcap vLLM backend", "8bit": "medcap pipelined, 8-bit"}


def vllm_path(family: str, model_dir: Path, images: Sequence, config: bench_caption.BenchConfig
              ) -> bench_caption.PhaseResult:
    """Qwen2-VL through medcap's vLLM backend, all images in one call (continuous batching)."""
    from medcap.models import resolve_spec
    from medcap.models.vllm_backend import create_vllm_captioner

    spec = resolve_spec(family, str(model_dir), dtype="bfloat16", max_new_tokens=config.new_tokens,
                        min_new_tokens=config.new_tokens, num_beams=1,
                        max_pixels=bench_caption.qwen_max_pixels(config))
    captioner = create_vllm_captioner(spec)
    captioner.load()
    try:
        captioner.caption(list(images[: config.warmup or 1]))
        memory = _common.PeakMemory(config.device)
        memory.reset()
        started = time.perf_counter()
        captions = captioner.caption(list(images), batch_size=len(images))
        seconds = time.perf_counter() - started
        tokens = sum(len(c.tokens) for c in captions) / max(1, len(captions))
        # vLLM preallocates its KV cache outside torch's allocator: report what the GPU holds.
        import torch

        free, total = torch.cuda.mem_get_info()
        return bench_caption.PhaseResult(model=family, path=PATH_NAMES["vllm"],
                                         images=len(images), seconds=seconds,
                                         peak_bytes=max(memory.peak_bytes(), total - free),
                                         tokens_per_image=tokens, setting=memory.label)
    finally:
        captioner.unload()


def run_check(check: Check, config: bench_caption.BenchConfig, images: Sequence,
              model_dir: Path) -> bench_caption.PhaseResult:
    if check.path == "seed":
        return bench_caption.seed_loop(check.family, model_dir, images, config)
    if check.path == "vllm":
        return vllm_path(check.family, model_dir, images, config)
    if check.path == "8bit":
        return _quantized(check.family, model_dir, images, config)
    return bench_caption.pipelined_path(check.family, model_dir, images, config)


def _quantized(family: str, model_dir: Path, images: Sequence,
               config: bench_caption.BenchConfig) -> bench_caption.PhaseResult:
    original = bench_caption._medcap_captioner

    def quantized(family: str, model_dir: Path, config: bench_caption.BenchConfig):
        from medcap.models import create_captioner, resolve_spec

        spec = resolve_spec(family, str(model_dir), device=config.device, dtype=config.dtype,
                            batch_size=config.batch_size, max_new_tokens=config.new_tokens,
                            min_new_tokens=config.new_tokens, num_beams=1, quantization="8bit")
        captioner = create_captioner(spec)
        captioner.load()
        return captioner

    bench_caption._medcap_captioner = quantized
    try:
        result = bench_caption.pipelined_path(family, model_dir, images, config)
    finally:
        bench_caption._medcap_captioner = original
    return replace(result, path=result.path + ", 8-bit")


def check_all(config: bench_caption.BenchConfig, images_per_family: dict[str, int],
              checks: Sequence[Check] = CHECKS,
              runner: Callable[..., bench_caption.PhaseResult] = run_check,
              log: Callable[[str], None] = print) -> list[Row]:
    """Run every check; one that raises becomes a FAILED row with its reason, never a skip."""
    rows: list[Row] = []
    built: dict[str, Path | Exception] = {}
    seed: dict[str, float] = {}
    for check in checks:
        label = bench_caption.LABELS["real" if config.size == "real" else config.size][check.family]
        row = Row(label=label, path=PATH_NAMES[check.path], target=check.target)
        rows.append(row)
        started = time.perf_counter()
        try:
            if check.family not in built:
                try:
                    built[check.family] = bench_caption.build_model(check.family, config)
                except Exception as exc:  # remembered: every row of this family fails
                    built[check.family] = exc
            model_dir = built[check.family]
            if isinstance(model_dir, Exception):
                raise model_dir
            images = _common.make_images(images_per_family[check.family],
                                         _common.parse_sizes(config.image_sizes))
            row.result = runner(check, config, images, model_dir)
            if check.path == "seed":
                seed[check.family] = row.result.images_per_second
            row.seed_rate = seed.get(check.family)
        except Exception as exc:
            row.error = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0] if str(exc).strip() else ''}"
            traceback.print_exc(file=sys.stderr)
        log(f"{label} / {row.path}: {row.status} ({time.perf_counter() - started:.0f} s)")
    return rows


def format_table(rows: Sequence[Row]) -> str:
    lines = ["| model | path | images/s | peak memory (GB) | vs seed loop | target | status |",
             "|---|---|---:|---:|---:|---|---|"]
    for row in rows:
        if row.result is None:
            lines.append(f"| {row.label} | {row.path} | - | - | - | {row.target.describe()} | "
                         f"FAILED: {row.error} |")
            continue
        rate = row.result.images_per_second
        ratio = f"{rate / row.seed_rate:.2f}x" if row.seed_rate else "-"
        lines.append(f"| {row.label} | {row.path} | {rate:.1f} | {row.result.peak_bytes / 1e9:.2f}"
                     f" | {ratio} | {row.target.describe()} | {row.status} |")
    return "\n".join(lines)


def exit_status(rows: Sequence[Row]) -> int:
    """1: a path did not run; 3: all ran, a target was missed; 0: all ran and met."""
    if any(row.status == "FAILED" for row in rows):
        return 1
    return 3 if any(row.status != "ok" for row in rows) else 0


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", choices=["real", "tiny"], default="real")
    p.add_argument("--device", default="cuda")
    p.add_argument("--images", type=int, default=None,
                   help="images per row (default: 512 BLIP, 128 Qwen2-VL, 64 BLIP-2)")
    p.add_argument("--new-tokens", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--only", default="", help="comma list of families to check (default: all)")
    p.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE)
    p.add_argument("--build-only", action="store_true",
                   help="build and cache the random-weight models, time nothing (gpu_check.sh "
                        "does this first, outside the 8-minute budget)")
    a = p.parse_args(argv)
    config = bench_caption.BenchConfig(size=a.size, device=a.device, new_tokens=a.new_tokens,
                                       batch_size=a.batch_size, warmup=1, cache_dir=a.cache_dir)
    counts = {"blip": 512, "qwen2-vl": 128, "blip2": 64}
    if a.images:
        counts = {family: a.images for family in counts}
    only = {f.strip() for f in a.only.split(",") if f.strip()}
    checks = [c for c in CHECKS if not only or c.family in only]
    if a.build_only:
        for family in dict.fromkeys(c.family for c in checks):
            print(f"{family}: {bench_caption.build_model(family, config)}", flush=True)
        return 0
    print(bench_caption.describe_setup(replace(config, images=max(counts.values()))), flush=True)
    rows = check_all(config, counts, checks, log=lambda s: print(s, flush=True))
    print()
    print(format_table(rows))
    status = exit_status(rows)
    print({0: "\nall paths ran and met their targets",
           1: "\nFAILED: at least one path did not run (see the table and the tracebacks above)",
           3: "\nall paths ran; at least one is below its target"}[status])
    return status


if __name__ == "__main__":
    sys.exit(main())
