"""Per-row streaming and stopping inside one batched `generate` call.

transformers hands a streamer each step's new tokens for the whole batch; its own
`TextIteratorStreamer` refuses batches. `RowStreamer` splits a step's tokens per row, decodes each
row incrementally and calls back with that row's new `TokenScore`, so several requests can share
one `generate` and each still sees only its own words. `RowStops` is a stopping criterion that
ends the rows whose `threading.Event` is set; `generate` then pads those rows and keeps going for
the others. Both are plain callables/objects (no transformers import at module import time).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from medcap.models.detokenize import IncrementalDetokenizer

if TYPE_CHECKING:  # torch is imported by the calls that need it: the app starts without it
    import torch
    from PIL import Image

    from medcap.models.base import Caption, Captioner, TokenScore

TokenCallback = Callable[[int, "TokenScore"], None]
"""Called as (row, token) for every caption token a row adds while generating."""


@dataclass(frozen=True)
class CaptionUpdate:
    """One image's progress: its caption so far, or (when `done`) its final `Caption`."""

    index: int
    text: str
    tokens: tuple = ()
    done: bool = False
    stopped: bool = False  # ended early by its stop event
    caption: "Caption | None" = None
    error: str = ""


@dataclass
class RowText:
    """A row's tokens so far; `text` is what a card shows while the caption grows."""

    tokens: list = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join("".join(t.text for t in self.tokens).split())


class RowStreamer:
    """A transformers streamer (`put`/`end`) that decodes each row of a batch on its own."""

    def __init__(self, detokenizer: Callable[[], IncrementalDetokenizer], rows: int,
                 stop_ids: set[int], on_token: TokenCallback, step_logprobs: list | None = None
                 ) -> None:
        self._decoders = [detokenizer() for _ in range(rows)]
        self._open = [True] * rows
        self._started = [False] * rows
        self._stop_ids = stop_ids
        self._on_token = on_token
        self._step_logprobs = step_logprobs  # the greedy recorder's per-step list, or None
        self._prompt_seen = False
        from medcap.models.base import TokenScore  # base imports this module

        self._token = TokenScore

    def put(self, value: torch.Tensor) -> None:
        if not self._prompt_seen:  # generate first puts the prompt ids
            self._prompt_seen = True
            return
        ids = value.reshape(len(self._decoders), -1)[:, -1].tolist()
        if self._step_logprobs:
            probs = self._step_logprobs[-1].float().exp().tolist()
        else:
            probs = [1.0] * len(ids)
        for row, (token_id, prob) in enumerate(zip(ids, probs)):
            if not self._open[row]:
                continue
            if token_id in self._stop_ids:
                self._open[row] = False
                continue
            decoder = self._decoders[row]
            if token_id in decoder.special:
                continue
            piece = decoder.push(token_id)
            if not self._started[row]:  # as `_strip_tokens` does for a finished caption
                piece = piece.lstrip()
                self._started[row] = bool(piece)
            self._on_token(row, self._token(text=piece, prob=float(prob)))

    def end(self) -> None:
        """Nothing held back: a row's last piece was sent with its token."""


class RowStops:
    """A stopping criterion: rows whose event is set are finished (beams follow their row)."""

    def __init__(self, events: Sequence[threading.Event | None]) -> None:
        self._events = list(events)

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        import torch

        flags = torch.tensor([bool(e is not None and e.is_set()) for e in self._events],
                             dtype=torch.bool)
        beams = max(1, input_ids.shape[0] // max(1, len(flags)))
        return flags.repeat_interleave(beams).to(input_ids.device)

    def any_set(self) -> bool:
        return any(e is not None and e.is_set() for e in self._events)


def row_events(stop: threading.Event | Sequence[threading.Event | None] | None, rows: int
               ) -> list[threading.Event | None]:
    """One stop event per row: a single event stops them all; None stops none."""
    if stop is None or isinstance(stop, threading.Event):
        return [stop] * rows
    events = list(stop)
    if len(events) != rows:
        raise ValueError(f"got {len(events)} stop events for {rows} images")
    return events


_END = object()


def stream_batch(captioner: "Captioner", images: Sequence["Image.Image"],
                 prompts: Sequence[str | None] | None,
                 stop: threading.Event | Sequence[threading.Event | None] | None
                 ) -> Iterator[CaptionUpdate]:
    """`Captioner.stream`: one `generate` in a thread, its row updates yielded here as they come.

    Leaving the loop early (closing the iterator) stops the generation, so an abandoned stream
    never keeps the model busy.
    """
    rows = len(images)
    events = row_events(stop, rows)
    abandon = threading.Event()
    updates: queue.SimpleQueue = queue.SimpleQueue()
    texts = [RowText() for _ in range(rows)]

    def on_token(row: int, token: "TokenScore") -> None:
        updates.put((row, token))

    def run() -> None:
        try:
            watched = [_either(e, abandon) for e in events]
            updates.put(captioner.generate_rows(images, prompts, on_token, watched))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer to raise
            updates.put(exc)
        finally:
            updates.put(_END)

    worker = threading.Thread(target=run, name=f"medcap-stream-{captioner.spec.name}",
                              daemon=True)
    worker.start()
    try:
        while True:
            item = updates.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                raise item
            if isinstance(item, tuple):
                row, token = item
                texts[row].tokens.append(token)
                yield CaptionUpdate(row, texts[row].text, tuple(texts[row].tokens))
                continue
            for row, caption in enumerate(item):  # the final captions, in input order
                stopped = bool(events[row] is not None and events[row].is_set())
                yield CaptionUpdate(row, caption.text, tuple(caption.tokens), done=True,
                                    stopped=stopped, caption=caption)
    finally:
        abandon.set()
        worker.join()


class _EitherEvent:
    """Set when either of two events is (duck-types `threading.Event.is_set`)."""

    def __init__(self, first: threading.Event, second: threading.Event) -> None:
        self._events = (first, second)

    def is_set(self) -> bool:
        return any(e.is_set() for e in self._events)


def _either(event: threading.Event | None, other: threading.Event) -> Any:
    return other if event is None else _EitherEvent(event, other)
