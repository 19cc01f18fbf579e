"""The demo workspace shipped in assets/demo, and when the app opens it.

A new user on a machine without the model hub would otherwise get a page where nothing can be
captioned. The demo is a small BLIP trained by `finetune/blip.py` on synthetic phantoms, the
phantom test set with its ground truth, that model's captions of it (so Compare and Evaluation
have rows at once) and the bundled DICOM examples: every tab works offline.

`MEDCAP_DEMO=1` opens it; `MEDCAP_DEMO=0` never does; unset, the app opens it when none of the
configured models can load here (`medcap.app.availability`) and nothing else was configured to
show (no results CSV, no own dataset). A banner then says it is a demo and how to use the real
models.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

from medcap.app.availability import current_hub_problem, unavailable_reason
from medcap.app.examples import bundled_examples
from medcap.app.options import AppOptions
from medcap.config import DEFAULT_DATA_SOURCE, Settings
from medcap.paths import assets_dir

DEMO_MODEL = "demo-blip"
DEMO_DATASET = "demo-phantoms"
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


@dataclass(frozen=True)
class Workspace:
    """What the app serves: settings, app options and the banner above the tabs (HTML or "")."""

    settings: Settings
    options: AppOptions
    notice: str = ""


def demo_dir() -> Path:
    return assets_dir() / "demo"


def demo_workspace(settings: Settings, options: AppOptions, reason: str) -> Workspace:
    """The shipped demo, keeping where reviews are stored and how models run."""
    folder = demo_dir()
    demo_settings = replace(
        settings, model_names=[f"{DEMO_MODEL}={folder / 'blip-phantoms'}"], blip2_adapter=None,
        data_source=str(folder / "phantoms"), data_split="test", prompts={},
        runs_dir=folder / "no-runs")  # a folder that does not exist: no fine-tune runs listed
    phantoms = sorted((folder / "phantoms").glob("*.png"))[:3]
    demo_options = replace(
        options, results_csv=folder / "results.csv", evaluation_csv=None,
        dataset_label=DEMO_DATASET, examples=[*phantoms, *bundled_examples()])
    return Workspace(demo_settings, demo_options, demo_notice(reason))


def demo_notice(reason: str) -> str:
    """The banner: what the demo is, why it is shown, and how to get the real models."""
    return (
        '<div class="mc-demo" role="status" id="demo-banner"><strong>Demo workspace.</strong> '
        f"{html.escape(reason)} The model here is a small BLIP trained on synthetic phantom "
        "images (simple shapes with a bright spot), not on real scans: its captions only describe "
        "phantoms, and it says nothing useful about a real image. The Compare and Evaluation tabs "
        "show the phantom test set with its ground truth; reviews and exports work as usual."
        "<details><summary>How to use the real models</summary>On a machine with internet "
        "access, start the app without <code>MEDCAP_DEMO</code>: BLIP, BLIP-2 and Qwen2-VL are "
        "downloaded from the Hugging Face hub on first use. Offline, copy a downloaded model "
        "folder here and name it in <code>MEDCAP_MODELS</code> (for example "
        "<code>MEDCAP_MODELS=blip=/models/blip</code>), or copy the Hugging Face cache "
        "(<code>~/.cache/huggingface</code>) and set <code>HF_HUB_OFFLINE=1</code>.</details></div>")


def choose_workspace(settings: Settings, options: AppOptions,
                     env: Mapping[str, str]) -> Workspace:
    """The configured workspace, or the demo when asked for or when nothing configured works."""
    wanted = env.get("MEDCAP_DEMO", "").strip().lower()
    if wanted in _TRUE:
        return demo_workspace(settings, options, "MEDCAP_DEMO is on.")
    if wanted in _FALSE or options.results_csv or settings.data_source not in (
            None, DEFAULT_DATA_SOURCE):
        return Workspace(settings, options)
    specs, problems = settings.model_specs()
    hub = functools.cache(current_hub_problem)  # probe the network once, and only if needed
    if any(unavailable_reason(spec, hub) is None for spec in specs):
        return Workspace(settings, options)
    names = [*(s.label for s in specs), *problems] or ["none"]
    return demo_workspace(settings, options, f"None of the configured models ({', '.join(names)}) "
                          "can be loaded on this machine, so the app opened its demo.")
