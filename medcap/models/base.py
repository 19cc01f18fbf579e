"""The `Captioner` interface every model family implements.

A family adapter says how to load its model and processor and how to turn a batch of images into
model inputs; this base class does the rest once: lazy loading with clear errors, LoRA adapters,
batching (images grouped by size, original order restored), greedy/beam decoding under
`torch.inference_mode`, per-token probabilities for the app's uncertainty shading, and streaming:
each image's words as they are generated, with a stop per image (`stream`, `generate_rows`).
"""

from __future__ import annotations

import copy
import functools
import json
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, ClassVar, Iterator, Sequence

import torch
from PIL import Image

from medcap.models import loading, quantize
from medcap.models.vision_cache import VisionCache
from medcap.models.detokenize import IncrementalDetokenizer
from medcap.models.errors import ModelLoadError, first_line
from medcap.models.families import family_traits
from medcap.models.spec import ModelSpec
from medcap.models.streaming import (
    CaptionUpdate,
    RowStops,
    RowStreamer,
    TokenCallback,
    stream_batch,
)


@dataclass
class TokenScore:
    """One generated token: the exact text it added to the caption and the model's probability."""

    text: str
    prob: float


@dataclass
class Caption:
    text: str
    seconds: float  # wall time of the batch divided by the images in it
    tokens: list[TokenScore] = field(default_factory=list)


@dataclass
class PreparedBatch:
    """Model inputs for one `generate` call, made on the CPU, possibly in a background thread
    while the model is busy with the previous batch."""

    inputs: dict[str, Any]
    size: int
    seconds: float  # preprocessing time, counted into each caption's per-image time


ProgressCallback = Callable[[int, int], None]
Preparer = Callable[..., PreparedBatch]


class Captioner(ABC):
    """Captions lists of PIL images with one model; loads the weights on first use."""

    family: ClassVar[str]
    model_types: ClassVar[tuple[str, ...]]  # accepted `model_type` values in config.json
    display_name: ClassVar[str]
    mixed_prompts: ClassVar[bool] = False  # can one batch hold different prompts (left padding)?

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.model: Any = None
        self.processor: Any = None
        self.device: str = "cpu"
        self.dtype: torch.dtype = torch.float32
        self._lock = threading.Lock()
        self._special_cache: tuple[Any, frozenset[int]] | None = None
        self.vision_cache = VisionCache()  # an image captioned again skips the vision encoder

    # ------------------------------------------------------------------ loading
    @property
    def loaded(self) -> bool:
        return self.model is not None

    def load(self) -> None:
        """Load weights, processor and adapter once; raise `ModelLoadError` with a clear message."""
        with self._lock:
            if self.loaded:
                return
            spec = self.spec
            self.device = loading.pick_device(spec.device)
            quantize.check_device(spec, self.device)
            self.dtype = quantize.compute_dtype(spec) or loading.pick_dtype(spec.dtype, self.device)
            dtype = loading.dtype_name(self.dtype)
            if spec.check_memory and not loading.looks_like_path(spec.source):
                # Known hub models: refuse before a multi-GB download that could never load.
                loading.check_memory(spec.name, spec.source, None, dtype, spec.quantization,
                                     self.device)
            weights_dir = loading.resolve_weights_dir(spec.source, what=f"{spec.name} model")
            self._check_model_type(weights_dir)
            if spec.check_memory:
                loading.check_memory(spec.name, spec.source, weights_dir, dtype,
                                     spec.quantization, self.device)
            try:
                model, processor = self._load_model(weights_dir)
            except ModelLoadError:
                raise
            except Exception as exc:  # corrupt weights, wrong layout, missing processor files
                raise ModelLoadError(
                    f"Could not load '{spec.name}' from {spec.source}: "
                    f"{type(exc).__name__}: {first_line(exc)}"
                ) from exc
            if spec.adapter:
                model = self._apply_adapter(model, spec.adapter)
            model = quantize.finish(model, spec, self.vision_modules)
            if not spec.quantization:
                model = model.to(self.device)
            self.model = model.eval()
            self.processor = processor
            # A PEFT-wrapped model (an adapter kept beside quantized weights) holds the encoder
            # under its base model.
            base = model.get_base_model() if hasattr(model, "get_base_model") else model
            self._cache_vision(base)

    def attach(self, model: Any, processor: Any, dtype: torch.dtype | None = None) -> None:
        """Use an already loaded model (e.g. one being fine-tuned) instead of loading weights.

        `dtype` is what floating inputs are cast to; by default the model's first float weight.
        """
        with self._lock:
            params = [p for p in model.parameters() if p.is_floating_point()]
            self.model, self.processor = model, processor
            self.device = str(params[0].device) if params else "cpu"
            self.dtype = dtype or (params[0].dtype if params else torch.float32)

    def unload(self) -> None:
        """Free the weights and the GPU memory torch keeps cached for them (the caption CLI does
        this after each model, so the next one finds the memory free)."""
        with self._lock:
            self.model = None
            self.processor = None
            self.vision_cache = VisionCache()  # its features belong to the weights just dropped
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    def load_processor(self) -> Any:
        """The processor alone, without the weights: for CPU workers that prepare batches for a
        model running in another process (the Ray engine), and for checking a model folder
        before any worker starts. Raises `ModelLoadError` like `load`."""
        weights_dir = loading.resolve_weights_dir(self.spec.source, what=f"{self.spec.name} model")
        self._check_model_type(weights_dir)
        try:
            return self._load_processor(weights_dir)
        except ModelLoadError:
            raise
        except Exception as exc:
            raise ModelLoadError(f"Could not load the processor of '{self.spec.name}' from "
                                 f"{self.spec.source}: {type(exc).__name__}: {first_line(exc)}"
                                 ) from exc

    def _check_model_type(self, weights_dir: Path) -> None:
        config_file = weights_dir / "config.json"
        if not config_file.is_file():
            raise ModelLoadError(
                f"'{self.spec.name}': {weights_dir} has no config.json; expected a model folder "
                f"saved with save_pretrained (or a hub snapshot)."
            )
        try:
            model_type = json.loads(config_file.read_text(encoding="utf-8")).get("model_type")
        except (OSError, ValueError) as exc:
            raise ModelLoadError(f"'{self.spec.name}': {config_file} is not valid JSON ({exc}).") from exc
        if model_type not in self.model_types:
            raise ModelLoadError(
                f"'{self.spec.name}' expects a {self.display_name} model, but {weights_dir} holds "
                f"model_type '{model_type}'. Pick the matching family for that folder."
            )

    def _apply_adapter(self, model: Any, adapter: str) -> Any:
        path = Path(adapter).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"'{self.spec.name}': LoRA adapter directory '{path}' does not exist.")
        if not (path / "adapter_config.json").is_file():
            raise ModelLoadError(
                f"'{self.spec.name}': '{path}' is not a PEFT adapter (no adapter_config.json). "
                f"Point to the adapter folder written by finetune/ or PeftModel.save_pretrained."
            )
        try:
            from peft import PeftModel

            peft_model = PeftModel.from_pretrained(model, str(path))
        except Exception as exc:
            raise ModelLoadError(
                f"'{self.spec.name}': the LoRA adapter in '{path}' does not fit the base model "
                f"{self.spec.source}: {type(exc).__name__}: {first_line(exc)}"
            ) from exc
        if not quantize.merges_adapter(self.spec):
            return peft_model  # merging into quantized weights loses precision; keep it separate
        return peft_model.merge_and_unload()

    # ------------------------------------------------------------------ captioning
    def caption(
        self,
        images: Sequence[Image.Image],
        batch_size: int | None = None,
        progress: ProgressCallback | None = None,
        prompt: str | None = None,
    ) -> list[Caption]:
        """Caption `images` in batches; results come back in input order.

        `prompt` replaces the spec's prompt for this call only (the app's per-request Qwen2-VL
        instruction), so concurrent callers never see each other's prompt.
        """
        if not images:
            return []
        self.load()
        size = batch_size or self.spec.batch_size
        # Grouping images of similar size keeps padding (and Qwen2-VL visual tokens) even per batch.
        order = sorted(range(len(images)), key=lambda i: images[i].width * images[i].height)
        results: list[Caption | None] = [None] * len(images)
        done = 0
        for start in range(0, len(order), size):
            batch_index = order[start : start + size]
            captions = self.caption_batch([images[i] for i in batch_index], prompt=prompt)
            for i, caption in zip(batch_index, captions):
                results[i] = caption
            done += len(batch_index)
            if progress:
                progress(done, len(images))
        return [r for r in results if r is not None]

    def caption_batch(self, images: Sequence[Image.Image], prompt: str | None = None
                      ) -> list[Caption]:
        """One `generate` call for the whole batch."""
        return self.generate(self.prepare(images, prompt))

    def prepare(self, images: Sequence[Image.Image], prompt: str | None = None,
                processor: Any = None, prompts: Sequence[str | None] | None = None
                ) -> PreparedBatch:
        """The processor's work for one batch (resize, normalise, tokenise), on the CPU.

        `prompts` gives each image its own prompt (concurrent app requests in one batch);
        otherwise `prompt` applies to all. `processor` defaults to the captioner's own;
        `background_preparer` passes a private copy, and CPU workers feeding a model elsewhere
        pass `load_processor()`'s (no weights loaded).
        """
        if processor is None:
            self.load()
        started = time.perf_counter()
        rgb = [image if image.mode == "RGB" else image.convert("RGB") for image in images]
        chosen = [self.prompt_for(p) for p in (prompts if prompts is not None
                                                else [prompt] * len(rgb))]
        if len(chosen) != len(rgb):
            raise ValueError(f"got {len(chosen)} prompts for {len(rgb)} images")
        if len(set(chosen)) > 1 and not self.mixed_prompts:
            raise ValueError(f"{self.display_name} cannot batch different prompts; caption "
                             f"each prompt's images in a batch of their own.")
        inputs = self._prepare(processor or self.processor, rgb, chosen)
        if self.device.startswith("cuda"):  # page-locked, so the copy to the GPU is asynchronous
            inputs = {k: v.pin_memory() if isinstance(v, torch.Tensor) else v
                      for k, v in inputs.items()}
        return PreparedBatch(inputs=inputs, size=len(rgb), seconds=time.perf_counter() - started)

    def background_preparer(self) -> Preparer:
        """`prepare` bound to a private copy of the processor, for a worker thread that prepares
        the next batch while `generate` runs: fast tokenizers refuse to be used from two threads
        at once ("Already borrowed"), and the main thread keeps decoding captions with its own."""
        self.load()
        return functools.partial(self.prepare, processor=copy.deepcopy(self.processor))

    def generate(self, prepared: PreparedBatch, on_token: TokenCallback | None = None,
                 stops: Sequence[Any] | None = None) -> list[Caption]:
        """One `generate` call on prepared inputs; captions in the batch's order.

        `on_token(row, token)` receives each row's caption tokens as they are generated (greedy
        or sampled decoding; beam search only has its result at the end). `stops` holds one
        event (anything with `is_set()`) or None per row: a set event ends that row early, the
        other rows go on.
        """
        self.load()
        started = time.perf_counter()
        inputs = {k: self._to_device(v) for k, v in prepared.inputs.items()}
        kwargs = self.spec.generation.generate_kwargs()
        kwargs.update(self._extra_generate_kwargs())
        recorder = None
        if self._greedy:
            # Keep one probability per row and step instead of every step's vocabulary-sized
            # scores (8 x 128 x 152k floats = 620 MB for Qwen2-VL), which capped the batch size.
            from transformers import LogitsProcessorList

            recorder = _ChosenTokenLogprob()
            kwargs["logits_processor"] = LogitsProcessorList([recorder])
        if stops is not None and any(e is not None for e in stops):
            from transformers import StoppingCriteriaList

            kwargs["stopping_criteria"] = StoppingCriteriaList([RowStops(stops)])
        if on_token is not None and self.spec.generation.num_beams == 1:
            kwargs["streamer"] = RowStreamer(self.detokenizer, prepared.size,
                                             self._stop_token_ids(), on_token,
                                             recorder.steps if recorder is not None else None)
        with torch.inference_mode():
            out = self.model.generate(
                **inputs, return_dict_in_generate=True, output_scores=recorder is None, **kwargs
            )
            generated, probs = self._generated_tokens(out, recorder)
        seconds = (prepared.seconds + time.perf_counter() - started) / prepared.size
        return [self._make_caption(ids, p, seconds) for ids, p in zip(generated, probs)]

    def generate_rows(self, images: Sequence[Image.Image], prompts: Sequence[str | None] | None,
                      on_token: TokenCallback | None = None, stops: Sequence[Any] | None = None
                      ) -> list[Caption]:
        """Prepare and generate one batch with a prompt per image, streamed per row (what
        `stream` and the app's generation loop run in their worker thread)."""
        return self.generate(self.prepare(images, prompts=prompts), on_token, stops)

    def stream(self, images: Sequence[Image.Image],
               prompts: Sequence[str | None] | str | None = None,
               stop: threading.Event | Sequence[threading.Event | None] | None = None
               ) -> Iterator[CaptionUpdate]:
        """Caption one batch and yield each image's caption as it grows, then its final caption.

        Yields `CaptionUpdate(index, text, tokens)` whenever an image's caption gains a token,
        and one `done=True` update per image at the end with the `Caption` that `caption()`
        would return (the same text for an image not stopped). `stop` is one event for the
        whole batch or one per image; a set event ends that image's caption early.
        """
        if isinstance(prompts, str):
            prompts = [prompts] * len(images)
        return stream_batch(self, list(images), prompts, stop)

    def prompt_for(self, prompt: str | None = None) -> str | None:
        """The prompt a call uses: its own when given (and not blank), else the spec's."""
        if prompt is not None and prompt.strip():
            return prompt.strip()
        return self.spec.prompt

    def image_budget(self) -> int | None:
        """The spec's `max_pixels`, else the family's default where the model runs (a CPU gets
        fewer Qwen2-VL visual tokens than a GPU; `medcap.models.families`)."""
        if self.spec.max_pixels:
            return self.spec.max_pixels
        traits = family_traits(self.spec.family)
        if traits is None:
            return None
        device = self.device if self.loaded else _planned_device(self.spec)
        return traits.default_max_pixels(device)

    def _to_device(self, value: Any) -> Any:
        if not isinstance(value, torch.Tensor):
            return value
        non_blocking = value.is_pinned()
        if value.is_floating_point():
            return value.to(self.device, dtype=self.dtype, non_blocking=non_blocking)
        return value.to(self.device, non_blocking=non_blocking)

    def _from_pretrained_kwargs(self) -> dict[str, Any]:
        """dtype, the attention implementation when the spec names one, and for a quantized
        spec the bitsandbytes config that quantizes while loading (every family; int8 is
        quantized after loading, `medcap.models.quantize.finish`)."""
        kwargs: dict[str, Any] = {"dtype": self.dtype}
        if self.spec.attn_implementation:
            kwargs["attn_implementation"] = self.spec.attn_implementation
        kwargs.update(quantize.from_pretrained_kwargs(self.spec, self.device))
        return kwargs

    def _extra_generate_kwargs(self) -> dict[str, Any]:
        return {}

    @property
    def _greedy(self) -> bool:
        generation = self.spec.generation
        return generation.num_beams == 1 and not generation.do_sample

    def _generated_tokens(
        self, out: Any, recorder: "_ChosenTokenLogprob | None" = None
    ) -> tuple[list[list[int]], list[list[float]]]:
        """The new token ids of each row (prompt and padding removed) and their probabilities."""
        steps = len(recorder.steps) if recorder is not None else len(out.scores)
        new_ids = out.sequences[:, out.sequences.shape[1] - steps :]
        beam_indices = getattr(out, "beam_indices", None)
        if recorder is not None:
            logprobs = torch.stack(recorder.steps, dim=1)  # batch x steps
        elif beam_indices is not None and self.spec.generation.num_beams > 1:
            logprobs = self.model.compute_transition_scores(
                out.sequences, out.scores, beam_indices, normalize_logits=True
            )
        else:
            stacked = torch.stack(out.scores, dim=1).float()  # batch x steps x vocab
            logprobs = torch.log_softmax(stacked, dim=-1).gather(2, new_ids.unsqueeze(-1)).squeeze(-1)
        new_ids = new_ids.tolist()
        probs = logprobs.exp().tolist()
        stop = self._stop_token_ids()
        ids_out, probs_out = [], []
        for row_ids, row_probs in zip(new_ids, probs):
            cut = next((i for i, t in enumerate(row_ids) if t in stop), len(row_ids))
            ids_out.append(row_ids[:cut])
            probs_out.append(row_probs[:cut])
        return ids_out, probs_out

    def _stop_token_ids(self) -> set[int]:
        config = self.model.generation_config
        ids: set[int] = set()
        for value in (config.eos_token_id, config.pad_token_id):
            if isinstance(value, int):
                ids.add(value)
            elif value:
                ids.update(value)
        return ids

    def _make_caption(self, ids: list[int], probs: list[float], seconds: float) -> Caption:
        detokenizer = self.detokenizer()
        tokens = [TokenScore(text=detokenizer.push(token_id), prob=float(prob))
                  for token_id, prob in zip(ids, probs) if token_id not in detokenizer.special]
        # One decode of the whole caption, so its text is exactly the tokenizer's.
        return Caption(text=_tidy(detokenizer.decode_all()), seconds=seconds,
                       tokens=_strip_tokens(tokens))

    def detokenizer(self) -> IncrementalDetokenizer:
        """A fresh incremental decoder of this model's token ids (one per caption)."""
        return IncrementalDetokenizer(self.tokenizer, self._special_ids())

    def _special_ids(self) -> frozenset[int]:
        cached = self._special_cache
        if cached is None or cached[0] is not self.tokenizer:
            cached = (self.tokenizer, frozenset(self.tokenizer.all_special_ids))
            self._special_cache = cached
        return cached[1]

    @property
    def tokenizer(self) -> Any:
        return getattr(self.processor, "tokenizer", self.processor)

    # ------------------------------------------------------------------ family hooks
    @abstractmethod
    def _load_model(self, weights_dir: Path) -> tuple[Any, Any]:
        """Return (model, processor) loaded from a local directory with `from_pretrained`."""

    def _load_processor(self, weights_dir: Path) -> Any:
        """The family's processor from a local directory (also used by `_load_model`)."""
        from transformers import AutoProcessor

        return AutoProcessor.from_pretrained(str(weights_dir))

    def _cache_vision(self, model: Any) -> None:
        """Route the loaded model's vision encoder through `self.vision_cache`
        (`medcap.models.vision_cache`); a family without one keeps its encoder as it is."""

    @abstractmethod
    def _prepare(self, processor: Any, images: list[Image.Image], prompts: list[str | None]
                 ) -> dict[str, Any]:
        """`processor` outputs (tensors) for a batch of RGB images, one (resolved) prompt each;
        the prompts differ only where the family sets `mixed_prompts`."""


class _ChosenTokenLogprob:
    """A logits processor that records, per step, the log-probability of the token greedy
    decoding will pick (a plain callable, so importing medcap does not import transformers).

    `generate` appends custom processors after its own (repetition penalty, min length), so the
    scores seen here are the final ones and greedy decoding takes their arg-max.
    """

    def __init__(self) -> None:
        self.steps: list[torch.Tensor] = []

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        self.steps.append(torch.log_softmax(scores.float(), dim=-1).amax(dim=-1))
        return scores


def _planned_device(spec: ModelSpec) -> str:
    """Where a model not loaded yet will run (the Ray engine's CPU workers prepare batches for a
    model in another process: the driver pins the budget in the spec, `pin_image_budget`)."""
    try:
        return loading.pick_device(spec.device)
    except ModelLoadError:
        return "cpu"


def _tidy(text: str) -> str:
    return " ".join(text.split())


def _strip_tokens(tokens: list[TokenScore]) -> list[TokenScore]:
    """Drop the leading whitespace of the first token so token texts join to the caption."""
    if tokens:
        tokens[0] = TokenScore(tokens[0].text.lstrip(), tokens[0].prob)
    return tokens
