"""`pip install .` gives a working `medcap` command and the app's assets, from any folder.

The install goes into a throwaway virtual environment in a temporary folder (never the one the
tests run in) with `--no-deps --no-build-isolation --no-index`: nothing is downloaded; the
dependencies and setuptools come from the running environment through a .pth file.
"""

from __future__ import annotations

import shutil
import site
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _requirements(path: Path) -> set[str]:
    lines = (line.split("#")[0].strip() for line in path.read_text(encoding="utf-8").splitlines())
    return {line for line in lines if line and not line.startswith("-r")}


def test_every_package_folder_is_listed() -> None:
    """A new medcap/ subfolder with modules must be in pyproject's package list, or the
    installed copy would lack it."""
    folders = {p.parent.relative_to(REPO).as_posix().replace("/", ".")
               for p in (REPO / "medcap").rglob("*.py") if "__pycache__" not in p.parts}
    assert folders <= set(PYPROJECT["tool"]["setuptools"]["packages"])


def test_dev_extra_matches_requirements_dev() -> None:
    assert set(PYPROJECT["project"]["optional-dependencies"]["dev"]) == _requirements(
        REPO / "requirements-dev.txt")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv with medcap installed from a copy of the checkout; returns its bin folder."""
    work = tmp_path_factory.mktemp("install")
    source = work / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(REPO / name, source / name)
    for name in ("medcap", "assets"):
        shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__"))
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", "--without-pip",
                    str(venv)], check=True, timeout=60)
    purelib = next((venv / "lib").glob("python*/site-packages"))
    # The running environment's packages (dependencies, pip, setuptools) after the venv's own.
    (purelib / "running-env.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    done = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--no-index", str(source)],
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv / "bin"


def test_installed_command_runs_from_another_folder(installed: Path, tmp_path: Path) -> None:
    done = subprocess.run([str(installed / "medcap"), "--help"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: medcap ")
    for command in ("caption", "evaluate", "reviews"):
        assert command in done.stdout
    assert "unavailable" not in done.stdout


def test_installed_copy_is_used_and_carries_the_assets(installed: Path, tmp_path: Path) -> None:
    code = ("import medcap, medcap.app.examples as e; print(medcap.__file__); "
            "print(*[p.name for p in e.bundled_examples()])")
    done = subprocess.run([str(installed / "python"), "-c", code], cwd=tmp_path,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    where, names = done.stdout.splitlines()
    assert Path(where).is_relative_to(installed.parent), where  # not the checkout
    assert set(names.split()) == {p.name for p in (REPO / "assets" / "examples").iterdir()
                                  if p.suffix in (".dcm", ".png")}
