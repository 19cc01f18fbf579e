"""Peak memory of the app server while several clients upload very large images at once.

    python -m benchmarks.bench_upload_memory                       # this checkout
    python -m benchmarks.bench_upload_memory --baseline /path/to/older/checkout

For each checkout and each image size, starts the real app (`app.build_demo`, tiny BLIP, no
dataset) in its own process on 127.0.0.1, captions one small PNG to load the model, then sends
`--clients` concurrent `/caption` calls through gradio_client, each with its own large, highly
compressible PNG (a 64 MP picture is a few hundred kB on disk; distinct files, as from distinct
users: Gradio stores identical uploads under one path), sampling the server's RSS every 10 ms.
MEDCAP_MAX_UPLOAD_MEGAPIXELS etc. in the environment reach the server (e.g. =64 to measure the
reduced decoding of 64 MP images instead of their refusal).
Prints the server's RSS before the burst, its peak during it, and what the clients got back
(captioned, or the refusal message). With --baseline, also prints peak(baseline) / peak(this).
Nothing is asserted; the numbers depend on the machine and the allocator.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import psutil
from PIL import Image, ImageDraw

REPO_ROOT = Path(__file__).resolve().parents[1]

SERVER = r'''
import sys
from pathlib import Path
import app
from medcap.app.options import AppOptions
from medcap.app.studio import Studio
from medcap.config import Settings

work, blip = Path(sys.argv[1]), sys.argv[2]
settings = Settings(model_names=[f"blip={blip}"], data_source=None,
                    reviews_db=work / "reviews.sqlite", runs_dir=work / "runs", check_memory=False)
options = AppOptions.from_env()  # MEDCAP_MAX_UPLOAD_* from the benchmark's environment
options.examples = []
studio = Studio(settings, options)
demo = app.build_demo(studio)
extra = {}
try:  # checkouts with upload limits hand them to launch()
    from medcap.app.launch import launch_kwargs
    extra = launch_kwargs(options)
except ImportError:
    pass
_, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                        **app.LAUNCH_OPTIONS, **extra)
print(url, flush=True)
sys.stdin.read()  # run until the benchmark closes stdin
demo.close()
'''


def large_png(path: Path, megapixels: float, seed: int = 0) -> Path:
    """An RGB PNG of about `megapixels` with a few shapes: tiny on disk, huge decoded."""
    side = int(round((megapixels * 1e6) ** 0.5))
    image = Image.new("RGB", (side, side), (20, 20, 20))
    draw = ImageDraw.Draw(image)
    rng = np.random.default_rng(seed)
    for _ in range(40):
        x, y = rng.integers(0, side, 2)
        r = int(rng.integers(side // 50, side // 8))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(60, 255, 3)))
    image.save(path, optimize=False, compress_level=9)
    return path


class RssSampler(threading.Thread):
    """The peak resident set size of one process, sampled every `interval` seconds."""

    def __init__(self, pid: int, interval: float = 0.01):
        super().__init__(daemon=True)
        self.process, self.interval = psutil.Process(pid), interval
        self.peak, self._done = 0, threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            try:
                self.peak = max(self.peak, self.process.memory_info().rss)
            except psutil.Error:
                return
            time.sleep(self.interval)

    def stop(self) -> int:
        self._done.set()
        self.join()
        return self.peak


def measure(checkout: Path, blip: Path, images: list[Path], work: Path) -> dict:
    """Start the app of `checkout`, warm it up, send the burst; RSS figures and outcomes."""
    from gradio_client import Client, handle_file

    env = {**os.environ, "PYTHONPATH": str(checkout), "GRADIO_TEMP_DIR": str(work / "gradio"),
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(work), str(blip)], cwd=checkout,
                              env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = server.stdout.readline().strip()
        small = work / "small.png"
        Image.new("RGB", (64, 48), (90, 40, 160)).save(small)
        Client(url, verbose=False).predict(handle_file(str(small)), ["blip"], "",
                                           api_name="/caption")
        before = psutil.Process(server.pid).memory_info().rss
        sampler = RssSampler(server.pid)
        sampler.start()
        outcomes: list[str] = []

        def upload(image: Path) -> None:
            try:
                result = Client(url, verbose=False).predict(handle_file(str(image)), ["blip"], "",
                                                            api_name="/caption")
                outcomes.append("captioned" if result[3][0]["caption"] else "no caption")
            except Exception as exc:  # noqa: BLE001 - a refusal is an outcome to report
                outcomes.append("refused: " + re.sub(r"'[^']*'", "'…'", str(exc))[:100])

        threads = [threading.Thread(target=upload, args=(image,)) for image in images]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        seconds = time.perf_counter() - started
        peak = sampler.stop()
        return {"before": before, "peak": peak, "seconds": seconds, "outcomes": outcomes}
    finally:
        server.stdin.close()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, nargs="+", default=[64.0, 36.0])
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another checkout of medcap to measure first (e.g. main before)")
    args = parser.parse_args(argv)

    from tests.support.tiny_models import build_tiny_blip

    checkouts = ([("baseline", args.baseline.resolve())] if args.baseline else []) + [
        ("this", REPO_ROOT)]
    mib = 2 ** 20
    with tempfile.TemporaryDirectory(prefix="medcap-bench-upload-") as tmp:
        tmp_path = Path(tmp)
        blip = build_tiny_blip(tmp_path / "blip")
        peaks: dict[tuple[str, float], int] = {}
        for megapixels in args.megapixels:
            images = [large_png(tmp_path / f"large-{megapixels:g}mp-{i}.png", megapixels, seed=i)
                      for i in range(args.clients)]
            print(f"\n{megapixels:g} MP PNGs ({images[0].stat().st_size / 1024:.0f} kB on disk), "
                  f"{args.clients} concurrent uploads")
            print("| checkout | RSS before | peak RSS | peak - before | wall | outcomes |")
            print("| --- | --- | --- | --- | --- | --- |")
            for name, checkout in checkouts:
                work = tmp_path / f"{name}-{megapixels:g}"
                work.mkdir()
                result = measure(checkout, blip, images, work)
                peaks[(name, megapixels)] = result["peak"]
                outcomes = "; ".join(sorted(set(result["outcomes"])))
                print(f"| {name} | {result['before'] / mib:,.0f} MiB | {result['peak'] / mib:,.0f} "
                      f"MiB | {(result['peak'] - result['before']) / mib:,.0f} MiB | "
                      f"{result['seconds']:.1f} s | {len(result['outcomes'])}× {outcomes} |")
            if args.baseline:
                ratio = peaks[("baseline", megapixels)] / peaks[("this", megapixels)]
                print(f"peak RSS baseline / this: {ratio:.2f}×")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
