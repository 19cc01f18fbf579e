"""Where weights come from, whether they fit, and which device/dtype to use.

Resolving happens before any `from_pretrained` call so that an unreachable hub, a missing
directory or a 6.7B model on a small machine each end in one clear `ModelLoadError`.
"""

from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from medcap.models.errors import ModelLoadError, first_line

if TYPE_CHECKING:  # torch is imported where a device or dtype is picked, so the path and
    import torch   # hub-cache checks can run at app start-up without it

# Parameter counts of the default hub models, for a memory check before anything downloads.
KNOWN_PARAMETER_COUNTS = {
    "Salesforce/blip-image-captioning-base": 247_000_000,
    "Salesforce/blip-image-captioning-large": 470_000_000,
    "Salesforce/blip2-opt-2.7b": 3_870_000_000,
    "Salesforce/blip2-opt-6.7b": 7_750_000_000,
    "Qwen/Qwen2-VL-2B-Instruct": 2_210_000_000,
    "Qwen/Qwen2-VL-7B-Instruct": 8_290_000_000,
}
# int8 (CPU) loads in bf16 and quantizes after (medcap.models.quantize): loading peaks at the bf16
# size, so that is what must fit; the loaded model then holds ~1.2-1.5 bytes a parameter.
BYTES_PER_DTYPE = {"float32": 4, "float16": 2, "bfloat16": 2, "8bit": 1, "4bit": 0.5, "int8": 2}
SAFETENSORS_DTYPE_BYTES = {"F32": 4, "F16": 2, "BF16": 2, "F64": 8, "I64": 8, "I32": 4,
                           "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1}
MEMORY_HEADROOM = 1.25  # activations, processor buffers and the Python process itself


def looks_like_path(source: str) -> bool:
    """A hub id is `owner/name`; anything that exists or is written like a path is a path."""
    return (
        os.path.exists(source)
        or source.startswith(("/", ".", "~"))
        or source.count("/") > 1
        or os.sep != "/" and os.sep in source
    )


def hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes") or os.environ.get(
        "TRANSFORMERS_OFFLINE", ""
    ).lower() in ("1", "true", "yes")


def offline_hint(repo_id: str) -> str:
    return (
        f"To use it offline, download it on a machine with network access "
        f"(`hf download {repo_id}`) and copy the Hugging Face cache "
        f"(~/.cache/huggingface/hub, or $HF_HOME) to this machine, or save it to a folder and "
        f"pass that folder instead of the id (e.g. `--model NAME=/path/to/folder`, or "
        f"MEDCAP_MODELS=NAME=/path/to/folder for the app)."
    )


def resolve_weights_dir(source: str, *, what: str = "model") -> Path:
    """Return a local directory holding `source`: the directory itself, or the hub snapshot.

    Tries the local Hugging Face cache first; downloads only when the hub is allowed and reachable.
    """
    if looks_like_path(source):
        path = Path(source).expanduser()
        if not path.exists():
            raise ModelLoadError(f"The {what} directory '{path}' does not exist.")
        if not path.is_dir():
            raise ModelLoadError(f"The {what} path '{path}' is a file; expected a directory "
                                 f"saved with save_pretrained (config.json + weights).")
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(source, local_files_only=True))
    except Exception:  # not cached (LocalEntryNotFoundError and friends)
        pass
    if hub_offline():
        raise ModelLoadError(
            f"The {what} '{source}' is not in the local Hugging Face cache and the hub is "
            f"switched off (HF_HUB_OFFLINE=1). " + offline_hint(source)
        )
    try:
        return Path(snapshot_download(source))
    except Exception as exc:  # network errors, 401/404, disk full ...
        raise ModelLoadError(
            f"The {what} '{source}' could not be fetched from the Hugging Face hub and is not in "
            f"the local cache ({type(exc).__name__}: {first_line(exc)[:200]}). "
            + offline_hint(source)
        ) from exc


def count_parameters(weights_dir: Path) -> int | None:
    """Parameter count from safetensors headers (reads a few KB, not the weights)."""
    total = 0
    files = sorted(weights_dir.glob("*.safetensors"))
    for file in files:
        try:
            with open(file, "rb") as handle:
                (length,) = struct.unpack("<Q", handle.read(8))
                header = json.loads(handle.read(length))
        except (OSError, ValueError, struct.error):
            return None
        for name, info in header.items():
            if name == "__metadata__":
                continue
            count = 1
            for dim in info.get("shape", []):
                count *= dim
            total += count
    if files:
        return total
    bins = list(weights_dir.glob("*.bin"))
    if bins:  # pickled weights: assume fp32 on disk
        return sum(f.stat().st_size for f in bins) // 4
    return None


def available_memory_bytes(device: str) -> int | None:
    """Free memory where the weights will live: GPU memory for cuda, else MemAvailable (read
    without importing torch, so the app can tell at start-up which models fit)."""
    if device.startswith("cuda"):
        import torch

        if torch.cuda.is_available():
            index = torch.device(device).index or 0
            free, _ = torch.cuda.mem_get_info(index)
            return int(free)
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


@dataclass(frozen=True)
class MemoryEstimate:
    parameters: int
    bytes_needed: int
    bytes_available: int | None

    @property
    def fits(self) -> bool:
        return self.bytes_available is None or self.bytes_needed <= self.bytes_available


def estimate_memory(parameters: int, dtype: str, quantization: str | None,
                    device: str) -> MemoryEstimate:
    per_param = BYTES_PER_DTYPE[quantization or dtype]
    needed = int(parameters * per_param * MEMORY_HEADROOM)
    return MemoryEstimate(parameters, needed, available_memory_bytes(device))


def check_memory(name: str, source: str, weights_dir: Path | None, dtype: str,
                 quantization: str | None, device: str) -> None:
    """Refuse, before loading, a model that will not fit in the free memory."""
    parameters = count_parameters(weights_dir) if weights_dir else None
    if parameters is None:
        parameters = KNOWN_PARAMETER_COUNTS.get(source)
    if not parameters:
        return
    estimate = estimate_memory(parameters, dtype, quantization, device)
    if estimate.fits:
        return
    gib = 1024**3
    advice = (
        "Use int8 weights on a CPU (quantization='int8'), 8-bit/4-bit quantization on a CUDA GPU "
        "(quantization='8bit'), a GPU with enough memory, or a smaller model."
    )
    raise ModelLoadError(
        f"Not enough memory to load '{name}' ({source}): about "
        f"{estimate.parameters / 1e9:.1f}B parameters need ~{estimate.bytes_needed / gib:.1f} GiB "
        f"in {quantization or dtype} on {device}, but only "
        f"{estimate.bytes_available / gib:.1f} GiB is free. {advice} "
        f"(Set check_memory=False / MEDCAP_SKIP_MEMORY_CHECK=1 to try anyway.)"
    )


def pick_device(requested: str) -> str:
    import torch

    if requested != "auto":
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"Device '{requested}' was requested but no CUDA GPU is available.")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def pick_dtype(requested: str, device: str) -> torch.dtype:
    """The fastest dtype the hardware computes natively: bf16 on GPUs that support it (else fp16),
    bf16 on CPUs with bf16 dot-product instructions (AVX512-BF16 or AMX: about 2x the fp32
    throughput and half the memory traffic), fp32 on other CPUs, where bf16 is emulated and slower.
    """
    import torch

    if requested != "auto":
        return getattr(torch, requested)
    if device.startswith("cuda"):
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device == "mps":
        return torch.float16
    return torch.bfloat16 if cpu_has_native_bf16() else torch.float32


def cpu_has_native_bf16() -> bool:
    """True where oneDNN runs bf16 matmuls in hardware (AVX512-BF16 or AMX tiles)."""
    import torch

    cpu = getattr(torch, "cpu", None)
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        check = getattr(cpu, probe, None)
        try:
            if check is not None and check():
                return True
        except Exception:  # a private torch probe; treat any failure as "no"
            continue
    return False


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")
