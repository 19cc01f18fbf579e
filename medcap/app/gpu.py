"""Model work on a Hugging Face ZeroGPU Space runs inside `spaces.GPU`.

A ZeroGPU Space lends a GPU only to functions decorated with `spaces.GPU`; elsewhere (a laptop, a
CPU or dedicated-GPU Space) the decorator returns the function unchanged, and without the
`spaces` package it is not applied at all. The app sends every caption request through
`run_captioner`, so one decoration covers the Caption tab, "Generate missing captions" and the
scripted /caption endpoint. Loading happens inside the call on first use, so the duration
allows for it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

if TYPE_CHECKING:
    from PIL import Image

    from medcap.models import Caption, Captioner

GPU_SECONDS = 120  # first call loads the weights too; ZeroGPU bills the time actually used
F = TypeVar("F", bound=Callable[..., Any])


def on_gpu(function: F) -> F:
    """`spaces.GPU(duration=GPU_SECONDS)(function)` when `spaces` is installed, else `function`."""
    try:
        import spaces
    except ImportError:
        return function
    return spaces.GPU(duration=GPU_SECONDS)(function)


@on_gpu
def run_captioner(captioner: Captioner, images: Sequence[Image.Image],
                  prompt: str | None = None) -> list[Caption]:
    """Caption `images` with `captioner` (loads it on first use): the GPU-bound step."""
    return captioner.caption(list(images), prompt=prompt)


@on_gpu
def run_rows(captioner: Captioner, images: Sequence[Image.Image],
             prompts: Sequence[str | None] | None, on_token: Any = None, stops: Any = None
             ) -> list[Caption]:
    """One batch of the app's generation loop, streamed per row (`Captioner.generate_rows`).

    Called from the loop's own thread, not a request handler: on ZeroGPU, `spaces.GPU` may need
    the request's thread; that setup is untested (no ZeroGPU here).
    """
    return captioner.generate_rows(list(images), prompts, on_token, stops)
