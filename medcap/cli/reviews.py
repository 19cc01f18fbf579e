"""`python -m medcap reviews import|stats|export`: merge, analyse and export review stores.

    python -m medcap reviews import a.csv b.csv --db reviews.sqlite
    python -m medcap reviews stats --db reviews.sqlite --out stats.json
    python -m medcap reviews export --db reviews.sqlite --out reviews.csv      # or .parquet
    python -m medcap reviews export --db reviews.sqlite --training data/reviewed \\
        --images "roco:test=eltorio/ROCOv2-radiology" --uploads uploads/
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

SUFFIXES = (".csv", ".parquet")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "reviews", help="merge, analyse and export clinician reviews",
        description="Merge exported review files into a store, compute agreement and rankings, "
                    "export reviews or training data.")
    sub = parser.add_subparsers(dest="reviews_command", required=True)

    merge = sub.add_parser("import", help="merge Export-tab CSV files into a review store",
                           description="Merge review exports (CSV, as the Export tab writes them) "
                                       "into a store. Every file is checked before anything is "
                                       "written; a row older than a different stored review is "
                                       "reported as a conflict and not applied (exit status 1).")
    merge.add_argument("files", nargs="+", type=Path, help="exported review CSV file(s)")
    _db_argument(merge)
    merge.set_defaults(_run=run_import)

    stats = sub.add_parser("stats", help="agreement, rankings with intervals, metric agreement",
                           description="Inter-reviewer agreement, per-model shares with bootstrap "
                                       "intervals, a Bradley-Terry ranking from preferences and "
                                       "Kendall's tau-b of each metric against the verdicts.")
    _db_argument(stats)
    stats.add_argument("--out", type=Path, help="write the figures as JSON here")
    stats.add_argument("--dataset", help="only reviews filed under this dataset label")
    stats.add_argument("--bootstrap", type=int, default=1000, help="bootstrap replicates (default 1000)")
    stats.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    stats.set_defaults(_run=run_stats)

    export = sub.add_parser("export", help="reviews as CSV/Parquet, or corrected captions as training data",
                            description="--out FILE.csv (the Export tab's format) or FILE.parquet; "
                                        "--training DIR: an image folder + captions.csv that "
                                        "finetune/*.py --data DIR trains on.")
    _db_argument(export)
    target = export.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", type=Path, help="reviews file: .csv or .parquet")
    target.add_argument("--training", type=Path, metavar="DIR", help="new folder for training data")
    export.add_argument("--dataset", help="only reviews filed under this dataset label")
    export.add_argument("--images", action="append", default=[], metavar="LABEL=SOURCE",
                        help="with --training: where the images of a dataset label are (image "
                             "folder, parquet or hub id; a label 'name:split' reads that split)")
    export.add_argument("--uploads", type=Path, help="with --training: the upload store folder")
    export.add_argument("--validation-share", type=float, default=0.1,
                        help="with --training: share of images held out for validation (default 0.1)")
    export.add_argument("--seed", type=int, default=0, help="with --training: validation split seed")
    export.set_defaults(_run=run_export)


def _db_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--db", type=Path, help="review store (default: MEDCAP_REVIEWS_DB / medcap.toml)")


def _settings_and_db(args) -> tuple[Any, Path]:
    from medcap.config import load_settings

    settings = load_settings()
    return settings, Path(args.db or settings.reviews_db)


def _categories(settings: Any):
    from medcap.review.categories import load_categories

    return load_categories(settings)


def _existing_store(args):
    """The store named by --db; a missing file is an error (a typo must not analyse nothing)."""
    from medcap.review.store import ReviewStore

    settings, db = _settings_and_db(args)
    if not db.is_file():
        raise CommandError(f"no review store at {db}")
    return ReviewStore(db, categories=_categories(settings))


class CommandError(Exception):
    """Printed as one line, exit status 2."""


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


# ------------------------------------------------------------------------------- import
def run_import(args) -> int:
    from medcap.review.categories import CategoryConfigError
    from medcap.review.importer import ImportFileError, import_files

    try:
        settings, db = _settings_and_db(args)
        report = import_files(db, args.files, _categories(settings))
    except (ImportFileError, CategoryConfigError) as exc:
        return _fail(f"{exc} Nothing was imported.")
    for conflict in report.conflicts:
        print(f"conflict: {conflict}", file=sys.stderr)
    print(f"{db}: {report.summary()}")
    return 1 if report.conflicts else 0


# ------------------------------------------------------------------------------- stats
def run_stats(args) -> int:
    from medcap.review.analytics import StatsSettings, stats_tables, store_stats

    if args.bootstrap < 1:
        return _fail("--bootstrap must be at least 1")
    try:
        store = _existing_store(args)
    except CommandError as exc:
        return _fail(str(exc))
    stats = store_stats(store, args.dataset, StatsSettings(bootstrap=args.bootstrap, seed=args.seed))
    if stats is None:
        return _fail(f"{store.path} has no completed reviews"
                     + (f" for dataset '{args.dataset}'" if args.dataset else ""))
    for title, table in stats_tables(stats).items():
        print(f"\n== {title} ==")
        print(table.to_string(index=False) if not table.empty else "(none)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(stats, indent=2, allow_nan=False) + "\n", encoding="utf-8")
        print(f"\nwrote {args.out}")
    return 0


# ------------------------------------------------------------------------------- export
def run_export(args) -> int:
    try:
        store = _existing_store(args)
        if args.training:
            return _export_training(store, args)
        return _export_file(store, args)
    except CommandError as exc:
        return _fail(str(exc))


def _export_file(store, args) -> int:
    from medcap.review.analytics import reviews_frame
    from medcap.review.export import export_store_csv

    suffix = args.out.suffix.lower()
    if suffix not in SUFFIXES:
        raise CommandError(f"--out must end in {' or '.join(SUFFIXES)} (got '{args.out.name}')")
    if suffix == ".csv":
        export_store_csv(store, args.out, args.dataset)
    else:  # Parquet is for programs, not spreadsheets: values as stored, no formula escaping
        args.out.parent.mkdir(parents=True, exist_ok=True)
        reviews_frame(store.iter_reviews(args.dataset), store.categories).to_parquet(args.out, index=False)
    print(f"wrote {store.count(args.dataset)} reviews to {args.out}")
    return 0


def _export_training(store, args) -> int:
    from medcap.review.training import ImageFinder, TrainingExportError, write_training_folder
    from medcap.review.uploads import UploadStore

    sources = {}
    for entry in args.images:
        label, sep, source = entry.partition("=")
        if not sep or not label.strip() or not source.strip():
            raise CommandError(f"--images takes LABEL=SOURCE (got {entry!r})")
        sources[label.strip()] = source.strip()
    if not 0 <= args.validation_share < 1:
        raise CommandError("--validation-share must be at least 0 and below 1")
    finder = ImageFinder(sources, UploadStore(args.uploads) if args.uploads else None)
    try:
        result = write_training_folder(store.iter_reviews(args.dataset), args.training, finder,
                                       validation_share=args.validation_share, seed=args.seed)
    except TrainingExportError as exc:
        raise CommandError(str(exc)) from exc
    for dataset, image_id, reason in result.skipped:
        print(f"skipped {dataset}/{image_id}: {reason}", file=sys.stderr)
    if not result.examples:
        raise CommandError(f"no reviewed item had an image, nothing to train on "
                           f"(see {args.training / 'skipped.csv'})")
    print(result.summary())
    if "validation" not in result.images:
        print("note: no validation images; train with --eval-split none (a held-out share).")
    return 0
