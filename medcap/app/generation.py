"""One generation loop per model: concurrent caption requests share one batched `generate`, and
each request streams back only its own words.

Ten students pressing "Caption" at once used to wait for ten sequential `generate` calls behind a
per-model lock. A `GenerationLoop` owns the model instead: its thread takes the first waiting
request, gathers the others that arrive within a short window (up to `max_batch_size`), and runs
them as one batch through `Captioner.generate_rows`, whose streamer splits each step's tokens per
row. Every request holds a `CaptionRequest` handle: iterate it for `CaptionUpdate`s (the caption
so far, then the final `Caption`), or call `cancel()` to end that request early; the other rows of
the batch go on. Prompts may differ per request where the model batches them (Qwen2-VL,
BLIP-2); otherwise requests with another prompt wait for the next batch. No gradio here.

The loops of one app hand their batches to one shared `ComputeThread`, so every model loads and
generates in the same OS thread. torch's OpenMP runtime keeps a team of worker threads for each
thread that has run a parallel op, and once the teams hold more threads than the machine has
cores it stops letting idle workers spin: every one of the hundreds of small ops of a decoding
step then waits for its workers to wake up. On this 2-core machine one BLIP-base caption took
1.6 s from a second thread against 1.15 s from a single one (`python -m
benchmarks.bench_latency`). The models ran one after another anyway (`ModelPool.stream_cards`);
the price is that a model loading on first use (Qwen2-VL-2B: ~10 s) holds the other models'
requests until it is loaded, where two threads would only have shared the two cores.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, TypeVar

from PIL import Image

from medcap.app.gpu import run_rows
from medcap.models.streaming import CaptionUpdate, RowText

if TYPE_CHECKING:  # the captioners import torch: the app starts without it
    from medcap.models import Caption, Captioner


@dataclass(frozen=True)
class LoopSettings:
    """How many requests one `generate` takes and how long the loop waits to gather them.

    The window costs at most `gather_seconds` of latency for the first request, and only when
    others are already waiting is it worth it; 30 ms is small next to a caption's seconds.
    """

    max_batch_size: int = 8
    gather_seconds: float = 0.03
    max_waiting: int = 64  # requests queued per model before new ones are refused

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> "LoopSettings":
        """`MEDCAP_MAX_BATCH` (1-64) and `MEDCAP_BATCH_WAIT_MS` (0-1000)."""
        env = os.environ if env is None else env
        batch = _bounded_int(env, "MEDCAP_MAX_BATCH", cls.max_batch_size, 1, 64)
        wait_ms = _bounded_int(env, "MEDCAP_BATCH_WAIT_MS", int(cls.gather_seconds * 1000), 0, 1000)
        return cls(max_batch_size=batch, gather_seconds=wait_ms / 1000)


def _bounded_int(env: Mapping[str, str], name: str, default: int, low: int, high: int) -> int:
    text = env.get(name, "").strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{name} must be a whole number from {low} to {high}, not {text!r}.") from None
    if not low <= value <= high:
        raise ValueError(f"{name} must be from {low} to {high}, not {value}.")
    return value


T = TypeVar("T")


class ComputeThread:
    """One long-lived thread that runs the model work it is given, one job at a time.

    `run(job)` blocks its caller until `job()` has run here and returns its result (or raises its
    exception). Share one between the generation loops of a process (see the module docstring).
    """

    def __init__(self, name: str = "medcap-compute") -> None:
        self._name = name
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], queue.SimpleQueue] | None] = (
            queue.SimpleQueue())
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def run(self, job: Callable[[], T]) -> T:
        reply: queue.SimpleQueue = queue.SimpleQueue()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._serve, name=self._name, daemon=True)
                self._thread.start()
            self._jobs.put((job, reply))
        ok, value = reply.get()
        if not ok:
            raise value
        return value

    def close(self, timeout: float | None = 10.0) -> None:
        """End the thread after the jobs already given (a later `run` starts a new one)."""
        with self._lock:
            thread, self._thread = self._thread, None
            if thread is not None:
                self._jobs.put(None)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def _serve(self) -> None:
        while True:
            item = self._jobs.get()
            if item is None:
                return
            job, reply = item
            try:
                reply.put((True, job()))
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                reply.put((False, exc))


class LoopBusy(RuntimeError):
    """Too many requests are waiting for this model; the message is for the user."""


class CaptionRequest:
    """One image waiting for, or being captioned by, a loop; iterate it for its updates."""

    def __init__(self, image: Image.Image, prompt: str | None,
                 stop: threading.Event | None = None) -> None:
        self.image = image
        self.prompt = prompt
        self.stop = stop or threading.Event()  # a caller's event ends it too (a Stop button)
        self._updates: queue.SimpleQueue[CaptionUpdate] = queue.SimpleQueue()
        self._text = RowText()
        self._final: CaptionUpdate | None = None

    def cancel(self) -> None:
        """End this request early: a waiting one never runs, a running one stops at its next
        token and keeps the words it has."""
        self.stop.set()

    @property
    def done(self) -> bool:
        """Whether the final update has been read."""
        return self._final is not None

    def __iter__(self) -> Iterator[CaptionUpdate]:
        """The caption as it grows, then one update with `done=True` (caption or error)."""
        while self._final is None:
            update = self._updates.get()
            if update.done:
                self._final = update
            yield update

    def result(self) -> CaptionUpdate:
        """Wait for the final update (the whole caption, or the error)."""
        for _ in self:
            pass
        assert self._final is not None
        return self._final

    # -- called by the loop's thread -----------------------------------------------------------
    def _token(self, token) -> None:
        self._text.tokens.append(token)
        self._updates.put(CaptionUpdate(0, self._text.text, tuple(self._text.tokens)))

    def _finish(self, caption: Caption | None = None, error: str = "") -> None:
        stopped = self.stop.is_set()
        if caption is None:
            from medcap.models import Caption

            caption = Caption(text=self._text.text, seconds=0.0, tokens=list(self._text.tokens))
        self._updates.put(CaptionUpdate(0, caption.text, tuple(caption.tokens), done=True,
                                        stopped=stopped and not error, caption=caption,
                                        error=error))


class GenerationLoop:
    """The one thread that runs `generate` for one captioner, batching concurrent requests."""

    def __init__(self, captioner: Captioner, settings: LoopSettings | None = None,
                 compute: ComputeThread | None = None) -> None:
        self.captioner = captioner
        self.settings = settings or LoopSettings()
        self.compute = compute  # where batches run; None: in this loop's own thread
        self._inbox: queue.Queue[CaptionRequest | None] = queue.Queue()
        self._held: deque[CaptionRequest] = deque()  # gathered but for a later batch (prompt)
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False
        self.batches: list[int] = []  # sizes of the batches run (the benchmark reports them)

    def submit(self, image: Image.Image, prompt: str | None = None,
               stop: threading.Event | None = None) -> CaptionRequest:
        """Queue one image; returns at once with the request to iterate or cancel. `stop`, when
        given, is the request's stop event (set it, or call `cancel()`, to end it early)."""
        with self._lock:
            if self._closed:
                raise RuntimeError("this generation loop is closed")
            if self._inbox.qsize() + len(self._held) >= self.settings.max_waiting:
                raise LoopBusy(f"{self.captioner.spec.name} has {self.settings.max_waiting} "
                               f"captions waiting; try again in a moment.")
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name=f"medcap-generate-{self.captioner.spec.name}",
                    daemon=True)
                self._thread.start()
            request = CaptionRequest(image, prompt, stop)
            self._inbox.put(request)
        return request

    def caption(self, image: Image.Image, prompt: str | None = None) -> Caption:
        """Submit and wait: the whole caption (raises on a failed generation)."""
        final = self.submit(image, prompt).result()
        if final.error:
            raise RuntimeError(final.error)
        return final.caption

    def close(self, timeout: float | None = 10.0) -> None:
        """Finish the batch in flight, cancel the waiting requests, end the thread."""
        with self._lock:
            self._closed = True
            thread = self._thread
        self._inbox.put(None)
        if thread is not None:
            thread.join(timeout)

    # -- the loop ------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            batch = self._gather()
            if batch is None:
                break
            if batch:
                self._generate(batch)
        for request in [*self._held, *self._drain()]:
            request.cancel()
            request._finish(error="The app is shutting down.")

    def _gather(self) -> list[CaptionRequest] | None:
        """The next batch: the first request, then whatever arrives within the window and can
        share its batch. None when the loop is closed."""
        first = self._held.popleft() if self._held else self._inbox.get()
        if first is None:
            return None
        batch, later = [first], []
        deadline = time.monotonic() + self.settings.gather_seconds
        while self._held and len(batch) < self.settings.max_batch_size:
            self._place(self._held.popleft(), batch, later)
        while len(batch) < self.settings.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                request = (self._inbox.get(timeout=remaining) if remaining > 0
                           else self._inbox.get_nowait())
            except queue.Empty:
                break
            if request is None:
                self._inbox.put(None)  # close after this batch
                break
            self._place(request, batch, later)
        self._held.extendleft(reversed(later))
        ready = []
        for request in batch:
            if request.stop.is_set():  # cancelled while waiting: never runs
                request._finish()
            else:
                ready.append(request)
        return ready

    def _place(self, request: CaptionRequest, batch: list[CaptionRequest],
               later: list[CaptionRequest]) -> None:
        if self.captioner.mixed_prompts or request.prompt == batch[0].prompt:
            batch.append(request)
        else:
            later.append(request)

    def _generate(self, batch: list[CaptionRequest]) -> None:
        self.batches.append(len(batch))

        def job() -> list[Caption]:
            return run_rows(self.captioner, [r.image for r in batch], [r.prompt for r in batch],
                            lambda row, token: batch[row]._token(token), [r.stop for r in batch])

        try:
            captions = self.compute.run(job) if self.compute is not None else job()
        except Exception as exc:  # noqa: BLE001 - every request of the batch gets the message
            message = _error_message(exc)
            for request in batch:
                request._finish(error=message)
            return
        for request, caption in zip(batch, captions):
            request._finish(caption)

    def _drain(self) -> list[CaptionRequest]:
        drained = []
        while True:
            try:
                request = self._inbox.get_nowait()
            except queue.Empty:
                return drained
            if request is not None:
                drained.append(request)


LOAD_FAILED = "Could not load: "
"""Prefix of a request's error when the model could not load (`medcap.app.models` words it)."""


def _error_message(exc: Exception) -> str:
    from medcap.models import ModelLoadError

    if isinstance(exc, ModelLoadError):
        return LOAD_FAILED + str(exc)
    return f"Captioning failed: {type(exc).__name__}: {exc}"


class StopSwitches:
    """The stop events of each browser session's running captions, for its Stop button."""

    def __init__(self) -> None:
        self._events: dict[str, set[threading.Event]] = {}
        self._lock = threading.Lock()

    def start(self, session: str) -> threading.Event:
        """A new event for one caption run of `session`; `finish` it when the run ends."""
        event = threading.Event()
        with self._lock:
            self._events.setdefault(session, set()).add(event)
        return event

    def stop(self, session: str) -> int:
        """Stop every running caption of `session`; returns how many there were."""
        with self._lock:
            events = list(self._events.get(session, ()))
        for event in events:
            event.set()
        return len(events)

    def finish(self, session: str, event: threading.Event) -> None:
        with self._lock:
            running = self._events.get(session)
            if running is not None:
                running.discard(event)
                if not running:
                    del self._events[session]
