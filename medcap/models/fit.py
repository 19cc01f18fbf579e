"""Whether a configured model fits in this machine's memory, known before anyone clicks.

The app asks at start-up, without importing torch (a fast first page) and without reading any
weights: the parameter count comes from safetensors headers (a folder, or the hub cache) or the
known hub sizes, the precision from the spec, the free memory from `loading.available_memory_bytes`.
A model that does not fit comes with the option that would: int8 on a CPU, 8-bit or 4-bit on a GPU.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from medcap.models import loading
from medcap.models.spec import ModelSpec

# What to try, in order, when a model does not fit as configured.
SMALLER = {"cpu": ("int8",), "cuda": ("8bit", "4bit")}
GIB = 1024**3


@dataclass(frozen=True)
class MemoryFit:
    """A model's memory need against the free memory where it would load."""

    parameters: int
    precision: str  # "bfloat16", "int8", ...
    device: str  # "cpu" or "cuda"
    needed: int
    available: int | None
    smaller: tuple[str, int] | None = None  # (quantization, bytes) that would fit here

    @property
    def fits(self) -> bool:
        return self.available is None or self.needed <= self.available

    def summary(self) -> str:
        """A few words for the model picker, e.g. "needs ~18 GiB, 15 GiB free"."""
        return f"needs ~{self.needed / GIB:.0f} GiB, {(self.available or 0) / GIB:.0f} GiB free"


def memory_fit(spec: ModelSpec) -> MemoryFit | None:
    """How `spec` fits here; None when the spec asks not to be checked (`check_memory`), or
    when its size or the device cannot be told."""
    if not spec.check_memory:
        return None
    parameters = spec_parameters(spec)
    device = likely_device(spec.device)
    if not parameters or device is None:
        return None
    precision = spec.quantization or likely_dtype(spec.dtype, device)
    available = loading.available_memory_bytes(device)
    needed = loading.estimate_memory(parameters, precision, None, device).bytes_needed
    fit = MemoryFit(parameters, precision, device, needed, available)
    if fit.fits or available is None:
        return fit
    for option in SMALLER[device]:
        option_needed = loading.estimate_memory(parameters, option, None, device).bytes_needed
        if option_needed < needed and option_needed <= available:
            return MemoryFit(parameters, precision, device, needed, available,
                             (option, option_needed))
    return fit


def spec_parameters(spec: ModelSpec) -> int | None:
    """Parameters of the base weights, from headers on disk or the known hub sizes."""
    folder = local_folder(spec.source)
    counted = loading.count_parameters(folder) if folder else None
    return counted or loading.KNOWN_PARAMETER_COUNTS.get(spec.source)


def local_folder(source: str) -> Path | None:
    """The folder holding `source` without downloading: itself, or its hub-cache snapshot."""
    if loading.looks_like_path(source):
        path = Path(source).expanduser()
        return path if path.is_dir() else None
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(source, local_files_only=True))
    except Exception:  # not in the cache
        return None


def likely_device(requested: str) -> str | None:
    """"cpu" or "cuda" as `loading.pick_device` would choose, without importing torch when it
    is not imported yet (a GPU is then recognised by its driver); None on ZeroGPU, where the
    GPU is lent per call and its memory cannot be asked at start-up."""
    if requested.startswith("cuda"):
        return "cuda"
    if requested != "auto":
        return "cpu" if requested == "cpu" else None
    if os.environ.get("SPACES_ZERO_GPU"):
        return None
    if "torch" in sys.modules:
        return "cuda" if loading.pick_device("auto").startswith("cuda") else "cpu"
    return "cuda" if Path("/proc/driver/nvidia/gpus").is_dir() else "cpu"


def likely_dtype(requested: str, device: str) -> str:
    """The dtype `loading.pick_dtype` would choose (2 bytes on GPUs; on CPUs bf16 where the
    CPU computes it natively, read from /proc/cpuinfo instead of asking torch)."""
    if requested != "auto":
        return requested
    if device == "cuda":
        return "bfloat16"
    if "torch" in sys.modules:
        return loading.dtype_name(loading.pick_dtype("auto", "cpu"))
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="ascii", errors="replace")
    except OSError:
        return "float32"
    return "bfloat16" if " avx512_bf16" in flags or " amx_bf16" in flags else "float32"
