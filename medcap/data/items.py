"""The two values the data layer hands out: a decoded image and a dataset record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from PIL import Image

from medcap.data.errors import ImageLoadError


@dataclass
class LoadedImage:
    """One decoded picture.

    image: RGB, 8-bit, what models get (tiny images are scaled up, alpha is flattened).
    display: 8-bit picture for the viewer; grayscale sources stay "L", colour ones "RGB".
    metadata: non-identifying metadata (DICOM: modality, body part, study description, ...);
        empty for ordinary image files. Never holds patient identifiers.
    source_format: "png", "jpeg", "gif", "dicom", ...
    """

    image: Image.Image
    display: Image.Image
    metadata: dict[str, str] = field(default_factory=dict)
    source_format: str = ""


def _no_loader() -> LoadedImage:
    raise ImageLoadError("This record has no image attached.")


@dataclass(frozen=True)
class Record:
    """One dataset item; the image is decoded only when `load()` is called.

    Keeping decoding lazy lets a resuming CLI skip finished ids without touching pixels, and
    lets a single broken image fail on its own instead of stopping the whole iteration.
    """

    image_id: str
    caption: str | None
    cuis: tuple[str, ...] = ()
    modality: str | None = None
    split: str | None = None
    loader: Callable[[], LoadedImage] = field(default=_no_loader, repr=False, compare=False)

    def load(self) -> LoadedImage:
        """Decode the image; raises ImageLoadError with a message naming the problem."""
        return self.loader()
