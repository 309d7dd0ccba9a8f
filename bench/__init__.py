"""Benchmarks: `make bench` (or `python -m bench [name ...]`). Each module in
BENCHMARKS has a `main(argv)`; results go to stdout and bench/results/."""
