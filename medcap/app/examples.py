"""Example uploads for the Caption tab.

Gradio only serves files from the working directory, its temp dir or `allowed_paths`, so the
examples in assets/examples are copied into the Gradio temp dir once.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from medcap.app.tempfiles import gradio_temp_dir
from medcap.paths import assets_dir

EXAMPLE_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm")


def bundled_examples() -> list[Path]:
    """The project's assets/examples (pydicom's CT and MR samples are copied there)."""
    assets = assets_dir() / "examples"
    if not assets.is_dir():
        return []
    return sorted(p for p in assets.iterdir() if p.suffix.lower() in EXAMPLE_SUFFIXES)


def stage_examples(paths: list[Path], destination: Path | None = None) -> list[Path]:
    """Copy example files where Gradio may serve them; missing files are dropped."""
    folder = destination or gradio_temp_dir() / "medcap-examples"
    folder.mkdir(parents=True, exist_ok=True)
    staged = []
    for path in paths:
        if not Path(path).is_file():
            continue
        target = folder / Path(path).name
        if not target.exists() or target.stat().st_size != Path(path).stat().st_size:
            shutil.copyfile(path, target)
        staged.append(target)
    return staged
