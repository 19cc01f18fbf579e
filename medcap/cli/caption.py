"""`python -m medcap caption`: caption a folder or a ROCOv2 split with several models into one CSV.

Models run one after another (only one is in memory at a time). Results are appended batch by
batch; a rerun with the same --out skips every (image_id, model) pair already there, so an
interrupted job resumes where it stopped. --overwrite writes a fresh CSV beside the old one and
swaps it in at the end, so a failed or interrupted fresh start loses nothing. An image that
cannot be read becomes a row with the reason in `error`; a model that cannot be loaded is
reported and the other models still run.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any, Callable, Iterable, Iterator

from tqdm import tqdm

from medcap.cli import caption_ray
from medcap.models import (
    Caption, ModelLoadError, ModelSpec, create_captioner, parse_model_arg, resolve_spec,
)
from medcap.models.errors import first_line
from medcap.models.registry import takes_prompt
from medcap.pipeline import GROUP_BATCHES, Batch, prefetch_batches
from medcap.results import ResultRow, ResultsFileError, ResultsWriter


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "caption",
        help="caption images with one or more models into a results CSV",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--model", action="append", required=True, metavar="NAME[=ID_OR_DIR]",
                   help="registered name (blip, blip2, blip2-lora, qwen2-vl) optionally with a hub "
                        "id, model folder, adapter folder or fine-tune run folder; repeatable")
    p.add_argument("--images", required=True, metavar="SOURCE",
                   help="image folder (optional captions.csv), ROCOv2 parquet file/folder, or a "
                        "hub dataset id such as eltorio/ROCOv2-radiology")
    p.add_argument("--out", required=True,
                   help="results CSV (appended to and resumed; with --overwrite, replaced once the "
                        "new run has finished)")
    p.add_argument("--split", default=None, help="dataset split (ROCOv2: train/validation/test)")
    p.add_argument("--limit", type=int, default=None, help="caption at most this many images")
    p.add_argument("--batch-size", type=int, default=None, help="images per generate call")
    p.add_argument("--adapter", action="append", default=[], metavar="NAME=DIR",
                   help="LoRA adapter folder for the model NAME; repeatable")
    p.add_argument("--prompt", action="append", default=[], metavar="[NAME=]TEXT",
                   help="prompt (Qwen2-VL instruction, BLIP/BLIP-2 text prefix); without NAME= it "
                        "applies to every qwen2-vl model")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--num-beams", type=int, default=None)
    p.add_argument("--max-pixels", type=int, default=None,
                   help="Qwen2-VL: resize so width*height <= this (visual tokens = pixels/784)")
    p.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:1, mps")
    p.add_argument("--dtype", default=None, choices=["auto", "float32", "bfloat16", "float16"])
    p.add_argument("--quantization", default=None, choices=["8bit", "4bit", "int8"],
                   help="8bit/4bit: bitsandbytes (CUDA only), e.g. for BLIP-2 6.7B; int8: "
                        "weight-only int8 of the language model on a CPU (optimum-quanto)")
    p.add_argument("--backend", default="transformers", choices=["transformers", "vllm"],
                   help="vllm: serve Qwen2-VL models through a vLLM engine (CUDA + pip install "
                        "vllm; use a large --batch-size such as 256 so it can batch continuously)")
    caption_ray.add_arguments(p)
    p.add_argument("--overwrite", action="store_true", help="start a fresh CSV instead of resuming")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(_run=run)


def _named_values(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise ModelLoadError(f"{flag} expects NAME=VALUE, got '{value}'.")
        out[name.strip()] = rest
    return out


def _prompts(values: list[str], names: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if sep and name.strip() in names:
            out[name.strip()] = rest
        else:
            out["*"] = value
    return out


def build_specs(args: argparse.Namespace) -> tuple[list[ModelSpec], list[str]]:
    """Specs for each --model; problems (unknown names, bad folders) come back as messages."""
    specs, problems = [], []
    try:
        adapters = _named_values(args.adapter, "--adapter")
    except ModelLoadError as exc:
        return [], [str(exc)]
    names = [parse_model_arg(m)[0] for m in args.model if m.split("=")[0].strip()]
    prompts = _prompts(args.prompt, names)
    for entry in args.model:
        try:
            name, source = parse_model_arg(entry)
            overrides = {
                "batch_size": args.batch_size, "max_new_tokens": args.max_new_tokens,
                "num_beams": args.num_beams, "device": args.device, "dtype": args.dtype,
                "quantization": args.quantization, "max_pixels": args.max_pixels,
            }
            spec = resolve_spec(name, source, **overrides)
            if name in adapters:
                spec = spec.with_overrides(adapter=adapters[name])
            prompt = prompts.get(name) or (prompts.get("*") if takes_prompt(spec) else None)
            if prompt:
                spec = spec.with_overrides(prompt=prompt)
            specs.append(spec)
        except ModelLoadError as exc:
            problems.append(str(exc))
    labels = [s.label for s in specs]
    duplicates = {label for label in labels if labels.count(label) > 1}
    if duplicates:
        problems.append(f"Two --model entries share the name {', '.join(sorted(duplicates))}; "
                        f"give each a different NAME (e.g. --model blip-ft=/path).")
        specs = [s for s in specs if s.label not in duplicates]
    return specs, problems


def _pending(records: Iterator, writer: ResultsWriter, model: str) -> Iterator:
    for record in records:
        if not writer.is_done(record.image_id, model):
            yield record


def caption_with_model(spec: ModelSpec, args: argparse.Namespace, writer: ResultsWriter) -> int:
    """Caption every pending image of the source with one model; returns the rows written.

    Ends with one summary line on stderr: count, wall time, images/s, and the device and
    precision the model really ran in (dtype "auto" depends on the machine). The model is
    unloaded afterwards, so the next one finds the (GPU) memory free.
    """
    if getattr(args, "engine", "local") == "ray":
        return caption_ray.caption_with_model(spec, args, writer)
    vllm = getattr(args, "backend", "transformers") == "vllm"
    if vllm:
        from medcap.models.vllm_backend import create_vllm_captioner

        captioner = create_vllm_captioner(spec)
    else:
        captioner = create_captioner(spec)
    try:
        captioner.load()  # fail fast, before reading any image
        return _caption_all(captioner, spec, args, writer, vllm)
    finally:
        captioner.unload()


def _caption_all(captioner: Any, spec: ModelSpec, args: argparse.Namespace,
                 writer: ResultsWriter, vllm: bool) -> int:
    from medcap.data import iter_records

    started = time.perf_counter()
    records = _pending(iter_records(args.images, split=args.split, limit=args.limit), writer,
                       spec.label)
    bar = tqdm(total=args.limit, desc=spec.label, unit="img", disable=args.no_progress,
               file=sys.stderr)
    # vLLM batches and preprocesses by itself; the transformers path gets the next batch decoded,
    # size-grouped and preprocessed in a worker thread while it generates.
    feed = (prefetch_batches(records, spec.batch_size) if vllm else
            prefetch_batches(records, spec.batch_size, group=GROUP_BATCHES,
                             prepare=_or_none(captioner.background_preparer())))
    results = ((batch, caption_rows(captioner, spec, batch)) for batch in feed)
    try:
        written, failed = write_windows(results, writer, bar)
    finally:
        feed.close()  # stops the worker thread at once, also when a write failed
        bar.close()
    where = ("vLLM engine" if vllm else
             f"{str(captioner.dtype).removeprefix('torch.')} on {captioner.device}")
    report(spec, args, written, failed, time.perf_counter() - started, where)
    return written


def caption_rows(captioner: Any, spec: ModelSpec, batch: Batch) -> list[ResultRow]:
    """One result row per batch item, in the batch's order; every engine writes these."""
    rows: list[ResultRow] = []
    for (rec, _, err), outcome in zip(batch.items, _caption_batch(captioner, batch)):
        caption = outcome if isinstance(outcome, Caption) else None
        rows.append(ResultRow(
            image_id=rec.image_id, original_caption=rec.caption or "",
            generated_caption=caption.text if caption else "",
            processing_time_sec=caption.seconds if caption else 0.0,
            model=spec.label, timestamp=ResultRow.now(), split=rec.split or "",
            modality=rec.modality or "", model_source=spec.describe(),
            error=err or (outcome if isinstance(outcome, str) else ""),
        ))
    return rows


def write_windows(results: Iterable[tuple[Batch, list[ResultRow]]], writer: ResultsWriter,
                  bar: Any) -> tuple[int, int]:
    """Write each size-sorted window's rows in source order once its last batch is in;
    returns (rows written, rows with an error). The one place that orders the CSV's rows."""
    window: list[tuple[int, ResultRow]] = []
    written = failed = 0
    for batch, rows in results:
        failed += sum(1 for row in rows if row.error)
        window += zip(batch.order, rows)
        bar.update(len(rows))
        if batch.closes_window:
            writer.write([row for _, row in sorted(window, key=lambda entry: entry[0])])
            written += len(window)
            window = []
    return written, failed


def report(spec: ModelSpec, args: argparse.Namespace, written: int, failed: int,
           seconds: float, where: str) -> None:
    """The one summary line per model on stderr: count, wall time, images/s, where it ran."""
    good = written - failed  # the images/s is the model's: rows with an error do not count
    rate = f", {good / seconds:.2f} images/s" if good and seconds > 0 else ""
    errors = f"; {failed} of them with an error (see the error column)" if failed else ""
    print(f"{spec.label}: captioned {written} new image(s) in {_duration(seconds)}{rate} "
          f"({where}) -> {args.out}{errors}", file=sys.stderr)


def _or_none(prepare: Callable[..., Any]) -> Callable[..., Any]:
    """`prepare` that gives None instead of raising, so a batch the processor rejects is
    captioned image by image in the main thread, where each failure is reported on its row."""
    def tolerant(images: Any) -> Any:
        try:
            return prepare(images)
        except Exception:
            return None
    return tolerant


def _caption_batch(captioner: Any, batch: Batch) -> list[Caption | str | None]:
    """One outcome per batch item: its Caption, an error text, or None when it did not decode.

    A batch that fails as a whole (one image the processor rejects, say, an aspect ratio
    Qwen2-VL refuses) is retried image by image, so one bad image costs one row, not the run.
    """
    good = [i for i, (_, image, err) in enumerate(batch.items) if err is None and image is not None]
    outcomes: list[Caption | str | None] = [None] * len(batch.items)
    try:
        if batch.prepared is not None:
            captions = captioner.generate(batch.prepared)
        else:
            captions = captioner.caption([batch.items[i][1] for i in good]) if good else []
    except Exception:
        captions = None  # retried image by image below
    if captions is not None:
        for i, caption in zip(good, captions):
            outcomes[i] = caption
        return outcomes
    for i in good:
        try:
            outcomes[i] = captioner.caption([batch.items[i][1]])[0]
        except Exception as exc:
            outcomes[i] = f"could not be captioned: {type(exc).__name__}: {first_line(exc)}"
    return outcomes


def _duration(seconds: float) -> str:
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    if hours:
        return f"{hours}h {minutes:02d}m {secs:02d}s"
    return f"{minutes}m {secs:02d}s" if minutes else f"{seconds:.1f} s"


NUMBER_FLAGS = ("limit", "batch_size", "max_new_tokens", "num_beams", "max_pixels")


def number_problems(args: argparse.Namespace) -> list[str]:
    """One line per count flag below 1 (argparse only checks that it is a whole number)."""
    return [f"--{name.replace('_', '-')} must be 1 or more, not {value}."
            for name in NUMBER_FLAGS if (value := getattr(args, name, None)) is not None and value < 1]


def run(args: argparse.Namespace) -> int:
    """Check every argument and the image source before touching --out, then caption. With
    --overwrite the new CSV replaces the old one only once the run has finished."""
    from medcap.data import DataSourceError, iter_records

    problems = number_problems(args)
    specs, spec_problems = build_specs(args) if not problems else ([], [])
    problems += spec_problems
    for problem in problems:
        print(f"error: {problem}", file=sys.stderr)
    if not specs:
        return 2
    missing = caption_ray.missing_requirement(args)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 2
    try:
        iter_records(args.images, split=args.split, limit=args.limit)  # checks the source now
        writer = ResultsWriter(args.out, overwrite=args.overwrite)
    except (DataSourceError, ResultsFileError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"error: cannot write {args.out}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    if writer.repaired_bytes:
        print(f"note: cut a torn last line ({writer.repaired_bytes} bytes) from {args.out}, "
              f"left by an interrupted run", file=sys.stderr)
    if writer.done:
        print(f"resuming: {len(writer.done)} (image, model) results already in {args.out}",
              file=sys.stderr)
    try:
        with caption_ray.session(args):  # starts or joins Ray for --engine ray; else nothing
            code = _caption_every_model(specs, args, writer, failed=bool(problems))
    finally:
        writer.discard()  # an overwriting run that did not commit leaves the old CSV as it was
    return code


def _caption_every_model(specs: list[ModelSpec], args: argparse.Namespace, writer: ResultsWriter,
                         failed: bool) -> int:
    from medcap.data import DataSourceError

    ran = False
    for spec in specs:
        try:
            caption_with_model(spec, args, writer)
            ran = True
        except ModelLoadError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed = True
        except DataSourceError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    if not ran:
        if args.overwrite:
            print(f"note: no model ran, so {args.out} was left as it was", file=sys.stderr)
        return 1
    writer.commit()
    return 1 if failed else 0
