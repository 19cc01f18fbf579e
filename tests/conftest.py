"""Shared fixtures: offline hub, tiny random-weight models built once per test session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# No hub is reachable here or on CI: make every from_pretrained call local-only.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO_ROOT = Path(__file__).resolve().parents[1]


def shared_dir() -> Path | None:
    """`../shared` beside the checkout (or $MEDCAP_SHARED_DIR); None when absent."""
    candidate = Path(os.environ.get("MEDCAP_SHARED_DIR", REPO_ROOT.parent / "shared"))
    return candidate if candidate.is_dir() else None


@pytest.fixture(autouse=True)
def _same_dtype_on_every_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """dtype "auto" means bf16 on CPUs with native bf16 and fp32 elsewhere; pin fp32 so tests
    that compare captions with an fp32 reference give the same result on every machine.
    tests/test_models.py checks the bf16 choice itself."""
    from medcap.models import loading

    monkeypatch.setattr(loading, "cpu_has_native_bf16", lambda: False)


@pytest.fixture(scope="session")
def tiny_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny-models")


@pytest.fixture(scope="session")
def tiny_blip_dir(tiny_models_dir: Path) -> Path:
    from tests.support.tiny_models import build_tiny_blip

    return build_tiny_blip(tiny_models_dir / "blip")


@pytest.fixture(scope="session")
def tiny_blip2_dir(tiny_models_dir: Path) -> Path:
    from tests.support.tiny_models import build_tiny_blip2

    return build_tiny_blip2(tiny_models_dir / "blip2")


@pytest.fixture(scope="session")
def tiny_blip2_adapter_dir(tiny_models_dir: Path, tiny_blip2_dir: Path) -> Path:
    from tests.support.tiny_models import build_tiny_lora_adapter

    return build_tiny_lora_adapter(tiny_blip2_dir, tiny_models_dir / "blip2-lora")


@pytest.fixture(scope="session")
def tiny_qwen2_vl_dir(tiny_models_dir: Path) -> Path:
    from tests.support.tiny_models import build_tiny_qwen2_vl

    return build_tiny_qwen2_vl(tiny_models_dir / "qwen2-vl")
