"""`python -m medcap evaluate` end to end on a small results CSV."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from medcap.cli import main
from medcap.metrics import score_captions

ROWS = [
    # image_id, original, generated, model, modality, error
    ("img1", "Axial CT of the chest showing a mass.", "Axial CT of the chest showing a mass.", "blip", "CT", ""),
    ("img2", "Sagittal MRI of the knee.", "MRI of the knee joint.", "blip", "MRI", ""),
    ("img3", "Chest radiograph with cardiomegaly.", "", "blip", "", ""),
    ("img1", "Axial CT of the chest showing a mass.", "CT image of the lungs.", "qwen2-vl", "CT", ""),
    ("img2", "Sagittal MRI of the knee.", "Knee MRI, sagittal plane.", "qwen2-vl", "MRI", ""),
    ("img3", "Chest radiograph with cardiomegaly.", "=cmd|' /C calc'!A0", "qwen2-vl", "", "CUDA out of memory"),
]


@pytest.fixture
def results_csv(tmp_path: Path) -> Path:
    frame = pd.DataFrame(ROWS, columns=["image_id", "original_caption", "generated_caption", "model", "modality", "error"])
    frame["processing_time_sec"] = 0.5
    frame["timestamp"] = "2026-11-23T10:00:00"
    frame["split"] = "test"
    path = tmp_path / "results.csv"
    frame.to_csv(path, index=False)
    return path


def test_evaluate_writes_scores_and_summaries(results_csv, tmp_path, capsys):
    out = tmp_path / "eval" / "eval.csv"
    code = main(["evaluate", "--predictions", str(results_csv), "--out", str(out), "--metrics", "bleu4,rouge_l,cider_d,bertscore", "--normalization", "imageclef"])
    assert code == 0
    scores = pd.read_csv(out, keep_default_na=False)
    assert list(scores.columns[:4]) == ["image_id", "model", "split", "modality"]
    assert len(scores) == 5  # the errored row is skipped
    blip = scores[scores["model"] == "blip"].reset_index(drop=True)
    expected = score_captions([r[2] for r in ROWS[:3]], [r[1] for r in ROWS[:3]], metrics=["bleu4", "rouge_l", "cider_d"], normalization="imageclef")
    assert blip[["bleu4", "rouge_l", "cider_d"]].to_numpy().ravel().tolist() == pytest.approx(expected.per_caption.to_numpy().ravel().tolist(), abs=1e-9)
    assert blip.loc[0, "rouge_l"] == 1.0 and blip.loc[2, "rouge_l"] == 0.0

    summary = json.loads((tmp_path / "eval" / "eval_summary.json").read_text())
    assert summary["normalization"] == "imageclef"
    assert summary["rows_skipped_with_error"] == 1 and summary["rows_scored"] == 5
    qwen = summary["models"]["qwen2-vl"]
    assert qwen["count"] == 2
    assert qwen["corpus"]["cider_d"] == pytest.approx(qwen["mean"]["cider_d"])
    assert set(qwen["by_modality"]) == {"CT", "MRI"}
    assert "bertscore" in qwen["unavailable"] and "bertscore" not in qwen["corpus"]

    table = pd.read_csv(tmp_path / "eval" / "eval_summary.csv", keep_default_na=False)
    overall = table[(table["model"] == "blip") & (table["modality"] == "all")].iloc[0]
    assert int(overall["count"]) == 3
    assert float(overall["corpus_bleu4"]) == pytest.approx(expected.corpus["bleu4"])
    assert "bertscore" in overall["unavailable"]
    assert "skipped 1 row(s)" in capsys.readouterr().err


def test_evaluate_rejects_bad_input(tmp_path, capsys):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("image_id,caption\nx,y\n")
    assert main(["evaluate", "--predictions", str(wrong), "--out", str(tmp_path / "e.csv")]) == 2
    assert "original_caption" in capsys.readouterr().err
    assert main(["evaluate", "--predictions", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "e.csv")]) == 2
    assert main(["evaluate", "--predictions", str(wrong), "--out", str(tmp_path / "e.csv"), "--metrics", "bleu9"]) == 2


def test_module_entry_point_help():
    done = subprocess.run([sys.executable, "-m", "medcap", "evaluate", "--help"], capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    assert done.returncode == 0 and "--predictions" in done.stdout and "imageclef" in done.stdout
