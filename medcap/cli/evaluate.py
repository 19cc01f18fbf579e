"""`python -m medcap evaluate`: score a results CSV per caption and summarise it per model.

`--protocol` picks whose definitions the scores follow: medcap's own metric set (default) or an
official evaluator reproduced exactly (ImageCLEFmedical 2022/2023/2025, pycocoevalcap's COCO);
see `medcap.metrics.protocols`. The file formats belong to `medcap.results`.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from medcap.metrics import DEFAULT_METRICS, NORMALIZATIONS, BertScoreConfig, MetricsConfig, score_captions
from medcap.metrics.protocols import DEFAULT_PROTOCOL, PROTOCOLS, score_protocol
from medcap.metrics.scoring import known_metrics, loaded_bertscore_layers
from medcap.results import EvaluationPaths, read_results_csv, write_evaluation

REQUIRED_COLUMNS = ("image_id", "original_caption", "generated_caption", "model")
KEY_COLUMNS = ("image_id", "model", "split", "modality", "generated_caption", "original_caption")

# Re-exported for callers of the old location; the format lives in medcap.results.
__all__ = ["EvaluationPaths", "add_parser", "evaluate_frame", "load_predictions", "run", "summary_rows"]


@dataclass
class Predictions:
    """The rows to score, and what was left out and why."""

    frame: pd.DataFrame
    skipped_with_error: int = 0
    duplicates: int = 0
    duplicate_examples: list[str] = field(default_factory=list)


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score generated captions against the originals",
        description="Score a results CSV (from `python -m medcap caption`) per caption and per model.",
    )
    parser.add_argument("--predictions", required=True, type=Path, help="results CSV from the caption command")
    parser.add_argument("--out", required=True, type=Path, help="per-caption scores CSV; the summary goes beside it (<out>_summary.csv/.json)")
    parser.add_argument("--protocol", default=DEFAULT_PROTOCOL, choices=list(PROTOCOLS),
                        help="whose definitions to follow: medcap (default: --metrics/--normalization), or an official evaluator reproduced exactly")
    parser.add_argument("--metrics", default=None, help=f"medcap protocol only: comma-separated subset of {','.join(known_metrics())}")
    parser.add_argument("--normalization", default=None, choices=sorted(NORMALIZATIONS), help="medcap protocol only: text normalisation before scoring (imageclef = the ImageCLEFmedical evaluator's)")
    parser.add_argument("--bertscore-model", default=None, help="BERTScore model: hub id in the local cache or a local folder (default: MEDCAP_BERTSCORE_MODEL or microsoft/deberta-xlarge-mnli)")
    parser.add_argument("--bertscore-layers", type=_positive_int, default=None, help="BERTScore layer (default: bert-score's for the model, else its last layer)")
    parser.add_argument("--bertscore-idf", action=argparse.BooleanOptionalAction, default=None, help="IDF weights from the references (default: on; imageclef-2023: off)")
    parser.add_argument("--bertscore-batch-size", type=_positive_int, default=32, help="sentences embedded at once (speed only; scores do not depend on it)")
    parser.set_defaults(_run=run)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be 1 or more")
    return value


def load_predictions(path: Path) -> Predictions:
    """Rows to score: error rows dropped, each (image_id, model) once (the last row wins)."""
    frame = read_results_csv(path, required=REQUIRED_COLUMNS)
    failed = frame["error"].str.strip() != "" if "error" in frame.columns else pd.Series(False, index=frame.index)
    frame = frame.loc[~failed]
    duplicated = frame.duplicated(["image_id", "model"], keep="last")
    examples = [f"{i}/{m}" for i, m in frame.loc[duplicated, ["image_id", "model"]].drop_duplicates().head(3).itertuples(index=False)]
    frame = frame.loc[~duplicated].reset_index(drop=True)
    return Predictions(frame, int(failed.sum()), int(duplicated.sum()), examples)


def bertscore_config(args: argparse.Namespace) -> BertScoreConfig:
    """The protocol's BERTScore settings with the command line's overrides."""
    base = PROTOCOLS[args.protocol].bertscore or BertScoreConfig()
    changes = {"batch_size": args.bertscore_batch_size}
    if args.bertscore_model:
        changes["model"] = args.bertscore_model
    if args.bertscore_layers is not None:
        changes["num_layers"] = args.bertscore_layers
    if args.bertscore_idf is not None:
        changes["idf"] = args.bertscore_idf
    return replace(base, **changes)


def _score_model(group: pd.DataFrame, args: argparse.Namespace, metrics: list[str], config: MetricsConfig) -> tuple[pd.DataFrame, dict]:
    candidates, references = group["generated_caption"].tolist(), group["original_caption"].tolist()
    if args.protocol == DEFAULT_PROTOCOL:
        table = score_captions(candidates, references, metrics=metrics, normalization=args.normalization or "none", config=config)
        per_caption, info = table.per_caption, {"corpus": table.corpus, "mean": table.mean(), "unavailable": table.unavailable}
    else:
        scores = score_protocol(args.protocol, candidates, references, config)
        per_caption = scores.per_caption
        info = {"corpus": scores.corpus, "mean": {k: float(per_caption[k].mean()) for k in per_caption.columns},
                "official": scores.official, "unavailable": scores.unavailable}
        if scores.notes:
            info["notes"] = scores.notes
        if scores.composites:
            info["composites"] = scores.composites
    return per_caption, info


def evaluate_frame(frame: pd.DataFrame, args: argparse.Namespace, metrics: list[str], config: MetricsConfig) -> tuple[pd.DataFrame, dict]:
    """Per-caption scores of every model, and the per-model summary as a JSON-ready dict."""
    score_rows, models = [], {}
    for model, group in frame.groupby("model", sort=True):
        per_caption, info = _score_model(group, args, metrics, config)
        keys = group[[c for c in KEY_COLUMNS if c in group.columns]].reset_index(drop=True)
        scored = pd.concat([keys, per_caption.reset_index(drop=True)], axis=1)
        score_rows.append(scored)
        numeric = [c for c in per_caption.columns if pd.api.types.is_numeric_dtype(per_caption[c])]  # not fact_contradictions' text
        models[model] = {"count": len(group), **info, "by_modality": _by_modality(scored, numeric)}
    per_caption = pd.concat(score_rows, ignore_index=True) if score_rows else pd.DataFrame(columns=list(KEY_COLUMNS))
    return per_caption, models


def _by_modality(scored: pd.DataFrame, metrics: list[str]) -> dict:
    if "modality" not in scored.columns:
        return {}
    known = scored[scored["modality"].str.strip() != ""]
    return {
        modality: {"count": len(rows), "mean": {name: float(rows[name].mean()) for name in metrics}}
        for modality, rows in known.groupby("modality", sort=True)
    }


def summary_rows(models: dict) -> pd.DataFrame:
    """One row per model (and per model × modality): count, corpus_<metric>, mean_<metric>, official_<name>."""
    rows = []
    for model, info in models.items():
        row = {"model": model, "modality": "all", "count": info["count"]}
        row.update({f"corpus_{k}": v for k, v in info["corpus"].items()})
        row.update({f"mean_{k}": v for k, v in info["mean"].items()})
        row.update({f"official_{k}": v for k, v in info.get("official", {}).items()})
        row["unavailable"] = "; ".join(f"{k}: {v}" for k, v in info["unavailable"].items())
        rows.append(row)
        for modality, sub in info["by_modality"].items():
            rows.append({"model": model, "modality": modality, "count": sub["count"], **{f"mean_{k}": v for k, v in sub["mean"].items()}})
    return pd.DataFrame(rows)


def _parse_metrics(args: argparse.Namespace) -> list[str]:
    metrics = [name.strip() for name in (args.metrics or ",".join(DEFAULT_METRICS)).split(",") if name.strip()]
    unknown = [name for name in metrics if name not in known_metrics()]
    if unknown:
        raise ValueError(f"unknown metric(s) {', '.join(unknown)}; choose from {', '.join(known_metrics())}")
    if args.protocol != DEFAULT_PROTOCOL and (args.metrics or args.normalization):
        raise ValueError(f"--metrics and --normalization belong to the medcap protocol; {args.protocol} scores what its evaluator scores")
    return metrics


def _summary(args, metrics, predictions: Predictions, models: dict, config: MetricsConfig) -> dict:
    protocol = PROTOCOLS[args.protocol]
    summary = {"predictions": str(args.predictions), "protocol": protocol.name, "evaluator": protocol.evaluator}
    if args.protocol == DEFAULT_PROTOCOL:
        summary.update({"normalization": args.normalization or "none", "metrics": metrics})
    if args.protocol in ("imageclef-2023", "imageclef-2025") or any(m.startswith("bertscore") for m in metrics) and args.protocol == DEFAULT_PROTOCOL:
        summary["bertscore"] = {"model": config.bertscore.model, "layers": loaded_bertscore_layers(config) or config.bertscore.num_layers,
                                "idf": config.bertscore.idf}
    deviations = _deviations(args)
    if deviations:
        summary["deviations_from_evaluator"] = deviations
    summary.update({"rows_scored": len(predictions.frame), "rows_skipped_with_error": predictions.skipped_with_error,
                    "duplicate_rows_dropped": predictions.duplicates, "models": models})
    return summary


def _deviations(args: argparse.Namespace) -> list[str]:
    """Command-line BERTScore settings that differ from the protocol's evaluator (not official numbers)."""
    official = PROTOCOLS[args.protocol].bertscore
    if official is None:
        return []
    chosen = bertscore_config(args)
    def shown(value: object) -> str:
        return "bert-score's default layer (40 for deberta-xlarge-mnli)" if value is None else repr(value)

    return [f"bertscore {name} {shown(getattr(chosen, name))} (the evaluator uses {shown(getattr(official, name))})"
            for name in ("model", "num_layers", "idf") if getattr(chosen, name) != getattr(official, name)]


def _fail(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    try:
        metrics = _parse_metrics(args)
        paths = EvaluationPaths(args.out)
        paths.check_writable(inputs=[args.predictions])
        predictions = load_predictions(args.predictions)
    except FileNotFoundError as exc:
        return _fail(f"cannot read predictions: {exc.filename} does not exist")
    except (OSError, ValueError) as exc:
        return _fail(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
    config = MetricsConfig(bertscore=bertscore_config(args))
    per_caption, models = evaluate_frame(predictions.frame, args, metrics, config)
    try:
        write_evaluation(paths, per_caption, summary_rows(models), _summary(args, metrics, predictions, models, config))
    except OSError as exc:
        return _fail(f"cannot write {exc.filename or paths.per_caption}: {exc.strerror or exc}")
    _report(args.protocol, models, predictions)
    for deviation in _deviations(args):
        print(f"note: not the official setting: {deviation}", file=sys.stderr)
    print(f"wrote {paths.per_caption}, {paths.summary_csv}, {paths.summary_json}")
    return 0


def _report(protocol: str, models: dict, predictions: Predictions) -> None:
    for model, info in models.items():
        scores = info.get("official") or info["corpus"]
        print(f"{model}: {info['count']} captions ({protocol}): " + ", ".join(f"{k}={v:.4f}" for k, v in scores.items()))
        for note in info.get("notes", []):
            print(f"  {note}")
        by_reason: dict[str, list[str]] = {}
        for name, reason in info["unavailable"].items():
            by_reason.setdefault(reason, []).append(name)
        for reason, names in by_reason.items():
            print(f"  {', '.join(names)} unavailable: {reason}", file=sys.stderr)
        for name, composite in info.get("composites", {}).items():
            if composite["value"] is None:
                print(f"  {name}: not computed, needs {', '.join(composite['missing'])}", file=sys.stderr)
    if predictions.skipped_with_error:
        print(f"skipped {predictions.skipped_with_error} row(s) with an error", file=sys.stderr)
    if predictions.duplicates:
        print(f"dropped {predictions.duplicates} duplicate (image_id, model) row(s), scoring the last of each "
              f"(e.g. {', '.join(predictions.duplicate_examples)})", file=sys.stderr)
