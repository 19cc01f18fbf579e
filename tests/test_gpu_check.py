"""benchmarks/gpu_check.py's table and failure logic on CPU with tiny models (no GPU here): a path
that cannot run is a FAILED row and a non-zero exit, never a skip."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from benchmarks import bench_caption, gpu_check

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _result(rate: float, peak_gb: float = 1.0) -> bench_caption.PhaseResult:
    return bench_caption.PhaseResult(model="x", path="p", images=10, seconds=10 / rate,
                                     peak_bytes=int(peak_gb * 1e9), tokens_per_image=3,
                                     setting="peak CUDA alloc")


def _rows(rates: dict[str, float | Exception], peak_gb: float = 1.0, monkeypatch=None):
    monkeypatch.setattr(bench_caption, "build_model", lambda family, config: Path("/nowhere"))

    def runner(check, config, images, model_dir):
        outcome = rates[f"{check.family}/{check.path}"]
        if isinstance(outcome, Exception):
            raise outcome
        return _result(outcome, peak_gb)

    config = bench_caption.BenchConfig(size="tiny")
    return gpu_check.check_all(config, {"blip": 1, "qwen2-vl": 1, "blip2": 1},
                               runner=runner, log=lambda s: None)


ALL_MET = {"blip/seed": 20, "blip/transformers": 250, "qwen2-vl/seed": 2,
           "qwen2-vl/transformers": 25, "qwen2-vl/vllm": 80, "blip2/seed": 1,
           "blip2/transformers": 5, "blip2/8bit": 3}


def test_all_paths_meeting_targets_exit_zero_with_ratios(monkeypatch):
    rows = _rows(ALL_MET, monkeypatch=monkeypatch)
    table = gpu_check.format_table(rows).splitlines()
    assert len(table) == 2 + 8 and gpu_check.exit_status(rows) == 0
    blip = next(line for line in table if "pipelined (transformers)" in line and "BLIP (tiny)" in line)
    assert "| 250.0 |" in blip and "| 12.50x |" in blip and blip.endswith("| ok |")


def test_a_path_that_does_not_run_is_a_failed_row_and_exit_1(monkeypatch):
    rates = {**ALL_MET, "qwen2-vl/vllm": ImportError("No module named 'vllm'")}
    rows = _rows(rates, monkeypatch=monkeypatch)
    assert gpu_check.exit_status(rows) == 1
    failed = [line for line in gpu_check.format_table(rows).splitlines() if "FAILED" in line]
    assert len(failed) == 1 and "vLLM backend" in failed[0]
    assert "ImportError: No module named 'vllm'" in failed[0]


def test_missed_targets_exit_3(monkeypatch):
    rows = _rows({**ALL_MET, "blip/transformers": 150}, monkeypatch=monkeypatch)
    assert gpu_check.exit_status(rows) == 3
    assert [r.status for r in rows].count("below target") == 1
    heavy = _rows(ALL_MET, peak_gb=17.0, monkeypatch=monkeypatch)  # 8-bit BLIP-2 over 16 GB
    assert [r.path for r in heavy if r.status == "below target"] == ["medcap pipelined, 8-bit"]


def test_tiny_models_on_cpu_run_the_real_phases(tmp_path, capsys):
    """The real code path end to end: BLIP rows run; Qwen2-VL's vLLM row fails loudly here (no
    vLLM, no CUDA), so the exit status is 1 and the other rows still have numbers."""
    code = gpu_check.main(["--size", "tiny", "--device", "cpu", "--images", "2",
                           "--new-tokens", "3", "--batch-size", "2", "--only", "blip,qwen2-vl",
                           "--cache-dir", str(tmp_path)])
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| ")]
    assert len(table) == 1 + 5  # header (the |---| line does not start with "| ") + 5 rows
    statuses = [line.rsplit("|", 2)[1].strip() for line in table[1:]]
    assert statuses[:4] != ["FAILED"] * 4 and all(not s.startswith("FAILED") for s in statuses[:4])
    assert statuses[4].startswith("FAILED") and code == 1
    assert "FAILED: at least one path did not run" in out


@pytest.mark.parametrize("script", ["gpu_check.sh"])
def test_shell_entry_point_refuses_without_a_gpu(script):
    import subprocess

    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("a GPU is present: the script would run the real check")
    result = subprocess.run(["bash", str(BENCHMARKS / script)], capture_output=True, text=True,
                            env={"PATH": "/usr/bin:/bin", "PYTHON": sys.executable}, timeout=120)
    assert result.returncode == 1 and "FAILED: no CUDA GPU" in result.stderr
