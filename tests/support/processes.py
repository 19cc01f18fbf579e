"""Killing a command-line run part-way, as a crash or a closed laptop would (the resume tests)."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Sequence

from tests.conftest import REPO_ROOT


def cli_env() -> dict[str, str]:
    """The environment a `python -m medcap` child needs to import this checkout."""
    return {**os.environ, "PYTHONPATH": str(REPO_ROOT)}


def kill_after_rows(cmd: Sequence[str], out: Path, rows: int = 3, timeout: float = 120) -> None:
    """Start `cmd`, SIGKILL it once `out` holds a header and `rows` rows (or after `timeout`
    seconds, or when it ends by itself)."""
    proc = subprocess.Popen(list(cmd), cwd=REPO_ROOT, env=cli_env(), stderr=subprocess.DEVNULL)
    deadline = time.time() + timeout
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and out.read_bytes().count(b"\n") >= rows + 1:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
