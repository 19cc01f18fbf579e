"""Feeding models: decode and preprocess the next images in a background thread while the model
generates, and batch images of similar size together.

Decoding a PNG/DICOM costs tens of milliseconds and the processor's resize/normalise/tokenise
another 3 (BLIP) to 12 (Qwen2-VL at 448x448) ms per image, measured on this project's CPU. On a
GPU that captions BLIP-base at hundreds of images per second, doing that inline would cost about
as much as generating, so the worker thread does it for the next batch (PIL, numpy and torch
release the GIL in their heavy parts).
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Protocol, Sequence

from PIL import Image

if TYPE_CHECKING:
    from medcap.models import PreparedBatch

GROUP_BATCHES = 4  # batches read ahead and sorted by image size before they are cut


class _Loadable(Protocol):
    image_id: str

    def load(self): ...


Decoded = tuple[_Loadable, "Image.Image | None", "str | None"]
Prepare = Callable[[Sequence[Image.Image]], "PreparedBatch"]
_END = object()


@dataclass
class Batch:
    items: list[Decoded]  # (record, RGB image or None, error or None)
    order: list[int]  # each item's position in the source, to write results back in that order
    closes_window: bool = True  # the last batch cut from its size-sorted window
    prepared: "PreparedBatch | None" = None  # model inputs for the images that decoded, in order

    @property
    def images(self) -> list[Image.Image]:
        return [image for _, image, error in self.items if error is None and image is not None]


def decode(record: _Loadable) -> Decoded:
    """(record, RGB image, None), or (record, None, reason) for an image that cannot be read."""
    from medcap.data import ImageLoadError

    try:
        return record, record.load().image, None
    except ImageLoadError as exc:
        return record, None, str(exc)


def _pixels(item: Decoded) -> int:
    image = item[1]
    return image.width * image.height if image is not None else 0


def cut_window(window: list[tuple[int, Decoded]], batch_size: int, *, group: bool = True
               ) -> list[Batch]:
    """Cut decoded (position, item) pairs into batches, sorted by image size when `group`.

    The last batch closes the window: a caller that collects results until then can put them
    back in source order with `Batch.order` (the local engine's thread and Ray's CPU tasks).
    """
    if group:
        window = sorted(window, key=lambda entry: _pixels(entry[1]))
    batches = []
    for start in range(0, len(window), batch_size):
        part = window[start : start + batch_size]
        batches.append(Batch(items=[item for _, item in part], order=[n for n, _ in part],
                             closes_window=start + batch_size >= len(window)))
    return batches


def prefetch_batches(records: Iterable[_Loadable], batch_size: int, *, depth: int = 2,
                     prepare: Prepare | None = None, group: int = 1) -> Iterator[Batch]:
    """Batches of decoded records, made ahead in a thread; `depth` batches are kept ready.

    `prepare` (e.g. `Captioner.background_preparer()`) also runs the processor in the thread.
    `group` > 1 reads `group * batch_size` records at a time and cuts them into batches by image
    size, so images of similar size share a `generate` call (less padding, and for Qwen2-VL
    similar visual token counts); `Batch.order` and `Batch.closes_window` let the caller put
    results back in source order one window at a time. An exception in the source or in `prepare` is re-raised in
    the caller.
    """
    if batch_size < 1 or group < 1:
        raise ValueError("batch_size and group must be at least 1")
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def emit(window: list[tuple[int, Decoded]]) -> bool:
        for batch in cut_window(window, batch_size, group=group > 1):
            if stop.is_set():
                return False
            if prepare is not None and batch.images:
                batch.prepared = prepare(batch.images)
            ready.put(batch)
        return True

    def work() -> None:
        try:
            window: list[tuple[int, Decoded]] = []
            for position, record in enumerate(records):
                if stop.is_set():
                    return
                window.append((position, decode(record)))
                if len(window) == batch_size * group:
                    if not emit(window):
                        return
                    window = []
            if window and not emit(window):
                return
            ready.put(_END)
        except BaseException as exc:  # handed to the consumer thread
            ready.put(exc)

    worker = threading.Thread(target=work, name="medcap-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            item = ready.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while worker.is_alive():  # unblock a worker waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                worker.join(timeout=0.05)
