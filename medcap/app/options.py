"""App-only settings (what the UI shows and which result files it reads).

Model, data and review-database settings live in `medcap.config.Settings`; these are the few
knobs only the app needs, read from the same `MEDCAP_*` environment:

- ``MEDCAP_RESULTS``: a results CSV from ``python -m medcap caption`` (Compare / Evaluation tabs);
- ``MEDCAP_EVALUATION``: a per-image CSV from ``python -m medcap evaluate`` (Evaluation tab;
  without it the app scores the results CSV itself on first use);
- ``MEDCAP_SAMPLE``: how many dataset rows the Compare tab loads (default 200);
- ``MEDCAP_DATASET_LABEL``: the name reviews are filed under (default: data source + split).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from medcap.app.examples import bundled_examples


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

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "AppOptions":
        env = os.environ if env is None else env
        options = cls()
        if env.get("MEDCAP_RESULTS"):
            options.results_csv = Path(env["MEDCAP_RESULTS"])
        if env.get("MEDCAP_EVALUATION"):
            options.evaluation_csv = Path(env["MEDCAP_EVALUATION"])
        if env.get("MEDCAP_SAMPLE"):
            try:
                options.sample_size = max(1, int(env["MEDCAP_SAMPLE"]))
            except ValueError:
                raise ValueError(f"MEDCAP_SAMPLE must be a whole number of dataset rows, not "
                                 f"{env['MEDCAP_SAMPLE']!r}.") from None
        if env.get("MEDCAP_DATASET_LABEL"):
            options.dataset_label = env["MEDCAP_DATASET_LABEL"]
        return options
