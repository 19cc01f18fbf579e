"""medcap.pipeline: decoding, size grouping and preprocessing ahead of the model, in a thread."""

from __future__ import annotations

import threading
from dataclasses import dataclass

import pytest
from PIL import Image

from medcap.data import ImageLoadError
from medcap.models import create_captioner, resolve_spec
from medcap.pipeline import prefetch_batches


@dataclass
class FakeRecord:
    image_id: str
    size: tuple[int, int] | None  # None: the file is broken

    def load(self):
        if self.size is None:
            raise ImageLoadError(f"'{self.image_id}' is not an image")

        @dataclass
        class Loaded:
            image: Image.Image

        return Loaded(Image.new("RGB", self.size, "gray"))


SIZES = [(64, 64), (32, 32), None, (96, 48), (40, 40), (80, 80), (32, 48)]


def _records() -> list[FakeRecord]:
    return [FakeRecord(f"img{i}", size) for i, size in enumerate(SIZES)]


def test_without_grouping_batches_keep_source_order_and_carry_errors():
    batches = list(prefetch_batches(_records(), 3))
    assert [[r.image_id for r, _, _ in b.items] for b in batches] == [
        ["img0", "img1", "img2"], ["img3", "img4", "img5"], ["img6"]]
    assert [b.order for b in batches] == [[0, 1, 2], [3, 4, 5], [6]]
    broken = batches[0].items[2]
    assert broken[1] is None and "is not an image" in broken[2]
    assert len(batches[0].images) == 2  # only the images that decoded
    assert all(b.closes_window for b in batches) and all(b.prepared is None for b in batches)


def test_grouping_sorts_each_window_by_size_and_order_restores_the_source():
    batches = list(prefetch_batches(_records(), 2, group=2))
    # Windows of 4 records: [0..3] and [4..6], each cut by pixel count (a broken file counts 0).
    assert [[r.image_id for r, _, _ in b.items] for b in batches] == [
        ["img2", "img1"], ["img0", "img3"], ["img6", "img4"], ["img5"]]
    assert [b.closes_window for b in batches] == [False, True, False, True]
    window = sorted(n for b in batches[:2] for n in b.order)
    assert window == [0, 1, 2, 3]
    restored = [r.image_id for b in batches for n, (r, _, _) in sorted(zip(b.order, b.items))]
    assert sorted(restored) == [f"img{i}" for i in range(7)]


def test_prepare_runs_in_the_worker_thread_on_the_decoded_images():
    seen: list[tuple[str, list[tuple[int, int]]]] = []

    def prepare(images):
        seen.append((threading.current_thread().name, [im.size for im in images]))
        return f"prepared {len(images)}"

    batches = list(prefetch_batches(_records(), 3, prepare=prepare))
    assert [b.prepared for b in batches] == ["prepared 2", "prepared 3", "prepared 1"]
    assert {name for name, _ in seen} == {"medcap-prefetch"}
    assert seen[0][1] == [(64, 64), (32, 32)]  # the broken file is not handed to the processor


def test_errors_in_the_source_or_in_prepare_reach_the_caller():
    def failing_source():
        yield FakeRecord("ok", (32, 32))
        raise OSError("disk went away")

    with pytest.raises(OSError, match="disk went away"):
        list(prefetch_batches(failing_source(), 1))

    def bad_prepare(images):
        raise ValueError("processor refused")

    with pytest.raises(ValueError, match="processor refused"):
        list(prefetch_batches(_records(), 2, prepare=bad_prepare))


def test_a_caller_that_stops_early_stops_the_worker():
    endless = (FakeRecord(f"img{i}", (32, 32)) for i in range(10**9))
    feed = prefetch_batches(endless, 4)
    next(feed)
    feed.close()
    assert not any(t.name == "medcap-prefetch" and t.is_alive() for t in threading.enumerate())


@pytest.mark.parametrize("fixture, family", [("tiny_qwen2_vl_dir", "qwen2-vl"),
                                             ("tiny_blip_dir", "blip")])
def test_background_prepared_batches_caption_like_the_plain_path(request, fixture, family):
    folder = request.getfixturevalue(fixture)
    captioner = create_captioner(resolve_spec(family, str(folder), max_new_tokens=6))
    records = [FakeRecord(f"img{i}", size) for i, size in enumerate(
        [(64, 64), (56, 56), (64, 64), (56, 56)])]
    piped: dict[str, str] = {}
    for batch in prefetch_batches(records, 2, group=2, prepare=captioner.background_preparer()):
        good = [r for r, image, error in batch.items if error is None]
        for record, caption in zip(good, captioner.generate(batch.prepared)):
            piped[record.image_id] = caption.text
            assert caption.seconds > 0
    plain = {r.image_id: c.text for r, c in
             zip(records, captioner.caption([r.load().image for r in records], batch_size=2))}
    assert piped == plain
    # The worker used its own processor copy; the captioner's is untouched and still works.
    assert captioner.caption([records[0].load().image])[0].text == plain["img0"]
