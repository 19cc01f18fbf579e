"""The entry point the three scripts share: flags -> config -> train -> a short report."""

from __future__ import annotations

import json
import logging
import sys
from typing import Callable, Sequence

from finetune.common.config import ConfigT, FinetuneError, parse_config
from finetune.common.training import RunResult
from medcap.models import ModelLoadError


def run_script(config_class: type[ConfigT], train: Callable[[ConfigT], RunResult],
               argv: Sequence[str] | None = None) -> int:
    """Parse flags, train, and print where the result is and how to caption with it."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = parse_config(config_class, argv)
    try:
        result = train(config)
    except (FinetuneError, ModelLoadError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run folder: {result.run_dir}")
    print(f"best validation metrics: {json.dumps(result.metrics, default=str)}")
    print(f"caption with it: python -m medcap caption --model {config.display_name}="
          f"{result.run_dir} --images IMAGES --out results.csv")
    return 0
