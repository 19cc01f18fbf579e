"""The app's generation loop with tiny models: concurrent requests share batches, each gets its
own caption, prompts per request, cancelling one leaves the others. No timing assertions: a gate
holds the first batch so the next requests are deterministically queued together."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from PIL import Image

from medcap.app.generation import GenerationLoop, LoopBusy, LoopSettings
from medcap.models import create_captioner, resolve_spec


def _images(count: int) -> list[Image.Image]:
    rng = np.random.RandomState(3)
    return [Image.fromarray((rng.rand(64, 64, 3) * 255).astype("uint8")) for _ in range(count)]


class Gate:
    """Holds the captioner's first `generate_rows` call until released."""

    def __init__(self, captioner) -> None:
        self.entered, self.release = threading.Event(), threading.Event()
        self._original = captioner.generate_rows
        captioner.generate_rows = self._gated

    def _gated(self, *args):
        if not self.entered.is_set():
            self.entered.set()
            assert self.release.wait(30)
        return self._original(*args)


def _in_threads(count: int, target) -> list:
    results: list = [None] * count
    barrier = threading.Barrier(count)

    def run(index: int) -> None:
        barrier.wait()
        results[index] = target(index)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def _queued_behind_a_gate(loop: GenerationLoop, images, prompts=None):
    """Submit one request, hold it in generate, submit the rest from threads, release."""
    gate = Gate(loop.captioner)
    prompts = prompts or [None] * len(images)
    first = loop.submit(images[0], prompts[0])
    assert gate.entered.wait(30)
    rest = _in_threads(len(images) - 1, lambda i: loop.submit(images[i + 1], prompts[i + 1]))
    assert loop._inbox.qsize() == len(rest)  # all queued while the first batch is held
    gate.release.set()
    return [first, *rest]


@pytest.mark.parametrize("name,fixture", [("blip", "tiny_blip_dir"),
                                          ("qwen2-vl", "tiny_qwen2_vl_dir")])
def test_concurrent_requests_get_the_captions_of_one_by_one_calls(name, fixture, request):
    folder = request.getfixturevalue(fixture)
    captioner = create_captioner(resolve_spec(name, str(folder), max_new_tokens=10))
    images = _images(6)
    alone = [captioner.caption([image])[0] for image in images]
    loop = GenerationLoop(captioner, LoopSettings(max_batch_size=8, gather_seconds=0))
    try:
        requests = _queued_behind_a_gate(loop, images)
        results = [r.result() for r in requests]
    finally:
        loop.close()
    assert loop.batches == [1, 5]  # the five waiting requests ran as one batch
    assert [r.caption.text for r in results] == [c.text for c in alone]
    assert [[t.text for t in r.caption.tokens] for r in results] == [
        [t.text for t in c.tokens] for c in alone]
    assert not any(r.error or r.stopped for r in results)


def test_each_request_streams_only_its_own_words_with_its_own_prompt(tiny_qwen2_vl_dir):
    captioner = create_captioner(resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir),
                                              max_new_tokens=8))
    images = _images(3)
    prompts = ["Name the modality.", "Describe the lungs in detail.", ""]
    alone = [captioner.caption([im], prompt=p)[0].text for im, p in zip(images, prompts)]
    loop = GenerationLoop(captioner, LoopSettings(gather_seconds=0))
    try:
        requests = _queued_behind_a_gate(loop, images, prompts)
        streams = _in_threads(3, lambda i: list(requests[i]))
    finally:
        loop.close()
    assert loop.batches == [1, 2]  # different prompts still share a batch (left padding)
    for updates, expected in zip(streams, alone):
        partial = [u.text for u in updates if not u.done]
        assert updates[-1].done and updates[-1].caption.text == expected
        assert partial and partial[-1] == expected
        assert all(b.startswith(a) for a, b in zip(partial, partial[1:]))


def test_blip_batches_requests_with_another_prompt_separately(tiny_blip_dir):
    captioner = create_captioner(resolve_spec("blip", str(tiny_blip_dir), max_new_tokens=6))
    images = _images(4)
    prompts = [None, "a chest", None, "a chest"]
    alone = [captioner.caption([im], prompt=p)[0].text for im, p in zip(images, prompts)]
    loop = GenerationLoop(captioner, LoopSettings(gather_seconds=0))
    try:
        requests = _queued_behind_a_gate(loop, images, prompts)
        texts = [r.result().caption.text for r in requests]
    finally:
        loop.close()
    assert texts == alone
    assert sorted(loop.batches) == [1, 1, 2]


def test_a_cancelled_request_ends_early_and_the_others_in_its_batch_finish(tiny_blip_dir):
    captioner = create_captioner(resolve_spec("blip", str(tiny_blip_dir), max_new_tokens=30,
                                              min_new_tokens=30))
    images = _images(4)
    alone = [captioner.caption([image])[0] for image in images]
    loop = GenerationLoop(captioner, LoopSettings(gather_seconds=0))
    original = captioner.generate_rows

    target = images[2]  # the victim's image; its row in the batch depends on thread timing

    def wait_for_cancel(batch_images, prompts, on_token, stops):
        """The victim's row pauses after its first token until its user has pressed stop."""
        def on_token_then_wait(row, token):
            on_token(row, token)
            if batch_images[row] is target and len(batch_images) == 3:
                stops[row].wait(30)
        return original(batch_images, prompts, on_token_then_wait, stops)

    captioner.generate_rows = wait_for_cancel  # the gate below wraps this
    try:
        requests = _queued_behind_a_gate(loop, images)
        victim = requests[2]  # in the second batch (requests 1, 2, 3), submitted with images[2]
        for update in victim:
            if not update.done:
                victim.cancel()
        results = [r.result() for r in requests]
    finally:
        loop.close()
    stopped = results[2]
    assert stopped.done and stopped.stopped and not stopped.error
    assert 1 <= len(stopped.caption.tokens) <= 2 < len(alone[2].tokens)
    assert alone[2].text.startswith(stopped.caption.text)
    for index in (0, 1, 3):
        assert results[index].caption.text == alone[index].text and not results[index].stopped


def test_a_request_cancelled_while_waiting_never_runs(tiny_blip_dir):
    captioner = create_captioner(resolve_spec("blip", str(tiny_blip_dir), max_new_tokens=5))
    loop = GenerationLoop(captioner, LoopSettings(gather_seconds=0))
    gate = Gate(captioner)
    try:
        first = loop.submit(_images(1)[0])
        assert gate.entered.wait(30)
        waiting = loop.submit(_images(2)[1])
        waiting.cancel()
        gate.release.set()
        result = waiting.result()
        assert first.result().caption.text
    finally:
        loop.close()
    assert result.stopped and result.caption.text == "" and loop.batches == [1]


def test_a_model_that_fails_gives_every_request_the_message_and_the_loop_goes_on(tmp_path):
    captioner = create_captioner(resolve_spec("blip", str(tmp_path / "missing"), family="blip"))
    loop = GenerationLoop(captioner)
    try:
        first = loop.submit(_images(1)[0]).result()
        second = loop.submit(_images(1)[0]).result()
    finally:
        loop.close()
    assert first.error and first.error == second.error and "missing" in first.error
    with pytest.raises(RuntimeError, match="closed"):
        loop.submit(_images(1)[0])


def test_too_many_waiting_requests_are_refused_with_a_message(tiny_blip_dir):
    captioner = create_captioner(resolve_spec("blip", str(tiny_blip_dir), max_new_tokens=3))
    loop = GenerationLoop(captioner, LoopSettings(max_waiting=2, gather_seconds=0))
    gate = Gate(captioner)
    try:
        first = loop.submit(_images(1)[0])
        assert gate.entered.wait(30)
        queued = [loop.submit(image) for image in _images(2)]
        with pytest.raises(LoopBusy, match="waiting"):
            loop.submit(_images(1)[0])
        gate.release.set()
        assert all(r.result().caption.text for r in [first, *queued])
    finally:
        loop.close()


def test_loop_settings_from_env_are_bounded():
    assert LoopSettings.from_env({}) == LoopSettings()
    settings = LoopSettings.from_env({"MEDCAP_MAX_BATCH": "4", "MEDCAP_BATCH_WAIT_MS": "100"})
    assert (settings.max_batch_size, settings.gather_seconds) == (4, 0.1)
    with pytest.raises(ValueError, match="MEDCAP_MAX_BATCH"):
        LoopSettings.from_env({"MEDCAP_MAX_BATCH": "0"})
    with pytest.raises(ValueError, match="MEDCAP_BATCH_WAIT_MS"):
        LoopSettings.from_env({"MEDCAP_BATCH_WAIT_MS": "soon"})


# ---------------------------------------------------------------------------- cards and uploads
@pytest.fixture
def pool(tiny_blip_dir, tiny_qwen2_vl_dir):
    from medcap.app.models import ModelPool

    specs = [resolve_spec("blip", str(tiny_blip_dir), max_new_tokens=16, min_new_tokens=16),
             resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir), max_new_tokens=8)]
    pool = ModelPool(specs, {"blip2-lora": "needs a LoRA adapter"},
                     LoopSettings(gather_seconds=0))
    yield pool
    pool.close()


def test_cards_fill_word_by_word_and_end_with_the_whole_captions(pool):
    image = _images(1)[0]
    whole = pool.caption_cards(["blip", "qwen2-vl"], image, "Name the modality.")
    snapshots = list(pool.stream_cards(["blip", "blip2-lora", "qwen2-vl"], image,
                                       "Name the modality.", every=0))
    assert [c.status for c in snapshots[0]] == ["Waiting…", "", "Waiting…"]
    assert "LoRA" in snapshots[0][1].error
    blip_texts = [s[0].caption for s in snapshots if s[0].status == "Generating…" and s[0].caption]
    assert len(set(blip_texts)) >= 3  # the BLIP card grew several times
    assert all(s[2].status == "Waiting…" for s in snapshots if s[0].status == "Generating…")
    final = snapshots[-1]
    assert [c.caption for c in final] == [whole[0].caption, "", whole[1].caption]
    assert final[0].tokens == whole[0].tokens and final[0].seconds > 0
    assert final[0].status == "" and final[2].status == ""


def test_stop_ends_the_running_card_and_skips_the_next_model(pool):
    loop = pool.loop("blip")
    original = loop.captioner.generate_rows

    def pause_after_first_token(images, prompts, on_token, stops):
        def on_token_then_wait(row, token):
            on_token(row, token)
            stops[row].wait(30)
        return original(images, prompts, on_token_then_wait, stops)

    loop.captioner.generate_rows = pause_after_first_token
    stop = threading.Event()
    snapshots = []
    for cards in pool.stream_cards(["blip", "qwen2-vl"], _images(1)[0], None, stop, every=0):
        snapshots.append(cards)
        if cards[0].tokens:
            stop.set()  # the Stop button
    final = snapshots[-1]
    assert final[0].status == "Stopped." and 1 <= len(final[0].tokens) <= 2
    assert final[1].status == "Stopped before it started." and not final[1].caption
    assert not pool.is_loaded("qwen2-vl")  # never started


def test_closing_the_page_mid_caption_frees_the_model(pool):
    cards = pool.stream_cards(["blip"], _images(1)[0], None, None, every=0)
    next(cards)
    next(cards)  # "Generating…" card: the request is queued
    cards.close()
    assert pool.caption_cards(["blip"], _images(1)[0])[0].caption  # the loop still serves


def test_stop_switches_stop_only_their_own_session():
    from medcap.app.generation import StopSwitches

    switches = StopSwitches()
    mine, other = switches.start("me"), switches.start("you")
    assert switches.stop("me") == 1 and mine.is_set() and not other.is_set()
    switches.finish("me", mine)
    assert switches.stop("me") == 0


def test_a_caption_request_with_too_many_models_or_a_huge_prompt_is_refused(tmp_path):
    from medcap.app.options import AppOptions
    from medcap.app.studio import MAX_PROMPT_CHARS, Studio, UploadError
    from medcap.config import Settings

    studio = Studio(Settings(model_names=[], reviews_db=tmp_path / "r.sqlite", check_memory=False),
                    AppOptions(examples=[]))
    image = tmp_path / "scan.png"
    Image.new("RGB", (40, 40)).save(image)
    with pytest.raises(UploadError, match="at most 1 model "):
        list(studio.stream_upload(image, ["blip", "qwen2-vl"]))
    with pytest.raises(UploadError, match="keep it under"):
        list(studio.stream_upload(image, ["blip"], "x" * (MAX_PROMPT_CHARS + 1)))
    assert image.exists()  # a refused request reads nothing (and deletes nothing)


def test_compute_thread_runs_every_job_in_one_thread_and_returns_or_raises():
    from medcap.app.generation import ComputeThread

    compute = ComputeThread()
    try:
        seen = _in_threads(4, lambda i: compute.run(lambda: (i, threading.get_ident())))
        assert [value for value, _ in seen] == [0, 1, 2, 3]
        assert len({ident for _, ident in seen}) == 1
        assert seen[0][1] != threading.get_ident()
        with pytest.raises(ZeroDivisionError):
            compute.run(lambda: 1 / 0)
        assert compute.run(lambda: "still serving") == "still serving"
    finally:
        compute.close()


def test_cpu_models_of_a_pool_load_and_generate_in_one_thread(tiny_blip_dir, tiny_qwen2_vl_dir):
    """One OpenMP thread team for the whole app (the generation module's docstring says why)."""
    from medcap.app.models import ModelPool

    pool = ModelPool([resolve_spec("blip", str(tiny_blip_dir), device="cpu", max_new_tokens=4),
                      resolve_spec("qwen2-vl", str(tiny_qwen2_vl_dir), device="cpu",
                                   max_new_tokens=4)],
                     loop_settings=LoopSettings(gather_seconds=0))
    threads: dict[str, set[int]] = {}
    try:
        for label in pool.labels:
            captioner = pool.loop(label).captioner
            for method in ("load", "generate_rows"):
                original = getattr(captioner, method)

                def traced(*args, _original=original, _label=label, **kwargs):
                    threads.setdefault(_label, set()).add(threading.get_ident())
                    return _original(*args, **kwargs)

                setattr(captioner, method, traced)
        cards = pool.caption_cards(pool.labels, _images(1)[0])
        assert [card.error for card in cards] == ["", ""]
        assert set(threads) == set(pool.labels)
        assert len(set().union(*threads.values())) == 1
    finally:
        pool.close()
