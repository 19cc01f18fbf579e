"""The app's captioners: created on first use, one lock per model, failures become card errors.

Loading a model is the slow part of the app, so nothing is loaded when the page opens; the first
caption request for a model loads it. A model that cannot load says why on its card in plain words
(`medcap.app.messages`, the `ModelLoadError` text folded under it) and the other models still
caption. Generation runs through `medcap.app.gpu.run_captioner` (inside `spaces.GPU` on ZeroGPU).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable, Sequence

from PIL import Image

from medcap.app.cards import CaptionCard
from medcap.app.gpu import run_captioner
from medcap.app.messages import explain, explain_entry, memory_words
from medcap.models.errors import ModelLoadError
from medcap.models.fit import MemoryFit, memory_fit
from medcap.models.registry import create_captioner, takes_prompt
from medcap.models.spec import DEFAULT_QWEN_PROMPT, ModelSpec

if TYPE_CHECKING:  # importing the captioners imports torch: only on the first caption
    from medcap.models import Caption, Captioner

ProgressCallback = Callable[[float, str], None]


class ModelPool:
    """Lazily created captioners keyed by their label."""

    def __init__(self, specs: Sequence[ModelSpec], problems: dict[str, str] | None = None):
        self._specs = {spec.label: spec for spec in specs}
        self.problems = dict(problems or {})
        self._captioners: dict[str, Captioner] = {}
        self._locks = {label: threading.Lock() for label in self._specs}
        self._create_lock = threading.Lock()
        self._start_fits: dict[str, MemoryFit | None] | None = None

    @property
    def labels(self) -> list[str]:
        return list(self._specs)

    def prompted_labels(self) -> list[str]:
        """Models whose prompt a user may edit (the instruction-following ones)."""
        return [label for label, spec in self._specs.items() if takes_prompt(spec)]

    def default_prompt(self) -> str:
        for label in self.prompted_labels():
            return self._specs[label].prompt or DEFAULT_QWEN_PROMPT
        return DEFAULT_QWEN_PROMPT

    def is_loaded(self, label: str) -> bool:
        captioner = self._captioners.get(label)
        return bool(captioner and captioner.loaded)

    def too_big(self) -> dict[str, str]:
        """Models that did not fit in memory when the page was built, with why and what would
        fit (the picker marks them before anyone clicks)."""
        if self._start_fits is None:
            self._start_fits = {label: self._fit(label) for label in self._specs}
        return {label: memory_words(self._specs[label], fit)
                for label, fit in self._start_fits.items() if fit and not fit.fits}

    def picker_choices(self) -> list[tuple[str, str]]:
        """(shown, value) per model: a model that does not fit says what it needs."""
        too_big = self.too_big()
        fits = self._start_fits or {}
        return [(f"{label} ({fits[label].summary()})" if label in too_big else label, label)
                for label in self._specs]

    def _fit(self, label: str) -> MemoryFit | None:
        spec = self._specs[label]
        return memory_fit(spec) if spec.check_memory else None

    def _captioner(self, label: str) -> Captioner:
        with self._create_lock:
            if label not in self._captioners:
                self._captioners[label] = create_captioner(self._specs[label])
            return self._captioners[label]

    def caption_one(self, label: str, images: Sequence[Image.Image], prompt: str | None = None
                    ) -> list[Caption]:
        """Caption with one model; the prompt override applies to prompted models only.

        One request at a time per model (the lock), so concurrent users queue instead of
        stacking activations on a small machine; each call carries its own prompt.
        """
        if label not in self._specs:
            raise ModelLoadError(f"Unknown model '{label}'. Available: {', '.join(self._specs)}.")
        captioner = self._captioner(label)
        own_prompt = prompt if captioner.takes_prompt else None
        with self._locks[label]:
            return run_captioner(captioner, images, own_prompt)

    def caption_cards(self, labels: Sequence[str], image: Image.Image, prompt: str | None = None,
                      progress: ProgressCallback | None = None) -> list[CaptionCard]:
        """One card per requested model, in the order asked; errors are carried, not raised."""
        cards = []
        for index, label in enumerate(labels):
            if progress:
                state = "" if self.is_loaded(label) else " (loading the model on first use)"
                progress(index / max(1, len(labels)), f"Captioning with {label}{state}…")
            cards.append(self._card(label, image, prompt))
        return cards

    def _card(self, label: str, image: Image.Image, prompt: str | None) -> CaptionCard:
        if label in self.problems:
            problem = explain_entry(label, self.problems[label])
            return CaptionCard(model=label, error=problem.text, detail=problem.detail)
        fit = None if self.is_loaded(label) else self._fit(label)
        if fit and not fit.fits:  # never start a load the machine would be killed for
            return CaptionCard(model=label, error=memory_words(self._specs[label], fit))
        try:
            caption = self.caption_one(label, [image], prompt)[0]
        except ModelLoadError as exc:
            problem = explain(self._specs.get(label), str(exc))
            return CaptionCard(model=label, error=problem.text, detail=problem.detail)
        except Exception as exc:  # noqa: BLE001 - a failed generation is shown on its card
            return CaptionCard(model=label, error=f"Captioning failed: {type(exc).__name__}: {exc}")
        return CaptionCard(model=label, caption=caption.text, seconds=caption.seconds,
                           tokens=tuple(caption.tokens))
