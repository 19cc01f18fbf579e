"""App-only settings (what the UI shows and which result files it reads).

Model, data and review-database settings live in `medcap.config.Settings`; these are the few
knobs only the app needs, read from the same `MEDCAP_*` environment:

- ``MEDCAP_RESULTS``: a results CSV from ``python -m medcap caption`` (Compare / Evaluation tabs);
- ``MEDCAP_EVALUATION``: a per-image CSV from ``python -m medcap evaluate`` (Evaluation tab;
  without it the app scores the results CSV itself on first use);
- ``MEDCAP_SAMPLE``: how many dataset rows the Compare tab loads (default 200);
- ``MEDCAP_DATASET_LABEL``: the name reviews are filed under (default: data source + split);
- ``MEDCAP_FACT_SHADE_BELOW``: fact words (side, modality, anatomy, finding, negation) whose
  token probability is below this are always marked in the caption cards (default 0.9);
- ``MEDCAP_MAX_UPLOAD_MB``: the largest upload the server accepts (default 50);
- ``MEDCAP_MAX_UPLOAD_MEGAPIXELS``: larger uploads are refused with a message (default 40; caption
  models use under 1 megapixel, and uploads are decoded reduced to 4 MP at most);
- ``MEDCAP_TEMP_MINUTES``: uploads' derived previews and exports are deleted from the server's
  temp folder after this long (default 60). Uploaded files themselves go as soon as they are read;
- ``MEDCAP_AUTH``: ``oauth`` (reviewers are signed-in Hugging Face accounts) or ``none`` (typed,
  unverified names); the default is ``oauth`` on a Space with OAuth configured (`medcap.app.identity`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from medcap.app.examples import bundled_examples
from medcap.app.highlight import HighlightStyle
from medcap.app.identity import NONE, auth_mode

# The Caption tab's file picker and Gradio's upload check accept any file (None): DICOM from PACS
# and CDs often has no extension (IM000001), and medcap recognises files by their content (the
# PNG/JPEG/... signature, DICOM's "DICM" marker) with a clear message for anything else.
UPLOAD_FILE_TYPES: list[str] | None = None
UPLOAD_LABEL = "Image (PNG / JPEG) or DICOM file (with or without .dcm)"


@dataclass
class AppOptions:
    """What the app reads besides `Settings`, and how it pages and samples."""

    results_csv: Path | None = None
    evaluation_csv: Path | None = None
    sample_size: int = 200
    dataset_label: str | None = None
    page_size: int = 25
    histogram_bins: int = 20
    export_dir: Path | None = None
    examples: list[Path] = field(default_factory=bundled_examples)
    fact_shade_below: float = 0.9
    max_upload_mb: int = 50
    max_upload_megapixels: int = 40
    decoded_megapixels: int = 4
    temp_minutes: int = 60
    exports_kept: int = 5
    auth: str = NONE  # who a reviewer is: see medcap.app.identity

    @property
    def highlight_style(self) -> HighlightStyle:
        """How the caption cards mark words (shading levels, the fact-word level)."""
        return HighlightStyle(fact_shade_below=self.fact_shade_below)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AppOptions":
        env = os.environ if env is None else env
        options = cls(auth=auth_mode(env))
        if env.get("MEDCAP_RESULTS"):
            options.results_csv = Path(env["MEDCAP_RESULTS"])
        if env.get("MEDCAP_EVALUATION"):
            options.evaluation_csv = Path(env["MEDCAP_EVALUATION"])
        if env.get("MEDCAP_SAMPLE"):
            options.sample_size = max(1, _whole_number(env, "MEDCAP_SAMPLE", "dataset rows"))
        if env.get("MEDCAP_DATASET_LABEL"):
            options.dataset_label = env["MEDCAP_DATASET_LABEL"]
        if env.get("MEDCAP_FACT_SHADE_BELOW"):
            options.fact_shade_below = _probability("MEDCAP_FACT_SHADE_BELOW",
                                                    env["MEDCAP_FACT_SHADE_BELOW"])
        for name, attribute, unit in _POSITIVE_SETTINGS:
            if env.get(name):
                setattr(options, attribute, _whole_number(env, name, unit, minimum=1))
        return options


def _probability(name: str, text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be a probability between 0 and 1, not {text!r}.")
    return value


_POSITIVE_SETTINGS = (
    ("MEDCAP_MAX_UPLOAD_MB", "max_upload_mb", "megabytes"),
    ("MEDCAP_MAX_UPLOAD_MEGAPIXELS", "max_upload_megapixels", "megapixels"),
    ("MEDCAP_TEMP_MINUTES", "temp_minutes", "minutes"),
)


def _whole_number(env: Mapping[str, str], name: str, unit: str, minimum: int | None = None) -> int:
    """`env[name]` as an int, or a ValueError naming the setting (the app says it and stops)."""
    try:
        value = int(env[name])
    except ValueError:
        raise ValueError(f"{name} must be a whole number of {unit}, not {env[name]!r}.") from None
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be {minimum} or more {unit}, not {value}.")
    return value
