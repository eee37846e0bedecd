"""Benchmarks, each runnable as ``python -m bench.<name>``; they print absolute costs and ratios."""
