"""Benchmarks; run each as a module from the repository folder: `python -m benchmarks.bench_app`."""
