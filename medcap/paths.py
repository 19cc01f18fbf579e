"""Where medcap's shipped files are, in a checkout and in an installed copy.

The repository keeps them in `assets/` beside the package; `pip install .` puts the same folder
inside the package as `medcap/assets` (see pyproject.toml). Code asks here instead of walking up
from its own file, so both layouts work.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def assets_dir() -> Path:
    """The assets folder: `medcap/assets` when installed, else the checkout's `assets/`."""
    installed = _PACKAGE / "assets"
    return installed if installed.is_dir() else _PACKAGE.parent / "assets"
