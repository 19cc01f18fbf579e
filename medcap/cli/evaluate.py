"""`python -m medcap evaluate`: score a results CSV per caption and summarise it per model."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from medcap.metrics import ALL_METRICS, DEFAULT_METRICS, NORMALIZATIONS, score_captions

REQUIRED_COLUMNS = ("image_id", "original_caption", "generated_caption", "model")
KEY_COLUMNS = ("image_id", "model", "split", "modality")


@dataclass(frozen=True)
class EvaluationPaths:
    """Where the three outputs go: per-caption CSV, summary CSV and summary JSON."""

    per_caption: Path

    @property
    def summary_csv(self) -> Path:
        return self.per_caption.with_name(self.per_caption.stem + "_summary.csv")

    @property
    def summary_json(self) -> Path:
        return self.per_caption.with_name(self.per_caption.stem + "_summary.json")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="score generated captions against the originals",
        description="Score a results CSV (from `python -m medcap caption`) per caption and per model.",
    )
    parser.add_argument("--predictions", required=True, type=Path, help="results CSV from the caption command")
    parser.add_argument("--out", required=True, type=Path, help="per-caption scores CSV; the summary goes beside it (<out>_summary.csv/.json)")
    parser.add_argument("--metrics", default=",".join(DEFAULT_METRICS), help=f"comma-separated subset of {','.join(ALL_METRICS)}")
    parser.add_argument("--normalization", default="none", choices=sorted(NORMALIZATIONS), help="text normalisation before scoring (imageclef = the ImageCLEFmedical evaluator's)")
    parser.set_defaults(_run=run)


def load_predictions(path: Path) -> tuple[pd.DataFrame, int]:
    """Rows to score and the number of rows skipped because they carry an error."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in REQUIRED_COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"{path} lacks the column(s) {', '.join(missing)}; expected the caption command's output")
    failed = frame["error"].str.strip() != "" if "error" in frame.columns else pd.Series(False, index=frame.index)
    return frame.loc[~failed].reset_index(drop=True), int(failed.sum())


def evaluate_frame(frame: pd.DataFrame, metrics: list[str], normalization: str) -> tuple[pd.DataFrame, dict]:
    """Per-caption scores of every model, and the per-model summary as a JSON-ready dict."""
    score_rows, models = [], {}
    for model, group in frame.groupby("model", sort=True):
        table = score_captions(group["generated_caption"].tolist(), group["original_caption"].tolist(), metrics=metrics, normalization=normalization)
        keys = group[[c for c in KEY_COLUMNS if c in group.columns]].reset_index(drop=True)
        scored = pd.concat([keys, table.per_caption.reset_index(drop=True)], axis=1)
        score_rows.append(scored)
        models[model] = {
            "count": len(group),
            "corpus": table.corpus,
            "mean": table.mean(),
            "unavailable": table.unavailable,
            "by_modality": _by_modality(scored, table.metrics),
        }
    per_caption = pd.concat(score_rows, ignore_index=True) if score_rows else pd.DataFrame(columns=list(KEY_COLUMNS[:2]))
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
    """One row per model (and per model × modality): count, corpus_<metric>, mean_<metric>."""
    rows = []
    for model, info in models.items():
        row = {"model": model, "modality": "all", "count": info["count"]}
        row.update({f"corpus_{k}": v for k, v in info["corpus"].items()})
        row.update({f"mean_{k}": v for k, v in info["mean"].items()})
        row["unavailable"] = "; ".join(f"{k}: {v}" for k, v in info["unavailable"].items())
        rows.append(row)
        for modality, sub in info["by_modality"].items():
            rows.append({"model": model, "modality": modality, "count": sub["count"], **{f"mean_{k}": v for k, v in sub["mean"].items()}})
    return pd.DataFrame(rows)


def run(args: argparse.Namespace) -> int:
    metrics = [name.strip() for name in args.metrics.split(",") if name.strip()]
    unknown = [name for name in metrics if name not in ALL_METRICS]
    if unknown:
        print(f"error: unknown metric(s) {', '.join(unknown)}; choose from {', '.join(ALL_METRICS)}", file=sys.stderr)
        return 2
    try:
        frame, skipped = load_predictions(args.predictions)
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        print(f"error: cannot read predictions: {exc}", file=sys.stderr)
        return 2
    per_caption, models = evaluate_frame(frame, metrics, args.normalization)
    paths = EvaluationPaths(args.out)
    paths.per_caption.parent.mkdir(parents=True, exist_ok=True)
    per_caption.to_csv(paths.per_caption, index=False)
    summary_rows(models).to_csv(paths.summary_csv, index=False)
    summary = {"predictions": str(args.predictions), "normalization": args.normalization, "metrics": metrics,
               "rows_scored": len(frame), "rows_skipped_with_error": skipped, "models": models}
    paths.summary_json.write_text(json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for model, info in models.items():
        scores = ", ".join(f"{k}={v:.4f}" for k, v in info["corpus"].items())
        print(f"{model}: {info['count']} captions: {scores}")
        for name, reason in info["unavailable"].items():
            print(f"  {name} unavailable: {reason}", file=sys.stderr)
    if skipped:
        print(f"skipped {skipped} row(s) with an error", file=sys.stderr)
    print(f"wrote {paths.per_caption}, {paths.summary_csv}, {paths.summary_json}")
    return 0
