"""`python -m medcap caption` end to end on tiny models: folders, parquet, resume, bad inputs."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from medcap.cli import main
from medcap.results import COLUMNS, ResultsWriter, ResultRow
from tests.conftest import REPO_ROOT
from tests.support.processes import cli_env, kill_after_rows
from tests.support.data_fixtures import (
    gray_png,
    rgb_jpeg,
    rocov2_rows,
    write_image_folder,
    write_rocov2_parquet,
)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture()
def image_folder(tmp_path: Path) -> Path:
    return write_image_folder(
        tmp_path / "images",
        {"a.png": gray_png(48, 32), "b.jpg": rgb_jpeg(40, 30), "c.png": gray_png(20, 60),
         "broken.png": b"this is not an image"},
        captions={"a": "CT of the chest.", "b": "Axial MRI.", "c": "Lateral radiograph."},
    )


def test_folder_with_two_models_writes_every_row(tmp_path, image_folder, tiny_blip_dir,
                                                 tiny_qwen2_vl_dir, capsys):
    out = tmp_path / "results.csv"
    code = main(["caption", "--model", f"blip={tiny_blip_dir}", "--model",
                 f"qwen2-vl={tiny_qwen2_vl_dir}", "--images", str(image_folder), "--out", str(out),
                 "--max-new-tokens", "6", "--batch-size", "2", "--no-progress"])
    assert code == 0
    rows = _rows(out)
    assert list(rows[0]) == COLUMNS
    assert sorted((r["model"], r["image_id"]) for r in rows) == sorted(
        (m, i) for m in ("blip", "qwen2-vl") for i in ("a", "b", "broken", "c"))
    by_key = {(r["model"], r["image_id"]): r for r in rows}
    assert by_key[("blip", "a")]["original_caption"] == "CT of the chest."
    assert by_key[("blip", "a")]["generated_caption"]
    assert float(by_key[("qwen2-vl", "c")]["processing_time_sec"]) > 0
    broken = by_key[("blip", "broken")]
    assert broken["generated_caption"] == "" and "broken.png" in broken["error"]
    err = capsys.readouterr().err
    assert "blip: captioned 4 new image(s) in " in err
    assert "images/s (float32 on cpu) -> " in err  # what it really ran in (tests pin fp32)


def test_parquet_source_with_limit_split_and_modality(tmp_path, tiny_blip_dir):
    parquet = write_rocov2_parquet(tmp_path / "test.parquet", rocov2_rows(5))
    out = tmp_path / "r.csv"
    code = main(["caption", "--model", f"blip={tiny_blip_dir}", "--images", str(parquet),
                 "--out", str(out), "--limit", "3", "--split", "test", "--no-progress"])
    assert code == 0
    rows = _rows(out)
    assert [r["image_id"] for r in rows] == [f"ROCOv2_2023_test_{i:06d}" for i in (1, 2, 3)]
    assert [r["modality"] for r in rows] == ["CT", "MRI", "X-ray"]
    assert rows[0]["original_caption"] == "CT chest showing a right lower lobe mass."
    assert all(r["split"] == "test" for r in rows)


def test_rerun_resumes_without_duplicates(tmp_path, tiny_blip_dir):
    parquet = write_rocov2_parquet(tmp_path / "test.parquet", rocov2_rows(6))
    out = tmp_path / "r.csv"
    args = ["caption", "--model", f"blip={tiny_blip_dir}", "--images", str(parquet),
            "--out", str(out), "--no-progress", "--batch-size", "2"]
    assert main(args + ["--limit", "2"]) == 0
    first = _rows(out)
    assert main(args) == 0
    rows = _rows(out)
    assert [r["image_id"] for r in rows] == [f"ROCOv2_2023_test_{i:06d}" for i in range(1, 7)]
    assert rows[:2] == first  # finished rows untouched


def test_torn_last_line_is_cut_on_resume(tmp_path):
    out = tmp_path / "r.csv"
    writer = ResultsWriter(out)
    writer.write([ResultRow("x1", "gt, with comma", "a\nmultiline caption", 0.5, "blip",
                            ResultRow.now(), "test")])
    with open(out, "ab") as handle:
        handle.write(b'x2,"half a capt')  # a kill in the middle of a write
    resumed = ResultsWriter(out)
    assert resumed.repaired_bytes == len(b'x2,"half a capt')
    assert resumed.done == {("x1", "blip")}
    rows = _rows(out)
    assert len(rows) == 1 and rows[0]["generated_caption"] == "a\nmultiline caption"


def test_killed_run_resumes_exactly(tmp_path, tiny_blip_dir):
    parquet = write_rocov2_parquet(tmp_path / "test.parquet", rocov2_rows(40))
    out = tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "medcap", "caption", "--model", f"blip={tiny_blip_dir}",
           "--images", str(parquet), "--out", str(out), "--batch-size", "1", "--no-progress",
           "--max-new-tokens", "40", "--num-beams", "4"]
    env = cli_env()
    kill_after_rows(cmd, out, rows=3, timeout=120)
    interrupted = len(_rows(out))
    assert 3 <= interrupted < 40, "the run should have been killed part-way"
    # The resumed run only has to finish the rest: greedy, short captions and bigger batches
    # keep it cheap on a loaded machine (resume keys on (image_id, model), not on these flags).
    quick = [*cmd[:cmd.index("--batch-size")], "--batch-size", "8", "--no-progress",
             "--max-new-tokens", "8"]
    result = subprocess.run(quick, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming: {interrupted} (image, model) results already" in result.stderr
    ids = [r["image_id"] for r in _rows(out)]
    assert sorted(ids) == sorted(f"ROCOv2_2023_test_{i:06d}" for i in range(1, 41))


def test_unloadable_model_is_reported_and_others_still_run(tmp_path, image_folder, tiny_blip_dir,
                                                           capsys):
    out = tmp_path / "r.csv"
    code = main(["caption", "--model", f"qwen2-vl={tmp_path / 'missing'}", "--model",
                 f"blip={tiny_blip_dir}", "--images", str(image_folder), "--out", str(out),
                 "--no-progress"])
    assert code == 1
    err = capsys.readouterr().err
    assert f"error: The qwen2-vl model directory '{tmp_path / 'missing'}' does not exist." in err
    assert {r["model"] for r in _rows(out)} == {"blip"}


def test_unknown_model_and_missing_source_are_messages(tmp_path, tiny_blip_dir, capsys):
    assert main(["caption", "--model", "gpt9", "--images", str(tmp_path), "--out",
                 str(tmp_path / "r.csv")]) == 2
    assert "error: Unknown model 'gpt9'" in capsys.readouterr().err
    assert main(["caption", "--model", f"blip={tiny_blip_dir}", "--images",
                 str(tmp_path / "nowhere"), "--out", str(tmp_path / "r.csv"), "--no-progress"]) == 2
    assert "error:" in capsys.readouterr().err


def test_out_file_that_is_not_a_results_csv_is_not_touched(tmp_path, image_folder, tiny_blip_dir,
                                                           capsys):
    out = tmp_path / "notes.csv"
    out.write_text("name,score\nx,1\n")
    assert main(["caption", "--model", f"blip={tiny_blip_dir}", "--images", str(image_folder),
                 "--out", str(out)]) == 2
    assert "is not a medcap results CSV" in capsys.readouterr().err
    assert out.read_text() == "name,score\nx,1\n"


def test_adapter_and_prompt_flags_reach_the_spec(tiny_blip2_dir, tiny_blip2_adapter_dir):
    from medcap.cli import build_parser
    from medcap.cli.caption import build_specs

    args = build_parser().parse_args([
        "caption", "--model", f"blip2-lora={tiny_blip2_dir}", "--model", "qwen2-vl",
        "--adapter", f"blip2-lora={tiny_blip2_adapter_dir}", "--prompt", "Describe the CT.",
        "--images", "x", "--out", "y"])
    specs, problems = build_specs(args)
    assert problems == []
    lora, qwen = specs
    assert lora.adapter == str(tiny_blip2_adapter_dir) and lora.source == str(tiny_blip2_dir)
    assert lora.prompt is None and qwen.prompt == "Describe the CT."


@pytest.mark.parametrize("seconds, text", [(4.26, "4.3 s"), (83, "1m 23s"), (3723, "1h 02m 03s")])
def test_summary_durations_read_like_a_clock(seconds, text):
    from medcap.cli.caption import _duration

    assert _duration(seconds) == text


def test_image_the_processor_rejects_costs_one_row_not_the_run(tmp_path, tiny_qwen2_vl_dir,
                                                               capsys):
    """Qwen2-VL refuses aspect ratios above 200; that image gets an error row, the rest of its
    batch and the run still get captions, and the model is unloaded at the end."""
    from PIL import Image

    from medcap.models.base import Captioner

    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("L", (64, 64), 90).save(folder / "a.png")
    Image.new("L", (6000, 8), 90).save(folder / "strip.png")  # decodes fine, ratio 750
    Image.new("L", (48, 40), 160).save(folder / "b.png")
    unloaded: list[str] = []
    original = Captioner.unload

    def spy(self):
        unloaded.append(self.spec.name)
        original(self)

    out = tmp_path / "r.csv"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(Captioner, "unload", spy)
        code = main(["caption", "--model", f"qwen2-vl={tiny_qwen2_vl_dir}", "--images",
                     str(folder), "--out", str(out), "--max-new-tokens", "4",
                     "--batch-size", "3", "--no-progress"])
    assert code == 0
    by_id = {r["image_id"]: r for r in _rows(out)}
    assert set(by_id) == {"a", "b", "strip"}
    assert by_id["a"]["generated_caption"] and by_id["b"]["generated_caption"]
    assert by_id["strip"]["generated_caption"] == ""
    assert by_id["strip"]["error"].startswith("could not be captioned: ValueError: ")
    assert "aspect ratio" in by_id["strip"]["error"]
    err = capsys.readouterr().err
    assert "captioned 3 new image(s)" in err and "1 of them with an error" in err
    assert unloaded == ["qwen2-vl"]


def test_each_unavailable_command_names_itself(monkeypatch, capsys):
    import medcap.cli as cli

    monkeypatch.setattr(cli, "COMMANDS", {"caption": "medcap.no_such_caption",
                                          "evaluate": "medcap.no_such_evaluate"})
    assert cli.main(["caption"]) == 2
    assert "the 'caption' command is unavailable" in capsys.readouterr().err


# --- data safety: nothing is lost before the run has succeeded (issue 15, item 7) --------------

def _old_results(path: Path) -> str:
    writer = ResultsWriter(path)
    writer.write([ResultRow("old-1", "truth", "an earlier caption", 0.5, "blip", ResultRow.now(),
                            "test")])
    return path.read_text(encoding="utf-8")


def test_overwrite_with_a_missing_source_keeps_the_old_results(tmp_path, tiny_blip_dir, capsys):
    out = tmp_path / "r.csv"
    before = _old_results(out)
    code = main(["caption", "--model", f"blip={tiny_blip_dir}", "--images",
                 str(tmp_path / "nowhere"), "--out", str(out), "--overwrite", "--no-progress"])
    assert code == 2
    assert out.read_text(encoding="utf-8") == before
    assert "error:" in capsys.readouterr().err


def test_overwrite_with_a_model_that_cannot_load_keeps_the_old_results(tmp_path, image_folder,
                                                                       capsys):
    out = tmp_path / "r.csv"
    before = _old_results(out)
    code = main(["caption", "--model", f"blip={tmp_path / 'missing'}", "--images",
                 str(image_folder), "--out", str(out), "--overwrite", "--no-progress"])
    assert code == 1
    assert out.read_text(encoding="utf-8") == before
    assert "was left as it was" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "r.csv"]  # no staging file


def test_overwrite_replaces_the_old_results_once_the_run_has_finished(tmp_path, image_folder,
                                                                      tiny_blip_dir):
    out = tmp_path / "r.csv"
    _old_results(out)
    code = main(["caption", "--model", f"blip={tiny_blip_dir}", "--images", str(image_folder),
                 "--out", str(out), "--overwrite", "--max-new-tokens", "4", "--no-progress"])
    assert code == 0
    assert sorted(r["image_id"] for r in _rows(out)) == ["a", "b", "broken", "c"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["images", "r.csv"]


@pytest.mark.parametrize("flag, value", [("--limit", "-1"), ("--batch-size", "0"),
                                         ("--num-beams", "0"), ("--max-new-tokens", "-3")])
def test_counts_below_one_are_one_clear_line(tmp_path, image_folder, tiny_blip_dir, capsys,
                                             flag, value):
    out = tmp_path / "r.csv"
    code = main(["caption", "--model", f"blip={tiny_blip_dir}", "--images", str(image_folder),
                 "--out", str(out), flag, value, "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err == f"error: {flag} must be 1 or more, not {value}.\n"
    assert not out.exists()


def test_out_that_is_a_folder_is_one_clear_line(tmp_path, image_folder, tiny_blip_dir, capsys):
    folder = tmp_path / "results"
    folder.mkdir()
    code = main(["caption", "--model", f"blip={tiny_blip_dir}", "--images", str(image_folder),
                 "--out", str(folder), "--no-progress"])
    assert code == 2
    assert capsys.readouterr().err == (
        f"error: {folder} is a folder; the results need a file name, such as "
        f"{folder / 'results.csv'}.\n")
    assert list(folder.iterdir()) == []
