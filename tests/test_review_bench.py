"""Keeps benchmarks/bench_reviews.py from rotting: a tiny run, no timing asserted."""

from __future__ import annotations

from benchmarks import bench_reviews


def test_review_benchmark_runs_and_prints_one_row_per_size(capsys) -> None:
    assert bench_reviews.main(["--sizes", "0,30", "--saves", "4", "--old-saves", "2",
                               "--clients", "2"]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith("| ")]
    assert len(rows) == 4 and rows[2].startswith("| 0 |") and rows[3].startswith("| 30 |")
