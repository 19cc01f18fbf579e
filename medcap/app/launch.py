"""The keyword arguments `app.py` hands to `gr.Blocks(...)` and `demo.launch(...)`, from
`AppOptions`; plain values, so they are tested without starting a server (no gradio import)."""

from __future__ import annotations

import os
from typing import Any, Mapping

from medcap.app.options import AppOptions

CACHE_SWEEP_S = 300
"""How often Gradio looks for expired files in its temp folder (at most every 5 minutes)."""


def blocks_kwargs(options: AppOptions) -> dict[str, Any]:
    """`delete_cache`: Gradio deletes the files it made for this app (previews, served exports)
    once they are `temp_minutes` old, and all of them when the server stops."""
    age_s = options.temp_minutes * 60
    return {"delete_cache": (min(CACHE_SWEEP_S, age_s), age_s)}


def launch_kwargs(options: AppOptions) -> dict[str, Any]:
    """`max_file_size`: Gradio refuses larger uploads before they reach the disk."""
    return {"max_file_size": options.max_upload_mb * 1024 * 1024}


def server_name(env: Mapping[str, str] | None = None) -> str:
    """A Space must listen on all interfaces; on a workstation, stay on loopback unless asked."""
    env = os.environ if env is None else env
    return env.get("GRADIO_SERVER_NAME") or ("0.0.0.0" if env.get("SPACE_ID") else "127.0.0.1")
