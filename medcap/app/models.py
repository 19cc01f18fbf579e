"""The app's captioners: created on first use, one generation loop per model, failures become
card errors.

Loading a model is the slow part of the app, so nothing is loaded when the page opens; the first
caption request for a model loads it. A model that cannot load says why on its card in plain words
(`medcap.app.messages`, the `ModelLoadError` text folded under it) and the other models still
caption. Generation runs through `medcap.app.gpu.run_rows` (inside `spaces.GPU` on ZeroGPU).
Every caption goes through the model's `GenerationLoop`, so concurrent users share batched
`generate` calls, and `stream_cards` lets the Caption tab show each card's words as they come.
The CPU models of a pool load and generate in one shared `ComputeThread`.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Callable, Iterator, Sequence

from PIL import Image

from medcap.app.cards import CaptionCard
from medcap.app.generation import (
    LOAD_FAILED,
    ComputeThread,
    GenerationLoop,
    LoopBusy,
    LoopSettings,
)
from medcap.app.messages import explain, explain_entry, memory_words
from medcap.models.fit import MemoryFit, memory_fit
from medcap.models.registry import create_captioner, takes_prompt
from medcap.models.spec import DEFAULT_QWEN_PROMPT, ModelSpec
from medcap.models.streaming import CaptionUpdate

if TYPE_CHECKING:  # importing the captioners imports torch: only on the first caption
    from medcap.models import Captioner

ProgressCallback = Callable[[float, str], None]


class ModelPool:
    """Lazily created captioners keyed by their label."""

    def __init__(self, specs: Sequence[ModelSpec], problems: dict[str, str] | None = None,
                 loop_settings: LoopSettings | None = None):
        self._specs = {spec.label: spec for spec in specs}
        self.problems = dict(problems or {})
        self.loop_settings = loop_settings or LoopSettings.from_env()
        self._captioners: dict[str, Captioner] = {}
        self._loops: dict[str, GenerationLoop] = {}
        self._compute = ComputeThread()  # every CPU model loads and generates in this thread
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
            self._start_fits = {label: memory_fit(spec) for label, spec in self._specs.items()}
        return {label: memory_words(self._specs[label], fit)
                for label, fit in self._start_fits.items() if fit and not fit.fits}

    def picker_choices(self) -> list[tuple[str, str]]:
        """(shown, value) per model: a model that does not fit says what it needs."""
        too_big = self.too_big()
        fits = self._start_fits or {}
        return [(f"{label} ({fits[label].summary()})" if label in too_big else label, label)
                for label in self._specs]

    def _captioner(self, label: str) -> Captioner:
        with self._create_lock:
            if label not in self._captioners:
                self._captioners[label] = create_captioner(self._specs[label])
            return self._captioners[label]

    def loop(self, label: str) -> GenerationLoop:
        """The model's generation loop (created, not loaded, on first use)."""
        captioner = self._captioner(label)
        with self._create_lock:
            if label not in self._loops:
                compute = self._compute if _runs_on_cpu(captioner.spec) else None
                self._loops[label] = GenerationLoop(captioner, self.loop_settings, compute)
            return self._loops[label]

    def close(self) -> None:
        """End every generation loop's thread (tests and a clean shutdown)."""
        with self._create_lock:
            loops, self._loops = list(self._loops.values()), {}
        for loop in loops:
            loop.close()
        self._compute.close()

    def caption_cards(self, labels: Sequence[str], image: Image.Image, prompt: str | None = None,
                      progress: ProgressCallback | None = None) -> list[CaptionCard]:
        """One card per requested model, in the order asked; errors are carried, not raised."""
        cards = []
        for index, label in enumerate(labels):
            if progress:
                state = "" if self.is_loaded(label) else " (loading the model on first use)"
                progress(index / max(1, len(labels)), f"Captioning with {label}{state}…")
            cards.append(self._final_card(label, image, prompt))
        return cards

    def stream_cards(self, labels: Sequence[str], image: Image.Image, prompt: str | None = None,
                     stop: threading.Event | None = None, every: float = 0.05
                     ) -> Iterator[list[CaptionCard]]:
        """Every requested model's card, again each time one gains words (at most every
        `every` seconds, and always when a caption is done).

        Models run one after another (two models side by side would only share this machine's
        cores). Setting `stop` ends the running caption where it is and skips the models not yet
        started; leaving the iterator early cancels the running caption too.
        """
        cards = [self._waiting_card(label) for label in labels]
        yield list(cards)
        for index, label in enumerate(labels):
            if stop is not None and stop.is_set():
                cards[index] = CaptionCard(model=label, status="Stopped before it started.")
                continue
            refused = self._refusal(label)
            if refused is not None:
                cards[index] = refused
                yield list(cards)
                continue
            cards[index] = CaptionCard(model=label, status=self._starting_status(label))
            yield list(cards)
            shown = time.monotonic()
            for update in self._updates(label, image, prompt, stop):
                cards[index] = _card_from_update(self._specs[label], update)
                if update.done or time.monotonic() - shown >= every:
                    shown = time.monotonic()
                    yield list(cards)
        yield list(cards)

    def _updates(self, label: str, image: Image.Image, prompt: str | None,
                 stop: threading.Event | None) -> Iterator[CaptionUpdate]:
        try:
            request = self.loop(label).submit(image, self._own_prompt(label, prompt), stop)
        except LoopBusy as exc:
            yield CaptionUpdate(0, "", done=True, error=str(exc))
            return
        try:
            yield from request
        finally:
            if not request.done:  # the caller left early (page closed): free the model
                request.cancel()

    def _final_card(self, label: str, image: Image.Image, prompt: str | None) -> CaptionCard:
        refused = self._refusal(label)
        if refused is not None:
            return refused
        final = None
        for final in self._updates(label, image, prompt, None):
            pass
        return _card_from_update(self._specs[label], final)

    def _own_prompt(self, label: str, prompt: str | None) -> str | None:
        """The user's prompt goes to instruction models only; the others keep their own."""
        return prompt if takes_prompt(self._specs[label]) else None

    def _refusal(self, label: str) -> CaptionCard | None:
        """The card of a model that is not captioning: unavailable, unknown, or not started yet
        and too big for the memory free now. Checked at each request, not only when the page was
        built (a model loaded since holds memory): a load the machine would be killed for never
        starts. A model whose loop exists is loading or loaded, and its own load checks again."""
        if label in self.problems or label not in self._specs:
            return self._problem_card(label)
        started = self.is_loaded(label) or label in self._loops
        fit = None if started else memory_fit(self._specs[label])
        if fit and not fit.fits:
            return CaptionCard(model=label, error=memory_words(self._specs[label], fit))
        return None

    def _problem_card(self, label: str) -> CaptionCard:
        if label in self.problems:
            problem = explain_entry(label, self.problems[label])
            return CaptionCard(model=label, error=problem.text, detail=problem.detail)
        return CaptionCard(model=label,
                           error=f"Unknown model '{label}'. Available: {', '.join(self._specs)}.")

    def _waiting_card(self, label: str) -> CaptionCard:
        if label in self.problems or label not in self._specs:
            return self._problem_card(label)
        return CaptionCard(model=label, status="Waiting…")

    def _starting_status(self, label: str) -> str:
        if self.is_loaded(label):
            return "Generating…"
        return "Loading the model (first use), then generating…"


def _runs_on_cpu(spec: ModelSpec) -> bool:
    """Whether a model will run on the CPU: those share the pool's compute thread (one OpenMP
    thread team; `medcap.app.generation`). A GPU model keeps its loop's own thread. Asked at the
    first caption, which imports torch anyway; a device that is not there counts as CPU (its load
    fails with its own message)."""
    from medcap.models.errors import ModelLoadError
    from medcap.models.loading import pick_device

    try:
        return pick_device(spec.device) == "cpu"
    except ModelLoadError:
        return True


def _card_from_update(spec: ModelSpec, update: CaptionUpdate) -> CaptionCard:
    label = spec.label
    if update.error:
        if update.error.startswith(LOAD_FAILED):  # a ModelLoadError: plain words, text folded
            problem = explain(spec, update.error[len(LOAD_FAILED):])
            return CaptionCard(model=label, error=problem.text, detail=problem.detail)
        return CaptionCard(model=label, error=update.error)
    if not update.done:
        return CaptionCard(model=label, caption=update.text, tokens=update.tokens,
                           status="Generating…")
    caption = update.caption
    status = "Stopped." if update.stopped else ""
    return CaptionCard(model=label, caption=caption.text, seconds=caption.seconds,
                       tokens=tuple(caption.tokens), status=status)

