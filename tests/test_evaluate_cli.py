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


def test_protocol_summary_has_official_names_and_the_csv_carries_captions(results_csv, tmp_path):
    from medcap.results import read_evaluation_csv

    out = tmp_path / "eval.csv"
    assert main(["evaluate", "--predictions", str(results_csv), "--out", str(out), "--protocol", "imageclef-2022"]) == 0
    summary = json.loads((tmp_path / "eval_summary.json").read_text())
    assert summary["protocol"] == "imageclef-2022"
    assert set(summary["models"]["blip"]["official"]) == {"bleu", "rouge1"}
    frame = read_evaluation_csv(out)
    blip = frame[frame["model"] == "blip"].set_index("image_id")
    assert blip.loc["img2", "generated_caption"] == "MRI of the knee joint."
    assert blip.loc["img2", "original_caption"] == "Sagittal MRI of the knee."
    assert blip.loc["img1", "bleu"] == pytest.approx(1.0) and frame["rouge1"].dtype.kind == "f"
    assert summary["models"]["blip"]["official"]["rouge1"] == pytest.approx(blip["rouge1"].mean())

    from medcap.app.table import EvaluationTable, TableQuery

    table = EvaluationTable(frame)  # the app's Evaluation tab opened on evaluate's own CSV
    page = table.query(TableQuery(search="knee joint"))
    assert page.matching_rows == 1 and page.rows["generated_caption"].tolist() == ["MRI of the knee joint."]
    assert table.metrics == ["rouge1", "bleu"]


def test_protocols_refuse_medcap_only_options(results_csv, tmp_path, capsys):
    assert main(["evaluate", "--predictions", str(results_csv), "--out", str(tmp_path / "e.csv"), "--protocol", "coco", "--metrics", "bleu4"]) == 2
    assert "medcap protocol" in capsys.readouterr().err
    assert not (tmp_path / "e.csv").exists()


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


HEADER = "image_id,original_caption,generated_caption,model,error\n"


def test_out_equal_to_predictions_or_a_folder_is_one_clear_line(results_csv, tmp_path, capsys):
    before = results_csv.read_bytes()
    assert main(["evaluate", "--predictions", str(results_csv), "--out", str(results_csv)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "input" in err and results_csv.read_bytes() == before
    # --out naming the predictions' summary file is the same mistake.
    summary_clash = tmp_path / "results_summary.csv"
    other = _write(summary_clash, results_csv.read_text())
    assert main(["evaluate", "--predictions", str(other), "--out", str(tmp_path / "results.csv")]) == 2
    (tmp_path / "folder.csv").mkdir()
    assert main(["evaluate", "--predictions", str(results_csv), "--out", str(tmp_path / "folder.csv")]) == 2
    err = capsys.readouterr().err
    assert "folder" in err and "Traceback" not in err


def test_unwritable_output_is_refused_before_scoring(results_csv, tmp_path, capsys, monkeypatch):
    import medcap.cli.evaluate as evaluate
    import medcap.results as results

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(results.tempfile, "NamedTemporaryFile", denied)  # as a read-only folder answers, even as root
    monkeypatch.setattr(evaluate, "evaluate_frame", lambda *a, **k: pytest.fail("scored before checking the output"))
    assert main(["evaluate", "--predictions", str(results_csv), "--out", str(tmp_path / "out" / "e.csv")]) == 2
    assert capsys.readouterr().err == f"error: cannot write to {tmp_path / 'out'}: Permission denied\n"


def test_output_under_a_file_is_one_clear_line(results_csv, tmp_path, capsys):
    blocker = _write(tmp_path / "blocker", "x")
    assert main(["evaluate", "--predictions", str(results_csv), "--out", str(blocker / "e.csv")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: cannot write") and err.count("\n") == 1


def test_a_huge_caption_line_is_refused_with_a_message(tmp_path, capsys):
    from medcap.results import MAX_LINE_CHARS

    huge = _write(tmp_path / "huge.csv", HEADER + "a,b," + "x" * (MAX_LINE_CHARS + 10) + ",m,\n")
    assert main(["evaluate", "--predictions", str(huge), "--out", str(tmp_path / "e.csv")]) == 2
    err = capsys.readouterr().err
    assert "line 2 is longer than" in err and err.count("\n") == 1


def test_duplicates_are_scored_once_and_reported(tmp_path, capsys):
    rows = HEADER + "a,chest ct,old caption,m,\nb,knee mri,knee mri,m,\na,chest ct,chest ct,m,\n"
    path = _write(tmp_path / "dup.csv", rows)
    out = tmp_path / "e.csv"
    assert main(["evaluate", "--predictions", str(path), "--out", str(out), "--metrics", "rouge1"]) == 0
    scores = pd.read_csv(out, keep_default_na=False)
    assert sorted(scores["image_id"]) == ["a", "b"] and scores["rouge1"].tolist() == [1.0, 1.0]  # the last "a" row
    assert "dropped 1 duplicate" in capsys.readouterr().err
    assert json.loads((tmp_path / "e_summary.json").read_text())["duplicate_rows_dropped"] == 1


def test_nan_is_a_caption_only_when_quoted(tmp_path):
    from medcap.results import read_evaluation_csv

    path = _write(tmp_path / "nan.csv", HEADER + 'a,NaN,"NaN",m,\nb,nan,NaN,m,\n')
    out = tmp_path / "e.csv"
    assert main(["evaluate", "--predictions", str(path), "--out", str(out), "--metrics", "rouge1"]) == 0
    frame = read_evaluation_csv(out).set_index("image_id")
    assert frame.loc["a", "generated_caption"] == "NaN" and frame.loc["a", "original_caption"] == ""
    assert frame.loc["b", "generated_caption"] == "" and frame.loc["b", "rouge1"] == 0.0
    assert '"NaN"' in out.read_text()  # written quoted, so it reads back as the caption it was


def test_bertscore_overrides_of_a_protocol_are_named_as_not_official():
    from medcap.cli import build_parser
    from medcap.cli.evaluate import _deviations, bertscore_config

    args = build_parser().parse_args(["evaluate", "--predictions", "p.csv", "--out", "o.csv", "--protocol", "imageclef-2023",
                                      "--bertscore-layers", "6", "--bertscore-batch-size", "8"])
    config = bertscore_config(args)
    assert (config.idf, config.num_layers, config.batch_size) == (False, 6, 8)  # 2023: no IDF
    assert _deviations(args) == ["bertscore num_layers 6 (the evaluator uses bert-score's default layer (40 for deberta-xlarge-mnli))"]
    plain = build_parser().parse_args(["evaluate", "--predictions", "p.csv", "--out", "o.csv", "--protocol", "imageclef-2025"])
    assert _deviations(plain) == [] and bertscore_config(plain).idf is True
