"""On a ZeroGPU Space the caption path runs inside `spaces.GPU`; elsewhere it runs unchanged.

A stand-in `spaces` package (what ZeroGPU's decorator does: wrap the function and run it when the
GPU is lent) records the wrapping and each call, so the test needs no Space.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from PIL import Image

REPO = Path(__file__).resolve().parents[1]

FAKE_SPACES = '''
import functools, os
def GPU(task=None, *, duration=None, size=None):
    def wrap(function):
        @functools.wraps(function)
        def lent(*args, **kwargs):
            with open(os.environ["FAKE_SPACES_LOG"], "a") as log:
                log.write(f"call {function.__name__}\\n")
            return function(*args, **kwargs)
        with open(os.environ["FAKE_SPACES_LOG"], "a") as log:
            log.write(f"wrap {function.__name__} {duration}\\n")
        return lent
    return wrap(task) if callable(task) else wrap
'''

CAPTION = """
import sys
from PIL import Image
from medcap.app.models import ModelPool
from medcap.models import resolve_spec
pool = ModelPool([resolve_spec("blip", sys.argv[1], check_memory=False)])
card, = pool.caption_cards(["blip"], Image.new("RGB", (48, 40), (90, 40, 160)))
print("caption:", bool(card.caption), "error:", card.error or "none")
"""


def test_caption_path_runs_inside_spaces_gpu(tmp_path: Path, tiny_blip_dir: Path) -> None:
    (tmp_path / "fake" / "spaces").mkdir(parents=True)
    (tmp_path / "fake" / "spaces" / "__init__.py").write_text(FAKE_SPACES)
    log = tmp_path / "spaces.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "fake"), str(REPO)]),
           "FAKE_SPACES_LOG": str(log), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([sys.executable, "-c", CAPTION, str(tiny_blip_dir)], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "caption: True error: none" in done.stdout
    # The app's captions go through each model's generation loop, which calls run_rows.
    assert log.read_text().splitlines() == ["wrap run_captioner 120", "wrap run_rows 120",
                                            "call run_rows"]


def test_with_the_real_spaces_package_off_zerogpu_the_function_is_unchanged(tiny_blip_dir) -> None:
    """`spaces` is installed (requirements.txt): off ZeroGPU its decorator is a no-op."""
    from medcap.app import gpu
    from medcap.models import create_captioner, resolve_spec

    assert "SPACES_ZERO_GPU" not in os.environ
    assert gpu.run_captioner.__module__ == "medcap.app.gpu"
    assert not hasattr(gpu.run_captioner, "zerogpu"), "not wrapped for ZeroGPU here"
    captioner = create_captioner(resolve_spec("blip", str(tiny_blip_dir), check_memory=False))
    captions = gpu.run_captioner(captioner, [Image.new("RGB", (40, 40), 128)])
    assert captions[0].text and captioner.device == "cpu"
