"""Whether a configured model can load here, known before loading it (no torch, no weights read).

Reads folders and the local Hugging Face cache, and asks `medcap.data.hub.hub_problem` only when
a model would have to be downloaded. A model that passes may still fail to load (a corrupt file,
too little memory); its card then says so.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from medcap.models.spec import ModelSpec

HubProblem = Callable[[], "str | None"]


@dataclass(frozen=True)
class Unavailable:
    """Why a model cannot load: a missing `folder`, or a hub `id` not downloaded (`problem`)."""

    kind: str  # "folder" or "hub"
    source: str
    problem: str = ""

    def __str__(self) -> str:
        if self.kind == "folder":
            return f"the folder {self.source} does not exist"
        return f"{self.source} is not downloaded and {self.problem}"


def unavailable_reason(spec: ModelSpec, hub_problem: HubProblem | None = None) -> Unavailable | None:
    """Why `spec` surely cannot load here, else None (it may be downloaded or is on disk)."""
    from medcap.models.loading import looks_like_path

    for source in [spec.source, *([spec.adapter] if spec.adapter else [])]:
        if looks_like_path(source):
            if not Path(source).expanduser().is_dir():
                return Unavailable("folder", source)
        elif not in_hub_cache(source):
            problem = (hub_problem or current_hub_problem)()
            if problem:
                return Unavailable("hub", source, problem)
    return None


def in_hub_cache(repo_id: str) -> bool:
    """Whether the local Hugging Face cache holds `repo_id` (its config.json)."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, "config.json"), str)


def current_hub_problem() -> str | None:
    from medcap.data.hub import hub_problem

    return hub_problem()
