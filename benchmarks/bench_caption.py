"""Seed-style captioning loop vs medcap's batched path, on equal output, in one run.

The seed captioned one image per `generate` call in fp32 with preprocessing inline. medcap
batches images grouped by size, decodes under `torch.inference_mode` and runs in bf16 where the
hardware computes it natively (GPUs; CPUs with AVX512-BF16 or AMX), with SDPA. Both paths here get the same PIL images and generate exactly the same number
of tokens per image (greedy, min_new_tokens = max_new_tokens), so images/second compare like for
like. Weights are random (built from configs, no hub): the cost of a forward pass does not depend
on the values once the token count is fixed.

    python -m benchmarks.bench_caption                       # BLIP-base + Qwen2-VL (0.5B LM), CPU
    python -m benchmarks.bench_caption --size tiny --images 2  # smoke run in seconds
    python -m benchmarks.bench_caption --device cuda --size real --new-tokens 64 --images 256
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks import _common  # noqa: E402

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from medcap.models import create_captioner, resolve_spec  # noqa: E402
from medcap.models.spec import DEFAULT_QWEN_PROMPT  # noqa: E402
from medcap.pipeline import GROUP_BATCHES, prefetch_batches  # noqa: E402

MODELS = ("blip", "qwen2-vl", "blip2")
DEFAULT_MODELS = ("blip", "qwen2-vl")  # BLIP-2 OPT-6.7B is GPU-sized: ask for it by name
# full: what this 2-core CPU can run; real: the registry's models at their real sizes (GPU).
SIZES = {
    "full": {"blip": _common.BLIP_BASE, "qwen2-vl": _common.QWEN2_VL_05B_LM,
             "blip2": _common.BLIP2_OPT_67B},
    "real": {"blip": _common.BLIP_BASE, "qwen2-vl": _common.QWEN2_VL_2B,
             "blip2": _common.BLIP2_OPT_67B},
    "tiny": {"blip": _common.BLIP_TINY, "qwen2-vl": _common.QWEN2_VL_TINY,
             "blip2": _common.BLIP2_TINY},
}
LABELS = {
    "full": {"blip": "BLIP-base", "qwen2-vl": "Qwen2-VL (0.5B LM)", "blip2": "BLIP-2 OPT-6.7B"},
    "real": {"blip": "BLIP-base", "qwen2-vl": "Qwen2-VL-2B", "blip2": "BLIP-2 OPT-6.7B"},
    "tiny": {"blip": "BLIP (tiny)", "qwen2-vl": "Qwen2-VL (tiny)", "blip2": "BLIP-2 (tiny)"},
}


@dataclass
class BenchConfig:
    models: tuple[str, ...] = DEFAULT_MODELS
    size: str = "full"
    images: int = 16
    image_sizes: str = "512x512,640x512,512x640,576x576"
    batch_size: int = 8
    new_tokens: int = 32
    max_pixels: int | None = None  # Qwen2-VL; None: the size's own (224*224 full, 448*448 real)
    device: str = "cpu"
    dtype: str = "auto"  # medcap's path; the seed loop is always fp32
    quantization: str | None = None  # medcap's path: int8 on a CPU (bench_quantization compares)
    threads: int | None = None
    warmup: int = 1
    cache_dir: Path = _common.DEFAULT_CACHE


@dataclass
class PhaseResult:
    model: str
    path: str  # "seed loop ...", "medcap batched ..." or "medcap pipelined ..."
    images: int
    seconds: float
    peak_bytes: int
    tokens_per_image: float
    setting: str

    @property
    def images_per_second(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("inf")


# ---------------------------------------------------------------------------- the two paths
class _TokenCounter:
    """Wraps `model.generate` to count the tokens it really generated (proves equal output)."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.original = model.generate
        self.tokens = 0
        self.rows = 0

    def __enter__(self) -> "_TokenCounter":
        def counted(*args: Any, **kwargs: Any) -> Any:
            out = self.original(*args, **kwargs)
            sequences = out.sequences if hasattr(out, "sequences") else out
            # Without input_ids (BLIP captioning) the decoder starts from its one bos token.
            prompt = kwargs["input_ids"].shape[1] if "input_ids" in kwargs else 1
            new = sequences.shape[1] - prompt
            self.tokens += new * sequences.shape[0]
            self.rows += sequences.shape[0]
            return out

        self.model.generate = counted
        return self

    def __exit__(self, *exc: object) -> None:
        self.model.generate = self.original

    @property
    def per_image(self) -> float:
        return self.tokens / self.rows if self.rows else 0.0


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def seed_loop(family: str, model_dir: Path, images: Sequence[Image.Image],
              config: BenchConfig) -> PhaseResult:
    """The seed script's way: fp32, one image per generate call, preprocessing inline."""
    from transformers import AutoModelForImageTextToText, AutoProcessor, BlipForConditionalGeneration

    processor = AutoProcessor.from_pretrained(str(model_dir))
    if family == "blip":
        model = BlipForConditionalGeneration.from_pretrained(str(model_dir), dtype=torch.float32)
    else:
        model = AutoModelForImageTextToText.from_pretrained(str(model_dir), dtype=torch.float32)
    if family == "blip2":
        processor.tokenizer.padding_side = "left"
    model = model.to(config.device).eval()
    gen = {"max_new_tokens": config.new_tokens, "min_new_tokens": config.new_tokens,
           "do_sample": False, "num_beams": 1}

    def caption_one(image: Image.Image) -> str:
        image = image.convert("RGB")
        if family == "blip":
            inputs = processor(images=image, return_tensors="pt")
        elif family == "blip2":
            inputs = processor(images=image, text="", return_tensors="pt")
        else:
            messages = [{"role": "user", "content": [{"type": "image"},
                                                     {"type": "text", "text": DEFAULT_QWEN_PROMPT}]}]
            text = processor.apply_chat_template(messages, tokenize=False,
                                                 add_generation_prompt=True)
            inputs = processor(text=[text], images=[image], return_tensors="pt")
        inputs = inputs.to(config.device)
        with torch.no_grad():
            ids = model.generate(**inputs, **gen)
        start = 0 if family == "blip" else inputs["input_ids"].shape[1]
        return processor.batch_decode(ids[:, start:], skip_special_tokens=True)[0]

    def run(batch: Sequence[Image.Image]) -> None:
        for image in batch:
            caption_one(image)

    try:
        return _measure(family, "seed loop (fp32, 1/call)", model, images, run, config)
    finally:
        del model
        _release(config.device)


def _medcap_captioner(family: str, model_dir: Path, config: BenchConfig) -> Any:
    spec = resolve_spec(family, str(model_dir), device=config.device, dtype=config.dtype,
                        quantization=config.quantization,
                        batch_size=config.batch_size, max_new_tokens=config.new_tokens,
                        min_new_tokens=config.new_tokens, num_beams=1,
                        max_pixels=qwen_max_pixels(config) if family == "qwen2-vl" else None)
    captioner = create_captioner(spec)
    captioner.load()
    return captioner


def _medcap_phase(family: str, model_dir: Path, images: Sequence[Image.Image],
                  config: BenchConfig, kind: str,
                  make_run: Callable[[Any], Callable[[Sequence[Image.Image]], None]]
                  ) -> PhaseResult:
    """Load medcap's captioner, time `make_run(captioner)` on the images, unload."""
    captioner = _medcap_captioner(family, model_dir, config)
    dtype = str(captioner.dtype).removeprefix("torch.")
    if config.quantization:
        dtype = f"{config.quantization} weights, {dtype}"
    try:
        return _measure(family, f"medcap {kind} ({dtype}, {config.batch_size}/call)",
                        captioner.model, images, make_run(captioner), config)
    finally:
        captioner.unload()
        _release(config.device)


def batched_path(family: str, model_dir: Path, images: Sequence[Image.Image],
                 config: BenchConfig) -> PhaseResult:
    """medcap's path: create_captioner(spec).caption(images, batch_size=...)."""
    def make_run(captioner: Any) -> Callable[[Sequence[Image.Image]], None]:
        return lambda batch: captioner.caption(list(batch), batch_size=config.batch_size)

    return _medcap_phase(family, model_dir, images, config, "batched", make_run)


@dataclass
class _InMemoryRecord:
    """A dataset record whose image is already in memory (the pipeline still copies it to RGB)."""

    image_id: str
    picture: Image.Image

    def load(self) -> Any:
        return _Loaded(self.picture.convert("RGB"))


@dataclass
class _Loaded:
    image: Image.Image


def pipelined_path(family: str, model_dir: Path, images: Sequence[Image.Image],
                   config: BenchConfig) -> PhaseResult:
    """What `python -m medcap caption` does: a worker thread converts, size-groups and
    preprocesses the next batch (`prefetch_batches` + `background_preparer`) while the model
    generates the current one."""
    def make_run(captioner: Any) -> Callable[[Sequence[Image.Image]], None]:
        preparer = captioner.background_preparer()

        def run(batch: Sequence[Image.Image]) -> None:
            records = [_InMemoryRecord(str(i), image) for i, image in enumerate(batch)]
            for part in prefetch_batches(records, config.batch_size, group=GROUP_BATCHES,
                                         prepare=preparer):
                captioner.generate(part.prepared)
        return run

    return _medcap_phase(family, model_dir, images, config, "pipelined", make_run)


def _measure(family: str, path: str, model: Any, images: Sequence[Image.Image],
             run: Callable[[Sequence[Image.Image]], None], config: BenchConfig) -> PhaseResult:
    """Warm up on a few images, then time `run(images)` and its peak memory."""
    memory = _common.PeakMemory(config.device)
    if config.warmup:
        run(images[: config.warmup])
    memory.reset()
    with _TokenCounter(model) as counter:
        _sync(config.device)
        started = time.perf_counter()
        run(images)
        _sync(config.device)
        seconds = time.perf_counter() - started
    return PhaseResult(model=family, path=path, images=len(images), seconds=seconds,
                       peak_bytes=memory.peak_bytes(), tokens_per_image=counter.per_image,
                       setting=memory.label)


def _release(device: str) -> None:
    gc.collect()
    if device.startswith("cuda"):
        torch.cuda.empty_cache()


# ---------------------------------------------------------------------------- running
def qwen_max_pixels(config: BenchConfig) -> int:
    return config.max_pixels or SIZES[config.size]["qwen2-vl"].max_pixels


def build_model(family: str, config: BenchConfig) -> Path:
    size = SIZES[config.size][family]
    if family == "blip":
        return _common.build_blip(config.cache_dir, size)
    if family == "blip2":
        return _common.build_blip2(config.cache_dir, size)
    size = replace(size, max_pixels=qwen_max_pixels(config))
    return _common.build_qwen2_vl(config.cache_dir, size)


def bench_model(family: str, config: BenchConfig,
                log: Callable[[str], None] = print) -> list[PhaseResult]:
    """Seed loop, batched path and pipelined path for one model family on the same images."""
    model_dir = build_model(family, config)
    images = _common.make_images(config.images, _common.parse_sizes(config.image_sizes))
    log(f"{LABELS[config.size][family]}: {model_dir}")
    if family == "qwen2-vl":
        size = replace(SIZES[config.size][family], max_pixels=qwen_max_pixels(config))
        counts = sorted({_common.visual_tokens(im.width, im.height, size) for im in images})
        log(f"  max_pixels={size.max_pixels}: {'/'.join(map(str, counts))} visual tokens per image")
    seed = seed_loop(family, model_dir, images, config)
    log(f"  seed loop: {seed.images_per_second:.3f} images/s")
    batched = batched_path(family, model_dir, images, config)
    log(f"  batched:   {batched.images_per_second:.3f} images/s")
    pipelined = pipelined_path(family, model_dir, images, config)
    log(f"  pipelined: {pipelined.images_per_second:.3f} images/s")
    for result in (batched, pipelined):
        if result.tokens_per_image != seed.tokens_per_image:
            raise RuntimeError(f"unequal output: seed generated {seed.tokens_per_image} "
                               f"tokens/image, {result.path} {result.tokens_per_image}")
    return [seed, batched, pipelined]


def format_table(results: Sequence[PhaseResult], config: BenchConfig) -> str:
    """A Markdown table: one row per (model, path), the ratio on the batched row."""
    memory_label = results[0].setting if results else "peak memory"
    lines = [
        f"| model | path | images | new tokens/image | images/s | {memory_label} (GiB) | speed-up |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    seed_rate: dict[str, float] = {}
    for result in results:
        label = LABELS[config.size][result.model]
        if result.path.startswith("seed"):
            seed_rate[result.model] = result.images_per_second
            ratio = "1.00x"
        else:
            ratio = f"{result.images_per_second / seed_rate[result.model]:.2f}x"
        lines.append(f"| {label} | {result.path} | {result.images} | {result.tokens_per_image:g} | "
                     f"{result.images_per_second:.3f} | {result.peak_bytes / 1024**3:.2f} | {ratio} |")
    return "\n".join(lines)


def describe_setup(config: BenchConfig) -> str:
    threads = torch.get_num_threads()
    where = (torch.cuda.get_device_name() if config.device.startswith("cuda")
             else f"CPU, {threads} torch thread(s), {os.cpu_count()} core(s)")
    return (f"{where}; torch {torch.__version__}; {config.images} images "
            f"({config.image_sizes}); batch {config.batch_size}; {config.new_tokens} new tokens "
            f"(greedy, min=max); load average {_load_average()}")


def _load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "n/a"


def parse_args(argv: Sequence[str] | None = None) -> BenchConfig:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(DEFAULT_MODELS),
                   help="comma list of: blip, qwen2-vl, blip2 (blip2 is OPT-6.7B: GPU-sized)")
    p.add_argument("--size", choices=list(SIZES), default="full",
                   help="full: BLIP-base and Qwen2-VL-2B vision + 0.5B LM (CPU-sized); "
                        "real: BLIP-base, Qwen2-VL-2B, BLIP-2 OPT-6.7B; tiny: smoke test")
    p.add_argument("--images", type=int, default=16, help="images per path")
    p.add_argument("--image-sizes", default=BenchConfig.image_sizes,
                   help="comma list WxH, cycled through the images")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--new-tokens", type=int, default=32, help="generated tokens per image")
    p.add_argument("--max-pixels", type=int, default=None,
                   help="Qwen2-VL resize cap (visual tokens = pixels / 784); default 224*224 "
                        "for --size full, 448*448 (the registry's) for --size real")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "bfloat16", "float16"],
                   help="dtype of medcap's path (auto: bf16 on GPUs and on CPUs with native bf16 "
                        "such as AVX512-BF16/AMX, else fp32)")
    p.add_argument("--quantization", default=None, choices=["int8", "8bit", "4bit"],
                   help="medcap's path: int8 weights of the language model on a CPU, "
                        "8bit/4bit (bitsandbytes) on a GPU")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up images per path")
    p.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE,
                   help="where built random-weight models are kept between runs")
    a = p.parse_args(argv)
    models = tuple(m.strip() for m in a.models.split(",") if m.strip())
    unknown = set(models) - set(MODELS)
    if unknown:
        p.error(f"unknown model(s): {', '.join(sorted(unknown))}")
    return BenchConfig(models=models, size=a.size, images=a.images, image_sizes=a.image_sizes,
                       batch_size=a.batch_size, new_tokens=a.new_tokens, max_pixels=a.max_pixels,
                       device=a.device, dtype=a.dtype, quantization=a.quantization,
                       threads=a.threads, warmup=a.warmup,
                       cache_dir=a.cache_dir)


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        print("error: --device cuda but no CUDA GPU is available", file=sys.stderr)
        return 2
    if config.threads:
        torch.set_num_threads(config.threads)
    torch.set_flush_denormal(True)
    print(describe_setup(config), flush=True)
    results: list[PhaseResult] = []
    for family in config.models:
        results += bench_model(family, config, log=lambda s: print(s, flush=True))
    print()
    print(format_table(results, config))
    return 0


if __name__ == "__main__":
    sys.exit(main())
