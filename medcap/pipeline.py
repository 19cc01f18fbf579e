"""Feeding models: decode images in a background thread while the model generates.

Decoding a PNG/DICOM and converting it costs tens of milliseconds; doing it in a worker thread
overlaps that with generation (PIL and torch both release the GIL in their heavy parts).
"""

from __future__ import annotations

import queue
import threading
from typing import Iterable, Iterator, Protocol

from PIL import Image


class _Loadable(Protocol):
    image_id: str

    def load(self): ...


Decoded = tuple[_Loadable, "Image.Image | None", "str | None"]
_END = object()


def _decode(record: _Loadable) -> Decoded:
    from medcap.data import ImageLoadError

    try:
        return record, record.load().image, None
    except ImageLoadError as exc:
        return record, None, str(exc)


def prefetch_batches(records: Iterable[_Loadable], batch_size: int, *,
                     depth: int = 2) -> Iterator[list[Decoded]]:
    """Batches of (record, RGB image or None, error or None), decoded ahead in a thread.

    `depth` batches are kept ready; an exception in the source is re-raised in the caller.
    """
    ready: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def work() -> None:
        try:
            batch: list[Decoded] = []
            for record in records:
                if stop.is_set():
                    return
                batch.append(_decode(record))
                if len(batch) == batch_size:
                    ready.put(batch)
                    batch = []
            if batch:
                ready.put(batch)
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
