"""The page is built and served before torch and transformers are imported (a fast first page:
importing them took ~2.7 s of a ~7 s start on two cores); the first caption imports them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

BUILD_PAGE = """
import sys
import app
from medcap.app.studio import Studio
studio = Studio.from_environment()
demo = app.build_demo(studio)
heavy = sorted(m for m in ("torch", "transformers", "peft", "accelerate") if m in sys.modules)
print("models:", ",".join(studio.pool.labels), "prompted:", ",".join(studio.pool.prompted_labels()))
print("heavy:", ",".join(heavy) or "none")
from medcap.models import Caption  # the first use of a captioner class imports torch
print("after:", "torch" in sys.modules)
"""


def test_building_the_page_does_not_import_torch(tmp_path: Path, tiny_blip_dir: Path,
                                                 tiny_qwen2_vl_dir: Path) -> None:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "MEDCAP_DATA": "",
           "MEDCAP_MODELS": f"blip={tiny_blip_dir},qwen2-vl={tiny_qwen2_vl_dir},blip2-lora",
           "MEDCAP_REVIEWS_DB": str(tmp_path / "reviews.sqlite"), "MEDCAP_RUNS_DIR": str(tmp_path),
           "GRADIO_TEMP_DIR": str(tmp_path / "gradio"), "PYTHONPATH": str(REPO)}
    done = subprocess.run([sys.executable, "-c", BUILD_PAGE], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    assert "models: blip,qwen2-vl prompted: qwen2-vl" in lines
    assert "heavy: none" in lines
    assert "after: True" in lines
