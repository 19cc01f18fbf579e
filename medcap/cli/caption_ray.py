"""`python -m medcap caption --engine ray`: the caption job on Ray Data, for several GPUs or machines.

Ray (an existing distributed engine, optional: `pip install "ray[data]==2.60.0"`) runs the same
job as the local engine: records are read as a Ray dataset (image folder: the data layer's
records; parquet: `ray.data.read_parquet`), decoded, size-sorted and preprocessed in CPU workers
(`pipeline.decode`/`cut_window` and `Captioner.prepare` with the processor alone), captioned by an
actor pool of `Captioner`s (`--workers`, `--num-gpus-per-worker`; Qwen2-VL may use
`--backend vllm` inside the actors), and the rows come back to this process, which alone writes
the results CSV through `ResultsWriter` and `write_windows`: same columns, rows in source order
window by window, finished (image_id, model) pairs skipped on resume. `--ray-address` joins an
existing cluster (every node needs medcap and its requirements, and the images on a shared path);
without it a local Ray starts and stops with the command.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import pickle
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from medcap.models import ModelSpec

if TYPE_CHECKING:
    from medcap.results import ResultRow, ResultsWriter

INSTALL_HINT = ('--engine ray needs Ray Data: pip install "ray[data]==2.60.0" '
                '(or pip install -r requirements-ray.txt)')


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The engine flags of `medcap caption` (Ray is imported only when --engine ray runs)."""
    p.add_argument("--engine", default="local", choices=["local", "ray"],
                   help="local: this process (default); ray: a Ray Data job on a local Ray or on "
                        "the cluster at --ray-address (pip install \"ray[data]==2.60.0\")")
    p.add_argument("--workers", type=int, default=1,
                   help="--engine ray: captioning actors (model copies), e.g. one per GPU")
    p.add_argument("--num-gpus-per-worker", type=float, default=0.0,
                   help="--engine ray: GPUs each captioning actor reserves (0: CPU; 1: one GPU "
                        "each; 0.5: two actors share a GPU)")
    p.add_argument("--ray-address", default=None, metavar="ADDRESS",
                   help="--engine ray: an existing cluster (host:port or ray://host:10001); "
                        "default: start a local Ray for this command")


def missing_requirement(args: argparse.Namespace) -> str | None:
    """Why --engine ray cannot run as asked (Ray not installed, bad counts), checked before any
    work starts; None when it can, or for the local engine."""
    if getattr(args, "engine", "local") != "ray":
        return None
    if args.workers < 1:
        return f"--workers must be at least 1, got {args.workers}."
    if args.num_gpus_per_worker < 0:
        return f"--num-gpus-per-worker must be 0 or more, got {args.num_gpus_per_worker}."
    if not Path(args.images).exists():
        return (f"'{args.images}' is not a folder or parquet file here: --engine ray reads image "
                f"folders and parquet files (for a hub dataset, download its parquet files first, "
                f"e.g. hf download ID --repo-type dataset, and pass that folder).")
    try:
        import ray.data  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    return None


@contextlib.contextmanager
def session(args: argparse.Namespace) -> Iterator[None]:
    """Ray for the length of one command: joins --ray-address, or starts a local Ray and shuts
    it down afterwards; a Ray the caller already started (tests, notebooks) is used and kept."""
    if getattr(args, "engine", "local") != "ray":
        yield
        return
    import ray

    started = not ray.is_initialized()
    if started:
        ray.init(address=args.ray_address, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.WARNING, configure_logging=True)
    _quiet_ray_data(args)
    try:
        yield
    finally:
        if started:
            ray.shutdown()


def _quiet_ray_data(args: argparse.Namespace) -> None:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.execution_options.preserve_order = True  # rows come back in source order
    context.enable_progress_bars = False  # medcap's own bar counts written rows
    context.print_on_execution_start = False
    # The v2 parquet reader lists files in a task that always reserves a whole CPU, which on a
    # CPU-only run waits forever behind the captioning actors holding every core; v1 reads in
    # tasks that reserve what `_light` says.
    context.use_datasource_v2 = False
    # Captioning actors are handed whole blocks. With the default 128 MiB blocks, the batches a
    # window prepares stayed in one block and one actor captioned them all while the others
    # waited (24 images, 2 workers: 0.85x of one thread). At 1 MiB each prepared batch (MBs of
    # pixels) is a block of its own: 1.24x on 24 images, 1.54x on 72 (`benchmarks.bench_ray`).
    context.target_max_block_size = 1 << 20
    logging.getLogger("ray.data").setLevel(logging.WARNING)


def caption_with_model(spec: ModelSpec, args: argparse.Namespace, writer: "ResultsWriter") -> int:
    """Caption every pending image of the source with one model on Ray; returns rows written."""
    from tqdm import tqdm

    from medcap.cli.caption import report, write_windows
    from medcap.pipeline import Batch

    from medcap.models.registry import pin_image_budget

    vllm = getattr(args, "backend", "transformers") == "vllm"
    # The workers that prepare images see no GPU: the budget is the one the actors' device gets.
    spec = pin_image_budget(spec, "cuda" if args.num_gpus_per_worker else "cpu")
    _checked_captioner(spec, vllm).load_processor()  # a bad folder fails here, not in a worker
    started = time.perf_counter()
    done = {image_id for image_id, model in writer.done if model == spec.label}
    dataset = _captioned(_source(args, done, _light(args), _window(spec, vllm)), spec, args, vllm)
    bar = tqdm(total=args.limit, desc=spec.label, unit="img", disable=args.no_progress,
               file=sys.stderr)
    results = ((Batch(items=[], order=order, closes_window=closes), rows)
               for order, closes, rows in _results(dataset))
    try:
        written, failed = write_windows(results, writer, bar)
    finally:
        bar.close()
    gpus = args.num_gpus_per_worker
    where = (f"Ray: {args.workers} worker(s)" + (f" x {gpus:g} GPU" if gpus else " on CPU")
             + (", vLLM" if vllm else ""))
    report(spec, args, written, failed, time.perf_counter() - started, where)
    return written


def _checked_captioner(spec: ModelSpec, vllm: bool) -> Any:
    from medcap.models import create_captioner

    if vllm:
        from medcap.models.vllm_backend import create_vllm_captioner

        return create_vllm_captioner(spec)
    return create_captioner(spec)


# ---------------------------------------------------------------------------- the dataset
def _light(args: argparse.Namespace) -> float:
    """CPUs reserved by each reading/preprocessing worker: on a CPU-only run the captioning
    actors reserve the cores (one each) and this light work shares them, so it never waits for
    a core those actors hold for the whole job; with GPUs it reserves one core as usual."""
    return 1.0 if args.num_gpus_per_worker else 0.0


def _source(args: argparse.Namespace, done: set[str], cpus: float, window: int) -> Any:
    """The pending records as a Ray dataset: one row per image, in source order."""
    import ray.data

    from medcap.data import iter_records
    from medcap.data.parquet import parquet_files_for, parquet_shards

    path = Path(args.images)  # exists: checked by missing_requirement
    records = iter_records(path, split=args.split, limit=args.limit)  # the data layer's checks
    if path.is_file() or parquet_shards(path):
        files = parquet_files_for(path, args.split)
        _require_image_ids(files)
        dataset = ray.data.read_parquet([str(f) for f, _ in files], include_paths=True,
                                        columns=_parquet_columns(files[0][0]), num_cpus=cpus,
                                        override_num_blocks=_blocks(files, window))
        if args.limit is not None:
            dataset = dataset.limit(args.limit)
        splits = {str(f.resolve()): s for f, s in files}
        return dataset.map_batches(_parquet_records, fn_kwargs={"splits": splits, "done": done},
                                   batch_format="pyarrow", num_cpus=cpus)
    import ray.cloudpickle

    items = [{"image_id": r.image_id, "record": ray.cloudpickle.dumps(r)} for r in records
             if r.image_id not in done]
    # About one block per window: blocks are what Ray hands to actors, so windows spread out.
    return ray.data.from_items(items, override_num_blocks=max(1, -(-len(items) // window)))


def _blocks(files: list[tuple[Path, str | None]], window: int) -> int:
    """About one read block per window of rows (from the footers' row counts)."""
    import pyarrow.parquet as pq

    rows = sum(pq.ParquetFile(path).metadata.num_rows for path, _ in files)
    return max(len(files), -(-rows // window))


def _parquet_columns(path: Path) -> list[str]:
    import pyarrow.parquet as pq

    from medcap.data.parquet import ROCOV2_COLUMNS

    names = pq.ParquetFile(path).schema_arrow.names
    return [c for c in ROCOV2_COLUMNS if c in names]


def _require_image_ids(files: list[tuple[Path, str | None]]) -> None:
    """Ray reads rows without their row numbers, which name rows that have no image_id."""
    import pyarrow.parquet as pq

    from medcap.data import DataSourceError

    for path, _ in files:
        if "image_id" not in pq.ParquetFile(path).schema_arrow.names:
            raise DataSourceError(f"'{path}' has no image_id column; --engine ray needs one "
                                  f"(the local engine names rows by their number).")
        ids = pq.read_table(path, columns=["image_id"]).column(0).to_pylist()
        if any(not (i or "").strip() for i in ids):
            raise DataSourceError(f"'{path}' has rows without an image_id; --engine ray needs "
                                  f"one in every row (the local engine names them by number).")


def _parquet_records(table: Any, splits: dict[str, str | None], done: set[str]
                     ) -> dict[str, list]:
    """Parquet rows -> the Records the local reader makes (`record_from_row`), pickled; rows
    already captioned by this model are dropped before anything is decoded."""
    import ray.cloudpickle

    from medcap.data.rows import record_from_row

    ids, records = [], []
    for row in table.to_pylist():
        path = Path(row.pop("path"))
        record = record_from_row(row, fallback_id="", where=f"'{path.name}'",
                                 split=splits.get(str(path.resolve()), splits.get(str(path))))
        if record.image_id not in done:
            ids.append(record.image_id)
            records.append(ray.cloudpickle.dumps(record))
    return {"image_id": ids, "record": records}


# ---------------------------------------------------------------------------- the two stages
def _captioned(dataset: Any, spec: ModelSpec, args: argparse.Namespace, vllm: bool) -> Any:
    """Decode + size-sort + preprocess in CPU workers, then caption in an actor pool.

    Windows are cut like the local engine's (batch_size x GROUP_BATCHES images, sorted by size;
    vLLM batches by itself, so its windows are one unsorted batch).
    """
    from ray.data import ActorPoolStrategy

    window = _window(spec, vllm)
    group = window // spec.batch_size
    prepared = dataset.map_batches(
        _Prepare, fn_constructor_args=(spec, vllm, group), batch_size=window,
        batch_format="pyarrow", compute=ActorPoolStrategy(min_size=1, max_size=args.workers),
        num_cpus=_light(args))
    return prepared.map_batches(
        _Caption, fn_constructor_args=(spec, vllm), batch_size=1, batch_format="pyarrow",
        # One block at a time per actor: a busy actor does not queue work an idle one could take.
        compute=ActorPoolStrategy(size=args.workers, max_tasks_in_flight_per_actor=1),
        num_cpus=1,
        num_gpus=args.num_gpus_per_worker)


def _window(spec: ModelSpec, vllm: bool) -> int:
    from medcap.pipeline import GROUP_BATCHES

    return spec.batch_size * (1 if vllm else GROUP_BATCHES)


def _bare(record: Any) -> Any:
    """The record without its loader (which may hold the image bytes): what rows need."""
    from medcap.data import Record

    return Record(image_id=record.image_id, caption=record.caption, cuis=record.cuis,
                  modality=record.modality, split=record.split)


class _Prepare:
    """CPU worker: one window of records -> pickled `Batch`es with the processor's inputs."""

    def __init__(self, spec: ModelSpec, vllm: bool, group: int) -> None:
        self.batch_size, self.group = spec.batch_size, group
        self.captioner = None if vllm else _checked_captioner(spec, vllm)
        self.processor = self.captioner.load_processor() if self.captioner else None

    def __call__(self, table: Any) -> Iterator[dict[str, list]]:
        """Yields each prepared batch on its own, so none waits for the window's last one (and,
        with `_quiet_ray_data`'s block size, each lands in a block of its own)."""
        import ray.cloudpickle

        from medcap.pipeline import cut_window, decode

        records = [ray.cloudpickle.loads(blob) for blob in table.column("record").to_pylist()]
        window = [(n, decode(record)) for n, record in enumerate(records)]
        for batch in cut_window(window, self.batch_size, group=self.group > 1):
            if self.captioner is not None and batch.images:
                try:
                    batch.prepared = self.captioner.prepare(batch.images, processor=self.processor)
                except Exception:  # captioned image by image in the actor, errors on their rows
                    batch.prepared = None
            batch.items = [(_bare(record), image, error) for record, image, error in batch.items]
            yield {"batch": [pickle.dumps(batch)]}


class _Caption:
    """Captioning actor: loads the model once, turns each prepared batch into result rows."""

    def __init__(self, spec: ModelSpec, vllm: bool) -> None:
        self.spec = spec
        self.captioner = _checked_captioner(spec, vllm)
        self.captioner.load()

    def __call__(self, table: Any) -> dict[str, list]:
        from medcap.cli.caption import caption_rows

        out = []
        for blob in table.column("batch").to_pylist():
            batch = pickle.loads(blob)
            rows = caption_rows(self.captioner, self.spec, batch)
            out.append(pickle.dumps((batch.order, batch.closes_window, rows)))
        return {"result": out}


def _results(dataset: Any) -> Iterator[tuple[list[int], bool, list["ResultRow"]]]:
    """(positions in the window, closes the window, rows) per batch, in source order."""
    for row in dataset.iter_rows():
        yield pickle.loads(row["result"])
