"""20 concurrent reviewers through the served app's `/review_save` (gradio_client, loopback)
against a store pre-filled with 20,000 reviews: nothing lost, nothing overwritten silently
(issue 15, item 2). The store-level version is tests/test_review_load.py; this one adds HTTP,
Gradio's queue and Studio's table refresh. Bounded: 20 clients × 6 saves, no timing asserted."""

from __future__ import annotations

from benchmarks import bench_review_load  # the benchmark's app, reviewers and audit


def test_twenty_reviewers_over_http_lose_nothing_and_overwrite_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("GRADIO_TEMP_DIR", str(tmp_path / "gradio"))
    demo, url, studio = bench_review_load.launch_loaded_app(tmp_path / "app", 20_000, items=2)
    try:
        keys = [(f"ROCOv2_2023_test_{i:06d}", m) for i in range(2) for m in ("blip", "qwen2-vl")]
        result = bench_review_load.run_reviewers(url, keys, clients=20, rounds=1)
    finally:
        demo.close()
    assert result.errors == []
    assert len(result.acknowledged) + result.conflicts == 20 * len(keys)
    # Two clients per name: each name saved each key at least once; a refused save is a conflict.
    assert len({(k, v) for k, v, _ in result.acknowledged}) >= 10 * len(keys)
    lost, overwritten, unacknowledged = bench_review_load.audit(studio.store, result)
    assert (lost, overwritten, unacknowledged) == (0, 0, 0)
    assert studio.store.count() == 20_000 + 10 * len(keys)
    assert "minor error" in studio.store.item_verdicts("bench", "ROCOv2_2023_test_000000", "blip")
