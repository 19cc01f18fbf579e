"""Optional Qwen2-VL captioning through vLLM, for users who outgrow one process's `generate`.

vLLM (an existing serving engine, not ours) brings continuous batching, paged KV cache, CUDA graphs
and tensor parallelism over several GPUs. It needs a CUDA machine and `pip install vllm`, so it is
imported lazily, only when this backend loads. Everything around the engine is plain code tested
without vLLM: the prompt comes from the same chat template as the transformers path
(`Qwen2VLCaptioner.chat_text`), images go in as `multi_modal_data`, `max_pixels` reaches vLLM's
Qwen2-VL processor through `mm_processor_kwargs`, and outputs become the same `Caption` objects
(text, per-image seconds, token probabilities), so the CLI writes the same CSV.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

from PIL import Image

from medcap.models import loading
from medcap.models.base import Caption
from medcap.models.errors import ModelLoadError, first_line
from medcap.models.qwen2_vl import Qwen2VLCaptioner
from medcap.models.registry import pin_image_budget
from medcap.models.spec import GenerationSettings, ModelSpec

INSTALL_HINT = (
    "The vLLM backend needs a CUDA GPU and the vllm package (pip install vllm, which brings its "
    "own torch build; use a separate virtual environment). Use --backend transformers otherwise."
)


@dataclass
class VllmSettings:
    """Engine settings; see vLLM's `LLM` arguments. `tensor_parallel_size` > 1 spreads one model
    over several GPUs."""

    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.90
    max_model_len: int = 4096
    max_num_seqs: int = 128
    enforce_eager: bool = False
    seed: int = 0


EngineFactory = Callable[[dict[str, Any]], tuple[Any, Callable[..., Any]]]


def engine_kwargs(spec: ModelSpec, model_dir: Path, settings: VllmSettings) -> dict[str, Any]:
    """Arguments for `vllm.LLM(**kwargs)` for one Qwen2-VL spec."""
    kwargs: dict[str, Any] = {
        "model": str(model_dir),
        "dtype": spec.dtype,
        "limit_mm_per_prompt": {"image": 1},
        **asdict(settings),
    }
    budget = pin_image_budget(spec, "cuda").max_pixels  # vLLM runs on a GPU
    if budget:
        kwargs["mm_processor_kwargs"] = {"max_pixels": budget}
    return kwargs


def sampling_kwargs(generation: GenerationSettings) -> dict[str, Any]:
    """Arguments for `vllm.SamplingParams(**kwargs)` matching medcap's generation settings.

    `logprobs=0` asks for the log-probability of each chosen token only (for the app's shading).
    """
    if generation.num_beams > 1:
        raise ModelLoadError("The vLLM backend decodes greedily or by sampling; beam search "
                             "(num_beams > 1) needs --backend transformers.")
    kwargs: dict[str, Any] = {
        "max_tokens": generation.max_new_tokens,
        "min_tokens": generation.min_new_tokens,
        "repetition_penalty": generation.repetition_penalty,
        "temperature": generation.temperature if generation.do_sample else 0.0,
        "logprobs": 0,
    }
    if generation.do_sample:
        kwargs["top_p"] = generation.top_p
    return kwargs


def build_requests(prompt: str, images: Sequence[Image.Image]) -> list[dict[str, Any]]:
    """One vLLM prompt per image: the templated chat text plus the image as multi-modal data."""
    return [{"prompt": prompt, "multi_modal_data": {"image": image}} for image in images]


def _import_vllm(kwargs: dict[str, Any]) -> tuple[Any, Callable[..., Any]]:
    try:
        import vllm
    except ImportError as exc:
        raise ModelLoadError(INSTALL_HINT) from exc
    return vllm.LLM(**kwargs), vllm.SamplingParams


class VllmQwen2VLCaptioner(Qwen2VLCaptioner):
    """A Qwen2-VL captioner whose `generate` is a vLLM engine; same interface and outputs.

    The transformers processor is still loaded (cheap) for the chat template and for turning token
    ids into the per-token texts the app shades.
    """

    def __init__(self, spec: ModelSpec, settings: VllmSettings | None = None,
                 engine_factory: EngineFactory | None = None) -> None:
        super().__init__(spec)
        self.settings = settings or VllmSettings()
        self._engine_factory = engine_factory or _import_vllm
        self._sampling_params: Any = None

    def load(self) -> None:
        with self._lock:
            if self.loaded:
                return
            spec = self.spec
            if spec.adapter:
                raise ModelLoadError(f"'{spec.name}': LoRA adapters are not wired into the vLLM "
                                     f"backend; merge the adapter into the weights or use "
                                     f"--backend transformers.")
            if spec.quantization:
                raise ModelLoadError(f"'{spec.name}': {spec.quantization} quantization is a "
                                     f"transformers option; with vLLM use a pre-quantized "
                                     f"checkpoint.")
            sampling = sampling_kwargs(spec.generation)
            model_dir = loading.resolve_weights_dir(spec.source, what=f"{spec.name} model")
            self._check_model_type(model_dir)
            from transformers import AutoProcessor

            try:
                processor = AutoProcessor.from_pretrained(str(model_dir))
                engine, sampling_params_class = self._engine_factory(
                    engine_kwargs(spec, model_dir, self.settings))
            except ModelLoadError:
                raise
            except Exception as exc:  # no CUDA, GPU out of memory, weights vLLM cannot read
                raise ModelLoadError(
                    f"Could not start a vLLM engine for '{spec.name}' from {spec.source}: "
                    f"{type(exc).__name__}: {first_line(exc)}") from exc
            self.processor = processor
            self._sampling_params = sampling_params_class(**sampling)
            self.model = engine

    def caption_batch(self, images: Sequence[Image.Image], prompt: str | None = None
                      ) -> list[Caption]:
        """Hand the whole batch to the engine; it schedules them itself (continuous batching)."""
        return self.generate_rows(images, [prompt] * len(images))

    def generate_rows(self, images: Sequence[Image.Image], prompts: Sequence[str | None] | None,
                      on_token: Any = None, stops: Any = None) -> list[Caption]:
        """One engine call with a prompt per image. The offline engine has no token stream, so
        `stream()` yields each caption whole and `on_token` / `stops` go unused."""
        self.load()
        started = time.perf_counter()
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        requests = [request for prompt, image in zip(prompts or [None] * len(rgb), rgb)
                    for request in build_requests(self.chat_text(prompt), [image])]
        outputs = self.model.generate(requests, self._sampling_params, use_tqdm=False)
        seconds = (time.perf_counter() - started) / len(images)
        stop = self._stop_token_ids()
        captions = []
        for output in outputs:
            completion = output.outputs[0]
            ids = list(completion.token_ids)
            probs = _chosen_token_probs(ids, completion.logprobs)
            cut = next((i for i, t in enumerate(ids) if t in stop), len(ids))
            captions.append(self._make_caption(ids[:cut], probs[:cut], seconds))
        return captions

    def _stop_token_ids(self) -> set[int]:
        tokenizer = self.tokenizer
        return {t for t in (tokenizer.eos_token_id, tokenizer.pad_token_id) if t is not None}


def _chosen_token_probs(ids: list[int], logprobs: Any) -> list[float]:
    """vLLM gives, per step, a dict token id -> Logprob(logprob=...); keep the chosen token's."""
    if not logprobs:
        return [1.0] * len(ids)
    probs = []
    for token_id, step in zip(ids, logprobs):
        entry = step.get(token_id) if step else None
        value = getattr(entry, "logprob", entry)
        probs.append(math.exp(value) if isinstance(value, (int, float)) else 1.0)
    return probs


def create_vllm_captioner(spec: ModelSpec, settings: VllmSettings | None = None) -> VllmQwen2VLCaptioner:
    """The vLLM captioner for a Qwen2-VL spec; other families are refused with a clear message."""
    if spec.family != Qwen2VLCaptioner.family:
        raise ModelLoadError(f"'{spec.name}' is a {spec.family} model; the vLLM backend serves "
                             f"Qwen2-VL only. Run it with --backend transformers.")
    return VllmQwen2VLCaptioner(spec, settings)
