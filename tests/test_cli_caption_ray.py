"""`python -m medcap caption --engine ray` on a local Ray (2 CPUs) with tiny models: the CSV equals
the local engine's, a killed run resumes without duplicates, one failing image costs one row.

Ray starts once for the module (it takes seconds) and is shut down at the end; the killed run is
a separate driver joining that Ray by its address, so its actors go with it.
"""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from medcap.cli import main
from tests.conftest import REPO_ROOT
from tests.support.processes import cli_env, kill_after_rows
from tests.support.data_fixtures import (
    gray_png,
    rgb_jpeg,
    rocov2_rows,
    write_image_folder,
    write_rocov2_parquet,
)

# What must match between engines (timestamps and timings differ by nature).
SAME = ("image_id", "original_caption", "generated_caption", "model", "split", "modality",
        "model_source", "error")


@pytest.fixture(scope="module")
def ray_address() -> str:
    ray = pytest.importorskip("ray")
    # Workers import medcap from this checkout, like the driver.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False,
             runtime_env={"env_vars": {"PYTHONPATH": str(REPO_ROOT)}})
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def _same(rows: list[dict]) -> list[tuple]:
    return [tuple(row[c] for c in SAME) for row in rows]


def _caption(model: str, images: Path, out: Path, *extra: str) -> int:
    # fp32 pinned: Ray's workers do not see the test suite's fp32 pin for dtype "auto".
    return main(["caption", "--model", model, "--images", str(images), "--out", str(out),
                 "--max-new-tokens", "6", "--batch-size", "2", "--dtype", "float32",
                 "--no-progress", *extra])


@pytest.fixture()
def sources(tmp_path: Path) -> dict[str, Path]:
    folder = write_image_folder(
        tmp_path / "images",
        {"a.png": gray_png(48, 32), "b.jpg": rgb_jpeg(40, 30), "c.png": gray_png(20, 60),
         "broken.png": b"this is not an image", "d.png": gray_png(64, 64),
         "e.jpg": rgb_jpeg(30, 50), "f.png": gray_png(32, 32)},
        captions={"a": "CT of the chest.", "b": "Axial MRI.", "c": "Lateral radiograph."},
    )
    parquet = write_rocov2_parquet(tmp_path / "test.parquet", rocov2_rows(11))
    return {"folder": folder, "parquet": parquet}


@pytest.mark.parametrize("kind", ["folder", "parquet"])
def test_ray_csv_equals_the_local_run(ray_address, tmp_path, sources, tiny_blip_dir, kind,
                                      capsys):
    local, distributed = tmp_path / "local.csv", tmp_path / "ray.csv"
    model = f"blip={tiny_blip_dir}"
    assert _caption(model, sources[kind], local) == 0
    assert _caption(model, sources[kind], distributed, "--engine", "ray", "--workers", "2") == 0
    expected, got = _rows(local), _rows(distributed)
    assert len(got) == len(expected) > 5
    assert _same(got) == _same(expected)  # same rows, same source order
    assert all(float(r["processing_time_sec"]) > 0 for r in got if not r["error"])
    assert "captioned" in capsys.readouterr().err
    if kind == "folder":
        assert any("broken.png" in r["error"] for r in got)
    else:
        assert [r["split"] for r in got] == ["test"] * 11


def test_resume_skips_finished_pairs_and_limit_applies(ray_address, tmp_path, sources,
                                                       tiny_blip_dir):
    out = tmp_path / "r.csv"
    model = f"blip={tiny_blip_dir}"
    args = ["--engine", "ray", "--workers", "2"]
    assert _caption(model, sources["parquet"], out, *args, "--limit", "4") == 0
    first = _rows(out)
    assert [r["image_id"] for r in first] == [f"ROCOv2_2023_test_{i:06d}" for i in range(1, 5)]
    assert _caption(model, sources["parquet"], out, *args) == 0
    rows = _rows(out)
    assert rows[:4] == first  # finished rows untouched
    assert [r["image_id"] for r in rows] == [f"ROCOv2_2023_test_{i:06d}" for i in range(1, 12)]


def test_killed_ray_run_resumes_without_duplicates(ray_address, tmp_path, tiny_blip_dir):
    parquet = write_rocov2_parquet(tmp_path / "test.parquet", rocov2_rows(40))
    out = tmp_path / "r.csv"
    cmd = [sys.executable, "-m", "medcap", "caption", "--model", f"blip={tiny_blip_dir}",
           "--images", str(parquet), "--out", str(out), "--batch-size", "1", "--no-progress",
           "--max-new-tokens", "40", "--num-beams", "4", "--dtype", "float32",
           "--engine", "ray", "--workers", "2", "--ray-address", ray_address]
    env = cli_env()
    kill_after_rows(cmd, out, rows=3, timeout=300)
    interrupted = len(_rows(out))
    assert 3 <= interrupted < 40, "the run should have been killed part-way"
    result = subprocess.run(cmd, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"resuming: {interrupted} (image, model) results already" in result.stderr
    ids = [r["image_id"] for r in _rows(out)]
    assert sorted(ids) == sorted(f"ROCOv2_2023_test_{i:06d}" for i in range(1, 41))


def test_image_a_worker_fails_on_costs_one_row(ray_address, tmp_path, tiny_qwen2_vl_dir, capsys):
    """Qwen2-VL refuses aspect ratios above 200: the CPU worker's preprocessing and the actor's
    batch both raise on that image; it gets one error row and the job still succeeds."""
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("L", (64, 64), 90).save(folder / "a.png")
    Image.new("L", (6000, 8), 90).save(folder / "strip.png")  # decodes fine, ratio 750
    Image.new("L", (48, 40), 160).save(folder / "b.png")
    out = tmp_path / "r.csv"
    assert _caption(f"qwen2-vl={tiny_qwen2_vl_dir}", folder, out, "--engine", "ray",
                    "--workers", "2", "--batch-size", "3") == 0
    by_id = {r["image_id"]: r for r in _rows(out)}
    assert set(by_id) == {"a", "b", "strip"} and len(_rows(out)) == 3
    assert by_id["a"]["generated_caption"] and by_id["b"]["generated_caption"]
    assert by_id["strip"]["generated_caption"] == ""
    assert by_id["strip"]["error"].startswith("could not be captioned: ValueError: ")
    assert "1 of them with an error" in capsys.readouterr().err


def test_bad_model_folder_fails_before_any_worker(ray_address, tmp_path, sources, capsys):
    out = tmp_path / "r.csv"
    assert _caption(f"blip={tmp_path / 'missing'}", sources["folder"], out, "--engine",
                    "ray") == 1
    assert "does not exist" in capsys.readouterr().err
    assert len(_rows(out)) == 0


def test_without_ray_the_flag_says_how_to_install(monkeypatch, tmp_path, tiny_blip_dir, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError
    monkeypatch.setitem(sys.modules, "ray.data", None)
    out = tmp_path / "r.csv"
    assert main(["caption", "--model", f"blip={tiny_blip_dir}", "--images", str(tmp_path),
                 "--out", str(out), "--engine", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ['error: --engine ray needs Ray Data: pip install "ray[data]==2.60.0" '
                   '(or pip install -r requirements-ray.txt)']
    assert not out.exists()  # checked before any work


def test_hub_ids_are_refused_with_the_way_forward(tmp_path, tiny_blip_dir, capsys):
    out = tmp_path / "r.csv"
    assert _caption(f"blip={tiny_blip_dir}", Path("eltorio/ROCOv2-radiology"), out,
                    "--engine", "ray") == 2
    assert "download its parquet files first" in capsys.readouterr().err
    assert not out.exists()  # checked before any work
