"""`Captioner.stream` and per-row stops: tiny models of every family, no timing."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from medcap.models import create_captioner, resolve_spec

FAMILY_FIXTURES = {"blip": "tiny_blip_dir", "blip2": "tiny_blip2_dir",
                   "qwen2-vl": "tiny_qwen2_vl_dir"}


def _images(count: int = 2, size: int = 64) -> list[Image.Image]:
    rng = np.random.RandomState(1)
    return [Image.fromarray((rng.rand(size, size, 3) * 255).astype("uint8")) for _ in range(count)]


def _captioner(name, request, **overrides):
    folder = request.getfixturevalue(FAMILY_FIXTURES[name])
    return create_captioner(resolve_spec(name, str(folder), **overrides))


@pytest.mark.parametrize("name", list(FAMILY_FIXTURES))
def test_stream_grows_each_caption_and_ends_with_what_caption_returns(name, request):
    captioner = _captioner(name, request, max_new_tokens=12, min_new_tokens=12)
    images = _images()
    expected = captioner.caption(images)
    updates = list(captioner.stream(images))
    for row, caption in enumerate(expected):
        partial = [u for u in updates if u.index == row and not u.done]
        final = [u for u in updates if u.index == row and u.done]
        assert len(final) == 1 and final[0].caption.text == caption.text
        assert not final[0].stopped
        assert final[0].caption.tokens == caption.tokens
        texts = [u.text for u in partial]
        assert len(set(texts)) >= 3  # it really grows, token by token
        assert all(later.startswith(earlier) for earlier, later in zip(texts, texts[1:]))
        assert texts[-1] == caption.text
        assert [t.text for t in partial[-1].tokens] == [t.text for t in caption.tokens]
        assert [round(t.prob, 5) for t in partial[-1].tokens] == [
            round(t.prob, 5) for t in caption.tokens]
    assert updates[-1].done  # final captions come last


def test_qwen2_vl_stream_takes_a_prompt_per_image(tiny_qwen2_vl_dir):
    captioner = create_captioner(resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir),
                                              max_new_tokens=8))
    images = _images()
    prompts = ["Name the modality.", "Describe the lungs and the heart in detail."]
    alone = [captioner.caption([im], prompt=p)[0].text for im, p in zip(images, prompts)]
    streamed = {u.index: u.caption.text for u in captioner.stream(images, prompts) if u.done}
    assert [streamed[0], streamed[1]] == alone
    assert captioner.prepare(images, prompts=prompts).inputs["attention_mask"][:, 0].tolist().count(0) == 1


def test_blip_refuses_different_prompts_in_one_batch(tiny_blip_dir):
    captioner = create_captioner(resolve_spec("blip", str(tiny_blip_dir)))
    with pytest.raises(ValueError, match="cannot batch different prompts"):
        captioner.prepare(_images(), prompts=["a chest", "an axial"])


@pytest.mark.parametrize("name", list(FAMILY_FIXTURES))
def test_a_stopped_row_ends_early_and_the_others_finish(name, request):
    captioner = _captioner(name, request, max_new_tokens=20, min_new_tokens=20)
    images = _images()
    expected = captioner.caption(images)
    stop_first = threading.Event()
    seen: dict[int, int] = {0: 0, 1: 0}

    def on_token(row, token):  # runs inside generate: stop row 0 after its second token
        seen[row] += 1
        if row == 0 and seen[0] == 2:
            stop_first.set()

    captions = captioner.generate_rows(images, None, on_token, [stop_first, None])
    assert 2 <= len(captions[0].tokens) <= 3 < len(expected[0].tokens)
    assert expected[0].text.startswith(captions[0].text)
    assert captions[1].text == expected[1].text and captions[1].tokens == expected[1].tokens


def test_stream_stop_event_ends_the_batch(tiny_qwen2_vl_dir):
    captioner = create_captioner(resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir),
                                              max_new_tokens=40, min_new_tokens=40))
    stop = threading.Event()
    original = captioner.generate_rows

    def gated(images, prompts, on_token, stops):
        """Hold generation after the first token until the consumer has pressed stop."""
        def wrapped(row, token):
            on_token(row, token)
            if not stop.is_set():
                stop.wait(5)
        return original(images, prompts, wrapped, stops)

    captioner.generate_rows = gated
    finals = []
    for update in captioner.stream(_images(1), stop=stop):
        stop.set()
        if update.done:
            finals.append(update)
    assert len(finals) == 1 and finals[0].stopped
    assert 1 <= len(finals[0].caption.tokens) <= 2


def test_leaving_a_stream_early_stops_its_generation(tiny_blip_dir):
    captioner = create_captioner(resolve_spec("blip", str(tiny_blip_dir), max_new_tokens=60,
                                              min_new_tokens=60))
    results = []
    original = captioner.generate_rows

    def recorded(images, prompts, on_token, stops):
        def wrapped(row, token):  # after the first token, wait for the consumer to leave
            on_token(row, token)
            for _ in range(500):
                if stops[0].is_set():
                    break
                threading.Event().wait(0.01)
        results.append(original(images, prompts, wrapped, stops))
        return results[-1]

    captioner.generate_rows = recorded
    stream = captioner.stream(_images(1))
    first = next(stream)
    assert not first.done
    stream.close()  # stops the generation and waits for its thread
    assert len(results) == 1 and len(results[0][0].tokens) < 60
