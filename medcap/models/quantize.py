"""Quantized weights: bitsandbytes 8-/4-bit on CUDA GPUs, weight-only int8 on CPUs.

`int8` keeps the vision encoder (and BLIP-2's Q-Former) as they are and stores every Linear
weight of the language model as int8 with one scale per output row (optimum-quanto's `qint8`),
except an output head tied to the input embeddings (Qwen2-VL's, BLIP's): that one shares the
embeddings' memory, so an int8 copy would add memory (233 MB for Qwen2-VL-2B) where the rest
saves it, and quantizing its 151,936 rows at once peaked 2.4 GiB above the model. Activations stay bfloat16, so each decoder matmul runs torch's
`_weight_int8pack_mm` CPU kernel: it reads a quarter of the fp32 bytes per generated token,
which is what decoding on a CPU waits for. With fp32 activations the same kernel is slower than
plain fp32, so `int8` always computes in bfloat16. The kernel is made for few rows: on a prompt
of hundreds of tokens it is 2-3x slower than bf16 (244 rows of 1536 -> 8960: 20 ms against
7 ms), which made Qwen2-VL's first word later in int8 than in bf16. So a layer given more than
`DEQUANTIZE_ABOVE_ROWS` rows (the prompt pass, BLIP's cross-attention over 577 image patches)
widens its int8 weight to bf16 for that call and scales the product's columns (10 ms), and the
generated tokens, one row per caption, keep the int8 kernel. optimum-quanto was chosen over torchao because
torchao's int8 weight-only linear dequantizes the whole weight at every call outside
`torch.compile` (5x slower than bf16 here).

The model loads in bfloat16 as usual (a LoRA adapter is merged then) and its language model is
quantized layer by layer right after. A bf16 checkpoint (the hub's Qwen2-VL) is not read into
memory by loading: its tensors are views of the memory-mapped file, whose pages become resident
as they are read. Quantizing reads every language-model weight once, so without more care the
process ended holding the whole bf16 file as well as the int8 copy (Qwen2-VL-2B: 9.7 GiB peak,
5.1 GiB after). So each replaced weight's file pages are handed back as soon as its int8 copy
exists (`madvise(MADV_DONTNEED)`, only on ranges mapped from a weight file and only for weights
nothing else shares), and the heap freed by the quantizer's temporaries is trimmed as it goes. Quantizing while loading (transformers' `QuantoConfig`) peaked higher here
(Qwen2-VL-2B from an fp32 checkpoint: 16.2 GiB peak RSS against 13.2 GiB in bf16) and left tied
output heads half-made, so it is not used.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import mmap
from collections import Counter
from typing import TYPE_CHECKING, Any, Sequence

from medcap.models.errors import ModelLoadError

if TYPE_CHECKING:
    import torch

    from medcap.models.spec import ModelSpec

DEQUANTIZE_ABOVE_ROWS = 32
"""Rows above which an int8 layer multiplies in bf16 (measured crossover on 1536 x 8960: 24-48)."""
GPU_QUANTIZATIONS = ("8bit", "4bit")  # bitsandbytes, CUDA only
CPU_QUANTIZATIONS = ("int8",)  # optimum-quanto weight-only int8 of the language model


def check_device(spec: ModelSpec, device: str) -> None:
    """Refuse a quantization the device cannot run, naming the one that it can."""
    if spec.quantization in GPU_QUANTIZATIONS and not device.startswith("cuda"):
        raise ModelLoadError(
            f"'{spec.name}': {spec.quantization} quantization needs a CUDA GPU (bitsandbytes); "
            f"this machine runs on {device}. Use quantization 'int8' (weight-only int8 of the "
            f"language model, for CPUs), or remove the setting to load it in full precision.")
    if spec.quantization in CPU_QUANTIZATIONS:
        if device != "cpu":
            raise ModelLoadError(
                f"'{spec.name}': int8 is the CPU quantization; on {device} use '8bit' or '4bit' "
                f"(bitsandbytes), or remove the setting.")
        if spec.dtype not in ("auto", "bfloat16"):
            raise ModelLoadError(
                f"'{spec.name}': int8 weights compute in bfloat16 (the int8 CPU kernel is slower "
                f"with {spec.dtype} inputs); leave dtype on auto or set bfloat16.")


def compute_dtype(spec: ModelSpec) -> torch.dtype | None:
    """The dtype a quantization dictates (bfloat16 for int8), or None to pick as usual."""
    import torch

    return torch.bfloat16 if spec.quantization in CPU_QUANTIZATIONS else None


def from_pretrained_kwargs(spec: ModelSpec, device: str) -> dict[str, Any]:
    """`from_pretrained` arguments for bitsandbytes, which quantizes while loading onto the GPU
    (int8 quantizes after loading: `finish`)."""
    if spec.quantization not in GPU_QUANTIZATIONS:
        return {}
    import torch
    from transformers import BitsAndBytesConfig

    config = BitsAndBytesConfig(load_in_8bit=spec.quantization == "8bit",
                                load_in_4bit=spec.quantization == "4bit")
    return {"quantization_config": config, "device_map": {"": torch.device(device).index or 0}}


def merges_adapter(spec: ModelSpec) -> bool:
    """Whether a LoRA adapter is merged into the weights: not into bitsandbytes weights (that
    loses precision); int8 merges in bfloat16 and quantizes after."""
    return spec.quantization not in GPU_QUANTIZATIONS


def finish(model: Any, spec: ModelSpec, keep: Sequence[str]) -> Any:
    """After loading (and merging an adapter): the int8 language model."""
    if spec.quantization in CPU_QUANTIZATIONS:
        quantize_language_model(model, keep)
        release_freed_memory()
    return model


@functools.cache
def _libc() -> Any:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name, use_errno=True) if name else None
    except OSError:
        return None


def release_freed_memory() -> None:
    """Hand the heap that loading freed (fp32 -> bf16 -> int8 copies) back to the system: without
    it glibc keeps it: BLIP-base in int8 held 1.6 GiB RSS after loading (bf16: 1.2), 1.1 after."""
    libc = _libc()
    if libc is not None and hasattr(libc, "malloc_trim"):  # not glibc (macOS, musl): nothing
        libc.malloc_trim(0)


WEIGHT_FILE_SUFFIXES = (".safetensors", ".bin")
MADV_DONTNEED = 4  # Linux


class MappedWeightFiles:
    """The address ranges this process has mapped from weight files (Linux `/proc/self/maps`;
    none elsewhere), so the pages of a weight that is no longer used can be handed back."""

    def __init__(self, maps: str = "/proc/self/maps") -> None:
        self.ranges: list[tuple[int, int]] = []
        try:
            with open(maps, encoding="utf-8", errors="replace") as lines:
                for line in lines:
                    fields = line.split(maxsplit=5)
                    if len(fields) == 6 and fields[5].strip().endswith(WEIGHT_FILE_SUFFIXES):
                        start, _, end = fields[0].partition("-")
                        self.ranges.append((int(start, 16), int(end, 16)))
        except OSError:
            pass

    def drop(self, tensor: Any) -> int:
        """Unmap the resident pages wholly inside `tensor`'s storage when that storage lies in a
        mapped weight file (the file stays the source: a later read would load them again).
        Returns the bytes handed back (0 for memory that is not a file's)."""
        storage = tensor.untyped_storage()
        start, end = storage.data_ptr(), storage.data_ptr() + storage.nbytes()
        libc = _libc()
        if libc is None or not any(low <= start and end <= high for low, high in self.ranges):
            return 0
        first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE
        last = end // mmap.PAGESIZE * mmap.PAGESIZE
        if last <= first or libc.madvise(ctypes.c_void_p(first), ctypes.c_size_t(last - first),
                                         MADV_DONTNEED) != 0:
            return 0
        return last - first


def quantize_language_model(model: Any, keep: Sequence[str]) -> int:
    """Store every Linear weight outside `keep` as int8 (in place); returns how many changed.
    Each bf16 weight is dropped as soon as its int8 copy exists."""
    import torch
    from optimum.quanto import QModuleMixin, qint8

    int8_linear = _int8_linear_class()
    mapped = MappedWeightFiles()
    uses = Counter(t.untyped_storage().data_ptr()
                   for _, t in [*model.named_parameters(remove_duplicate=False),
                                *model.named_buffers(remove_duplicate=False)])
    changed = 0
    for name, module in list(model.named_modules()):
        if _kept(name, keep):
            continue
        if isinstance(module, QModuleMixin):
            if not module.frozen:
                module.freeze()
                changed += 1
        elif type(module) is torch.nn.Linear:
            bf16 = module.weight
            if uses[bf16.untyped_storage().data_ptr()] > 1:
                continue  # an output head tied to the embeddings: see the docstring
            qlinear = int8_linear.from_module(module, weights=qint8)
            qlinear.freeze()
            qlinear.weight.requires_grad_(False)
            model.set_submodule(name, qlinear)
            mapped.drop(bf16)
            changed += 1
            if changed % 16 == 0:
                release_freed_memory()
    return changed


@functools.cache
def _int8_linear_class() -> type:
    """optimum-quanto's `QLinear`, multiplying in bf16 when given many rows (module docstring);
    made on first use so that importing medcap does not import optimum-quanto."""
    import torch
    from optimum.quanto import QLinear

    class Int8Linear(QLinear):
        def forward(self, input: torch.Tensor) -> torch.Tensor:
            weight = self.weight
            data, scale = getattr(weight, "_data", None), getattr(weight, "_scale", None)
            if (data is None or scale is None or data.dtype != torch.int8
                    or input.numel() <= DEQUANTIZE_ABOVE_ROWS * input.shape[-1]):
                return super().forward(input)
            # int8 values are exact in bf16; one scale per output row scales the output column.
            out = torch.nn.functional.linear(input, data.to(input.dtype))
            out = out * scale.reshape(-1).to(out.dtype)
            return out + self.bias if self.bias is not None else out

    Int8Linear.__name__ = Int8Linear.__qualname__ = "Int8Linear"
    return Int8Linear


def linear_layers(model: Any, keep: Sequence[str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Weight dtypes of the language model's and the kept modules' linear layers, by name (what
    tests and benchmarks check): an int8 layer reports torch.int8."""
    import torch
    from optimum.quanto import QModuleMixin

    language, kept = {}, {}
    for name, module in model.named_modules():
        if isinstance(module, (torch.nn.Linear, QModuleMixin)) and hasattr(module, "weight"):
            weight = module.weight
            dtype = getattr(weight, "_data", weight).dtype
            (kept if _kept(name, keep) else language)[name] = dtype
    return language, kept


def _kept(name: str, keep: Sequence[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in keep)


def token_agreement(reference: Sequence[str], other: Sequence[str]) -> float:
    """Share of positions where two greedy captions emit the same token, over the longer one
    (1.0: identical; after the first difference greedy decoding usually goes its own way)."""
    length = max(len(reference), len(other))
    if not length:
        return 1.0
    return sum(a == b for a, b in zip(reference, other)) / length
